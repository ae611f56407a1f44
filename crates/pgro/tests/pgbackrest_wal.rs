//! WAL to the latest commit from a PGO-shaped pgBackRest repository in MinIO (gz, stanza `db`,
//! `/pgbackrest/repo1`, the Secret as PGO's `s3.conf`): a backup taken under pgbench load, more commits
//! after it, restored by `pgro restore --source` and replayed by PostgreSQL through `pgro wal-fetch` to the
//! last archived commit. Then the fault: MinIO stopped before replay — recovery must not end early and
//! promote an older copy; PostgreSQL stops instead. Outside CI a missing binary skips; under `CI=true` it
//! fails.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use pgro_testkit::Components;
use pgro_testkit::fixtures::{MINIO_SECRET, MINIO_USER, Minio};
use pgro_testkit::pgbackrest::{
    BackupType, ClusterOptions, Compress, PgbrVersion, RepoOptions, SourceCluster, Storage,
};

const BUCKET: &str = "pgbr";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minio_repository_replays_to_the_last_commit_and_an_outage_never_promotes_early() {
    let root = pgro_testkit::fixtures::test_root("pgbr-wal-");
    let components = Components::load();
    let Some(minio) = pgro_testkit::skip_unless_ci(
        Minio::start(&components, &root.path().join("minio"), &[BUCKET]).await,
        "minio_repository_replays_to_the_last_commit_and_an_outage_never_promotes_early",
    ) else {
        return;
    };
    let options = ClusterOptions::new(
        16,
        PgbrVersion::Current,
        vec![
            RepoOptions::posix()
                .compress(Compress::Gz)
                .storage(Storage::minio(&minio, BUCKET)),
        ],
    );
    let Some(cluster) = pgro_testkit::skip_unless_ci(
        SourceCluster::start(&components, &root.path().join("src"), options).await,
        "minio_repository_replays_to_the_last_commit_and_an_outage_never_promotes_early",
    ) else {
        return;
    };
    cluster
        .pgbench(&["-i", "-s", "2", "-q"])
        .expect("pgbench -i");

    // The backup runs under pgbench load (4 clients, TPC-B-like transactions until the backup is done).
    let stop = AtomicBool::new(false);
    let label = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut rounds = 0;
            while !stop.load(Ordering::Relaxed) {
                cluster
                    .pgbench(&["-c", "4", "-T", "2", "-n"])
                    .expect("pgbench");
                rounds += 1;
            }
            rounds
        });
        let rt = tokio::runtime::Handle::current();
        let label =
            tokio::task::block_in_place(|| rt.block_on(cluster.backup(1, BackupType::Full)))
                .expect("full");
        stop.store(true, Ordering::Relaxed);
        assert!(
            writer.join().expect("writer") > 0,
            "pgbench ran during the backup"
        );
        label
    });
    // More commits after the backup: the last one is what `latest` must serve.
    cluster
        .pgbench(&["-c", "2", "-t", "200", "-n"])
        .expect("pgbench after the backup");
    cluster
        .psql("CREATE TABLE last_commit AS SELECT 42 AS answer")
        .expect("last");
    let balances = "SELECT count(*), sum(abalance) FROM pgbench_accounts";
    let expected = cluster.psql(balances).expect("balances");
    cluster.switch_wal().await.expect("switch");

    let cfg = root.path().join("cfg");
    let secret = cfg.join("secret");
    std::fs::create_dir_all(&secret).expect("mkdir");
    let source = cfg.join("source.yaml");
    std::fs::write(
        &source,
        format!(
            "pgbackrest:\n  stanza: db\n  repoPath: /pgbackrest/repo1\n  s3:\n    bucket: {BUCKET}\n    \
             endpoint: http://127.0.0.1\n    port: {}\n    region: us-east-1\n    uriStyle: path\n  secretRef: {{name: pgo-s3}}\n",
            minio.port
        ),
    )
    .expect("source.yaml");
    std::fs::write(
        secret.join("s3.conf"),
        format!("[global]\nrepo1-s3-key={MINIO_USER}\nrepo1-s3-key-secret={MINIO_SECRET}\n"),
    )
    .expect("s3.conf");
    let bin = cfg.join("pgro");
    std::fs::copy(env!("CARGO_BIN_EXE_pgro"), &bin).expect("copy pgro");
    for d in [&cfg, &secret] {
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
    }
    std::fs::set_permissions(
        secret.join("s3.conf"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .expect("chmod");
    let (uid, gid) = components.postgres_user();
    let restore = |name: &str| {
        let target = root.path().join(name);
        let out = Command::new(&bin)
            .args(["restore", "--backup", "latest", "--source"])
            .arg(&source)
            .arg("--secret-dir")
            .arg(&secret)
            .arg("--target")
            .arg(&target)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(result["snapshot"], label.as_str());
        pgro_testkit::fixtures::chown_tree(&target, uid, gid);
        target.join("data")
    };

    let data = restore("latest");
    let copy = cluster
        .start_restored(&data, &[], true)
        .await
        .unwrap_or_else(|e| panic!("replay from MinIO through pgro wal-fetch: {e:#}"));
    assert_eq!(copy.psql(balances).expect("balances"), expected);
    assert_eq!(
        copy.psql("SELECT answer FROM last_commit").expect("last"),
        "42"
    );
    copy.stop().await;

    // The fault: the archive becomes unreachable before replay. Recovery must not end and promote.
    let data = restore("outage");
    drop(minio);
    let fast_fail = format!(
        "restore_command={} wal-fetch --storage-attempts 2 --source {} --secret-dir {} %f \"%p\"",
        bin.display(),
        source.display(),
        secret.display()
    );
    let started = cluster.start_restored(&data, &[&fast_fail], true).await;
    let Err(e) = started else {
        panic!("a copy was promoted although its WAL archive was unreachable");
    };
    let log = format!("{e:#}");
    eprintln!("expected failure, PostgreSQL said:\n{log}");
    assert!(
        log.contains("restore_command") || log.contains("wal-fetch"),
        "{log}"
    );
    assert!(
        !log.contains("database system is ready to accept connections"),
        "{log}"
    );
}
