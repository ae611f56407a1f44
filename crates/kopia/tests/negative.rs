//! Negative and robustness tests on repositories written by the real kopia binary: wrong
//! password, corrupted and missing packs, truncated index blobs, and ECC repair.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::{Kopia, assert_trees_equal, kopia_binary, make_tree};
use kopia::{BlobId, Error, ErrorKind, FilesystemStorage, Repository, RestoreOptions, Storage};

/// A repository with one snapshot of the standard tree; returns the kopia handle and snapshot ID.
fn setup(create_flags: &[&str]) -> Option<(Kopia, String)> {
    let bin = kopia_binary()?;
    let k = Kopia::new(bin);
    k.create_filesystem_repo(create_flags);
    let src = k.dir.path().join("src");
    make_tree(&src, None);
    let id = k.snapshot(&src, &[]);
    Some((k, id))
}

/// The largest file content (an unprefixed content) and its pack.
async fn largest_data_content(k: &Kopia) -> kopia::ContentInfo {
    let repo = k.open_ours().await;
    let mut infos: Vec<_> = repo
        .list_contents(None)
        .unwrap()
        .into_iter()
        .filter(|c| c.content_id.prefix().is_none())
        .collect();
    infos.sort_by_key(|c| c.packed_length);
    infos.pop().unwrap()
}

async fn fs_storage(k: &Kopia) -> FilesystemStorage {
    FilesystemStorage::open(k.repo_path()).await.unwrap()
}

fn flip_byte(path: &std::path::Path, at: u64) {
    let mut data = std::fs::read(path).unwrap();
    data[usize::try_from(at).unwrap()] ^= 0x40;
    std::fs::write(path, data).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_reported_as_wrong_password() {
    let Some((k, _)) = setup(&[]) else { return };
    let st: Arc<dyn Storage> = Arc::new(fs_storage(&k).await);
    let err = Repository::new(st)
        .open("not-the-password")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WrongPassword), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::WrongPassword);
    assert!(!err.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_in_a_pack_fails_restore_naming_content_and_pack() {
    let Some((k, id)) = setup(&[]) else { return };
    let victim = largest_data_content(&k).await;
    let st = fs_storage(&k).await;
    flip_byte(
        &st.blob_path(&victim.pack_blob_id),
        u64::from(victim.pack_offset) + 100,
    );

    let repo = k.open_ours().await;
    let err = repo
        .restore(&id, &k.dir.path().join("out"), &RestoreOptions::default())
        .await
        .unwrap_err();
    match &err {
        Error::CorruptContent {
            content_id, pack, ..
        } => {
            assert_eq!(*content_id, victim.content_id);
            assert_eq!(*pack, victim.pack_blob_id);
        }
        other => panic!("expected CorruptContent, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(victim.pack_blob_id.as_str()) && msg.contains(&victim.content_id.to_string()),
        "{msg}"
    );
    assert_eq!(err.kind(), ErrorKind::Corrupted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_pack_fails_restore_with_missing_blob() {
    let Some((k, id)) = setup(&[]) else { return };
    let victim = largest_data_content(&k).await;
    let st = fs_storage(&k).await;
    std::fs::remove_file(st.blob_path(&victim.pack_blob_id)).unwrap();

    let repo = k.open_ours().await;
    let err = repo
        .restore(&id, &k.dir.path().join("out"), &RestoreOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::MissingBlob { blob_id } if *blob_id == victim.pack_blob_id),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

/// A pack shorter than its index says is permanent damage: restore and verify report the content
/// it cuts off as corrupted (exit code 5 in pgro), never as unreachable storage to retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_pack_fails_restore_as_corruption_naming_content_and_pack() {
    let Some((k, id)) = setup(&[]) else { return };
    let victim = largest_data_content(&k).await;
    let st = fs_storage(&k).await;
    let path = st.blob_path(&victim.pack_blob_id);
    let cut = u64::from(victim.pack_offset) + u64::from(victim.packed_length) / 2;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(cut)
        .unwrap();

    let repo = k.open_ours().await;
    let err = repo
        .restore(&id, &k.dir.path().join("out"), &RestoreOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupted, "{err:?}");
    assert!(!err.is_retryable());
    match &err {
        Error::CorruptContent {
            content_id,
            pack,
            cause: kopia::Corruption::Truncated { len, .. },
            ..
        } => {
            assert_eq!(*pack, victim.pack_blob_id);
            assert_eq!(*len, cut);
            // The victim or a content after it in the same pack: all are cut off.
            assert!(
                repo.content_info(content_id).unwrap().pack_offset >= victim.pack_offset,
                "{err:?}"
            );
        }
        other => panic!("expected a truncated CorruptContent, got {other:?}"),
    }
    assert!(err.to_string().contains(victim.pack_blob_id.as_str()));

    let report = repo.verify_contents(100.0, 4).await.unwrap();
    assert!(
        report
            .failures
            .iter()
            .any(|(c, e)| *c == victim.content_id && e.kind() == ErrorKind::Corrupted),
        "{:?}",
        report.failures
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_index_blob_fails_index_load_naming_the_blob() {
    let Some((k, _)) = setup(&[]) else { return };
    let st = fs_storage(&k).await;
    let idx = st
        .list("xn")
        .await
        .unwrap()
        .into_iter()
        .max_by_key(|b| b.length)
        .unwrap();
    let path = st.blob_path(&idx.id);
    let data = std::fs::read(&path).unwrap();
    std::fs::write(&path, &data[..data.len() / 2]).unwrap();

    let st: Arc<dyn Storage> = Arc::new(st);
    let err = Repository::connect(st, &k.password).await.unwrap_err();
    assert!(
        matches!(&err, Error::CorruptBlob { blob_id, .. } if *blob_id == idx.id),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecc_repairs_a_damaged_shard_in_a_pack() {
    let Some((k, id)) = setup(&["--ecc-overhead-percent", "10"]) else {
        return;
    };
    let theirs = k.dir.path().join("restore-kopia");
    k.restore(&id, &theirs);

    let victim = largest_data_content(&k).await;
    let st = fs_storage(&k).await;
    // Damage one byte in the data area of the content (after the parity shards).
    flip_byte(
        &st.blob_path(&victim.pack_blob_id),
        u64::from(victim.pack_offset + victim.packed_length / 2),
    );

    let repo = k.open_ours().await;
    let ours = k.dir.path().join("restore-ours");
    repo.restore(&id, &ours, &RestoreOptions::default())
        .await
        .unwrap();
    assert_trees_equal(&theirs, &ours);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_a_repository_is_missing_format_blob() {
    let dir = tempfile::tempdir().unwrap();
    let st: Arc<dyn Storage> = Arc::new(FilesystemStorage::open(dir.path()).await.unwrap());
    let err = Repository::new(st).open("x").await.unwrap_err();
    assert!(
        matches!(&err, Error::MissingBlob { blob_id } if *blob_id == BlobId::new("kopia.repository")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_contents_reports_the_corrupted_content() {
    let Some((k, _)) = setup(&[]) else { return };
    let repo = k.open_ours().await;
    let clean = repo.verify_contents(100.0, 4).await.unwrap();
    assert_eq!(clean.checked, clean.total);
    assert!(clean.failures.is_empty());

    let victim = largest_data_content(&k).await;
    let st = fs_storage(&k).await;
    flip_byte(
        &st.blob_path(&victim.pack_blob_id),
        u64::from(victim.pack_offset) + 50,
    );
    let report = repo.verify_contents(100.0, 4).await.unwrap();
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].0, victim.content_id);
    assert_eq!(report.failures[0].1.kind(), ErrorKind::Corrupted);
}
