//! Sharded filesystem storage, the layout kopia uses for `filesystem` (and SFTP/WebDAV/rclone)
//! repositories (kopia `repo/blob/sharded`, `repo/blob/filesystem`).

use std::fs::File;
use std::io::{self, Read, Seek};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::{BlobMetadata, Storage, check_range};
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

    /// Path of `id` relative to the root, without the `.f` suffix.
    pub fn relative_path(&self, id: &str) -> PathBuf {
        let mut path = PathBuf::new();
        let mut rest = id;
        if rest.len() > self.max_non_sharded_length {
            for &w in self.shards_for(id) {
                if rest.len() <= w || !rest.is_char_boundary(w) {
                    break;
                }
                let (dir, tail) = rest.split_at(w);
                path.push(dir);
                rest = tail;
            }
        }
        path.push(rest);
        path
    }
}

/// Blobs stored as files under a root directory, sharded into subdirectories.
///
/// The store never writes: when `.shards` is missing it assumes kopia's legacy `[3,3]` layout
/// without persisting it.
#[derive(Debug, Clone)]
pub struct FilesystemStorage {
    root: Arc<PathBuf>,
    sharding: Arc<ShardingConfig>,
}

impl FilesystemStorage {
    /// Opens a repository directory, reading `.shards` if present.
    ///
    /// # Errors
    ///
    /// Fails when the root is not a readable directory or `.shards` is not valid JSON.
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root = root.into();
        let meta = tokio::fs::metadata(&root)
            .await
            .map_err(|source| StorageError::Io {
                path: root.clone(),
                source,
            })?;
        if !meta.is_dir() {
            return Err(StorageError::Config {
                reason: format!("{} is not a directory", root.display()),
            });
        }
        let shards_path = root.join(SHARDS_FILE);
        let sharding = match tokio::fs::read(&shards_path).await {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| StorageError::Config {
                reason: format!("{} is not valid sharding JSON: {e}", shards_path.display()),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => ShardingConfig::legacy(),
            Err(source) => {
                return Err(StorageError::Io {
                    path: shards_path,
                    source,
                });
            }
        };
        Ok(Self::with_sharding(root, sharding))
    }

    /// Uses explicit sharding parameters instead of reading `.shards`.
    pub fn with_sharding(root: impl Into<PathBuf>, sharding: ShardingConfig) -> Self {
        Self {
            root: Arc::new(root.into()),
            sharding: Arc::new(sharding),
        }
    }

    /// The sharding parameters in use.
    pub fn sharding(&self) -> &ShardingConfig {
        &self.sharding
    }

    /// The file holding `id`.
    pub fn blob_path(&self, id: &BlobId) -> PathBuf {
        let mut p = self.root.join(self.sharding.relative_path(id.as_str()));
        p.as_mut_os_string().push(BLOB_SUFFIX);
        p
    }

    async fn blocking<T: Send + 'static>(
        f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| StorageError::Backend {
                source: Box::new(e),
            })?
    }
}

fn map_io(id: &BlobId, path: &Path, e: io::Error) -> StorageError {
    if e.kind() == io::ErrorKind::NotFound {
        StorageError::NotFound {
            blob_id: id.clone(),
        }
    } else {
        StorageError::Io {
            path: path.to_owned(),
            source: e,
        }
    }
}

fn walk(
    dir: &Path,
    acc: &str,
    prefix: &str,
    out: &mut Vec<BlobMetadata>,
) -> Result<(), StorageError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        // A shard directory removed concurrently by maintenance is simply empty.
        Err(e) if e.kind() == io::ErrorKind::NotFound && !acc.is_empty() => return Ok(()),
        Err(source) => {
            return Err(StorageError::Io {
                path: dir.to_owned(),
                source,
            });
        }
    };
    for ent in rd {
        let ent = ent.map_err(|source| StorageError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let Ok(name) = ent.file_name().into_string() else {
            continue;
        };
        let ft = ent.file_type().map_err(|source| StorageError::Io {
            path: ent.path(),
            source,
        })?;
        if ft.is_dir() {
            let sub = format!("{acc}{name}");
            if prefix.starts_with(&sub) || sub.starts_with(prefix) {
                walk(&ent.path(), &sub, prefix, out)?;
            }
        } else if let Some(stem) = name.strip_suffix(BLOB_SUFFIX) {
            let id = format!("{acc}{stem}");
            if !id.starts_with(prefix) {
                continue;
            }
            let meta = match ent.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(StorageError::Io {
                        path: ent.path(),
                        source,
                    });
                }
            };
            out.push(BlobMetadata {
                id: BlobId::new(id),
                length: meta.len(),
                timestamp: meta.modified().ok(),
            });
        }
    }
    Ok(())
}

#[async_trait]
impl Storage for FilesystemStorage {
    async fn list(&self, prefix: &str) -> Result<Vec<BlobMetadata>, StorageError> {
        let root = Arc::clone(&self.root);
        let prefix = prefix.to_owned();
        Self::blocking(move || {
            let mut out = Vec::new();
            walk(&root, "", &prefix, &mut out)?;
            Ok(out)
        })
        .await
    }

    async fn get(&self, id: &BlobId) -> Result<Bytes, StorageError> {
        let path = self.blob_path(id);
        let id = id.clone();
        Self::blocking(move || {
            std::fs::read(&path)
                .map(Bytes::from)
                .map_err(|e| map_io(&id, &path, e))
        })
        .await
    }

    async fn get_range(&self, id: &BlobId, range: Range<u64>) -> Result<Bytes, StorageError> {
        let path = self.blob_path(id);
        let id = id.clone();
        Self::blocking(move || {
            let mut f = File::open(&path).map_err(|e| map_io(&id, &path, e))?;
            let len = f.metadata().map_err(|e| map_io(&id, &path, e))?.len();
            check_range(&id, &range, len)?;
            let n = usize::try_from(range.end - range.start).map_err(|_| {
                StorageError::InvalidRange {
                    blob_id: id.clone(),
                    start: range.start,
                    end: range.end,
                    len,
                }
            })?;
            // `read_to_end` into reserved capacity reads into uninitialised memory (`File`
            // implements `read_buf`), sparing a memset of every chunk.
            let mut buf = Vec::with_capacity(n);
            f.seek(io::SeekFrom::Start(range.start))
                .and_then(|_| f.take(range.end - range.start).read_to_end(&mut buf))
                .map_err(|e| map_io(&id, &path, e))?;
            if buf.len() != n {
                return Err(map_io(
                    &id,
                    &path,
                    io::Error::from(io::ErrorKind::UnexpectedEof),
                ));
            }
            Ok(Bytes::from(buf))
        })
        .await
    }
}

#[cfg(test)]
mod tests;
