//! `pgro restore --source SOURCE.yaml` of a restic source (a logical dump, KubeStash): nothing is restored
//! into a directory. Without `--stdout` it reports the dump — header, size, the PostgreSQL major the copy
//! runs — as the restore result the operator reads (the instance then replays the dump into a fresh
//! cluster); with `--stdout` it streams the dump's exact bytes, every blob verified.

use std::time::Instant;

use futures::StreamExt as _;
use tokio::io::AsyncWriteExt as _;

use super::{Failed, RestoreArgs, RestoreResult};
use crate::cli::exit::Failure;
use crate::logical::dump::{Dump, HeaderReadError};
use crate::logical::header::NEWEST_MAJOR;
use crate::source::open::{OpenError, SourceArgs};

fn opened(e: &OpenError) -> Failed {
    Failed::new(e.failure(), e.message())
}

fn read_failed(e: &restic::Error) -> Failed {
    Failed::new(
        Failure::of_restic(e),
        format!("reading the dump: {}", crate::cli::kopia::error_chain(e)),
    )
}

/// The restore result of a logical dump: its header and size.
pub(super) async fn report(
    args: &RestoreArgs,
    source: &SourceArgs,
    started: Instant,
) -> Result<RestoreResult, Failed> {
    let dump = crate::logical::dump::open(source, &args.snapshot)
        .await
        .map_err(|e| opened(&e))?;
    let (header, _) = dump.header().await.map_err(|e| match e {
        HeaderReadError::Read(e) => read_failed(&e),
        HeaderReadError::Header(h) => Failed::new(
            Failure::Unsupported,
            format!("snapshot {}: {h}", dump.snapshot.short_id()),
        ),
    })?;
    let major = header.major().unwrap_or(NEWEST_MAJOR);
    tracing::info!(
        snapshot = %dump.snapshot.id,
        kind = ?header.kind,
        dumped_from = header.dumped_from.as_deref().unwrap_or("?"),
        major,
        bytes = dump.file.size,
        "logical dump found"
    );
    Ok(RestoreResult {
        postgres_version: major.to_string(),
        pgdata: args
            .target
            .as_deref()
            .map(|t| t.join("data"))
            .unwrap_or_default(),
        pgdata_in_snapshot: dump.file.path.clone().into(),
        bytes: dump.file.size,
        files: 1,
        seconds: started.elapsed().as_secs_f64(),
        snapshot: dump.snapshot.id.hex(),
        snapshot_time: dump.snapshot.time.to_string(),
        tablespaces: Vec::new(),
        dump: Some(header),
    })
}

/// Streams the dump to standard output.
pub(super) async fn to_stdout(args: &RestoreArgs, source: &SourceArgs) -> Result<u64, Failed> {
    let dump: Dump = crate::logical::dump::open(source, &args.snapshot)
        .await
        .map_err(|e| opened(&e))?;
    let mut out = tokio::io::stdout();
    let mut s = dump.stream();
    let mut bytes = 0u64;
    while let Some(chunk) = s.next().await {
        let chunk = chunk.map_err(|e| read_failed(&e))?;
        out.write_all(&chunk).await.map_err(|e| {
            Failed::new(
                Failure::Other,
                format!("writing to standard output after {bytes} bytes: {e}"),
            )
        })?;
        bytes += chunk.len() as u64;
    }
    out.flush()
        .await
        .map_err(|e| Failed::new(Failure::Other, format!("flushing standard output: {e}")))?;
    Ok(bytes)
}
