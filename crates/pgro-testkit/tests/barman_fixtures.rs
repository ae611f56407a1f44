//! The barman-cloud fixture itself, with barman-cloud's own tools as the only reader: a CNPG-shaped cluster
//! archives into MinIO and is backed up by `barman-cloud-backup`; the backup is listed as DONE, restored by
//! `barman-cloud-restore` (with a tablespace) and replayed by `barman-cloud-wal-restore` past the backup to
//! the last archived commit. Outside CI a missing component skips; under `CI=true` it fails.

use pgro_testkit::barman::{BarmanOptions, BarmanWorld};

#[tokio::test]
async fn cnpg_shaped_backup_restores_and_replays_with_barman_cloud() {
    let options = BarmanOptions {
        major: 15,
        wal_compression: Some("--gzip".into()),
        tablespace: true,
        cnpg_conf: false,
        waldir: false,
    };
    let Some(world) = BarmanWorld::start(
        "cnpg_shaped_backup_restores_and_replays_with_barman_cloud",
        ("cnpg", "cluster-example"),
        &options,
    )
    .await
    else {
        return;
    };
    let (cluster, minio, root) = (&world.cluster, &world.minio, &world.root);
    cluster
        .backup("backup-20261206120000", &["--lz4"])
        .await
        .expect("barman-cloud-backup");
    // Commits after the backup, archived: the replayed copy must have them.
    cluster
        .psql("INSERT INTO t SELECT g, 'after' FROM generate_series(1001, 1100) g")
        .expect("insert after the backup");
    cluster.switch_wal().await.expect("switch and archive");

    let list = cluster.list().await.expect("backup list");
    let backups = list["backups_list"].as_array().expect("backups_list array");
    assert_eq!(backups.len(), 1, "{list}");
    assert_eq!(backups[0]["status"], "DONE", "{list}");
    let id = backups[0]["backup_id"].as_str().expect("backup_id");
    assert_eq!(backups[0]["backup_name"], "backup-20261206120000", "{list}");
    // The objects are where CNPG's layout puts them.
    let base = minio.dir.join("backups/cnpg/cluster-example");
    assert!(
        base.join("base").join(id).join("backup.info").exists(),
        "backup.info under {}",
        base.display()
    );
    assert!(
        base.join("base").join(id).join("data.tar.lz4").exists(),
        "data.tar.lz4 under base/{id}"
    );
    assert!(base.join("wals").is_dir(), "wals/ under {}", base.display());

    let copy = cluster
        .restore_with_barman(id, &root.path().join("restored"), true)
        .await
        .expect("barman-cloud-restore and replay");
    assert_eq!(
        copy.psql("SELECT count(*), count(*) FILTER (WHERE v = 'after') FROM t")
            .expect("count"),
        "1100|100"
    );
    assert_eq!(
        copy.psql("SELECT count(*) FROM ts_t")
            .expect("tablespace table"),
        "5000"
    );
    assert_eq!(
        copy.psql("SELECT timeline_id FROM pg_control_checkpoint()")
            .expect("timeline"),
        "2",
        "the copy promoted onto a new timeline"
    );
    copy.stop().await;
    world.cluster.stop().await;
}
