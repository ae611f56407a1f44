//! Blob storage: the [`Storage`] trait and its implementations.
//!
//! Storage is the only asynchronous layer of the crate. Every backend returns whole blobs or byte
//! ranges as [`Bytes`]; nothing above this layer knows about paths, shards or HTTP.

use std::fmt;
use std::ops::Range;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::StorageError;
use crate::ids::BlobId;

mod fs;
mod memory;
#[cfg(feature = "cloud")]
mod object;
mod retry;

pub use fs::{FilesystemStorage, ShardOverride, ShardingConfig};
pub use memory::MemoryStorage;
#[cfg(feature = "cloud")]
pub use object::{ObjectStorage, S3Config};
pub use retry::{RetryPolicy, RetryingStorage};

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
impl<S: Storage + ?Sized> Storage for std::sync::Arc<S> {
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

/// Checks `range` against a blob of length `len`.
pub(crate) fn check_range(id: &BlobId, range: &Range<u64>, len: u64) -> Result<(), StorageError> {
    if range.start > range.end || range.end > len {
        return Err(StorageError::InvalidRange {
            blob_id: id.clone(),
            start: range.start,
            end: range.end,
            len,
        });
    }
    Ok(())
}
