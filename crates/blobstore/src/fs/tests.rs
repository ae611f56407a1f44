use super::*;

fn tree() -> (tempfile::TempDir, FileStore) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("backup/db/20240101-000000F/pg_data")).unwrap();
    std::fs::create_dir_all(d.join("backup/db/20240102-000000F_20240102-010000I")).unwrap();
    std::fs::write(d.join("backup/db/backup.info"), b"[backrest]").unwrap();
    std::fs::write(
        d.join("backup/db/20240101-000000F/pg_data/PG_VERSION.gz"),
        b"16",
    )
    .unwrap();
    std::fs::write(d.join("top"), b"hello world").unwrap();
    let store = FileStore::new(d);
    (dir, store)
}

fn keys(mut v: Vec<ObjectMeta>) -> Vec<String> {
    v.sort_by(|a, b| a.key.cmp(&b.key));
    v.into_iter().map(|m| m.key).collect()
}

#[tokio::test]
async fn file_store_lists_recursively_by_string_prefix() {
    let (_dir, st) = tree();
    assert_eq!(
        keys(st.list("").await.unwrap()),
        [
            "backup/db/20240101-000000F/pg_data/PG_VERSION.gz",
            "backup/db/backup.info",
            "top"
        ]
    );
    assert_eq!(
        keys(st.list("backup/db/2024").await.unwrap()),
        ["backup/db/20240101-000000F/pg_data/PG_VERSION.gz"]
    );
    assert_eq!(keys(st.list("t").await.unwrap()), ["top"]);
    assert!(st.list("missing/").await.unwrap().is_empty());
}

#[tokio::test]
async fn file_store_lists_one_level_with_directories_as_prefixes() {
    let (_dir, st) = tree();
    let mut l = st.list_dir("backup/db/").await.unwrap();
    l.prefixes.sort();
    assert_eq!(
        l.prefixes,
        [
            "backup/db/20240101-000000F/",
            "backup/db/20240102-000000F_20240102-010000I/"
        ]
    );
    assert_eq!(keys(l.objects), ["backup/db/backup.info"]);
    let root = st.list_dir("").await.unwrap();
    assert_eq!(root.prefixes, ["backup/"]);
    assert_eq!(keys(root.objects), ["top"]);
}

#[tokio::test]
async fn file_store_reads_whole_files_ranges_and_metadata() {
    let (_dir, st) = tree();
    assert_eq!(&st.get("top").await.unwrap()[..], b"hello world");
    assert_eq!(&st.get_range("top", 6..11).await.unwrap()[..], b"world");
    assert!(matches!(
        st.get_range("top", 6..12).await,
        Err(Error::InvalidRange { len: 11, .. })
    ));
    assert!(matches!(
        st.get("nope").await,
        Err(Error::NotFound { key }) if key == "nope"
    ));
    assert_eq!(st.head("top").await.unwrap().size, 11);
    assert!(matches!(
        st.head("backup").await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn file_store_refuses_keys_outside_the_root() {
    let (_dir, st) = tree();
    for key in ["../etc/passwd", "/etc/passwd", "backup/../../x"] {
        let err = st.get(key).await.unwrap_err();
        assert!(matches!(err, Error::InvalidKey { .. }), "{key}: {err:?}");
        assert_eq!(err.class(), crate::ErrorClass::Misconfigured);
        assert!(matches!(
            st.list_dir(key).await,
            Err(Error::InvalidKey { .. })
        ));
    }
}

#[tokio::test]
async fn file_store_open_refuses_a_missing_root_or_a_file() {
    let (dir, _st) = tree();
    assert!(matches!(
        FileStore::open(dir.path().join("missing")).await,
        Err(Error::Io { .. })
    ));
    assert!(matches!(
        FileStore::open(dir.path().join("top")).await,
        Err(Error::Config { .. })
    ));
}
