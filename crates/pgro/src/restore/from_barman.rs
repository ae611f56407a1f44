//! `pgro restore --source` for a barman-cloud source: the chosen `DONE` backup's tars streamed into
//! `<target>/snapshot/pgdata` (tablespaces in `<target>/snapshot/tablespaces/<oid>`, relinked), then the
//! same recovery settings as a pgBackRest restore (`restore_command` = this binary's `wal-fetch`, archiving
//! off). A CNPG data directory's own `postgresql.conf` (paths under `/controller`) is left as it was
//! backed up: `pgro instance` replaces it when it starts the copy.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::from_source::{PGDATA, TABLESPACES, finish, prepare_target};
use super::{Failed, RestoreArgs, RestoreResult, tablespaces};
use crate::cli::exit::Failure;
use crate::cli::progress::Reporter;
use crate::source::open::SourceArgs;
use crate::source::reader::BarmanServer;

fn failed(context: &str, e: &(dyn std::error::Error + 'static)) -> Failed {
    Failed::new(
        Failure::of_barman(e),
        format!("{context}: {}", crate::cli::kopia::error_chain(e)),
    )
}

/// Restores `args.snapshot` (`latest` = the newest `DONE` backup) of `server`.
pub(super) async fn restore(
    args: &RestoreArgs,
    source: &SourceArgs,
    server: BarmanServer,
    started: Instant,
) -> Result<RestoreResult, Failed> {
    let listing = &server.listing;
    let backup = if args.snapshot == "latest" {
        listing.latest().cloned().ok_or_else(|| {
            Failed::new(
                Failure::SnapshotNotFound,
                format!(
                    "server {} at {} has no DONE backup ({} listed{})",
                    server.server,
                    server.destination,
                    listing.backups.len(),
                    unreadable(listing)
                ),
            )
        })?
    } else {
        let b = listing
            .backups
            .iter()
            .find(|b| b.id == args.snapshot)
            .cloned()
            .ok_or_else(|| {
                Failed::new(
                    Failure::SnapshotNotFound,
                    format!(
                        "backup {} is not in server {} at {}{}",
                        args.snapshot,
                        server.server,
                        server.destination,
                        unreadable(listing)
                    ),
                )
            })?;
        if !b.info.restorable() {
            return Err(Failed::new(
                Failure::SnapshotNotFound,
                format!(
                    "backup {} has status {:?}: only a DONE backup restores",
                    b.id, b.info.status
                ),
            ));
        }
        b
    };
    if backup.info.snapshot_backup {
        return Err(Failed::new(
            Failure::Unsupported,
            format!(
                "backup {} is a volume-snapshot backup: its data is in Kubernetes VolumeSnapshots, not in the \
                 object store",
                backup.id
            ),
        ));
    }
    let id = backup.id.clone();
    tracing::info!(backup = %id, server = %server.server, "restoring");
    let root = prepare_target(args, &id)?;
    let (reporter, progress) = Reporter::start(
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        args.progress_interval,
    );
    // Stored (compressed) bytes: what is fetched, and the only total known before the end.
    let report: barman::Progress = Arc::new(move |done, total| {
        progress(kopia::RestoreProgress {
            bytes_done: done,
            bytes_total: total,
            files_done: 0,
            files_total: 0,
        });
    });
    let summary = server
        .catalog
        .restore(
            &backup,
            &root.join(PGDATA),
            &root.join(TABLESPACES),
            args.parallel.max(1),
            Some(report),
        )
        .await;
    reporter.finish();
    let summary = summary.map_err(|e| failed(&format!("restoring backup {id}"), &e))?;
    let data = finish(args, source, &root, args.recovery_target)?;
    let info = &backup.info;
    Ok(RestoreResult {
        postgres_version: info.major().map(|m| m.to_string()).unwrap_or_default(),
        pgdata: data,
        pgdata_in_snapshot: PathBuf::from(PGDATA),
        bytes: summary.bytes,
        files: summary.files,
        seconds: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        snapshot: id,
        snapshot_time: info.end_time.map(|t| t.to_string()).unwrap_or_default(),
        tablespaces: summary
            .tablespaces
            .iter()
            .map(|(oid, dir)| {
                let ts = info.tablespaces.iter().find(|t| t.oid == *oid);
                tablespaces::Mapping {
                    oid: *oid,
                    name: ts.map(|t| t.name.clone()),
                    location: ts.map(|t| PathBuf::from(&t.location)).unwrap_or_default(),
                    restored_to: dir.clone(),
                }
            })
            .collect(),
        dump: None,
    })
}

/// `; N unreadable: <id> (<why>)…` when some `backup.info` could not be read, so a user who expected
/// them sees why they were passed over.
fn unreadable(l: &barman::Listing) -> String {
    if l.unreadable.is_empty() {
        return String::new();
    }
    let items: Vec<String> = l
        .unreadable
        .iter()
        .take(3)
        .map(|(id, why)| format!("{id} ({why})"))
        .collect();
    format!("; {} unreadable: {}", l.unreadable.len(), items.join(", "))
}
