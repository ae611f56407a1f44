use super::*;

/// `archive.info` of a real 2.45 repository (pgbackrest-format.md §2.2), checksum as written by pgBackRest.
const ARCHIVE_INFO: &str = "[backrest]\nbackrest-format=5\nbackrest-version=\"2.45\"\n\n[db]\ndb-id=1\n\
db-system-id=7715960038147903038\ndb-version=\"15\"\n\n[db:history]\n\
1={\"db-id\":7715960038147903038,\"db-version\":\"15\"}\n\n[backrest]\n\
backrest-checksum=\"ec7ccdf3bd26bb4452c9563eba66af9809f520ce\"\n";

#[test]
fn a_real_archive_info_verifies() {
    let ini = Ini::parse(ARCHIVE_INFO).expect("parse");
    ini.verify().expect("verify");
    assert_eq!(
        ini.get_json::<u64>("db", "db-system-id"),
        Ok(Some(7_715_960_038_147_903_038))
    );
    assert_eq!(
        ini.get("db:history", "1"),
        Some("{\"db-id\":7715960038147903038,\"db-version\":\"15\"}")
    );
}

#[test]
fn a_changed_value_fails_the_checksum() {
    let ini = Ini::parse(&ARCHIVE_INFO.replace("db-id=1", "db-id=2")).expect("parse");
    let e = ini.verify().expect_err("must fail");
    assert!(e.contains("checksum mismatch"), "{e}");
}

#[test]
fn keys_may_hold_equals_signs() {
    let ini = Ini::parse("[target:file]\npg_data/a=b={\"size\":1}\n").expect("parse");
    assert_eq!(ini.get("target:file", "pg_data/a=b"), Some("{\"size\":1}"));
}

#[test]
fn garbage_is_refused_with_the_line() {
    let e = Ini::parse("[a]\nnot a key value\n").expect_err("must fail");
    assert!(e.contains("line 2"), "{e}");
    let e = Ini::parse("k=1\n").expect_err("must fail");
    assert!(e.contains("before any [section]"), "{e}");
}

#[test]
fn another_format_is_refused() {
    let text = "[backrest]\nbackrest-format=6\n";
    let ini = Ini::parse(text).expect("parse");
    let sum = ini.checksum();
    let ini = Ini::parse(&format!(
        "{text}\n[backrest]\nbackrest-checksum=\"{sum}\"\n"
    ))
    .expect("parse");
    let e = ini.verify().expect_err("must fail");
    assert!(e.contains("format 6"), "{e}");
}

#[test]
fn key_escaping_follows_pgbackrest() {
    assert_eq!(json_key("a\"b\\c\td é"), "\"a\\\"b\\\\c\\td é\"");
}

proptest::proptest! {
    #[test]
    fn parse_never_panics(s in "\\PC*") {
        if let Ok(ini) = Ini::parse(&s) {
            let _ = ini.verify();
        }
    }
}
