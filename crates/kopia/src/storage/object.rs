//! S3, GCS and Azure storage through the `object_store` crate. Object key = prefix + blob ID; no
//! sharding and no `.f` suffix (kopia `repo/blob/s3`, `gcs`, `azure`).

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path;
use object_store::{
    ObjectStore, aws::AmazonS3Builder, azure::MicrosoftAzureBuilder, gcp::GoogleCloudStorageBuilder,
};

use super::{BlobMetadata, Storage};
use crate::error::StorageError;
use crate::ids::BlobId;

/// S3 (or S3-compatible, e.g. MinIO) location and credentials, named like kopia's
/// `repository connect s3` flags. Unset credentials fall back to the standard AWS environment
/// variables and instance metadata.
#[derive(Debug, Clone, Default)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket (kopia `--prefix`).
    pub prefix: String,
    /// Region; defaults to `us-east-1` when unset.
    pub region: Option<String>,
    /// Custom endpoint `host[:port]` (kopia `--endpoint`) or a full URL.
    pub endpoint: Option<String>,
    /// Use plain HTTP for the custom endpoint (kopia `--disable-tls`).
    pub disable_tls: bool,
    /// Access key ID.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Session token.
    pub session_token: Option<String>,
    /// Retries object_store makes on transient HTTP failures (its default is 10).
    pub max_retries: Option<usize>,
    /// Upper bound on the time spent retrying one request (object_store's default is 3 min).
    pub retry_timeout: Option<std::time::Duration>,
}

/// Blobs in an object store bucket under a key prefix.
#[derive(Clone)]
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    lister: Arc<dyn PaginatedListStore>,
    prefix: String,
    description: String,
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
        let store = Arc::new(store);
        Self {
            store: Arc::clone(&store) as Arc<dyn ObjectStore>,
            lister: store,
            prefix: prefix.trim_start_matches('/').to_owned(),
            description: description.into(),
        }
    }

    /// An S3 or S3-compatible bucket.
    ///
    /// # Errors
    ///
    /// Fails on an invalid configuration (e.g. a malformed endpoint).
    pub fn s3(cfg: &S3Config) -> Result<Self, StorageError> {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&cfg.bucket)
            .with_region(cfg.region.clone().unwrap_or_else(|| "us-east-1".to_owned()));
        if let Some(ep) = &cfg.endpoint {
            let url = if ep.contains("://") {
                ep.clone()
            } else if cfg.disable_tls {
                format!("http://{ep}")
            } else {
                format!("https://{ep}")
            };
            b = b.with_endpoint(url).with_allow_http(cfg.disable_tls);
        }
        if let Some(v) = &cfg.access_key_id {
            b = b.with_access_key_id(v);
        }
        if let Some(v) = &cfg.secret_access_key {
            b = b.with_secret_access_key(v);
        }
        if let Some(v) = &cfg.session_token {
            b = b.with_token(v);
        }
        if cfg.max_retries.is_some() || cfg.retry_timeout.is_some() {
            let mut retry = object_store::RetryConfig::default();
            if let Some(n) = cfg.max_retries {
                retry.max_retries = n;
            }
            if let Some(t) = cfg.retry_timeout {
                retry.retry_timeout = t;
            }
            b = b.with_retry(retry);
        }
        let store = b.build().map_err(config_err)?;
        Ok(Self::from_store(
            store,
            &cfg.prefix,
            format!("s3://{}/{}", cfg.bucket, cfg.prefix),
        ))
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

    fn map_err(id: Option<&BlobId>, e: object_store::Error) -> StorageError {
        match e {
            object_store::Error::NotFound { .. } if id.is_some() => StorageError::NotFound {
                blob_id: id.cloned().unwrap_or_else(|| BlobId::new("")),
            },
            // object_store already retried transient HTTP failures; what remains as `Generic` is
            // connection/server trouble (transient) or a client error such as bad credentials.
            e @ (object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }) => {
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

#[async_trait]
impl Storage for ObjectStorage {
    async fn list(&self, prefix: &str) -> Result<Vec<BlobMetadata>, StorageError> {
        let full = format!("{}{}", self.prefix, prefix);
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let opts = PaginatedListOptions {
                page_token: token.take(),
                ..Default::default()
            };
            let page = self
                .lister
                .list_paginated(Some(&full), opts)
                .await
                .map_err(|e| Self::map_err(None, e))?;
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
        let r = self
            .store
            .get(&self.key(id))
            .await
            .map_err(|e| Self::map_err(Some(id), e))?;
        r.bytes().await.map_err(|e| Self::map_err(Some(id), e))
    }

    async fn get_range(&self, id: &BlobId, range: Range<u64>) -> Result<Bytes, StorageError> {
        if range.start == range.end {
            return Ok(Bytes::new());
        }
        let want = range.end - range.start;
        let b = self
            .store
            .get_range(&self.key(id), range.clone())
            .await
            .map_err(|e| Self::map_err(Some(id), e))?;
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
