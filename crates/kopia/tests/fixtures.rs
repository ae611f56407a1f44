//! Golden repositories written by kopia v0.23.1 (see `fixtures/make.sh`), checked without the
//! kopia binary: snapshot list JSON and the restored tree must equal what kopia produced.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kopia::{FilesystemStorage, Repository, RestoreOptions, Storage};
use sha2::Digest;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn describe(root: &Path) -> serde_json::Value {
    let mut entries = Vec::new();
    walk(root, root, &mut entries);
    entries.sort_by(|a: &serde_json::Value, b| a["path"].as_str().cmp(&b["path"].as_str()));
    let m = std::fs::metadata(root).unwrap();
    serde_json::json!({
        "root": {"mode": m.mode() & 0o7777, "mtime_ns": m.mtime() * 1_000_000_000 + m.mtime_nsec()},
        "entries": entries,
    })
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<serde_json::Value>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let mtime = m.mtime() * 1_000_000_000 + m.mtime_nsec();
        if m.file_type().is_symlink() {
            let t = std::fs::read_link(&p)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.push(
                serde_json::json!({"path": rel, "mtime_ns": mtime, "kind": "symlink", "target": t}),
            );
        } else if m.is_dir() {
            out.push(serde_json::json!({"path": rel, "mtime_ns": mtime, "kind": "dir", "mode": m.mode() & 0o7777}));
            walk(root, &p, out);
        } else {
            let data = std::fs::read(&p).unwrap();
            out.push(serde_json::json!({
                "path": rel, "mtime_ns": mtime, "kind": "file", "mode": m.mode() & 0o7777,
                "size": data.len(), "sha256": format!("{:x}", sha2::Sha256::digest(&data)),
            }));
        }
    }
}

/// Counts legacy `Z` (object-level compressed) file objects in a snapshot tree.
async fn count_compressed_objects(repo: &Repository, root: kopia::ObjectId) -> usize {
    let mut n = 0;
    let mut stack = vec![root];
    while let Some(oid) = stack.pop() {
        for e in repo.read_directory(oid).await.unwrap().entries {
            match e.entry_type {
                kopia::EntryType::Directory => stack.push(e.object_id),
                _ => n += usize::from(e.object_id.is_compressed()),
            }
        }
    }
    n
}

async fn check(name: &str) {
    let dir = fixture(name);
    let password = std::fs::read_to_string(dir.join("password")).unwrap();
    let st: Arc<dyn Storage> = Arc::new(FilesystemStorage::open(dir.join("repo")).await.unwrap());
    let repo = Repository::connect(st, &password).await.unwrap();

    let snaps = repo.list_snapshots().await.unwrap();
    let ours: serde_json::Value =
        serde_json::from_str(&kopia::snapshot_list_json(&snaps).unwrap()).unwrap();
    let theirs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("snapshots.json")).unwrap())
            .unwrap();
    assert_eq!(ours, theirs, "{name}: snapshot list");
    if name.starts_with("v1-") {
        // Index v1 has no content compression, so kopia compresses whole objects ("Z…" IDs).
        let root = snaps[0].root_entry.as_ref().unwrap().object_id;
        assert!(
            count_compressed_objects(&repo, root).await > 0,
            "{name}: expected Z objects"
        );
    }

    let mut expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tree.json")).unwrap()).unwrap();
    let id = expected["snapshot"].as_str().unwrap().to_owned();
    expected.as_object_mut().unwrap().remove("snapshot");
    for parallel in [1, 8] {
        let out = tempfile::tempdir().unwrap();
        let target = out.path().join("restored");
        repo.restore(
            &id,
            &target,
            &RestoreOptions {
                parallel,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            describe(&target),
            expected,
            "{name}: restored tree (parallel {parallel})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_v3_default_repository_lists_and_restores_like_kopia() {
    check("v3-default").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_v3_ecc_chacha_blake3_zstd_repository_lists_and_restores_like_kopia() {
    check("v3-ecc-chacha-blake3-zstd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_v1_legacy_s2_repository_lists_and_restores_like_kopia() {
    check("v1-legacy-s2").await;
}
