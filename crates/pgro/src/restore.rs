//! `pgro restore`: the restore Job's command (behaviour S2). Restores a snapshot into `<target>/snapshot`,
//! locates PGDATA inside it and exposes it as `<target>/data`, and reports a small JSON result on stdout and
//! in the container's termination message, which the operator reads instead of any callback.

pub mod claim;
mod from_barman;
mod from_restic;
mod from_source;
pub mod pgdata;
pub mod recovery_settings;
mod snapshot_tree;
pub mod tablespaces;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use kopia::{Indexed, Repository, RestoreOptions, SnapshotManifest};
use pgro_api::SnapshotFilter;
use serde::{Deserialize, Serialize};

use crate::cli::exit::{Failure, is_disk_full};
use crate::cli::kopia::error_chain;
use crate::cli::progress::Reporter;
use crate::cli::repository::RepositoryArgs;
use crate::operator::snapshots::{CompiledFilter, SnapshotInfo, choose_newest};

/// Kubernetes keeps at most 4096 bytes of a termination message.
const TERMINATION_MESSAGE_LIMIT: usize = 4096;

/// `pgro restore` arguments.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub repo: RepositoryArgs,
    /// Snapshot manifest ID (or, with `--source`, the backup's own ID), or `latest` for the newest
    /// complete snapshot matching `--filter` (the newest backup of a pgBackRest stanza).
    #[arg(long, visible_alias = "backup", env = "PGRO_SNAPSHOT")]
    pub snapshot: String,
    /// Restore from this source (the replica's `spec.source` object as YAML, e.g. a `pgbackrest` one)
    /// instead of the Kopia flags.
    #[arg(long, env = "PGRO_SOURCE")]
    pub source: Option<PathBuf>,
    /// The source Secret's keys as files (with `--source`).
    #[arg(long, env = "PGRO_SECRET_DIR")]
    pub secret_dir: Option<PathBuf>,
    /// WAL-archive sources: replay every archived WAL (`latest`) or stop once consistent.
    #[arg(
        long,
        env = "PGRO_RECOVERY_TARGET",
        value_enum,
        default_value = "latest"
    )]
    pub recovery_target: recovery_settings::RecoveryTarget,
    /// Snapshot filter as JSON, the same fields as a replica's `spec.snapshotFilter`
    /// (e.g. `{"tags":{"area":"postgres"}}`); used with `--snapshot latest`.
    #[arg(long, env = "PGRO_SNAPSHOT_FILTER")]
    pub filter: Option<String>,
    /// Directory to restore into (the data volume's mount point); required for a physical backup, not for
    /// a logical dump (restic), whose header and size are reported instead.
    #[arg(long, env = "PGRO_TARGET")]
    pub target: Option<PathBuf>,
    /// A logical dump (restic source): stream its exact bytes to standard output, every blob verified,
    /// instead of reporting its header.
    #[arg(long, requires = "source")]
    pub stdout: bool,
    /// Chunks fetched and written concurrently.
    #[arg(long, env = "PGRO_PARALLEL", default_value_t = 8)]
    pub parallel: usize,
    /// Also write the JSON result here (the container's `terminationMessagePath`).
    #[arg(long, env = "PGRO_TERMINATION_LOG")]
    pub termination_log: Option<PathBuf>,
    /// Restore file owners from the snapshot (default: files belong to the restoring user, which is the
    /// user PostgreSQL runs as).
    #[arg(long)]
    pub restore_owners: bool,
    /// How often to log progress when not on a terminal.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub progress_interval: Duration,
}

impl RestoreArgs {
    /// `--target`, which every physical restore needs.
    fn target(&self) -> Result<&Path, Failed> {
        self.target.as_deref().ok_or_else(|| {
            Failed::new(
                Failure::Usage,
                "--target is required to restore a physical backup",
            )
        })
    }
}

/// The JSON result of a successful restore.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreResult {
    /// `PG_VERSION` of the restored data directory.
    pub postgres_version: String,
    /// Where PGDATA is now (`<target>/data`).
    pub pgdata: PathBuf,
    /// PGDATA's path inside the snapshot (empty when it is the snapshot root).
    pub pgdata_in_snapshot: PathBuf,
    /// File bytes restored.
    pub bytes: u64,
    /// Files restored.
    pub files: u64,
    /// Wall-clock seconds of the whole command.
    pub seconds: f64,
    /// Snapshot manifest ID.
    pub snapshot: String,
    /// Snapshot start time (RFC 3339).
    pub snapshot_time: String,
    /// Tablespaces, each relinked to its copy inside the volume.
    #[serde(default)]
    pub tablespaces: Vec<tablespaces::Mapping>,
    /// A logical dump's header (restic sources): nothing is restored into the target, the instance
    /// replays the dump into a fresh cluster of `postgresVersion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dump: Option<crate::logical::header::DumpHeader>,
}

/// The JSON result of a failed restore.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreFailure {
    /// Machine-readable reason (`WrongPassword`, `NoPgdataInSnapshot`, …).
    pub error: String,
    /// What happened, for people.
    pub message: String,
    /// The process exit code.
    pub exit_code: u8,
}

/// A failed step: its class and message.
#[derive(Debug)]
struct Failed {
    failure: Failure,
    message: String,
}

impl Failed {
    fn new(failure: Failure, message: impl Into<String>) -> Self {
        Self {
            failure,
            message: message.into(),
        }
    }

    fn kopia(context: &str, e: &kopia::Error) -> Self {
        Self::new(
            Failure::of_kopia(e),
            format!("{context}: {}", error_chain(e)),
        )
    }

    fn io(context: &str, e: &std::io::Error) -> Self {
        let failure = if is_disk_full(e) {
            Failure::DiskFull
        } else {
            Failure::Other
        };
        Self::new(failure, format!("{context}: {e}"))
    }
}

/// Runs `pgro restore`.
pub async fn run(args: RestoreArgs) -> ExitCode {
    let started = Instant::now();
    if args.stdout {
        // Standard output carries the dump alone; the outcome goes to the log (standard error).
        let source = from_source::source_args(&args);
        return match from_restic::to_stdout(&args, &source).await {
            Ok(bytes) => {
                tracing::info!(
                    bytes,
                    seconds = started.elapsed().as_secs_f64(),
                    "dump streamed"
                );
                ExitCode::SUCCESS
            }
            Err(f) => {
                tracing::error!(reason = f.failure.reason(), "{}", f.message);
                f.failure.into()
            }
        };
    }
    let outcome = restore(&args, started).await;
    let (json, code) = match outcome {
        Ok(result) => {
            tracing::info!(
                snapshot = %result.snapshot,
                postgres_version = %result.postgres_version,
                bytes = result.bytes,
                files = result.files,
                seconds = result.seconds,
                "restore complete"
            );
            (serde_json::to_string(&result), ExitCode::SUCCESS)
        }
        Err(f) => {
            tracing::error!(reason = f.failure.reason(), "{}", f.message);
            let failure = RestoreFailure {
                error: f.failure.reason().to_owned(),
                message: truncate(&f.message, TERMINATION_MESSAGE_LIMIT - 200),
                exit_code: f.failure.code(),
            };
            (serde_json::to_string(&failure), f.failure.into())
        }
    };
    let json = json.unwrap_or_else(|e| format!(r#"{{"error":"Error","message":"{e}"}}"#));
    println!("{json}");
    if let Some(path) = &args.termination_log
        && let Err(e) = std::fs::write(path, &json)
    {
        tracing::warn!("writing the termination log {} failed: {e}", path.display());
    }
    code
}

/// `s` cut to at most `max` bytes on a character boundary, with `…` when cut.
#[must_use]
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

async fn restore(args: &RestoreArgs, started: Instant) -> Result<RestoreResult, Failed> {
    if let Some(source) = &args.source {
        // A Kopia source (`kopia: {secretRef}`) is the Kopia restore with the Secret's keys as options.
        match from_source::kopia_options(args, source)? {
            Some(repo) => return restore_kopia(args, &repo, started).await,
            None => return from_source::restore(args, started).await,
        }
    }
    restore_kopia(args, &args.repo, started).await
}

async fn restore_kopia(
    args: &RestoreArgs,
    repo_args: &RepositoryArgs,
    started: Instant,
) -> Result<RestoreResult, Failed> {
    let location = repo_args.location();
    tracing::info!(repository = %location, snapshot = %args.snapshot, "connecting");
    let repo = repo_args.connect().await.map_err(|e| {
        Failed::new(
            e.failure(),
            format!("opening the repository at {location}: {}", error_chain(&e)),
        )
    })?;
    let snapshot = resolve(&repo, &args.snapshot, args.filter.as_deref()).await?;
    let id = snapshot.id.to_string();
    tracing::info!(
        snapshot = %id,
        source = %snapshot.source,
        start_time = %snapshot.start_time,
        total_size = snapshot.total_size(),
        "restoring"
    );

    // Decided before anything is downloaded: the target is ours, the snapshot holds PGDATA, and every
    // tablespace has its copy inside it.
    let root = snapshot.root_entry.clone().ok_or_else(|| {
        Failed::new(
            Failure::Corrupted,
            format!("snapshot {id} has no root entry"),
        )
    })?;
    let tree = snapshot_tree::SnapshotTree::new(&repo, root);
    let found = pgdata::locate(&tree)
        .await
        .map_err(|e| Failed::kopia("listing the snapshot", &e))?
        .ok_or_else(|| {
            Failed::new(
                Failure::NoPgdata,
                format!(
                    "snapshot {id} ({}) contains no PostgreSQL data directory: no directory with \
                     PG_VERSION and global/ at its root, behind a `current` symlink, or up to 4 levels \
                     deep; check the replica's snapshotFilter",
                    snapshot.source
                ),
            )
        })?;
    let spaces = tablespaces::plan(&tree, &found.rel, &found.version)
        .await
        .map_err(|e| match e {
            tablespaces::PlanError::Read(e) => Failed::kopia("listing the snapshot", &e),
            tablespaces::PlanError::Missing(m) => {
                Failed::new(Failure::TablespaceNotInSnapshot, m.message())
            }
        })?;
    drop(tree);
    // Claimed only for a snapshot that can be restored, so a refused one leaves the target as it was.
    match claim::claim(args.target()?, &id).map_err(|e| Failed::io("claiming the target", &e))? {
        Ok(()) => {}
        Err(refusal) => {
            return Err(Failed::new(
                Failure::TargetNotEmpty,
                refusal.message(args.target()?, &id),
            ));
        }
    }

    let dest = args.target()?.join("snapshot");
    std::fs::create_dir_all(&dest).map_err(|e| Failed::io("creating the target", &e))?;
    let (reporter, progress) =
        Reporter::start(std::io::stderr().is_terminal(), args.progress_interval);
    let opts = RestoreOptions {
        parallel: args.parallel.max(1),
        // A retried Job resumes: complete files (size and mtime match) are kept.
        skip_existing: true,
        sparse: false,
        restore_owner: args.restore_owners,
        progress: Some(progress),
    };
    let stats = repo.restore(&id, &dest, &opts).await;
    reporter.finish();
    let stats = stats.map_err(|e| Failed::kopia(&format!("restoring snapshot {id}"), &e))?;
    tablespaces::relink(&dest, &found.rel, &spaces)
        .map_err(|e| Failed::io("relinking tablespaces", &e))?;
    for t in &spaces {
        tracing::info!(
            oid = t.oid,
            name = t.name.as_deref().unwrap_or(""),
            location = %t.location.display(),
            restored_to = %t.in_snapshot.display(),
            "tablespace relinked inside the volume"
        );
    }
    let pgdata =
        expose(args.target()?, &found.rel).map_err(|e| Failed::io("exposing PGDATA", &e))?;

    Ok(RestoreResult {
        postgres_version: found.version,
        pgdata,
        pgdata_in_snapshot: found.rel,
        bytes: stats.bytes + stats.skipped_bytes,
        files: stats.files + stats.skipped_files,
        seconds: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        snapshot: id,
        snapshot_time: snapshot.start_time.to_string(),
        tablespaces: tablespaces::mappings(&dest, &spaces),
        dump: None,
    })
}

/// The snapshot to restore: an exact manifest ID, or the newest complete one matching the filter.
async fn resolve(
    repo: &Repository<Indexed>,
    wanted: &str,
    filter: Option<&str>,
) -> Result<SnapshotManifest, Failed> {
    let snapshots = repo
        .list_snapshots()
        .await
        .map_err(|e| Failed::kopia("listing snapshots", &e))?;
    if wanted == "latest" {
        let filter: Option<SnapshotFilter> =
            filter.map(serde_json::from_str).transpose().map_err(|e| {
                Failed::new(
                    Failure::Usage,
                    format!("--filter is not a valid snapshot filter: {e}"),
                )
            })?;
        let compiled = CompiledFilter::new(filter.as_ref())
            .map_err(|e| Failed::new(Failure::Usage, e.to_string()))?;
        let infos: Vec<SnapshotInfo> = snapshots.iter().map(SnapshotInfo::from_manifest).collect();
        let newest = choose_newest(&infos, &compiled).ok_or_else(|| {
            Failed::new(
                Failure::SnapshotNotFound,
                format!(
                    "none of the {} snapshots matches the filter",
                    snapshots.len()
                ),
            )
        })?;
        let id = newest.id.clone();
        snapshots
            .into_iter()
            .find(|s| s.id.to_string() == id)
            .ok_or_else(|| Failed::new(Failure::Other, "chosen snapshot vanished"))
    } else {
        snapshots
            .into_iter()
            .find(|s| s.id.to_string() == wanted)
            .ok_or_else(|| {
                Failed::new(
                    Failure::SnapshotNotFound,
                    format!("snapshot {wanted} is not in the repository"),
                )
            })
    }
}

/// Makes `<target>/data` point at PGDATA (a relative symlink, so it holds wherever the volume is mounted),
/// removes a stale `postmaster.pid` and gives PGDATA the 0700 mode PostgreSQL insists on.
fn expose(target: &Path, rel: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;

    let link = target.join("data");
    match std::fs::symlink_metadata(&link) {
        Ok(m) if m.file_type().is_symlink() => std::fs::remove_file(&link)?,
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a symlink", link.display()),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::os::unix::fs::symlink(Path::new("snapshot").join(rel), &link)?;
    let real = target.join("snapshot").join(rel);
    match std::fs::remove_file(real.join("postmaster.pid")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700))?;
    Ok(link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expose_links_data_and_cleans_pgdata() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().expect("tempdir");
        let real = t.path().join("snapshot/16/main");
        std::fs::create_dir_all(&real).expect("mkdir");
        std::fs::write(real.join("postmaster.pid"), "123").expect("write");
        let link = expose(t.path(), Path::new("16/main")).expect("expose");
        assert_eq!(link, t.path().join("data"));
        assert!(!real.join("postmaster.pid").exists());
        let mode = std::fs::metadata(&link).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // Idempotent for a retried Job.
        expose(t.path(), Path::new("16/main")).expect("expose again");
        assert_eq!(
            std::fs::read_link(&link).expect("readlink"),
            PathBuf::from("snapshot/16/main")
        );
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("ééé", 3), "é…");
    }
}
