//! S3, GCS and Azure: kopia's object store layout (key = prefix + blob ID; no sharding and no
//! `.f` suffix; kopia `repo/blob/s3`, `gcs`, `azure`) over a [`Bucket`].

use blobstore::{AzureConfig, Bucket, GcsConfig, S3Config};

use super::BlobStorage;
use crate::error::StorageError;

/// Blobs in an object store bucket under a key prefix.
pub type ObjectStorage = BlobStorage<Bucket>;

impl ObjectStorage {
    /// An S3 or S3-compatible bucket (see [`Bucket::s3`]).
    ///
    /// # Errors
    ///
    /// Fails on an invalid configuration: a malformed endpoint, or an endpoint URL whose scheme
    /// is neither `http` nor `https` ([`StorageError::EndpointScheme`]).
    pub fn s3(cfg: &S3Config) -> Result<Self, StorageError> {
        Ok(Self::flat(Bucket::s3(cfg)?))
    }

    /// A Google Cloud Storage bucket (credentials, or an emulator's endpoint, in `cfg`; unset credentials
    /// fall back to the standard `GOOGLE_*` environment).
    ///
    /// # Errors
    ///
    /// Fails on an invalid configuration.
    pub fn gcs(cfg: &GcsConfig) -> Result<Self, StorageError> {
        Ok(Self::flat(Bucket::gcs(cfg)?))
    }

    /// An Azure Blob Storage container (shared key or SAS token, or a custom endpoint, in `cfg`; unset
    /// credentials fall back to the standard `AZURE_*` environment).
    ///
    /// # Errors
    ///
    /// Fails on an invalid configuration.
    pub fn azure(cfg: &AzureConfig) -> Result<Self, StorageError> {
        Ok(Self::flat(Bucket::azure(cfg)?))
    }
}
