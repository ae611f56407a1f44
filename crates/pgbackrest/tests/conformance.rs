//! Conformance against the real pgBackRest: repositories written by 2.45 and the current release, each
//! backup of the chain restored by this reader and by `pgbackrest restore` into separate directories; the
//! trees must be identical (paths, kinds, modes, sizes, contents, mtimes), and the reader's copy must start
//! and serve the data the source had at the backup. Outside CI a missing binary skips; under `CI=true` it
//! fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pgbackrest::{Repository, RestoreOptions};
use pgro_testkit::Components;
use pgro_testkit::fixtures::test_root;
use pgro_testkit::pgbackrest::{
    BackupType, ClusterOptions, Compress, DiffOptions, Node, PgbrVersion, RepoOptions,
    SourceCluster, tree_diff, tree_digest,
};

/// Link targets differ by design (pgBackRest: `<target>-tblspc/<name>`, pgro: `../../tablespaces/<oid>`);
/// what must agree is that the link leads to the tablespace's files, which the digest follows.
fn any_tablespace(_: &Path) -> PathBuf {
    PathBuf::from("<tablespace>")
}

/// Files that legitimately differ: pgBackRest writes recovery settings (`recovery.signal`,
/// `postgresql.auto.conf`; the reader leaves them to `pgro restore`), and
/// from 2.51 invalidates the checkpoint in `pg_control` (§6.7); both are checked elsewhere (the manifest's
/// SHA-1 of `pg_control` is verified by the reader).
fn comparable(mut d: BTreeMap<PathBuf, Node>) -> BTreeMap<PathBuf, Node> {
    d.remove(Path::new("postgresql.auto.conf"));
    d.remove(Path::new("recovery.signal"));
    d.remove(Path::new("global/pg_control"));
    d
}

struct Case<'a> {
    cluster: &'a SourceCluster,
    root: &'a Path,
    repo: usize,
    pass: Option<&'a str>,
}

impl Case<'_> {
    async fn open(&self) -> Repository {
        let store = Arc::new(blobstore::FileStore::new(self.cluster.repo_path(self.repo)));
        Repository::open(store, "db", self.pass)
            .await
            .expect("open repository")
    }

    /// Restores `label` both ways and compares; returns pgro's target (`<dir>/data`).
    async fn compare(&self, label: &str) -> PathBuf {
        let repo = self.open().await;
        let m = repo.manifest(label).await.expect("manifest");
        let ours = self.root.join(format!("pgro-{}-{label}", self.repo));
        std::fs::create_dir(&ours).expect("mkdir");
        let summary = repo
            .restore(
                &m,
                &ours.join("data"),
                &ours.join("tablespaces"),
                &RestoreOptions::default(),
            )
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "pgro restore of repo{} {label}: {}",
                    self.repo,
                    pgbackrest::error_chain(&e)
                )
            });
        assert!(ours.join("data/global/pg_control").is_file());
        assert!(
            !ours
                .join("data/global")
                .join(pgbackrest::PG_CONTROL_TMP)
                .exists()
        );
        assert!(
            !ours.join("data/tablespace_map").exists(),
            "tablespace_map is skipped"
        );
        let theirs = self.root.join(format!("pgbr-{}-{label}", self.repo));
        self.cluster
            .restore_with_pgbackrest(self.repo, label, &theirs, &[])
            .await
            .expect("pgbackrest restore");
        let a = comparable(tree_digest(&ours.join("data"), &any_tablespace).expect("digest ours"));
        let b = comparable(tree_digest(&theirs, &any_tablespace).expect("digest theirs"));
        let diff = tree_diff(
            &a,
            &b,
            DiffOptions {
                mode: true,
                mtime: true,
                owner: false,
            },
        );
        assert!(
            diff.is_empty(),
            "repo{} {label}: pgro and pgbackrest restores differ:\n{diff:#?}",
            self.repo
        );
        assert!(a.len() > 500, "a whole cluster: {} entries", a.len());
        assert_eq!(summary.tablespaces.len(), 1, "{summary:?}");
        ours.join("data")
    }

    /// Starts the reader's copy, replaying to consistency with pgBackRest's own `archive-get`, and returns
    /// the data summary.
    async fn serve(&self, data: &Path) -> String {
        std::fs::write(data.join("recovery.signal"), "").expect("recovery.signal");
        let (uid, gid) = Components::load().postgres_user();
        pgro_testkit::fixtures::chown_tree(data.parent().expect("parent"), uid, gid);
        let restore_command = format!(
            "restore_command={} --config={} --stanza=db --repo={} --pg1-path={} archive-get %f \"%p\"",
            self.cluster.bin().display(),
            self.cluster.conf_path().display(),
            self.repo,
            data.display()
        );
        let copy = self
            .cluster
            .start_restored(
                data,
                &[
                    &restore_command,
                    "recovery_target=immediate",
                    "recovery_target_action=promote",
                ],
                true,
            )
            .await
            .unwrap_or_else(|e| panic!("start the pgro copy: {e:#}"));
        let got = copy.psql(&self.cluster.summary_sql()).expect("summary");
        copy.stop().await;
        got
    }
}

async fn run(
    version: PgbrVersion,
    major: u32,
    repos: Vec<RepoOptions>,
    passes: &[Option<&str>],
    kinds: &[BackupType],
    name: &str,
) {
    let root = test_root("pgbr-conf-");
    let options = ClusterOptions::new(major, version, repos)
        .with_tablespace()
        .with_pg_wal_link();
    let Some(cluster) = pgro_testkit::skip_unless_ci(
        SourceCluster::start(&Components::load(), &root.path().join("src"), options).await,
        name,
    ) else {
        return;
    };
    let mut expected = Vec::new();
    for (round, kind) in kinds.iter().enumerate() {
        if round > 0 {
            cluster
                .change(u32::try_from(round).expect("round"))
                .expect("change");
        }
        let mut labels = Vec::new();
        for repo in 1..=passes.len() {
            labels.push(cluster.backup(repo, *kind).await.expect("backup"));
        }
        expected.push((labels, cluster.summary().expect("summary")));
    }
    cluster.change(99).expect("change after the last backup");
    for (round, (labels, summary)) in expected.iter().enumerate() {
        for (i, label) in labels.iter().enumerate() {
            let case = Case {
                cluster: &cluster,
                root: root.path(),
                repo: i + 1,
                pass: passes[i],
            };
            let data = case.compare(label).await;
            // Starting PostgreSQL costs seconds: the newest backup of each repository.
            if round == expected.len() - 1 {
                assert_eq!(&case.serve(&data).await, summary, "repo{} {label}", i + 1);
            }
        }
    }
}

/// pgBackRest 2.45, PostgreSQL 15: gz whole files (repo1); zst bundles with a 64 KiB limit, encrypted
/// (repo2); full, diff, incr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v245_whole_files_and_encrypted_bundles() {
    run(
        PgbrVersion::V245,
        15,
        vec![
            RepoOptions::posix().compress(Compress::Gz),
            RepoOptions::posix()
                .compress(Compress::Zst)
                .bundled()
                .bundle_limit("64KiB")
                .encrypted("pgro-test-passphrase"),
        ],
        &[None, Some("pgro-test-passphrase")],
        &[BackupType::Full, BackupType::Diff, BackupType::Incr],
        "v245_whole_files_and_encrypted_bundles",
    )
    .await;
}

/// The current pgBackRest, PostgreSQL 17: zst bundles + block incremental (repo1); lz4 bundles + block
/// incremental + encryption (repo2); full, incr, incr, diff (multi-reference maps, continued super blocks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_block_incremental_encrypted() {
    run(
        PgbrVersion::Current,
        17,
        vec![
            RepoOptions::posix()
                .compress(Compress::Zst)
                .block_incremental()
                .bundle_limit("64KiB"),
            RepoOptions::posix()
                .compress(Compress::Lz4)
                .block_incremental()
                .encrypted("pgro-test-passphrase-bi"),
        ],
        &[None, Some("pgro-test-passphrase-bi")],
        &[
            BackupType::Full,
            BackupType::Incr,
            BackupType::Incr,
            BackupType::Diff,
        ],
        "current_block_incremental_encrypted",
    )
    .await;
}

/// The current pgBackRest, PostgreSQL 16 and 18: bz2 whole files, and no compression in bundles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_bz2_and_uncompressed_bundles() {
    for major in [16, 18] {
        run(
            PgbrVersion::Current,
            major,
            vec![
                RepoOptions::posix().compress(Compress::Bz2),
                RepoOptions::posix().compress(Compress::None).bundled(),
            ],
            &[None, None],
            &[BackupType::Full, BackupType::Incr],
            "current_bz2_and_uncompressed_bundles",
        )
        .await;
    }
}
