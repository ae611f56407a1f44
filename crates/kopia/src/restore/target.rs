//! Where a restore writes: the [`RestoreTarget`] trait, [`LocalDir`] (a directory on the local
//! filesystem) and [`MemoryTarget`] (in memory, for tests). Target methods are synchronous and
//! are called from tokio's blocking pool.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};

use super::{Attributes, fsops};
use crate::error::Error;
use crate::time::Timestamp;

/// Kopia `--skip-existing` tolerance on mtime.
const SKIP_MTIME_TOLERANCE_NS: i64 = 2_000_000_000;

/// A destination for restored entries. Paths are relative to the target root; the empty path is
/// the root itself (a directory, or the file/symlink of a single-entry snapshot).
pub trait RestoreTarget: Send + Sync + 'static {
    /// A file being written.
    type File: Send + Sync + 'static;

    /// A human-readable location, recorded in the plan.
    fn location(&self) -> PathBuf;

    /// Whether a regular file of `size` bytes with an mtime within 2 s of `mtime` exists.
    fn is_up_to_date(&self, path: &Path, size: u64, mtime: Timestamp) -> bool;

    /// Ensures a directory exists (attributes come later, in [`RestoreTarget::finish_dir`]).
    ///
    /// # Errors
    ///
    /// I/O failures or a non-directory in the way.
    fn create_dir(&self, path: &Path) -> Result<(), Error>;

    /// Creates (truncating) a file of `size` bytes.
    ///
    /// # Errors
    ///
    /// I/O failures or a directory in the way.
    fn create_file(&self, path: &Path, size: u64) -> Result<Self::File, Error>;

    /// Writes `data` at `offset`.
    ///
    /// # Errors
    ///
    /// I/O failures.
    fn write_at(
        &self,
        file: &Self::File,
        path: &Path,
        offset: u64,
        data: &[u8],
    ) -> Result<(), Error>;

    /// Makes `len` bytes at `offset` read as zeros: a chunk that decoded to nothing but zeros.
    /// The default writes them; [`LocalDir`] allocates the range instead (or, sparse, leaves it
    /// a hole), so no page is copied.
    ///
    /// # Errors
    ///
    /// I/O failures.
    fn write_zeros(
        &self,
        file: &Self::File,
        path: &Path,
        offset: u64,
        len: u64,
    ) -> Result<(), Error> {
        const PIECE: usize = 64 << 10;
        let zeros = vec![0u8; PIECE];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(PIECE as u64);
            self.write_at(file, path, offset + done, &zeros[..n as usize])?;
            done += n;
        }
        Ok(())
    }

    /// Applies attributes once all data is written.
    ///
    /// # Errors
    ///
    /// I/O failures other than permission errors (which are ignored, as kopia does by default).
    fn finish_file(&self, file: &Self::File, path: &Path, attrs: &Attributes) -> Result<(), Error>;

    /// Creates a symlink (replacing an existing symlink) with its owner and times.
    ///
    /// # Errors
    ///
    /// I/O failures or a non-symlink in the way.
    fn create_symlink(&self, path: &Path, target: &[u8], attrs: &Attributes) -> Result<(), Error>;

    /// Applies directory attributes after all its children are restored.
    ///
    /// # Errors
    ///
    /// I/O failures other than permission errors.
    fn finish_dir(&self, path: &Path, attrs: &Attributes) -> Result<(), Error>;
}

/// A directory on the local filesystem.
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
    /// Restore uid/gid where permitted.
    pub restore_owner: bool,
    /// Leave holes for zero runs (otherwise runs of zeros are allocated without being written).
    pub sparse: bool,
    /// Whether the target's filesystem supports `fallocate`, as far as known.
    can_allocate: Arc<AtomicBool>,
}

impl LocalDir {
    /// A target rooted at `root` (created if missing), restoring owners, without sparse writes.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            restore_owner: true,
            sparse: false,
            can_allocate: Arc::new(AtomicBool::new(true)),
        }
    }

    fn zeros(&self) -> fsops::Zeros<'_> {
        fsops::Zeros {
            sparse: self.sparse,
            can_allocate: &self.can_allocate,
        }
    }

    fn abs(&self, p: &Path) -> PathBuf {
        if p.as_os_str().is_empty() {
            self.root.clone()
        } else {
            self.root.join(p)
        }
    }
}

impl RestoreTarget for LocalDir {
    type File = File;

    fn location(&self) -> PathBuf {
        self.root.clone()
    }

    fn is_up_to_date(&self, path: &Path, size: u64, mtime: Timestamp) -> bool {
        match std::fs::symlink_metadata(self.abs(path)) {
            Ok(m) if m.is_file() && m.len() == size => {
                let local = m
                    .mtime()
                    .saturating_mul(1_000_000_000)
                    .saturating_add(m.mtime_nsec());
                (local - mtime.as_nanos()).abs() < SKIP_MTIME_TOLERANCE_NS
            }
            Ok(_) | Err(_) => false,
        }
    }

    fn create_dir(&self, path: &Path) -> Result<(), Error> {
        fsops::ensure_dir(&self.abs(path), path.as_os_str().is_empty())
    }

    fn create_file(&self, path: &Path, size: u64) -> Result<File, Error> {
        fsops::create_file(&self.abs(path), size)
    }

    fn write_at(&self, file: &File, path: &Path, offset: u64, data: &[u8]) -> Result<(), Error> {
        fsops::write_chunk(file, &self.abs(path), offset, data, self.zeros())
    }

    fn write_zeros(&self, file: &File, path: &Path, offset: u64, len: u64) -> Result<(), Error> {
        fsops::zero_range(file, &self.abs(path), offset, len, self.zeros())
    }

    fn finish_file(&self, file: &File, path: &Path, attrs: &Attributes) -> Result<(), Error> {
        fsops::apply_file_attrs(file, &self.abs(path), attrs, self.restore_owner)
    }

    fn create_symlink(&self, path: &Path, target: &[u8], attrs: &Attributes) -> Result<(), Error> {
        fsops::create_symlink(&self.abs(path), target, attrs, self.restore_owner)
    }

    fn finish_dir(&self, path: &Path, attrs: &Attributes) -> Result<(), Error> {
        fsops::apply_dir_attrs(&self.abs(path), attrs, self.restore_owner)
    }
}

/// A restored entry held by [`MemoryTarget`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryEntry {
    /// A directory and its attributes (`None` until finished).
    Dir(Option<Attributes>),
    /// File bytes and attributes (`None` until finished).
    File(Vec<u8>, Option<Attributes>),
    /// Symlink target and attributes.
    Symlink(Vec<u8>, Attributes),
}

/// An in-memory restore target for tests.
#[derive(Debug, Default)]
pub struct MemoryTarget {
    entries: Mutex<BTreeMap<PathBuf, MemoryEntry>>,
}

impl MemoryTarget {
    /// An empty target.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of everything restored, by relative path.
    pub fn entries(&self) -> BTreeMap<PathBuf, MemoryEntry> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<PathBuf, MemoryEntry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RestoreTarget for MemoryTarget {
    type File = PathBuf;

    fn location(&self) -> PathBuf {
        PathBuf::from("memory:")
    }

    fn is_up_to_date(&self, path: &Path, size: u64, mtime: Timestamp) -> bool {
        matches!(self.lock().get(path), Some(MemoryEntry::File(d, Some(a)))
            if d.len() as u64 == size && (a.mtime.as_nanos() - mtime.as_nanos()).abs() < SKIP_MTIME_TOLERANCE_NS)
    }

    fn create_dir(&self, path: &Path) -> Result<(), Error> {
        let mut m = self.lock();
        match m.get(path) {
            Some(MemoryEntry::Dir(_)) => Ok(()),
            Some(_) => Err(Error::TargetConflict {
                path: path.to_path_buf(),
                reason: "a non-directory exists",
            }),
            None => {
                m.insert(path.to_path_buf(), MemoryEntry::Dir(None));
                Ok(())
            }
        }
    }

    fn create_file(&self, path: &Path, size: u64) -> Result<PathBuf, Error> {
        let len = usize::try_from(size).map_err(|_| Error::TargetConflict {
            path: path.to_path_buf(),
            reason: "file too large for memory",
        })?;
        self.lock()
            .insert(path.to_path_buf(), MemoryEntry::File(vec![0; len], None));
        Ok(path.to_path_buf())
    }

    fn write_at(&self, file: &PathBuf, path: &Path, offset: u64, data: &[u8]) -> Result<(), Error> {
        let mut m = self.lock();
        let Some(MemoryEntry::File(buf, _)) = m.get_mut(file) else {
            return Err(Error::TargetConflict {
                path: path.to_path_buf(),
                reason: "file not created",
            });
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(data.len());
        let dst = buf.get_mut(start..end).ok_or(Error::TargetConflict {
            path: path.to_path_buf(),
            reason: "write past the file size",
        })?;
        dst.copy_from_slice(data);
        Ok(())
    }

    fn finish_file(&self, file: &PathBuf, _path: &Path, attrs: &Attributes) -> Result<(), Error> {
        if let Some(MemoryEntry::File(_, a)) = self.lock().get_mut(file) {
            *a = Some(*attrs);
        }
        Ok(())
    }

    fn create_symlink(&self, path: &Path, target: &[u8], attrs: &Attributes) -> Result<(), Error> {
        self.lock().insert(
            path.to_path_buf(),
            MemoryEntry::Symlink(target.to_vec(), *attrs),
        );
        Ok(())
    }

    fn finish_dir(&self, path: &Path, attrs: &Attributes) -> Result<(), Error> {
        self.lock()
            .insert(path.to_path_buf(), MemoryEntry::Dir(Some(*attrs)));
        Ok(())
    }
}
