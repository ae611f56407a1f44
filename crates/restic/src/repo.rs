//! An opened repository: the master key from `keys/`, the `config`, the snapshots, the merged index and
//! verified blob reads (barman-restic-format.md B2). Nothing is written: no lock is taken (KubeStash's own
//! wrapper reads with `--no-lock` too); a pack pruned away while reading is met by re-reading the index
//! once, and every blob's SHA-256 is checked, so a race shows as an error, never as wrong bytes.

use std::collections::HashMap;
use std::sync::Arc;

use blobstore::BlobStore;
use bytes::Bytes;
use futures::StreamExt as _;
use tokio::sync::Mutex;

use crate::crypto::{Key, KeyFile, KeyFileError};
use crate::error::Error;
use crate::format::{self, Config, Id, IndexJson, SnapshotJson, TreeJson};

/// Objects read at once while listing snapshots or loading the index.
const PARALLEL_READS: usize = 8;

/// An opened repository. Cheap to share (`Arc`), as streams hold one.
#[derive(Debug)]
pub struct Repository {
    store: Arc<dyn BlobStore>,
    key: Key,
    config: Config,
    index: Mutex<Option<Arc<Index>>>,
}

/// A snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Its ID (the SHA-256 of its file).
    pub id: Id,
    /// When the backup started.
    pub time: jiff::Timestamp,
    /// When it finished (restic ≥ 0.17 records it), else `time`.
    pub end: jiff::Timestamp,
    /// `--host`.
    pub hostname: String,
    /// The user that ran the backup.
    pub username: String,
    /// The backed-up paths.
    pub paths: Vec<String>,
    /// `--tag`s.
    pub tags: Vec<String>,
    /// Bytes the backup read (the dump's size for `--stdin`), when recorded.
    pub bytes: Option<u64>,
    /// The root tree.
    pub tree: Id,
}

impl Snapshot {
    /// The 8-digit short ID restic prints.
    #[must_use]
    pub fn short_id(&self) -> String {
        self.id.hex()[..8].to_owned()
    }
}

/// A file of a snapshot: its size and data blobs in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileNode {
    /// Its path in the snapshot.
    pub path: String,
    /// Size by its tree.
    pub size: u64,
    /// Its data blobs, in order.
    pub content: Vec<Id>,
}

/// Where a blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// The pack file.
    pub pack: Id,
    /// Offset in the pack.
    pub offset: u64,
    /// Stored length.
    pub length: u64,
    /// Plaintext length of a compressed blob.
    pub uncompressed_length: Option<u64>,
}

/// Every blob of every index file.
#[derive(Debug, Default)]
pub struct Index {
    blobs: HashMap<Id, BlobLocation>,
}

impl Index {
    /// Where `id` is stored.
    #[must_use]
    pub fn get(&self, id: &Id) -> Option<&BlobLocation> {
        self.blobs.get(id)
    }

    /// How many blobs.
    #[must_use]
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// No blobs at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }
}

/// The storage key of a pack.
fn pack_key(pack: &Id) -> String {
    let hex = pack.hex();
    format!("data/{}/{hex}", &hex[..2])
}

impl Repository {
    /// Opens the repository in `store` with `password`: tries every key file (as restic does), then reads
    /// `config`. A password with trailing line breaks that opens nothing is retried without them (a
    /// Secret made from a file usually ends in one).
    ///
    /// # Errors
    /// No repository, no key opens, an unsupported version, or the storage fails.
    pub async fn open(store: Arc<dyn BlobStore>, password: &[u8]) -> Result<Self, Error> {
        let keys = store
            .list("keys/")
            .await
            .map_err(|e| Error::storage("keys/", e))?;
        if keys.is_empty() {
            let legacy = store.list("key/").await.is_ok_and(|k| !k.is_empty());
            return Err(if legacy {
                Error::Unsupported(
                    "the S3 legacy layout (key/, snapshot/): convert it with `restic migrate s3_layout` (restic ≤ 0.17)"
                        .into(),
                )
            } else {
                Error::NotARepository("there is no keys/ directory".into())
            });
        }
        let mut files = Vec::new();
        for k in &keys {
            let bytes = store
                .get(&k.key)
                .await
                .map_err(|e| Error::storage(&k.key, e))?;
            files.push((k.key.clone(), bytes));
        }
        let trimmed = password.trim_ascii_end();
        let mut candidates = vec![password.to_vec()];
        if trimmed.len() != password.len() {
            candidates.push(trimmed.to_vec());
        }
        let found = tokio::task::spawn_blocking(move || find_master_key(&files, &candidates))
            .await
            .map_err(|e| Error::corrupt("keys/", e))??;
        let Some(key) = found else {
            return Err(Error::WrongPassword { keys: keys.len() });
        };
        let raw = store.get("config").await.map_err(|e| match e.class() {
            blobstore::ErrorClass::NotFound => {
                Error::NotARepository("keys/ exists but config does not".into())
            }
            _ => Error::storage("config", e),
        })?;
        // `config` is never compressed, whatever the version.
        let plain = key.open(&raw).map_err(|e| Error::corrupt("config", e))?;
        let config: Config =
            serde_json::from_slice(&plain).map_err(|e| Error::corrupt("config", e))?;
        if !(1..=2).contains(&config.version) {
            return Err(Error::Unsupported(format!(
                "repository version {} (pgro reads 1 and 2)",
                config.version
            )));
        }
        Ok(Self {
            store,
            key,
            config,
            index: Mutex::new(None),
        })
    }

    /// Repository version (1 or 2).
    #[must_use]
    pub fn version(&self) -> u32 {
        self.config.version
    }

    /// The repository's ID.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.config.id
    }

    fn unpacker(&self) -> Unpacker {
        Unpacker {
            store: self.store.clone(),
            key: self.key.clone(),
            version: self.config.version,
        }
    }

    /// The IDs of the files in `dir` (names that are not IDs are ignored, as restic does).
    async fn list_ids(&self, dir: &str) -> Result<Vec<Id>, Error> {
        let prefix = format!("{dir}/");
        let objs = self
            .store
            .list(&prefix)
            .await
            .map_err(|e| Error::storage(&prefix, e))?;
        Ok(objs
            .iter()
            .filter_map(|o| Id::parse(o.key.rsplit('/').next().unwrap_or_default()).ok())
            .collect())
    }

    /// Every snapshot, oldest first. A snapshot deleted while listing (`restic forget`) is left out.
    ///
    /// # Errors
    /// The storage fails or a snapshot file is damaged.
    pub async fn snapshots(&self) -> Result<Vec<Snapshot>, Error> {
        let ids = self.list_ids("snapshots").await?;
        let u = self.unpacker();
        let read = futures::stream::iter(ids)
            .map(move |id| {
                let u = u.clone();
                async move {
                    let Some(json) = unless_gone(u.read("snapshots", id).await)? else {
                        return Ok(None);
                    };
                    let s: SnapshotJson = serde_json::from_slice(&json)
                        .map_err(|e| Error::corrupt(format!("snapshot {id}"), e))?;
                    Ok(Some(snapshot(id, s)))
                }
            })
            .buffer_unordered(PARALLEL_READS)
            .collect::<Vec<Result<Option<Snapshot>, Error>>>()
            .await;
        let mut out = Vec::new();
        for s in read {
            out.extend(s?);
        }
        out.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// The snapshot `query` names: `latest`, a full ID or a unique ID prefix (at least 4 hex digits).
    ///
    /// # Errors
    /// None or several match.
    pub fn choose<'s>(snapshots: &'s [Snapshot], query: &str) -> Result<&'s Snapshot, Error> {
        if query == "latest" {
            return snapshots.last().ok_or_else(|| {
                Error::SnapshotNotFound("latest: the repository has no snapshot".into())
            });
        }
        let q = query.to_ascii_lowercase();
        if q.len() < 4 || !q.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::SnapshotNotFound(format!(
                "{query:?}: give `latest` or a snapshot ID (at least 4 hex digits)"
            )));
        }
        let mut m = snapshots.iter().filter(|s| s.id.hex().starts_with(&q));
        match (m.next(), m.next()) {
            (Some(s), None) => Ok(s),
            (Some(_), Some(_)) => Err(Error::SnapshotNotFound(format!(
                "{query}: the prefix matches several snapshots; give more digits"
            ))),
            _ => Err(Error::SnapshotNotFound(query.to_owned())),
        }
    }

    /// The merged index (loaded on first use).
    ///
    /// # Errors
    /// The storage fails or an index file is damaged.
    pub async fn index(&self) -> Result<Arc<Index>, Error> {
        let mut guard = self.index.lock().await;
        if let Some(i) = &*guard {
            return Ok(i.clone());
        }
        let i = Arc::new(self.load_index().await?);
        *guard = Some(i.clone());
        Ok(i)
    }

    /// Reloads the index if it is still `seen` (after a pack went missing: a prune may have moved blobs).
    async fn reload_index(&self, seen: &Arc<Index>) -> Result<Arc<Index>, Error> {
        let mut guard = self.index.lock().await;
        if let Some(i) = &*guard
            && !Arc::ptr_eq(i, seen)
        {
            return Ok(i.clone());
        }
        let i = Arc::new(self.load_index().await?);
        *guard = Some(i.clone());
        Ok(i)
    }

    async fn load_index(&self) -> Result<Index, Error> {
        let ids = self.list_ids("index").await?;
        let u = self.unpacker();
        let files = futures::stream::iter(ids)
            .map(move |id| {
                let u = u.clone();
                async move {
                    // Removed by a concurrent prune after it wrote its replacement: skipped.
                    let Some(json) = unless_gone(u.read("index", id).await)? else {
                        return Ok(None);
                    };
                    serde_json::from_slice::<IndexJson>(&json)
                        .map(Some)
                        .map_err(|e| Error::corrupt(format!("index/{id}"), e))
                }
            })
            .buffer_unordered(PARALLEL_READS)
            .collect::<Vec<_>>()
            .await;
        let mut index = Index::default();
        for f in files {
            let Some(f) = f? else { continue };
            for p in f.packs {
                for b in p.blobs {
                    index.blobs.insert(
                        b.id,
                        BlobLocation {
                            pack: p.id,
                            offset: b.offset,
                            length: b.length,
                            uncompressed_length: b.uncompressed_length,
                        },
                    );
                }
            }
        }
        Ok(index)
    }

    /// Reads one blob: ranged GET from its pack, MAC, decrypt, decompress, and its SHA-256 checked
    /// against its ID. A pack that is gone, or a blob the index lacks, is looked up once more in a
    /// re-read index.
    ///
    /// # Errors
    /// The blob is missing or damaged, or the storage fails.
    pub async fn read_blob(&self, id: &Id) -> Result<Bytes, Error> {
        let index = self.index().await?;
        match self.read_blob_with(&index, id).await {
            Err(Error::MissingBlob(_)) => {}
            Err(Error::Storage { source, .. })
                if source.class() == blobstore::ErrorClass::NotFound => {}
            other => return other,
        }
        let fresh = self.reload_index(&index).await?;
        self.read_blob_with(&fresh, id).await
    }

    async fn read_blob_with(&self, index: &Index, id: &Id) -> Result<Bytes, Error> {
        let loc = *index.get(id).ok_or_else(|| Error::MissingBlob(id.hex()))?;
        let key = pack_key(&loc.pack);
        let raw = self
            .store
            .get_range(&key, loc.offset..loc.offset + loc.length)
            .await
            .map_err(|e| Error::storage(&key, e))?;
        let what = || format!("blob {} in {key}", id.hex());
        let plain = self.key.open(&raw).map_err(|e| Error::corrupt(what(), e))?;
        let data = match loc.uncompressed_length {
            None => plain,
            Some(n) => {
                let cap = usize::try_from(n).map_err(|_| Error::corrupt(what(), "too large"))?;
                let out = zstd::bulk::decompress(&plain, cap)
                    .map_err(|e| Error::corrupt(what(), format!("zstd: {e}")))?;
                if out.len() != cap {
                    return Err(Error::corrupt(
                        what(),
                        format!("{} bytes decompressed, the index says {n}", out.len()),
                    ));
                }
                out
            }
        };
        if Id::of(&data) != *id {
            return Err(Error::corrupt(what(), "its SHA-256 is not its ID"));
        }
        Ok(Bytes::from(data))
    }

    async fn tree(&self, id: &Id) -> Result<TreeJson, Error> {
        let data = self.read_blob(id).await?;
        serde_json::from_slice(&data).map_err(|e| Error::corrupt(format!("tree {id}"), e))
    }

    /// The file at `path` (`dumpfile.sql`, or `dir/file`; a leading `/` is ignored) of `snapshot`.
    ///
    /// # Errors
    /// No such file, or a tree cannot be read.
    pub async fn find_file(&self, snapshot: &Snapshot, path: &str) -> Result<FileNode, Error> {
        let clean = path.trim_start_matches('/');
        let not_found = || Error::FileNotFound {
            snapshot: snapshot.short_id(),
            path: clean.to_owned(),
            paths: snapshot.paths.join(", "),
        };
        let parts: Vec<&str> = clean.split('/').filter(|p| !p.is_empty()).collect();
        let Some((name, dirs)) = parts.split_last() else {
            return Err(not_found());
        };
        let mut tree = snapshot.tree;
        for d in dirs {
            let t = self.tree(&tree).await?;
            let n = t.nodes.iter().find(|n| n.name == *d && n.kind == "dir");
            tree = n.and_then(|n| n.subtree).ok_or_else(not_found)?;
        }
        let t = self.tree(&tree).await?;
        let node = t
            .nodes
            .into_iter()
            .find(|n| n.name == *name && n.kind == "file")
            .ok_or_else(not_found)?;
        Ok(FileNode {
            path: clean.to_owned(),
            size: node.size.unwrap_or(0),
            content: node.content.unwrap_or_default(),
        })
    }
}

/// Tries every key file with every password candidate (scrypt: blocking).
fn find_master_key(files: &[(String, Bytes)], passwords: &[Vec<u8>]) -> Result<Option<Key>, Error> {
    let parsed: Vec<(&str, Result<KeyFile, KeyFileError>)> = files
        .iter()
        .map(|(name, bytes)| (name.as_str(), KeyFile::parse(bytes)))
        .collect();
    let mut last_unusable = None;
    for pw in passwords {
        for (name, kf) in &parsed {
            let kf = match kf {
                Ok(k) => k,
                Err(e) => {
                    last_unusable = Some(Error::corrupt(*name, e));
                    continue;
                }
            };
            match kf.master_key(pw) {
                Ok(k) => return Ok(Some(k)),
                Err(KeyFileError::WrongPassword) => {}
                Err(KeyFileError::Unsupported(m)) => {
                    last_unusable = Some(Error::Unsupported(format!("{name}: {m}")));
                }
                Err(e) => last_unusable = Some(Error::corrupt(*name, e)),
            }
        }
    }
    // Only when no key file was even usable does its problem explain the failure better.
    let usable = parsed
        .iter()
        .any(|(_, k)| k.as_ref().is_ok_and(|k| k.kdf == "scrypt"));
    match last_unusable {
        Some(e) if !usable => Err(e),
        _ => Ok(None),
    }
}

/// What reading an unpacked file takes, owned, so the futures reading many at once borrow nothing (a
/// borrowing closure there makes the operator's futures fail `Send`'s higher-ranked check).
#[derive(Clone)]
struct Unpacker {
    store: Arc<dyn BlobStore>,
    key: Key,
    version: u32,
}

impl Unpacker {
    /// Reads an unpacked file (snapshot, index): the stored bytes' SHA-256 is its name, then MAC,
    /// decrypt and the v2 framing.
    async fn read(self, dir: &'static str, id: Id) -> Result<Vec<u8>, Error> {
        let key = format!("{dir}/{}", id.hex());
        let raw = self
            .store
            .get(&key)
            .await
            .map_err(|e| Error::storage(&key, e))?;
        if Id::of(&raw) != id {
            return Err(Error::corrupt(&key, "its SHA-256 is not its name"));
        }
        let plain = self.key.open(&raw).map_err(|e| Error::corrupt(&key, e))?;
        format::unframe(plain, self.version).map_err(|e| Error::corrupt(&key, e))
    }
}

/// `Ok(None)` for a file deleted since it was listed (a concurrent `forget` or `prune`).
fn unless_gone<T>(r: Result<T, Error>) -> Result<Option<T>, Error> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(Error::Storage { source, .. }) if source.class() == blobstore::ErrorClass::NotFound => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn snapshot(id: Id, s: SnapshotJson) -> Snapshot {
    let summary = s.summary.as_ref();
    Snapshot {
        id,
        time: s.time,
        end: summary.and_then(|x| x.backup_end).unwrap_or(s.time),
        hostname: s.hostname,
        username: s.username,
        paths: s.paths,
        tags: s.tags.unwrap_or_default(),
        bytes: summary.and_then(|x| x.total_bytes_processed),
        tree: s.tree,
    }
}
