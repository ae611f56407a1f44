//! Conformance of the barman-cloud source at the command line, against stores written by the real
//! barman-cloud 3.19.1 with CNPG's command lines: for every data compression barman offers (none, gzip,
//! bzip2, lz4, snappy) and WAL compression (none, gzip in `instance_barman`, bzip2, xz, zstd, lz4; snappy
//! in `crates/barman`'s catalog test), split tars, a tablespace, a linked `pg_wal` and PostgreSQL 15–18,
//! `pgro restore --source` restores the newest DONE backup, the copy replays the archive through
//! `pgro wal-fetch` (its own recovery settings, WAL in every compression) and promotes — and its
//! `pg_dumpall` equals the one of the copy made by `barman-cloud-restore` + `barman-cloud-wal-restore`,
//! and of the source. Outside CI a missing component skips; under `CI=true` it fails.

mod barman_support;

use barman_support::{Cfg, pgro_json};
use pgro_testkit::barman::{BarmanOptions, BarmanWorld, dump_difference};

struct Case {
    major: u32,
    data: &'static [&'static str],
    wal: Option<&'static str>,
    tablespace: bool,
    /// `pg_wal` a link to another directory at the source.
    waldir: bool,
}

async fn conformance(test: &str, case: Case) {
    let options = BarmanOptions {
        major: case.major,
        wal_compression: case.wal.map(str::to_owned),
        tablespace: case.tablespace,
        cnpg_conf: false,
        waldir: case.waldir,
    };
    let Some(world) = BarmanWorld::start(test, ("cnpg", "cluster-example"), &options).await else {
        return;
    };
    let (cluster, root) = (&world.cluster, world.root.path());
    cluster
        .psql("CREATE TABLE big AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 40000) g")
        .expect("big table");
    cluster.backup("backup-1", case.data).await.expect("backup");
    // Commits after the backup, archived: `target: latest` must bring them.
    cluster
        .psql("INSERT INTO t SELECT g, 'after' FROM generate_series(1001, 1200) g; DELETE FROM big WHERE id % 7 = 0")
        .expect("after the backup");
    cluster.switch_wal().await.expect("switch");
    let cfg = Cfg::new(&world);

    let backups = pgro_json(&cfg.cmd(&["backups", "list", "--json"]));
    let id = backups[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(backups[0]["kind"], "DONE", "{backups}");
    assert_eq!(backups[0]["labels"]["name"], "backup-1", "{backups}");

    let target = root.join("ours");
    let result = pgro_json(&cfg.cmd(&[
        "restore",
        "--backup",
        "latest",
        "--recovery-target",
        "latest",
        "--target",
        &target.to_string_lossy(),
    ]));
    assert_eq!(result["snapshot"], id.as_str(), "{result}");
    assert_eq!(
        result["postgresVersion"],
        case.major.to_string(),
        "{result}"
    );
    if case.tablespace {
        assert_eq!(result["tablespaces"][0]["name"], "ts1", "{result}");
    }
    let pgdata = target.join("snapshot/pgdata");
    cfg.own(&target);
    let ours = cluster
        .start_restored(&pgdata)
        .await
        .expect("pgro's copy replays and promotes");
    assert_eq!(
        ours.psql("SELECT count(*) FROM t WHERE v = 'after'")
            .expect("query"),
        "200",
        "{}",
        ours.log()
    );
    let theirs = cluster
        .restore_with_barman(&id, &root.join("theirs"), case.tablespace)
        .await
        .expect("barman-cloud-restore");
    let (a, b, c) = (
        ours.dumpall().await.expect("dump ours"),
        theirs.dumpall().await.expect("dump theirs"),
        cluster.dumpall().await.expect("dump source"),
    );
    assert!(a.contains("\tafter\n"), "the dump holds the data");
    if let Some(d) = dump_difference(&a, &b) {
        panic!("pgro's copy and barman-cloud's copy differ: {d}");
    }
    if let Some(d) = dump_difference(&a, &c) {
        panic!("pgro's copy and the source differ: {d}");
    }
    // The copy never archives: nothing of timeline 2 appears next to the source's WAL.
    assert_eq!(ours.psql("SHOW archive_mode").expect("archive_mode"), "off");
    ours.stop().await;
    theirs.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg15_uncompressed_backup_and_wal_as_cnpg_defaults_with_pg_wal_linked() {
    conformance(
        "pg15_uncompressed_backup_and_wal_as_cnpg_defaults_with_pg_wal_linked",
        Case {
            major: 15,
            data: &[],
            wal: None,
            tablespace: false,
            waldir: true,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg16_gzip_split_backup_and_xz_wal() {
    conformance(
        "pg16_gzip_split_backup_and_xz_wal",
        Case {
            major: 16,
            data: &["--gzip", "--max-archive-size", "1MB"],
            wal: Some("--xz"),
            tablespace: false,
            waldir: false,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg17_bzip2_backup_with_a_tablespace_and_zstd_wal() {
    conformance(
        "pg17_bzip2_backup_with_a_tablespace_and_zstd_wal",
        Case {
            major: 17,
            data: &["--bzip2"],
            wal: Some("--zstd"),
            tablespace: true,
            waldir: false,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg18_lz4_split_backup_with_a_tablespace_and_lz4_wal() {
    conformance(
        "pg18_lz4_split_backup_with_a_tablespace_and_lz4_wal",
        Case {
            major: 18,
            data: &["--lz4", "--max-archive-size", "1MB"],
            wal: Some("--lz4"),
            tablespace: true,
            waldir: false,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg16_snappy_backup_and_bzip2_wal() {
    conformance(
        "pg16_snappy_backup_and_bzip2_wal",
        Case {
            major: 16,
            data: &["--snappy"],
            wal: Some("--bzip2"),
            tablespace: false,
            waldir: false,
        },
    )
    .await;
}
