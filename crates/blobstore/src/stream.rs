//! One object streamed to blocking code: ranged GETs of a fixed size with a few in flight, handed over a
//! bounded channel to a [`Read`] — how a restore decodes objects far larger than it may hold in memory
//! (every reader crate's large files and tars go through it).

use std::io::{self, Read};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{BlobStore, Error};

/// A blocking [`Read`] over the chunks of [`stream_object`]. The end of the channel is the end of the
/// data: when the fetch fails the reader sees a short stream, and the fetch task's result says why.
#[derive(Debug)]
pub struct ChunkReader {
    rx: mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(c) => self.cur = c,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// Starts fetching `key` (`size` bytes) in ranges of `chunk` bytes, `ahead` at once and in order; returns
/// the reader (for a blocking thread) and the fetch task (await it after the reader is done: a storage
/// error explains a short stream better than the decoder's complaint). Dropping the reader stops the task.
#[must_use]
pub fn stream_object(
    store: Arc<dyn BlobStore>,
    key: String,
    size: u64,
    chunk: u64,
    ahead: usize,
) -> (ChunkReader, JoinHandle<Result<(), Error>>) {
    let ahead = ahead.max(1);
    let chunk = chunk.max(1);
    let (tx, rx) = mpsc::channel::<Bytes>(ahead);
    let task = tokio::spawn(async move {
        let mut pending = std::collections::VecDeque::new();
        let mut next = 0u64;
        loop {
            while pending.len() < ahead && next < size {
                let r = next..(next + chunk).min(size);
                next = r.end;
                let (store, key) = (store.clone(), key.clone());
                pending.push_back(tokio::spawn(async move { store.get_range(&key, r).await }));
            }
            let Some(first) = pending.pop_front() else {
                return Ok(());
            };
            let bytes = first.await.map_err(|e| Error::Unreachable {
                source: Box::new(io::Error::other(e.to_string())),
            })??;
            if tx.send(bytes).await.is_err() {
                for p in pending {
                    p.abort();
                }
                return Ok(()); // the reader stopped; its error is reported
            }
        }
    });
    (
        ChunkReader {
            rx,
            cur: Bytes::new(),
        },
        task,
    )
}

/// Reads `r` to its end, expecting at most `limit` bytes: a decoder of damaged or hostile input (a wrong
/// length field, a decompression bomb) must not make a reader allocate without bound. Every reader crate
/// decodes its in-memory units through this.
///
/// # Errors
/// `r` fails, or yields more than `limit` bytes (`InvalidData`).
pub fn read_bounded(r: impl Read, limit: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(limit.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("decodes to more than the {limit} bytes expected"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_object_streams_in_order_and_a_failure_is_the_tasks() {
        let store = Arc::new(MemoryStore::new());
        let data: Vec<u8> = (0..10_000_003u32).map(|i| (i % 253) as u8).collect();
        store.put("big", data.clone());
        let (mut reader, task) =
            stream_object(store.clone(), "big".into(), data.len() as u64, 1 << 20, 3);
        let got = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            reader.read_to_end(&mut out).map(|_| out)
        })
        .await
        .expect("join")
        .expect("read");
        task.await.expect("join").expect("fetch");
        assert!(got == data, "the bytes arrive whole and in order");

        // A missing object: the reader sees the end, the task says why.
        let (mut reader, task) = stream_object(store, "gone".into(), 5 << 20, 1 << 20, 2);
        let n = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            reader.read_to_end(&mut out).map(|_| out.len())
        })
        .await
        .expect("join")
        .expect("read");
        assert_eq!(n, 0);
        let e = task.await.expect("join").expect_err("missing");
        assert_eq!(e.class(), crate::ErrorClass::NotFound, "{e:?}");
    }

    #[test]
    fn read_bounded_refuses_more_than_the_limit() {
        assert_eq!(super::read_bounded(&b"abc"[..], 3).expect("fits"), b"abc");
        let e = super::read_bounded(&b"abcd"[..], 3).expect_err("too long");
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    }
}
