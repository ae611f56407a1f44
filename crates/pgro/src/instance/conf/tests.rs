#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use super::*;

fn s(name: &str, value: &str) -> Setting {
    Setting {
        name: name.into(),
        value: value.into(),
    }
}

#[test]
fn parse_accepts_quoting_comments_and_optional_equals() {
    let text = "# comment\n\
                \n\
                Shared_Preload_Libraries = 'pg_stat_statements'  # trailing\n\
                work_mem 8MB\n\
                search_path='\"$user\", public'\n\
                log_line_prefix = 'it''s \\'x\\' \\101 \\n'\n\
                custom.opt=on#c\n";
    let got = parse(text).unwrap();
    assert_eq!(
        got,
        vec![
            s("shared_preload_libraries", "pg_stat_statements"),
            s("work_mem", "8MB"),
            s("search_path", "\"$user\", public"),
            s("log_line_prefix", "it's 'x' A \n"),
            s("custom.opt", "on"),
        ]
    );
}

#[test]
fn parse_rejects_garbage_with_line_number() {
    let err = parse("a = 1\n= 2\n").unwrap_err();
    assert_eq!(err.line, 2);
    assert!(parse("a = 'open\n").is_err());
    assert!(parse("a = 1 2\n").is_err());
}

#[test]
fn quote_round_trips_through_parse() {
    for v in [
        "plain",
        "it's",
        "back\\slash",
        "a # b",
        "tab\there",
        "",
        "new\nline",
    ] {
        let line = format!("x = {}", quote(v));
        assert_eq!(parse(&line).unwrap(), vec![s("x", v)], "{line}");
    }
}

struct Mem(HashMap<PathBuf, String>);

impl ConfFiles for Mem {
    fn read(&self, path: &Path) -> std::io::Result<Option<String>> {
        Ok(self.0.get(path).cloned())
    }
    fn list(&self, dir: &Path) -> std::io::Result<Option<Vec<String>>> {
        let names: Vec<String> = self
            .0
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        Ok((!names.is_empty()).then_some(names))
    }
}

#[test]
fn flatten_expands_includes_in_order_and_notes_missing_files() {
    let files = Mem(HashMap::from([
        (
            PathBuf::from("/d/postgresql.conf"),
            "a = 1\ninclude 'sub/x.conf'\ninclude_if_exists 'nope.conf'\ninclude '/etc/pg/missing.conf'\ninclude_dir 'conf.d'\nz = 9\n".to_string(),
        ),
        (PathBuf::from("/d/sub/x.conf"), "b = 2\ninclude 'y.conf'\n".to_string()),
        (PathBuf::from("/d/sub/y.conf"), "c = 3\n".to_string()),
        (PathBuf::from("/d/conf.d/20-b.conf"), "e = 5\n".to_string()),
        (PathBuf::from("/d/conf.d/10-a.conf"), "d = 4\n".to_string()),
        (PathBuf::from("/d/conf.d/.hidden.conf"), "h = 0\n".to_string()),
        (PathBuf::from("/d/conf.d/readme.txt"), "garbage garbage garbage\n".to_string()),
    ]));
    let mut notes = Vec::new();
    let got = flatten(&files, Path::new("/d/postgresql.conf"), &mut notes).unwrap();
    let names: Vec<&str> = got.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d", "e", "z"]);
    assert_eq!(
        notes,
        vec![FlattenNote::MissingInclude("/etc/pg/missing.conf".into())]
    );
}

#[test]
fn flatten_stops_include_cycles() {
    let files = Mem(HashMap::from([(
        PathBuf::from("/d/a.conf"),
        "x = 1\ninclude 'a.conf'\n".to_string(),
    )]));
    let mut notes = Vec::new();
    let got = flatten(&files, Path::new("/d/a.conf"), &mut notes).unwrap();
    assert_eq!(got.len(), 11);
    assert!(matches!(notes.as_slice(), [FlattenNote::TooDeep(_)]));
}

#[test]
fn render_main_drops_forbidden_and_duplicate_settings_and_includes_ours_last() {
    let src = vec![
        s("shared_preload_libraries", "pg_stat_statements"),
        s("work_mem", "4MB"),
        s("primary_conninfo", "host=db password=secret"),
        s("listen_addresses", "*"),
        s("ssl_cert_file", "/etc/ssl/x"),
        s("work_mem", "8MB"),
        s("recovery_target_time", "2020-01-01"),
    ];
    let out = render_main(&src, "postgresql.pgro.conf", &|_| true);
    assert!(out.contains("shared_preload_libraries = 'pg_stat_statements'\n"));
    assert!(out.contains("work_mem = '8MB'\n"));
    assert!(!out.contains("4MB"));
    assert!(
        !out.contains("secret"),
        "values of removed settings are never copied"
    );
    assert!(out.contains(
        "# Left out: primary_conninfo, listen_addresses, ssl_cert_file, recovery_target_time\n"
    ));
    assert!(out.ends_with("include 'postgresql.pgro.conf'\n"));
    // The rendered file parses back to exactly the kept settings plus the include.
    let back = parse(&out).unwrap();
    assert_eq!(back.len(), 3);
}

#[test]
fn render_pgro_puts_user_extra_config_last() {
    let settings = PgroSettings {
        listen_addresses: "*".into(),
        port: 5432,
        socket_dir: "/tmp/pgro".into(),
        major: 16,
        shared_buffers_bytes: Some(256 << 20),
        recovery: Vec::new(),
        tls: Vec::new(),
    };
    let out = render_pgro(&settings, Some("work_mem = '64MB'"));
    let parsed = parse(&out).unwrap();
    assert_eq!(parsed.last().unwrap(), &s("work_mem", "64MB"));
    assert!(parsed.contains(&s("shared_buffers", "262144kB")));
    assert!(parsed.contains(&s("recovery_init_sync_method", "syncfs")));
    let old = render_pgro(
        &PgroSettings {
            major: 13,
            ..settings
        },
        None,
    );
    assert!(!old.contains("recovery_init_sync_method"));
}

#[test]
fn settings_naming_absent_absolute_paths_are_left_out() {
    let src = vec![
        s("work_mem", "8MB"),
        // PGO and CPO: paths of the source's pod.
        s("log_directory_custom", "/pgdata/pg16/log"),
        s("pgaudit.log_file", "/home/postgres/pgdata/pgroot/x"),
        s("custom.present", "/usr/share/present"),
        // Not a path: a relative value, a value with spaces, a preload library (its own clear failure).
        s("search_path", "public"),
        s("custom.cmd", "/bin/false --flag"),
        s("shared_preload_libraries", "/opt/missing/lib.so"),
    ];
    let exists = |p: &Path| p == Path::new("/usr/share/present");
    let out = render_main(&src, "postgresql.pgro.conf", &exists);
    assert!(
        !out.contains("/pgdata/") && !out.contains("/home/postgres/"),
        "{out}"
    );
    assert!(
        out.contains("# Left out: log_directory_custom, pgaudit.log_file\n"),
        "{out}"
    );
    for kept in [
        "custom.present = '/usr/share/present'",
        "search_path = 'public'",
        "custom.cmd = '/bin/false --flag'",
        "shared_preload_libraries = '/opt/missing/lib.so'",
    ] {
        assert!(out.contains(kept), "{kept}: {out}");
    }
}

#[test]
fn recovery_and_tls_settings_come_after_the_extra_config_and_replace_pgros() {
    let settings = PgroSettings {
        listen_addresses: "*".into(),
        port: 5432,
        socket_dir: "/tmp/pgro".into(),
        major: 16,
        shared_buffers_bytes: None,
        recovery: vec![
            ("hot_standby".into(), "off".into()),
            ("max_connections".into(), "150".into()),
        ],
        tls: vec![("ssl".into(), "on".into())],
    };
    let out = render_pgro(
        &settings,
        Some("hot_standby = on\nmax_connections = 20\nssl = off\n"),
    );
    let parsed = parse(&out).unwrap();
    let last = |name: &str| {
        parsed
            .iter()
            .rev()
            .find(|x| x.name == name)
            .unwrap()
            .value
            .clone()
    };
    assert_eq!(last("hot_standby"), "off");
    assert_eq!(last("max_connections"), "150");
    assert_eq!(last("archive_mode"), "off");
    assert_eq!(last("ssl"), "on", "postgresExtraConfig cannot turn TLS off");
    assert_eq!(
        parsed.iter().filter(|x| x.name == "hot_standby").count(),
        2,
        "pgro's own hot_standby = on is replaced, the user's stays before ours: {out}"
    );
}
