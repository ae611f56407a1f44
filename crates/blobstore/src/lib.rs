//! Read-only object storage shared by every backup reader.
//!
//! The principal types:
//!
//! * [`BlobStore`] — read access to objects addressed by `/`-separated keys relative to the
//!   store's root or prefix: recursive [`list`](BlobStore::list), one-level
//!   [`list_dir`](BlobStore::list_dir), whole-object [`get`](BlobStore::get), byte-range
//!   [`get_range`](BlobStore::get_range) and [`head`](BlobStore::head). There are no write
//!   methods: nothing is ever written to a source repository.
//! * Implementations: [`FileStore`] (a directory), [`Bucket`] (S3 with [`S3Config`], GCS with
//!   [`GcsConfig`], Azure with [`AzureConfig`], all through `object_store`), [`MemoryStore`]
//!   (tests) and the [`Retrying`] decorator ([`RetryPolicy`]).
//! * [`Error`] — one error type; [`Error::class`] sorts it into an [`ErrorClass`] a caller can act
//!   on (exit codes, retries) without looking at backend errors.
//!
//! Everything here is asynchronous (tokio); filesystem I/O runs on tokio's blocking pool.
#![deny(missing_docs)]

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

mod error;
mod fs;
mod memory;
#[cfg(feature = "cloud")]
mod object;
mod retry;
mod stream;

pub use error::{BoxError, Error, ErrorClass, error_chain};
pub use fs::FileStore;
pub use memory::MemoryStore;
#[cfg(feature = "cloud")]
pub use object::{AzureConfig, Bucket, GcsConfig, S3Config};
pub use retry::{RetryPolicy, Retrying};
pub use stream::{ChunkReader, read_bounded, stream_object};

/// Key, size and modification time of a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The key, relative to the store's root or prefix.
    pub key: String,
    /// Length in bytes.
    pub size: u64,
    /// Modification time, when the backend reports one.
    pub modified: Option<SystemTime>,
}

/// One level of a listing: the objects directly under a prefix and the "directories" below it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Objects whose key has no `/` after the prefix.
    pub objects: Vec<ObjectMeta>,
    /// Distinct key prefixes up to and including the next `/` (e.g. `backup/db/20240101-000000F/`).
    pub prefixes: Vec<String>,
}

/// Read access to an object store. Keys are `/`-separated and relative to the store's root or
/// prefix. Listings come in no particular order. Implementations are cheap to share
/// (`Arc<dyn BlobStore>`).
#[async_trait]
pub trait BlobStore: Send + Sync + fmt::Debug {
    /// Lists every object whose key starts with `prefix` (a plain string prefix, not only whole
    /// path segments), at any depth.
    ///
    /// # Errors
    ///
    /// Fails when the backend cannot list.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error>;

    /// Lists one level below `prefix` with `/` as the delimiter, like `ls`: `list_dir("backup/db/")`
    /// returns the objects in `backup/db/` and its subdirectories as prefixes.
    ///
    /// # Errors
    ///
    /// Fails when the backend cannot list.
    async fn list_dir(&self, prefix: &str) -> Result<Listing, Error>;

    /// Reads a whole object.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for a missing object; other variants for backend failures.
    async fn get(&self, key: &str) -> Result<Bytes, Error>;

    /// Reads `range` of an object. A range past the end of the object is an error.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for a missing object, [`Error::InvalidRange`] for a short one.
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, Error>;

    /// Size and modification time of an object.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for a missing object; other variants for backend failures.
    async fn head(&self, key: &str) -> Result<ObjectMeta, Error>;
}

#[async_trait]
impl<T: BlobStore + ?Sized> BlobStore for Arc<T> {
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error> {
        (**self).list(prefix).await
    }

    async fn list_dir(&self, prefix: &str) -> Result<Listing, Error> {
        (**self).list_dir(prefix).await
    }

    async fn get(&self, key: &str) -> Result<Bytes, Error> {
        (**self).get(key).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, Error> {
        (**self).get_range(key, range).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, Error> {
        (**self).head(key).await
    }
}

/// Checks `range` against an object of length `len`.
pub(crate) fn check_range(key: &str, range: &Range<u64>, len: u64) -> Result<(), Error> {
    if range.start > range.end || range.end > len {
        return Err(Error::InvalidRange {
            key: key.to_owned(),
            start: range.start,
            end: range.end,
            len,
        });
    }
    Ok(())
}
