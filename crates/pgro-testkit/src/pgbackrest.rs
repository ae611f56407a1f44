//! Real pgBackRest repositories for the conformance tests of pgro's native pgBackRest reader: a running
//! PostgreSQL cluster ([`SourceCluster`]) whose WAL is archived by the real `pgbackrest archive-push`
//! into one or more repositories, backed up by the real `pgbackrest backup`, and restored by the real
//! `pgbackrest restore` as the oracle ([`SourceCluster::restore_with_pgbackrest`]), plus
//! [`tree_digest`]/[`tree_diff`] to compare two restored data directories.
//!
//! Everything runs as the non-root PostgreSQL user of the test infrastructure and every file lives
//! under the directory given to [`SourceCluster::start`] (pgBackRest's log, lock and spool paths too):
//!
//! ```text
//! <dir>/pgbackrest.conf        stanza "db", repo1..repoN, see SourceCluster::conf_path
//! <dir>/pgdata/                PGDATA (initdb --wal-segsize=1 --data-checksums)
//! <dir>/pgwal/                 pg_wal's target when ClusterOptions::pg_wal_link
//! <dir>/ts1/                   tablespace ts1's location when ClusterOptions::tablespace
//! <dir>/sock/                  the server's Unix socket (no TCP)
//! <dir>/postgres.log           the server's output
//! <dir>/repo1/ … <dir>/repoN/  posix repositories (S3 ones live in MinIO under /pgbackrest/repoN)
//! <dir>/pgbackrest/{log,lock,spool}/
//! ```
//!
//! The data set is small and known ([`SourceCluster::summary`]): table `t` (1000 rows, in `base/5`),
//! table `big` (35 000 rows, ≈3.4 MiB, so it is stored outside bundles and block incremental applies
//! to it) and,
//! with a tablespace, `ts_t` in `ts1`. [`SourceCluster::change`] updates rows in all of them and
//! checkpoints, so differential and incremental backups have something to copy.
//!
//! `compress-type` is a global pgBackRest option, not a per-repository one: the configuration file
//! carries repo1's type (so **archived WAL is compressed with repo1's type in every repository**) and
//! each backup passes `--compress-type` of the repository it writes.
//!
//! Things a reader test should expect: the WAL that `initdb` wrote is never archived (archiving starts
//! with the server), so the archive begins a few segments in; while the cluster runs, `archive-push`
//! may leave a `<segment>-<sha1>.<ext>.pgbackrest.tmp` file in the archive for a moment; posix
//! repositories carry the informational `backup/db/latest` symlink.

mod cluster;
mod options;
mod runner;
mod tree;

pub use cluster::{RestoredCluster, SourceCluster};
pub use options::{BackupType, ClusterOptions, Compress, PgbrVersion, RepoOptions, Storage};
pub use tree::{DiffOptions, Node, NodeKind, tree_diff, tree_digest};

/// The stanza every fixture uses (as Crunchy PGO and CYBERTEC CPO do).
pub const STANZA: &str = "db";
