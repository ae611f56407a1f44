//! Errors of the reader, and their classes for callers that map them to exit codes or retries.

use std::path::PathBuf;

pub use blobstore::Error as StorageError;
use blobstore::ErrorClass as StorageClass;

/// A coarse classification of [`Error`] (the same classes as the Kopia reader's, so one caller maps both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The cipher passphrase does not decrypt the repository, or an encrypted repository has none.
    WrongPassword,
    /// A backup, file or WAL segment that should exist does not.
    NotFound,
    /// Stored data failed decryption, decompression, parsing or a checksum.
    Corrupted,
    /// The repository uses a feature or version this reader does not implement.
    Unsupported,
    /// Storage could not be reached (network, timeouts, server errors).
    Unreachable,
    /// Storage answered with a non-transient failure (permissions, a refused request).
    Storage,
    /// Writing the restore target failed.
    Io,
    /// The caller passed an invalid argument (a label that is not one, a non-empty target).
    InvalidArgument,
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Storage failed on `key`.
    #[error("reading {key} from the repository failed")]
    Storage {
        /// The object key or listing prefix.
        key: String,
        /// The backend error.
        #[source]
        source: StorageError,
    },
    /// An encrypted info file cannot be read without a passphrase, or the passphrase does not decrypt it.
    #[error("{file}: {reason}")]
    WrongPassword {
        /// The info file.
        file: String,
        /// What failed, in words.
        reason: String,
    },
    /// Stored data is damaged: decryption padding, decompression, parsing, sizes or checksums.
    #[error("{what} is damaged: {detail}")]
    Corrupted {
        /// The file, object or slice concerned.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// Both copies of an info file failed to load (`<name>` and `<name>.copy`).
    #[error("{key} cannot be loaded ({}), nor its copy ({})", error_chain(&**.primary), error_chain(&**.copy))]
    InfoFile {
        /// The info file's key.
        key: String,
        /// Why the file itself failed.
        primary: Box<Error>,
        /// Why `<key>.copy` failed.
        copy: Box<Error>,
    },
    /// Something asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A feature or version this reader does not implement.
    #[error("unsupported repository: {0}")]
    Unsupported(String),
    /// Writing the restore target failed.
    #[error("writing {path} failed")]
    Io {
        /// The path written.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An invalid argument.
    #[error("{0}")]
    InvalidArgument(String),
}

impl Error {
    /// The class of this error.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Storage { source, .. } => match source.class() {
                StorageClass::NotFound => ErrorKind::NotFound,
                StorageClass::InvalidRange => ErrorKind::Corrupted,
                StorageClass::Transient => ErrorKind::Unreachable,
                StorageClass::Misconfigured => ErrorKind::InvalidArgument,
                StorageClass::Io => ErrorKind::Io,
                StorageClass::Denied | StorageClass::Other => ErrorKind::Storage,
            },
            Self::WrongPassword { .. } => ErrorKind::WrongPassword,
            Self::Corrupted { .. } => ErrorKind::Corrupted,
            // The file's own failure decides, unless it was merely missing (then the copy's says more).
            Self::InfoFile { primary, copy, .. } => match primary.kind() {
                ErrorKind::NotFound => copy.kind(),
                k => k,
            },
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Unsupported(_) => ErrorKind::Unsupported,
            Self::Io { .. } => ErrorKind::Io,
            Self::InvalidArgument(_) => ErrorKind::InvalidArgument,
        }
    }

    pub(crate) fn storage(key: &str, source: StorageError) -> Self {
        Self::Storage {
            key: key.to_owned(),
            source,
        }
    }

    pub(crate) fn corrupted(what: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Self::Corrupted {
            what: what.into(),
            detail: detail.to_string(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// The error and its sources in one line (`a: b: c`), for logs and messages.
#[must_use]
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    blobstore::error_chain(e)
}
