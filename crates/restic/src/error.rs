//! What can go wrong reading a restic repository, sorted so a caller can pick an exit code or a condition
//! reason without looking inside.

/// Reading a repository failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The storage failed (the key names the object).
    #[error("reading {key}")]
    Storage {
        /// The object.
        key: String,
        /// The storage's error.
        #[source]
        source: blobstore::Error,
    },
    /// No restic repository here.
    #[error(
        "no restic repository here: {0} (check the repository URL: KubeStash's is <prefix>/<directory>/repository/v1/<session>/dump)"
    )]
    NotARepository(String),
    /// No key file opens with the password.
    #[error(
        "none of the {keys} key files opens with this password (RESTIC_PASSWORD must be the Repository's encryption password)"
    )]
    WrongPassword {
        /// How many key files were tried.
        keys: usize,
    },
    /// A repository pgro cannot read.
    #[error("unsupported restic repository: {0}")]
    Unsupported(String),
    /// Stored bytes fail their MAC, hash or framing.
    #[error("damaged restic repository: {what}: {reason}")]
    Corrupt {
        /// The object or blob.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The index names no pack for a blob the snapshot needs.
    #[error(
        "blob {0} is in no index (the repository lacks data this snapshot needs; `restic check` tells more)"
    )]
    MissingBlob(String),
    /// No snapshot matches.
    #[error("no snapshot {0}")]
    SnapshotNotFound(String),
    /// The snapshot does not hold the file.
    #[error("snapshot {snapshot} has no file {path} (its paths: {paths})")]
    FileNotFound {
        /// The snapshot's short ID.
        snapshot: String,
        /// The path asked for.
        path: String,
        /// The snapshot's `paths`.
        paths: String,
    },
}

/// What kind of failure, for exit codes and condition reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The storage could not be reached or failed (retry later).
    Unreachable,
    /// The storage refused the credentials.
    Denied,
    /// The repository URL points at nothing usable.
    NotFound,
    /// The password is wrong.
    WrongPassword,
    /// The repository or a blob is damaged or missing.
    Corrupt,
    /// A format pgro does not read.
    Unsupported,
    /// The snapshot or file asked for does not exist.
    SnapshotNotFound,
}

impl Error {
    /// The class of this error.
    #[must_use]
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Storage { source, .. } => match source.class() {
                blobstore::ErrorClass::Denied => ErrorClass::Denied,
                blobstore::ErrorClass::NotFound => ErrorClass::Corrupt,
                blobstore::ErrorClass::Misconfigured => ErrorClass::NotFound,
                _ => ErrorClass::Unreachable,
            },
            Self::NotARepository(_) => ErrorClass::NotFound,
            Self::WrongPassword { .. } => ErrorClass::WrongPassword,
            Self::Unsupported(_) => ErrorClass::Unsupported,
            Self::Corrupt { .. } | Self::MissingBlob(_) => ErrorClass::Corrupt,
            Self::SnapshotNotFound(_) | Self::FileNotFound { .. } => ErrorClass::SnapshotNotFound,
        }
    }

    pub(crate) fn storage(key: &str, source: blobstore::Error) -> Self {
        Self::Storage {
            key: key.to_owned(),
            source,
        }
    }

    pub(crate) fn corrupt(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}
