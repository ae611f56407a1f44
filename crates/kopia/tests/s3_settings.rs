//! S3 settings as users write them, against repositories kopia created in a real MinIO: a bucket in
//! a region other than `us-east-1` with no region configured (discovered, as kopia does), a
//! configured region that is wrong (a configuration error, never "unreachable"), an endpoint URL
//! whose scheme decides TLS, and a truncated pack served over S3.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::minio::{Minio, SECRET, USER, minio_binary};
use common::{Kopia, assert_trees_equal, kopia_binary, make_tree, our_snapshot_list};
use kopia::{
    Error, ErrorKind, ObjectStorage, Repository, RestoreOptions, RetryPolicy, RetryingStorage,
    S3Config, Storage, StorageError,
};

const BUCKET: &str = "kopia-regional";
const REGION: &str = "ap-southeast-2";
const PREFIX: &str = "pg/";

/// A MinIO in `region` and a kopia repository in it with two snapshots of the standard tree,
/// created by kopia without `--region`; returns them and the first snapshot's ID.
fn regional_repo(region: Option<&str>) -> Option<(Minio, Kopia, String)> {
    let kbin = kopia_binary()?;
    let mbin = minio_binary()?;
    let minio = Minio::start(mbin, &[BUCKET], region);
    let k = Kopia::new(kbin);
    k.create_s3_repo(&minio, BUCKET, PREFIX, &[]);
    let src = k.dir.path().join("src");
    make_tree(&src, Some(9 << 20));
    let id = k.snapshot(&src, &[]);
    k.snapshot(&src, &["--description", "second"]);
    Some((minio, k, id))
}

fn config(minio: &Minio) -> S3Config {
    S3Config {
        bucket: BUCKET.into(),
        prefix: PREFIX.into(),
        endpoint: Some(minio.endpoint.clone()),
        disable_tls: true,
        access_key_id: Some(USER.into()),
        secret_access_key: Some(SECRET.into()),
        max_retries: Some(0),
        ..Default::default()
    }
}

/// Storage as `pgro` builds it: object_store without its own retries, under `RetryingStorage`.
fn storage(cfg: &S3Config) -> Arc<dyn Storage> {
    Arc::new(RetryingStorage::new(
        ObjectStorage::s3(cfg).unwrap(),
        RetryPolicy::default(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_outside_us_east_1_is_read_without_a_configured_region_like_kopia() {
    let Some((minio, k, id)) = regional_repo(Some(REGION)) else {
        return;
    };
    let repo = Repository::connect(storage(&config(&minio)), &k.password)
        .await
        .unwrap();
    assert_eq!(our_snapshot_list(&repo).await, k.snapshot_list());
    let theirs = k.dir.path().join("restore-kopia");
    let ours = k.dir.path().join("restore-ours");
    k.restore(&id, &theirs);
    repo.restore(&id, &ours, &RestoreOptions::default())
        .await
        .unwrap();
    assert_trees_equal(&theirs, &ours);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_region_other_than_the_buckets_is_a_configuration_error_naming_it() {
    let Some((minio, k, _)) = regional_repo(Some(REGION)) else {
        return;
    };
    // us-east-1 is what an undiscovered region used to default to: refused the same way.
    for wrong in ["us-west-1", "us-east-1"] {
        let cfg = S3Config {
            region: Some(wrong.into()),
            ..config(&minio)
        };
        let started = Instant::now();
        let err = Repository::connect(storage(&cfg), &k.password)
            .await
            .unwrap_err();
        assert!(
            matches!(
                &err,
                Error::Storage {
                    source: StorageError::WrongRegion { used, expected: Some(r), .. },
                    ..
                } if used == wrong && r == REGION
            ),
            "{err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(!err.is_retryable());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a wrong region must not be retried: {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_endpoint_url_needs_no_disable_tls_and_other_schemes_are_refused() {
    let Some((minio, k, _)) = regional_repo(None) else {
        return;
    };
    let cfg = S3Config {
        endpoint: Some(format!("http://{}", minio.endpoint)),
        disable_tls: false,
        ..config(&minio)
    };
    let repo = Repository::connect(storage(&cfg), &k.password)
        .await
        .unwrap();
    assert_eq!(our_snapshot_list(&repo).await, k.snapshot_list());

    let cfg = S3Config {
        endpoint: Some(format!("ftp://{}", minio.endpoint)),
        ..config(&minio)
    };
    let err = ObjectStorage::s3(&cfg).unwrap_err();
    assert!(
        matches!(&err, StorageError::EndpointScheme { scheme, .. } if scheme == "ftp"),
        "{err:?}"
    );
    assert!(!err.is_transient());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_pack_over_s3_is_corruption_not_unreachable() {
    use object_store::ObjectStore as _;
    let Some((minio, k, id)) = regional_repo(Some(REGION)) else {
        return;
    };
    let st = storage(&config(&minio));
    let pack = st
        .list("p")
        .await
        .unwrap()
        .into_iter()
        .max_by_key(|b| b.length)
        .unwrap();
    // Rewrite the pack with its first half only, through a plain object_store client.
    let writer = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_region(REGION)
        .with_endpoint(format!("http://{}", minio.endpoint))
        .with_allow_http(true)
        .with_access_key_id(USER)
        .with_secret_access_key(SECRET)
        .build()
        .unwrap();
    let key = object_store::path::Path::from(format!("{PREFIX}{}", pack.id));
    let data = st.get(&pack.id).await.unwrap();
    let half = data.slice(..data.len() / 2);
    writer.put(&key, half.into()).await.unwrap();

    let repo = Repository::connect(Arc::clone(&st), &k.password)
        .await
        .unwrap();
    let started = Instant::now();
    let err = repo
        .restore(&id, &k.dir.path().join("out"), &RestoreOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupted, "{err:?}");
    assert!(
        matches!(&err, Error::CorruptContent { pack: p, .. } if *p == pack.id),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "retried?");
}
