//! `pgro instance` on a restore of a CloudNativePG data directory from a barman-cloud store (PostgreSQL
//! 16, a tablespace), written by the real barman-cloud into MinIO:
//!
//! * the source's PGDATA is configured as CNPG configures it (`custom.conf` with `/controller/…` paths,
//!   CNPG's archive command, certificate paths, logging collector, `max_worker_processes = 32`); the copy starts anyway:
//!   those settings are replaced, archiving is off, the hot-standby settings are at least the source's;
//! * `pgro restore --source` from a Job directory deleted afterwards; the instance replays the archive
//!   through its own `pgro wal-fetch`, promotes, and only then is ready, serving the commits made after the
//!   backup read-only, with `data_time` the last replayed commit;
//! * with the backup's first WAL segment deleted from the store, or the store unreachable, the instance
//!   fails fast (exit 6) with a clear message and never starts PostgreSQL: never an older copy served.
//!
//! Outside CI a missing component skips; under `CI=true` it fails.

#![allow(clippy::unwrap_used)]

mod barman_support;
mod instance_support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use barman_support::{Cfg, pgro_json, s3};
use instance_support::instance::{Env, Instance, env_for, first_value, start_instance_with};
use instance_support::{free_port, http_status};
use object_store::ObjectStore as _;
use pgro_testkit::barman::{BarmanOptions, BarmanWorld};

const EXIT_ARCHIVE: i32 = 6;

fn args(cfg: &Cfg) -> Vec<&OsStr> {
    vec![
        OsStr::new("--source"),
        cfg.source.as_os_str(),
        OsStr::new("--source-secret-dir"),
        cfg.secrets.as_os_str(),
        OsStr::new("--recovery-target"),
        OsStr::new("latest"),
    ]
}

/// `pgro restore --source` from a Job directory that is deleted afterwards; the PGDATA and the result.
fn restore(world: &BarmanWorld, yaml: &str, target: &Path) -> (PathBuf, serde_json::Value) {
    let job = world.root.path().join("job");
    let cfg = Cfg::at(&job, yaml);
    let res = pgro_json(&cfg.cmd(&[
        "restore",
        "--backup",
        "latest",
        "--target",
        &target.to_string_lossy(),
    ]));
    std::fs::remove_dir_all(&job).unwrap();
    (PathBuf::from(res["pgdata"].as_str().unwrap()), res)
}

/// Starts an instance that must fail before serving; returns its log.
fn fails_fast(e: &Env, target: &Path, pgdata: &Path, label: &str, pod: &Cfg) -> String {
    let probe = free_port();
    let mut failed: Instance = start_instance_with(
        e,
        target,
        pgdata,
        label,
        true,
        1,
        Some((free_port(), probe)),
        &pod.bin,
        &args(pod),
    );
    let started = Instant::now();
    let status = loop {
        assert_ne!(http_status(probe, "/readyz"), 200, "served without its WAL");
        if let Some(s) = failed.proc.exited() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no fast failure:\n{}",
            failed.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = failed.log();
    assert_eq!(status.code(), Some(EXIT_ARCHIVE), "{log}");
    assert!(
        !log.contains("postgres started"),
        "PostgreSQL was started:\n{log}"
    );
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cnpg_data_directory_replays_from_barman_cloud_then_serves_read_only() {
    let Some(e) = env_for(16) else { return };
    let options = BarmanOptions {
        major: 16,
        wal_compression: Some("--gzip".into()),
        tablespace: true,
        cnpg_conf: true,
        waldir: false,
    };
    let test = "a_cnpg_data_directory_replays_from_barman_cloud_then_serves_read_only";
    let Some(world) = BarmanWorld::start(test, ("cnpg", "cluster-example"), &options).await else {
        return;
    };
    let cluster = &world.cluster;
    cluster
        .psql("CREATE TABLE ledger (n int, at timestamptz DEFAULT clock_timestamp()); INSERT INTO ledger (n) SELECT generate_series(1, 100)")
        .unwrap();
    cluster.backup("backup-1", &["--snappy"]).await.unwrap();
    cluster
        .psql("INSERT INTO ledger (n) SELECT generate_series(101, 200); CREATE TABLE last_commit AS SELECT 42 AS answer, clock_timestamp() AS at")
        .unwrap();
    let last_at = cluster.psql("SELECT at FROM last_commit").unwrap();
    cluster.switch_wal().await.unwrap();
    let yaml = Cfg::source_yaml(&world, "cnpg", "cluster-example");
    let root = world.root.path();

    let target = root.join("restores/latest");
    std::fs::create_dir_all(&target).unwrap();
    let (pgdata, res) = restore(&world, &yaml, &target);
    let label = res["snapshot"].as_str().unwrap().to_owned();
    assert!(
        std::fs::read_to_string(pgdata.join("custom.conf"))
            .unwrap()
            .contains("/controller/manager wal-archive"),
        "the backup carries CNPG's configuration"
    );
    let pod = Cfg::at(&root.join("pod"), &yaml);
    let mut inst = start_instance_with(
        &e,
        &target,
        &pgdata,
        &label,
        true,
        1,
        None,
        &pod.bin,
        &args(&pod),
    );
    inst.wait_ready();
    let log = inst.log();
    let pos = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("`{needle}` not logged:\n{log}"))
    };
    assert!(
        pos("the archive holds the backup's first WAL segment") < pos("restored log file")
            && pos("restored log file") < pos("archive recovery complete")
            && pos("archive recovery complete") < pos("instance ready"),
        "checked, replayed from the archive, promoted, then ready:\n{log}"
    );
    let managed = std::fs::read_to_string(pgdata.join("postgresql.conf")).unwrap();
    assert!(!managed.contains("/controller"), "{managed}");
    let a = inst.analytics("postgres").await;
    let one = |sql: &'static str| first_value(&a, sql);
    assert_eq!(one("SELECT count(*) FROM ledger").await, "200");
    assert_eq!(one("SELECT answer FROM last_commit").await, "42");
    assert_eq!(
        one("SELECT count(*) FROM ts_t").await,
        "5000",
        "the tablespace's table"
    );
    assert_eq!(one("SHOW archive_mode").await, "off");
    assert_eq!(
        one("SHOW max_worker_processes").await,
        "32",
        "at least the source's"
    );
    for write in [
        "INSERT INTO ledger (n) VALUES (-1)",
        "CREATE TABLE public.x (i int)",
    ] {
        let r = a.batch_execute(write).await;
        let _ = a.batch_execute("ROLLBACK").await;
        assert!(r.is_err(), "the analytics role ran `{write}`");
    }
    let info = a
        .query_one(
            "SELECT data_time::text, (data_time >= $1::text::timestamptz)::text, wal_replayed::text \
             FROM _pgro.restore_info",
            &[&last_at],
        )
        .await
        .unwrap();
    assert_eq!(
        info.get::<_, String>(1),
        "true",
        "data_time {} is the last replayed commit (≥ {last_at})",
        info.get::<_, String>(0)
    );
    let wal: serde_json::Value = serde_json::from_str(&info.get::<_, String>(2)).unwrap();
    assert!(wal["segments"].as_u64().unwrap() >= 1, "{wal}");
    drop(a);
    assert!(inst.proc.stop().unwrap().success(), "{}", inst.log());

    // The backup's first WAL segment deleted from the store: fail fast, before PostgreSQL starts.
    let label_text = std::fs::read_to_string(pgdata.join("backup_label")).unwrap_or_default();
    let target2 = root.join("restores/gap");
    std::fs::create_dir_all(&target2).unwrap();
    let (pgdata2, _) = restore(&world, &yaml, &target2);
    let first = std::fs::read_to_string(pgdata2.join("backup_label"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("START WAL LOCATION: "))
        .and_then(|l| l.split_once("(file "))
        .map(|(_, f)| f.trim_end_matches(')').to_owned())
        .unwrap();
    assert!(label_text.is_empty() || label_text.contains(&first));
    let s3 = s3(&world);
    let key = format!("cnpg/cluster-example/wals/{}/{first}.gz", &first[..16]);
    s3.delete(&object_store::path::Path::from(key.as_str()))
        .await
        .unwrap();
    let log = fails_fast(&e, &target2, &pgdata2, &label, &pod);
    assert!(
        log.contains(&format!(
            "the archive lacks WAL segment {first} that backup {label} needs"
        )),
        "{log}"
    );

    // The store unreachable: also fatal before PostgreSQL starts (never "not found").
    let target3 = root.join("restores/outage");
    std::fs::create_dir_all(&target3).unwrap();
    let (pgdata3, _) = restore(&world, &yaml, &target3);
    let BarmanWorld {
        cluster,
        minio,
        root: _root,
    } = world;
    cluster.stop().await;
    drop(minio);
    let log = fails_fast(&e, &target3, &pgdata3, &label, &pod);
    assert!(log.contains("looking up WAL segment"), "{log}");
}
