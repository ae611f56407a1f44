//! Operator errors, each classified into a requeue cadence (style H10). Problems a user can fix in their
//! spec or Secret are not errors: they become conditions and events.

use std::time::Duration;

use super::specs::BuildError;

/// A failed reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("{}", describe_kube(.0))]
    Kube(#[from] kube::Error),
    /// An object lacks a field the API server always sets.
    #[error("object has no {0}")]
    MissingField(&'static str),
    /// A child object could not be built from the spec.
    #[error("building a child object: {0}")]
    Build(#[from] BuildError),
    /// A value could not be (de)serialised.
    #[error("serialising {what}: {source}")]
    Serde {
        /// What.
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// Talking to a restored PostgreSQL failed.
    #[error("PostgreSQL of restore {restore}: {source}")]
    Postgres {
        /// The restore.
        restore: String,
        /// Why.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The random generator of the operating system failed.
    #[error("generating a password: {0}")]
    Random(String),
    /// The CA to verify a restore's PostgreSQL with is missing or unusable.
    #[error("TLS to PostgreSQL of restore {restore}: {message}")]
    Tls {
        /// The restore.
        restore: String,
        /// Why.
        message: String,
    },
    /// A replica certificate could not be issued.
    #[error(transparent)]
    Certificate(#[from] super::certificates::CertError),
}

/// How an error is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Likely to pass on its own (API server hiccup, conflict, network): retry soon.
    Transient,
    /// Needs a change elsewhere (an object we cannot build from this spec): retry rarely.
    Structural,
    /// Will not pass by retrying: a long heartbeat only.
    Terminal,
}

impl ErrorClass {
    /// The requeue delay.
    #[must_use]
    pub fn requeue_after(self) -> Duration {
        match self {
            Self::Transient => Duration::from_secs(10),
            Self::Structural => Duration::from_secs(300),
            Self::Terminal => Duration::from_secs(1800),
        }
    }
}

impl Error {
    /// The error's class.
    #[must_use]
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Kube(_) | Self::Postgres { .. } | Self::Random(_) | Self::Tls { .. } => {
                ErrorClass::Transient
            }
            Self::Build(_) | Self::MissingField(_) | Self::Certificate(_) => ErrorClass::Structural,
            Self::Serde { .. } => ErrorClass::Terminal,
        }
    }

    /// A short stable label for metrics.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::Kube(kube::Error::Api(e)) if e.code == 409 => "conflict",
            Self::Kube(_) => "kube",
            Self::MissingField(_) => "missing_field",
            Self::Build(_) => "build",
            Self::Serde { .. } => "serde",
            Self::Postgres { .. } => "postgres",
            Self::Random(_) => "random",
            Self::Certificate(_) => "certificate",
            Self::Tls { .. } => "tls",
        }
    }
}

/// A Kubernetes client error in words: the API server's own message and status for a refused request
/// (kube's `Display` of those is a debug dump of the response), the cause chain otherwise.
fn describe_kube(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(r) => format!(
            "the API server answered {} {}: {}",
            r.code,
            if r.reason.is_empty() {
                "error"
            } else {
                r.reason.as_str()
            },
            r.message
        ),
        other => format!(
            "talking to the API server failed: {}",
            crate::cli::kopia::error_chain(other)
        ),
    }
}

/// Result of operator code.
pub type Result<T, E = Error> = std::result::Result<T, E>;
