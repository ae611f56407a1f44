//! In-memory storage for tests and fixtures.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use super::{BlobMetadata, Storage, check_range};
use crate::error::StorageError;
use crate::ids::BlobId;

/// Blobs held in memory. Writable through [`MemoryStorage::put`] so tests can build repositories.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    blobs: Mutex<BTreeMap<String, (Bytes, SystemTime)>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores (or replaces) a blob.
    pub fn put(&self, id: &str, data: impl Into<Bytes>) {
        self.lock()
            .insert(id.to_owned(), (data.into(), SystemTime::now()));
    }

    /// Removes a blob; returns whether it existed.
    pub fn remove(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }

    /// A copy of a blob's bytes.
    pub fn blob(&self, id: &str) -> Option<Bytes> {
        self.lock().get(id).map(|(b, _)| b.clone())
    }

    /// All blob IDs.
    pub fn ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (Bytes, SystemTime)>> {
        // A poisoned map is still consistent: every mutation is a single insert/remove.
        self.blobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn list(&self, prefix: &str) -> Result<Vec<BlobMetadata>, StorageError> {
        Ok(self
            .lock()
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, (v, t))| BlobMetadata {
                id: BlobId::new(k.clone()),
                length: v.len() as u64,
                timestamp: Some(*t),
            })
            .collect())
    }

    async fn get(&self, id: &BlobId) -> Result<Bytes, StorageError> {
        self.blob(id.as_str())
            .ok_or_else(|| StorageError::NotFound {
                blob_id: id.clone(),
            })
    }

    async fn get_range(&self, id: &BlobId, range: Range<u64>) -> Result<Bytes, StorageError> {
        let b = self.get(id).await?;
        check_range(id, &range, b.len() as u64)?;
        // Both bounds are <= b.len(), which fits usize.
        Ok(b.slice(range.start as usize..range.end as usize))
    }
}
