//! I6: databases whose locale the image lacks are switched to `C.UTF-8` (PostgreSQL refuses connections to
//! them otherwise), and their collation-dependent indexes are rebuilt; collation version mismatches are
//! refreshed after rebuilding.

use std::ffi::CString;

use tokio_postgres::Client;

use super::db::{quote_ident, quote_literal};
use super::error::{Error, sql};

/// Whether glibc can load `name` for collation and ctype (thread-safe `newlocale`, unlike `setlocale`).
#[allow(unsafe_code)] // newlocale/freelocale: no safe wrapper in our dependencies
pub(crate) fn available(name: &str) -> bool {
    if matches!(name, "C" | "POSIX") {
        return true;
    }
    let Ok(c) = CString::new(name) else {
        return false;
    };
    use nix::libc;
    // SAFETY: `c` is a valid NUL-terminated string; a non-null result is freed right away.
    unsafe {
        let loc = libc::newlocale(
            libc::LC_COLLATE_MASK | libc::LC_CTYPE_MASK,
            c.as_ptr(),
            std::ptr::null_mut(),
        );
        if loc.is_null() {
            false
        } else {
            libc::freelocale(loc);
            true
        }
    }
}

/// The locale a database is switched to: `C.UTF-8` for UTF-8 databases when the image has it, else `C`.
pub(crate) fn replacement(encoding: &str, c_utf8_available: bool) -> &'static str {
    if encoding.eq_ignore_ascii_case("UTF8") && c_utf8_available {
        "C.UTF-8"
    } else {
        "C"
    }
}

/// A database whose locale was switched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Switched {
    pub(crate) database: String,
    pub(crate) from: String,
    pub(crate) to: &'static str,
}

/// Switches every database whose `datcollate`/`datctype` is not available here (run connected to any
/// database as a superuser).
///
/// # Errors
/// A statement failed.
pub(crate) async fn switch_unavailable(c: &Client) -> Result<Vec<Switched>, Error> {
    let rows = c
        .query(
            "SELECT datname::text, datcollate::text, datctype::text, pg_encoding_to_char(encoding)::text FROM pg_database",
            &[],
        )
        .await
        .map_err(sql("listing database locales"))?;
    let c_utf8 = available("C.UTF-8");
    let mut out = Vec::new();
    for row in rows {
        let (db, collate, ctype, enc): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        if available(&collate) && available(&ctype) {
            continue;
        }
        let to = replacement(&enc, c_utf8);
        let lit = quote_literal(to).unwrap_or_else(|| "'C'".into());
        c.execute(
            &format!(
                "UPDATE pg_database SET datcollate = {lit}, datctype = {lit} WHERE datname = $1"
            ),
            &[&db],
        )
        .await
        .map_err(sql("switching a database locale"))?;
        tracing::warn!(database = %db, from = %collate, to, "database locale not available in this image; switched");
        out.push(Switched {
            database: db,
            from: collate,
            to,
        });
    }
    Ok(out)
}

/// Databases whose recorded collation version differs from the library's (PostgreSQL >= 15).
///
/// # Errors
/// The query failed.
pub(crate) async fn version_mismatches(c: &Client, major: u32) -> Result<Vec<String>, Error> {
    if major < 15 {
        return Ok(Vec::new());
    }
    let rows = c
        .query(
            "SELECT datname::text FROM pg_database WHERE datallowconn \
             AND datcollversion IS DISTINCT FROM pg_database_collation_actual_version(oid)",
            &[],
        )
        .await
        .map_err(sql("comparing collation versions"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Rebuilds the indexes whose keys use a collation other than `C`/`POSIX` (run connected to the database).
/// Returns how many it rebuilt.
///
/// # Errors
/// A statement failed.
pub(crate) async fn reindex_collation_dependent(c: &Client) -> Result<usize, Error> {
    let rows = c
        .query(
            "SELECT DISTINCT i.indexrelid::regclass::text FROM pg_index i \
             CROSS JOIN LATERAL unnest(i.indcollation::oid[]) AS k(coll) \
             JOIN pg_collation co ON co.oid = k.coll \
             WHERE co.collname NOT IN ('C', 'POSIX', 'ucs_basic') \
             AND i.indexrelid NOT IN (SELECT oid FROM pg_class WHERE relnamespace = 'pg_catalog'::regnamespace)",
            &[],
        )
        .await
        .map_err(sql("listing collation-dependent indexes"))?;
    for r in &rows {
        let name: String = r.get(0);
        // regclass text is already quoted where needed.
        c.batch_execute(&format!("REINDEX INDEX {name}"))
            .await
            .map_err(sql("reindexing"))?;
    }
    Ok(rows.len())
}

/// Records the current library's collation versions for the database and its collations (>= 15; after
/// the indexes were rebuilt).
///
/// # Errors
/// A statement failed.
pub(crate) async fn refresh_versions(c: &Client, dbname: &str, major: u32) -> Result<(), Error> {
    if major < 15 {
        return Ok(());
    }
    c.batch_execute(&format!(
        "ALTER DATABASE {} REFRESH COLLATION VERSION",
        quote_ident(dbname)
    ))
    .await
    .map_err(sql("refreshing the database collation version"))?;
    let rows = c
        .query(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(co.collname) FROM pg_collation co \
             JOIN pg_namespace n ON n.oid = co.collnamespace \
             WHERE co.collversion IS NOT NULL AND co.collversion IS DISTINCT FROM pg_collation_actual_version(co.oid)",
            &[],
        )
        .await;
    // Collations for locales the image lacks cannot report a version; leave them alone.
    if let Ok(rows) = rows {
        for r in rows {
            let name: String = r.get(0);
            if let Err(e) = c
                .batch_execute(&format!("ALTER COLLATION {name} REFRESH VERSION"))
                .await
            {
                tracing::warn!(collation = %name, error = %e, "refreshing a collation version failed");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn c_locales_are_always_available_and_nonsense_is_not() {
        assert!(available("C"));
        assert!(available("POSIX"));
        assert!(!available("xx_NOPE.UTF-8"));
        assert!(!available("bad\0name"));
    }

    #[test]
    fn utf8_databases_get_c_utf8_others_c() {
        assert_eq!(replacement("UTF8", true), "C.UTF-8");
        assert_eq!(replacement("UTF8", false), "C");
        assert_eq!(replacement("LATIN1", true), "C");
    }
}
