use super::*;
use crate::instance::roles::Analytics;

fn plan(read_only: bool, major: u32, persistent: &[&str]) -> RolePlan {
    RolePlan {
        admin_password: None,
        analytics: Some(Analytics {
            name: "analytics".into(),
            password: "pw".into(),
        }),
        read_only,
        major,
        persistent_schemas: persistent.iter().map(|s| (*s).to_string()).collect(),
    }
}

fn facts() -> DatabaseFacts {
    DatabaseFacts {
        schemas: vec!["_pgro".into(), "public".into(), "Sales".into()],
        guarded_functions: vec![
            "lo_creat(integer)".into(),
            "lo_create(oid)".into(),
            "pg_read_file(text)".into(),
        ],
        definer_routines: vec!["public.bump(integer)".into()],
    }
}

#[test]
fn read_only_role_owns_nothing_and_reads_every_user_schema() {
    let s = statements(&plan(true, 16, &[]), "analytics", "app", &facts(), false);
    assert_eq!(s[0], "REASSIGN OWNED BY \"analytics\" TO pgro_admin");
    assert_eq!(s[1], "DROP OWNED BY \"analytics\"");
    for schema in ["\"public\"", "\"Sales\"", "\"_pgro\""] {
        assert!(s.contains(&format!("GRANT USAGE ON SCHEMA {schema} TO \"analytics\"")));
        assert!(s.contains(&format!(
            "GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO \"analytics\""
        )));
        assert!(s.contains(&format!("REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC")));
    }
    assert!(!s.iter().any(|x| x.contains("pg_read_all_data")));
}

#[test]
fn read_only_role_gets_no_temporary_tables_large_objects_or_definer_routines() {
    let s = statements(&plan(true, 15, &[]), "analytics", "app", &facts(), false);
    assert!(s.contains(
        &"REVOKE CREATE, TEMPORARY ON DATABASE \"app\" FROM PUBLIC, \"analytics\"".to_string()
    ));
    for f in [
        "lo_creat(integer)",
        "lo_create(oid)",
        "pg_read_file(text)",
        "public.bump(integer)",
    ] {
        assert!(
            s.contains(&format!("REVOKE EXECUTE ON ROUTINE {f} FROM PUBLIC")),
            "{f}: {s:#?}"
        );
    }
    assert!(
        s.iter()
            .any(|x| x.starts_with("CREATE EVENT TRIGGER pgro_refuse_ddl ON ddl_command_start"))
    );
}

#[test]
fn maintain_is_revoked_from_public_on_17_and_later_only() {
    let s17 = statements(&plan(true, 17, &[]), "analytics", "app", &facts(), false);
    let s16 = statements(&plan(true, 16, &[]), "analytics", "app", &facts(), false);
    assert!(s17.iter().any(|x| x.contains("MAINTAIN")));
    assert!(!s16.iter().any(|x| x.contains("MAINTAIN")));
}

#[test]
fn writable_role_keeps_temporary_tables_and_large_objects_and_no_ddl_guard() {
    let s = statements(&plan(false, 16, &[]), "analytics", "app", &facts(), false);
    assert!(
        !s.iter()
            .any(|x| x.starts_with("REASSIGN") || x.starts_with("DROP OWNED"))
    );
    assert!(
        s.contains(&"GRANT CREATE, TEMPORARY ON DATABASE \"app\" TO \"analytics\"".to_string())
    );
    assert!(s.contains(&"GRANT EXECUTE ON ROUTINE lo_create(oid) TO \"analytics\"".to_string()));
    assert!(!s.iter().any(|x| x.contains("pg_read_file")));
    assert!(
        s.contains(&"GRANT ALL ON ALL TABLES IN SCHEMA \"public\" TO \"analytics\"".to_string())
    );
    // pgro's metadata stays read-only even for a writable role.
    assert!(
        !s.iter()
            .any(|x| x.contains("GRANT ALL ON ALL TABLES IN SCHEMA \"_pgro\""))
    );
    assert!(s.contains(&"DROP EVENT TRIGGER IF EXISTS pgro_refuse_ddl".to_string()));
    assert!(!s.iter().any(|x| x.starts_with("CREATE EVENT TRIGGER")));
}

#[test]
fn persistent_schemas_are_owned_and_exempt_from_the_ddl_guard() {
    let s = statements(
        &plan(true, 16, &["scratch"]),
        "analytics",
        "postgres",
        &facts(),
        true,
    );
    assert!(s.contains(
        &"CREATE SCHEMA IF NOT EXISTS \"scratch\" AUTHORIZATION \"analytics\"".to_string()
    ));
    assert!(s.contains(&"ALTER SCHEMA \"scratch\" OWNER TO \"analytics\"".to_string()));
    let guard = s
        .iter()
        .find(|x| x.starts_with("CREATE OR REPLACE FUNCTION _pgro.refuse_ddl()"))
        .expect("guard function");
    assert!(guard.contains("NOT IN ('scratch')"), "{guard}");
    assert!(
        s.iter()
            .any(|x| x.starts_with("CREATE EVENT TRIGGER pgro_refuse_ddl ON ddl_command_end"))
    );
    // Ownership is re-established after REASSIGN OWNED takes it away.
    let reassign = s
        .iter()
        .position(|x| x.starts_with("REASSIGN"))
        .expect("reassign");
    let own = s
        .iter()
        .position(|x| x.starts_with("ALTER SCHEMA \"scratch\""))
        .expect("own");
    assert!(reassign < own);
}
