//! Content indexes: binary index blobs v1/v2, the active index-blob set (epoch manager or legacy
//! `n` blobs), and merging across blobs (kopia `repo/content/index`, `internal/epoch`,
//! `repo/content/indexblob`).

mod blob;
#[cfg(test)]
mod builder;
mod epoch;
mod legacy;
mod load;
mod merged;

pub(crate) use blob::IndexBlob;
use blob::IndexParseError;
#[cfg(test)]
pub(crate) use builder::IndexBuilder;
use epoch::epoch_index_set;
use legacy::legacy_index_set;
pub(crate) use load::IndexLoader;
pub(crate) use merged::MergedIndex;

use crate::ids::{BlobId, ContentId};

/// One index entry: where a content lives and how it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentInfo {
    /// The content.
    pub content_id: ContentId,
    /// The pack blob holding it.
    pub pack_blob_id: BlobId,
    /// Entry timestamp in Unix seconds.
    pub timestamp_seconds: i64,
    /// Length before compression and encryption.
    pub original_length: u32,
    /// Length in the pack (after compression, encryption and ECC).
    pub packed_length: u32,
    /// Offset in the pack.
    pub pack_offset: u32,
    /// Compression header ID (0 = none).
    pub compression_header_id: u32,
    /// Whether the entry marks the content deleted.
    pub deleted: bool,
    /// Content format version.
    pub format_version: u8,
    /// Encryption key ID (reserved; must be 0).
    pub encryption_key_id: u8,
}

impl ContentInfo {
    /// Kopia's merge order (`index.contentInfoGreaterThan`): newer timestamp wins, then
    /// non-deleted, then the larger pack ID.
    pub(crate) fn supersedes(&self, other: &Self) -> bool {
        if self.timestamp_seconds != other.timestamp_seconds {
            return self.timestamp_seconds > other.timestamp_seconds;
        }
        if self.deleted != other.deleted {
            return !self.deleted;
        }
        self.pack_blob_id > other.pack_blob_id
    }
}
