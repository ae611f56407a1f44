//! `pgro kopia …`: the repository commands a person needs to check what pgro sees — snapshot listing
//! (kopia-compatible JSON), restore and content verification — without the kopia binary.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use kopia::{RestoreOptions, SnapshotManifest};

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
    /// List snapshots of every source (or of one `user@host:/path`).
    #[command(alias = "ls")]
    List {
        /// Only snapshots of this source (`user@host:/path`).
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
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

async fn dispatch(args: KopiaArgs) -> Result<(), Failed> {
    let repo = args.repo.connect().await?;
    match args.command {
        KopiaCommand::Snapshot(SnapshotCommand::List { source, json }) => {
            let mut snaps = repo.list_snapshots().await?;
            if let Some(src) = source {
                snaps.retain(|s| s.source.to_string() == src);
            }
            let mut out = std::io::stdout().lock();
            if json {
                let text = kopia::snapshot_list_json(&snaps).map_err(|e| Failed {
                    failure: Failure::Other,
                    error: e.into(),
                })?;
                writeln!(out, "{text}")?;
            } else {
                out.write_all(render_list(&snaps).as_bytes())?;
            }
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

/// Human listing grouped by source, newest last (like kopia's text output).
pub fn render_list(snaps: &[SnapshotManifest]) -> String {
    let mut out = String::new();
    let mut current: Option<String> = None;
    for s in snaps {
        let source = s.source.to_string();
        if current.as_deref() != Some(source.as_str()) {
            if current.is_some() {
                out.push('\n');
            }
            out.push_str(&source);
            out.push('\n');
            current = Some(source);
        }
        let tags: Vec<String> = s
            .tags
            .iter()
            .map(|(k, v)| format!("{}={v}", k.strip_prefix("tag:").unwrap_or(k)))
            .collect();
        out.push_str(&format!(
            "  {} {} {} files:{} dirs:{}{}{}{}\n",
            s.start_time,
            s.id,
            human_bytes(u64::try_from(s.stats.total_size).unwrap_or(0)),
            s.stats.file_count,
            s.stats.dir_count,
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

    #[test]
    fn percent_is_bounded() {
        assert!(parse_percent("12.5").is_ok());
        assert!(parse_percent("101").is_err());
        assert!(parse_percent("-1").is_err());
        assert!(parse_percent("x").is_err());
    }
}
