//! Blob storage: the [`Storage`] trait over blob IDs and [`BlobStorage`], which keeps kopia blobs
//! in a [`BlobStore`].
//!
//! Storage is the only asynchronous layer of the crate. Every backend returns whole blobs or byte
//! ranges as [`Bytes`]; nothing above this layer knows about keys, shards or HTTP. Object stores
//! keep a blob at the key equal to its ID (under the store's prefix); the filesystem layout is
//! sharded (see [`ShardingConfig`]).

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use blobstore::{BlobStore, MemoryStore, Retrying};
use bytes::Bytes;

use crate::error::StorageError;
use crate::ids::BlobId;

mod fs;
#[cfg(feature = "cloud")]
mod object;

pub use fs::{FilesystemStorage, ShardOverride, ShardingConfig};
#[cfg(feature = "cloud")]
pub use object::ObjectStorage;

/// Blobs held in memory, for tests: [`BlobStorage::store`] gives access to
/// [`MemoryStore::put`].
pub type MemoryStorage = BlobStorage<MemoryStore>;

/// Name, size and timestamp of a listed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMetadata {
    /// The blob.
    pub id: BlobId,
    /// Length in bytes.
    pub length: u64,
    /// Modification time, when the backend reports one.
    pub timestamp: Option<SystemTime>,
}

/// Read access to a Kopia blob store. Implementations are cheap to share (`Arc<dyn Storage>`).
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    /// Lists all blobs whose ID starts with `prefix` (in no particular order).
    ///
    /// # Errors
    ///
    /// Fails when the backend cannot list.
    async fn list(&self, prefix: &str) -> Result<Vec<BlobMetadata>, StorageError>;

    /// Reads a whole blob.
    ///
    /// # Errors
    ///
    /// [`StorageError::NotFound`] for a missing blob; other variants for backend failures.
    async fn get(&self, id: &BlobId) -> Result<Bytes, StorageError>;

    /// Reads `range` of a blob. A range past the end of the blob is an error.
    ///
    /// # Errors
    ///
    /// [`StorageError::NotFound`] for a missing blob, [`StorageError::InvalidRange`] for a short blob.
    async fn get_range(&self, id: &BlobId, range: Range<u64>) -> Result<Bytes, StorageError>;
}

#[async_trait]
impl<S: Storage + ?Sized> Storage for Arc<S> {
    async fn list(&self, prefix: &str) -> Result<Vec<BlobMetadata>, StorageError> {
        (**self).list(prefix).await
    }

    async fn get(&self, id: &BlobId) -> Result<Bytes, StorageError> {
        (**self).get(id).await
    }

    async fn get_range(&self, id: &BlobId, range: Range<u64>) -> Result<Bytes, StorageError> {
        (**self).get_range(id, range).await
    }
}

/// Retries transient failures of a blob storage (the same policy as for any [`BlobStore`]).
#[async_trait]
impl<S: Storage> Storage for Retrying<S> {
    async fn list(&self, prefix: &str) -> Result<Vec<BlobMetadata>, StorageError> {
        self.run(|| self.inner().list(prefix)).await
    }

    async fn get(&self, id: &BlobId) -> Result<Bytes, StorageError> {
        self.run(|| self.inner().get(id)).await
    }

    async fn get_range(&self, id: &BlobId, range: Range<u64>) -> Result<Bytes, StorageError> {
        self.run(|| self.inner().get_range(id, range.clone())).await
    }
}

/// Kopia blobs in a [`BlobStore`]: at the key equal to the blob ID, or sharded into directories
/// with kopia's filesystem layout.
#[derive(Debug, Clone)]
pub struct BlobStorage<S> {
    store: S,
    sharding: Option<Arc<ShardingConfig>>,
}

impl<S: BlobStore> BlobStorage<S> {
    /// Blobs at keys equal to their IDs (kopia's object store layout).
    pub fn flat(store: S) -> Self {
        Self {
            store,
            sharding: None,
        }
    }

    /// Blobs in kopia's sharded filesystem layout.
    pub fn sharded(store: S, sharding: ShardingConfig) -> Self {
        Self {
            store,
            sharding: Some(Arc::new(sharding)),
        }
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The sharding parameters, for the sharded layout.
    pub fn sharding(&self) -> Option<&ShardingConfig> {
        self.sharding.as_deref()
    }

    /// The key of blob `id`.
    pub fn key(&self, id: &BlobId) -> String {
        match &self.sharding {
            Some(s) => s.key(id.as_str()),
            None => id.to_string(),
        }
    }
}

impl MemoryStorage {
    /// An empty in-memory store.
    pub fn new() -> Self {
        Self::flat(MemoryStore::new())
    }
}

impl Default for MemoryStorage {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl<S: BlobStore> Storage for BlobStorage<S> {
    async fn list(&self, prefix: &str) -> Result<Vec<BlobMetadata>, StorageError> {
        if self.sharding.is_some() {
            return fs::list_sharded(&self.store, prefix).await;
        }
        Ok(self
            .store
            .list(prefix)
            .await?
            .into_iter()
            // Blob IDs never contain `/`; such keys belong to something else under the prefix.
            .filter(|o| !o.key.contains('/'))
            .map(|o| BlobMetadata {
                id: BlobId::new(o.key),
                length: o.size,
                timestamp: o.modified,
            })
            .collect())
    }

    async fn get(&self, id: &BlobId) -> Result<Bytes, StorageError> {
        self.store
            .get(&self.key(id))
            .await
            .map_err(|e| e.with_key(id.as_str()))
    }

    async fn get_range(&self, id: &BlobId, range: Range<u64>) -> Result<Bytes, StorageError> {
        self.store
            .get_range(&self.key(id), range)
            .await
            .map_err(|e| e.with_key(id.as_str()))
    }
}

#[cfg(test)]
mod tests;
