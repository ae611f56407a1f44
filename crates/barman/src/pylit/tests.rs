use super::*;

#[test]
fn the_literals_barman_writes_parse() {
    assert_eq!(
        parse(r"[('ts1', 16384, '/var/lib/postgresql/ts1')]").expect("tablespaces"),
        Value::List(vec![Value::List(vec![
            Value::Str("ts1".into()),
            Value::Int(16384),
            Value::Str("/var/lib/postgresql/ts1".into()),
        ])])
    );
    assert_eq!(
        parse(r"'START WAL LOCATION: 0/7000028 (file 000000010000000000000007)\nLABEL: it\'s\n'")
            .expect("label"),
        Value::Str(
            "START WAL LOCATION: 0/7000028 (file 000000010000000000000007)\nLABEL: it's\n".into()
        )
    );
    assert_eq!(
        parse(r#""it's""#).expect("double quotes"),
        Value::Str("it's".into())
    );
    assert_eq!(
        parse(r"{'total_time': 3.769181, 'n': 2, 'per': {'16384': 0}}").expect("dict"),
        Value::Dict(vec![
            (Value::Str("total_time".into()), Value::Float(3.769_181)),
            (Value::Str("n".into()), Value::Int(2)),
            (
                Value::Str("per".into()),
                Value::Dict(vec![(Value::Str("16384".into()), Value::Int(0))])
            ),
        ])
    );
    assert_eq!(parse("None").expect("None"), Value::None);
    assert_eq!(parse(" True ").expect("True"), Value::Bool(true));
    assert_eq!(parse("[]").expect("empty"), Value::List(vec![]));
    assert_eq!(
        parse("(1,)").expect("1-tuple"),
        Value::List(vec![Value::Int(1)])
    );
    assert_eq!(
        parse(r"'\x01\u00e9\\'").expect("escapes"),
        Value::Str("\u{1}é\\".into())
    );
}

#[test]
fn damage_is_an_error_with_a_position() {
    for bad in [
        "'open", "[1, 2", "{'a' 1}", "nope", "1 2", r"'\q'", r"'\x4'", "", "[,]", "'a\nb'",
    ] {
        assert!(parse(bad).is_err(), "{bad:?} parsed");
    }
    let deep = "[".repeat(100) + &"]".repeat(100);
    assert_eq!(parse(&deep).expect_err("deep").what, "nested too deeply");
}

proptest::proptest! {
    #[test]
    fn parse_never_panics(s in "\\PC{0,64}") {
        let _ = parse(&s);
    }

    #[test]
    fn bracket_soup_never_panics(s in "[\\[\\](){},:'\"\\\\0-9a-zA-Z .-]{0,48}") {
        let _ = parse(&s);
    }
}
