//! The [`Repository`] facade and its typestates: `Unopened` → `Open` (format decrypted) →
//! `Indexed` (index loaded; contents, objects, snapshots readable).

use std::sync::Arc;

use bytes::Bytes;

use crate::cache::IndexCache;
use crate::content::ContentReader;
use crate::crypto::Crypter;
use crate::error::Error;
use crate::format::{FORMAT_BLOB_ID, FormatBlob, RepositoryConfig};
use crate::ids::{BlobId, ContentId};
use crate::index::{ContentInfo, IndexLoader};
use crate::storage::Storage;
use crate::time::Timestamp;

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
        let loader = IndexLoader {
            storage: Arc::clone(&self.storage),
            config: Arc::clone(&self.state.config),
            crypter: self.state.crypter.clone(),
            cache: cache.clone(),
        };
        let index = loader.load().await?;
        let hasher = self.state.config.hasher().clone();
        let contents = Arc::new(ContentReader::new(loader, index, hasher));
        Ok(Repository {
            storage: self.storage,
            state: Indexed {
                config: self.state.config,
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
        self.state.contents.reload_index().await
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
