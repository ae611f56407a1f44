//! `snapshot list` conformance: our listing equals `kopia snapshot list --json` (normalised).
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{Kopia, kopia_binary, make_tree, our_snapshot_list};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_list_matches_kopia_for_several_sources_tags_and_descriptions() {
    let Some(bin) = kopia_binary() else { return };
    let k = Kopia::new(bin);
    k.create_filesystem_repo(&[]);
    let src1 = k.dir.path().join("src1");
    let src2 = k.dir.path().join("src2");
    make_tree(&src1, None);
    std::fs::create_dir_all(&src2).unwrap();
    std::fs::write(src2.join("only"), b"x").unwrap();
    k.snapshot(
        &src1,
        &[
            "--description",
            "first <&> \"quoted\"",
            "--tags",
            "env:test",
            "--tags",
            "team:data",
        ],
    );
    std::fs::write(src1.join("a/new"), b"more").unwrap();
    k.snapshot(&src1, &[]);
    k.snapshot(&src2, &["--description", "second source"]);

    let repo = k.open_ours().await;
    let ours = our_snapshot_list(&repo).await;
    let theirs = k.snapshot_list();
    assert_eq!(ours.len(), 3);
    assert_eq!(ours, theirs);
}
