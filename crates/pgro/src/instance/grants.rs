//! I4, per database: what the analytics role may do in one database, as a pure list of statements built from
//! what the database holds, then applied in one transaction.
//!
//! Read-only is enforced by privileges, never by `default_transaction_read_only` alone (a session can switch
//! that off):
//! * the role owns nothing: whatever a pre-existing role of that name owned in the source is reassigned to
//!   `pgro_admin`, and every privilege granted to it is dropped (`REASSIGN OWNED` + `DROP OWNED`);
//! * reading comes from explicit `USAGE`/`SELECT` grants on every user schema, table, view, materialized
//!   view and sequence — not `pg_read_all_data`, which also reads `pg_authid` (every password verifier);
//! * nothing reaches it through PUBLIC: no `CREATE`/`TEMPORARY` on the database (temporary tables fill the
//!   disk), no `CREATE` on schemas, no write privilege on tables or sequences, no `EXECUTE` on the functions
//!   that create or write large objects or read server files, nor on `SECURITY DEFINER` routines of user
//!   schemas (they would run with their owner's rights);
//! * DDL by the role is refused by an event trigger (`_pgro.refuse_ddl`), so even what privileges cannot
//!   express (`ALTER DEFAULT PRIVILEGES` for itself, a `COMMENT` on an object it may not touch) fails —
//!   except inside its persistent schemas (behaviour P1).

use tokio_postgres::Client;

use super::db::quote_ident;
use super::error::{Error, sql};
use super::roles::{ADMIN_ROLE, RolePlan};

/// `pg_catalog` functions whose `EXECUTE` is taken from PUBLIC in a read-only copy: large-object creation and
/// writes (a large object is a disk write any role may otherwise make, even in a read-only session on
/// PostgreSQL 15), and server-side file access (no PUBLIC grant by default; a source may have added one).
pub(crate) const GUARDED_CATALOG_FUNCTIONS: &[&str] = &[
    "lo_create",
    "lo_creat",
    "lo_from_bytea",
    "lo_import",
    "lo_export",
    "lowrite",
    "lo_put",
    "lo_truncate",
    "lo_truncate64",
    "lo_unlink",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
];

/// pgro's own schema (`_pgro.restore_info`, the DDL guard).
const PGRO_SCHEMA: &str = "_pgro";

/// The large-object functions a writable analytics role is given back explicitly.
const LARGE_OBJECT_WRITERS: &[&str] = &[
    "lo_create",
    "lo_creat",
    "lo_from_bytea",
    "lowrite",
    "lo_put",
    "lo_truncate",
    "lo_truncate64",
    "lo_unlink",
];

/// What one database holds, as far as the grants are concerned.
#[derive(Debug, Clone, Default)]
pub(crate) struct DatabaseFacts {
    /// User schemas (not `pg_catalog`, `information_schema`, toast or temp schemas).
    pub(crate) schemas: Vec<String>,
    /// `GUARDED_CATALOG_FUNCTIONS` present in this major, as `regprocedure` text (server-quoted).
    pub(crate) guarded_functions: Vec<String>,
    /// `SECURITY DEFINER` routines in user schemas, as `regprocedure` text (server-quoted).
    pub(crate) definer_routines: Vec<String>,
}

/// The statements for the analytics role `role` in database `dbname`.
pub(crate) fn statements(
    plan: &RolePlan,
    role_name: &str,
    dbname: &str,
    facts: &DatabaseFacts,
    analytics_database: bool,
) -> Vec<String> {
    let role = quote_ident(role_name);
    let db = quote_ident(dbname);
    let mut s = Vec::new();
    if plan.read_only {
        // Ownership is the one privilege no REVOKE removes; the role may have owned tables, schemas or the
        // database itself in the source.
        s.push(format!("REASSIGN OWNED BY {role} TO {ADMIN_ROLE}"));
        s.push(format!("DROP OWNED BY {role}"));
    }
    s.push(format!("GRANT CONNECT ON DATABASE {db} TO {role}"));
    if plan.read_only {
        s.push(format!(
            "REVOKE CREATE, TEMPORARY ON DATABASE {db} FROM PUBLIC, {role}"
        ));
    } else {
        s.push(format!(
            "GRANT CREATE, TEMPORARY ON DATABASE {db} TO {role}"
        ));
    }
    let table_writes = if plan.major >= 17 {
        "INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER, MAINTAIN"
    } else {
        "INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER"
    };
    for name in &facts.schemas {
        if plan.persistent_schemas.contains(name) {
            s.extend(crate::postgres::own_schema_statements(name, role_name));
            continue;
        }
        let q = quote_ident(name);
        // `_pgro` (restore metadata) is read-only for the role in either mode.
        if plan.read_only || name == PGRO_SCHEMA {
            s.push(format!("REVOKE CREATE ON SCHEMA {q} FROM PUBLIC"));
            s.push(format!(
                "REVOKE {table_writes} ON ALL TABLES IN SCHEMA {q} FROM PUBLIC"
            ));
            s.push(format!(
                "REVOKE USAGE, UPDATE ON ALL SEQUENCES IN SCHEMA {q} FROM PUBLIC"
            ));
            s.push(format!("GRANT USAGE ON SCHEMA {q} TO {role}"));
            s.push(format!(
                "GRANT SELECT ON ALL TABLES IN SCHEMA {q} TO {role}"
            ));
            s.push(format!(
                "GRANT SELECT ON ALL SEQUENCES IN SCHEMA {q} TO {role}"
            ));
        } else {
            s.push(format!("GRANT USAGE, CREATE ON SCHEMA {q} TO {role}"));
            s.push(format!("GRANT ALL ON ALL TABLES IN SCHEMA {q} TO {role}"));
            s.push(format!(
                "GRANT ALL ON ALL SEQUENCES IN SCHEMA {q} TO {role}"
            ));
        }
    }
    if plan.read_only {
        for f in facts
            .guarded_functions
            .iter()
            .chain(&facts.definer_routines)
        {
            s.push(format!("REVOKE EXECUTE ON ROUTINE {f} FROM PUBLIC"));
        }
    } else {
        for f in facts.guarded_functions.iter().filter(|f| {
            LARGE_OBJECT_WRITERS
                .iter()
                .any(|w| f.starts_with(&format!("{w}(")))
        }) {
            s.push(format!("GRANT EXECUTE ON ROUTINE {f} TO {role}"));
        }
    }
    if analytics_database {
        for name in plan
            .persistent_schemas
            .iter()
            .filter(|n| !facts.schemas.contains(n))
        {
            s.push(format!(
                "CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {role}",
                quote_ident(name)
            ));
            s.extend(crate::postgres::own_schema_statements(name, role_name));
        }
    }
    s.extend(ddl_guard_statements(plan, role_name));
    s
}

/// The DDL event trigger: installed for a read-only role, removed otherwise. With persistent schemas the
/// check runs at `ddl_command_end`, where each command's schema is known, and allows DDL inside them.
fn ddl_guard_statements(plan: &RolePlan, role_name: &str) -> Vec<String> {
    let mut s = vec!["DROP EVENT TRIGGER IF EXISTS pgro_refuse_ddl".to_string()];
    if !plan.read_only {
        s.push("DROP FUNCTION IF EXISTS _pgro.refuse_ddl()".into());
        return s;
    }
    // Identifiers the API admits contain no quote or backslash, so they are safe inside the literals below.
    let role_lit = format!("'{role_name}'");
    let allowed = plan
        .persistent_schemas
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let (event, body) = if plan.persistent_schemas.is_empty() {
        (
            "ddl_command_start",
            format!(
                "IF session_user = {role_lit} OR current_user = {role_lit} THEN \
                   RAISE EXCEPTION 'permission denied: the analytics role of this read-only copy cannot run %', tg_tag \
                   USING ERRCODE = 'insufficient_privilege'; \
                 END IF;"
            ),
        )
    } else {
        (
            "ddl_command_end",
            format!(
                "IF (session_user = {role_lit} OR current_user = {role_lit}) AND EXISTS ( \
                   SELECT 1 FROM pg_event_trigger_ddl_commands() c \
                   WHERE c.schema_name IS NULL OR c.schema_name NOT IN ({allowed})) THEN \
                   RAISE EXCEPTION 'permission denied: the analytics role of this read-only copy can change only its persistent schemas (%)', tg_tag \
                   USING ERRCODE = 'insufficient_privilege'; \
                 END IF;"
            ),
        )
    };
    s.push("CREATE SCHEMA IF NOT EXISTS _pgro".into());
    s.push(format!(
        "CREATE OR REPLACE FUNCTION _pgro.refuse_ddl() RETURNS event_trigger LANGUAGE plpgsql \
         SET search_path = pg_catalog AS $pgro$ BEGIN {body} END $pgro$"
    ));
    s.push(format!(
        "CREATE EVENT TRIGGER pgro_refuse_ddl ON {event} EXECUTE FUNCTION _pgro.refuse_ddl()"
    ));
    s
}

/// Reads what [`statements`] needs from the connected database.
///
/// # Errors
/// A query failed.
pub(crate) async fn facts(c: &Client) -> Result<DatabaseFacts, Error> {
    let schemas = c
        .query(
            "SELECT nspname::text FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema') \
             AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp\\_%' ORDER BY 1",
            &[],
        )
        .await
        .map_err(sql("listing schemas"))?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    let guarded: Vec<&str> = GUARDED_CATALOG_FUNCTIONS.to_vec();
    let guarded_functions = c
        .query(
            "SELECT p.oid::regprocedure::text FROM pg_proc p \
             WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname::text = ANY($1) ORDER BY 1",
            &[&guarded],
        )
        .await
        .map_err(sql("listing large-object and file functions"))?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    let definer_routines = c
        .query(
            "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema', '_pgro') ORDER BY 1",
            &[],
        )
        .await
        .map_err(sql("listing SECURITY DEFINER routines"))?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    Ok(DatabaseFacts {
        schemas,
        guarded_functions,
        definer_routines,
    })
}

/// Applies the analytics role's privileges in the connected database `dbname`, in one transaction.
///
/// # Errors
/// A statement failed.
pub(crate) async fn apply(
    c: &Client,
    dbname: &str,
    plan: &RolePlan,
    analytics_database: bool,
) -> Result<(), Error> {
    let Some(a) = &plan.analytics else {
        return Ok(());
    };
    let facts = facts(c).await?;
    let stmts = statements(plan, &a.name, dbname, &facts, analytics_database);
    let batch = format!("BEGIN; {}; COMMIT", stmts.join("; "));
    c.batch_execute(&batch)
        .await
        .map_err(sql("applying analytics privileges"))?;
    Ok(())
}

#[cfg(test)]
mod tests;
