use super::*;
use proptest::prelude::*;

fn run(dump: &str) -> (String, Filter, Vec<NewTablespace>) {
    run_with(dump, false)
}

fn run_with(dump: &str, create_roles: bool) -> (String, Filter, Vec<NewTablespace>) {
    let mut f = Filter::new("/data/tablespaces/", create_roles);
    let mut out = Vec::new();
    let mut created = Vec::new();
    for line in dump.split_inclusive('\n') {
        created.extend(f.line(line.as_bytes(), &mut out));
    }
    (String::from_utf8(out).expect("utf-8"), f, created)
}

#[test]
fn role_password_hashes_never_reach_psql() {
    let dump = "CREATE ROLE app;\nALTER ROLE app WITH NOSUPERUSER INHERIT LOGIN PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2Vy' VALID UNTIL '2030-01-01 00:00:00+00';\nALTER ROLE \"we PASSWORD 'ird\" WITH LOGIN PASSWORD 'md5abc';\nALTER ROLE plain WITH LOGIN;\n";
    let (out, f, _) = run(dump);
    assert!(!out.contains("SCRAM") && !out.contains("md5abc"), "{out}");
    assert!(
        out.contains("LOGIN VALID UNTIL '2030-01-01 00:00:00+00';"),
        "{out}"
    );
    assert!(
        out.contains("ALTER ROLE \"we PASSWORD 'ird\" WITH LOGIN;"),
        "the name is kept: {out}"
    );
    assert_eq!(f.passwords_removed, 2);
    assert_eq!(f.statements, 4);
    assert_eq!(out.lines().count(), dump.lines().count());
}

#[test]
fn password_looking_text_in_data_and_bodies_is_left_alone() {
    let dump = "COPY public.t (s) FROM stdin;\nALTER ROLE x WITH PASSWORD 'keep';\n\\.\nCREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$\nALTER ROLE y WITH PASSWORD 'keep2';\n$$;\n";
    let (out, f, _) = run(dump);
    assert_eq!(out, dump);
    assert_eq!(f.passwords_removed, 0);
    assert_eq!(f.statements, 2, "COPY and CREATE FUNCTION");
}

#[test]
fn tablespaces_move_into_the_volume_and_missing_ones_are_created_there() {
    let dump = "CREATE TABLESPACE ts1 OWNER postgres LOCATION '/var/lib/pg/ts1';\nCREATE TABLESPACE \"Big Space\" OWNER app LOCATION '/mnt/it''s';\nSET default_tablespace = ts1;\nSET default_tablespace = other;\nSET default_tablespace = other;\nSET default_tablespace = '';\n";
    let (out, f, created) = run(dump);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "CREATE TABLESPACE ts1 OWNER postgres LOCATION '/data/tablespaces/1';"
    );
    assert_eq!(
        lines[1],
        "CREATE TABLESPACE \"Big Space\" OWNER app LOCATION '/data/tablespaces/2';"
    );
    assert_eq!(
        lines[2], "SET default_tablespace = ts1;",
        "created by the dump itself"
    );
    assert_eq!(
        lines[3],
        "CREATE TABLESPACE other LOCATION '/data/tablespaces/3'; SET default_tablespace = other;"
    );
    assert_eq!(lines[4], "SET default_tablespace = other;", "created once");
    assert_eq!(lines[5], "SET default_tablespace = '';");
    assert_eq!(
        created.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["ts1", "Big Space", "other"]
    );
    assert_eq!(
        f.statements, 6,
        "the inserted CREATE TABLESPACE is not the dump's"
    );
}

#[test]
fn statements_are_counted_through_quotes_comments_and_copy_data() {
    let dump = concat!(
        "-- a comment; not a statement\n",
        "/* block; /* nested; */ still; */ SELECT 1;\n",
        "SELECT 'a;b', E'it\\'s;', \"we;ird\";\n",
        "CREATE FUNCTION g() RETURNS int LANGUAGE plpgsql AS $body$\n",
        "BEGIN\n",
        "\\not a meta command inside a body;\n",
        "RETURN 1; END $body$;\n",
        "COPY t (a) FROM stdin;\n",
        "x;y\n",
        "\\\\backslash;\n",
        "\\.\n",
        "\\connect other\n",
        "SELECT $1, a$b FROM t;\n",
        "SELECT\n  2;\n",
    );
    let (out, f, _) = run(dump);
    assert_eq!(out, dump);
    assert_eq!(f.statements, 6);
}

#[test]
fn a_single_database_dump_gets_the_roles_it_names_once_without_login() {
    let dump = concat!(
        "ALTER TABLE public.orders OWNER TO app;\n",
        "GRANT SELECT ON TABLE public.orders TO reporter, \"Odd Role\", PUBLIC WITH GRANT OPTION;\n",
        "REVOKE ALL ON SCHEMA public FROM PUBLIC;\n",
        "ALTER SCHEMA s OWNER TO app;\n",
        "ALTER DEFAULT PRIVILEGES FOR ROLE etl IN SCHEMA public GRANT SELECT ON TABLES TO reporter;\n",
        "COPY t (a) FROM stdin;\n",
        "x OWNER TO nobody;\n",
        "\\.\n",
    );
    let (out, f, _) = run_with(dump, true);
    let lines: Vec<&str> = out.lines().collect();
    let create = |r: &str| {
        format!(
            "DO $pgro$ BEGIN CREATE ROLE {r} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $pgro$; "
        )
    };
    assert_eq!(
        lines[0],
        format!("{}ALTER TABLE public.orders OWNER TO app;", create("app"))
    );
    assert!(
        lines[1].starts_with(&format!(
            "{}{}GRANT",
            create("reporter"),
            create("\"Odd Role\"")
        )),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2], "REVOKE ALL ON SCHEMA public FROM PUBLIC;");
    assert_eq!(lines[3], "ALTER SCHEMA s OWNER TO app;", "created once");
    assert!(lines[4].starts_with(&create("etl")), "{}", lines[4]);
    assert_eq!(lines[6], "x OWNER TO nobody;", "COPY data is data");
    assert_eq!(f.statements, 6, "the dump's own statements");
    // A cluster dump creates its roles itself: nothing added.
    let (out, _, _) = run_with(dump, false);
    assert_eq!(out, dump);
}

#[test]
fn only_the_meta_commands_pg_dump_writes_reach_psql() {
    let dump = concat!(
        "\\restrict abc\n",
        "\\connect demo\n",
        "\\! rm -rf /\n",
        "SELECT 1; \\o /etc/passwd\n",
        "SELECT 'not \\! a command', $x$ \\! nor this $x$;\n",
        "-- \\! in a comment\n",
        "\\copy t to program 'sh'\n",
        "\\unrestrict abc\n",
    );
    let (out, f, _) = run(dump);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "\\restrict abc");
    assert_eq!(lines[1], "\\connect demo");
    assert_eq!(lines[2], "", "refused, the line kept empty");
    assert_eq!(lines[3], "SELECT 1; ", "the SQL before it stays");
    assert_eq!(
        lines[4],
        "SELECT 'not \\! a command', $x$ \\! nor this $x$;"
    );
    assert_eq!(lines[5], "-- \\! in a comment");
    assert_eq!(lines[6], "");
    assert_eq!(lines[7], "\\unrestrict abc");
    assert_eq!(out.lines().count(), dump.lines().count());
    assert_eq!(
        f.refused,
        vec![
            (3, "\\!".to_owned()),
            (4, "\\o".to_owned()),
            (7, "\\copy".to_owned())
        ]
    );
}

#[test]
fn rewrites_keep_every_other_byte_whatever_the_encoding() {
    // A UTF-8 role name and a Latin-1 one (a SQL_ASCII or LATIN1 dump): only the password goes.
    let mut dump = "ALTER ROLE \"jos\u{e9}\" WITH LOGIN PASSWORD 'md5aa';\n"
        .as_bytes()
        .to_vec();
    dump.extend_from_slice(b"ALTER ROLE \"jos\xe9\" WITH LOGIN PASSWORD 'md5bb';\n");
    dump.extend_from_slice(b"CREATE TABLESPACE \"t\xe9\" OWNER x LOCATION '/src/\xe9';\n");
    let mut f = Filter::new("/v/ts", false);
    let mut out = Vec::new();
    let mut created = Vec::new();
    for line in dump.split_inclusive(|&b| b == b'\n') {
        created.extend(f.line(line, &mut out));
    }
    let mut want = "ALTER ROLE \"jos\u{e9}\" WITH LOGIN;\n".as_bytes().to_vec();
    want.extend_from_slice(b"ALTER ROLE \"jos\xe9\" WITH LOGIN;\n");
    want.extend_from_slice(b"CREATE TABLESPACE \"t\xe9\" OWNER x LOCATION '/v/ts/1';\n");
    assert_eq!(out, want);
    assert_eq!(f.passwords_removed, 2);
    assert_eq!(created.len(), 1);
}

proptest! {
    #[test]
    fn any_input_keeps_its_line_count_and_never_panics(lines in proptest::collection::vec("[ -~]{0,40}", 0..30)) {
        let dump: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let (out, _, _) = run(&dump);
        prop_assert_eq!(out.matches('\n').count(), dump.matches('\n').count());
    }

    #[test]
    fn role_lines_keep_everything_but_the_password(
        name in "[a-z][a-z0-9_]{0,10}",
        hash in "[A-Za-z0-9+/=$:]{1,60}",
    ) {
        let line = format!("ALTER ROLE {name} WITH LOGIN PASSWORD '{hash}';\n");
        let (out, _, _) = run(&line);
        prop_assert_eq!(out, format!("ALTER ROLE {name} WITH LOGIN;\n"));
    }
}
