//! Executing one unit of a plan: fetch (async, ranged), then decrypt, decompress, hash and write on the
//! blocking pool. Large whole files and block-incremental files stream through a bounded channel, so memory
//! stays at a few chunks per unit whatever the file size.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use blobstore::BlobStore;
use bytes::Bytes;
use futures::StreamExt as _;
use tokio::sync::mpsc;

use super::plan::FileJob;
use super::sink::Sink;
use crate::blockmap::{self, BlockItem};
use crate::cipher::{self, Framing};
use crate::codec::{self, Encoding};
use crate::error::Error;
use crate::manifest::Manifest;

/// Whole files up to this stored size are read with one GET; larger ones stream in chunks of this size.
const CHUNK: u64 = 8 << 20;
/// Chunks (or super-block runs) fetched ahead of the decoder, per unit.
const AHEAD: usize = 4;
/// Super blocks of one object read with one request up to this many stored bytes.
const SUPER_RUN: u64 = 8 << 20;

/// What every unit of one restore shares.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) store: Arc<dyn BlobStore>,
    pub(crate) manifest: Arc<Manifest>,
    pub(crate) stanza: String,
    /// Decoding workers: fetches run ahead of them, decoding is CPU-bound.
    pub(crate) decoders: Arc<tokio::sync::Semaphore>,
}

/// The buffers `u` holds while in flight, in MiB (at least 1): what a restore's budget counts.
pub(crate) fn buffer_mib(u: &super::plan::Unit) -> u32 {
    use super::plan::Unit;
    let bytes = match u {
        Unit::Whole { job, .. } if job.file.repo_size <= CHUNK => job.file.repo_size,
        Unit::Whole { .. } => CHUNK * AHEAD as u64,
        Unit::Bundle { start, end, .. } => end - start,
        Unit::Block { .. } => SUPER_RUN * AHEAD as u64,
    };
    u32::try_from(bytes.div_ceil(1 << 20))
        .unwrap_or(u32::MAX)
        .max(1)
}

impl Ctx {
    fn encoding(&self, raw: bool) -> Encoding<'_> {
        Encoding {
            pass: self.manifest.cipher_pass.as_deref(),
            compress: self.manifest.compress,
            raw,
        }
    }

    fn backup_key(&self, label: &str, rest: &str) -> String {
        format!("backup/{}/{label}/{rest}", self.stanza)
    }
}

/// Runs decoding work on the blocking pool once a decoding worker is free.
async fn blocking<T: Send + 'static>(
    ctx: &Ctx,
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let _worker = ctx
        .decoders
        .acquire()
        .await
        .map_err(|e| Error::io("(restore worker)", io::Error::other(e)))?;
    streaming(f).await
}

/// Runs the decoder of a streamed unit (a large file, a block-incremental file) on the blocking pool
/// without taking a decoding worker: it spends much of its life waiting for chunks from the network, and
/// holding a worker meanwhile would stall every small file behind one or two big ones. The buffer budget
/// already limits how many run at once.
async fn streaming<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::io("(restore worker)", io::Error::other(e.to_string())))?
}

/// A whole stored file.
pub(crate) async fn whole(ctx: &Ctx, key: &str, job: &FileJob) -> Result<u64, Error> {
    let store = ctx.store.clone();
    let stored = if job.file.repo_size <= CHUNK {
        None
    } else {
        Some(
            store
                .head(key)
                .await
                .map_err(|e| Error::storage(key, e))?
                .size,
        )
    };
    let Some(len) = stored else {
        let data = store.get(key).await.map_err(|e| Error::storage(key, e))?;
        let ctx2 = ctx.clone();
        let job = job.clone();
        return blocking(ctx, move || {
            let ctx = ctx2;
            let mut sink = Sink::create(&job)?;
            let mut r = codec::decoder(&data[..], ctx.encoding(false));
            sink.copy_from(&mut r, &|e| sink_damage(&job, &e))?;
            sink.finish()
        })
        .await;
    };
    let (reader, producer) = blobstore::stream_object(store, key.to_owned(), len, CHUNK, AHEAD);
    let ctx2 = ctx.clone();
    let job2 = job.clone();
    let consumer = streaming(move || {
        let mut sink = Sink::create(&job2)?;
        let mut r = codec::decoder(reader, ctx2.encoding(false));
        sink.copy_from(&mut r, &|e| sink_damage(&job2, &e))?;
        sink.finish()
    })
    .await;
    let produced = producer
        .await
        .map_err(|e| Error::io("(fetch task)", io::Error::other(e.to_string())))?;
    produced.map_err(|e| Error::storage(key, e))?; // explains a short stream better than the decoder
    consumer
}

/// Adjacent members of one bundle, read with one request.
pub(crate) async fn bundle(
    ctx: &Ctx,
    key: &str,
    start: u64,
    end: u64,
    jobs: &[FileJob],
) -> Result<u64, Error> {
    let data = ctx
        .store
        .get_range(key, start..end)
        .await
        .map_err(|e| Error::storage(key, e))?;
    let ctx = ctx.clone();
    let jobs = jobs.to_vec();
    let ctx2 = ctx.clone();
    blocking(&ctx2, move || {
        let mut bytes = 0;
        for job in &jobs {
            let off = job.file.bundle.map_or(0, |b| b.1) - start;
            let slice = usize::try_from(off)
                .ok()
                .zip(usize::try_from(job.file.repo_size).ok())
                .and_then(|(o, n)| data.get(o..o.checked_add(n)?))
                .ok_or_else(|| {
                    Error::corrupted(&job.file.name, "its bundle slice is out of range")
                })?;
            let plain =
                codec::decode_all(slice, ctx.encoding(ctx.manifest.bundle_raw), job.file.size)
                    .map_err(|e| sink_damage(job, &e))?;
            let mut sink = Sink::create(job)?;
            sink.write(&plain)?;
            bytes += sink.finish()?;
        }
        Ok(bytes)
    })
    .await
}

/// Identity of a stored super block: (reference index, bundle id, offset, stored size).
type SuperId = (usize, u64, u64, u64);

fn super_id(i: &BlockItem) -> SuperId {
    (i.reference, i.bundle_id, i.offset, i.size)
}

/// A block-incremental file: its map, then its super blocks in first-use order, coalesced per object.
pub(crate) async fn block(ctx: &Ctx, job: &FileJob) -> Result<u64, Error> {
    let f = &job.file;
    let bi = f
        .block
        .ok_or_else(|| Error::corrupted(&f.name, "not block incremental"))?;
    let m = &ctx.manifest;
    let object = |reference: &str, bundle_id: u64| {
        if bundle_id == 0 {
            ctx.backup_key(reference, &format!("{}.pgbi", f.name))
        } else {
            ctx.backup_key(reference, &format!("bundle/{bundle_id}"))
        }
    };
    let (id, base) = f.bundle.unwrap_or((0, 0));
    let map_key = object(&f.reference, id);
    let map_at = (base + f.repo_size)
        .checked_sub(bi.map_size)
        .ok_or_else(|| Error::corrupted(&f.name, "block map larger than the stored data"))?;
    let raw_map = ctx
        .store
        .get_range(&map_key, map_at..map_at + bi.map_size)
        .await
        .map_err(|e| Error::storage(&map_key, e))?;
    let map = match &m.cipher_pass {
        Some(p) => cipher::decrypt(&raw_map, p.as_bytes(), Framing::Raw)
            .map_err(|e| Error::corrupted(format!("{} (block map)", f.name), e))?,
        None => raw_map.to_vec(),
    };
    let checksum_size = usize::try_from(bi.checksum_size).unwrap_or(usize::MAX);
    let items = blockmap::decode(
        &map,
        bi.block_size,
        checksum_size,
        m.references.len(),
        f.size,
    )
    .map_err(|e| Error::corrupted(format!("{} (block map)", f.name), e))?;

    // Super blocks in first-use order, each with the index of its last use; runs of adjacent ones.
    let mut order: Vec<SuperId> = Vec::new();
    let mut last_use: HashMap<SuperId, (usize, u64)> = HashMap::new();
    for (n, it) in items.iter().enumerate() {
        if last_use
            .insert(super_id(it), (n, it.super_block_size))
            .is_none()
        {
            order.push(super_id(it));
        }
    }
    let mut runs: Vec<(String, u64, u64, Vec<SuperId>)> = Vec::new();
    for s in order {
        let key = object(&m.references[s.0], s.1);
        match runs.last_mut() {
            Some((k, start, end, ids))
                if *k == key && *end == s.2 && s.2 + s.3 - *start <= SUPER_RUN =>
            {
                *end = s.2 + s.3;
                ids.push(s);
            }
            _ => runs.push((key, s.2, s.2 + s.3, vec![s])),
        }
    }

    let (tx, rx) = mpsc::channel::<(u64, Bytes, Vec<SuperId>)>(AHEAD);
    let store = ctx.store.clone();
    let producer = tokio::spawn(async move {
        let mut fetched = futures::stream::iter(runs)
            .map(|(key, start, end, ids)| {
                let store = store.clone();
                async move {
                    let b = store
                        .get_range(&key, start..end)
                        .await
                        .map_err(|e| Error::storage(&key, e))?;
                    Ok::<_, Error>((start, b, ids))
                }
            })
            .buffered(AHEAD);
        while let Some(r) = fetched.next().await {
            if tx.send(r?).await.is_err() {
                break;
            }
        }
        Ok::<(), Error>(())
    });
    let ctx2 = ctx.clone();
    let job2 = job.clone();
    let consumer =
        streaming(move || assemble(&ctx2, &job2, bi.block_size, &items, &last_use, rx)).await;
    let produced = producer
        .await
        .map_err(|e| Error::io("(fetch task)", io::Error::other(e.to_string())))?;
    produced?;
    consumer
}

/// Writes the file block by block in order, decoding super blocks as their runs arrive and dropping each
/// after its last use (`last_use`: index of the last block served and decoded size, per super block).
fn assemble(
    ctx: &Ctx,
    job: &FileJob,
    block_size: u64,
    items: &[BlockItem],
    last_use: &HashMap<SuperId, (usize, u64)>,
    mut rx: mpsc::Receiver<(u64, Bytes, Vec<SuperId>)>,
) -> Result<u64, Error> {
    let f = &job.file;
    let mut cache: HashMap<SuperId, Vec<u8>> = HashMap::new();
    let mut sink = Sink::create(job)?;
    for (n, it) in items.iter().enumerate() {
        let id = super_id(it);
        while !cache.contains_key(&id) {
            let Some((start, data, ids)) = rx.blocking_recv() else {
                return Err(Error::corrupted(&f.name, "a super block was never fetched"));
            };
            for s in ids {
                let at = usize::try_from(s.2 - start).unwrap_or(usize::MAX);
                let len = usize::try_from(s.3).unwrap_or(usize::MAX);
                let slice = data
                    .get(at..at.saturating_add(len))
                    .ok_or_else(|| Error::corrupted(&f.name, "a super block is out of range"))?;
                let limit = last_use.get(&s).map_or(0, |u| u.1);
                let plain = codec::decode_all(slice, ctx.encoding(true), limit)
                    .map_err(|e| sink_damage(job, &e))?;
                cache.insert(s, plain);
            }
        }
        let sb = &cache[&id];
        let from = it.block_no.saturating_mul(block_size);
        let want = block_size.min(f.size - n as u64 * block_size);
        let block = usize::try_from(from)
            .ok()
            .zip(usize::try_from(want).ok())
            .and_then(|(a, w)| sb.get(a..a.checked_add(w)?))
            .ok_or_else(|| {
                Error::corrupted(
                    &f.name,
                    format!(
                        "block {n} is not inside its super block of {} bytes",
                        sb.len()
                    ),
                )
            })?;
        sink.write(block)?;
        if last_use.get(&id).is_some_and(|u| u.0 == n) {
            cache.remove(&id);
        }
    }
    sink.finish()
}

fn sink_damage(job: &FileJob, e: &io::Error) -> Error {
    Error::corrupted(&job.file.name, e)
}
