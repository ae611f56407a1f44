//! The pgBackRest fixture builder against the real binaries: repositories written by pgBackRest 2.45 and
//! the current release, restored by `pgbackrest restore`, started, and checked against the source's data.
//! Outside CI a missing binary skips; under `CI=true` it fails.

use std::path::{Path, PathBuf};
use std::time::Instant;

use pgro_testkit::Components;
use pgro_testkit::fixtures::Minio;
use pgro_testkit::fixtures::test_root;
use pgro_testkit::pgbackrest::{
    BackupType, ClusterOptions, Compress, DiffOptions, NodeKind, PgbrVersion, RepoOptions,
    SourceCluster, Storage, tree_diff, tree_digest,
};

/// Restores `label` of `repo` with pgBackRest, starts PostgreSQL on it (recovery to the end of the
/// backup, then promotion) and checks the data equals `expected`.
async fn restore_and_check(
    cluster: &SourceCluster,
    repo: usize,
    label: &str,
    target: &Path,
    expected: &str,
) {
    cluster
        .restore_with_pgbackrest(repo, label, target, &[])
        .await
        .unwrap_or_else(|e| panic!("restore repo{repo} {label}: {e:#}"));
    let copy = cluster
        .start_restored(target, &[], true)
        .await
        .unwrap_or_else(|e| panic!("start restored repo{repo} {label}: {e:#}"));
    let got = copy.psql(&cluster.summary_sql()).expect("summary");
    assert_eq!(got, expected, "repo{repo} {label}:\n{}", copy.log());
    copy.stop().await;
}

/// `find <repo> -type f` with sizes, relative, for the report.
fn list(repo: &Path) -> String {
    let digest = tree_digest(repo, &|t| t.to_owned()).expect("digest repo");
    digest
        .iter()
        .map(|(p, n)| match &n.kind {
            NodeKind::File { size, .. } => format!("{} {size}", p.display()),
            NodeKind::Symlink(t) => format!("{} -> {}", p.display(), t.display()),
            NodeKind::Dir => format!("{}/", p.display()),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// (a) pgBackRest 2.45, PostgreSQL 15: repo1 gz whole files, repo2 zst bundles (64 KiB limit) encrypted,
/// a tablespace; full, diff, incr on both; the incr of each restored and checked.
#[tokio::test]
async fn v245_pg15_whole_files_and_encrypted_bundles() {
    let t0 = Instant::now();
    let root = test_root("pgbr-245-");
    let repos = vec![
        RepoOptions::posix().compress(Compress::Gz),
        RepoOptions::posix()
            .compress(Compress::Zst)
            .bundled()
            .bundle_limit("64KiB")
            .encrypted("pgro-test-passphrase"),
    ];
    let options = ClusterOptions::new(15, PgbrVersion::V245, repos).with_tablespace();
    let Some(cluster) = pgro_testkit::skip_unless_ci(
        SourceCluster::start(&Components::load(), &root.path().join("src"), options).await,
        "v245_pg15_whole_files_and_encrypted_bundles",
    ) else {
        return;
    };
    eprintln!("started in {:.1}s", t0.elapsed().as_secs_f64());

    let mut incr = Vec::new();
    for repo in [1, 2] {
        cluster.backup(repo, BackupType::Full).await.expect("full");
    }
    cluster.change(1).expect("change");
    for repo in [1, 2] {
        cluster.backup(repo, BackupType::Diff).await.expect("diff");
    }
    cluster.change(2).expect("change");
    for repo in [1, 2] {
        incr.push(cluster.backup(repo, BackupType::Incr).await.expect("incr"));
    }
    let expected = cluster.summary().expect("summary");
    cluster.change(3).expect("change after the last backup");
    eprintln!("backups done at {:.1}s", t0.elapsed().as_secs_f64());
    for repo in [1, 2] {
        let labels = cluster.labels(repo).await.expect("labels");
        assert_eq!(labels.len(), 3, "{labels:?}");
        assert!(labels[0].ends_with('F') && labels[1].ends_with('D') && labels[2].ends_with('I'));
    }
    let repo1 = cluster.repo_path(1);
    assert!(
        repo1.join("archive/db/archive.info").is_file(),
        "{}",
        list(&repo1)
    );
    let full = &cluster.labels(2).await.expect("labels")[0];
    assert!(
        cluster
            .repo_path(2)
            .join(format!("backup/db/{full}/bundle/1"))
            .is_file(),
        "repo2 has bundles:\n{}",
        list(&cluster.repo_path(2))
    );
    println!("repo1:\n{}\n", list(&repo1));
    println!("repo2:\n{}\n", list(&cluster.repo_path(2)));

    for (i, label) in incr.iter().enumerate() {
        let repo = i + 1;
        let target = root.path().join(format!("restore{repo}"));
        restore_and_check(&cluster, repo, label, &target, &expected).await;
    }
    let t1 = Instant::now();
    cluster.stop().await;
    eprintln!(
        "stopped in {:.1}s, total {:.1}s",
        t1.elapsed().as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}

/// (b) The current pgBackRest, PostgreSQL 17: repo1 zst bundles + block incremental, repo2 lz4 bundles +
/// block incremental + encryption, `pg_wal` a symlink, a tablespace; full, incr, incr, diff on both; the
/// last incr and the diff restored and checked; two restores of the same backup digest equal.
#[tokio::test]
async fn current_pg17_block_incremental() {
    let t0 = Instant::now();
    let root = test_root("pgbr-cur-");
    let repos = vec![
        RepoOptions::posix()
            .compress(Compress::Zst)
            .block_incremental()
            .bundle_limit("64KiB"),
        RepoOptions::posix()
            .compress(Compress::Lz4)
            .block_incremental()
            .encrypted("pgro-test-passphrase-bi"),
    ];
    let options = ClusterOptions::new(17, PgbrVersion::Current, repos)
        .with_tablespace()
        .with_pg_wal_link();
    let Some(cluster) = pgro_testkit::skip_unless_ci(
        SourceCluster::start(&Components::load(), &root.path().join("src"), options).await,
        "current_pg17_block_incremental",
    ) else {
        return;
    };
    eprintln!("started in {:.1}s", t0.elapsed().as_secs_f64());

    let mut expected = Vec::new();
    for (round, kind) in [
        BackupType::Full,
        BackupType::Incr,
        BackupType::Incr,
        BackupType::Diff,
    ]
    .into_iter()
    .enumerate()
    {
        if round > 0 {
            cluster
                .change(u32::try_from(round).expect("round"))
                .expect("change");
        }
        let mut labels = Vec::new();
        for repo in [1, 2] {
            labels.push(cluster.backup(repo, kind).await.expect("backup"));
        }
        expected.push((labels, cluster.summary().expect("summary")));
    }
    cluster.change(9).expect("change after the last backup");
    eprintln!("backups done at {:.1}s", t0.elapsed().as_secs_f64());

    for repo in [1, 2] {
        let path = cluster.repo_path(repo);
        let listing = list(&path);
        assert!(
            listing.contains(".pgbi"),
            "repo{repo} has block-incremental files:\n{listing}"
        );
        println!("repo{repo}:\n{listing}\n");
    }

    // The second incr (round 2) and the diff (round 3) of each repository.
    for (round, (labels, summary)) in expected.iter().enumerate().skip(2) {
        for (i, label) in labels.iter().enumerate() {
            let repo = i + 1;
            let target = root.path().join(format!("restore{repo}-{round}"));
            restore_and_check(&cluster, repo, label, &target, summary).await;
        }
    }

    // Two pgBackRest restores of one backup digest equal once tablespace targets are made relative
    // (and apart from the recovery settings each restore writes).
    let label = &expected[3].0[1];
    let mut digests = Vec::new();
    for name in ["twin-a", "twin-b"] {
        let target = root.path().join(name);
        cluster
            .restore_with_pgbackrest(2, label, &target, &[])
            .await
            .expect("restore twin");
        let ts_root: PathBuf = format!("{}-tblspc", target.display()).into();
        let ts_root2 = ts_root.clone();
        let mut digest = tree_digest(&target, &move |t| {
            t.strip_prefix(&ts_root2).unwrap_or(t).to_owned()
        })
        .expect("digest");
        assert!(
            digest.contains_key(Path::new("global/pg_control")),
            "digest has pg_control"
        );
        assert!(
            digest
                .keys()
                .any(|p| p.starts_with("pg_tblspc") && p.components().count() > 3),
            "digest follows the tablespace link"
        );
        // Written by the restore itself: the restore_command names the target, the signal file's mtime
        // is the restore's.
        digest.remove(Path::new("postgresql.auto.conf"));
        digest.remove(Path::new("recovery.signal"));
        digests.push(digest);
    }
    let diff = tree_diff(
        &digests[0],
        &digests[1],
        DiffOptions {
            mode: true,
            mtime: true,
            owner: true,
        },
    );
    assert!(diff.is_empty(), "{diff:#?}");
    let t1 = Instant::now();
    cluster.stop().await;
    eprintln!(
        "stopped in {:.1}s, total {:.1}s",
        t1.elapsed().as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}

/// (c) The current pgBackRest, PostgreSQL 18: repo1 in S3 (MinIO over plain HTTP) with bundles, block
/// incremental and encryption, repo2 posix uncompressed, repo3 posix bz2 bundles; full and incr on each;
/// the incr of each restored and checked.
#[tokio::test]
async fn current_pg18_s3_and_other_compressions() {
    let t0 = Instant::now();
    let root = test_root("pgbr-s3-");
    let components = Components::load();
    let Some(minio) = pgro_testkit::skip_unless_ci(
        Minio::start(&components, &root.path().join("minio"), &["pgbr"]).await,
        "current_pg18_s3_and_other_compressions",
    ) else {
        return;
    };
    let repos = vec![
        RepoOptions::posix()
            .compress(Compress::Zst)
            .block_incremental()
            .encrypted("pgro-s3-passphrase")
            .storage(Storage::minio(&minio, "pgbr")),
        RepoOptions::posix().compress(Compress::None),
        RepoOptions::posix()
            .compress(Compress::Bz2)
            .bundled()
            .bundle_size("1MiB"),
    ];
    let options = ClusterOptions::new(18, PgbrVersion::Current, repos);
    let Some(cluster) = pgro_testkit::skip_unless_ci(
        SourceCluster::start(&components, &root.path().join("src"), options).await,
        "current_pg18_s3_and_other_compressions",
    ) else {
        return;
    };
    eprintln!("started in {:.1}s", t0.elapsed().as_secs_f64());
    for repo in 1..=3 {
        cluster.backup(repo, BackupType::Full).await.expect("full");
    }
    cluster.change(1).expect("change");
    let mut incr = Vec::new();
    for repo in 1..=3 {
        incr.push(cluster.backup(repo, BackupType::Incr).await.expect("incr"));
    }
    let expected = cluster.summary().expect("summary");
    cluster.change(2).expect("change after the last backup");
    eprintln!("backups done at {:.1}s", t0.elapsed().as_secs_f64());
    assert_eq!(cluster.repo_path(1), Path::new("/pgbackrest/repo1"));
    let listing = list(&cluster.repo_path(2));
    assert!(
        listing.contains("pg_data/PG_VERSION 3\n"),
        "repo2 stores files uncompressed:\n{listing}"
    );
    let segment = cluster.switch_wal().await.expect("switch WAL");
    let archived = cluster
        .repo_path(2)
        .join("archive/db/18-1")
        .join(&segment[..16]);
    assert!(
        std::fs::read_dir(&archived).expect("archive dir").any(|e| e
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .starts_with(&format!("{segment}-"))),
        "{segment} in {}",
        archived.display()
    );
    let listing = list(&cluster.repo_path(3));
    assert!(
        listing.contains("/bundle/2 "),
        "repo3 has several bundles:\n{listing}"
    );
    for (i, label) in incr.iter().enumerate() {
        let repo = i + 1;
        let target = root.path().join(format!("restore{repo}"));
        restore_and_check(&cluster, repo, label, &target, &expected).await;
    }
    let t1 = Instant::now();
    cluster.stop().await;
    eprintln!(
        "stopped in {:.1}s, total {:.1}s",
        t1.elapsed().as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}
