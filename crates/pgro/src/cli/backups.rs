//! `pgro backups list --source SOURCE.yaml --secret-dir DIR [--json]`: the backups of a source, newest
//! last, as the operator sees them (ID, end time, size, labels).

use std::process::ExitCode;

use serde::Serialize;

use crate::cli::exit::Failure;
use crate::source::open::{OpenError, Opened, SourceArgs};

/// `pgro backups …`.
#[derive(Debug, clap::Args)]
pub struct BackupsArgs {
    #[command(subcommand)]
    pub command: BackupsCommand,
}

/// `pgro backups` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum BackupsCommand {
    /// List the backups of a source.
    List {
        #[command(flatten)]
        source: SourceArgs,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// One backup, whatever the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupRow {
    /// The backup's own ID (pgBackRest label).
    pub id: String,
    /// `full`, `diff`, `incr`.
    pub kind: String,
    /// End time (RFC 3339, UTC).
    pub end_time: String,
    /// Bytes a restore writes.
    pub size: u64,
    /// Labels (pgBackRest annotations).
    pub labels: std::collections::BTreeMap<String, String>,
}

/// Runs `pgro backups`.
pub async fn run(args: BackupsArgs) -> ExitCode {
    let BackupsCommand::List { source, json } = args.command;
    let rows = match list(&source).await {
        Ok(rows) => rows,
        Err((failure, message)) => {
            eprintln!("error: {message}");
            return failure.into();
        }
    };
    if json {
        match serde_json::to_string_pretty(&rows) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return Failure::Other.into();
            }
        }
    } else {
        println!(
            "{:<34} {:<8} {:<21} {:>14}  LABELS",
            "ID", "TYPE", "END", "SIZE"
        );
        for r in &rows {
            let labels: Vec<String> = r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!(
                "{:<34} {:<8} {:<21} {:>14}  {}",
                r.id,
                r.kind,
                r.end_time,
                r.size,
                labels.join(",")
            );
        }
    }
    ExitCode::SUCCESS
}

/// The backups of any source, oldest first.
async fn list(source: &SourceArgs) -> Result<Vec<BackupRow>, (Failure, String)> {
    let chain = |e: &(dyn std::error::Error + 'static)| crate::cli::kopia::error_chain(e);
    let spec = source.load().map_err(|e| (Failure::Usage, e.0))?;
    let secrets = source.secrets().map_err(|e| (Failure::Usage, e.0))?;
    let kopia = crate::source::open::kopia_args(&spec, &secrets, source.storage_attempts)
        .map_err(|e| (Failure::Usage, e.0))?;
    if let Some(repo_args) = kopia {
        let repo = repo_args
            .connect()
            .await
            .map_err(|e| (e.failure(), chain(&e)))?;
        let mut snaps = repo
            .list_snapshots()
            .await
            .map_err(|e| (Failure::of_kopia(&e), chain(&e)))?;
        snaps.sort_by_key(|s| s.start_time);
        return Ok(snaps.iter().map(kopia_row).collect());
    }
    match source.open().await {
        Ok(Opened::Pgbackrest(r)) => Ok(r.backups().iter().map(row).collect()),
        Err(e) => Err(match &e {
            OpenError::Config(c) => (Failure::Usage, c.0.clone()),
            OpenError::Pgbackrest(p) => (Failure::of_pgbackrest(p), chain(&e)),
        }),
    }
}

/// A Kopia snapshot as a row (its tags as labels).
fn kopia_row(s: &kopia::SnapshotManifest) -> BackupRow {
    let info = crate::operator::snapshots::SnapshotInfo::from_manifest(s);
    BackupRow {
        id: info.id,
        kind: if info.incomplete {
            "partial".into()
        } else {
            "snapshot".into()
        },
        end_time: info.end_time.unwrap_or(info.start_time).to_string(),
        size: info.total_size,
        labels: info.tags,
    }
}

/// A pgBackRest backup as a row.
pub fn row(b: &pgbackrest::BackupEntry) -> BackupRow {
    BackupRow {
        id: b.label.clone(),
        kind: b.kind.as_str().into(),
        end_time: jiff::Timestamp::from_second(b.timestamp_stop)
            .map(|t| t.to_string())
            .unwrap_or_default(),
        size: b.size,
        labels: b.annotations.clone(),
    }
}
