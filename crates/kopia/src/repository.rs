//! The [`Repository`] facade and its typestates: `Unopened` → `Open` (format decrypted) →
//! `Indexed` (index loaded; contents, objects, snapshots readable).

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::cache::IndexCache;
use crate::content::ContentReader;
use crate::crypto::Crypter;
use crate::error::{Error, StorageError};
use crate::format::{FORMAT_BLOB_ID, FormatBlob, RepositoryConfig};
use crate::ids::{BlobId, ContentId};
use crate::index::{ContentInfo, IndexBlob, MergedIndex, epoch_index_set, legacy_index_set};
use crate::storage::Storage;
use crate::time::Timestamp;

/// Index blobs fetched concurrently while loading the index.
const INDEX_FETCH_PARALLELISM: usize = 8;
/// Attempts at computing a consistent index set (kopia retries 10 times on NotFound).
const INDEX_SET_ATTEMPTS: u32 = 10;

/// Typestate: storage only.
#[derive(Debug)]
pub struct Unopened;

/// Typestate: the format blob is decrypted.
#[derive(Debug)]
pub struct Open {
    config: Arc<RepositoryConfig>,
    crypter: Crypter,
}

/// Typestate: the index is loaded.
#[derive(Debug)]
pub struct Indexed {
    config: Arc<RepositoryConfig>,
    crypter: Crypter,
    cache: IndexCache,
    pub(crate) contents: Arc<ContentReader>,
}

/// A Kopia repository in state `S` ([`Unopened`], [`Open`] or [`Indexed`]).
#[derive(Debug)]
pub struct Repository<S = Indexed> {
    storage: Arc<dyn Storage>,
    state: S,
}

impl Repository<Unopened> {
    /// A repository on `storage`.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self {
            storage,
            state: Unopened,
        }
    }

    /// Reads `kopia.repository`, derives the key from `password` (on the blocking pool: scrypt
    /// takes ~100 ms and 64 MiB) and checks required features and the upgrade lock.
    ///
    /// # Errors
    ///
    /// [`Error::WrongPassword`], [`Error::MissingBlob`] (not a repository), [`Error::Unsupported`],
    /// [`Error::UpgradeLocked`], storage errors.
    pub async fn open(self, password: &str) -> Result<Repository<Open>, Error> {
        let id = BlobId::new(FORMAT_BLOB_ID);
        let raw = self
            .storage
            .get(&id)
            .await
            .map_err(|e| Error::from_storage(&id, e))?;
        let blob = FormatBlob::parse(&raw)?;
        let password = password.to_owned();
        let config = tokio::task::spawn_blocking(move || blob.decrypt(&password))
            .await
            .map_err(|e| Error::Task(Box::new(e)))??;
        config.check_upgrade_lock(Timestamp::from_system_time(std::time::SystemTime::now()))?;
        let crypter = Crypter::new(config.cipher(), config.ecc);
        Ok(Repository {
            storage: self.storage,
            state: Open {
                config: Arc::new(config),
                crypter,
            },
        })
    }
}

impl Repository<Open> {
    /// The decrypted repository configuration.
    pub fn config(&self) -> &RepositoryConfig {
        &self.state.config
    }

    /// Loads the index with a fresh cache.
    ///
    /// # Errors
    ///
    /// Storage errors, [`Error::CorruptBlob`] for undecryptable or malformed index blobs.
    pub async fn load_index(self) -> Result<Repository<Indexed>, Error> {
        self.load_index_with_cache(IndexCache::new()).await
    }

    /// Loads the index, reusing (and filling) `cache`.
    ///
    /// # Errors
    ///
    /// As [`Repository::load_index`].
    pub async fn load_index_with_cache(
        self,
        cache: IndexCache,
    ) -> Result<Repository<Indexed>, Error> {
        let index = load_merged_index(
            self.storage.as_ref(),
            &self.state.config,
            &self.state.crypter,
            &cache,
        )
        .await?;
        let contents = Arc::new(ContentReader::new(
            Arc::clone(&self.storage),
            index,
            self.state.crypter.clone(),
            self.state.config.hasher().clone(),
        ));
        Ok(Repository {
            storage: self.storage,
            state: Indexed {
                config: self.state.config,
                crypter: self.state.crypter,
                cache,
                contents,
            },
        })
    }
}

impl Repository<Indexed> {
    /// Opens and indexes in one step.
    ///
    /// # Errors
    ///
    /// As [`Repository::open`] and [`Repository::load_index`].
    pub async fn connect(storage: Arc<dyn Storage>, password: &str) -> Result<Self, Error> {
        Repository::new(storage)
            .open(password)
            .await?
            .load_index()
            .await
    }

    /// The decrypted repository configuration.
    pub fn config(&self) -> &RepositoryConfig {
        &self.state.config
    }

    /// The storage.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The index cache (share it with later handles to make their loads cheap).
    pub fn index_cache(&self) -> &IndexCache {
        &self.state.cache
    }

    /// Number of active index blobs.
    pub fn index_blob_count(&self) -> usize {
        self.state.contents.index().blob_count()
    }

    /// Re-reads the index set (new snapshots become visible; compacted blobs drop out).
    ///
    /// # Errors
    ///
    /// As [`Repository::load_index`].
    pub async fn refresh_index(&self) -> Result<(), Error> {
        let index = load_merged_index(
            self.storage.as_ref(),
            &self.state.config,
            &self.state.crypter,
            &self.state.cache,
        )
        .await?;
        self.state.contents.replace_index(index);
        Ok(())
    }

    /// The index entry of a content.
    ///
    /// # Errors
    ///
    /// [`Error::ContentNotFound`].
    pub fn content_info(&self, id: &ContentId) -> Result<ContentInfo, Error> {
        self.state.contents.info(id)
    }

    /// All non-deleted contents whose ID starts with `prefix` (e.g. `"m"` or `"k"`), in index order.
    ///
    /// # Errors
    ///
    /// [`Error::CorruptBlob`] for a malformed index entry.
    pub fn list_contents(&self, prefix: Option<u8>) -> Result<Vec<ContentInfo>, Error> {
        let key: Vec<u8> = prefix.map(|p| vec![p]).unwrap_or_default();
        self.state
            .contents
            .index()
            .list_prefix(&key)
            .map_err(|(blob_id, cause)| Error::CorruptBlob { blob_id, cause })
    }

    /// Reads, decrypts, decompresses and verifies a content.
    ///
    /// # Errors
    ///
    /// [`Error::ContentNotFound`], [`Error::MissingBlob`] for a missing pack,
    /// [`Error::CorruptContent`] naming content and pack.
    pub async fn read_content(&self, id: &ContentId) -> Result<Bytes, Error> {
        self.state.contents.read(id).await.map(Bytes::from)
    }

    pub(crate) fn contents(&self) -> &Arc<ContentReader> {
        &self.state.contents
    }
}

async fn load_merged_index(
    storage: &dyn Storage,
    config: &RepositoryConfig,
    crypter: &Crypter,
    cache: &IndexCache,
) -> Result<MergedIndex, Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (ids, watermark) = if config.epoch.enabled {
            let s = epoch_index_set(storage).await?;
            (s.blobs, s.watermark)
        } else {
            (legacy_index_set(storage, crypter).await?, 0)
        };
        match load_blobs(storage, crypter, cache, &ids).await {
            Ok(blobs) => return Ok(MergedIndex::new(blobs, watermark)),
            // Compaction deleted a blob between listing and reading: list again.
            Err(Error::MissingBlob { blob_id }) if attempt < INDEX_SET_ATTEMPTS => {
                tracing::debug!(blob_id = %blob_id, attempt, "index blob vanished; recomputing index set");
                tokio::time::sleep(std::time::Duration::from_millis(100 << attempt.min(6))).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn load_blobs(
    storage: &dyn Storage,
    crypter: &Crypter,
    cache: &IndexCache,
    ids: &[BlobId],
) -> Result<Vec<(BlobId, Arc<IndexBlob>)>, Error> {
    futures::stream::iter(ids.iter().cloned())
        .map(|id| async move {
            if let Some(b) = cache.get(&id) {
                return Ok((id, b));
            }
            let data = storage
                .get(&id)
                .await
                .map_err(|e: StorageError| Error::from_storage(&id, e))?;
            let plain = crypter
                .decrypt_blob(&id, &data)
                .map_err(|cause| Error::CorruptBlob {
                    blob_id: id.clone(),
                    cause,
                })?;
            let blob = IndexBlob::parse(Bytes::from(plain)).map_err(|e| match e {
                crate::index::IndexParseError::Corrupt(cause) => Error::CorruptBlob {
                    blob_id: id.clone(),
                    cause,
                },
                crate::index::IndexParseError::Unsupported(u) => Error::Unsupported(u),
            })?;
            let blob = Arc::new(blob);
            cache.insert(id.clone(), Arc::clone(&blob));
            Ok((id, blob))
        })
        .buffered(INDEX_FETCH_PARALLELISM)
        .try_collect()
        .await
}
