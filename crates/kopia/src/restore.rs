//! Restoring a snapshot tree into a local directory, as plan then execute.
//!
//! [`Repository::plan_restore`] walks the tree (reading directory objects and indirect lists,
//! not file data) and compares it with the target to produce a [`RestorePlan`]: what to create,
//! which files are already up to date (`skip_existing`), every data chunk to fetch, and totals.
//! [`Repository::execute_restore`] then fetches chunks with bounded parallelism — across files
//! *and* across the chunks of one large file — as independent tasks, while at most one decode
//! worker per CPU decrypts, decompresses and verifies ready chunks (two at a time, hashed
//! together) on the blocking pool and writes them at their offsets. A semaphore bounds the chunks
//! in flight to `parallel + 2 × workers`, so memory stays at about that many chunk sizes.
//! Attributes follow kopia's `FilesystemOutput`: owner (when permitted), mode including Go's
//! setuid/setgid/sticky bits, and mtime = atime = the entry's mtime; non-root directories take
//! `summ.maxTime` as their mtime, as kopia does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::Error;
use crate::ids::{ManifestId, ObjectId};
use crate::object::Chunk;
use crate::repository::{Indexed, Repository};
use crate::snapshot::{DirEntry, EntryType, FileMode};
use crate::time::Timestamp;

mod coalesce;
mod execute;
mod fsops;
mod plan;
mod target;

pub use target::{LocalDir, MemoryEntry, MemoryTarget, RestoreTarget};

/// Progress of a running restore, reported to [`RestoreOptions::progress`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreProgress {
    /// File bytes restored (or skipped as up to date) so far.
    pub bytes_done: u64,
    /// File bytes in the plan.
    pub bytes_total: u64,
    /// Files finished (written or skipped).
    pub files_done: u64,
    /// Files in the plan.
    pub files_total: u64,
}

/// A progress callback; called from worker threads, so keep it cheap.
pub type ProgressFn = Arc<dyn Fn(RestoreProgress) + Send + Sync>;

/// Restore settings.
#[derive(Clone)]
pub struct RestoreOptions {
    /// Chunk reads outstanding at once (at least 1); decoding and writing use at most one
    /// worker per CPU (and no more than `parallel`).
    pub parallel: usize,
    /// Skip files that exist with the same size and an mtime within 2 s (kopia `--skip-existing`).
    pub skip_existing: bool,
    /// Leave holes for runs of zeros instead of writing them (kopia `--write-sparse-files`);
    /// used by [`Repository::restore`] for its [`LocalDir`].
    pub sparse: bool,
    /// Restore uid/gid where the process is permitted to (errors are ignored otherwise); used by
    /// [`Repository::restore`] for its [`LocalDir`].
    pub restore_owner: bool,
    /// Progress callback.
    pub progress: Option<ProgressFn>,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        Self {
            parallel: 8,
            skip_existing: false,
            sparse: false,
            restore_owner: true,
            progress: None,
        }
    }
}

impl std::fmt::Debug for RestoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreOptions")
            .field("parallel", &self.parallel)
            .field("skip_existing", &self.skip_existing)
            .field("sparse", &self.sparse)
            .field("restore_owner", &self.restore_owner)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// Counts of a restore (planned totals, or what was done).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreStats {
    /// Directories created or updated.
    pub dirs: u64,
    /// Files written.
    pub files: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Bytes of file data written.
    pub bytes: u64,
    /// Files skipped as already up to date.
    pub skipped_files: u64,
    /// Bytes of the skipped files.
    pub skipped_bytes: u64,
    /// Data chunks fetched.
    pub chunks: u64,
}

/// Attributes to apply to a restored entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attributes {
    /// Go file mode.
    pub mode: FileMode,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification (and access) time.
    pub mtime: Timestamp,
}

impl Attributes {
    fn of(e: &DirEntry) -> Self {
        Self {
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            mtime: e.mtime,
        }
    }
}

/// A directory to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedDir {
    /// Path relative to the target (empty for the root).
    pub path: PathBuf,
    /// Depth below the root.
    pub depth: usize,
    /// Attributes.
    pub attrs: Attributes,
}

/// A file to write (or skip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    /// Path relative to the target.
    pub path: PathBuf,
    /// File size.
    pub size: u64,
    /// The file object.
    pub object_id: ObjectId,
    /// Data chunks with their offsets.
    pub chunks: Vec<Chunk>,
    /// Attributes.
    pub attrs: Attributes,
    /// Already up to date; nothing to do.
    pub skip: bool,
}

/// A symlink to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedSymlink {
    /// Path relative to the target.
    pub path: PathBuf,
    /// The object holding the link target.
    pub object_id: ObjectId,
    /// Attributes.
    pub attrs: Attributes,
}

/// Everything a restore will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestorePlan {
    /// Target directory (or file path, for a single-file snapshot).
    pub target: PathBuf,
    /// Directories, parents before children.
    pub dirs: Vec<PlannedDir>,
    /// Files.
    pub files: Vec<PlannedFile>,
    /// Symlinks.
    pub symlinks: Vec<PlannedSymlink>,
    /// Planned totals.
    pub totals: RestoreStats,
}

impl Repository<Indexed> {
    /// Resolves a restore source like kopia: a snapshot manifest ID or a root object ID,
    /// optionally followed by `/sub/path`. For an object ID, attributes come from the latest
    /// snapshot with that root; without one, a directory with mode 0555 and zero mtime is assumed.
    ///
    /// # Errors
    ///
    /// [`Error::SnapshotNotFound`] when nothing matches; read errors.
    pub async fn resolve_restore_root(&self, source: &str) -> Result<DirEntry, Error> {
        let (head, sub) = match source.split_once('/') {
            Some((h, s)) => (h, s),
            None => (source, ""),
        };
        let not_found = || Error::SnapshotNotFound {
            query: source.to_owned(),
        };
        let snapshots = self.list_snapshots().await?;
        let mut entry = if let Some(s) = head
            .parse::<ManifestId>()
            .ok()
            .and_then(|id| snapshots.iter().find(|s| s.id == id))
        {
            s.root_entry.clone().ok_or_else(not_found)?
        } else {
            let oid: ObjectId = head.parse().map_err(|_| not_found())?;
            // A 32-hex string parses as both; an object that is not in the index is not a match.
            self.content_info(&oid.content_id())
                .map_err(|_| not_found())?;
            snapshots
                .iter()
                .filter(|s| s.root_entry.as_ref().is_some_and(|r| r.object_id == oid))
                .max_by_key(|s| s.start_time)
                .and_then(|s| s.root_entry.clone())
                .unwrap_or(DirEntry {
                    name: String::new(),
                    entry_type: EntryType::Directory,
                    mode: FileMode(0o555),
                    size: 0,
                    mtime: Timestamp::ZERO,
                    uid: 0,
                    gid: 0,
                    object_id: oid,
                    summary: None,
                })
        };
        for part in sub.split('/').filter(|p| !p.is_empty()) {
            if entry.entry_type != EntryType::Directory {
                return Err(not_found());
            }
            let dir = self.read_directory(entry.object_id).await?;
            let child = dir
                .entries
                .into_iter()
                .find(|e| e.name == part)
                .ok_or_else(not_found)?;
            entry = plan::effective_child(child);
        }
        Ok(entry)
    }

    /// Plans a restore of `root` into `target` (no writes).
    ///
    /// # Errors
    ///
    /// Errors reading directories or indirect lists; [`Error::Unsupported`] for unknown entry types.
    pub async fn plan_restore<T: RestoreTarget>(
        &self,
        root: &DirEntry,
        target: &T,
        opts: &RestoreOptions,
    ) -> Result<RestorePlan, Error> {
        plan::plan(self, root, target, opts).await
    }

    /// Executes a plan against `target`.
    ///
    /// # Errors
    ///
    /// Content errors (corruption names content and pack), [`Error::Io`] for target failures,
    /// [`Error::TargetConflict`] when a non-directory blocks a directory (or similar).
    pub async fn execute_restore<T: RestoreTarget>(
        &self,
        plan: RestorePlan,
        target: Arc<T>,
        opts: &RestoreOptions,
    ) -> Result<RestoreStats, Error> {
        execute::execute(self, plan, target, opts).await
    }

    /// Resolves `source` (see [`Repository::resolve_restore_root`]) and restores it into the
    /// local directory `target_dir` (created if missing).
    ///
    /// # Errors
    ///
    /// As resolving, planning and executing.
    pub async fn restore(
        &self,
        source: &str,
        target_dir: &Path,
        opts: &RestoreOptions,
    ) -> Result<RestoreStats, Error> {
        let mut target = LocalDir::new(target_dir);
        target.sparse = opts.sparse;
        target.restore_owner = opts.restore_owner;
        self.restore_to(source, Arc::new(target), opts).await
    }

    /// Resolves `source` and restores it into any [`RestoreTarget`].
    ///
    /// # Errors
    ///
    /// As resolving, planning and executing.
    pub async fn restore_to<T: RestoreTarget>(
        &self,
        source: &str,
        target: Arc<T>,
        opts: &RestoreOptions,
    ) -> Result<RestoreStats, Error> {
        let root = self.resolve_restore_root(source).await?;
        let plan = self.plan_restore(&root, target.as_ref(), opts).await?;
        self.execute_restore(plan, target, opts).await
    }
}
