//! Shared by the barman integration tests: the reader's view of a [`BarmanWorld`]'s bucket.

use std::sync::Arc;

use blobstore::{BlobStore, Bucket, S3Config};
use pgro_testkit::barman::BarmanWorld;
use pgro_testkit::fixtures::{MINIO_SECRET, MINIO_USER};

/// The world's bucket under `prefix` (`destinationPath`'s path, e.g. `cnpg/`), through blobstore's S3
/// client — what pgro reads a CNPG store with.
pub(crate) fn store(world: &BarmanWorld, prefix: &str) -> Arc<dyn BlobStore> {
    let cfg = S3Config {
        bucket: BarmanWorld::BUCKET.into(),
        prefix: prefix.into(),
        endpoint: Some(format!("http://{}", world.minio.endpoint())),
        disable_tls: true,
        access_key_id: Some(MINIO_USER.into()),
        secret_access_key: Some(MINIO_SECRET.into()),
        ..S3Config::default()
    };
    Arc::new(Bucket::s3(&cfg).expect("S3 settings"))
}
