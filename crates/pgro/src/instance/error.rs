//! `pgro instance` errors and their exit codes.

use std::path::PathBuf;
use std::process::ExitStatus;

/// Why the instance manager stopped before or instead of serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a PostgreSQL data directory (no readable PG_VERSION)")]
    NotDataDir { path: PathBuf },
    #[error(
        "{path} is missing: the data directory is unusable (a copy taken without global/pg_control cannot \
         be started; restore a complete backup)"
    )]
    MissingControlFile { path: PathBuf },
    #[error(
        "PGDATA is PostgreSQL {major}; no postgres {major} binaries found on PATH{found}. Run the instance \
         in the postgres:{major} image (the replica's postgres image template), or put that major's bin \
         directory first on PATH"
    )]
    NoBinaries { major: u32, found: String },
    #[error(
        "tablespace {oid} links to {target}, outside the restore's volume {volume}: refused (pgro never uses files outside the volume; restore with `pgro restore`, which relinks tablespaces inside it)"
    )]
    TablespaceOutsideVolume {
        oid: String,
        target: PathBuf,
        volume: PathBuf,
    },
    #[error("a postmaster (pid {pid}) is already running on {path}")]
    AlreadyRunning { pid: i32, path: PathBuf },
    #[error("invalid {what} {value:?}: must match {pattern} and not be reserved")]
    InvalidIdentifier {
        what: &'static str,
        value: String,
        pattern: &'static str,
    },
    #[error(
        "the CA file {path} cannot verify the server: {reason} (it comes from the replica's CA Secret, or ca.crt of spec.tls.certificateSecretRef)"
    )]
    TlsCa { path: PathBuf, reason: String },
    #[error("{option} is required with {with}")]
    MissingOption {
        option: &'static str,
        with: &'static str,
    },
    #[error("starting {program}")]
    Spawn {
        program: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {output}")]
    ToolFailed {
        program: &'static str,
        status: ExitStatus,
        output: String,
    },
    #[error("postgres exited during startup ({status}): {summary}")]
    StartupFailed { status: ExitStatus, summary: String },
    #[error("{context}")]
    Sql {
        context: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("no superuser to connect as over the private socket (tried {tried})")]
    NoSuperuser { tried: String },
    #[error("switching to the data directory's owner (uid {uid})")]
    Privileges {
        uid: u32,
        #[source]
        source: nix::Error,
    },
    #[error(
        "logging in over TCP as {role:?} to database {database:?} failed after the instance was configured"
    )]
    LoginFailed {
        role: String,
        database: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("user {name:?} not found (PGDATA belongs to root; pass --user)")]
    UnknownUser { name: String },
    #[error("cannot build restore_command for --source: {reason}")]
    RestoreCommand { reason: String },
    #[error(
        "{path} does not name the backup's first WAL segment (no `START WAL LOCATION … (file …)` line)"
    )]
    BackupLabel { path: PathBuf },
    #[error("reading the WAL archive of --source {path}")]
    Source {
        path: PathBuf,
        #[source]
        source: Box<crate::source::open::OpenError>,
    },
    #[error("looking up WAL segment {segment} in the archive of --source {path}: {reason}")]
    Archive {
        segment: String,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "the archive lacks WAL segment {segment} that backup {backup} needs (the first segment of the \
         backup, from backup_label): PostgreSQL would stop before consistency. Check that the source still \
         archives into this repository and that WAL retention keeps what its backups need, then take or \
         choose another backup"
    )]
    WalMissing { segment: String, backup: String },
    #[error("logical restore: {message}")]
    Replay {
        /// The failure class (`RestoreFailure.error`).
        reason: &'static str,
        message: String,
    },
}

impl Error {
    /// The documented exit code: 2 bad arguments, 3 unusable data directory, 4 PostgreSQL would not start
    /// (or serve), 5 no binaries of the data directory's major, 6 the WAL archive of a WAL-archive restore
    /// lacks what the backup needs or cannot be read, 7 the replay of a logical dump failed (or an
    /// earlier start's did), 1 anything else. After PostgreSQL has served, its
    /// own exit code is propagated instead.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::InvalidIdentifier { .. }
            | Self::MissingOption { .. }
            | Self::UnknownUser { .. }
            | Self::RestoreCommand { .. }
            | Self::TlsCa { .. } => 2,
            Self::NotDataDir { .. }
            | Self::MissingControlFile { .. }
            | Self::TablespaceOutsideVolume { .. }
            | Self::AlreadyRunning { .. }
            | Self::BackupLabel { .. } => 3,
            Self::NoBinaries { .. } => 5,
            Self::WalMissing { .. } | Self::Source { .. } | Self::Archive { .. } => 6,
            Self::Replay { .. } => 7,
            Self::StartupFailed { .. } | Self::ToolFailed { .. } | Self::LoginFailed { .. } => 4,
            Self::Io { .. }
            | Self::Spawn { .. }
            | Self::Sql { .. }
            | Self::NoSuperuser { .. }
            | Self::Privileges { .. } => 1,
        }
    }
}

/// Shorthand for `Error::Io`.
pub(crate) fn io(
    what: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { what, path, source }
}

/// Shorthand for `Error::Sql`.
pub(crate) fn sql(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> Error {
    move |source| Error::Sql { context, source }
}
