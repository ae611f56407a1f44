//! Native, read-only reader of pgBackRest repositories (format 5, pgBackRest 2.3x–2.6x): the principal
//! types are [`Repository`] (a stanza: `backup.info`, manifests, `archive.info`), [`Manifest`], the restore
//! engine ([`Repository::restore`]) and WAL fetch ([`Repository::find_wal`], [`Repository::read_wal`]).
//! Storage is any [`blobstore::BlobStore`] rooted at the repository path; nothing is ever written to it.
//! The format, byte by byte, is in `pgbackrest-format.md` of the design documents; section numbers in
//! comments refer to it.
#![deny(missing_docs)]

pub mod blockmap;
mod cipher;
mod codec;
mod error;
mod info;
mod ini;
pub mod label;
mod manifest;
mod repo;
mod restore;
mod wal;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

pub use codec::Compress;
pub use error::{Error, ErrorKind, StorageError, error_chain};
pub use info::{ArchiveInfo, BackupEntry, BackupInfo, BackupType, DbHistory};
pub use manifest::{
    BlockIncr, EMPTY_SHA1, Manifest, ManifestDb, ManifestFile, ManifestPath, Tablespace,
};
pub use repo::Repository;
pub use restore::{
    PG_CONTROL_TMP, ProgressFn, RestoreOptions, RestoreProgress, RestoreSummary, RestoredTablespace,
};
pub use wal::StoredSegment;
