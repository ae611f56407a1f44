//! One file of a snapshot as a stream of verified blobs, in order, with a bounded number fetched ahead:
//! a multi-GB dump flows through in about `prefetch` × the chunker's blob size (512 KiB – 8 MiB) of
//! memory and is never written anywhere on the way.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::{Stream, StreamExt as _};

use crate::error::Error;
use crate::repo::{FileNode, Repository};

/// Blobs fetched ahead by default: enough to hide a round trip per blob behind decoding, at most
/// ~64 MiB in flight with restic's largest chunks.
pub const DEFAULT_PREFETCH: usize = 8;

/// The contents of `file`, blob by blob. Each blob is fetched, decrypted, decompressed and hash-checked
/// in a task of its own (decoding runs in parallel); the stream ends with an error when the blobs do
/// not add up to the file's size in its tree.
pub fn stream_file(
    repo: Arc<Repository>,
    file: FileNode,
    prefetch: usize,
) -> impl Stream<Item = Result<Bytes, Error>> + Send + 'static {
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    let (size, path) = (file.size, file.path.clone());
    let blobs = futures::stream::iter(file.content)
        .map(move |id| {
            let repo = repo.clone();
            async move {
                tokio::spawn(async move { repo.read_blob(&id).await })
                    .await
                    .unwrap_or_else(|e| Err(Error::corrupt(format!("blob {id}"), e)))
            }
        })
        .buffered(prefetch.max(1))
        .inspect(move |r| {
            if let Ok(b) = r {
                counter.fetch_add(b.len() as u64, Ordering::Relaxed);
            }
        });
    let check = futures::stream::once(async move {
        let got = seen.load(Ordering::Relaxed);
        (got != size).then(|| {
            Err(Error::corrupt(
                path,
                format!("its blobs hold {got} bytes, its tree says {size}"),
            ))
        })
    })
    .filter_map(futures::future::ready);
    blobs.chain(check)
}
