//! Objects as files under a root directory; keys are relative paths.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{BlobStore, Error, Listing, ObjectMeta, check_range};

/// Files under a root directory. Keys are `/`-separated paths relative to the root; absolute keys
/// and `..` segments are refused so that no key reaches outside it.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: Arc<PathBuf>,
}

impl FileStore {
    /// Opens a directory.
    ///
    /// # Errors
    ///
    /// Fails when the root is not a readable directory.
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self, Error> {
        let root = root.into();
        let meta = tokio::fs::metadata(&root)
            .await
            .map_err(|source| Error::Io {
                path: root.clone(),
                source,
            })?;
        if !meta.is_dir() {
            return Err(Error::Config {
                reason: format!("{} is not a directory", root.display()),
            });
        }
        Ok(Self::new(root))
    }

    /// Uses `root` without checking it.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: Arc::new(root.into()),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file holding `key`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] for an absolute key or one with a `..` segment.
    pub fn path(&self, key: &str) -> Result<PathBuf, Error> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    async fn blocking<T: Send + 'static>(
        f: impl FnOnce() -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| Error::Backend {
                source: Box::new(e),
            })?
    }

    /// Runs `f` on the blocking pool with the file of `key`.
    async fn with_file<T: Send + 'static>(
        &self,
        key: &str,
        f: impl FnOnce(&str, &Path) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let path = self.path(key)?;
        let key = key.to_owned();
        Self::blocking(move || f(&key, &path)).await
    }

    /// Lists below `prefix`: its directory part names a directory, the rest filters entry names.
    async fn walk(&self, prefix: &str, recursive: bool) -> Result<Listing, Error> {
        check_key(prefix)?;
        let (dir, name) = prefix
            .rsplit_once('/')
            .map_or(("", prefix), |(d, n)| (d, n));
        let root = Arc::clone(&self.root);
        let (dir, name) = (dir.to_owned(), name.to_owned());
        Self::blocking(move || {
            let mut out = Listing::default();
            let key_dir = if dir.is_empty() {
                String::new()
            } else {
                format!("{dir}/")
            };
            walk(&root.join(&dir), key_dir, &name, recursive, &mut out)?;
            Ok(out)
        })
        .await
    }
}

/// Refuses keys that would leave the root.
fn check_key(key: &str) -> Result<(), Error> {
    let reason = if key.starts_with('/') {
        "absolute keys are not allowed"
    } else if key.split('/').any(|s| s == "..") {
        "`..` segments are not allowed"
    } else if key.contains('\0') {
        "NUL bytes are not allowed"
    } else {
        return Ok(());
    };
    Err(Error::InvalidKey {
        key: key.to_owned(),
        reason,
    })
}

fn map_io(key: &str, path: &Path, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::NotFound {
        Error::NotFound {
            key: key.to_owned(),
        }
    } else {
        Error::Io {
            path: path.to_owned(),
            source: e,
        }
    }
}

/// Lists `dir` (key prefix `key_dir`, entries whose name starts with `name`), descending into
/// subdirectories when `recursive`.
fn walk(
    dir: &Path,
    key_dir: String,
    name: &str,
    recursive: bool,
    out: &mut Listing,
) -> Result<(), Error> {
    let mut pending = vec![(dir.to_owned(), key_dir, name)];
    while let Some((dir, key_dir, name)) = pending.pop() {
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            // A missing directory holds no objects, as a prefix without keys in an object store;
            // this also covers one removed concurrently (by kopia maintenance, say). Only a
            // missing root is an error.
            Err(e) if e.kind() == io::ErrorKind::NotFound && !key_dir.is_empty() => continue,
            Err(source) => return Err(Error::Io { path: dir, source }),
        };
        for ent in rd {
            let ent = ent.map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?;
            let Ok(file_name) = ent.file_name().into_string() else {
                continue;
            };
            if !file_name.starts_with(name) {
                continue;
            }
            let ft = ent.file_type().map_err(|source| Error::Io {
                path: ent.path(),
                source,
            })?;
            let key = format!("{key_dir}{file_name}");
            if ft.is_dir() {
                if recursive {
                    pending.push((ent.path(), format!("{key}/"), ""));
                } else {
                    out.prefixes.push(format!("{key}/"));
                }
                continue;
            }
            let meta = match ent.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(Error::Io {
                        path: ent.path(),
                        source,
                    });
                }
            };
            out.objects.push(ObjectMeta {
                key,
                size: meta.len(),
                modified: meta.modified().ok(),
            });
        }
    }
    Ok(())
}

#[async_trait]
impl BlobStore for FileStore {
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error> {
        Ok(self.walk(prefix, true).await?.objects)
    }

    async fn list_dir(&self, prefix: &str) -> Result<Listing, Error> {
        self.walk(prefix, false).await
    }

    async fn get(&self, key: &str) -> Result<Bytes, Error> {
        self.with_file(key, |key, path| {
            std::fs::read(path)
                .map(Bytes::from)
                .map_err(|e| map_io(key, path, e))
        })
        .await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, Error> {
        self.with_file(key, move |key, path| {
            let mut f = File::open(path).map_err(|e| map_io(key, path, e))?;
            let len = f.metadata().map_err(|e| map_io(key, path, e))?.len();
            check_range(key, &range, len)?;
            let n = usize::try_from(range.end - range.start).map_err(|_| Error::InvalidRange {
                key: key.to_owned(),
                start: range.start,
                end: range.end,
                len,
            })?;
            // `read_to_end` into reserved capacity reads into uninitialised memory (`File`
            // implements `read_buf`), sparing a memset of every chunk.
            let mut buf = Vec::with_capacity(n);
            f.seek(io::SeekFrom::Start(range.start))
                .and_then(|_| f.take(range.end - range.start).read_to_end(&mut buf))
                .map_err(|e| map_io(key, path, e))?;
            if buf.len() != n {
                return Err(map_io(
                    key,
                    path,
                    io::Error::from(io::ErrorKind::UnexpectedEof),
                ));
            }
            Ok(Bytes::from(buf))
        })
        .await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, Error> {
        self.with_file(key, |key, path| {
            let meta = std::fs::metadata(path).map_err(|e| map_io(key, path, e))?;
            // A directory is a prefix, not an object.
            if meta.is_dir() {
                return Err(Error::NotFound {
                    key: key.to_owned(),
                });
            }
            Ok(ObjectMeta {
                key: key.to_owned(),
                size: meta.len(),
                modified: meta.modified().ok(),
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests;
