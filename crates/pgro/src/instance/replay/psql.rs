//! The replay proper: the dump streamed from the repository, line by line through
//! [`crate::logical::filter`], into `psql -f -` as the superuser on the private socket, with psql's
//! standard error sorted by [`crate::logical::psql_errors`] as it comes. Nothing of the dump touches the
//! disk on the way; tablespace directories are made in the volume just before the line that needs them.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

use super::{EXIT_REPLAY, Logical};
use crate::cli::exit::Failure;
use crate::logical::dump::HeaderReadError;
use crate::logical::filter::Filter;
use crate::logical::header::DumpKind;
use crate::logical::psql_errors::Errors;
use crate::restore::RestoreFailure;

/// Bytes of filtered SQL gathered before one write to psql.
const WRITE_BATCH: usize = 1 << 20;
/// How often progress is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// How to reach the cluster being filled.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conn<'a> {
    /// The private socket directory.
    pub(crate) socket_dir: &'a Path,
    /// The port.
    pub(crate) port: u16,
    /// The superuser.
    pub(crate) su: &'a str,
}

fn failure(f: Failure, message: String) -> RestoreFailure {
    RestoreFailure {
        error: f.reason().to_owned(),
        message,
        exit_code: EXIT_REPLAY,
    }
}

/// Replays the dump; the statistics when psql ran it to its end (statements may have failed).
pub(super) async fn replay(
    l: &Logical,
    tablespaces: &Path,
    conn: &Conn<'_>,
    client: &tokio_postgres::Client,
    nss: &[(String, String)],
) -> Result<pgro_api::DumpReplayed, RestoreFailure> {
    let started = Instant::now();
    let dump = crate::logical::dump::open(&l.source, &l.snapshot)
        .await
        .map_err(|e| failure(e.failure(), format!("opening the dump: {}", e.message())))?;
    let (header, mut stream) = dump.header().await.map_err(|e| match e {
        HeaderReadError::Read(e) => {
            failure(Failure::of_restic(&e), format!("reading the dump: {e}"))
        }
        HeaderReadError::Header(h) => failure(Failure::Unsupported, h.to_string()),
    })?;
    // A single-database dump without CREATE DATABASE goes into the analytics database.
    let database = match (header.kind, header.creates_database) {
        (DumpKind::Database, false) => l.database.clone(),
        _ => "postgres".to_owned(),
    };
    if database != "postgres" {
        let create = format!(
            "CREATE DATABASE {}",
            super::super::db::quote_ident(&database)
        );
        match client.batch_execute(&create).await {
            Err(e) if super::super::db::sqlstate(&e) != Some("42P04") => {
                return Err(failure(
                    Failure::Other,
                    format!("creating database {database} for a single-database dump: {e}"),
                ));
            }
            _ => {}
        }
    }
    tracing::info!(
        snapshot = %dump.snapshot.id,
        kind = ?header.kind,
        dumped_by = header.dumped_by.as_deref().unwrap_or("?"),
        database = %database,
        bytes = dump.file.size,
        "replaying the dump"
    );
    // The server's own psql (same directory): as new as the image's PostgreSQL, which the major choice
    // made at least as new as the dump's pg_dump (it understands `\restrict`).
    let path = std::env::var("PATH").unwrap_or_default();
    let psql = super::super::binaries::find_on_path("postgres", &path)
        .and_then(|p| p.parent().map(|d| d.join("psql")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| "psql".into());
    let mut child = tokio::process::Command::new(&psql)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=0", "-h"])
        .arg(conn.socket_dir)
        .args([
            "-p",
            &conn.port.to_string(),
            "-U",
            conn.su,
            "-d",
            &database,
            "-f",
            "-",
        ])
        .env("PGAPPNAME", "pgro-replay")
        // The server would log each failed statement's text (`STATEMENT: …`), credentials included.
        .env("PGOPTIONS", "-c log_min_error_statement=panic")
        .envs(nss.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failure(Failure::Other, format!("starting psql: {e}")))?;
    // The reaper must not take psql's exit status.
    super::super::reaper::TOOLS.fetch_add(1, Ordering::SeqCst);
    let errors = Arc::new(Mutex::new(Errors::default()));
    let stderr = child.stderr.take().map(|err| {
        let errors = errors.clone();
        tokio::spawn(async move {
            // Bytes, not `lines()`: a message in another encoding must not stop the draining (psql
            // would block on a full pipe).
            let mut reader = BufReader::new(err);
            let mut raw = Vec::new();
            let mut logged = 0;
            while reader
                .read_until(b'\n', &mut raw)
                .await
                .is_ok_and(|n| n > 0)
            {
                let line = String::from_utf8_lossy(&raw).trim_end().to_owned();
                raw.clear();
                // Only psql's own lines: its `LINE n:` context quotes the statement, which may hold
                // a credential (a user mapping's password) that must not reach the log.
                if logged < 50 && line.starts_with("psql:") {
                    tracing::warn!(target: "psql", "{line}");
                    logged += 1;
                }
                if let Ok(mut e) = errors.lock() {
                    e.line(&line);
                }
            }
        })
    });
    let mut stdin = child.stdin.take();
    // A pg_dump of one database carries no roles: the ones it names are created first (NOLOGIN).
    let mut filter = Filter::new(
        &tablespaces.to_string_lossy(),
        header.kind == DumpKind::Database,
    );
    let mut bytes = 0u64;
    let mut carry: Vec<u8> = Vec::new();
    let mut out: Vec<u8> = Vec::with_capacity(WRITE_BATCH * 2);
    let mut last_progress = Instant::now();
    let mut fed: Result<(), RestoreFailure> = Ok(());
    'feed: while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                fed = Err(failure(
                    Failure::of_restic(&e),
                    format!("reading the dump: {e}"),
                ));
                break;
            }
        };
        bytes += chunk.len() as u64;
        let mut start = 0;
        while let Some(nl) = chunk[start..].iter().position(|&b| b == b'\n') {
            let end = start + nl + 1;
            let created = if carry.is_empty() {
                filter.line(&chunk[start..end], &mut out)
            } else {
                carry.extend_from_slice(&chunk[start..end]);
                let line = std::mem::take(&mut carry);
                filter.line(&line, &mut out)
            };
            if let Some(t) = created {
                if let Err(e) = make_tablespace_dir(Path::new(&t.dir)) {
                    fed = Err(failure(Failure::Other, e));
                    break 'feed;
                }
                tracing::info!(tablespace = %t.name, dir = %t.dir, "tablespace placed in the volume");
            }
            start = end;
        }
        carry.extend_from_slice(&chunk[start..]);
        if out.len() >= WRITE_BATCH {
            if let Err(e) = write(&mut stdin, &mut out).await {
                fed = Err(e);
                break;
            }
            if stdin.is_none() {
                // psql is gone: its status and standard error say why.
                break;
            }
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            tracing::info!(
                bytes,
                of = dump.file.size,
                statements = filter.statements,
                "replaying"
            );
        }
    }
    if fed.is_ok() {
        if !carry.is_empty() {
            let line = std::mem::take(&mut carry);
            let _ = filter.line(&line, &mut out);
        }
        if let Err(e) = write(&mut stdin, &mut out).await {
            fed = Err(e);
        }
    }
    drop(stdin);
    if fed.is_err() {
        let _ = child.start_kill();
    }
    let status = child.wait().await;
    super::super::reaper::TOOLS.fetch_sub(1, Ordering::SeqCst);
    if let Some(t) = stderr {
        let _ = t.await;
    }
    let errors = errors.lock().map(|e| e.clone()).unwrap_or_default();
    fed?;
    let status = status.map_err(|e| failure(Failure::Other, format!("waiting for psql: {e}")))?;
    if !status.success() || errors.fatal.is_some() {
        return Err(failure(
            Failure::Other,
            format!(
                "psql could not run the dump to its end ({status}): {}",
                errors
                    .fatal
                    .clone()
                    .or_else(|| errors.first.last().cloned())
                    .unwrap_or_default()
            ),
        ));
    }
    // Refused meta-commands count as failed statements, in line order with psql's failures.
    let mut first: Vec<(u64, String)> = filter
        .refused
        .iter()
        .map(|(n, cmd)| {
            (
                *n,
                format!("line {n}: psql meta-command {cmd} refused (a dump may only use \\connect, \\restrict and \\unrestrict)"),
            )
        })
        .chain(errors.first.iter().map(|e| (line_of(e), e.clone())))
        .collect();
    first.sort_by_key(|(n, _)| *n);
    first.truncate(crate::logical::psql_errors::KEEP);
    let replayed = pgro_api::DumpReplayed {
        statements: filter.statements,
        failed: errors.failed + filter.refused.len() as u64,
        tolerated: errors.tolerated,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
        first_errors: first.into_iter().map(|(_, e)| e).collect(),
    };
    tracing::info!(
        statements = replayed.statements,
        failed = replayed.failed,
        tolerated = replayed.tolerated,
        passwords_removed = filter.passwords_removed,
        bytes,
        seconds = replayed.seconds,
        "dump replayed"
    );
    Ok(replayed)
}

/// The line number of a kept failure (`line N: …`).
fn line_of(entry: &str) -> u64 {
    entry
        .strip_prefix("line ")
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Writes what the filter gathered; psql gone is reported by the caller from its status and stderr.
async fn write(
    stdin: &mut Option<tokio::process::ChildStdin>,
    out: &mut Vec<u8>,
) -> Result<(), RestoreFailure> {
    if let Some(s) = stdin.as_mut()
        && let Err(e) = s.write_all(out).await
    {
        *stdin = None;
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(failure(Failure::Other, format!("writing to psql: {e}")));
        }
    }
    out.clear();
    Ok(())
}

/// A tablespace directory: new, empty, 0700 (PostgreSQL wants to own it alone).
fn make_tablespace_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("creating tablespace directory {}: {e}", dir.display()))
}
