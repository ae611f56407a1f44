//! Sharded filesystem storage, the layout kopia uses for `filesystem` (and SFTP/WebDAV/rclone)
//! repositories (kopia `repo/blob/sharded`, `repo/blob/filesystem`).

use std::path::PathBuf;

use blobstore::{BlobStore, FileStore};
use futures::{StreamExt, TryStreamExt};

use super::{BlobMetadata, BlobStorage};
use crate::error::StorageError;
use crate::ids::BlobId;

/// Name of the unencrypted sharding-parameters file at the repository root.
const SHARDS_FILE: &str = ".shards";
/// Suffix of complete blob files.
const BLOB_SUFFIX: &str = ".f";

/// Sharding parameters from `<root>/.shards`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ShardingConfig {
    /// Default shard widths.
    #[serde(default)]
    pub default: Vec<usize>,
    /// Blob IDs up to this length are not sharded.
    #[serde(rename = "maxNonShardedLength", default)]
    pub max_non_sharded_length: usize,
    /// Per-prefix overrides; the first matching prefix wins.
    #[serde(default)]
    pub overrides: Vec<ShardOverride>,
}

/// A per-prefix sharding override.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ShardOverride {
    /// Blob ID prefix.
    pub prefix: String,
    /// Shard widths for matching blobs.
    pub shards: Vec<usize>,
}

impl ShardingConfig {
    /// What kopia assumes when `.shards` is missing (legacy repositories): `[3,3]`, limit 20.
    pub fn legacy() -> Self {
        Self {
            default: vec![3, 3],
            max_non_sharded_length: 20,
            overrides: Vec::new(),
        }
    }

    /// What kopia writes for new repositories: `[1,3]`, limit 20.
    pub fn modern() -> Self {
        Self {
            default: vec![1, 3],
            max_non_sharded_length: 20,
            overrides: Vec::new(),
        }
    }

    fn shards_for(&self, id: &str) -> &[usize] {
        self.overrides
            .iter()
            .find(|o| id.starts_with(&o.prefix))
            .map_or(&self.default, |o| &o.shards)
    }

    /// The directories and file name (without the `.f` suffix) of `id`.
    fn segments<'a>(&self, id: &'a str) -> Vec<&'a str> {
        let mut out = Vec::new();
        let mut rest = id;
        if rest.len() > self.max_non_sharded_length {
            for &w in self.shards_for(id) {
                if rest.len() <= w || !rest.is_char_boundary(w) {
                    break;
                }
                let (dir, tail) = rest.split_at(w);
                out.push(dir);
                rest = tail;
            }
        }
        out.push(rest);
        out
    }

    /// Path of `id` relative to the root, without the `.f` suffix.
    pub fn relative_path(&self, id: &str) -> PathBuf {
        self.segments(id).into_iter().collect()
    }

    /// The store key of `id`: its relative path with `/` separators and the `.f` suffix.
    pub fn key(&self, id: &str) -> String {
        let mut key = self.segments(id).join("/");
        key.push_str(BLOB_SUFFIX);
        key
    }
}

/// Blobs stored as files under a root directory, sharded into subdirectories.
///
/// The store never writes: when `.shards` is missing it assumes kopia's legacy `[3,3]` layout
/// without persisting it.
pub type FilesystemStorage = BlobStorage<FileStore>;

impl FilesystemStorage {
    /// Opens a repository directory, reading `.shards` if present.
    ///
    /// # Errors
    ///
    /// Fails when the root is not a readable directory or `.shards` is not valid JSON.
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let store = FileStore::open(root).await?;
        let sharding = match store.get(SHARDS_FILE).await {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| StorageError::Config {
                reason: format!(
                    "{} is not valid sharding JSON: {e}",
                    store.root().join(SHARDS_FILE).display()
                ),
            })?,
            Err(StorageError::NotFound { .. }) => ShardingConfig::legacy(),
            Err(e) => return Err(e),
        };
        Ok(Self::sharded(store, sharding))
    }

    /// Uses explicit sharding parameters instead of reading `.shards`.
    pub fn with_sharding(root: impl Into<PathBuf>, sharding: ShardingConfig) -> Self {
        Self::sharded(FileStore::new(root), sharding)
    }

    /// The file holding `id`.
    pub fn blob_path(&self, id: &BlobId) -> PathBuf {
        self.store().root().join(self.key(id))
    }
}

/// Directories listed at once while walking the shards.
const LIST_CONCURRENCY: usize = 16;

/// Lists the blobs whose ID starts with `prefix`, descending only into shard directories that
/// can hold such IDs. The walk follows the directories it finds, whatever widths made them.
pub(super) async fn list_sharded<S: BlobStore>(
    store: &S,
    prefix: &str,
) -> Result<Vec<BlobMetadata>, StorageError> {
    let mut out = Vec::new();
    let mut dirs = vec![String::new()];
    while !dirs.is_empty() {
        let listings: Vec<_> = futures::stream::iter(
            dirs.drain(..)
                .map(|d| async move { store.list_dir(&d).await }),
        )
        .buffer_unordered(LIST_CONCURRENCY)
        .try_collect()
        .await?;
        for listing in listings {
            for o in listing.objects {
                // An ID is its key without separators and suffix; other files (`.shards`,
                // kopia's temporary `*.f.tmp.*`) are not blobs.
                let Some(stem) = o.key.strip_suffix(BLOB_SUFFIX) else {
                    continue;
                };
                let id = stem.replace('/', "");
                if id.starts_with(prefix) {
                    out.push(BlobMetadata {
                        id: BlobId::new(id),
                        length: o.size,
                        timestamp: o.modified,
                    });
                }
            }
            for dir in listing.prefixes {
                let sub = dir.replace('/', "");
                if prefix.starts_with(&sub) || sub.starts_with(prefix) {
                    dirs.push(dir);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
