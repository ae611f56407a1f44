//! The catalog of a store written by the real barman-cloud 3.19.1 (CNPG's command lines, MinIO): a DONE
//! backup with its name, WAL range and tablespace, read through blobstore's S3 client; a FAILED one (an
//! unreadable file in PGDATA) listed but never the latest. Outside CI a missing component skips; under
//! `CI=true` it fails.

mod common;

use barman::{BackupStatus, Catalog};
use pgro_testkit::barman::{BarmanOptions, BarmanWorld};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_store_lists_done_and_failed_backups() {
    let options = BarmanOptions {
        major: 15,
        wal_compression: None,
        tablespace: true,
        cnpg_conf: false,
        waldir: false,
    };
    let Some(world) = BarmanWorld::start(
        "a_real_store_lists_done_and_failed_backups",
        ("cnpg", "cluster-example"),
        &options,
    )
    .await
    else {
        return;
    };
    let cluster = &world.cluster;
    cluster
        .backup("backup-good", &["--gzip"])
        .await
        .expect("backup");
    // barman-cloud ids are per second: the failing backup must not reuse the good one's id.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    cluster
        .psql("CREATE TABLE unreadable_marker ()")
        .expect("marker");
    let data = world.root.path().join("src/pgdata");
    std::fs::write(data.join("zz_unreadable"), b"x").expect("unreadable file");
    std::fs::set_permissions(
        data.join("zz_unreadable"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .expect("chmod 000");
    assert!(
        cluster.backup("backup-bad", &[]).await.is_err(),
        "a backup of an unreadable file fails"
    );

    let store = common::store(&world, "cnpg/");
    let listing = Catalog::new(store, "cluster-example")
        .backups()
        .await
        .expect("list");
    assert!(listing.unreadable.is_empty(), "{:?}", listing.unreadable);
    assert_eq!(listing.backups.len(), 2, "{listing:?}");
    let (good, bad) = (&listing.backups[0], &listing.backups[1]);
    assert_eq!(good.info.status, BackupStatus::Done);
    assert_eq!(good.info.name.as_deref(), Some("backup-good"));
    assert_eq!(good.info.major(), Some(15));
    assert_eq!(good.info.tablespaces.len(), 1);
    assert_eq!(good.info.tablespaces[0].name, "ts1");
    assert!(good.info.restorable());
    assert_eq!(bad.info.status, BackupStatus::Failed);
    assert!(
        bad.info
            .error
            .as_deref()
            .is_some_and(|e| e.contains("zz_unreadable")),
        "{:?}",
        bad.info.error
    );
    assert_eq!(
        listing.latest().map(|b| b.id.as_str()),
        Some(good.id.as_str())
    );
    world.cluster.stop().await;
}

/// Every segment the real `barman-cloud-wal-archive --snappy` wrote, fetched by the reader and by
/// `barman-cloud-wal-restore`: the same bytes; the next segment is "not archived".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_snappy_wal_matches_barman_cloud_wal_restore() {
    let options = BarmanOptions {
        major: 16,
        wal_compression: Some("--snappy".into()),
        tablespace: false,
        cnpg_conf: false,
        waldir: false,
    };
    let Some(world) = BarmanWorld::start(
        "real_snappy_wal_matches_barman_cloud_wal_restore",
        ("", "cluster-wal"),
        &options,
    )
    .await
    else {
        return;
    };
    let cluster = &world.cluster;
    let mut segments = Vec::new();
    for round in 0..3 {
        cluster
            .psql(&format!(
                "INSERT INTO t SELECT g, 'r{round}' FROM generate_series(2000 + {round} * 100, 2099 + {round} * 100) g"
            ))
            .expect("insert");
        segments.push(cluster.switch_wal().await.expect("switch"));
    }
    let catalog = Catalog::new(common::store(&world, ""), "cluster-wal");
    let out = world.root.path().join("out");
    cluster.own_dir(&out).expect("out dir");
    for seg in &segments {
        let stored = catalog
            .find_wal(seg)
            .await
            .expect("find")
            .unwrap_or_else(|| panic!("{seg} archived"));
        assert_eq!(
            stored.compression,
            barman::Compression::Snappy,
            "{stored:?}"
        );
        let ours = catalog.read_wal(&stored).await.expect("read");
        let reference = out.join(seg);
        cluster
            .wal_restore(seg, &reference)
            .await
            .expect("wal-restore");
        let theirs = std::fs::read(&reference).expect("reference");
        assert_eq!(ours.len(), 16 << 20, "{seg}");
        assert!(
            ours == theirs,
            "{seg}: the reader's bytes differ from barman-cloud-wal-restore's"
        );
    }
    let last = segments.last().expect("segments");
    let next = format!(
        "{}{:08X}",
        &last[..16],
        u32::from_str_radix(&last[16..], 16).expect("hex") + 1
    );
    assert_eq!(catalog.find_wal(&next).await.expect("find next"), None);
    world.cluster.stop().await;
}
