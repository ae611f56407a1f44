//! `pgro kopia …`: the repository commands a person needs to check what pgro sees — snapshot listing
//! (kopia-compatible JSON), restore and content verification — without the kopia binary.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use kopia::{DirEntry, RestoreOptions, SnapshotManifest, SourceInfo};

use super::exit::Failure;
use super::progress::Reporter;
use super::repository::{RepositoryArgs, RepositoryError};

/// `pgro kopia`.
#[derive(Debug, Args)]
pub struct KopiaArgs {
    #[command(flatten)]
    pub repo: RepositoryArgs,
    #[command(subcommand)]
    pub command: KopiaCommand,
}

#[derive(Debug, Subcommand)]
pub enum KopiaCommand {
    /// Snapshot commands.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Content commands.
    #[command(subcommand)]
    Content(ContentCommand),
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// List snapshots of every source (or of one `user@host:/path`, or of a path of this user and host).
    #[command(alias = "ls")]
    List {
        /// Only snapshots of this source: `user@host:/path`, or a directory, read as kopia does (the
        /// current user and host, the path made absolute); snapshots of its parent directories are
        /// listed too, showing the entry at the path.
        source: Option<String>,
        /// Print `kopia snapshot list --json` output.
        #[arg(long)]
        json: bool,
    },
    /// Restore a snapshot (manifest ID or root object ID, optionally `/sub/path`) into a directory.
    Restore(RestoreCmd),
}

#[derive(Debug, Args)]
pub struct RestoreCmd {
    /// Snapshot manifest ID or object ID, optionally followed by `/sub/path`.
    pub source: String,
    /// Target directory (created if missing).
    pub target: PathBuf,
    /// Chunks fetched and written concurrently.
    #[arg(long, default_value_t = 8)]
    pub parallel: usize,
    /// Skip files that already exist with the same size and modification time.
    #[arg(long)]
    pub skip_existing: bool,
    /// Leave holes for runs of zero bytes.
    #[arg(long)]
    pub write_sparse_files: bool,
    /// Do not restore file owners.
    #[arg(long)]
    pub skip_owners: bool,
    /// Log progress lines instead of drawing a bar, even on a terminal.
    #[arg(long)]
    pub no_progress_bar: bool,
}

#[derive(Debug, Subcommand)]
pub enum ContentCommand {
    /// Read, decrypt and hash-check a sample of contents.
    Verify {
        /// Percentage of contents to verify (the sample depends only on content IDs).
        #[arg(long, default_value_t = 100.0, value_parser = parse_percent)]
        percent: f64,
        /// Concurrent reads.
        #[arg(long, default_value_t = 16)]
        parallel: usize,
    },
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let p: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=100.0).contains(&p) {
        Ok(p)
    } else {
        Err("must be between 0 and 100".into())
    }
}

/// Runs a `pgro kopia` command.
pub async fn run(args: KopiaArgs) -> ExitCode {
    match dispatch(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgro kopia: {}", render_error(&e.error));
            e.failure.into()
        }
    }
}

/// A failed command: what to print and how to exit.
#[derive(Debug)]
struct Failed {
    failure: Failure,
    error: anyhow::Error,
}

impl From<RepositoryError> for Failed {
    fn from(e: RepositoryError) -> Self {
        Self {
            failure: e.failure(),
            error: e.into(),
        }
    }
}

impl From<kopia::Error> for Failed {
    fn from(e: kopia::Error) -> Self {
        Self {
            failure: Failure::of_kopia(&e),
            error: e.into(),
        }
    }
}

impl From<std::io::Error> for Failed {
    fn from(e: std::io::Error) -> Self {
        Self {
            failure: Failure::Other,
            error: e.into(),
        }
    }
}

/// The error and its causes on one line (`a: b: c`).
pub fn render_error(e: &anyhow::Error) -> String {
    format!("{e:#}")
}

/// A std error and its sources on one line.
pub use blobstore::error_chain;

async fn dispatch(args: KopiaArgs) -> Result<(), Failed> {
    let repo = args.repo.connect().await?;
    match args.command {
        KopiaCommand::Snapshot(SnapshotCommand::List { source, json }) => {
            let mut snaps = repo.list_snapshots().await?;
            let query = match &source {
                Some(arg) => {
                    let cwd = std::env::current_dir()?;
                    let q = parse_source(arg, &local_host_name(), &local_user_name(), &cwd)
                        .map_err(|e| Failed {
                            failure: Failure::Usage,
                            error: anyhow::anyhow!(e),
                        })?;
                    Some(q)
                }
                None => None,
            };
            if let Some(q) = &query {
                snaps.retain(|s| q.relative_path(&s.source).is_some());
            }
            if json {
                let text = kopia::snapshot_list_json(&snaps).map_err(|e| Failed {
                    failure: Failure::Other,
                    error: e.into(),
                })?;
                writeln!(std::io::stdout().lock(), "{text}")?;
                return Ok(());
            }
            let mut rows = Vec::with_capacity(snaps.len());
            for s in &snaps {
                let rel = query
                    .as_ref()
                    .and_then(|q| q.relative_path(&s.source))
                    .unwrap_or_default();
                let entry = if rel.is_empty() {
                    Ok(s.root_entry.clone())
                } else {
                    // A parent directory's snapshot: show the entry at the path, as kopia does.
                    repo.resolve_restore_root(&format!("{}/{rel}", s.id))
                        .await
                        .map(Some)
                        .map_err(|e| error_chain(&e))
                };
                rows.push(ListRow { snapshot: s, entry });
            }
            std::io::stdout()
                .lock()
                .write_all(render_list(&rows).as_bytes())?;
            Ok(())
        }
        KopiaCommand::Snapshot(SnapshotCommand::Restore(cmd)) => {
            let terminal = std::io::stderr().is_terminal() && !cmd.no_progress_bar;
            let (reporter, progress) = Reporter::start(terminal, Duration::from_secs(10));
            let opts = RestoreOptions {
                parallel: cmd.parallel.max(1),
                skip_existing: cmd.skip_existing,
                sparse: cmd.write_sparse_files,
                restore_owner: !cmd.skip_owners,
                progress: Some(progress),
            };
            let started = Instant::now();
            let result = repo.restore(&cmd.source, &cmd.target, &opts).await;
            reporter.finish();
            let stats = result?;
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "Restored {} files, {} directories and {} symbolic links ({}) in {:.1}s ({:.1} MB/s){}.",
                stats.files,
                stats.dirs,
                stats.symlinks,
                human_bytes(stats.bytes),
                secs,
                stats.bytes as f64 / 1e6 / secs.max(0.001),
                if stats.skipped_files > 0 {
                    format!("; skipped {} up-to-date files", stats.skipped_files)
                } else {
                    String::new()
                }
            );
            Ok(())
        }
        KopiaCommand::Content(ContentCommand::Verify { percent, parallel }) => {
            let report = repo.verify_contents(percent, parallel).await?;
            for (id, e) in &report.failures {
                eprintln!("content {id}: {}", error_chain(e));
            }
            eprintln!(
                "Verified {} of {} contents ({}); {} failed.",
                report.checked,
                report.total,
                human_bytes(report.bytes),
                report.failures.len()
            );
            if report.failures.is_empty() {
                Ok(())
            } else {
                Err(Failed {
                    failure: Failure::Corrupted,
                    error: anyhow::anyhow!(
                        "{} contents failed verification",
                        report.failures.len()
                    ),
                })
            }
        }
    }
}

/// A line of the text listing: a snapshot and the entry it shows — its root, or (for a path argument
/// inside a parent directory's snapshot) the entry at that path, or why that entry could not be read.
#[derive(Debug)]
pub struct ListRow<'a> {
    /// The snapshot.
    pub snapshot: &'a SnapshotManifest,
    /// The entry shown.
    pub entry: Result<Option<DirEntry>, String>,
}

/// Human listing grouped by source, newest last (like kopia's text output). Size, files and dirs are
/// the shown entry's directory summary (kopia's `rootEntry.summ`): the snapshot's content, not the
/// upload statistics (`stats.fileCount` counts only the files hashed by that upload).
pub fn render_list(rows: &[ListRow<'_>]) -> String {
    let mut out = String::new();
    let mut current: Option<String> = None;
    for row in rows {
        let s = row.snapshot;
        let source = s.source.to_string();
        if current.as_deref() != Some(source.as_str()) {
            if current.is_some() {
                out.push('\n');
            }
            out.push_str(&source);
            out.push('\n');
            current = Some(source);
        }
        let entry = match &row.entry {
            Ok(e) => e.as_ref(),
            Err(e) => {
                out.push_str(&format!("  {} <ERROR> {e}\n", s.start_time));
                continue;
            }
        };
        let summary = entry.and_then(|e| e.summary.as_ref());
        let size = match (summary, entry) {
            (Some(m), _) => m.size,
            (None, Some(e)) => e.size,
            (None, None) => s.stats.total_size,
        };
        let counts = summary.map_or_else(String::new, |m| {
            format!(" files:{} dirs:{}", m.files, m.dirs)
        });
        let tags: Vec<String> = s
            .tags
            .iter()
            .map(|(k, v)| format!("{}={v}", k.strip_prefix("tag:").unwrap_or(k)))
            .collect();
        out.push_str(&format!(
            "  {} {} {}{}{}{}{}\n",
            s.start_time,
            s.id,
            human_bytes(u64::try_from(size).unwrap_or(0)),
            counts,
            if tags.is_empty() {
                String::new()
            } else {
                format!(" tags:{}", tags.join(","))
            },
            if s.description.is_empty() {
                String::new()
            } else {
                format!(" {:?}", s.description)
            },
            if s.incomplete_reason.is_empty() {
                String::new()
            } else {
                format!(" (incomplete: {})", s.incomplete_reason)
            },
        ));
    }
    out
}

/// The source a `snapshot list` argument names, read like kopia's `snapshot.ParseSourceInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceQuery {
    /// A source with a path: its snapshots and those of its parent directories (kopia's
    /// `findSnapshotsForSource` walks up to `/`).
    Path(SourceInfo),
    /// `user@host`, `@host` or `(global)`: kopia looks only for sources with a path, so it lists none.
    NoPath,
}

impl SourceQuery {
    /// For a snapshot of `source`: `Some` path of the queried directory inside it (empty for the
    /// source itself), `None` when the snapshot is not listed.
    pub fn relative_path(&self, source: &SourceInfo) -> Option<String> {
        let Self::Path(q) = self else {
            return None;
        };
        if source.host != q.host || source.user_name != q.user_name {
            return None;
        }
        if source.path == q.path {
            return Some(String::new());
        }
        let parent = source.path.trim_end_matches('/');
        q.path
            .strip_prefix(parent)
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|rest| !rest.is_empty())
            .map(str::to_owned)
    }
}

/// Parses a `snapshot list` argument: `user@host:/path`, `user@host`, `@host`, `(global)`, or a
/// directory of `user` on `host` (relative to `cwd`, cleaned without resolving symbolic links, as
/// Go's `filepath.Abs` does).
///
/// # Errors
///
/// `user@` with no host after the `@` (kopia: "invalid hostname").
pub fn parse_source(arg: &str, host: &str, user: &str, cwd: &Path) -> Result<SourceQuery, String> {
    if arg == "(global)" {
        return Ok(SourceQuery::NoPath);
    }
    let at = arg.find('@');
    let colon = arg.find(':');
    match (at, colon) {
        (Some(a), Some(c)) if a > 0 && a < c => {
            let path = &arg[c + 1..];
            if path.is_empty() {
                return Ok(SourceQuery::NoPath);
            }
            return Ok(SourceQuery::Path(SourceInfo {
                host: arg[a + 1..c].to_owned(),
                user_name: arg[..a].to_owned(),
                path: path.to_owned(),
            }));
        }
        (Some(a), None) if a + 1 < arg.len() => return Ok(SourceQuery::NoPath),
        (Some(_), None) => return Err(format!("invalid hostname in {arg:?}")),
        _ => {}
    }
    Ok(SourceQuery::Path(SourceInfo {
        host: host.to_owned(),
        user_name: user.to_owned(),
        path: clean_path(&cwd.join(arg)),
    }))
}

/// A lexically cleaned absolute path (`.` and `..` resolved, no trailing `/`), like Go's
/// `filepath.Clean`.
fn clean_path(p: &Path) -> String {
    use std::path::Component;
    let mut parts: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    format!("/{}", parts.join("/"))
}

/// The host name kopia records for this machine by default: the OS host name up to its first dot,
/// lower-cased (`repo.GetDefaultHostName`).
fn local_host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .and_then(|h| h.split('.').next().map(str::to_lowercase))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "nohost".to_owned())
}

/// The user name kopia records by default: the current user's (`repo.GetDefaultUserName`).
fn local_user_name() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map_or_else(|| "nobody".to_owned(), |u| u.name)
}

/// Bytes with a decimal unit, as kopia prints them (`1.5 GB`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_uses_decimal_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500_000_000), "1.5 GB");
    }

    fn src(user: &str, host: &str, path: &str) -> SourceInfo {
        SourceInfo {
            host: host.into(),
            user_name: user.into(),
            path: path.into(),
        }
    }

    #[test]
    fn plain_path_argument_is_this_user_and_host_like_kopia() {
        let cwd = Path::new("/work/dir");
        let q = |a| parse_source(a, "node1", "alice", cwd).expect("parses");
        assert_eq!(
            q("data/../pg/"),
            SourceQuery::Path(src("alice", "node1", "/work/dir/pg"))
        );
        assert_eq!(
            q("/srv/pg"),
            SourceQuery::Path(src("alice", "node1", "/srv/pg"))
        );
        assert_eq!(
            q("bob@db:/srv/pg"),
            SourceQuery::Path(src("bob", "db", "/srv/pg"))
        );
        // kopia only looks for sources with a path; these list nothing there either.
        assert_eq!(q("bob@db"), SourceQuery::NoPath);
        assert_eq!(q("@db"), SourceQuery::NoPath);
        assert_eq!(q("(global)"), SourceQuery::NoPath);
        assert!(parse_source("bob@", "h", "u", cwd).is_err());
    }

    #[test]
    fn path_query_lists_its_source_and_parent_sources_with_the_path_inside() {
        let q = SourceQuery::Path(src("u", "h", "/srv/pg/data"));
        assert_eq!(
            q.relative_path(&src("u", "h", "/srv/pg/data")),
            Some(String::new())
        );
        assert_eq!(
            q.relative_path(&src("u", "h", "/srv")),
            Some("pg/data".into())
        );
        assert_eq!(
            q.relative_path(&src("u", "h", "/")),
            Some("srv/pg/data".into())
        );
        assert_eq!(q.relative_path(&src("u", "h", "/srv/p")), None);
        assert_eq!(q.relative_path(&src("u", "h", "/srv/pg/data/base")), None);
        assert_eq!(q.relative_path(&src("v", "h", "/srv")), None);
        assert_eq!(SourceQuery::NoPath.relative_path(&src("u", "h", "/")), None);
    }

    #[test]
    fn text_listing_counts_the_snapshot_content_not_the_files_hashed_by_its_upload() {
        let snap: SnapshotManifest = serde_json::from_value(serde_json::json!({
            "id": "k0123456789abcdef0123456789abcdef",
            "source": {"host": "h", "userName": "u", "path": "/d"},
            "description": "",
            "startTime": "2026-01-02T03:04:05Z",
            "endTime": "2026-01-02T03:04:06Z",
            "stats": {"totalSize": 5000, "fileCount": 1, "dirCount": 1},
            "rootEntry": {
                "name": "d", "type": "d", "mode": "0755", "mtime": "2026-01-02T03:04:05Z",
                "obj": "k0123456789abcdef0123456789abcdef",
                "summ": {"size": 5000, "files": 42, "symlinks": 0, "dirs": 7,
                         "maxTime": "2026-01-02T03:04:05Z"}
            }
        }))
        .expect("a snapshot manifest");
        let text = render_list(&[ListRow {
            snapshot: &snap,
            entry: Ok(snap.root_entry.clone()),
        }]);
        assert!(text.contains("5.0 KB files:42 dirs:7"), "{text}");
        let text = render_list(&[ListRow {
            snapshot: &snap,
            entry: Err("no such entry".into()),
        }]);
        assert!(text.contains("<ERROR> no such entry"), "{text}");
    }

    #[test]
    fn percent_is_bounded() {
        assert!(parse_percent("12.5").is_ok());
        assert!(parse_percent("101").is_err());
        assert!(parse_percent("-1").is_err());
        assert!(parse_percent("x").is_err());
    }
}
