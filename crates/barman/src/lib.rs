//! Native, read-only reader of barman-cloud object stores as CloudNativePG writes them
//! (barman-restic-format.md part A): `base/<backup_id>/backup.info`, the base backup's tars and the WAL
//! archive under `<destinationPath>/<serverName>/`. Nothing here writes to a store.
//!
//! [`Catalog`] lists a server's backups (one listing of `base/`, then each `backup.info` as a
//! [`BackupInfo`]: `key=value`, unknown keys ignored, missing keys null, values parsed by [`pylit`], a
//! parser of the Python literals barman writes with `repr()`), restores one (every tar streamed
//! GET → decompress → tar, parts in parallel, tablespaces relinked; [`restore`]) and fetches WAL
//! ([`wal`]: compression suffixes, `.partial`, history files, each segment's system identifier checked).

pub mod catalog;
pub mod codec;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod info;
pub mod pylit;
pub mod restore;
pub mod wal;

pub use catalog::{Backup, Catalog, ListError, Listing};
pub use codec::Compression;
pub use info::{BackupInfo, BackupStatus, InfoError, Tablespace};
pub use restore::{Part, Progress, RestoreError, RestoreSummary};
pub use wal::{ReadIntoError, StoredWal, WalError};
