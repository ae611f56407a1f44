//! A base backup written by the real barman-cloud 3.19.1 (CNPG's command line, snappy, split into parts by
//! `--max-archive-size`, a tablespace), restored by the reader: the same tree as `barman-cloud-restore`
//! gives (paths, kinds, sizes, contents; the tablespace through its link), and the copy starts, replays
//! the archived WAL with `barman-cloud-wal-restore` and serves the commits made after the backup. Outside
//! CI a missing component skips; under `CI=true` it fails.

mod common;

use std::path::Path;

use barman::Catalog;
use pgro_testkit::Components;
use pgro_testkit::barman::{BarmanOptions, BarmanWorld};
use pgro_testkit::pgbackrest::{DiffOptions, tree_diff, tree_digest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_snappy_backup_with_a_tablespace_restores_like_barman_cloud_restore() {
    let options = BarmanOptions {
        major: 17,
        wal_compression: Some("--gzip".into()),
        tablespace: true,
        cnpg_conf: false,
        waldir: false,
    };
    let Some(world) = BarmanWorld::start(
        "a_split_snappy_backup_with_a_tablespace_restores_like_barman_cloud_restore",
        ("cnpg", "cluster-example"),
        &options,
    )
    .await
    else {
        return;
    };
    let (cluster, root) = (&world.cluster, &world.root);
    cluster
        .psql("CREATE TABLE big AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 60000) g")
        .expect("big table");
    cluster
        .backup("backup-split", &["--snappy", "--max-archive-size", "2MB"])
        .await
        .expect("backup");
    cluster
        .psql("INSERT INTO t SELECT g, 'after' FROM generate_series(1001, 1050) g")
        .expect("after the backup");
    cluster.switch_wal().await.expect("switch");

    let catalog = Catalog::new(common::store(&world, "cnpg/"), "cluster-example");
    let listing = catalog.backups().await.expect("list");
    let backup = listing.latest().expect("a DONE backup").clone();
    let parts = catalog.parts(&backup.id).await.expect("parts");
    assert!(
        parts.iter().filter(|p| p.tablespace.is_none()).count() > 1,
        "--max-archive-size split data.tar: {parts:?}"
    );
    assert!(
        parts
            .iter()
            .all(|p| p.compression == barman::Compression::Snappy)
    );

    let ours = root.path().join("ours");
    // Progress: stored bytes read, of the stored size of all tars; the last report is complete.
    let last = std::sync::Arc::new(std::sync::Mutex::new((0u64, 0u64)));
    let reported: barman::Progress = {
        let last = last.clone();
        std::sync::Arc::new(move |done, total| {
            let mut l = last.lock().expect("lock");
            *l = (l.0.max(done), total);
        })
    };
    let summary = catalog
        .restore(
            &backup,
            &ours.join("pgdata"),
            &ours.join("tablespaces"),
            4,
            Some(reported.clone()),
        )
        .await
        .expect("restore");
    let stored: u64 = parts.iter().map(|p| p.size).sum();
    assert_eq!(*last.lock().expect("lock"), (stored, stored));
    assert_eq!(summary.tablespaces.len(), 1);
    assert!(
        summary.files > 900 && summary.bytes > 4 << 20,
        "{summary:?}"
    );
    let oid = summary.tablespaces[0].0;
    let link = std::fs::read_link(ours.join("pgdata/pg_tblspc").join(oid.to_string()))
        .expect("tablespace link");
    assert!(link.is_relative(), "{}", link.display());

    // barman-cloud-restore of the same backup, nothing started: the same files, byte for byte.
    let theirs = root.path().join("theirs");
    let theirs_ts = cluster
        .barman_cloud_restore(&backup.id, &theirs, true)
        .await
        .expect("barman-cloud-restore");
    let same = |a: &Path, b: &Path| {
        let follow = |p: &Path| p.to_owned();
        let x = tree_digest(a, &follow).expect("ours");
        let y = tree_digest(b, &follow).expect("theirs");
        let diffs = tree_diff(&x, &y, DiffOptions::default());
        assert!(
            diffs.is_empty() && !x.is_empty(),
            "{} vs {}: {diffs:?}",
            a.display(),
            b.display()
        );
    };
    for sub in ["base", "global", "pg_xact", "pg_multixact"] {
        same(&ours.join("pgdata").join(sub), &theirs.join(sub));
    }
    same(&summary.tablespaces[0].1, &theirs_ts);
    for f in ["PG_VERSION", "backup_label", "postgresql.auto.conf"] {
        assert_eq!(
            std::fs::read(ours.join("pgdata").join(f)).expect("ours"),
            std::fs::read(theirs.join(f)).expect("theirs"),
            "{f}"
        );
    }

    let (uid, gid) = Components::load().postgres_user();
    pgro_testkit::fixtures::chown_tree(&ours, uid, gid);
    let copy = cluster
        .start_copy(&ours.join("pgdata"))
        .await
        .expect("our copy starts and replays");
    assert_eq!(
        copy.psql("SELECT count(*), count(*) FILTER (WHERE v = 'after') FROM t")
            .expect("t"),
        "1050|50"
    );
    assert_eq!(
        copy.psql("SELECT count(*) FROM ts_t").expect("ts_t"),
        "5000"
    );
    assert_eq!(copy.psql("SELECT count(*) FROM big").expect("big"), "60000");
    copy.stop().await;
    world.cluster.stop().await;
}
