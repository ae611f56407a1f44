//! Conformance over S3: a loopback MinIO, a repository created by kopia with a key prefix, read
//! through `ObjectStorage` (object_store). Locates MinIO through `PGRO_MINIO` or the test
//! infrastructure cache; when absent, fails under `CI=true` and otherwise skips.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::minio::{Minio, SECRET, USER, free_port, minio_binary};
use common::{Kopia, kopia_binary, read_like_kopia};
use kopia::{ObjectStorage, Repository, RetryPolicy, RetryingStorage, S3Config, Storage};

const BUCKET: &str = "kopia-conformance";

fn start_minio(bin: std::path::PathBuf) -> Minio {
    Minio::start(bin, &[BUCKET], None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_listing_and_restore_match_kopia() {
    let Some(kbin) = kopia_binary() else { return };
    let Some(mbin) = minio_binary() else { return };
    let minio = start_minio(mbin);
    let k = Kopia::new(kbin);
    let prefix = "team/repo1/";
    k.create_s3_repo(&minio, BUCKET, prefix, &["--ecc-overhead-percent", "1"]);
    let id = k.snapshot_tree("over s3");

    let cfg = S3Config {
        bucket: BUCKET.into(),
        prefix: prefix.into(),
        endpoint: Some(minio.endpoint.clone()),
        disable_tls: true,
        access_key_id: Some(USER.into()),
        secret_access_key: Some(SECRET.into()),
        ..Default::default()
    };
    let st: Arc<dyn Storage> = Arc::new(RetryingStorage::new(
        ObjectStorage::s3(&cfg).unwrap(),
        RetryPolicy::default(),
    ));
    read_like_kopia(st, &k, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_wrong_credentials_are_not_retried_forever() {
    let Some(mbin) = minio_binary() else { return };
    let minio = start_minio(mbin);
    let cfg = S3Config {
        bucket: BUCKET.into(),
        endpoint: Some(minio.endpoint.clone()),
        disable_tls: true,
        access_key_id: Some("nobody".into()),
        secret_access_key: Some("wrong-secret".into()),
        ..Default::default()
    };
    let st = ObjectStorage::s3(&cfg).unwrap();
    let err = st.list("x").await.unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    assert_eq!(err.class(), blobstore::ErrorClass::Denied, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_endpoint_that_refuses_connections_is_unreachable_and_retryable() {
    let port = free_port();
    let cfg = S3Config {
        bucket: BUCKET.into(),
        endpoint: Some(format!("127.0.0.1:{port}")),
        disable_tls: true,
        access_key_id: Some(USER.into()),
        secret_access_key: Some(SECRET.into()),
        max_retries: Some(0),
        ..Default::default()
    };
    let st: Arc<dyn Storage> = Arc::new(ObjectStorage::s3(&cfg).unwrap());
    let err = Repository::new(st).open("pw").await.unwrap_err();
    assert_eq!(err.kind(), kopia::ErrorKind::Unreachable, "{err:?}");
    assert!(err.is_retryable());
}
