//! Native, read-only reader of barman-cloud object stores as CloudNativePG writes them
//! (barman-restic-format.md part A): `base/<backup_id>/backup.info`, the base backup's tars and the WAL
//! archive under `<destinationPath>/<serverName>/`. Nothing here writes to a store.
//!
//! So far: [`Catalog`] (a server's backups, from one listing of `base/` and each `backup.info`),
//! [`BackupInfo`] (the `key=value` file, unknown keys ignored, missing keys null) over [`pylit`], a parser
//! of the Python literals barman writes with `repr()`.

pub mod catalog;
pub mod codec;
pub mod info;
pub mod pylit;
pub mod restore;
pub mod wal;

pub use catalog::{Backup, Catalog, ListError, Listing};
pub use codec::Compression;
pub use info::{BackupInfo, BackupStatus, InfoError, Tablespace};
pub use restore::{Part, RestoreError, RestoreSummary};
pub use wal::{ReadIntoError, StoredWal, WalError};
