//! `pgro restore --source SOURCE.yaml --secret-dir DIR --backup latest|ID --target DIR`: a physical backup
//! of a WAL-archive source (pgBackRest here, barman-cloud in `from_barman`) restored into `<target>/snapshot/pgdata` (tablespaces in
//! `<target>/snapshot/tablespaces/<oid>`, relinked), exposed as `<target>/data` like a Kopia restore, with
//! recovery settings that make the directory start and replay on its own with plain `pg_ctl`, as a
//! `pgbackrest restore` does: `recovery.signal`, `restore_command` = this binary's `wal-fetch` with the
//! same source, `recovery_target_action = 'promote'`, `recovery_target = 'immediate'` for `consistent`,
//! and `archive_mode = 'off'` so a promoted copy never archives into the source's repository.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::recovery_settings::{self, RecoveryTarget};
use super::{Failed, RestoreArgs, RestoreResult, claim, expose, tablespaces};
use crate::cli::exit::Failure;
use crate::cli::progress::Reporter;
use crate::source::open::{OpenError, Reader, SourceArgs};

/// The data directory's place inside `<target>/snapshot`.
pub(super) const PGDATA: &str = "pgdata";
/// The tablespaces' place inside `<target>/snapshot`.
pub(super) const TABLESPACES: &str = "tablespaces";

fn pgbr(context: &str, e: &pgbackrest::Error) -> Failed {
    Failed::new(
        Failure::of_pgbackrest(e),
        format!("{context}: {}", crate::cli::kopia::error_chain(e)),
    )
}

/// For a Kopia source, the repository options from the mounted Secret; `None` for other sources.
pub(super) fn kopia_options(
    args: &RestoreArgs,
    source_yaml: &Path,
) -> Result<Option<crate::cli::repository::RepositoryArgs>, Failed> {
    let source = SourceArgs {
        source: source_yaml.to_owned(),
        secret_dir: args.secret_dir.clone(),
        storage_attempts: args.repo.storage_attempts,
    };
    let spec = source
        .load()
        .map_err(|e| Failed::new(Failure::Usage, e.0))?;
    let secrets = source
        .secrets()
        .map_err(|e| Failed::new(Failure::Usage, e.0))?;
    crate::source::open::kopia_args(&spec, &secrets, args.repo.storage_attempts)
        .map_err(|e| Failed::new(Failure::Usage, e.0))
}

/// Restores from `args.source` (set by the caller).
pub(super) async fn restore(args: &RestoreArgs, started: Instant) -> Result<RestoreResult, Failed> {
    let source = source_args(args);
    if source.load().is_ok_and(|s| s.restic.is_some()) {
        return super::from_restic::report(args, &source, started).await;
    }
    match source.open().await {
        Ok(Reader::Barman(server)) => {
            super::from_barman::restore(args, &source, *server, started).await
        }
        opened => restore_pgbackrest(args, &source, opened, started).await,
    }
}

/// `--source` and `--secret-dir` as absolute paths (recovery settings name them).
pub(super) fn source_args(args: &RestoreArgs) -> SourceArgs {
    SourceArgs {
        source: absolute(args.source.as_deref().unwrap_or(Path::new("source.yaml"))),
        secret_dir: args.secret_dir.as_deref().map(absolute),
        storage_attempts: args.repo.storage_attempts,
    }
}

/// Claims `args.target` for `label` and empties `<target>/snapshot` (created); returns it.
pub(super) fn prepare_target(args: &RestoreArgs, label: &str) -> Result<PathBuf, Failed> {
    match claim::claim(args.target()?, label).map_err(|e| Failed::io("claiming the target", &e))? {
        Ok(()) => {}
        Err(refusal) => {
            return Err(Failed::new(
                Failure::TargetNotEmpty,
                refusal.message(args.target()?, label),
            ));
        }
    }
    // A retried Job starts this backup again from scratch: a half-restored tree is never trusted.
    let root = args.target()?.join("snapshot");
    match std::fs::remove_dir_all(&root) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Failed::io("clearing a previous attempt", &e));
        }
        _ => {}
    }
    std::fs::create_dir_all(&root).map_err(|e| Failed::io("creating the target", &e))?;
    Ok(root)
}

/// Writes the recovery settings into `<root>/pgdata` and exposes it as `<target>/data`.
pub(super) fn finish(
    args: &RestoreArgs,
    source: &SourceArgs,
    root: &Path,
    target: RecoveryTarget,
) -> Result<PathBuf, Failed> {
    let exe = std::env::current_exe().map_err(|e| Failed::io("finding this executable", &e))?;
    recovery_settings::write(&root.join(PGDATA), target, &exe, source)
        .map_err(|e| Failed::new(Failure::Usage, e))?;
    expose(args.target()?, Path::new(PGDATA)).map_err(|e| Failed::io("exposing PGDATA", &e))
}

async fn restore_pgbackrest(
    args: &RestoreArgs,
    source: &SourceArgs,
    opened: Result<Reader, OpenError>,
    started: Instant,
) -> Result<RestoreResult, Failed> {
    let repo = opened
        .and_then(Reader::into_pgbackrest)
        .map_err(|e| match e {
            OpenError::Pgbackrest(e) => pgbr("opening the pgBackRest repository", &e),
            e => Failed::new(e.failure(), e.message()),
        })?;
    let entry = if args.snapshot == "latest" {
        repo.latest().cloned().ok_or_else(|| {
            Failed::new(
                Failure::SnapshotNotFound,
                format!(
                    "stanza {} has no backup of its current database ({} in backup.info)",
                    repo.stanza(),
                    repo.backups().len()
                ),
            )
        })?
    } else {
        repo.backups()
            .iter()
            .find(|b| b.label == args.snapshot)
            .cloned()
            .ok_or_else(|| {
                Failed::new(
                    Failure::SnapshotNotFound,
                    format!(
                        "backup {} is not in stanza {}",
                        args.snapshot,
                        repo.stanza()
                    ),
                )
            })?
    };
    let label = entry.label.clone();
    tracing::info!(backup = %label, kind = entry.kind.as_str(), size = entry.size, "restoring");
    let manifest = repo
        .manifest(&label)
        .await
        .map_err(|e| pgbr(&format!("loading the manifest of {label}"), &e))?;

    let root = prepare_target(args, &label)?;

    let (reporter, progress) = Reporter::start(
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        args.progress_interval,
    );
    let opts = pgbackrest::RestoreOptions {
        parallel: args.parallel.max(1),
        progress: Some(Arc::new(move |p: pgbackrest::RestoreProgress| {
            progress(kopia::RestoreProgress {
                bytes_done: p.bytes_done,
                bytes_total: p.bytes_total,
                files_done: p.files_done,
                files_total: p.files_total,
            });
        })),
    };
    let pgdata = root.join(PGDATA);
    let summary = repo
        .restore(&manifest, &pgdata, &root.join(TABLESPACES), &opts)
        .await;
    reporter.finish();
    let summary = summary.map_err(|e| pgbr(&format!("restoring backup {label}"), &e))?;

    // An offline backup is consistent as it is and needs no WAL (pgBackRest's type none).
    let target = if manifest.online {
        args.recovery_target
    } else {
        RecoveryTarget::None
    };
    let data = finish(args, source, &root, target)?;

    Ok(RestoreResult {
        postgres_version: manifest.db.version.clone(),
        pgdata: data,
        pgdata_in_snapshot: PathBuf::from(PGDATA),
        bytes: summary.bytes,
        files: summary.files,
        seconds: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        snapshot: label,
        snapshot_time: jiff::Timestamp::from_second(entry.timestamp_stop)
            .map(|t| t.to_string())
            .unwrap_or_default(),
        tablespaces: summary
            .tablespaces
            .iter()
            .map(|t| tablespaces::Mapping {
                oid: t.oid,
                name: t.name.clone(),
                location: PathBuf::from(&t.source_path),
                restored_to: t.dir.clone(),
            })
            .collect(),
        dump: None,
    })
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}
