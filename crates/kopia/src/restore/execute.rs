//! Executing a [`RestorePlan`] with bounded, pipelined parallelism.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::{StreamExt, TryStreamExt};

use super::{
    Attributes, RestoreOptions, RestorePlan, RestoreProgress, RestoreStats, RestoreTarget,
};
use crate::error::Error;
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

    futures::stream::iter(work)
        .map(|(st, chunk)| {
            let contents = Arc::clone(contents);
            let progress = Arc::clone(&progress);
            let t = Arc::clone(&target);
            async move {
                let info = contents.info(&chunk.object_id.content_id())?;
                let (info, stored) = contents.fetch(info).await?;
                blocking(move || {
                    let data = contents.decode(&info, stored)?;
                    let data = finish_direct(chunk.object_id, data, Some(chunk.length))?;
                    let file = st.file(&t)?;
                    t.write_at(&file, &st.path, chunk.start, &data)?;
                    drop(file);
                    let last = st.remaining.fetch_sub(1, Ordering::AcqRel) == 1;
                    if last {
                        st.finish(&t)?;
                    }
                    progress.add(chunk.length, u64::from(last));
                    Ok(())
                })
                .await
            }
        })
        .buffer_unordered(parallel)
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
