use tokio_postgres::types::Type;

use super::*;

fn row(vals: &[Option<&str>]) -> Vec<Option<String>> {
    vals.iter().map(|v| v.map(str::to_owned)).collect()
}

fn cols(names: &[&str]) -> Vec<String> {
    names.iter().map(|&n| n.to_owned()).collect()
}

#[test]
fn one_true_row_passes_and_records_the_other_columns() {
    let r = judge(
        "orders",
        Some(&Type::BOOL),
        &cols(&["ok", "n"]),
        &[row(&[Some("t"), Some("1234")])],
        0.5,
    );
    assert!(r.passed);
    assert_eq!(r.value.as_deref(), Some("true"));
    assert_eq!(r.detail.as_deref(), Some("n=1234"));
    assert_eq!(r.message, None);
}

#[test]
fn false_null_no_row_two_rows_and_non_boolean_fail_with_a_reason() {
    let f = judge(
        "c",
        Some(&Type::BOOL),
        &cols(&["ok"]),
        &[row(&[Some("f")])],
        0.0,
    );
    assert!(!f.passed);
    assert_eq!(f.message.as_deref(), Some("returned false"));
    let n = judge("c", Some(&Type::BOOL), &cols(&["ok"]), &[row(&[None])], 0.0);
    assert_eq!(n.value.as_deref(), Some("NULL"));
    assert!(!n.passed);
    let none = judge("c", Some(&Type::BOOL), &cols(&["ok"]), &[], 0.0);
    assert!(none.message.expect("message").contains("returned 0 rows"));
    let two = judge(
        "c",
        Some(&Type::BOOL),
        &cols(&["ok"]),
        &[row(&[Some("t")]), row(&[Some("t")])],
        0.0,
    );
    assert!(!two.passed);
    assert!(
        two.message
            .expect("message")
            .contains("returned more than one row")
    );
    let int = judge(
        "c",
        Some(&Type::INT8),
        &cols(&["count"]),
        &[row(&[Some("5")])],
        0.0,
    );
    assert!(!int.passed);
    assert!(
        int.message
            .expect("message")
            .contains("of type int8, not boolean")
    );
    let nothing = judge("c", None, &[], &[], 0.0);
    assert!(nothing.message.expect("message").contains("no columns"));
}

#[test]
fn configured_only_when_something_is_asked() {
    assert!(!configured(None));
    assert!(!configured(Some(&Verification::default())));
    assert!(configured(Some(&Verification {
        require_application_database: true,
        ..Verification::default()
    })));
}

#[test]
fn failure_line_names_the_check_and_its_finding() {
    let r = judge(
        "orders",
        Some(&Type::BOOL),
        &cols(&["ok", "n"]),
        &[row(&[Some("f"), Some("3")])],
        0.0,
    );
    assert_eq!(failure_line(&r), "check orders: returned false (n=3)");
}
