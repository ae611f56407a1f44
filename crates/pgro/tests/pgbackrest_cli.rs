//! `pgro backups list` and `pgro wal-fetch` against a repository written by the real pgBackRest: a copy
//! restored by `pgbackrest restore` replays the archive through `pgro wal-fetch` as its `restore_command`
//! up to the source's last archived commit; exit codes 1 (not found) and 126 (anything else). Outside CI
//! a missing binary skips; under `CI=true` it fails.

use std::path::Path;
use std::process::Command;

use pgro_testkit::Components;
use pgro_testkit::pgbackrest::{
    BackupType, ClusterOptions, Compress, PgbrVersion, RepoOptions, SourceCluster,
};

fn pgro() -> &'static str {
    env!("CARGO_BIN_EXE_pgro")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_list_and_wal_fetch_replay_to_the_last_commit() {
    let root = pgro_testkit::fixtures::test_root("pgbr-cli-");
    let options = ClusterOptions::new(
        16,
        PgbrVersion::Current,
        vec![
            RepoOptions::posix()
                .compress(Compress::Lz4)
                .encrypted("cli-pass"),
        ],
    );
    let Some(cluster) = pgro_testkit::skip_unless_ci(
        SourceCluster::start(&Components::load(), &root.path().join("src"), options).await,
        "backups_list_and_wal_fetch_replay_to_the_last_commit",
    ) else {
        return;
    };
    let label = cluster.backup(1, BackupType::Full).await.expect("full");
    // Commits after the backup, archived: a copy replaying to the latest must contain them.
    cluster.change(7).expect("change");
    let latest = cluster.summary().expect("summary");
    let last = cluster.switch_wal().await.expect("switch");

    // What the restore Job mounts: the source object and the Secret's keys (PGO's s3.conf form).
    let cfg = root.path().join("cfg");
    std::fs::create_dir(&cfg).expect("mkdir");
    let source = cfg.join("source.yaml");
    std::fs::write(
        &source,
        format!(
            "pgbackrest:\n  stanza: db\n  repoPath: {}\n  volume: {{claimName: repo1}}\n",
            cluster.repo_path(1).display()
        ),
    )
    .expect("source.yaml");
    let secrets = cfg.join("secret");
    std::fs::create_dir(&secrets).expect("mkdir");
    std::fs::write(
        secrets.join("s3.conf"),
        "[global]\nrepo1-cipher-pass=cli-pass\n",
    )
    .expect("secret");
    let bin = cfg.join("pgro");
    std::fs::copy(pgro(), &bin).expect("copy pgro");
    for p in [&cfg, &secrets] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
    }
    std::fs::set_permissions(
        secrets.join("s3.conf"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .expect("chmod");

    let out = Command::new(&bin)
        .args(["backups", "list", "--json", "--source"])
        .arg(&source)
        .arg("--secret-dir")
        .arg(&secrets)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(rows[0]["id"], label.as_str(), "{rows}");
    assert_eq!(rows[0]["kind"], "full");
    assert!(rows[0]["size"].as_u64().unwrap_or(0) > 1_000_000, "{rows}");

    // Without the passphrase: a clear error, exit 4 (wrong password), no value printed.
    let out = Command::new(&bin)
        .args(["backups", "list", "--source"])
        .arg(&source)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("cipher passphrase"));

    // The data directory restored by pgBackRest, replayed by PostgreSQL through pgro wal-fetch.
    let data = root.path().join("copy");
    cluster
        .restore_with_pgbackrest(1, &label, &data, &["--type=none"])
        .await
        .expect("pgbackrest restore");
    std::fs::write(data.join("recovery.signal"), "").expect("signal");
    let (uid, gid) = Components::load().postgres_user();
    std::os::unix::fs::chown(data.join("recovery.signal"), Some(uid), Some(gid)).expect("chown");
    let restore_command = format!(
        "restore_command={} wal-fetch --source {} --secret-dir {} %f %p",
        bin.display(),
        source.display(),
        secrets.display()
    );
    let copy = cluster
        .start_restored(
            &data,
            &[&restore_command, "recovery_target_action=promote"],
            true,
        )
        .await
        .unwrap_or_else(|e| panic!("replay through pgro wal-fetch: {e:#}"));
    assert_eq!(
        copy.psql(&cluster.summary_sql()).expect("summary"),
        latest,
        "{}",
        copy.log()
    );
    copy.stop().await;

    // Not in the archive: exit 1. A segment of another cluster's archive entry cannot be confused.
    let wal = |name: &str, pgdata: &Path| {
        Command::new(&bin)
            .args(["wal-fetch", "--source"])
            .arg(&source)
            .arg("--secret-dir")
            .arg(&secrets)
            .arg("--pgdata")
            .arg(pgdata)
            .args([name, "RECOVERYXLOG"])
            .output()
            .expect("run")
    };
    let out = wal("0000000100000000000000FE", &data);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Prefetch: fetching the segment before the last archived one brings the last one into the spool
    // (1 MiB segments here: 4096 per log number) ...
    let at = u64::from_str_radix(&last[8..16], 16).expect("log") * 4096
        + u64::from_str_radix(&last[16..], 16).expect("seg");
    let before = format!(
        "{}{:08X}{:08X}",
        &last[..8],
        (at - 1) / 4096,
        (at - 1) % 4096
    );
    let out = wal(&before, &data);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // (read by the background prefetcher the request started: wait until it has finished)
    let spool = pgro::cli::wal_fetch::Spool::new(&data);
    let began = std::time::Instant::now();
    while spool.busy() && began.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        data.join("pgro_wal_prefetch").join(&last).is_file(),
        "{last} prefetched"
    );
    // ... from where it is served, verified at fetch time, even with the repository gone.
    let moved = root.path().join("moved");
    std::fs::rename(cluster.repo_path(1), &moved).expect("move repo");
    let out = wal(&last, &data);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::metadata(data.join("RECOVERYXLOG"))
            .expect("segment")
            .len(),
        1 << 20
    );
    std::fs::remove_file(data.join("RECOVERYXLOG")).expect("rm");
    // Storage gone (the repository path moved away): 126, never 1.
    let out = wal("000000010000000000000003", &data);
    std::fs::rename(&moved, cluster.repo_path(1)).expect("move back");
    assert_eq!(
        out.status.code(),
        Some(126),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!data.join("RECOVERYXLOG").exists());
}

/// `pgro restore --source`: the restored directory (tablespace and `pg_wal` link of a PGO-shaped source)
/// starts with plain PostgreSQL and its own recovery settings — replaying to the last archived commit with
/// `latest`, stopping at the backup with `consistent`; the JSON result names the backup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_from_source_starts_on_its_own_to_latest_or_consistent() {
    let root = pgro_testkit::fixtures::test_root("pgbr-restore-");
    let options = ClusterOptions::new(
        17,
        PgbrVersion::Current,
        vec![
            RepoOptions::posix()
                .compress(Compress::Zst)
                .block_incremental(),
        ],
    )
    .with_tablespace()
    .with_pg_wal_link();
    let Some(cluster) = pgro_testkit::skip_unless_ci(
        SourceCluster::start(&Components::load(), &root.path().join("src"), options).await,
        "restore_from_source_starts_on_its_own_to_latest_or_consistent",
    ) else {
        return;
    };
    cluster.backup(1, BackupType::Full).await.expect("full");
    cluster.change(1).expect("change");
    let label = cluster.backup(1, BackupType::Incr).await.expect("incr");
    let at_backup = cluster.summary().expect("summary");
    cluster.change(2).expect("change after");
    let latest = cluster.summary().expect("summary");
    assert_ne!(
        latest, at_backup,
        "the commits after the backup change the summary"
    );
    cluster.switch_wal().await.expect("switch");

    let cfg = root.path().join("cfg");
    std::fs::create_dir(&cfg).expect("mkdir");
    let source = cfg.join("source.yaml");
    std::fs::write(
        &source,
        format!(
            "pgbackrest:\n  stanza: db\n  repoPath: {}\n  volume: {{claimName: repo1}}\n",
            cluster.repo_path(1).display()
        ),
    )
    .expect("source.yaml");
    let bin = cfg.join("pgro");
    std::fs::copy(pgro(), &bin).expect("copy pgro");
    std::fs::set_permissions(&cfg, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let (uid, gid) = Components::load().postgres_user();

    for (target_name, recovery, expected) in [
        ("latest", "latest", &latest),
        ("consistent", "consistent", &at_backup),
    ] {
        let target = root.path().join(target_name);
        let out = Command::new(&bin)
            .args([
                "restore",
                "--backup",
                "latest",
                "--recovery-target",
                recovery,
                "--source",
            ])
            .arg(&source)
            .arg("--target")
            .arg(&target)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json result");
        assert_eq!(result["snapshot"], label.as_str(), "{result}");
        assert_eq!(result["postgresVersion"], "17");
        assert_eq!(
            result["tablespaces"].as_array().map(Vec::len),
            Some(1),
            "{result}"
        );
        let data = target.join("data");
        assert!(data.join("recovery.signal").is_file());
        assert!(
            data.join("pg_wal").is_dir() && !data.join("pg_wal").is_symlink(),
            "pg_wal flattened"
        );
        pgro_testkit::fixtures::chown_tree(&target, uid, gid);
        let copy = cluster
            .start_restored(&data, &[], true)
            .await
            .unwrap_or_else(|e| panic!("{recovery}: start the restored directory: {e:#}"));
        assert_eq!(
            &copy.psql(&cluster.summary_sql()).expect("summary"),
            expected,
            "{recovery}\n{}",
            copy.log()
        );
        copy.stop().await;
    }

    // A second restore into a used target is refused with the target-not-empty code, nothing changed.
    let out = Command::new(&bin)
        .args(["restore", "--backup", "latest", "--source"])
        .arg(&source)
        .arg("--target")
        .arg(root.path().join("src"))
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(11),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
