//! Executing a [`RestorePlan`] with bounded, pipelined parallelism.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::{StreamExt, TryStreamExt};

use super::{
    Attributes, RestoreOptions, RestorePlan, RestoreProgress, RestoreStats, RestoreTarget, coalesce,
};
use crate::content::ContentReader;
use crate::error::{Error, StorageError};
use crate::ids::ObjectId;
use crate::index::ContentInfo;
use crate::object::{Chunk, finish_direct, read_object_bytes};
use crate::repository::{Indexed, Repository};

enum Slot<F> {
    Pending,
    Open(Arc<F>),
    Done,
}

struct FileState<T: RestoreTarget> {
    path: PathBuf,
    size: u64,
    attrs: Attributes,
    slot: Mutex<Slot<T::File>>,
    remaining: AtomicUsize,
}

impl<T: RestoreTarget> FileState<T> {
    fn file(&self, target: &T) -> Result<Arc<T::File>, Error> {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        match &*slot {
            Slot::Open(f) => Ok(Arc::clone(f)),
            Slot::Pending => {
                let f = Arc::new(target.create_file(&self.path, self.size)?);
                *slot = Slot::Open(Arc::clone(&f));
                Ok(f)
            }
            Slot::Done => Err(Error::TargetConflict {
                path: self.path.clone(),
                reason: "file finished twice",
            }),
        }
    }

    fn finish(&self, target: &T) -> Result<(), Error> {
        let f = {
            let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
            match std::mem::replace(&mut *slot, Slot::Done) {
                Slot::Open(f) => f,
                Slot::Pending => Arc::new(target.create_file(&self.path, self.size)?),
                Slot::Done => return Ok(()),
            }
        };
        target.finish_file(&f, &self.path, &self.attrs)
    }
}

struct Progress {
    bytes_done: AtomicU64,
    files_done: AtomicU64,
    bytes_total: u64,
    files_total: u64,
    callback: Option<super::ProgressFn>,
}

impl Progress {
    fn add(&self, bytes: u64, files: u64) {
        let b = self.bytes_done.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let f = self.files_done.fetch_add(files, Ordering::Relaxed) + files;
        if let Some(cb) = &self.callback {
            cb(RestoreProgress {
                bytes_done: b,
                bytes_total: self.bytes_total,
                files_done: f,
                files_total: self.files_total,
            });
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Task(Box::new(e)))?
}

/// Fetched chunks decoded together. `blake2b_simd::many` hashes two 4 MiB inputs about 1.2×
/// faster than one after the other (measured on the 2-core benchmark machine; three or four
/// gained nothing more) and a small batch keeps more of the `parallel` slots fetching.
const HASH_BATCH: usize = 2;

/// Objects of this restore that decoded to nothing but zeros, with their length. PostgreSQL data
/// holds long runs of zero pages (new relation extents, preallocated WAL), and kopia's splitter
/// cuts a run of zeros into identical chunks (2 MiB each with the default DYNAMIC-4M-BUZHASH),
/// so one such object recurs many times: after its first read it is neither fetched nor decoded
/// again, only allocated at each place.
#[derive(Debug, Default)]
struct ZeroObjects(Mutex<HashMap<ObjectId, u64>>);

impl ZeroObjects {
    fn contains(&self, chunk: &Chunk) -> bool {
        let known = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        known.get(&chunk.object_id) == Some(&chunk.length)
    }

    fn insert(&self, chunk: &Chunk) {
        let mut known = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        known.insert(chunk.object_id, chunk.length);
    }
}

/// A chunk's stored bytes, ready to decode.
struct Fetched<T: RestoreTarget> {
    st: Arc<FileState<T>>,
    chunk: Chunk,
    info: ContentInfo,
    /// `None` for an object known to decode to zeros ([`ZeroObjects`]): nothing was fetched.
    stored: Option<bytes::Bytes>,
    /// The read's slot, held until its last chunk is written.
    permit: Arc<tokio::sync::OwnedSemaphorePermit>,
}

/// A spawned task that is aborted when dropped (a failed restore stops its fetches).
struct AbortOnDrop<T>(tokio::task::JoinHandle<Result<T, Error>>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = Result<T, Error>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.map_err(|e| Error::Task(Box::new(e)))?)
    }
}

/// Performs one pack read and splits it into its chunks. A read of several contents that fails
/// because the pack is gone or shorter than the read falls back to reading them one by one,
/// which refreshes the index when maintenance moved them and reports the content a truncated
/// pack cuts off (`ContentReader::fetch`).
async fn fetch_read<T: RestoreTarget>(
    contents: Arc<ContentReader>,
    zeros: Arc<ZeroObjects>,
    read: coalesce::PackRead<(Arc<FileState<T>>, Chunk)>,
    permit: Arc<tokio::sync::OwnedSemaphorePermit>,
) -> Result<Vec<Fetched<T>>, Error> {
    let fetched = |((st, chunk), info, stored): (_, _, bytes::Bytes)| Fetched {
        st,
        chunk,
        info,
        stored: Some(stored),
        permit: Arc::clone(&permit),
    };
    let mut parts = read.parts;
    if parts.len() == 1 {
        let Some((key, info)) = parts.pop() else {
            return Ok(Vec::new());
        };
        if zeros.contains(&key.1) {
            let (st, chunk) = key;
            return Ok(vec![Fetched {
                st,
                chunk,
                info,
                stored: None,
                permit,
            }]);
        }
        let (info, stored) = contents.fetch(info).await?;
        return Ok(vec![fetched((key, info, stored))]);
    }
    let data = match contents
        .fetch_pack_range(&read.pack, read.start..read.end)
        .await
    {
        Ok(d) => d,
        // Per-content reads refresh the index for a vanished pack and name the first content a
        // truncated pack cuts off.
        Err(
            Error::MissingBlob { .. }
            | Error::Storage {
                source: StorageError::InvalidRange { .. },
                ..
            },
        ) => {
            let mut out = Vec::with_capacity(parts.len());
            for (key, info) in parts {
                let (info, stored) = contents.fetch(info).await?;
                out.push(fetched((key, info, stored)));
            }
            return Ok(out);
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::with_capacity(parts.len());
    for (key, info) in parts {
        // Storage returns exactly the requested range; check anyway rather than panic.
        let from = u64::from(info.pack_offset).saturating_sub(read.start);
        let to = from + u64::from(info.packed_length);
        let within = usize::try_from(to).is_ok_and(|to| to <= data.len());
        if !within {
            return Err(Error::from_storage(
                &read.pack,
                StorageError::InvalidRange {
                    key: read.pack.to_string(),
                    start: read.start + from,
                    end: read.start + to,
                    len: read.start + data.len() as u64,
                },
            ));
        }
        let stored = data.slice(from as usize..to as usize);
        out.push(fetched((key, info, stored)));
    }
    Ok(out)
}

/// Decodes a batch of fetched chunks and writes each at its offset (on the blocking pool). A
/// chunk of zeros is handed to [`RestoreTarget::write_zeros`] and its object remembered.
fn decode_and_write<T: RestoreTarget>(
    contents: &ContentReader,
    zeros: &ZeroObjects,
    t: &T,
    progress: &Progress,
    batch: Vec<Fetched<T>>,
) -> Result<(), Error> {
    let mut metas = Vec::with_capacity(batch.len());
    let mut items = Vec::with_capacity(batch.len());
    for f in batch {
        let fetched = f.stored.is_some();
        if let Some(stored) = f.stored {
            items.push((f.info, stored));
        }
        metas.push((f.st, f.chunk, f.permit, fetched));
    }
    let mut decoded = contents.decode_many(items).into_iter();
    for (st, chunk, permit, fetched) in metas {
        let data = if fetched {
            let data = decoded.next().ok_or_else(|| {
                Error::Task("decoder returned fewer contents than it was given".into())
            })?;
            Some(finish_direct(chunk.object_id, data?, Some(chunk.length))?)
        } else {
            None
        };
        let file = st.file(t)?;
        match data {
            Some(data) if !super::fsops::is_zero(&data) => {
                t.write_at(&file, &st.path, chunk.start, &data)?;
            }
            Some(_) => {
                zeros.insert(&chunk);
                t.write_zeros(&file, &st.path, chunk.start, chunk.length)?;
            }
            None => t.write_zeros(&file, &st.path, chunk.start, chunk.length)?,
        }
        drop(file);
        let last = st.remaining.fetch_sub(1, Ordering::AcqRel) == 1;
        if last {
            st.finish(t)?;
        }
        progress.add(chunk.length, u64::from(last));
        drop(permit);
    }
    Ok(())
}

pub(super) async fn execute<T: RestoreTarget>(
    repo: &Repository<Indexed>,
    plan: RestorePlan,
    target: Arc<T>,
    opts: &RestoreOptions,
) -> Result<RestoreStats, Error> {
    let span = tracing::info_span!(
        "restore",
        files = plan.files.len(),
        bytes = plan.totals.bytes
    );
    let _guard = span.enter();
    let parallel = opts.parallel.max(1);

    // 1. Directories, parents first.
    let dir_paths: Vec<PathBuf> = plan.dirs.iter().map(|d| d.path.clone()).collect();
    let t = Arc::clone(&target);
    blocking(move || dir_paths.iter().try_for_each(|p| t.create_dir(p))).await?;

    let progress = Arc::new(Progress {
        bytes_done: AtomicU64::new(0),
        files_done: AtomicU64::new(0),
        bytes_total: plan.totals.bytes + plan.totals.skipped_bytes,
        files_total: plan.totals.files + plan.totals.skipped_files,
        callback: opts.progress.clone(),
    });

    // 2. Symlinks.
    let contents = repo.contents();
    futures::stream::iter(plan.symlinks.iter())
        .map(|s| {
            let t = Arc::clone(&target);
            async move {
                let link = read_object_bytes(contents, s.object_id).await?;
                let (path, attrs) = (s.path.clone(), s.attrs);
                blocking(move || t.create_symlink(&path, &link, &attrs)).await
            }
        })
        .buffer_unordered(parallel)
        .try_collect::<Vec<()>>()
        .await?;

    // 3. Files: skipped ones count as done; empty ones are created directly; the rest are
    //    split into chunk work items processed with bounded parallelism, so memory stays at
    //    about `parallel` chunks and one large file's chunks are fetched concurrently.
    let mut work: Vec<(Arc<FileState<T>>, Chunk)> = Vec::new();
    let mut empty = Vec::new();
    let mut skipped_bytes = 0;
    let mut skipped_files = 0;
    for f in plan.files {
        if f.skip {
            skipped_files += 1;
            skipped_bytes += f.size;
            continue;
        }
        let st = Arc::new(FileState {
            path: f.path,
            size: f.size,
            attrs: f.attrs,
            slot: Mutex::new(Slot::Pending),
            remaining: AtomicUsize::new(f.chunks.len()),
        });
        if f.chunks.is_empty() {
            empty.push(Arc::clone(&st));
        }
        work.extend(f.chunks.into_iter().map(|c| (Arc::clone(&st), c)));
    }
    progress.add(skipped_bytes, skipped_files);
    let empties = empty.len() as u64;
    let t = Arc::clone(&target);
    blocking(move || empty.iter().try_for_each(|st| st.finish(&t))).await?;
    progress.add(0, empties);

    // Two stages: up to `parallel` pack reads run as their own tasks (so a busy decode stage
    // never stalls a network read) — one per content, or one for several small neighbouring
    // contents of a pack (see `coalesce`) — and decode workers, no more than there are CPUs,
    // take whatever fetched chunks are ready, up to HASH_BATCH at a time, decode them (hashing
    // the batch together) and write them. A semaphore bounds the reads between start and the
    // last write to `parallel + workers × HASH_BATCH`, so `parallel` reads can stay outstanding
    // while the workers decode and memory stays at about that many chunks.
    let workers = parallel.min(
        std::thread::available_parallelism()
            .map(std::num::NonZeroUsize::get)
            .unwrap_or(1),
    );
    let work = work
        .into_iter()
        .map(|(st, chunk)| {
            let info = contents.info(&chunk.object_id.content_id())?;
            Ok(((st, chunk), info))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let reads = coalesce::group(work);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(parallel + workers * HASH_BATCH));
    let zeros = Arc::new(ZeroObjects::default());
    futures::stream::iter(reads)
        .map(|read| {
            let contents = Arc::clone(contents);
            let zeros = Arc::clone(&zeros);
            let in_flight = Arc::clone(&in_flight);
            async move {
                let permit = in_flight
                    .acquire_owned()
                    .await
                    .map_err(|e| Error::Task(Box::new(e)))?;
                AbortOnDrop(tokio::spawn(fetch_read(
                    contents,
                    zeros,
                    read,
                    Arc::new(permit),
                )))
                .await
            }
        })
        .buffer_unordered(parallel)
        .map_ok(|fetched| futures::stream::iter(fetched.into_iter().map(Ok::<_, Error>)))
        .try_flatten()
        .ready_chunks(HASH_BATCH)
        .map(|batch| {
            let contents = Arc::clone(contents);
            let zeros = Arc::clone(&zeros);
            let progress = Arc::clone(&progress);
            let t = Arc::clone(&target);
            async move {
                let batch = batch.into_iter().collect::<Result<Vec<_>, Error>>()?;
                blocking(move || decode_and_write(&contents, &zeros, t.as_ref(), &progress, batch))
                    .await
            }
        })
        .buffer_unordered(workers)
        .try_collect::<Vec<()>>()
        .await?;

    // 4. Directory attributes, deepest first (after their children, like kopia's FinishDirectory).
    let mut dirs: Vec<(usize, PathBuf, Attributes)> = plan
        .dirs
        .iter()
        .map(|d| (d.depth, d.path.clone(), d.attrs))
        .collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0));
    let t = Arc::clone(&target);
    blocking(move || dirs.iter().try_for_each(|(_, p, a)| t.finish_dir(p, a))).await?;

    Ok(RestoreStats {
        dirs: plan.totals.dirs,
        files: plan.totals.files,
        symlinks: plan.totals.symlinks,
        bytes: plan.totals.bytes,
        skipped_files,
        skipped_bytes,
        chunks: plan.totals.chunks,
    })
}
