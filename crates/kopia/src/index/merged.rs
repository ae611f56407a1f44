//! A merged view over the active index blobs, applying kopia's winner and watermark rules.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{ContentInfo, IndexBlob};
use crate::error::Corruption;
use crate::ids::{BlobId, ContentId};

/// The active index blobs plus the deletion watermark (Unix seconds; 0 = none).
#[derive(Debug, Clone, Default)]
pub(crate) struct MergedIndex {
    blobs: Vec<(BlobId, Arc<IndexBlob>)>,
    watermark: i64,
}

impl MergedIndex {
    pub(crate) fn new(blobs: Vec<(BlobId, Arc<IndexBlob>)>, watermark: i64) -> Self {
        Self { blobs, watermark }
    }

    /// Number of index blobs.
    pub(crate) fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    /// The winning entry for `id`, hiding deleted winners at or before the watermark.
    /// A deleted winner newer than the watermark is still returned (it stays readable).
    pub(crate) fn lookup(
        &self,
        id: &ContentId,
    ) -> Result<Option<ContentInfo>, (BlobId, Corruption)> {
        let mut best: Option<ContentInfo> = None;
        for (name, b) in &self.blobs {
            if let Some(e) = b.lookup(id).map_err(|c| (name.clone(), c))?
                && best.as_ref().is_none_or(|cur| e.supersedes(cur))
            {
                best = Some(e);
            }
        }
        Ok(best.filter(|w| !(w.deleted && w.timestamp_seconds <= self.watermark)))
    }

    /// All non-deleted winners whose key starts with `prefix`, in key order.
    pub(crate) fn list_prefix(
        &self,
        prefix: &[u8],
    ) -> Result<Vec<ContentInfo>, (BlobId, Corruption)> {
        let mut winners: BTreeMap<ContentId, ContentInfo> = BTreeMap::new();
        for (name, b) in &self.blobs {
            for e in b.iter_prefix(prefix) {
                let e = e.map_err(|c| (name.clone(), c))?;
                match winners.get(&e.content_id) {
                    Some(cur) if !e.supersedes(cur) => {}
                    Some(_) | None => {
                        winners.insert(e.content_id, e);
                    }
                }
            }
        }
        Ok(winners.into_values().filter(|e| !e.deleted).collect())
    }
}

#[cfg(test)]
mod tests;
