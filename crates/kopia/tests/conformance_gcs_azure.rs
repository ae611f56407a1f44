//! Conformance over Google Cloud Storage and Azure Blob Storage (issue 17), against the emulators
//! `scripts/testinfra.sh` installs (fake-gcs-server, Azurite): a repository with a key prefix read through
//! `ObjectStorage` (object_store), listed and restored exactly as kopia restores it.
//!
//! * GCS: the real `kopia` writes the repository into fake-gcs-server (`STORAGE_EMULATOR_HOST`, which
//!   Google's Go client honours).
//! * Azure: kopia's CLI cannot reach Azurite (it builds `https://<account>.<storage domain>/` and offers no
//!   plain-HTTP switch for Azure, and the name does not resolve here), so the real `kopia` writes the
//!   repository to MinIO and every object is copied byte for byte, under the same keys, into Azurite:
//!   kopia lays out S3, GCS and Azure repositories identically (flat blob IDs under the prefix).
//!
//! A missing emulator skips outside CI and fails under `CI=true`.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::minio::{Minio, SECRET, USER, minio_binary};
use common::{Kopia, kopia_binary, read_like_kopia};
use futures::TryStreamExt as _;
use kopia::{
    AzureConfig, GcsConfig, ObjectStorage, Repository, RetryPolicy, RetryingStorage, Storage as _,
};
use object_store::ObjectStore as _;
use pgro_testkit::emulators::{AZURITE_ACCOUNT, AZURITE_KEY, Azurite, FakeGcs};
use pgro_testkit::{Components, skip_unless_ci};

const BUCKET: &str = "kopia-conformance";
const PREFIX: &str = "team/repo1/";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_listing_and_restore_match_kopia() {
    let Some(kbin) = kopia_binary() else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some(gcs) = skip_unless_ci(
        FakeGcs::start(&Components::load(), &dir.path().join("gcs")).await,
        "gcs_listing_and_restore_match_kopia",
    ) else {
        return;
    };
    gcs.create_bucket(BUCKET).await.unwrap();
    let mut k = Kopia::new(kbin);
    k.env
        .push(("STORAGE_EMULATOR_HOST".into(), gcs.host.clone()));
    k.run(&[
        "repository",
        "create",
        "gcs",
        "--bucket",
        BUCKET,
        "--prefix",
        PREFIX,
        "--ecc-overhead-percent",
        "1",
    ]);
    let id = k.snapshot_tree("over an emulator");
    let cfg = GcsConfig {
        bucket: BUCKET.into(),
        prefix: PREFIX.into(),
        endpoint: Some(gcs.url.clone()),
        ..Default::default()
    };
    let st = Arc::new(RetryingStorage::new(
        ObjectStorage::gcs(&cfg).unwrap(),
        RetryPolicy::default(),
    ));
    read_like_kopia(st, &k, &id).await;

    // A bucket that does not exist is a clear, final error, not a retry loop.
    let missing = ObjectStorage::gcs(&GcsConfig {
        bucket: "no-such-bucket".into(),
        ..cfg
    })
    .unwrap();
    let err = Repository::new(Arc::new(missing))
        .open("pw")
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");
}

async fn azurite(dir: &std::path::Path) -> Option<Azurite> {
    let az = skip_unless_ci(
        Azurite::start(&Components::load(), &dir.join("azurite")).await,
        "azure conformance",
    )?;
    az.create_container(BUCKET).unwrap();
    Some(az)
}

fn azure_config(az: &Azurite, key: &str) -> AzureConfig {
    AzureConfig {
        account: AZURITE_ACCOUNT.into(),
        container: BUCKET.into(),
        prefix: PREFIX.into(),
        access_key: Some(key.into()),
        endpoint: Some(az.account_url.clone()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_listing_and_restore_match_kopia() {
    let Some(kbin) = kopia_binary() else { return };
    let Some(mbin) = minio_binary() else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some(az) = azurite(dir.path()).await else {
        return;
    };
    let minio = Minio::start(mbin, &[BUCKET], None);
    let k = Kopia::new(kbin);
    k.create_s3_repo(&minio, BUCKET, PREFIX, &["--ecc-overhead-percent", "1"]);
    let id = k.snapshot_tree("over an emulator");

    // Every object, byte for byte, under the same key.
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_endpoint(format!("http://{}", minio.endpoint))
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id(USER)
        .with_secret_access_key(SECRET)
        .build()
        .unwrap();
    let azure = object_store::azure::MicrosoftAzureBuilder::new()
        .with_account(AZURITE_ACCOUNT)
        .with_access_key(AZURITE_KEY)
        .with_container_name(BUCKET)
        .with_endpoint(az.account_url.clone())
        .with_allow_http(true)
        .build()
        .unwrap();
    let objects: Vec<_> = s3
        .list(Some(&object_store::path::Path::from(PREFIX)))
        .try_collect()
        .await
        .unwrap();
    assert!(objects.len() > 5, "{} objects", objects.len());
    for o in &objects {
        let bytes = s3.get(&o.location).await.unwrap().bytes().await.unwrap();
        azure.put(&o.location, bytes.into()).await.unwrap();
    }

    let st = Arc::new(RetryingStorage::new(
        ObjectStorage::azure(&azure_config(&az, AZURITE_KEY)).unwrap(),
        RetryPolicy::default(),
    ));
    read_like_kopia(st, &k, &id).await;

    // A wrong account key is denied at once, not retried.
    let wrong = ObjectStorage::azure(&azure_config(
        &az,
        "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==",
    ))
    .unwrap();
    let err = wrong.list("x").await.unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    assert_eq!(err.class(), blobstore::ErrorClass::Denied, "{err:?}");
}
