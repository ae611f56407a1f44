//! WAL-archive restores (`--source`, pgBackRest): the data directory `pgro restore --source` wrote starts in
//! archive recovery, replays the source's archive through this executable's `wal-fetch` (the pod's path,
//! not the restore Job's) and promotes. [`plan`] decides the recovery settings from plain values; around it
//! sit the `pg_controldata` and `backup_label` parsers, the state kept across restarts, the check that the
//! archive holds the backup's first WAL segment, the startup-failure summary, and the replay figures
//! recorded in `_pgro.restore_info`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::conf::Setting;
use super::error::{Error, io};
use crate::restore::recovery_settings::{self, RecoveryTarget};
use crate::source::open::SourceArgs;
use crate::source::wal::WalArchive;

/// The source's archive as this instance reaches it.
#[derive(Debug, Clone)]
pub(crate) struct Archive {
    /// `--source` / `--source-secret-dir` (absolute: PostgreSQL runs `restore_command` in PGDATA).
    pub(crate) source: SourceArgs,
    /// Where recovery stops.
    pub(crate) target: RecoveryTarget,
    /// `<this executable> wal-fetch --source … --secret-dir … %f "%p"`.
    pub(crate) restore_command: String,
}

impl Archive {
    /// Validates the arguments into an archive: absolute paths, a `restore_command` for `exe`.
    ///
    /// # Errors
    /// `RestoreCommand` when a path cannot go into `restore_command`.
    pub(crate) fn new(
        source: &Path,
        secret_dir: Option<&Path>,
        target: RecoveryTarget,
        exe: &Path,
    ) -> Result<Self, Error> {
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
        let source = SourceArgs {
            source: absolute(source),
            secret_dir: secret_dir.map(absolute),
            storage_attempts: 10,
        };
        let restore_command = recovery_settings::restore_command(exe, &source)
            .map_err(|reason| Error::RestoreCommand { reason })?;
        Ok(Self {
            source,
            target,
            restore_command,
        })
    }
}

/// Settings PostgreSQL checks against the source's (recorded in `pg_control`) before it replays as a hot
/// standby, and that prepared transactions in the WAL need: name, `pg_controldata` label, default.
const MINIMUMS: &[(&str, &str, u64)] = &[
    ("max_connections", "max_connections setting", 100),
    ("max_worker_processes", "max_worker_processes setting", 8),
    ("max_wal_senders", "max_wal_senders setting", 10),
    ("max_prepared_transactions", "max_prepared_xacts setting", 0),
    (
        "max_locks_per_transaction",
        "max_locks_per_xact setting",
        64,
    ),
];

/// What `pg_controldata` says that the plan and the figures need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Control {
    /// Hot-standby-sensitive settings as the source ran with them: (setting name, value).
    pub(crate) recorded: Vec<(&'static str, u64)>,
    /// `Bytes per WAL segment`.
    pub(crate) segment_size: Option<u64>,
}

/// Parses `pg_controldata` output (run with `LC_ALL=C`).
pub(crate) fn parse_controldata(text: &str) -> Control {
    let value = |label: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(label)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Control {
        recorded: MINIMUMS
            .iter()
            .filter_map(|(name, label, _)| Some((*name, value(label)?)))
            .collect(),
        segment_size: value("Bytes per WAL segment"),
    }
}

/// What `backup_label` says about where the backup starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BackupLabel {
    /// `START WAL LOCATION` (`X/Y`).
    pub(crate) start_lsn: String,
    /// The segment holding it (`(file …)`), the first one recovery needs.
    pub(crate) start_segment: String,
    /// `START TIME`, as written (`2024-05-01 12:00:00 UTC`).
    pub(crate) start_time: Option<String>,
}

/// Parses `backup_label`; `None` without a valid `START WAL LOCATION … (file <segment>)` line.
pub(crate) fn parse_backup_label(text: &str) -> Option<BackupLabel> {
    let line = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
    };
    let start = line("START WAL LOCATION:")?;
    let (lsn, rest) = start.split_once(' ')?;
    let segment = rest.trim().strip_prefix("(file ")?.strip_suffix(')')?;
    (parse_lsn(lsn).is_some() && pgbackrest::label::is_segment(segment)).then(|| BackupLabel {
        start_lsn: lsn.to_owned(),
        start_segment: segment.to_owned(),
        start_time: line("START TIME:").map(str::to_owned),
    })
}

/// An LSN in PostgreSQL's `X/Y` text form, as a number.
pub(crate) fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.trim().split_once('/')?;
    let hi = u64::from_str_radix(hi, 16).ok()?;
    let lo = u64::from_str_radix(lo, 16).ok()?;
    (hi <= u64::from(u32::MAX) && lo <= u64::from(u32::MAX)).then_some(hi << 32 | lo)
}

/// The recovery files present before this start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Files {
    pub(crate) recovery_signal: bool,
    pub(crate) backup_label: bool,
}

/// The plan's inputs, all plain values.
#[derive(Debug, Clone)]
pub(crate) struct PlanInputs<'a> {
    pub(crate) target: RecoveryTarget,
    pub(crate) restore_command: &'a str,
    pub(crate) files: Files,
    pub(crate) control: &'a Control,
    /// The settings PostgreSQL would run with otherwise, in order (the source's kept settings, then
    /// postgresExtraConfig): the last of a name wins.
    pub(crate) configured: &'a [Setting],
}

/// What this start does about archive recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Replay the archive, then promote: keep (or create) `recovery.signal` and render `settings` last.
    Recover {
        settings: Vec<(String, String)>,
        /// `backup_label` is still there: recovery has not begun, so the backup's first segment is
        /// checked and the recovery state recorded.
        first_start: bool,
    },
    /// Nothing to replay: an earlier start promoted, or the backup was taken offline.
    Recovered,
}

/// Decides the recovery settings of a WAL-archive restore.
///
/// Recovery is pending while `recovery.signal` or `backup_label` is there (PostgreSQL removes the first
/// and renames the second when it promotes). The settings: this executable's `restore_command`, promote
/// at the end (`recovery_target = 'immediate'` on the backup's timeline for `consistent`, the newest
/// timeline for `latest`), archiving off, `hot_standby = off` so nobody connects before promotion, and the
/// hot-standby-sensitive settings raised to `pg_control`'s values where the configuration is lower.
pub(crate) fn plan(i: &PlanInputs<'_>) -> Plan {
    let stop: &[(&str, &str)] = match i.target {
        RecoveryTarget::None => return Plan::Recovered,
        RecoveryTarget::Latest => &[("recovery_target_timeline", "latest")],
        RecoveryTarget::Consistent => &[
            ("recovery_target", "immediate"),
            ("recovery_target_timeline", "current"),
        ],
    };
    if !(i.files.recovery_signal || i.files.backup_label) {
        return Plan::Recovered;
    }
    let mut settings: Vec<(String, String)> = vec![
        ("restore_command".into(), i.restore_command.to_owned()),
        ("recovery_target_action".into(), "promote".into()),
    ];
    settings.extend(stop.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    settings.push(("archive_mode".into(), "off".into()));
    settings.push(("hot_standby".into(), "off".into()));
    for (name, _, default) in MINIMUMS {
        let Some(&(_, recorded)) = i.control.recorded.iter().find(|(n, _)| n == name) else {
            continue;
        };
        let configured = i
            .configured
            .iter()
            .rev()
            .find(|s| s.name == *name)
            .map_or(Some(*default), |s| s.value.trim().parse::<u64>().ok());
        if configured.is_none_or(|c| c < recorded) {
            settings.push(((*name).to_owned(), recorded.to_string()));
        }
    }
    Plan::Recover {
        settings,
        first_start: i.files.backup_label,
    }
}

/// Observes the recovery files.
pub(crate) fn observe(pgdata: &Path) -> Files {
    Files {
        recovery_signal: pgdata.join(super::prepare::RECOVERY_SIGNAL).exists(),
        backup_label: pgdata.join(BACKUP_LABEL).exists(),
    }
}

const BACKUP_LABEL: &str = "backup_label";

/// Where the recovery state is kept across restarts, relative to PGDATA (`backup_label` is renamed by
/// PostgreSQL as soon as recovery begins).
pub(crate) const STATE_FILE: &str = "pgro.archive-recovery.json";

/// The recovery state: the backup's start, and when this instance first started recovering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RecoveryState {
    pub(crate) start_lsn: String,
    pub(crate) start_segment: String,
    pub(crate) backup_start_time: Option<String>,
    /// RFC 3339.
    pub(crate) started_at: String,
}

/// Reads `backup_label`.
///
/// # Errors
/// It cannot be read, or names no first segment.
pub(crate) fn read_label(pgdata: &Path) -> Result<BackupLabel, Error> {
    let path = pgdata.join(BACKUP_LABEL);
    let text = std::fs::read_to_string(&path).map_err(io("reading", &path))?;
    parse_backup_label(&text).ok_or(Error::BackupLabel { path })
}

/// The recorded state, if any (an unreadable file counts as none: only the figures depend on it).
pub(crate) fn load_state(pgdata: &Path) -> Option<RecoveryState> {
    let text = std::fs::read_to_string(pgdata.join(STATE_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Records the state of a recovery about to begin.
///
/// # Errors
/// The file cannot be written.
pub(crate) fn save_state(pgdata: &Path, state: &RecoveryState) -> Result<(), Error> {
    let text = serde_json::to_string(state).unwrap_or_default();
    super::prepare::install_if_changed(&pgdata.join(STATE_FILE), &text).map(|_| ())
}

/// An archive recovery this start performs.
#[derive(Debug, Clone)]
pub(crate) struct Recovering {
    /// Rendered last in `postgresql.pgro.conf`.
    pub(crate) settings: Vec<(String, String)>,
    /// The backup's first WAL segment, checked before the first start (`None` once recovery has begun).
    pub(crate) check_segment: Option<String>,
    pub(crate) state: Option<RecoveryState>,
    pub(crate) segment_size: Option<u64>,
    pub(crate) began: std::time::Instant,
}

/// The I/O around [`plan`] for one start: the configured values it compares with `pg_control`'s, the
/// label of a recovery about to begin (recorded as the state), or the state of one resumed.
///
/// # Errors
/// `backup_label` is unreadable, or the state cannot be written.
pub(crate) fn prepare(
    archive: &Archive,
    pgdata: &Path,
    files: Files,
    controldata: Option<&str>,
    source: &[Setting],
    extra: Option<&str>,
) -> Result<Option<Recovering>, Error> {
    if controldata.is_none() {
        tracing::warn!(
            "pg_controldata is not on PATH: hot-standby-sensitive settings are not raised to the source's"
        );
    }
    let control = controldata.map(parse_controldata).unwrap_or_default();
    let mut configured = source.to_vec();
    // postgresExtraConfig that does not parse fails PostgreSQL's start on its own.
    configured.extend(
        extra
            .and_then(|e| super::conf::parse(e).ok())
            .unwrap_or_default(),
    );
    let inputs = PlanInputs {
        target: archive.target,
        restore_command: &archive.restore_command,
        files,
        control: &control,
        configured: &configured,
    };
    let (settings, first_start) = match plan(&inputs) {
        Plan::Recovered => {
            tracing::info!(
                "WAL-archive restore already recovered (or taken offline): starting normally"
            );
            return Ok(None);
        }
        Plan::Recover {
            settings,
            first_start,
        } => (settings, first_start),
    };
    let (check_segment, state) = if first_start {
        let label = read_label(pgdata)?;
        let state = RecoveryState {
            start_lsn: label.start_lsn,
            start_segment: label.start_segment.clone(),
            backup_start_time: label.start_time,
            started_at: jiff::Timestamp::now().to_string(),
        };
        save_state(pgdata, &state)?;
        (Some(label.start_segment), Some(state))
    } else {
        (None, load_state(pgdata))
    };
    tracing::info!(
        target = ?archive.target,
        first_start,
        settings = ?settings,
        "WAL-archive restore: replaying the source's archive, then promoting"
    );
    Ok(Some(Recovering {
        settings,
        check_segment,
        state,
        segment_size: control.segment_size,
        began: std::time::Instant::now(),
    }))
}

/// Fails fast when the archive does not hold `segment`, the first WAL segment backup `backup` needs: the
/// same lookup `pgro wal-fetch` makes, before PostgreSQL is started.
///
/// # Errors
/// `WalMissing`, or the source or archive cannot be read.
pub(crate) async fn check_first_segment(
    archive: &Archive,
    pgdata: &Path,
    segment: &str,
    backup: &str,
) -> Result<(), Error> {
    let path: PathBuf = archive.source.source.clone();
    let identity =
        crate::source::wal::cluster_identity(pgdata).map_err(|reason| Error::Archive {
            segment: segment.to_owned(),
            path: path.clone(),
            reason,
        })?;
    let wal = match WalArchive::open(&archive.source, identity).await {
        Ok(w) => w,
        Err(source) => {
            return Err(Error::Source {
                path,
                source: Box::new(source),
            });
        }
    };
    match wal
        .find(&[segment.to_owned()])
        .await
        .map(|mut f| f.pop().flatten())
    {
        Ok(Some(_)) => {
            tracing::info!(
                segment,
                backup,
                "the archive holds the backup's first WAL segment"
            );
            Ok(())
        }
        Ok(None) => Err(Error::WalMissing {
            segment: segment.to_owned(),
            backup: backup.to_owned(),
        }),
        Err(reason) => Err(Error::Archive {
            segment: segment.to_owned(),
            path,
            reason,
        }),
    }
}

/// What to tell a user about a failed start of a WAL-archive restore: what `pgro wal-fetch` reported (the
/// FATAL line PostgreSQL logs for an exit of 126 only says "command not executable"), PostgreSQL's own
/// FATAL lines, and, when recovery could not reach consistency, that the archive lacks WAL the backup
/// needs (no `pg_resetwal` fallback here: it would hide the gap).
pub(crate) fn startup_summary(log: &[String]) -> String {
    let mut fetch: Vec<&str> = log
        .iter()
        .map(|l| l.trim())
        .filter(|l| l.contains("pgro wal-fetch"))
        .collect();
    fetch.dedup();
    let mut out = String::new();
    if !fetch.is_empty() {
        let last: Vec<&str> = fetch.iter().rev().take(2).rev().copied().collect();
        out.push_str("restore_command failed: ");
        out.push_str(&last.join(" | "));
        out.push_str(" | ");
    }
    out.push_str(&super::recovery::startup_summary(log));
    if super::recovery::unreachable_consistency(log).is_some() {
        out.push_str(
            ". Recovery could not reach a consistent state with the WAL the archive holds: the source's archive \
             lacks WAL this backup needs (a WAL-archive restore is never forced open with pg_resetwal); check \
             the source's archiving and WAL retention, or restore another backup",
        );
    }
    out
}

/// `_pgro.restore_info.wal_replayed`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct WalReplayed {
    /// `bytes` in whole segments, rounded up.
    pub(crate) segments: u64,
    /// From the backup's start to the end of replay.
    pub(crate) bytes: u64,
    /// From the first start of recovery to promotion.
    pub(crate) seconds: f64,
}

/// The replay figures from the backup's start LSN, the last replayed LSN, the segment size and the time
/// taken.
pub(crate) fn wal_replayed(start: u64, end: u64, segment_size: u64, seconds: f64) -> WalReplayed {
    let bytes = end.saturating_sub(start);
    WalReplayed {
        segments: bytes.div_ceil(segment_size.max(1)),
        bytes,
        seconds: (seconds.max(0.0) * 1000.0).round() / 1000.0,
    }
}

/// What the start that promoted records.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Replayed {
    /// The newest replayed commit, else the backup's end (`--snapshot-time`), else its start.
    pub(crate) data_time: Option<String>,
    pub(crate) wal: Option<serde_json::Value>,
}

/// Reads the replay figures right after promotion (`pg_last_xact_replay_timestamp()` and
/// `pg_last_wal_replay_lsn()` keep their values until the server restarts). Best effort: a failed query
/// is logged and leaves the fallbacks, it never keeps a promoted copy from serving.
pub(crate) async fn replayed(
    c: &tokio_postgres::Client,
    state: Option<&RecoveryState>,
    segment_size: Option<u64>,
    backup_end: Option<&str>,
) -> Replayed {
    let row = c
        .query_one(
            "SELECT pg_last_xact_replay_timestamp()::text, pg_last_wal_replay_lsn()::text",
            &[],
        )
        .await;
    let (last_commit, end_lsn): (Option<String>, Option<String>) = match row {
        Ok(r) => (r.get(0), r.get(1)),
        Err(e) => {
            tracing::warn!(error = %e, "reading the end of recovery failed; data_time falls back to the backup's time");
            (None, None)
        }
    };
    let now = jiff::Timestamp::now();
    let wal = state.and_then(|s| {
        let start = parse_lsn(&s.start_lsn)?;
        let end = parse_lsn(end_lsn.as_deref()?)?;
        let began: jiff::Timestamp = s.started_at.parse().ok()?;
        let seconds = (now - began).total(jiff::Unit::Second).ok()?;
        let w = wal_replayed(start, end, segment_size.unwrap_or(16 << 20), seconds);
        serde_json::to_value(w).ok()
    });
    let data_time = last_commit
        .or_else(|| backup_end.map(str::to_owned))
        .or_else(|| state.and_then(|s| s.backup_start_time.clone()));
    Replayed { data_time, wal }
}

#[cfg(test)]
mod tests;
