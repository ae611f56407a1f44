//! The `amcheck` verification: every table (`verify_heapam`) and every valid B-tree index (`bt_index_check`,
//! optionally `heapallindexed`) of every database, the functions `pg_amcheck` itself calls. Where the
//! extension is not installed it is created in a schema of its own (`_pgro_amcheck`) for the run and
//! dropped afterwards, so the copy ends as the backup had it; one left in that schema by an interrupted
//! run is dropped by the next. Corruption is reported per relation and does not stop the run; the
//! time budget does.

use std::time::{Duration, Instant};

use pgro_api::{Amcheck, CHECK_AMCHECK, CheckResult};

use super::{TEXT_MAX, Target, db_error, failed};
use crate::operator::admin_sql;
use crate::operator::context::Context;
use crate::operator::error::Result;
use crate::postgres::quote_ident;
use crate::restore::truncate;

/// The schema the extension is created in when the database does not have it.
const SCHEMA: &str = "_pgro_amcheck";
/// Findings kept in the result's message.
const FINDINGS_MAX: usize = 5;

/// What one run found.
#[derive(Debug, Default)]
struct Tally {
    relations: u64,
    findings: Vec<String>,
    corrupt: u64,
}

/// Runs amcheck over every database that accepts connections.
///
/// # Errors
///
/// API errors reading the Service or the admin Secret.
pub async fn run(ctx: &Context, t: Target<'_>, options: &Amcheck) -> Result<CheckResult> {
    let began = Instant::now();
    let budget = super::amcheck_budget(options);
    let Some(c) = admin_sql::connect(ctx, t.ns, t.replica, t.restore)
        .await
        .ok()
        .flatten()
    else {
        return Ok(failed(CHECK_AMCHECK, "the instance cannot be reached", 0.0));
    };
    let databases: Vec<String> = match c
        .query(
            "SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname",
            &[],
        )
        .await
    {
        Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
        Err(e) => return Ok(failed(CHECK_AMCHECK, &db_error(&e), 0.0)),
    };
    drop(c);
    let mut tally = Tally::default();
    let run = async {
        for db in &databases {
            let Some(c) = admin_sql::connect_to(ctx, t.ns, t.replica, t.restore, db)
                .await
                .ok()
                .flatten()
            else {
                tally.note(db, "", "cannot connect");
                continue;
            };
            let left = budget.saturating_sub(began.elapsed());
            if let Err(e) = database(&c, db, options.heapallindexed, left, &mut tally).await {
                let mut what = db_error(&e);
                if e.as_db_error().map(tokio_postgres::error::DbError::code)
                    == Some(&tokio_postgres::error::SqlState::UNDEFINED_FILE)
                {
                    what.push_str(
                        " (the image's PostgreSQL lacks the contrib module amcheck: use an image \
                         that has it, or remove amcheck from spec.verification)",
                    );
                }
                tally.note(db, "", &what);
            }
        }
    };
    let in_time = tokio::time::timeout(budget, run).await.is_ok();
    let seconds = began.elapsed().as_secs_f64();
    let value = format!(
        "{} relations in {} databases checked, {} with findings",
        tally.relations,
        databases.len(),
        tally.corrupt
    );
    if !in_time {
        return Ok(CheckResult {
            value: Some(value),
            ..failed(
                CHECK_AMCHECK,
                &format!(
                    "did not finish within its budget of {} (raise amcheck.timeout)",
                    options.timeout
                ),
                seconds,
            )
        });
    }
    let passed = tally.findings.is_empty();
    Ok(CheckResult {
        name: CHECK_AMCHECK.into(),
        passed,
        value: Some(value),
        detail: None,
        message: (!passed).then(|| truncate(&tally.findings.join("; "), TEXT_MAX)),
        seconds,
    })
}

impl Tally {
    fn note(&mut self, db: &str, relation: &str, what: &str) {
        self.corrupt += 1;
        if self.findings.len() < FINDINGS_MAX {
            let at = if relation.is_empty() {
                db.to_owned()
            } else {
                format!("{db}.{relation}")
            };
            self.findings.push(format!("{at}: {what}"));
        }
    }
}

/// Checks one database: the extension made available, each relation checked, the extension removed again
/// if this run created it.
async fn database(
    c: &tokio_postgres::Client,
    db: &str,
    heapallindexed: bool,
    left: Duration,
    tally: &mut Tally,
) -> std::result::Result<(), tokio_postgres::Error> {
    // The copy is pgro's own; the session may write (the extension), whatever the copy's default.
    c.batch_execute(&format!(
        "SET default_transaction_read_only = off; SET statement_timeout = {}",
        left.as_millis().max(1)
    ))
    .await?;
    let existing: Option<String> = c
        .query_opt(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace \
             WHERE e.extname = 'amcheck'",
            &[],
        )
        .await?
        .map(|r| r.get(0));
    // Found in pgro's own schema, the extension is a run's that never got to drop it (the operator was
    // restarted mid-run): this run owns it and removes it like one it created.
    let ours = existing.as_deref().is_none_or(|s| s == SCHEMA);
    let schema = match existing {
        Some(s) => s,
        None => {
            c.batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {SCHEMA}; CREATE EXTENSION amcheck WITH SCHEMA {SCHEMA}"
            ))
            .await?;
            SCHEMA.to_owned()
        }
    };
    let checked = relations(c, db, &schema, heapallindexed, tally).await;
    if ours {
        c.batch_execute(&format!(
            "DROP EXTENSION IF EXISTS amcheck; DROP SCHEMA IF EXISTS {SCHEMA}"
        ))
        .await?;
    }
    checked
}

async fn relations(
    c: &tokio_postgres::Client,
    db: &str,
    schema: &str,
    heapallindexed: bool,
    tally: &mut Tally,
) -> std::result::Result<(), tokio_postgres::Error> {
    // Tables, materialized views and TOAST tables; temporary relations of other sessions are skipped.
    let heaps = c
        .query(
            "SELECT c.oid, c.oid::regclass::text FROM pg_class c \
             WHERE c.relkind IN ('r', 'm', 't') AND c.relpersistence <> 't' ORDER BY c.oid",
            &[],
        )
        .await?;
    let verify_heap = format!(
        "SELECT blkno, offnum, msg FROM {}.verify_heapam($1::oid::regclass, on_error_stop => false, check_toast => true)",
        quote_ident(schema)
    );
    for row in &heaps {
        let oid: u32 = row.get(0);
        let rel: String = row.get(1);
        tally.relations += 1;
        match c.query(&verify_heap, &[&oid]).await {
            Ok(found) if found.is_empty() => {}
            Ok(found) => {
                let first = &found[0];
                let block: Option<i64> = first.get(0);
                let msg: Option<String> = first.get(2);
                tally.note(
                    db,
                    &rel,
                    &format!(
                        "{} problems, first at block {}: {}",
                        found.len(),
                        block.unwrap_or(-1),
                        msg.unwrap_or_default()
                    ),
                );
            }
            Err(e) => tally.note(db, &rel, &db_error(&e)),
        }
    }
    // Valid, ready B-tree indexes with storage (what `pg_amcheck` checks by default): a partitioned
    // table's index (relkind `I`) has none, and `bt_index_check` refuses it.
    let indexes = c
        .query(
            "SELECT c.oid, c.oid::regclass::text FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam \
             WHERE a.amname = 'btree' AND c.relkind = 'i' AND i.indisvalid AND i.indisready \
             AND c.relpersistence <> 't' \
             ORDER BY c.oid",
            &[],
        )
        .await?;
    let check_index = format!(
        "SELECT {}.bt_index_check($1::oid::regclass, $2::bool)",
        quote_ident(schema)
    );
    for row in &indexes {
        let oid: u32 = row.get(0);
        let rel: String = row.get(1);
        tally.relations += 1;
        if let Err(e) = c.query(&check_index, &[&oid, &heapallindexed]).await {
            tally.note(db, &rel, &db_error(&e));
        }
    }
    Ok(())
}
