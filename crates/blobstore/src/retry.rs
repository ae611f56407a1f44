//! A decorator that retries transient storage failures with exponential backoff.

use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{BlobStore, Error, Listing, ObjectMeta};

/// How [`Retrying`] retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts per operation, including the first (at least 1).
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each attempt.
    pub initial_backoff: Duration,
    /// Upper bound of a single delay.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 10 attempts, 100 ms doubling up to 10 s (kopia retries similarly in `internal/retry`).
    fn default() -> Self {
        Self {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Wraps a store and retries operations that fail with [`Error::is_transient`] errors.
///
/// Generic over the wrapped type so that readers with their own storage traits (kopia's blob
/// IDs) can implement them for `Retrying<_>` through [`Retrying::run`].
#[derive(Debug)]
pub struct Retrying<S> {
    inner: S,
    policy: RetryPolicy,
}

impl<S> Retrying<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, policy: RetryPolicy) -> Self {
        Self { inner, policy }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Runs `op` until it succeeds, fails with a non-transient error, or the policy's attempts are
    /// used up.
    ///
    /// # Errors
    ///
    /// The last error of `op`.
    pub async fn run<T, F, Fut>(&self, mut op: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut + Send,
        Fut: Future<Output = Result<T, Error>> + Send,
        T: Send,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Err(e) if e.is_transient() && attempt < self.policy.max_attempts => {
                    tracing::debug!(attempt, error = %e, "transient storage error; retrying");
                    tokio::time::sleep(self.policy.backoff(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

#[async_trait]
impl<S: BlobStore> BlobStore for Retrying<S> {
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error> {
        self.run(|| self.inner.list(prefix)).await
    }

    async fn list_dir(&self, prefix: &str) -> Result<Listing, Error> {
        self.run(|| self.inner.list_dir(prefix)).await
    }

    async fn get(&self, key: &str) -> Result<Bytes, Error> {
        self.run(|| self.inner.get(key)).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, Error> {
        self.run(|| self.inner.get_range(key, range.clone())).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, Error> {
        self.run(|| self.inner.head(key)).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[derive(Debug, Default)]
    struct Flaky {
        failures_left: AtomicU32,
        calls: AtomicU32,
    }

    impl Flaky {
        fn not_found(&self, key: &str) -> Error {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Error::NotFound {
                key: key.to_owned(),
            }
        }
    }

    #[async_trait]
    impl BlobStore for Flaky {
        async fn list(&self, _prefix: &str) -> Result<Vec<ObjectMeta>, Error> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.failures_left.load(Ordering::SeqCst) > 0 {
                self.failures_left.fetch_sub(1, Ordering::SeqCst);
                return Err(Error::Unreachable {
                    source: "connection reset".into(),
                });
            }
            Ok(Vec::new())
        }
        async fn list_dir(&self, prefix: &str) -> Result<Listing, Error> {
            Err(self.not_found(prefix))
        }
        async fn get(&self, key: &str) -> Result<Bytes, Error> {
            Err(self.not_found(key))
        }
        async fn get_range(&self, key: &str, _range: Range<u64>) -> Result<Bytes, Error> {
            Err(self.not_found(key))
        }
        async fn head(&self, key: &str) -> Result<ObjectMeta, Error> {
            Err(self.not_found(key))
        }
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        }
    }

    #[tokio::test]
    async fn retrying_store_retries_transient_errors_until_success() {
        let s = Retrying::new(
            Flaky {
                failures_left: AtomicU32::new(2),
                ..Default::default()
            },
            fast(),
        );
        assert!(s.list("x").await.is_ok());
        assert_eq!(s.inner().calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn retrying_store_gives_up_after_max_attempts() {
        let s = Retrying::new(
            Flaky {
                failures_left: AtomicU32::new(100),
                ..Default::default()
            },
            fast(),
        );
        assert!(matches!(s.list("x").await, Err(Error::Unreachable { .. })));
        assert_eq!(s.inner().calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn retrying_store_does_not_retry_not_found() {
        let s = Retrying::new(Flaky::default(), fast());
        assert!(matches!(s.get("p1").await, Err(Error::NotFound { .. })));
        assert_eq!(s.inner().calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(40), Duration::from_secs(10));
    }
}
