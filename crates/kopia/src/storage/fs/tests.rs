use super::*;
use crate::storage::Storage;

#[test]
fn sharding_places_long_ids_in_nested_directories() {
    let s = ShardingConfig::modern();
    assert_eq!(
        s.relative_path("p0123456789abcdef0123456789abcdef-s0011"),
        PathBuf::from("p/012/3456789abcdef0123456789abcdef-s0011")
    );
    assert_eq!(
        s.relative_path("kopia.repository"),
        PathBuf::from("kopia.repository")
    );
    assert_eq!(s.relative_path("xe12"), PathBuf::from("xe12"));
    let legacy = ShardingConfig::legacy();
    assert_eq!(
        legacy.relative_path("p0123456789abcdef0123456789abcdef"),
        PathBuf::from("p01/234/56789abcdef0123456789abcdef")
    );
    let flat = ShardingConfig {
        default: vec![],
        ..ShardingConfig::modern()
    };
    assert_eq!(
        flat.relative_path("p0123456789abcdef0123456789"),
        PathBuf::from("p0123456789abcdef0123456789")
    );
}

#[test]
fn sharding_override_applies_to_matching_prefix() {
    let s: ShardingConfig = serde_json::from_str(
        r#"{"default":[1,3],"maxNonShardedLength":20,"overrides":[{"prefix":"x","shards":[2]}]}"#,
    )
    .unwrap();
    assert_eq!(
        s.relative_path("xn0_0123456789abcdef0123"),
        PathBuf::from("xn/0_0123456789abcdef0123")
    );
    assert_eq!(
        s.key("xn0_0123456789abcdef0123"),
        "xn/0_0123456789abcdef0123.f"
    );
}

#[tokio::test]
async fn filesystem_storage_lists_and_reads_sharded_blobs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".shards"),
        r#"{"default":[1,3],"maxNonShardedLength":20}"#,
    )
    .unwrap();
    let st = FilesystemStorage::open(dir.path()).await.unwrap();
    let id = BlobId::new("p0123456789abcdef0123456789abcdef");
    let path = st.blob_path(&id);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"hello world").unwrap();
    std::fs::write(dir.path().join("kopia.repository.f"), b"{}").unwrap();
    std::fs::write(path.with_extension("f.tmp.0123456789abcdef"), b"partial").unwrap();

    let all = st.list("").await.unwrap();
    let mut names: Vec<_> = all.iter().map(|m| m.id.to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        vec!["kopia.repository", "p0123456789abcdef0123456789abcdef"]
    );
    let p = st.list("p01").await.unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].length, 11);
    assert!(st.list("q").await.unwrap().is_empty());
    assert_eq!(&st.get_range(&id, 6..11).await.unwrap()[..], b"world");
    assert!(matches!(
        st.get_range(&id, 6..12).await,
        Err(StorageError::InvalidRange { .. })
    ));
    assert!(matches!(
        st.get(&BlobId::new("p99")).await,
        Err(StorageError::NotFound { .. })
    ));
}

#[tokio::test]
async fn filesystem_storage_without_shards_file_assumes_legacy_layout() {
    let dir = tempfile::tempdir().unwrap();
    let st = FilesystemStorage::open(dir.path()).await.unwrap();
    assert_eq!(st.sharding(), Some(&ShardingConfig::legacy()));
    assert!(!dir.path().join(".shards").exists());
}
