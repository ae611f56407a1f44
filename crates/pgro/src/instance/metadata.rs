//! I5: `_pgro.restore_info`, one row: snapshot id and time, restored_at, stage, fixes (a JSON array that
//! only grows), and for a WAL-archive restore `data_time` (the newest replayed commit) and `wal_replayed`
//! (`{segments, bytes, seconds}`), written once, at the start that promoted. Fixes made before PostgreSQL could accept connections (`pg_resetwal`) are first appended to
//! a pending file in PGDATA, so a restart between the fix and this table does not lose them.

use std::path::Path;

use tokio_postgres::Client;

use super::error::{Error, io, sql};

/// The pending-fixes file, relative to PGDATA.
pub(crate) const PENDING: &str = "pgro.fixes.pending.json";

/// Lifecycle stages recorded in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Restored,
    Reindexing,
    Ready,
}

impl Stage {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Restored => "restored",
            Self::Reindexing => "reindexing",
            Self::Ready => "ready",
        }
    }
}

/// Appends `fix` to the pending file.
///
/// # Errors
/// The file cannot be read or written.
pub(crate) fn add_pending(pgdata: &Path, fix: serde_json::Value) -> Result<(), Error> {
    let mut all = read_pending(pgdata)?;
    all.push(fix);
    let text = serde_json::Value::Array(all).to_string();
    super::prepare::install_if_changed(&pgdata.join(PENDING), &text)?;
    Ok(())
}

/// The pending fixes (empty when there is no file).
///
/// # Errors
/// The file exists but cannot be read.
pub(crate) fn read_pending(pgdata: &Path) -> Result<Vec<serde_json::Value>, Error> {
    let path = pgdata.join(PENDING);
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(serde_json::from_str::<Vec<serde_json::Value>>(&t).unwrap_or_default()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io("reading", path)(e)),
    }
}

/// What to record.
#[derive(Debug, Clone)]
pub(crate) struct Info<'a> {
    /// How the source's files were captured (`clean-shutdown`, `base-backup`, `standby`,
    /// `crash-consistent`): only a consistent capture can give a consistent copy.
    pub(crate) source_state: Option<&'a str>,
    pub(crate) snapshot_id: Option<&'a str>,
    pub(crate) snapshot_time: Option<&'a str>,
    pub(crate) stage: Stage,
    pub(crate) new_fixes: &'a [serde_json::Value],
    pub(crate) reader: Option<&'a str>,
    /// The time of the newest data served (RFC 3339 or PostgreSQL's timestamptz text), set by the start
    /// that ended a WAL-archive recovery; `None` keeps what is recorded.
    pub(crate) data_time: Option<&'a str>,
    /// `{segments, bytes, seconds}` of that recovery; `None` keeps what is recorded.
    pub(crate) wal_replayed: Option<&'a serde_json::Value>,
    /// `{statements, failed, tolerated, bytes, seconds, firstErrors}` of a logical replay; `None` keeps
    /// what is recorded.
    pub(crate) dump_replayed: Option<serde_json::Value>,
}

/// Creates the schema/table if needed and upserts the row (run connected to each target database).
///
/// # Errors
/// A statement failed.
pub(crate) async fn record(c: &Client, info: &Info<'_>) -> Result<(), Error> {
    c.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS _pgro; \
         CREATE TABLE IF NOT EXISTS _pgro.restore_info ( \
           singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton), \
           snapshot_id text, snapshot_time timestamptz, \
           restored_at timestamptz NOT NULL DEFAULT now(), \
           stage text NOT NULL, fixes jsonb NOT NULL DEFAULT '[]'); \
         ALTER TABLE _pgro.restore_info ADD COLUMN IF NOT EXISTS source_state text; \
         ALTER TABLE _pgro.restore_info ADD COLUMN IF NOT EXISTS data_time timestamptz; \
         ALTER TABLE _pgro.restore_info ADD COLUMN IF NOT EXISTS wal_replayed jsonb; \
         ALTER TABLE _pgro.restore_info ADD COLUMN IF NOT EXISTS dump_replayed jsonb",
    )
    .await
    .map_err(sql("creating _pgro.restore_info"))?;
    let fixes = serde_json::Value::Array(info.new_fixes.to_vec()).to_string();
    let wal = info.wal_replayed.map(serde_json::Value::to_string);
    let dump = info
        .dump_replayed
        .as_ref()
        .map(serde_json::Value::to_string);
    c.execute(
        "INSERT INTO _pgro.restore_info (snapshot_id, snapshot_time, stage, fixes, source_state, \
           data_time, wal_replayed, dump_replayed) \
         VALUES ($1::text, $2::text::timestamptz, $3::text, $4::text::jsonb, $5::text, \
           $6::text::timestamptz, $7::text::jsonb, $8::text::jsonb) \
         ON CONFLICT (singleton) DO UPDATE SET \
           source_state = coalesce(restore_info.source_state, EXCLUDED.source_state), \
           snapshot_id = coalesce(EXCLUDED.snapshot_id, restore_info.snapshot_id), \
           snapshot_time = coalesce(EXCLUDED.snapshot_time, restore_info.snapshot_time), \
           data_time = coalesce(EXCLUDED.data_time, restore_info.data_time), \
           wal_replayed = coalesce(EXCLUDED.wal_replayed, restore_info.wal_replayed), \
           dump_replayed = coalesce(EXCLUDED.dump_replayed, restore_info.dump_replayed), \
           stage = EXCLUDED.stage, fixes = restore_info.fixes || EXCLUDED.fixes",
        &[
            &info.snapshot_id,
            &info.snapshot_time,
            &info.stage.as_str(),
            &fixes,
            &info.source_state,
            &info.data_time,
            &wal,
            &dump,
        ],
    )
    .await
    .map_err(sql("writing _pgro.restore_info"))?;
    if let Some(r) = info.reader {
        let r = super::db::quote_ident(r);
        c.batch_execute(&format!(
            "GRANT USAGE ON SCHEMA _pgro TO {r}; GRANT SELECT ON _pgro.restore_info TO {r}"
        ))
        .await
        .map_err(sql("granting _pgro.restore_info"))?;
    }
    Ok(())
}

/// Sets only the stage (the row exists).
///
/// # Errors
/// The update failed.
pub(crate) async fn set_stage(c: &Client, stage: Stage) -> Result<(), Error> {
    c.execute(
        "UPDATE _pgro.restore_info SET stage = $1::text",
        &[&stage.as_str()],
    )
    .await
    .map_err(sql("updating the restore stage"))?;
    Ok(())
}

/// The recorded stage, if the table exists.
pub(crate) async fn current_stage(c: &Client) -> Option<String> {
    let exists = c
        .query_one("SELECT to_regclass('_pgro.restore_info') IS NOT NULL", &[])
        .await
        .ok()
        .is_some_and(|r| r.get::<_, bool>(0));
    if !exists {
        return None;
    }
    c.query_opt("SELECT stage FROM _pgro.restore_info", &[])
        .await
        .ok()
        .flatten()
        .map(|r| r.get(0))
}
