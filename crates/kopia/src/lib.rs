//! A native, read-only client for Kopia repositories.
//!
//! The principal types, bottom to top:
//!
//! * [`Storage`] — blob access (`list`, `get`, `get_range`), implemented by [`BlobStorage`] over the
//!   `blobstore` crate's stores: [`FilesystemStorage`] (kopia's sharded layout), [`ObjectStorage`]
//!   (S3/GCS/Azure via `object_store`), [`MemoryStorage`] (tests); and by the [`RetryingStorage`]
//!   decorator.
//! * [`FormatBlob`] / [`RepositoryConfig`] — `kopia.repository`, password → keys, algorithms.
//! * [`Repository`] — a typestate facade: [`Repository<Unopened>`](Unopened) →
//!   [`open`](Repository::open) → [`Repository<Open>`](Open) → [`load_index`](Repository::load_index) →
//!   [`Repository<Indexed>`](Indexed), which reads contents, objects ([`ObjectReader`]),
//!   directories, manifests and snapshots ([`SnapshotManifest`], [`snapshot_list_json`]).
//! * [`Error`] — typed errors with [`Error::kind`] and [`Error::is_retryable`].
//!
//! # Sync/async boundary
//!
//! Storage is asynchronous (tokio; `object_store` is async), and so is everything that reads
//! through it: opening, index loading, content/object reads, listing and restore. CPU-heavy work —
//! the password KDF, decryption, decompression and hash verification of large contents, and file
//! writes during restore — runs on tokio's blocking pool (`spawn_blocking`), never on the async
//! workers. Pure parsing and crypto types ([`Hasher`], [`ContentCipher`], [`EccParams`],
//! [`FormatBlob::decrypt`]) are synchronous. A tokio runtime with the `rt-multi-thread` flavour is
//! expected.
//!
//! Every content read is verified against its content hash (kopia itself does not).
#![deny(missing_docs)]

mod cache;
mod compression;
mod content;
mod crypto;
mod error;
mod format;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod ids;
mod index;
mod manifest;
mod object;
mod repository;
mod restore;
mod retention;
mod serde_util;
mod snapshot;
mod storage;
mod time;
mod verify;

#[cfg(feature = "cloud")]
pub use blobstore::{AzureConfig, GcsConfig, S3Config};
pub use blobstore::{RetryPolicy, Retrying as RetryingStorage};
pub use cache::IndexCache;
pub use compression::Compression;
pub use crypto::{
    ContentCipher, Crypter, EccParams, EncryptionAlgorithm, HashAlgorithm, HashValue, Hasher,
    KeyDerivation, derive_format_key, hkdf_sha256,
};
pub use error::{
    BoxError, Corruption, EccError, Error, ErrorKind, IdParseError, StorageError, Unsupported,
};
pub use format::{
    EpochParameters, FORMAT_BLOB_ID, FormatBlob, IfNotUnderstood, RepositoryConfig,
    RequiredFeature, UpgradeLock,
};
pub use ids::{BlobId, ContentId, ManifestId, ObjectId, SnapshotId};
pub use index::ContentInfo;
pub use manifest::ManifestEntry;
pub use object::{Chunk, ObjectReader};
pub use repository::{Indexed, Open, Repository, Unopened};
pub use restore::{
    Attributes, LocalDir, MemoryEntry, MemoryTarget, PlannedDir, PlannedFile, PlannedSymlink,
    ProgressFn, RestoreOptions, RestorePlan, RestoreProgress, RestoreStats, RestoreTarget,
};
pub use retention::RetentionPolicy;
pub use snapshot::{
    DirEntry, Directory, DirectorySummary, EntryType, EntryWithError, FileMode, SnapshotManifest,
    SourceInfo, Stats, snapshot_list_json,
};
#[cfg(feature = "cloud")]
pub use storage::ObjectStorage;
pub use storage::{
    BlobMetadata, BlobStorage, FilesystemStorage, MemoryStorage, ShardOverride, ShardingConfig,
    Storage,
};
pub use time::Timestamp;
pub use verify::VerifyReport;
