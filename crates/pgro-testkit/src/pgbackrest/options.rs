//! What to build: the cluster's and each repository's options, and the pgBackRest that writes them.

use crate::fixtures::Minio;

/// Which pgBackRest binary writes the repositories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgbrVersion {
    /// Debian bookworm's 2.45 (`PGRO_PGBACKREST_245`): whole files, bundles, encryption; no block
    /// incremental, S3 over HTTPS only (so no S3 against the plain-HTTP MinIO fixture).
    V245,
    /// The current release (`PGRO_PGBACKREST`, 2.60.0): everything, including block incremental and
    /// S3 over plain HTTP.
    Current,
}

impl PgbrVersion {
    /// The `PGRO_*` key of its binary in the test infrastructure.
    pub fn key(self) -> &'static str {
        match self {
            Self::V245 => "PGRO_PGBACKREST_245",
            Self::Current => "PGRO_PGBACKREST",
        }
    }
}

/// `compress-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compress {
    /// `gz` (pgBackRest's default).
    #[default]
    Gz,
    /// `lz4`.
    Lz4,
    /// `zst`.
    Zst,
    /// `bz2`.
    Bz2,
    /// `none`.
    None,
}

impl Compress {
    /// The option value (`gz`, `lz4`, `zst`, `bz2`, `none`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gz => "gz",
            Self::Lz4 => "lz4",
            Self::Zst => "zst",
            Self::Bz2 => "bz2",
            Self::None => "none",
        }
    }

    /// The extension pgBackRest appends to whole files and WAL segments (`.gz`, …; empty for `none`).
    pub fn extension(self) -> &'static str {
        match self {
            Self::Gz => ".gz",
            Self::Lz4 => ".lz4",
            Self::Zst => ".zst",
            Self::Bz2 => ".bz2",
            Self::None => "",
        }
    }
}

/// Where a repository lives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Storage {
    /// `repoN-type=posix`, `repoN-path=<dir>/repoN`.
    #[default]
    Posix,
    /// `repoN-type=s3` in a bucket of the MinIO fixture (plain HTTP, path style, region `us-east-1`,
    /// `repoN-path=/pgbackrest/repoN`, so keys are `pgbackrest/repoN/…`). Needs [`PgbrVersion::Current`].
    S3 {
        /// MinIO's port on 127.0.0.1.
        port: u16,
        /// The bucket (it must exist: pass it to [`Minio::start`]).
        bucket: String,
    },
}

impl Storage {
    /// S3 in `bucket` of `minio`.
    pub fn minio(minio: &Minio, bucket: &str) -> Self {
        Self::S3 {
            port: minio.port,
            bucket: bucket.to_owned(),
        }
    }
}

/// One repository's options (`repoN-*`). Build with [`RepoOptions::posix`] and the chained setters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoOptions {
    /// `compress-type` of its backups (passed per backup; see the module docs for WAL).
    pub compress: Compress,
    /// `repoN-bundle=y`.
    pub bundle: bool,
    /// `repoN-block=y` (needs `bundle` and [`PgbrVersion::Current`]).
    pub block: bool,
    /// `repoN-cipher-type=aes-256-cbc` with this `repoN-cipher-pass`.
    pub cipher_pass: Option<String>,
    /// `repoN-bundle-limit`, e.g. `64KiB` so that small files are bundled and larger ones are not.
    pub bundle_limit: Option<String>,
    /// `repoN-bundle-size` (target size of one bundle), e.g. `1MiB` to get several bundles.
    pub bundle_size: Option<String>,
    /// Where it lives.
    pub storage: Storage,
    /// `repoN-path` of an S3 repository (default `/pgbackrest/repoN`, PGO's), so tests sharing one bucket
    /// keep apart.
    pub s3_path: Option<String>,
}

impl RepoOptions {
    /// A plain posix repository: gz, no bundles, no encryption.
    pub fn posix() -> Self {
        Self::default()
    }

    /// Sets the compression type of its backups.
    #[must_use]
    pub fn compress(mut self, compress: Compress) -> Self {
        self.compress = compress;
        self
    }

    /// Enables bundles (`repoN-bundle=y`).
    #[must_use]
    pub fn bundled(mut self) -> Self {
        self.bundle = true;
        self
    }

    /// Enables bundles and block incremental (`repoN-bundle=y`, `repoN-block=y`).
    #[must_use]
    pub fn block_incremental(mut self) -> Self {
        self.bundle = true;
        self.block = true;
        self
    }

    /// Encrypts with `aes-256-cbc` and this passphrase.
    #[must_use]
    pub fn encrypted(mut self, passphrase: &str) -> Self {
        self.cipher_pass = Some(passphrase.to_owned());
        self
    }

    /// Sets `repoN-bundle-limit` (e.g. `64KiB`).
    #[must_use]
    pub fn bundle_limit(mut self, limit: &str) -> Self {
        self.bundle_limit = Some(limit.to_owned());
        self
    }

    /// Sets the `repoN-path` of an S3 repository (e.g. `/pgbackrest/<namespace>/repo1`).
    #[must_use]
    pub fn s3_path(mut self, path: &str) -> Self {
        self.s3_path = Some(path.to_owned());
        self
    }

    /// Sets `repoN-bundle-size` (e.g. `1MiB`).
    #[must_use]
    pub fn bundle_size(mut self, size: &str) -> Self {
        self.bundle_size = Some(size.to_owned());
        self
    }

    /// Puts it in S3 (MinIO) instead of a directory.
    #[must_use]
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }
}

/// The cluster to create.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// PostgreSQL major (15–18; pgBackRest 2.45 supports up to 15).
    pub major: u32,
    /// The pgBackRest that archives and backs up.
    pub version: PgbrVersion,
    /// repo1, repo2, … in this order.
    pub repos: Vec<RepoOptions>,
    /// Creates tablespace `ts1` at `<dir>/ts1` with table `ts_t` in it.
    pub tablespace: bool,
    /// `initdb --waldir=<dir>/pgwal`, so `pg_wal` is a symlink (as in every Crunchy PGO backup).
    pub pg_wal_link: bool,
}

impl ClusterOptions {
    /// PostgreSQL `major` backed up by `version` into `repos`, without tablespace or `pg_wal` link.
    pub fn new(major: u32, version: PgbrVersion, repos: Vec<RepoOptions>) -> Self {
        Self {
            major,
            version,
            repos,
            tablespace: false,
            pg_wal_link: false,
        }
    }

    /// With tablespace `ts1` (and table `ts_t` in it).
    #[must_use]
    pub fn with_tablespace(mut self) -> Self {
        self.tablespace = true;
        self
    }

    /// With `pg_wal` a symlink to `<dir>/pgwal`.
    #[must_use]
    pub fn with_pg_wal_link(mut self) -> Self {
        self.pg_wal_link = true;
        self
    }
}

/// `--type` of a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupType {
    /// `full`.
    Full,
    /// `diff` (changes since the last full).
    Diff,
    /// `incr` (changes since the last backup of any type).
    Incr,
}

impl BackupType {
    /// The option value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Diff => "diff",
            Self::Incr => "incr",
        }
    }
}
