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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_reasons_match_kopia_with_path_user_and_global_policies() {
    let Some(bin) = kopia_binary() else { return };
    let k = Kopia::new(bin);
    k.create_filesystem_repo(&[]);
    let parent = k.dir.path().join("parent");
    let src1 = parent.join("src1");
    let src2 = k.dir.path().join("src2");
    std::fs::create_dir_all(&src1).unwrap();
    std::fs::create_dir_all(&src2).unwrap();
    k.run(&[
        "policy",
        "set",
        "--global",
        "--keep-latest",
        "3",
        "--keep-hourly",
        "1",
        "--keep-annual",
        "0",
    ]);
    k.run(&[
        "policy",
        "set",
        parent.to_str().unwrap(),
        "--keep-latest",
        "2",
    ]);
    k.run(&[
        "policy",
        "set",
        src2.to_str().unwrap(),
        "--keep-latest",
        "0",
        "--keep-hourly",
        "0",
        "--keep-daily",
        "0",
    ]);
    for i in 0..5 {
        std::fs::write(src1.join("f"), format!("v{i}")).unwrap();
        std::fs::write(src2.join("f"), format!("v{i}")).unwrap();
        k.snapshot(&src1, &[]);
        k.snapshot(&src2, &[]);
    }
    let repo = k.open_ours().await;
    let ours = our_snapshot_list(&repo).await;
    assert!(ours.len() >= 3);
    assert_eq!(ours, k.snapshot_list());

    // Tighten the policy after the fact: some snapshots now have no retention reason.
    k.run(&[
        "policy",
        "set",
        parent.to_str().unwrap(),
        "--keep-latest",
        "1",
        "--keep-hourly",
        "0",
    ]);
    let repo = k.open_ours().await;
    let ours = our_snapshot_list(&repo).await;
    assert!(ours.iter().any(|s| s.get("retentionReason").is_none()));
    assert_eq!(ours, k.snapshot_list());
}
