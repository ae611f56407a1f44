//! One dump of a restic source, opened through the source seam: the snapshot chosen (`latest` or an ID),
//! its file found, its bytes streamed blob by blob (every blob's SHA-256 checked) — what
//! `pgro restore --stdout` writes and the instance replays — and its header read from the first blobs
//! without losing them.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt as _};

use super::header::{self, DumpHeader, HeaderError};
use crate::source::open::{OpenError, Reader, SourceArgs, SourceError};

/// The dump's bytes.
pub type DumpStream = Pin<Box<dyn Stream<Item = Result<Bytes, restic::Error>> + Send>>;

/// A dump chosen in a restic repository.
#[derive(Debug)]
pub struct Dump {
    /// The repository.
    pub repo: Arc<restic::Repository>,
    /// The snapshot.
    pub snapshot: restic::Snapshot,
    /// The dump file in it.
    pub file: restic::FileNode,
}

/// Opens `source` (a restic source) and finds the dump of snapshot `backup` (`latest` or an ID prefix).
///
/// # Errors
/// Not a restic source, or opening, choosing or finding fails.
pub async fn open(source: &SourceArgs, backup: &str) -> Result<Dump, OpenError> {
    let Reader::Restic(d) = source.open().await? else {
        return Err(OpenError::Config(SourceError(
            "this is not a restic source: only logical dumps (source.restic) stream to standard output"
                .into(),
        )));
    };
    let snapshot = restic::Repository::choose(&d.snapshots, backup)?.clone();
    let file = d.repo.find_file(&snapshot, &d.file_name).await?;
    Ok(Dump {
        repo: d.repo,
        snapshot,
        file,
    })
}

impl Dump {
    /// The dump's bytes from the start.
    #[must_use]
    pub fn stream(&self) -> DumpStream {
        Box::pin(restic::stream_file(
            self.repo.clone(),
            self.file.clone(),
            restic::DEFAULT_PREFETCH,
        ))
    }

    /// Reads the header from the stream's first blobs (up to [`header::HEADER_SCAN`]), returning it with
    /// a stream of the whole dump (those blobs first).
    ///
    /// # Errors
    /// Reading fails, or the bytes are not a plain SQL dump.
    pub async fn header(&self) -> Result<(DumpHeader, DumpStream), HeaderReadError> {
        let mut s = self.stream();
        let mut head: Vec<Bytes> = Vec::new();
        let mut buf = Vec::new();
        let parsed = loop {
            let done = match s.next().await {
                Some(chunk) => {
                    let chunk = chunk.map_err(HeaderReadError::Read)?;
                    buf.extend_from_slice(&chunk);
                    head.push(chunk);
                    buf.len() >= header::HEADER_SCAN
                }
                None => true,
            };
            let h = header::parse(&buf);
            match &h {
                Ok(h) if h.dumped_from.is_some() && h.dumped_by.is_some() => break h.clone(),
                Err(e @ (HeaderError::Archive | HeaderError::Compressed(_))) => {
                    return Err(HeaderReadError::Header(e.clone()));
                }
                _ if done => break h.map_err(HeaderReadError::Header)?,
                _ => {}
            }
        };
        let rest = futures::stream::iter(head.into_iter().map(Ok)).chain(s);
        Ok((parsed, Box::pin(rest)))
    }
}

/// Reading a dump's header failed.
#[derive(Debug, thiserror::Error)]
pub enum HeaderReadError {
    /// The repository failed.
    #[error(transparent)]
    Read(restic::Error),
    /// The bytes are not a dump pgro replays.
    #[error(transparent)]
    Header(HeaderError),
}
