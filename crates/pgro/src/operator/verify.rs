//! Verification of a new restore before it serves (`spec.verification`): the built-in checks and the
//! user's SQL checks, run by the operator as `pgro_admin` over the restore's own Service, like
//! [`super::admin_sql`]. The operator image has no PostgreSQL client programs, so `amcheck` is driven with
//! the same functions `pg_amcheck` calls (see [`amcheck`]).
//!
//! A user check runs as one statement (a prepared statement cannot hold two), in a read-only transaction,
//! under `SET ROLE pg_read_all_data` and a `statement_timeout`: it reads what it likes and writes nothing.

pub mod amcheck;

use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use pgro_api::{
    Amcheck, CHECK_APPLICATION_DATABASE, CheckResult, Verification, VerificationCheck,
    VerificationStatus,
};
use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::types::Type;

use super::admin_sql;
use super::context::Context;
use super::error::Result;
use crate::restore::truncate;

/// Longest `value`/`detail`/`message` kept in a check's result (the status has to stay small).
const TEXT_MAX: usize = 300;

/// Whether the replica asks for any verification at all.
#[must_use]
pub fn configured(v: Option<&Verification>) -> bool {
    v.is_some_and(|v| !v.checks.is_empty() || v.require_application_database || v.amcheck.is_some())
}

/// A duration of `spec.verification`, or `default` (the API's) when it does not parse, which admission
/// prevents.
fn spec_duration(field: &'static str, value: &str, default: Duration) -> Duration {
    crate::operator::duration::parse(field, value)
        .ok()
        .and_then(|d| Duration::try_from(d).ok())
        .unwrap_or(default)
}

/// How long a check's statement may run.
#[must_use]
pub fn check_timeout(check: &VerificationCheck) -> Duration {
    spec_duration("timeout", &check.timeout, Duration::from_secs(60))
}

/// How long amcheck may take over all databases.
#[must_use]
pub fn amcheck_budget(options: &Amcheck) -> Duration {
    spec_duration(
        "amcheck.timeout",
        &options.timeout,
        Duration::from_secs(1800),
    )
}

/// The most the checks may take together: every check's timeout and amcheck's budget.
#[must_use]
pub fn budget(spec: &Verification) -> Duration {
    let checks: Duration = spec.checks.iter().map(check_timeout).sum();
    checks + spec.amcheck.as_ref().map_or(Duration::ZERO, amcheck_budget)
}

/// The restore the checks run on.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Namespace.
    pub ns: &'a str,
    /// The replica (its `<replica>-admin` Secret holds the password).
    pub replica: &'a str,
    /// The restore (its Service reaches the instance).
    pub restore: &'a str,
}

/// Runs every check in order, stopping at the first failure. `None` when the instance cannot be reached
/// (its Service has no address yet, or the connection is refused): the caller tries again later.
///
/// # Errors
///
/// API errors reading the Service or the admin Secret.
pub async fn run(
    ctx: &Context,
    t: Target<'_>,
    spec: &Verification,
) -> Result<Option<VerificationStatus>> {
    let started = Timestamp::now();
    let Ok(Some(probe)) =
        admin_sql::connect(ctx, t.ns, t.replica, t.restore).await.inspect_err(
            |e| tracing::info!(restore = %t.restore, error = %e, "verification waits for the instance"),
        )
    else {
        return Ok(None);
    };
    let mut checks = Vec::new();
    let mut all = true;
    if spec.require_application_database {
        let r = application_database(&probe).await;
        all &= r.passed;
        checks.push(r);
    }
    drop(probe);
    for check in &spec.checks {
        if !all {
            break;
        }
        let r = sql_check(ctx, t, check).await?;
        all &= r.passed;
        checks.push(r);
    }
    if all && let Some(options) = &spec.amcheck {
        let r = amcheck::run(ctx, t, options).await?;
        all &= r.passed;
        checks.push(r);
    }
    Ok(Some(VerificationStatus {
        started_at: Some(Time(started)),
        completed_at: Some(Time(Timestamp::now())),
        passed: Some(all),
        checks,
    }))
}

/// `requireApplicationDatabase`: some database other than PostgreSQL's own exists.
async fn application_database(c: &tokio_postgres::Client) -> CheckResult {
    let began = Instant::now();
    let found = c
        .query(
            "SELECT datname FROM pg_database \
             WHERE datname NOT IN ('postgres', 'template0', 'template1') ORDER BY datname",
            &[],
        )
        .await
        .map(|rows| {
            rows.iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
        });
    let seconds = began.elapsed().as_secs_f64();
    match found {
        Ok(names) if names.is_empty() => CheckResult {
            name: CHECK_APPLICATION_DATABASE.into(),
            passed: false,
            value: Some("none".into()),
            message: Some(
                "the restore holds only PostgreSQL's own databases (postgres, template0, template1): \
                 is the backup of the right cluster?"
                    .into(),
            ),
            seconds,
            ..CheckResult::default()
        },
        Ok(names) => CheckResult {
            name: CHECK_APPLICATION_DATABASE.into(),
            passed: true,
            value: Some(truncate(&names.join(", "), TEXT_MAX)),
            seconds,
            ..CheckResult::default()
        },
        Err(e) => failed(CHECK_APPLICATION_DATABASE, &db_error(&e), seconds),
    }
}

/// A failed check with a message.
fn failed(name: &str, message: &str, seconds: f64) -> CheckResult {
    CheckResult {
        name: name.into(),
        passed: false,
        message: Some(truncate(message, TEXT_MAX)),
        seconds,
        ..CheckResult::default()
    }
}

/// A driver error as the server said it (`ERROR: relation "orders" does not exist`), not Rust's debug form.
pub(crate) fn db_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

/// One user check, in its own session.
async fn sql_check(ctx: &Context, t: Target<'_>, check: &VerificationCheck) -> Result<CheckResult> {
    let began = Instant::now();
    let timeout = check_timeout(check);
    let client = match admin_sql::connect_to(ctx, t.ns, t.replica, t.restore, &check.database).await
    {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Ok(failed(&check.name, "the instance has no address", 0.0));
        }
        Err(super::error::Error::Postgres { source, .. }) => {
            return Ok(failed(
                &check.name,
                &format!(
                    "cannot connect to database {:?}: {}",
                    check.database,
                    db_error(&source)
                ),
                began.elapsed().as_secs_f64(),
            ));
        }
        Err(e) => return Err(e),
    };
    let outcome = tokio::time::timeout(timeout + Duration::from_secs(5), async {
        let ms = timeout.as_millis().max(1);
        client
            .batch_execute(&format!(
                "SET default_transaction_read_only = on; SET statement_timeout = {ms}; \
                 SET ROLE pg_read_all_data"
            ))
            .await?;
        // Preparing refuses more than one statement and tells the first column's type.
        let prepared = client.prepare(&check.sql).await?;
        let first = prepared.columns().first().map(|c| c.type_().clone());
        let names: Vec<String> = prepared
            .columns()
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        // Through a cursor, at most two rows come back (enough to tell "exactly one"): a check that
        // selects millions of rows cannot fill the operator's memory. Prepare showed the text is one
        // statement, so it stays one behind `FOR`.
        client
            .batch_execute(&format!(
                "BEGIN READ ONLY; DECLARE pgro_check NO SCROLL CURSOR FOR {}",
                check.sql
            ))
            .await?;
        let rows: Vec<Vec<Option<String>>> = client
            .simple_query("FETCH 2 FROM pgro_check")
            .await?
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
                }
                _ => None,
            })
            .collect();
        Ok::<_, tokio_postgres::Error>((first, names, rows))
    })
    .await;
    let seconds = began.elapsed().as_secs_f64();
    Ok(match outcome {
        Err(_) => failed(
            &check.name,
            &format!("did not finish within its timeout of {}", check.timeout),
            seconds,
        ),
        Ok(Err(e)) => failed(&check.name, &db_error(&e), seconds),
        Ok(Ok((first, names, rows))) => judge(&check.name, first.as_ref(), &names, &rows, seconds),
    })
}

/// Whether a check's result passes: exactly one row whose first column is a boolean `true`. `rows` holds
/// at most the first two.
#[must_use]
pub fn judge(
    name: &str,
    first: Option<&Type>,
    columns: &[String],
    rows: &[Vec<Option<String>>],
    seconds: f64,
) -> CheckResult {
    let Some(ty) = first else {
        return failed(
            name,
            "the statement returns no columns; write a query such as SELECT count(*) > 1000 FROM orders",
            seconds,
        );
    };
    if *ty != Type::BOOL {
        return failed(
            name,
            &format!(
                "the first column is of type {ty}, not boolean; write a condition such as \
                 SELECT count(*) > 1000 FROM orders"
            ),
            seconds,
        );
    }
    let [row] = rows else {
        let count = if rows.is_empty() {
            "0 rows"
        } else {
            "more than one row"
        };
        return failed(
            name,
            &format!("returned {count}; a check must return exactly one"),
            seconds,
        );
    };
    let value = match row.first().cloned().flatten().as_deref() {
        Some("t") => "true",
        Some("f") => "false",
        Some(_) | None => "NULL",
    };
    let detail = (row.len() > 1).then(|| {
        let parts: Vec<String> = columns
            .iter()
            .zip(row)
            .skip(1)
            .map(|(c, v)| format!("{c}={}", v.as_deref().unwrap_or("NULL")))
            .collect();
        truncate(&parts.join(", "), TEXT_MAX)
    });
    let passed = value == "true";
    CheckResult {
        name: name.into(),
        passed,
        value: Some(value.into()),
        detail,
        message: (!passed).then(|| format!("returned {value}")),
        seconds,
    }
}

/// The failed check's one-line account for the `Failed` condition, the event and the history.
#[must_use]
pub fn failure_line(c: &CheckResult) -> String {
    let mut line = format!("check {}", c.name);
    if let Some(m) = &c.message {
        line.push_str(": ");
        line.push_str(m);
    }
    if let Some(d) = &c.detail {
        line.push_str(&format!(" ({d})"));
    }
    line
}

#[cfg(test)]
mod tests;
