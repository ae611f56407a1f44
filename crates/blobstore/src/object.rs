//! S3, GCS and Azure through the `object_store` crate. Object key = prefix + key, the prefix
//! prepended verbatim (kopia's `--prefix` need not end in `/`).

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::ObjectStore;
use object_store::list::{PaginatedListOptions, PaginatedListResult, PaginatedListStore};
use object_store::path::Path;
use tokio::sync::OnceCell;

use crate::{BlobStore, Error, Listing, ObjectMeta};

mod azure;
mod gcs;
mod s3;

pub use azure::AzureConfig;
pub use gcs::GcsConfig;
pub use s3::S3Config;

/// Objects in an object store bucket (or Azure container) under a key prefix.
#[derive(Clone)]
pub struct Bucket {
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

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("location", &self.description)
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn config_err(e: object_store::Error) -> Error {
    Error::Config {
        reason: e.to_string(),
    }
}

/// A custom endpoint as a base URL, and whether it is plain HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    url: String,
    http: bool,
}

impl Endpoint {
    /// `host[:port]` (plain HTTP only when `disable_tls`) or a URL whose scheme, `http://` or
    /// `https://`, decides TLS by itself. `None` for an unset or blank endpoint.
    fn parse(endpoint: Option<&str>, disable_tls: bool) -> Result<Option<Self>, Error> {
        let Some(ep) = endpoint.map(str::trim).filter(|e| !e.is_empty()) else {
            return Ok(None);
        };
        let Some((scheme, rest)) = ep.split_once("://") else {
            let ep = ep.trim_end_matches('/');
            let scheme = if disable_tls { "http" } else { "https" };
            return Ok(Some(Self {
                url: format!("{scheme}://{ep}"),
                http: disable_tls,
            }));
        };
        let bad_scheme = || Error::EndpointScheme {
            endpoint: ep.to_owned(),
            scheme: scheme.to_owned(),
        };
        let http = match scheme.to_ascii_lowercase().as_str() {
            "http" => true,
            "https" => false,
            _ => return Err(bad_scheme()),
        };
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() {
            return Err(bad_scheme());
        }
        Ok(Some(Self {
            url: format!("{}://{rest}", scheme.to_ascii_lowercase()),
            http,
        }))
    }
}

impl Bucket {
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
    /// is neither `http` nor `https` ([`Error::EndpointScheme`]).
    pub fn s3(cfg: &S3Config) -> Result<Self, Error> {
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

    /// A Google Cloud Storage bucket (see [`GcsConfig`]).
    ///
    /// # Errors
    ///
    /// Fails on an invalid configuration.
    pub fn gcs(cfg: &GcsConfig) -> Result<Self, Error> {
        let store = cfg.builder()?.build().map_err(config_err)?;
        let description = format!("gs://{}/{}", cfg.bucket, cfg.prefix);
        Ok(Self::from_store(store, &cfg.prefix, description))
    }

    /// An Azure Blob Storage container (see [`AzureConfig`]).
    ///
    /// # Errors
    ///
    /// Fails on an invalid configuration.
    pub fn azure(cfg: &AzureConfig) -> Result<Self, Error> {
        let store = cfg.builder()?.build().map_err(config_err)?;
        let description = format!("azure://{}/{}/{}", cfg.account, cfg.container, cfg.prefix);
        Ok(Self::from_store(store, &cfg.prefix, description))
    }

    fn path(&self, key: &str) -> Path {
        Path::from(format!("{}{key}", self.prefix))
    }

    /// The client, discovering the bucket's region first when it has to.
    async fn client(&self) -> Result<&Client, Error> {
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

    /// Every page of a listing under `prefix` (relative to the store's prefix).
    async fn list_pages(
        &self,
        prefix: &str,
        delimiter: Option<&'static str>,
    ) -> Result<Vec<PaginatedListResult>, Error> {
        let client = self.client().await?;
        let full = format!("{}{prefix}", self.prefix);
        let mut pages = Vec::new();
        let mut token = None;
        loop {
            let opts = PaginatedListOptions {
                page_token: token.take(),
                delimiter: delimiter.map(Into::into),
                ..Default::default()
            };
            let page = client
                .lister
                .list_paginated(Some(&full), opts)
                .await
                .map_err(|e| map_err(client, None, e))?;
            token.clone_from(&page.page_token);
            pages.push(page);
            if token.is_none() {
                return Ok(pages);
            }
        }
    }

    /// The key of a listed location, relative to the store's prefix and under `prefix`.
    fn relative<'a>(&self, location: &'a Path, prefix: &str) -> Option<&'a str> {
        let key = location.as_ref().strip_prefix(self.prefix.as_str())?;
        key.starts_with(prefix).then_some(key)
    }

    fn meta(&self, o: &object_store::ObjectMeta, prefix: &str) -> Option<ObjectMeta> {
        Some(ObjectMeta {
            key: self.relative(&o.location, prefix)?.to_owned(),
            size: o.size,
            modified: Some(o.last_modified.into()),
        })
    }
}

fn map_err(client: &Client, key: Option<&str>, e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } if key.is_some() => Error::NotFound {
            key: key.unwrap_or_default().to_owned(),
        },
        // object_store already retried transient HTTP failures; what remains as `Generic` is
        // connection/server trouble (transient) or a client error such as bad credentials.
        e @ (object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }) => {
            if let Some((bucket, used)) = &client.signing
                && let Some(expected) = s3::wrong_region(&crate::error_chain(&e))
            {
                // Signing for another region fails every request the same way: a setting
                // to fix, never a storage outage to wait out.
                return Error::WrongRegion {
                    bucket: bucket.clone(),
                    used: used.clone(),
                    expected,
                };
            }
            let source = Box::new(e);
            match http_status(&source) {
                Some(401 | 403) => Error::Denied { source },
                Some(s) if (400..500).contains(&s) && s != 408 && s != 429 => {
                    Error::Backend { source }
                }
                Some(_) | None => Error::Unreachable { source },
            }
        }
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => Error::Denied {
            source: Box::new(e),
        },
        e => Error::Backend {
            source: Box::new(e),
        },
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

/// `416 Range Not Satisfiable`: the range starts at or after the end of the object.
const RANGE_NOT_SATISFIABLE: u16 = 416;

#[async_trait]
impl BlobStore for Bucket {
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error> {
        let pages = self.list_pages(prefix, None).await?;
        Ok(pages
            .iter()
            .flat_map(|p| &p.result.objects)
            .filter_map(|o| self.meta(o, prefix))
            .collect())
    }

    async fn list_dir(&self, prefix: &str) -> Result<Listing, Error> {
        let mut out = Listing::default();
        for page in self.list_pages(prefix, Some("/")).await? {
            let objects = page.result.objects.iter();
            out.objects
                .extend(objects.filter_map(|o| self.meta(o, prefix)));
            // object_store drops the trailing delimiter of common prefixes.
            out.prefixes.extend(
                page.result
                    .common_prefixes
                    .iter()
                    .filter_map(|p| self.relative(p, prefix))
                    .map(|p| format!("{p}/")),
            );
        }
        Ok(out)
    }

    async fn get(&self, key: &str) -> Result<Bytes, Error> {
        let client = self.client().await?;
        let r = client
            .store
            .get(&self.path(key))
            .await
            .map_err(|e| map_err(client, Some(key), e))?;
        r.bytes().await.map_err(|e| map_err(client, Some(key), e))
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, Error> {
        if range.start == range.end {
            return Ok(Bytes::new());
        }
        let client = self.client().await?;
        let want = range.end - range.start;
        let path = self.path(key);
        let b = match client.store.get_range(&path, range.clone()).await {
            Ok(b) => b,
            Err(e) if http_status(&e) == Some(RANGE_NOT_SATISFIABLE) => {
                // The object ends before the range starts; report its length like a short read.
                let meta = client
                    .store
                    .head(&path)
                    .await
                    .map_err(|e| map_err(client, Some(key), e))?;
                return Err(Error::InvalidRange {
                    key: key.to_owned(),
                    start: range.start,
                    end: range.end,
                    len: meta.size,
                });
            }
            Err(e) => return Err(map_err(client, Some(key), e)),
        };
        if b.len() as u64 != want {
            return Err(Error::InvalidRange {
                key: key.to_owned(),
                start: range.start,
                end: range.end,
                len: range.start + b.len() as u64,
            });
        }
        Ok(b)
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, Error> {
        let client = self.client().await?;
        let m = client
            .store
            .head(&self.path(key))
            .await
            .map_err(|e| map_err(client, Some(key), e))?;
        Ok(ObjectMeta {
            key: key.to_owned(),
            size: m.size,
            modified: Some(m.last_modified.into()),
        })
    }
}

#[cfg(test)]
mod tests;
