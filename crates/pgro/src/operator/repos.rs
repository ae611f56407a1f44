//! In-process snapshot discovery (behaviour R3) with one shared handle per repository.
//!
//! Replicas whose Secrets describe the same repository with the same credentials share one opened
//! repository (the password KDF and the index load happen once) and one snapshot listing, refreshed at most
//! once per TTL. Index blobs are immutable, so a refresh only reads blobs it has not seen. Failures are not
//! cached: the next reconcile tries again.
//!
//! Password rotation: an opened handle keeps the repository's keys, so it would go on listing after the
//! repository password changed — while every restore Job, opening afresh with the Secret's old password,
//! fails. Each refresh therefore compares the format blob (`kopia.repository`, which holds the key encrypted
//! with the password) with the one read before the handle was opened; when it changed, the handle is
//! dropped and the repository opened again with the Secret's current data, so a wrong password shows as a
//! condition before any restore is created.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kopia::{BlobId, FORMAT_BLOB_ID, Indexed, Repository, SnapshotManifest};
use tokio::sync::Mutex;

use crate::cli::repository::{RepositoryArgs, RepositoryError};

/// An entry unused for this long is dropped (a rotated password leaves its old entry behind).
const IDLE_EVICTION: Duration = Duration::from_secs(3600);

/// A snapshot listing and when it was read.
#[derive(Debug, Clone)]
pub struct Listing {
    /// Every snapshot manifest in the repository.
    pub snapshots: Arc<Vec<SnapshotManifest>>,
    /// How long reading it took (0 when served from the cache).
    pub took: Duration,
}

#[derive(Default)]
struct Slot {
    /// The handle and the format blob as it was read before opening it.
    repo: Option<(Arc<Repository<Indexed>>, Bytes)>,
    listing: Option<(Instant, Arc<Vec<SnapshotManifest>>)>,
}

struct Entry {
    slot: Mutex<Slot>,
    last_used: StdMutex<Instant>,
}

/// Repositories by [`crate::operator::kopia_secret::cache_key`]; other sources' listings by their own key.
#[derive(Default)]
pub struct RepositoryCache {
    entries: StdMutex<HashMap<String, Arc<Entry>>>,
    listings: Mutex<HashMap<String, (Instant, Arc<SourceListing>)>>,
}

/// What discovery keeps of a pgBackRest stanza or a barman-cloud server: no handle (a listing is one GET
/// of `backup.info`, or one listing of `base/` and a GET per backup, and rotated credentials are simply
/// another cache key).
#[derive(Debug, Clone)]
pub struct SourceListing {
    /// Backups listed (any status).
    pub total: usize,
    /// The newest backup a restore of `latest` takes.
    pub latest: Option<crate::operator::snapshots::SnapshotInfo>,
    /// How long reading it took (0 when served from the cache).
    pub took: Duration,
}

impl std::fmt::Debug for RepositoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.entries.lock().map(|e| e.len()).unwrap_or(0);
        f.debug_struct("RepositoryCache")
            .field("repositories", &n)
            .finish()
    }
}

impl RepositoryCache {
    /// A source's newest backup and count, from the cache when younger than `ttl`; `open` reads them afresh
    /// (`repo_path` names them, see [`crate::source::reader::Reader::latest`]); with `filter`, the newest
    /// that matches it (the caller puts the filter in `key`). Failures are not cached.
    ///
    /// # Errors
    /// What `open` returns.
    pub async fn source_backups<F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        repo_path: &str,
        filter: Option<&crate::operator::snapshots::CompiledFilter>,
        open: F,
    ) -> Result<SourceListing, crate::source::open::OpenError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<
                Output = Result<crate::source::reader::Reader, crate::source::open::OpenError>,
            >,
    {
        let now = Instant::now();
        {
            let mut cached = self.listings.lock().await;
            cached.retain(|_, (at, _)| now.duration_since(*at) < IDLE_EVICTION);
            if let Some((at, l)) = cached.get(key)
                && at.elapsed() < ttl
            {
                return Ok(SourceListing {
                    took: Duration::ZERO,
                    ..(**l).clone()
                });
            }
        }
        let reader = open().await?;
        let latest = match filter {
            Some(f) => {
                crate::operator::snapshots::choose_newest(&reader.backups(repo_path).await?, f)
                    .cloned()
            }
            None => reader.latest(repo_path).await?,
        };
        let listing = SourceListing {
            total: reader.count().unwrap_or_default(),
            latest,
            took: now.elapsed(),
        };
        self.listings
            .lock()
            .await
            .insert(key.to_owned(), (Instant::now(), Arc::new(listing.clone())));
        Ok(listing)
    }

    fn entry(&self, key: &str) -> Arc<Entry> {
        let now = Instant::now();
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.retain(|k, e| {
            k == key
                || e.last_used
                    .lock()
                    .map(|t| now.duration_since(*t) < IDLE_EVICTION)
                    .unwrap_or(false)
        });
        let e = entries
            .entry(key.to_owned())
            .or_insert_with(|| {
                Arc::new(Entry {
                    slot: Mutex::new(Slot::default()),
                    last_used: StdMutex::new(now),
                })
            })
            .clone();
        if let Ok(mut t) = e.last_used.lock() {
            *t = now;
        }
        e
    }

    /// The repository's snapshots, from the cache when younger than `ttl`.
    ///
    /// # Errors
    ///
    /// Opening the repository (configuration, wrong password, unreachable storage) or reading its index
    /// and manifests.
    pub async fn snapshots(
        &self,
        key: &str,
        args: &RepositoryArgs,
        ttl: Duration,
    ) -> Result<Listing, RepositoryError> {
        let entry = self.entry(key);
        let mut slot = entry.slot.lock().await;
        if let Some((at, snaps)) = &slot.listing
            && at.elapsed() < ttl
        {
            return Ok(Listing {
                snapshots: snaps.clone(),
                took: Duration::ZERO,
            });
        }
        let started = Instant::now();
        let repo = match &slot.repo {
            Some((r, format)) => {
                let now = r.storage().get(&BlobId::new(FORMAT_BLOB_ID)).await?;
                if now == *format {
                    r.refresh_index().await?;
                    Some(r.clone())
                } else {
                    tracing::info!(
                        repository = %args.location(),
                        "the repository format blob changed (password rotated?); reopening with the Secret's current data"
                    );
                    slot.repo = None;
                    slot.listing = None;
                    None
                }
            }
            None => None,
        };
        let repo = match repo {
            Some(r) => r,
            None => {
                let format = args
                    .storage()
                    .await?
                    .get(&BlobId::new(FORMAT_BLOB_ID))
                    .await?;
                let r = Arc::new(args.connect().await?);
                slot.repo = Some((r.clone(), format));
                r
            }
        };
        let listed = repo.list_snapshots().await;
        let snaps = match listed {
            Ok(s) => Arc::new(s),
            Err(e) => {
                // A broken handle is reopened next time rather than reused.
                slot.repo = None;
                return Err(e.into());
            }
        };
        slot.listing = Some((Instant::now(), snaps.clone()));
        Ok(Listing {
            snapshots: snaps,
            took: started.elapsed(),
        })
    }
}
