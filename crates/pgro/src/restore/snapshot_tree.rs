//! A Kopia snapshot's directory listing as a [`Tree`]: directory objects are read (and cached) on demand,
//! so PGDATA and its tablespaces are found before a single file is downloaded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kopia::{DirEntry, EntryType, Indexed, Repository};

use super::pgdata::{Entry, Kind, Tree};

/// A snapshot's tree.
#[derive(Debug)]
pub(crate) struct SnapshotTree<'a> {
    repo: &'a Repository<Indexed>,
    root: DirEntry,
    dirs: Mutex<HashMap<PathBuf, Vec<DirEntry>>>,
}

impl<'a> SnapshotTree<'a> {
    /// The tree below `root` (a snapshot's root entry).
    pub(crate) fn new(repo: &'a Repository<Indexed>, root: DirEntry) -> Self {
        Self {
            repo,
            root,
            dirs: Mutex::new(HashMap::new()),
        }
    }

    /// The entries of the directory at `rel`, read once.
    async fn dir(&self, rel: &Path) -> Result<Option<Vec<DirEntry>>, kopia::Error> {
        if let Some(d) = self.cached(rel) {
            return Ok(Some(d));
        }
        let Some(entry) = self.entry(rel).await? else {
            return Ok(None);
        };
        if entry.entry_type != EntryType::Directory {
            return Ok(None);
        }
        let dir = self.repo.read_directory(entry.object_id).await?;
        if let Ok(mut dirs) = self.dirs.lock() {
            dirs.insert(rel.to_path_buf(), dir.entries.clone());
        }
        Ok(Some(dir.entries))
    }

    fn cached(&self, rel: &Path) -> Option<Vec<DirEntry>> {
        self.dirs.lock().ok()?.get(rel).cloned()
    }

    /// The entry at `rel` (the root for an empty path), without following symlinks.
    async fn entry(&self, rel: &Path) -> Result<Option<DirEntry>, kopia::Error> {
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Ok(Some(self.root.clone()));
        };
        let Some(entries) = Box::pin(self.dir(parent)).await? else {
            return Ok(None);
        };
        Ok(entries
            .into_iter()
            .find(|e| std::ffi::OsStr::new(&e.name) == name))
    }
}

impl Tree for SnapshotTree<'_> {
    type Error = kopia::Error;

    async fn list(&self, rel: &Path) -> Result<Option<Vec<Entry>>, kopia::Error> {
        Ok(self.dir(rel).await?.map(|entries| {
            let mut out: Vec<Entry> = entries
                .iter()
                .map(|e| Entry {
                    name: e.name.clone(),
                    kind: match e.entry_type {
                        EntryType::Directory => Kind::Dir,
                        EntryType::File => Kind::File,
                        EntryType::Symlink => Kind::Symlink,
                        EntryType::Other(_) => Kind::Other,
                    },
                })
                .collect();
            out.sort_by(|a, b| a.name.cmp(&b.name));
            out
        }))
    }

    async fn read_link(&self, rel: &Path) -> Result<Option<PathBuf>, kopia::Error> {
        match self.entry(rel).await? {
            Some(e) if e.entry_type == EntryType::Symlink => {
                let bytes = self.repo.read_object(e.object_id).await?;
                Ok(Some(PathBuf::from(
                    String::from_utf8_lossy(&bytes).into_owned(),
                )))
            }
            _ => Ok(None),
        }
    }

    async fn read_file(&self, rel: &Path, limit: u64) -> Result<Option<Vec<u8>>, kopia::Error> {
        match self.entry(rel).await? {
            Some(e) if e.entry_type == EntryType::File && e.size >= 0 && e.size as u64 <= limit => {
                let bytes = self.repo.read_object(e.object_id).await?;
                Ok(Some(bytes))
            }
            _ => Ok(None),
        }
    }
}
