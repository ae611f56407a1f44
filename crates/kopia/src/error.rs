//! Error types. [`Error`] is the crate's error; [`StorageError`] (the `blobstore` crate's error)
//! is what storage backends return.

use std::io;
use std::path::PathBuf;

use crate::ids::{BlobId, ContentId, ObjectId};

pub use blobstore::{BoxError, Error as StorageError};

/// A coarse classification of [`Error`] for callers that map errors to exit codes or retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The password does not decrypt the repository.
    WrongPassword,
    /// A blob, content, object or snapshot that should exist does not.
    NotFound,
    /// Stored data failed authentication, a hash check or parsing.
    Corrupted,
    /// The repository uses a feature or algorithm this reader does not implement.
    Unsupported,
    /// Storage could not be reached (network, timeouts, server errors).
    Unreachable,
    /// Storage answered with a non-transient failure (permissions, a refused request).
    Storage,
    /// The repository is locked for a format upgrade.
    Locked,
    /// Writing the restore target failed.
    Io,
    /// The caller passed an invalid argument, or the storage configuration cannot work as given
    /// (a bad endpoint scheme, a bucket region that differs from the configured one): retrying
    /// with the same settings fails the same way.
    InvalidArgument,
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The password does not decrypt the format blob (AEAD authentication failed).
    #[error("wrong password: it does not decrypt the repository format blob")]
    WrongPassword,
    /// A blob the repository refers to is missing from storage.
    #[error("blob {blob_id} is missing from storage")]
    MissingBlob {
        /// The blob.
        blob_id: BlobId,
    },
    /// Storage failed.
    #[error("storage operation on {target} failed")]
    Storage {
        /// The blob or listing prefix involved.
        target: String,
        /// The backend error.
        #[source]
        source: StorageError,
    },
    /// A content failed decryption, decompression, ECC or its hash check.
    #[error("content {content_id} in pack {pack} at offset {offset} is corrupted")]
    CorruptContent {
        /// The content.
        content_id: ContentId,
        /// The pack blob holding it.
        pack: BlobId,
        /// Offset of the content in the pack.
        offset: u64,
        /// What is wrong.
        #[source]
        cause: Corruption,
    },
    /// A blob (format blob, index blob, log) is corrupted.
    #[error("blob {blob_id} is corrupted")]
    CorruptBlob {
        /// The blob.
        blob_id: BlobId,
        /// What is wrong.
        #[source]
        cause: Corruption,
    },
    /// An object (file, directory listing, indirect list) is malformed.
    #[error("object {object_id} is malformed")]
    CorruptObject {
        /// The object.
        object_id: ObjectId,
        /// What is wrong.
        #[source]
        cause: Corruption,
    },
    /// A manifest content is malformed.
    #[error("manifest content {content_id} is malformed")]
    CorruptManifest {
        /// The manifest content.
        content_id: ContentId,
        /// What is wrong.
        #[source]
        cause: Corruption,
    },
    /// A snapshot manifest payload is malformed.
    #[error("snapshot manifest {manifest_id} is malformed")]
    CorruptSnapshot {
        /// The manifest entry.
        manifest_id: crate::ids::ManifestId,
        /// What is wrong.
        #[source]
        cause: Corruption,
    },
    /// A content is not in the index (or was deleted and is past the deletion watermark).
    #[error("content {content_id} not found in the index")]
    ContentNotFound {
        /// The content.
        content_id: ContentId,
    },
    /// No snapshot or object matched.
    #[error("snapshot or object {query} not found")]
    SnapshotNotFound {
        /// What was looked up.
        query: String,
    },
    /// The repository needs something this reader does not implement.
    #[error("unsupported repository feature")]
    Unsupported(#[from] Unsupported),
    /// The repository is locked for an upgrade.
    #[error("repository is locked for a format upgrade by {owner_id}")]
    UpgradeLocked {
        /// The upgrade owner.
        owner_id: String,
    },
    /// Writing to the restore target failed.
    #[error("{op} {path} failed")]
    Io {
        /// What was being done (`create`, `write`, `chmod`, …).
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// An ID failed to parse.
    #[error("invalid identifier")]
    InvalidId(#[from] IdParseError),
    /// The restore target is not usable (e.g. a file exists where a directory must go).
    #[error("restore target {path} is not usable: {reason}")]
    TargetConflict {
        /// The conflicting path.
        path: PathBuf,
        /// Why.
        reason: &'static str,
    },
    /// A background task panicked or was cancelled.
    #[error("background task failed")]
    Task(#[source] BoxError),
}

impl Error {
    /// The coarse kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::WrongPassword => ErrorKind::WrongPassword,
            Self::MissingBlob { .. }
            | Self::ContentNotFound { .. }
            | Self::SnapshotNotFound { .. } => ErrorKind::NotFound,
            Self::Storage { source, .. } => match source {
                StorageError::NotFound { .. } => ErrorKind::NotFound,
                StorageError::Unreachable { .. } => ErrorKind::Unreachable,
                StorageError::Io { .. }
                | StorageError::Backend { .. }
                | StorageError::Denied { .. } => ErrorKind::Storage,
                // Deterministic: the same settings fail the same way, so callers must not retry
                // them as if storage were away.
                StorageError::Config { .. }
                | StorageError::InvalidKey { .. }
                | StorageError::WrongRegion { .. }
                | StorageError::EndpointScheme { .. } => ErrorKind::InvalidArgument,
                // A blob shorter than the index says is damage, not a storage outage. Content
                // reads turn it into `CorruptContent`; this covers any other range read.
                StorageError::InvalidRange { .. } => ErrorKind::Corrupted,
            },
            Self::CorruptContent { .. }
            | Self::CorruptBlob { .. }
            | Self::CorruptObject { .. }
            | Self::CorruptManifest { .. }
            | Self::CorruptSnapshot { .. } => ErrorKind::Corrupted,
            Self::Unsupported(_) => ErrorKind::Unsupported,
            Self::UpgradeLocked { .. } => ErrorKind::Locked,
            Self::Io { .. } | Self::TargetConflict { .. } | Self::Task(_) => ErrorKind::Io,
            Self::InvalidId(_) => ErrorKind::InvalidArgument,
        }
    }

    /// Whether retrying the operation later may succeed (transient storage failures, upgrade locks).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Storage { source, .. } => source.is_transient(),
            Self::UpgradeLocked { .. } => true,
            Self::WrongPassword
            | Self::MissingBlob { .. }
            | Self::CorruptContent { .. }
            | Self::CorruptBlob { .. }
            | Self::CorruptObject { .. }
            | Self::CorruptManifest { .. }
            | Self::CorruptSnapshot { .. }
            | Self::ContentNotFound { .. }
            | Self::SnapshotNotFound { .. }
            | Self::Unsupported(_)
            | Self::Io { .. }
            | Self::InvalidId(_)
            | Self::TargetConflict { .. }
            | Self::Task(_) => false,
        }
    }

    /// Maps a storage error for `blob_id` to [`Error::MissingBlob`] or [`Error::Storage`].
    pub(crate) fn from_storage(blob_id: &BlobId, source: StorageError) -> Self {
        match source {
            StorageError::NotFound { .. } => Self::MissingBlob {
                blob_id: blob_id.clone(),
            },
            other => Self::Storage {
                target: blob_id.to_string(),
                source: other,
            },
        }
    }
}

/// What is wrong with corrupted data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Corruption {
    /// AEAD authentication failed.
    #[error("decryption failed (authentication tag mismatch)")]
    Decrypt,
    /// The decrypted content does not hash to its content ID.
    #[error("content hash mismatch")]
    HashMismatch,
    /// Decompression failed.
    #[error("decompression failed")]
    Decompress(#[source] io::Error),
    /// The compression header in the data differs from the index entry.
    #[error("compression header {actual:#x} differs from index entry {expected:#x}")]
    CompressionHeader {
        /// From the index.
        expected: u32,
        /// From the data.
        actual: u32,
    },
    /// The pack blob ends before the content's recorded extent (a truncated pack).
    #[error("the pack is {len} bytes long, but the index places the content up to byte {end}")]
    Truncated {
        /// End of the content in the pack, from the index.
        end: u64,
        /// Length of the pack blob.
        len: u64,
    },
    /// A length differs from what was recorded.
    #[error("length {actual} differs from expected {expected}")]
    Length {
        /// Expected length.
        expected: u64,
        /// Actual length.
        actual: u64,
    },
    /// Error correction could not repair the data.
    #[error("error correction failed")]
    Ecc(#[source] EccError),
    /// JSON did not parse.
    #[error("invalid JSON")]
    Json(#[source] serde_json::Error),
    /// Binary data is truncated or a field is out of range.
    #[error("malformed {what}")]
    Malformed {
        /// Which structure or field.
        what: &'static str,
    },
}

/// ECC decoding failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EccError {
    /// Too many shards of a block failed their CRC for Reed–Solomon to rebuild it.
    #[error("block {block}: {bad} damaged shards exceed {parity} parity shards")]
    TooManyErrors {
        /// Block index.
        block: usize,
        /// Damaged shards.
        bad: usize,
        /// Parity shards available.
        parity: usize,
    },
    /// The stored length does not fit the layout.
    #[error("stored length {len} does not fit the ECC layout")]
    Layout {
        /// Stored length.
        len: usize,
    },
    /// The embedded length prefix is out of range.
    #[error("embedded length {len} exceeds the decoded data")]
    EmbeddedLength {
        /// The embedded length.
        len: u64,
    },
}

/// Repository features this reader does not implement.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Unsupported {
    /// Unknown content hash algorithm.
    #[error("hash algorithm {0:?}")]
    Hash(String),
    /// Unknown content encryption algorithm.
    #[error("encryption algorithm {0:?}")]
    Encryption(String),
    /// Unknown format-blob encryption.
    #[error("format blob encryption {0:?}")]
    FormatEncryption(String),
    /// Unknown key derivation algorithm.
    #[error("key derivation algorithm {0:?}")]
    KeyDerivation(String),
    /// The format blob names no key derivation algorithm (`keyAlgo`), which kopia refuses too.
    #[error("format blob without a key derivation algorithm (keyAlgo)")]
    NoKeyDerivation,
    /// Unknown ECC algorithm.
    #[error("error correction algorithm {0:?}")]
    Ecc(String),
    /// Format version out of range.
    #[error("repository format version {0}")]
    FormatVersion(i64),
    /// A required feature that is not understood.
    #[error("required feature {feature:?}: {message}")]
    RequiredFeature {
        /// Feature name.
        feature: String,
        /// Kopia's message for readers that do not understand it.
        message: String,
    },
    /// Index blob version.
    #[error("index version {0}")]
    IndexVersion(u8),
    /// Non-zero encryption key ID (reserved in kopia).
    #[error("encryption key ID {0}")]
    EncryptionKeyId(u8),
    /// Compression header ID.
    #[error("compression header {0:#x}")]
    Compression(u32),
    /// Directory entry type.
    #[error("directory entry type {0:?}")]
    EntryType(String),
    /// Directory stream type.
    #[error("directory stream {0:?}")]
    Stream(String),
}

/// Identifier parse failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdParseError {
    /// Hash length out of range.
    #[error("content ID hash length {len} is out of range")]
    ContentIdLength {
        /// Hash length in bytes.
        len: usize,
    },
    /// Prefix outside `g..=z`.
    #[error("content ID prefix {prefix:?} is outside g..z")]
    ContentIdPrefix {
        /// The prefix.
        prefix: char,
    },
    /// Bad hex.
    #[error("invalid hex in {input:?}")]
    Hex {
        /// The input.
        input: String,
    },
    /// Bad object ID.
    #[error("invalid object ID {input:?}")]
    ObjectId {
        /// The input.
        input: String,
    },
    /// Bad manifest ID.
    #[error("invalid manifest ID {input:?}")]
    ManifestId {
        /// The input.
        input: String,
    },
}
