//! Restore options: progress reporting, skip-existing, sparse files, single-file snapshots.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use kopia::{FilesystemStorage, Repository, RestoreOptions, RestoreProgress, Storage};

async fn fixture_repo() -> (Repository, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v3-default");
    let password = std::fs::read_to_string(dir.join("password")).unwrap();
    let st: Arc<dyn Storage> = Arc::new(FilesystemStorage::open(dir.join("repo")).await.unwrap());
    let repo = Repository::connect(st, &password).await.unwrap();
    let id = repo.list_snapshots().await.unwrap()[0].id.to_string();
    (repo, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_monotonic_and_reaches_the_totals() {
    let (repo, id) = fixture_repo().await;
    let seen: Arc<Mutex<Vec<RestoreProgress>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let opts = RestoreOptions {
        progress: Some(Arc::new(move |p| sink.lock().unwrap().push(p))),
        ..Default::default()
    };
    let out = tempfile::tempdir().unwrap();
    let stats = repo
        .restore(&id, &out.path().join("t"), &opts)
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    let last = *seen.last().unwrap();
    assert_eq!(last.bytes_done, last.bytes_total);
    assert_eq!(last.files_done, last.files_total);
    assert_eq!(last.files_total, stats.files);
    assert_eq!(last.bytes_total, stats.bytes);
    let mut sorted = seen.clone();
    sorted.sort_by_key(|p| (p.bytes_done, p.files_done));
    assert_eq!(sorted.last(), Some(&last));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_existing_skips_up_to_date_files_and_rewrites_changed_ones() {
    let (repo, id) = fixture_repo().await;
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("t");
    let first = repo
        .restore(&id, &target, &RestoreOptions::default())
        .await
        .unwrap();
    assert!(first.files > 0);
    std::fs::write(target.join("dir/hello.txt"), b"tampered, different length").unwrap();
    let opts = RestoreOptions {
        skip_existing: true,
        ..Default::default()
    };
    let root = repo.resolve_restore_root(&id).await.unwrap();
    let local = Arc::new(kopia::LocalDir::new(&target));
    let plan = repo
        .plan_restore(&root, local.as_ref(), &opts)
        .await
        .unwrap();
    assert_eq!(plan.totals.files, 1, "only the tampered file is rewritten");
    assert_eq!(plan.totals.skipped_files, first.files - 1);
    let second = repo.execute_restore(plan, local, &opts).await.unwrap();
    assert_eq!(second.files, 1);
    assert_eq!(
        std::fs::read(target.join("dir/hello.txt")).unwrap(),
        b"hello kopia\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_a_subdirectory_by_path_uses_its_summary_mtime() {
    let (repo, id) = fixture_repo().await;
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("sub");
    repo.restore(
        &format!("{id}/dir/sub"),
        &target,
        &RestoreOptions::default(),
    )
    .await
    .unwrap();
    assert!(target.join("random.bin").is_file());
    let m = std::fs::metadata(&target).unwrap();
    // dir/sub's summ.maxTime is random.bin's mtime (2024-05-06T10:00:00.5Z), per kopia.
    assert_eq!(
        m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        1_714_989_600_500_000_000
    );
    assert_eq!(m.mode() & 0o7777, 0o750);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_snapshot_is_not_found() {
    let (repo, _) = fixture_repo().await;
    let err = repo
        .resolve_restore_root("0123456789abcdef0123456789abcdef")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), kopia::ErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparse_restore_leaves_holes_for_zero_runs() {
    let Some(bin) = common::kopia_binary() else {
        return;
    };
    let k = common::Kopia::new(bin);
    k.create_filesystem_repo(&[]);
    let src = k.dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut data = vec![0u8; 16 << 20];
    data[..4096].fill(1);
    data[(16 << 20) - 10..].fill(2);
    std::fs::write(src.join("sparse.img"), &data).unwrap();
    let id = k.snapshot(&src, &[]);
    let repo = k.open_ours().await;
    let target = k.dir.path().join("out");
    repo.restore(
        &id,
        &target,
        &RestoreOptions {
            sparse: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let restored = std::fs::read(target.join("sparse.img")).unwrap();
    assert!(restored == data);
    let m = std::fs::metadata(target.join("sparse.img")).unwrap();
    assert!(
        m.blocks() * 512 < (1 << 20),
        "allocated {} bytes",
        m.blocks() * 512
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_file_snapshot_restores_to_the_target_path() {
    let Some(bin) = common::kopia_binary() else {
        return;
    };
    let k = common::Kopia::new(bin);
    k.create_filesystem_repo(&[]);
    let file = k.dir.path().join("one.bin");
    std::fs::write(&file, common::pseudo_random(5 << 20, 3)).unwrap();
    let id = k.snapshot(&file, &[]);
    let repo = k.open_ours().await;
    let (theirs, ours) = (
        k.dir.path().join("kopia.bin"),
        k.dir.path().join("ours.bin"),
    );
    k.restore(&id, &theirs);
    repo.restore(&id, &ours, &RestoreOptions::default())
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(&theirs).unwrap(),
        std::fs::read(&ours).unwrap()
    );
    let (a, b) = (
        std::fs::metadata(&theirs).unwrap(),
        std::fs::metadata(&ours).unwrap(),
    );
    assert_eq!(
        (a.mode(), a.mtime(), a.mtime_nsec()),
        (b.mode(), b.mtime(), b.mtime_nsec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_by_root_object_id_takes_attributes_from_its_snapshot() {
    let (repo, id) = fixture_repo().await;
    let snaps = repo.list_snapshots().await.unwrap();
    let snap = snaps.iter().find(|s| s.id.as_str() == id).unwrap();
    let root = snap.root_entry.as_ref().unwrap();
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("t");
    repo.restore(
        &root.object_id.to_string(),
        &target,
        &RestoreOptions::default(),
    )
    .await
    .unwrap();
    let m = std::fs::metadata(&target).unwrap();
    assert_eq!(
        m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        root.mtime.as_nanos()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_target_receives_the_same_tree_as_a_local_restore() {
    use kopia::{MemoryEntry, MemoryTarget};
    let (repo, id) = fixture_repo().await;
    let mem = Arc::new(MemoryTarget::new());
    let stats = repo
        .restore_to(&id, Arc::clone(&mem), &RestoreOptions::default())
        .await
        .unwrap();
    let entries = mem.entries();
    let files = entries
        .values()
        .filter(|e| matches!(e, MemoryEntry::File(_, Some(_))))
        .count();
    assert_eq!(files as u64, stats.files);
    let Some(MemoryEntry::File(data, Some(attrs))) = entries.get(Path::new("dir/hello.txt")) else {
        panic!("dir/hello.txt missing: {entries:?}")
    };
    assert_eq!(data, b"hello kopia\n");
    assert_eq!(attrs.mode.to_posix(), 0o640);
    assert!(
        matches!(entries.get(Path::new("link")), Some(MemoryEntry::Symlink(t, _)) if t == b"dir/hello.txt")
    );
    assert!(matches!(
        entries.get(Path::new("")),
        Some(MemoryEntry::Dir(Some(_)))
    ));
}
