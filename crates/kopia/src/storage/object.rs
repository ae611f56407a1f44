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
        Ok(Self::flat(Bucket::gcs(&GcsConfig {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            service_account_path: credentials_file.map(str::to_owned),
            ..GcsConfig::default()
        })?))
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
        Ok(Self::flat(Bucket::azure(&AzureConfig {
            account: account.to_owned(),
            container: container.to_owned(),
            prefix: prefix.to_owned(),
            access_key: access_key.map(str::to_owned),
            ..AzureConfig::default()
        })?))
    }
}
