//! Native, read-only reader of restic repositories (barman-restic-format.md part B), written for
//! KubeStash's logical PostgreSQL backups: one `pg_dumpall`/`pg_dump` output per snapshot, stored with
//! `restic backup --stdin --stdin-filename dumpfile.sql`.
//!
//! [`Repository::open`] finds the master key (scrypt key files, Poly1305-AES MACs checked before any
//! decryption; [`crypto`]) and reads `config` (versions 1 and 2); [`Repository::snapshots`] lists the
//! snapshots; [`Repository::find_file`] walks a snapshot's trees to a file; [`stream_file`] streams its
//! contents blob by blob with bounded prefetch, each blob's SHA-256 checked. Nothing here writes to a
//! repository, not even a lock.
//!
//! Native rather than `rustic_core` (issue 15 asked for the measured reason): `rustic_core` 0.13 is
//! synchronous (rayon), brings 155 crates (≈396 with a backend) including a second HTTP stack, has an
//! API its README calls unstable, and reading a file needs its whole indexed repository; the read path
//! here is ≈700 lines over crates pgro already builds (aes, ctr, poly1305, scrypt, zstd, sha2) and
//! `crates/blobstore`, async end to end.

pub mod crypto;
pub mod error;
pub mod format;
pub mod repo;
pub mod stream;

pub use error::{Error, ErrorClass};
pub use format::Id;
pub use repo::{FileNode, Index, Repository, Snapshot};
pub use stream::{DEFAULT_PREFETCH, stream_file};
