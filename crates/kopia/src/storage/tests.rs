use blobstore::MemoryStore;

use super::*;

#[tokio::test]
async fn flat_layout_lists_blob_ids_and_skips_nested_keys() {
    let st = MemoryStorage::new();
    st.store().put("p0123", "pack");
    st.store().put("xn0_1", "index");
    st.store().put("p9/other-tool", "not a blob");
    let mut ids: Vec<_> = st
        .list("p")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id.to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["p0123"]);
    assert_eq!(
        &st.get_range(&BlobId::new("p0123"), 1..3).await.unwrap()[..],
        b"ac"
    );
}

#[tokio::test]
async fn sharded_layout_reports_errors_against_the_blob_id() {
    let store = MemoryStore::new();
    let st = BlobStorage::sharded(store, ShardingConfig::modern());
    let id = BlobId::new("p0123456789abcdef0123456789abcdef");
    assert_eq!(st.key(&id), "p/012/3456789abcdef0123456789abcdef.f");
    st.store().put(&st.key(&id), "0123");
    assert_eq!(st.list("p01").await.unwrap()[0].id, id);
    assert!(matches!(
        st.get_range(&id, 2..9).await,
        Err(StorageError::InvalidRange { key, len: 4, .. }) if key == id.as_str()
    ));
    assert!(matches!(
        st.get(&BlobId::new("p0000000000000000000000000")).await,
        Err(StorageError::NotFound { key }) if key == "p0000000000000000000000000"
    ));
}
