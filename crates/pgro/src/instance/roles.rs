//! I3/I4 and the admin channel, cluster-wide: source passwords removed, `pgro_admin` (superuser, scram over
//! TCP), and the analytics role — a pre-existing role of that name made a plain login role with no
//! memberships, limits, expiry or settings of its own. Per-database privileges are in `grants.rs`; what the
//! role may change about itself is watched by `guard.rs`.

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

/// Cluster-wide role changes (run once, in any database); returns the analytics role's fingerprint for
/// the guard.
///
/// # Errors
/// A statement failed.
pub(crate) async fn apply_cluster(
    c: &Client,
    plan: &RolePlan,
) -> Result<Option<Fingerprint>, Error> {
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
        return Ok(None);
    };
    ensure_role(c, &a.name).await?;
    let role = quote_ident(&a.name);
    // A role of this name may already exist in the source, with a connection limit of 0, an expiry in the
    // past or its own settings (`default_transaction_read_only = off` per database wins over a role-wide
    // setting): all are reset, so the analytics login works and reads the defaults set here.
    c.batch_execute(&format!(
        "ALTER ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT \
         CONNECTION LIMIT -1 VALID UNTIL 'infinity' {}",
        password_clause(&a.password)?
    ))
    .await
    .map_err(sql("configuring the analytics role"))?;
    reset_settings(c, &a.name, plan).await?;
    revoke_memberships(c, &a.name, plan.major).await?;
    Ok(Some(fingerprint(c, &a.name).await?))
}

/// Drops every setting of the role, role-wide and per database, then sets pgro's: read-only sessions by
/// default, unless persistent schemas need writes without `SET` (privileges keep everything else
/// read-only).
async fn reset_settings(c: &Client, name: &str, plan: &RolePlan) -> Result<(), Error> {
    let rows = c
        .query(
            "SELECT d.datname::text FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole \
             LEFT JOIN pg_database d ON d.oid = s.setdatabase WHERE r.rolname = $1",
            &[&name],
        )
        .await
        .map_err(sql("listing the analytics role's settings"))?;
    let role = quote_ident(name);
    for row in rows {
        let stmt = match row.get::<_, Option<String>>(0) {
            None => format!("ALTER ROLE {role} RESET ALL"),
            Some(db) => format!(
                "ALTER ROLE {role} IN DATABASE {} RESET ALL",
                quote_ident(&db)
            ),
        };
        c.batch_execute(&stmt)
            .await
            .map_err(sql("resetting the analytics role's settings"))?;
    }
    if plan.read_only && plan.persistent_schemas.is_empty() {
        c.batch_execute(&format!(
            "ALTER ROLE {role} SET default_transaction_read_only = on"
        ))
        .await
        .map_err(sql("setting default_transaction_read_only"))?;
    }
    Ok(())
}

/// Revokes every role membership the source gave this name (a member of a writing role could `SET ROLE`
/// to it). Reading comes from grants per database, never from `pg_read_all_data`, which also reads
/// `pg_authid`. Since PostgreSQL 16 a membership is one row per grantor, each revoked by name.
async fn revoke_memberships(c: &Client, name: &str, major: u32) -> Result<(), Error> {
    let rows = c
        .query(
            "SELECT r.rolname::text, g.rolname::text FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid \
             JOIN pg_roles u ON u.oid = m.member LEFT JOIN pg_roles g ON g.oid = m.grantor WHERE u.rolname = $1",
            &[&name],
        )
        .await
        .map_err(sql("listing memberships"))?;
    let role = quote_ident(name);
    for row in rows {
        let granted: String = row.get(0);
        let stmt = match row.get::<_, Option<String>>(1) {
            Some(grantor) if major >= 16 => format!(
                "REVOKE {} FROM {role} GRANTED BY {} CASCADE",
                quote_ident(&granted),
                quote_ident(&grantor)
            ),
            _ => format!("REVOKE {} FROM {role}", quote_ident(&granted)),
        };
        c.batch_execute(&stmt)
            .await
            .map_err(sql("revoking a membership"))?;
    }
    Ok(())
}

/// What the analytics role itself can change about itself (its password verifier, its settings), as one
/// comparable value: `ALTER ROLE <self> PASSWORD …` and `ALTER ROLE <self> [IN DATABASE …] SET …` need no
/// privilege, so the guard compares this value and restores it (`guard.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    pub(crate) role: String,
    pub(crate) verifier: Option<String>,
    pub(crate) settings: String,
}

/// Reads the role's current [`Fingerprint`].
///
/// # Errors
/// The query failed.
pub(crate) async fn fingerprint(c: &Client, name: &str) -> Result<Fingerprint, Error> {
    let row = c
        .query_one(
            "SELECT a.rolpassword::text, coalesce((SELECT string_agg(s.setdatabase::text || '=' || \
             array_to_string(s.setconfig, ','), ';' ORDER BY s.setdatabase) FROM pg_db_role_setting s \
             WHERE s.setrole = a.oid), '') FROM pg_authid a WHERE a.rolname = $1",
            &[&name],
        )
        .await
        .map_err(sql("reading the analytics role"))?;
    Ok(Fingerprint {
        role: name.to_string(),
        verifier: row.get(0),
        settings: row.get(1),
    })
}

/// Puts the role back as `want` records it: the same password verifier (clients keep working) and only the
/// settings pgro made.
///
/// # Errors
/// A statement failed.
pub(crate) async fn restore(c: &Client, want: &Fingerprint, plan: &RolePlan) -> Result<(), Error> {
    c.batch_execute("SET log_statement = 'none'; SET log_min_error_statement = 'panic'")
        .await
        .map_err(sql("setting session options"))?;
    let role = quote_ident(&want.role);
    let password = match want.verifier.as_deref().and_then(quote_literal) {
        Some(v) => format!("PASSWORD {v}"),
        None => "PASSWORD NULL".into(),
    };
    c.batch_execute(&format!("ALTER ROLE {role} {password}"))
        .await
        .map_err(sql("restoring the analytics password"))?;
    reset_settings(c, &want.role, plan).await
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
