//! The storage error and its classes.

use std::io;
use std::path::PathBuf;

/// A boxed error from a backend library.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error and its sources on one line (`a: b: c`), for messages and for recognising what a
/// server said somewhere down the chain.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// What a caller can do about an [`Error`]: each reader maps these to its exit codes and retries
/// without matching backend errors again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The object does not exist.
    NotFound,
    /// A range read reached past the end of the object.
    InvalidRange,
    /// The backend could not be reached or failed transiently: retrying may succeed.
    Transient,
    /// The backend refused the credentials or the access (HTTP 401/403).
    Denied,
    /// The configuration or the key cannot work as given (bad endpoint scheme, wrong region, a
    /// key escaping the root): retrying with the same settings fails the same way.
    Misconfigured,
    /// A local I/O error that is not transient.
    Io,
    /// Any other non-transient backend failure (a refused request).
    Other,
}

/// Errors of [`BlobStore`](crate::BlobStore) implementations.
///
/// Deliberately exhaustive: a reader that maps variants itself is made by the compiler to
/// classify a new one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object does not exist.
    #[error("blob {key} not found")]
    NotFound {
        /// The key.
        key: String,
    },
    /// A range read reached past the end of an object.
    #[error("range {start}..{end} of blob {key} is beyond its length {len}")]
    InvalidRange {
        /// The key.
        key: String,
        /// Range start.
        start: u64,
        /// Range end.
        end: u64,
        /// Object length.
        len: u64,
    },
    /// A key that cannot address an object of this store (absolute, or with a `..` segment).
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The backend could not be reached or answered with a transient failure.
    #[error("storage unreachable")]
    Unreachable {
        /// The backend error.
        #[source]
        source: BoxError,
    },
    /// The backend refused the credentials or the access.
    #[error("storage access denied")]
    Denied {
        /// The backend error.
        #[source]
        source: BoxError,
    },
    /// A local I/O error.
    #[error("I/O error on {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A non-transient backend error (a refused request).
    #[error("storage backend error")]
    Backend {
        /// The backend error.
        #[source]
        source: BoxError,
    },
    /// Storage configuration is invalid.
    #[error("invalid storage configuration: {reason}")]
    Config {
        /// Why.
        reason: String,
    },
    /// Requests to an S3 bucket were signed for another region than the bucket's.
    #[error(
        "bucket {bucket:?} refuses requests signed for region {used:?}{}",
        match expected {
            Some(r) => format!("; it is in region {r:?}"),
            None => String::new(),
        }
    )]
    WrongRegion {
        /// The bucket.
        bucket: String,
        /// The region requests were signed for (configured, discovered or the default).
        used: String,
        /// The bucket's region, when the server named it.
        expected: Option<String>,
    },
    /// An endpoint URL whose scheme is neither `http` nor `https`.
    #[error(
        "endpoint {endpoint:?} has the scheme {scheme:?}; expected host[:port], http://host[:port] or https://host[:port]"
    )]
    EndpointScheme {
        /// The endpoint as given.
        endpoint: String,
        /// Its scheme.
        scheme: String,
    },
}

impl Error {
    /// What a caller can do about this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::NotFound { .. } => ErrorClass::NotFound,
            Self::InvalidRange { .. } => ErrorClass::InvalidRange,
            Self::Unreachable { .. } => ErrorClass::Transient,
            Self::Io { source, .. } => match source.kind() {
                io::ErrorKind::Interrupted
                | io::ErrorKind::TimedOut
                | io::ErrorKind::WouldBlock => ErrorClass::Transient,
                _ => ErrorClass::Io,
            },
            Self::Denied { .. } => ErrorClass::Denied,
            Self::Backend { .. } => ErrorClass::Other,
            Self::InvalidKey { .. }
            | Self::Config { .. }
            | Self::WrongRegion { .. }
            | Self::EndpointScheme { .. } => ErrorClass::Misconfigured,
        }
    }

    /// Whether a retry may succeed.
    pub fn is_transient(&self) -> bool {
        self.class() == ErrorClass::Transient
    }

    /// The same error reported against `key` instead (for layers that map their own names, such
    /// as blob IDs, to keys).
    #[must_use]
    pub fn with_key(self, key: &str) -> Self {
        match self {
            Self::NotFound { .. } => Self::NotFound {
                key: key.to_owned(),
            },
            Self::InvalidRange {
                start, end, len, ..
            } => Self::InvalidRange {
                key: key.to_owned(),
                start,
                end,
                len,
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_transient_only_for_interruptions_and_timeouts() {
        let io = |kind| Error::Io {
            path: PathBuf::from("/x"),
            source: io::Error::from(kind),
        };
        assert!(io(io::ErrorKind::TimedOut).is_transient());
        assert!(io(io::ErrorKind::Interrupted).is_transient());
        assert_eq!(io(io::ErrorKind::PermissionDenied).class(), ErrorClass::Io);
    }

    #[test]
    fn configuration_errors_are_never_transient() {
        let e = Error::WrongRegion {
            bucket: "b".into(),
            used: "us-east-1".into(),
            expected: None,
        };
        assert_eq!(e.class(), ErrorClass::Misconfigured);
        assert!(!e.is_transient());
        assert!(
            Error::Unreachable {
                source: "reset".into()
            }
            .is_transient()
        );
    }

    #[test]
    fn with_key_renames_not_found_and_range_errors_only() {
        let e = Error::NotFound {
            key: "p/0/1.f".into(),
        }
        .with_key("p01");
        assert!(matches!(e, Error::NotFound { key } if key == "p01"));
        let e = Error::Config { reason: "x".into() }.with_key("p01");
        assert!(matches!(e, Error::Config { .. }));
    }
}
