//! I3/I4 and the admin channel: source passwords removed, `pgro_admin` (superuser, scram over TCP), the
//! analytics role, and read-only enforced by privileges in every database.

use tokio_postgres::Client;

use super::db::{quote_ident, quote_literal};
use super::error::{Error, sql};
use super::scram;

/// The operator's superuser.
pub(crate) const ADMIN_ROLE: &str = "pgro_admin";

/// The analytics role.
#[derive(Debug, Clone)]
pub(crate) struct Analytics {
    /// Validated against the API's identifier pattern.
    pub(crate) name: String,
    pub(crate) password: String,
}

/// What the roles should look like.
#[derive(Debug, Clone)]
pub(crate) struct RolePlan {
    pub(crate) admin_password: Option<String>,
    pub(crate) analytics: Option<Analytics>,
    pub(crate) read_only: bool,
    pub(crate) major: u32,
    /// Schemas the analytics role owns and may write even when read-only (behaviour P1).
    pub(crate) persistent_schemas: Vec<String>,
}

/// Whether `name` matches `pgro_api::IDENTIFIER_PATTERN` (`^[a-z_][a-z0-9_]{0,62}$`).
pub(crate) fn valid_identifier(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// Whether `name` is a valid identifier and not a reserved role name.
pub(crate) fn valid_role_name(name: &str) -> bool {
    valid_identifier(name)
        && !name.starts_with("pg_")
        && name != ADMIN_ROLE
        && !pgro_api::RESERVED_ROLE_NAMES.contains(&name)
}

/// `PASSWORD '<scram verifier>'`, or the plain password for non-ASCII ones (PostgreSQL's SASLprep
/// normalisation is not reimplemented here); logging is switched off for the session either way.
fn password_clause(password: &str) -> Result<String, Error> {
    let value = if password.is_ascii() {
        let salt = scram::random_salt().map_err(super::error::io("reading", "/dev/urandom"))?;
        scram::verifier(password, &salt)
    } else {
        password.to_string()
    };
    quote_literal(&value)
        .map(|l| format!("PASSWORD {l}"))
        .ok_or(Error::InvalidIdentifier {
            what: "password (backslash)",
            value: String::new(),
            pattern: "no backslash",
        })
}

async fn ensure_role(c: &Client, name: &str) -> Result<(), Error> {
    let exists = c
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
        .await
        .map_err(sql("looking up a role"))?
        .is_some();
    if !exists {
        c.batch_execute(&format!("CREATE ROLE {}", quote_ident(name)))
            .await
            .map_err(sql("creating a role"))?;
    }
    Ok(())
}

/// Cluster-wide role changes (run once, in any database).
///
/// # Errors
/// A statement failed.
pub(crate) async fn apply_cluster(c: &Client, plan: &RolePlan) -> Result<(), Error> {
    // Passwords (even as verifiers) stay out of the server log.
    c.batch_execute("SET log_statement = 'none'; SET log_min_error_statement = 'panic'; SET password_encryption = 'scram-sha-256'")
        .await
        .map_err(sql("setting session options"))?;
    ensure_role(c, ADMIN_ROLE).await?;
    let admin_pw = match &plan.admin_password {
        Some(p) => password_clause(p)?,
        None => "PASSWORD NULL".into(),
    };
    c.batch_execute(&format!(
        "ALTER ROLE {ADMIN_ROLE} WITH SUPERUSER LOGIN {admin_pw}"
    ))
    .await
    .map_err(sql("configuring pgro_admin"))?;

    let keep: Vec<&str> = std::iter::once(ADMIN_ROLE)
        .chain(plan.analytics.as_ref().map(|a| a.name.as_str()))
        .collect();
    let rows = c
        .query(
            "SELECT rolname::text FROM pg_authid WHERE rolpassword IS NOT NULL AND rolname::text <> ALL($1)",
            &[&keep],
        )
        .await
        .map_err(sql("listing roles with passwords"))?;
    for row in rows {
        let name: String = row.get(0);
        c.batch_execute(&format!("ALTER ROLE {} PASSWORD NULL", quote_ident(&name)))
            .await
            .map_err(sql("removing a source password"))?;
        tracing::info!(role = %name, "source password removed");
    }

    let Some(a) = &plan.analytics else {
        return Ok(());
    };
    ensure_role(c, &a.name).await?;
    let role = quote_ident(&a.name);
    c.batch_execute(&format!(
        "ALTER ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT {}",
        password_clause(&a.password)?
    ))
    .await
    .map_err(sql("configuring the analytics role"))?;
    // Memberships the source gave this name could carry write privileges: only ours remain.
    let member_of = c
        .query(
            "SELECT r.rolname::text FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid \
             JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = $1",
            &[&a.name],
        )
        .await
        .map_err(sql("listing memberships"))?;
    let wanted: &[&str] = match (plan.read_only, plan.major >= 14) {
        (true, true) => &["pg_read_all_data"],
        (false, true) => &["pg_read_all_data", "pg_write_all_data"],
        (_, false) => &[],
    };
    for row in member_of {
        let r: String = row.get(0);
        if !wanted.contains(&r.as_str()) {
            c.batch_execute(&format!("REVOKE {} FROM {role}", quote_ident(&r)))
                .await
                .map_err(sql("revoking a membership"))?;
        }
    }
    for r in wanted {
        c.batch_execute(&format!("GRANT {r} TO {role}"))
            .await
            .map_err(sql("granting a predefined role"))?;
    }
    // With persistent schemas the role must write there without `SET`; privileges keep everything else
    // read-only.
    let setting = if plan.read_only && plan.persistent_schemas.is_empty() {
        format!("ALTER ROLE {role} SET default_transaction_read_only = on")
    } else {
        format!("ALTER ROLE {role} RESET default_transaction_read_only")
    };
    c.batch_execute(&setting)
        .await
        .map_err(sql("setting default_transaction_read_only"))?;
    Ok(())
}

/// Per-database privileges for the analytics role, run connected to `dbname`.
///
/// Read-only: no CREATE on the database or any schema, and no write privilege on any table or sequence,
/// for the role and for PUBLIC (a grant to PUBLIC would reach it too); reading comes from
/// `pg_read_all_data` (>= 14) or, on older majors, SELECT grants per schema. Writable: CREATE on the
/// database and schemas and all privileges on tables and sequences. Persistent schemas are the role's own
/// in every database that has them, and are created in `analytics_database` when missing (P1).
///
/// # Errors
/// A statement failed.
pub(crate) async fn apply_database(
    c: &Client,
    dbname: &str,
    plan: &RolePlan,
    analytics_database: bool,
) -> Result<(), Error> {
    let Some(a) = &plan.analytics else {
        return Ok(());
    };
    let role = quote_ident(&a.name);
    let db = quote_ident(dbname);
    let schemas = c
        .query(
            "SELECT nspname::text FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema') \
             AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp\\_%' ORDER BY 1",
            &[],
        )
        .await
        .map_err(sql("listing schemas"))?;
    let schemas: Vec<String> = schemas.iter().map(|r| r.get::<_, String>(0)).collect();
    let mut stmts = vec![format!("GRANT CONNECT ON DATABASE {db} TO {role}")];
    if plan.read_only {
        stmts.push(format!(
            "REVOKE CREATE ON DATABASE {db} FROM PUBLIC, {role}"
        ));
    } else {
        stmts.push(format!("GRANT CREATE ON DATABASE {db} TO {role}"));
    }
    for name in &schemas {
        if plan.persistent_schemas.contains(name) {
            stmts.extend(crate::postgres::own_schema_statements(name, &a.name));
            continue;
        }
        let s = quote_ident(name);
        if plan.read_only {
            stmts.push(format!("REVOKE CREATE ON SCHEMA {s} FROM PUBLIC, {role}"));
            stmts.push(format!(
                "REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA {s} FROM PUBLIC, {role}"
            ));
            stmts.push(format!(
                "REVOKE USAGE, UPDATE ON ALL SEQUENCES IN SCHEMA {s} FROM PUBLIC, {role}"
            ));
            if plan.major < 14 {
                stmts.push(format!("GRANT USAGE ON SCHEMA {s} TO {role}"));
                stmts.push(format!(
                    "GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {role}"
                ));
                stmts.push(format!(
                    "GRANT SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {role}"
                ));
            }
        } else {
            stmts.push(format!("GRANT USAGE, CREATE ON SCHEMA {s} TO {role}"));
            stmts.push(format!("GRANT ALL ON ALL TABLES IN SCHEMA {s} TO {role}"));
            stmts.push(format!(
                "GRANT ALL ON ALL SEQUENCES IN SCHEMA {s} TO {role}"
            ));
        }
    }
    if analytics_database {
        for name in plan
            .persistent_schemas
            .iter()
            .filter(|n| !schemas.contains(n))
        {
            stmts.push(format!(
                "CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {role}",
                quote_ident(name)
            ));
            stmts.extend(crate::postgres::own_schema_statements(name, &a.name));
        }
    }
    let batch = format!("BEGIN; {}; COMMIT", stmts.join("; "));
    c.batch_execute(&batch)
        .await
        .map_err(sql("applying analytics privileges"))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn role_names_follow_the_api_pattern() {
        let re = regex::Regex::new(pgro_api::IDENTIFIER_PATTERN).unwrap();
        for n in [
            "analytics",
            "_a1",
            "a",
            "x".repeat(63).as_str(),
            "A",
            "1a",
            "a-b",
            "",
            "x".repeat(64).as_str(),
            "é",
        ] {
            let reserved = n.starts_with("pg_")
                || pgro_api::RESERVED_ROLE_NAMES.contains(&n)
                || n == ADMIN_ROLE;
            assert_eq!(valid_role_name(n), re.is_match(n) && !reserved, "{n}");
        }
        assert!(!valid_role_name("pg_read_all_data"));
        assert!(!valid_role_name(ADMIN_ROLE));
    }
}
