//! S3, GCS and Azure storage through the `object_store` crate. Object key = prefix + blob ID; no
//! sharding and no `.f` suffix (kopia `repo/blob/s3`, `gcs`, `azure`).

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path;
use object_store::{ObjectStore, azure::MicrosoftAzureBuilder, gcp::GoogleCloudStorageBuilder};
use tokio::sync::OnceCell;

use super::{BlobMetadata, Storage};
use crate::error::StorageError;
use crate::ids::BlobId;

mod s3;

pub use s3::S3Config;

/// Blobs in an object store bucket under a key prefix.
#[derive(Clone)]
pub struct ObjectStorage {
    backend: Arc<Backend>,
    prefix: String,
    description: String,
}

/// The store, ready or (an S3 bucket without a configured region) built on first use.
enum Backend {
    Ready(Client),
    S3Discover {
        cfg: Box<S3Config>,
        client: OnceCell<Client>,
    },
}

/// An object_store client and what its errors are reported against.
#[derive(Clone)]
struct Client {
    store: Arc<dyn ObjectStore>,
    lister: Arc<dyn PaginatedListStore>,
    /// For S3: the bucket and the region requests are signed for.
    signing: Option<(String, String)>,
}

impl Client {
    fn new<T>(store: T, signing: Option<(String, String)>) -> Self
    where
        T: ObjectStore + PaginatedListStore,
    {
        let store = Arc::new(store);
        Self {
            store: Arc::clone(&store) as Arc<dyn ObjectStore>,
            lister: store,
            signing,
        }
    }
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("location", &self.description)
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn config_err(e: object_store::Error) -> StorageError {
    StorageError::Config {
        reason: e.to_string(),
    }
}

impl ObjectStorage {
    /// Uses any store that supports raw-prefix listing.
    pub fn from_store<T>(store: T, prefix: &str, description: impl Into<String>) -> Self
    where
        T: ObjectStore + PaginatedListStore,
    {
        Self::with_backend(
            Backend::Ready(Client::new(store, None)),
            prefix,
            description,
        )
    }

    fn with_backend(backend: Backend, prefix: &str, description: impl Into<String>) -> Self {
        Self {
            backend: Arc::new(backend),
            prefix: prefix.trim_start_matches('/').to_owned(),
            description: description.into(),
        }
    }

    /// An S3 or S3-compatible bucket. Without [`S3Config::region`], the bucket's region is
    /// discovered with the first request (see [`S3Config`]).
    ///
    /// # Errors
    ///
    /// Fails on an invalid configuration: a malformed endpoint, or an endpoint URL whose scheme
    /// is neither `http` nor `https` ([`StorageError::EndpointScheme`]).
    pub fn s3(cfg: &S3Config) -> Result<Self, StorageError> {
        let description = format!("s3://{}/{}", cfg.bucket, cfg.prefix);
        let backend = match cfg.region.as_deref().filter(|r| !r.is_empty()) {
            Some(region) => Backend::Ready(Client::new(
                cfg.build(region)?,
                Some((cfg.bucket.clone(), region.to_owned())),
            )),
            None => {
                // Built once now so that a malformed configuration fails here, not on first use.
                cfg.build(s3::DEFAULT_REGION)?;
                Backend::S3Discover {
                    cfg: Box::new(cfg.clone()),
                    client: OnceCell::new(),
                }
            }
        };
        Ok(Self::with_backend(backend, &cfg.prefix, description))
    }

    /// A Google Cloud Storage bucket. Credentials come from `credentials_file` or the standard
    /// `GOOGLE_*` environment.
    ///
    /// # Errors
    ///
    /// Fails on an invalid configuration.
    pub fn gcs(
        bucket: &str,
        prefix: &str,
        credentials_file: Option<&str>,
    ) -> Result<Self, StorageError> {
        let mut b = GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket);
        if let Some(f) = credentials_file {
            b = b.with_service_account_path(f);
        }
        let store = b.build().map_err(config_err)?;
        Ok(Self::from_store(
            store,
            prefix,
            format!("gs://{bucket}/{prefix}"),
        ))
    }

    /// An Azure Blob Storage container. Credentials come from `access_key` or the standard
    /// `AZURE_*` environment.
    ///
    /// # Errors
    ///
    /// Fails on an invalid configuration.
    pub fn azure(
        account: &str,
        container: &str,
        prefix: &str,
        access_key: Option<&str>,
    ) -> Result<Self, StorageError> {
        let mut b = MicrosoftAzureBuilder::from_env()
            .with_account(account)
            .with_container_name(container);
        if let Some(k) = access_key {
            b = b.with_access_key(k);
        }
        let store = b.build().map_err(config_err)?;
        Ok(Self::from_store(
            store,
            prefix,
            format!("azure://{account}/{container}/{prefix}"),
        ))
    }

    fn key(&self, id: &BlobId) -> Path {
        Path::from(format!("{}{}", self.prefix, id))
    }

    /// The client, discovering the bucket's region first when it has to.
    async fn client(&self) -> Result<&Client, StorageError> {
        match &*self.backend {
            Backend::Ready(c) => Ok(c),
            Backend::S3Discover { cfg, client } => {
                client
                    .get_or_try_init(|| async {
                        let found = cfg.discover_region().await?;
                        if let Some(region) = &found {
                            tracing::debug!(bucket = %cfg.bucket, region = %region, "discovered the bucket's region");
                        }
                        let region = found.unwrap_or_else(|| s3::DEFAULT_REGION.to_owned());
                        let store = cfg.build(&region)?;
                        Ok(Client::new(store, Some((cfg.bucket.clone(), region))))
                    })
                    .await
            }
        }
    }

    fn map_err(client: &Client, id: Option<&BlobId>, e: object_store::Error) -> StorageError {
        match e {
            object_store::Error::NotFound { .. } if id.is_some() => StorageError::NotFound {
                blob_id: id.cloned().unwrap_or_else(|| BlobId::new("")),
            },
            // object_store already retried transient HTTP failures; what remains as `Generic` is
            // connection/server trouble (transient) or a client error such as bad credentials.
            e @ (object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }) => {
                if let Some((bucket, used)) = &client.signing
                    && let Some(expected) = s3::wrong_region(&error_text(&e))
                {
                    // Signing for another region fails every request the same way: a setting
                    // to fix, never a storage outage to wait out.
                    return StorageError::WrongRegion {
                        bucket: bucket.clone(),
                        used: used.clone(),
                        expected,
                    };
                }
                match http_status(&e) {
                    Some(s) if (400..500).contains(&s) && s != 408 && s != 429 => {
                        StorageError::Backend {
                            source: Box::new(e),
                        }
                    }
                    Some(_) | None => StorageError::Unreachable {
                        source: Box::new(e),
                    },
                }
            }
            e => StorageError::Backend {
                source: Box::new(e),
            },
        }
    }
}

/// An error and its sources, for recognising what a server said.
fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// The HTTP status inside an object_store error. object_store keeps its `RetryError` type
/// private, so the status is read from the error's debug form (`… Status { status: 403, …`).
fn http_status(e: &object_store::Error) -> Option<u16> {
    const MARK: &str = "status: ";
    let dbg = format!("{e:?}");
    dbg.match_indices(MARK).find_map(|(i, _)| {
        let digits: String = dbg[i + MARK.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    })
}

/// `416 Range Not Satisfiable`: the range starts at or after the end of the object.
const RANGE_NOT_SATISFIABLE: u16 = 416;

#[async_trait]
impl Storage for ObjectStorage {
    async fn list(&self, prefix: &str) -> Result<Vec<BlobMetadata>, StorageError> {
        let client = self.client().await?;
        let full = format!("{}{}", self.prefix, prefix);
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let opts = PaginatedListOptions {
                page_token: token.take(),
                ..Default::default()
            };
            let page = client
                .lister
                .list_paginated(Some(&full), opts)
                .await
                .map_err(|e| Self::map_err(client, None, e))?;
            for o in page.result.objects {
                let key = o.location.as_ref();
                let Some(name) = key.strip_prefix(self.prefix.as_str()) else {
                    continue;
                };
                if !name.starts_with(prefix) || name.contains('/') {
                    continue;
                }
                out.push(BlobMetadata {
                    id: BlobId::new(name),
                    length: o.size,
                    timestamp: Some(o.last_modified.into()),
                });
            }
            match page.page_token {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    async fn get(&self, id: &BlobId) -> Result<Bytes, StorageError> {
        let client = self.client().await?;
        let r = client
            .store
            .get(&self.key(id))
            .await
            .map_err(|e| Self::map_err(client, Some(id), e))?;
        r.bytes()
            .await
            .map_err(|e| Self::map_err(client, Some(id), e))
    }

    async fn get_range(&self, id: &BlobId, range: Range<u64>) -> Result<Bytes, StorageError> {
        if range.start == range.end {
            return Ok(Bytes::new());
        }
        let client = self.client().await?;
        let want = range.end - range.start;
        let key = self.key(id);
        let b = match client.store.get_range(&key, range.clone()).await {
            Ok(b) => b,
            Err(e) if http_status(&e) == Some(RANGE_NOT_SATISFIABLE) => {
                // The blob ends before the range starts; report its length like a short read.
                let meta = client
                    .store
                    .head(&key)
                    .await
                    .map_err(|e| Self::map_err(client, Some(id), e))?;
                return Err(StorageError::InvalidRange {
                    blob_id: id.clone(),
                    start: range.start,
                    end: range.end,
                    len: meta.size,
                });
            }
            Err(e) => return Err(Self::map_err(client, Some(id), e)),
        };
        if b.len() as u64 != want {
            return Err(StorageError::InvalidRange {
                blob_id: id.clone(),
                start: range.start,
                end: range.end,
                len: range.start + b.len() as u64,
            });
        }
        Ok(b)
    }
}
