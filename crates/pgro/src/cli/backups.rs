//! `pgro backups list --source SOURCE.yaml --secret-dir DIR [--json]`: the backups of a source, newest
//! last, as the operator sees them (ID, end time, size, labels).

use std::process::ExitCode;

use serde::Serialize;

use crate::cli::exit::Failure;
use crate::operator::snapshots::SnapshotInfo;
use crate::source::open::{OpenError, Reader, SourceArgs};

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

/// The backups of any source, oldest first, through the source seam.
async fn list(source: &SourceArgs) -> Result<Vec<BackupRow>, (Failure, String)> {
    let failed = |e: OpenError| (e.failure(), e.message());
    let spec = source.load().map_err(|e| (Failure::Usage, e.0))?;
    let reader = source.open().await.map_err(failed)?;
    let repo_path = match (&spec.pgbackrest, &spec.barman_cloud, &spec.restic) {
        (Some(p), _, _) => p.repo_path.as_str(),
        (_, Some(b), _) => b.destination_path.as_str(),
        (_, _, Some(r)) => r.repository.as_str(),
        _ => "",
    };
    let backups = reader.backups(repo_path).await.map_err(failed)?;
    Ok(backups.iter().map(|b| row(&reader, b)).collect())
}

/// A backup as a row: pgBackRest's type and barman-cloud's status are in the description; a Kopia
/// snapshot is `snapshot` or `partial`; a restic snapshot is a `dump`, its host and path among its
/// labels (what `snapshotFilter` matches).
fn row(reader: &Reader, b: &SnapshotInfo) -> BackupRow {
    let kind = match reader {
        Reader::Pgbackrest(_) | Reader::Barman(_) => b.description.clone(),
        Reader::Kopia(_) if b.incomplete => "partial".into(),
        Reader::Kopia(_) => "snapshot".into(),
        Reader::Restic(_) => "dump".into(),
    };
    let mut labels = b.tags.clone();
    if matches!(reader, Reader::Restic(_)) {
        labels.insert("path".into(), b.path.clone());
        labels.insert("host".into(), b.host.clone());
    }
    BackupRow {
        id: b.id.clone(),
        kind,
        end_time: b.end_time.unwrap_or(b.start_time).to_string(),
        size: b.total_size,
        labels,
    }
}
