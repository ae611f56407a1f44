//! A cache of parsed index blobs keyed by blob ID. Index blobs are immutable (their names derive
//! from a content hash), so entries never go stale; sharing one cache across repository handles
//! makes refreshes cheap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::ids::BlobId;
use crate::index::IndexBlob;

/// Parsed index blobs by name. Cloning shares the cache.
#[derive(Debug, Clone, Default)]
pub struct IndexCache {
    inner: Arc<Mutex<HashMap<BlobId, Arc<IndexBlob>>>>,
}

impl IndexCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of cached index blobs.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops cached blobs that are not in `keep` (e.g. after compaction removed them).
    pub fn retain(&self, keep: &[BlobId]) {
        let keep: std::collections::HashSet<&BlobId> = keep.iter().collect();
        self.lock().retain(|k, _| keep.contains(k));
    }

    pub(crate) fn get(&self, id: &BlobId) -> Option<Arc<IndexBlob>> {
        self.lock().get(id).cloned()
    }

    pub(crate) fn insert(&self, id: BlobId, blob: Arc<IndexBlob>) {
        self.lock().insert(id, blob);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<BlobId, Arc<IndexBlob>>> {
        // Inserts are atomic, so a poisoned map is still consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
