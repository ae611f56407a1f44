//! I1: what state the restored data directory is in, what must go so that it never waits for a primary,
//! and whether a failed start means recovery cannot reach consistency (the `pg_resetwal` fallback).

use std::path::Path;

/// What the source data directory was, judged from its files and `pg_control`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SourceState {
    /// Cleanly shut down: starts without recovery.
    CleanShutdown,
    /// A base backup (`backup_label`): replays from the backup's checkpoint with the WAL in `pg_wal`.
    BaseBackup,
    /// A standby's directory (`standby.signal`, `recovery.signal` or a pre-12 `recovery.conf`).
    Standby,
    /// A running (crash-consistent) copy: crash recovery replays `pg_wal`.
    Crashed,
}

impl SourceState {
    /// A stable lower-case name for logs.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::CleanShutdown => "clean-shutdown",
            Self::BaseBackup => "base-backup",
            Self::Standby => "standby",
            Self::Crashed => "crash-consistent",
        }
    }
}

impl SourceState {
    fn from_label(s: &str) -> Option<Self> {
        [
            Self::CleanShutdown,
            Self::BaseBackup,
            Self::Standby,
            Self::Crashed,
        ]
        .into_iter()
        .find(|v| v.label() == s.trim())
    }
}

/// Where the first assessment is kept, relative to PGDATA.
pub(crate) const STATE_FILE: &str = "pgro.source-state";

/// The state recorded at the first start, if any.
pub(crate) fn recorded_state(pgdata: &Path) -> Option<SourceState> {
    SourceState::from_label(&std::fs::read_to_string(pgdata.join(STATE_FILE)).ok()?)
}

/// Records the first assessment.
///
/// # Errors
/// The file cannot be written.
pub(crate) fn record_state(pgdata: &Path, state: SourceState) -> Result<(), super::error::Error> {
    super::prepare::install_if_changed(&pgdata.join(STATE_FILE), state.label()).map(|_| ())
}

/// The bootstrap superuser's name (OID 10), read from `pg_authid`'s file; `None` when unreadable.
pub(crate) fn bootstrap_superuser(pgdata: &Path) -> Option<String> {
    use crate::postgres::catalog;
    const PG_AUTHID: u32 = 1260;
    let global = pgdata.join("global");
    let filenode = std::fs::read(global.join("pg_filenode.map"))
        .ok()
        .and_then(|m| catalog::mapped_filenode(&m, PG_AUTHID))
        .unwrap_or(PG_AUTHID);
    let heap = std::fs::read(global.join(filenode.to_string())).ok()?;
    catalog::oid_names(&heap)
        .into_iter()
        .find(|(oid, _)| *oid == 10)
        .map(|(_, name)| name)
}

/// What to tell a user about a failed start: PostgreSQL's own FATAL/PANIC lines, and the remedy for the
/// failure users meet most (a preload library the image does not have).
pub(crate) fn startup_summary(log: &[String]) -> String {
    let mut fatal: Vec<&str> = log
        .iter()
        .map(String::as_str)
        .filter(|l| l.contains("FATAL:") || l.contains("PANIC:"))
        .collect();
    fatal.dedup();
    if fatal.is_empty() {
        return "PostgreSQL logged no FATAL line; see its log above".into();
    }
    let lines: Vec<&str> = fatal.iter().rev().take(3).rev().copied().collect();
    let mut out = lines.join(" | ");
    if lines
        .iter()
        .any(|l| l.contains("could not access file") || l.contains("could not load library"))
    {
        out.push_str(
            ". A library named in shared_preload_libraries (or another *_preload_libraries setting) is not \
             installed in this image: remove or replace it through the replica's postgresExtraConfig \
             (e.g. shared_preload_libraries = ''), or use a postgres image that has it",
        );
    }
    out
}

/// The files and `pg_control` facts the decision needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Observed {
    pub(crate) backup_label: bool,
    pub(crate) standby_signal: bool,
    pub(crate) recovery_signal: bool,
    pub(crate) recovery_conf: bool,
    /// `Database cluster state` from `pg_controldata`, when the tool is available.
    pub(crate) cluster_state: Option<String>,
}

/// Files that make PostgreSQL wait for a primary or an archive; renamed away before the start.
pub(crate) const RECOVERY_FILES: &[&str] = &["standby.signal", "recovery.signal", "recovery.conf"];

/// The source state. Signal files win over `backup_label` (a standby made by `pg_basebackup -R` has both
/// until it first starts); without signal files, `pg_control` tells a clean shutdown from a crash.
pub(crate) fn assess(o: &Observed) -> SourceState {
    if o.standby_signal || o.recovery_signal || o.recovery_conf {
        SourceState::Standby
    } else if o.backup_label {
        SourceState::BaseBackup
    } else {
        match o.cluster_state.as_deref() {
            Some("shut down") => SourceState::CleanShutdown,
            Some("shut down in recovery") => SourceState::Standby,
            Some("in archive recovery") => SourceState::Standby,
            _ => SourceState::Crashed,
        }
    }
}

/// Observes `pgdata` (the `cluster_state` is filled in separately from `pg_controldata`).
pub(crate) fn observe(pgdata: &Path) -> Observed {
    Observed {
        backup_label: pgdata.join("backup_label").exists(),
        standby_signal: pgdata.join("standby.signal").exists(),
        recovery_signal: pgdata.join("recovery.signal").exists(),
        recovery_conf: pgdata.join("recovery.conf").exists(),
        cluster_state: None,
    }
}

/// The `Database cluster state` value from `pg_controldata` output.
pub(crate) fn parse_cluster_state(controldata: &str) -> Option<String> {
    controldata
        .lines()
        .find_map(|l| l.strip_prefix("Database cluster state:"))
        .map(|v| v.trim().to_string())
}

/// Server log messages that mean the WAL needed to reach a consistent state is not in the data directory.
/// Only these trigger the `pg_resetwal` fallback: any other startup failure is reported as is.
const NO_CONSISTENCY: &[&str] = &[
    "could not locate required checkpoint record",
    "could not locate a valid checkpoint record",
    "could not find redo location referenced by checkpoint record",
    "wal ends before end of online backup",
    "wal ends before consistent recovery point",
    "invalid checkpoint record",
    "invalid primary checkpoint record",
    "could not read from wal segment",
    "requested timeline",
];

/// If the startup log of a postmaster that exited before accepting connections shows that recovery
/// cannot reach consistency, the matching message (the reason recorded with the fix).
pub(crate) fn unreachable_consistency(log: &[String]) -> Option<String> {
    log.iter()
        .filter(|l| l.contains("FATAL") || l.contains("PANIC"))
        .find(|l| {
            let lower = l.to_ascii_lowercase();
            NO_CONSISTENCY.iter().any(|m| lower.contains(m))
        })
        .map(|l| match l.find("FATAL:").or_else(|| l.find("PANIC:")) {
            Some(i) => l[i + 6..].trim().to_string(),
            None => l.trim().to_string(),
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn signal_files_mean_standby_even_with_backup_label() {
        let o = Observed {
            backup_label: true,
            standby_signal: true,
            ..Default::default()
        };
        assert_eq!(assess(&o), SourceState::Standby);
        let o = Observed {
            backup_label: true,
            ..Default::default()
        };
        assert_eq!(assess(&o), SourceState::BaseBackup);
    }

    #[test]
    fn controldata_state_tells_clean_from_crashed() {
        let clean = Observed {
            cluster_state: Some("shut down".into()),
            ..Default::default()
        };
        assert_eq!(assess(&clean), SourceState::CleanShutdown);
        let prod = Observed {
            cluster_state: Some("in production".into()),
            ..Default::default()
        };
        assert_eq!(assess(&prod), SourceState::Crashed);
        assert_eq!(assess(&Observed::default()), SourceState::Crashed);
    }

    #[test]
    fn cluster_state_is_parsed_from_controldata() {
        let out = "pg_control version number:            1300\nDatabase cluster state:               shut down in recovery\n";
        assert_eq!(
            parse_cluster_state(out).as_deref(),
            Some("shut down in recovery")
        );
    }

    #[test]
    fn only_missing_wal_failures_trigger_the_fallback() {
        let log = vec![
            "2024-01-01 00:00:00 UTC [1] LOG:  starting PostgreSQL".to_string(),
            "2024-01-01 00:00:00 UTC [2] FATAL:  could not locate required checkpoint record at 0/2000028".to_string(),
        ];
        assert_eq!(
            unreachable_consistency(&log).as_deref(),
            Some("could not locate required checkpoint record at 0/2000028")
        );
        let other = vec!["FATAL:  could not load library \"/x/pg_stat_statements.so\"".to_string()];
        assert_eq!(unreachable_consistency(&other), None);
        let log_only = vec!["LOG:  invalid checkpoint record".to_string()];
        assert_eq!(unreachable_consistency(&log_only), None);
    }
}
