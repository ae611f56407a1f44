//! Conformance after snapshot deletion, many index blobs (epoch advance) and full maintenance
//! (index compaction, content rewrite, deletion watermark, pack GC).
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{Kopia, assert_trees_equal, kopia_binary, make_tree, our_snapshot_list};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_and_restore_match_kopia_after_delete_and_full_maintenance() {
    let Some(bin) = kopia_binary() else { return };
    let k = Kopia::new(bin);
    k.create_filesystem_repo(&[]);
    let src = k.dir.path().join("src");
    make_tree(&src, None);
    let mut ids = Vec::new();
    for i in 0..10u64 {
        std::fs::write(
            src.join(format!("a/gen-{i}")),
            common::pseudo_random(100_000, 1000 + i),
        )
        .unwrap();
        ids.push(k.snapshot(&src, &["--description", &format!("gen {i}")]));
        // Epochs advance only after 24 h; write the plaintext epoch marker kopia would write so
        // that maintenance settles and compacts earlier epochs (xs single-epoch sets, then an
        // xr range checkpoint). Kopia caches listings, so clear its cache first.
        std::fs::write(
            k.repo_path().join(format!("xe{}.f", i + 1)),
            b"epoch-marker",
        )
        .unwrap();
        k.run(&["cache", "clear"]);
        k.run(&["maintenance", "run", "--full", "--safety=none"]);
    }
    // A handle whose index predates the final maintenance (which rewrites short packs and
    // deletes the old ones): reads must refresh the index when a pack is gone.
    let stale = k.open_ours().await;
    k.run(&["snapshot", "delete", &ids[0], "--delete"]);
    k.run(&["snapshot", "delete", &ids[3], "--delete"]);
    std::fs::remove_file(src.join("a/gen-0")).unwrap();
    k.run(&["maintenance", "run", "--full", "--safety=none"]);
    k.run(&["maintenance", "run", "--full", "--safety=none"]);

    let repo = k.open_ours().await;
    let ours = our_snapshot_list(&repo).await;
    assert_eq!(ours.len(), 8);
    assert_eq!(ours, k.snapshot_list());

    let last = ids.last().unwrap();
    let theirs = k.dir.path().join("restore-kopia");
    let mine = k.dir.path().join("restore-ours");
    k.restore(last, &theirs);
    repo.restore(last, &mine, &kopia::RestoreOptions::default())
        .await
        .unwrap();
    assert_trees_equal(&theirs, &mine);
    let live: std::collections::HashSet<String> = repo
        .storage()
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.id.to_string())
        .collect();
    let gone = stale
        .list_contents(None)
        .unwrap()
        .iter()
        .filter(|c| !live.contains(c.pack_blob_id.as_str()))
        .count();
    // Whether full maintenance rewrites packs in this run depends on kopia's own timing (it was seen to
    // remove none once in CI), so the stale-handle refresh is checked only when packs did go away; the
    // restore through the stale handle must be right either way.
    if gone == 0 {
        eprintln!(
            "maintenance removed no pack under the stale handle this run; refresh path not exercised"
        );
    }
    let from_stale = k.dir.path().join("restore-stale");
    stale
        .restore(last, &from_stale, &kopia::RestoreOptions::default())
        .await
        .unwrap();
    assert_trees_equal(&theirs, &from_stale);

    let blobs: Vec<String> = repo
        .storage()
        .list("x")
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.id.to_string())
        .collect();
    eprintln!("index-related blobs after maintenance: {blobs:?}");
}
