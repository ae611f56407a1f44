//! `pgro instance` on a WAL-archive restore, end to end on PostgreSQL 16 with a repository written by the
//! current pgBackRest (posix, encrypted):
//!
//! * the source runs with `max_connections=150` and `max_prepared_transactions=3` on its command line (as
//!   Patroni passes them), so the restored configuration has PostgreSQL's lower defaults; a transaction
//!   prepared and committed after the backup cannot be replayed with `max_prepared_transactions = 0`;
//! * `pgro restore --source` from a Job directory that is deleted afterwards, so only the instance's own
//!   `restore_command` (its `pgro` copy, the pod's paths) can fetch WAL;
//! * the instance replays to the latest commit, promotes, and only then is ready: the commits after the
//!   backup are served, the analytics role is read-only, `_pgro.restore_info` has `data_time` and
//!   `wal_replayed`; a restart starts normally and keeps them;
//! * with the backup's first WAL segment deleted from a copy of the repository, the instance fails fast
//!   (exit 6) with a clear message and never starts PostgreSQL.
//!
//! Outside CI a missing binary skips; under `CI=true` it fails.

#![allow(clippy::unwrap_used)]

mod instance_support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use instance_support::instance::{
    Env, Instance, connect_socket, env_for, first_value, start_instance_with,
};
use instance_support::{Proc, free_port, http_status, run, test_root};
use nix::sys::signal::Signal;
use pgro_testkit::Components;
use pgro_testkit::pgbackrest::{ClusterOptions, PgbrVersion, RepoOptions, STANZA, SourceCluster};

const PASS: &str = "instance-pass";
const EXIT_ARCHIVE: i32 = 6;

/// The source: the fixture cluster restarted with settings on its command line (as Patroni passes them),
/// archiving into the fixture's repository.
struct Source {
    /// Stops the server when dropped.
    _proc: Proc,
    sock: PathBuf,
    port: u16,
    pgbackrest: PathBuf,
    conf: PathBuf,
    repo: PathBuf,
}

impl Source {
    async fn start(e: &Env, root: &Path) -> Option<Self> {
        let options = ClusterOptions::new(
            16,
            PgbrVersion::Current,
            vec![RepoOptions::posix().encrypted(PASS)],
        );
        let cluster = pgro_testkit::skip_unless_ci(
            SourceCluster::start(&Components::load(), &root.join("src"), options).await,
            "instance_pgbackrest",
        )?;
        let (dir, conf, pgbackrest, repo) = (
            cluster.dir().to_path_buf(),
            cluster.conf_path(),
            cluster.bin(),
            cluster.repo_path(1),
        );
        let port: u16 = std::fs::read_to_string(&conf)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("pg1-port="))
            .unwrap()
            .parse()
            .unwrap();
        cluster.stop().await;
        let data = dir.join("pgdata");
        let sock = dir.join("sock");
        let archive_command = format!(
            "archive_command={} --config={} --stanza={STANZA} archive-push %p",
            pgbackrest.display(),
            conf.display()
        );
        let mut cmd = e.user.command(e.bin.join("postgres"));
        cmd.arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&sock)
            .args(["-c", "listen_addresses="]);
        for setting in [
            "archive_mode=on",
            &archive_command,
            "wal_level=replica",
            "fsync=off",
            "max_wal_senders=2",
            "max_connections=150",
            "max_prepared_transactions=3",
        ] {
            cmd.args(["-c", setting]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("postgres-restarted.log")).unwrap())
            .spawn()
            .unwrap();
        let proc = Proc::new(child, Some(data), Signal::SIGINT);
        let src = Self {
            _proc: proc,
            sock,
            port,
            pgbackrest,
            conf,
            repo,
        };
        src.sql("SELECT 1").await;
        Some(src)
    }

    async fn sql(&self, sql: &str) -> String {
        let c = connect_socket(&self.sock, self.port, "postgres").await;
        let rows = c
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// A full backup; its label.
    fn backup(&self, e: &Env) -> String {
        let before = self.labels();
        run(e
            .user
            .command(&self.pgbackrest)
            .arg(format!("--config={}", self.conf.display()))
            .args([
                &format!("--stanza={STANZA}"),
                "--repo=1",
                "--type=full",
                "backup",
            ]));
        let new: Vec<String> = self
            .labels()
            .into_iter()
            .filter(|l| !before.contains(l))
            .collect();
        assert_eq!(new.len(), 1, "{new:?}");
        new[0].clone()
    }

    fn labels(&self) -> Vec<String> {
        std::fs::read_dir(self.repo.join("backup").join(STANZA))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| pgbackrest::label::is_label(n))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `pg_switch_wal()`, then waits until that segment is archived.
    async fn switch_wal(&self) {
        self.sql("SELECT txid_current()").await;
        let segment = self.sql("SELECT pg_walfile_name(pg_switch_wal())").await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let archived = self
                .sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
                .await;
            if archived.len() >= 24 && archived[..24] >= *segment.as_str() {
                return;
            }
            assert!(Instant::now() < deadline, "{segment} not archived");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// What a Job or a pod mounts: the source object, the Secret's keys, and a `pgro` copy.
fn mounts(dir: &Path, repo: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let secret = dir.join("secret");
    std::fs::create_dir_all(&secret).unwrap();
    let source = dir.join("source.yaml");
    std::fs::write(
        &source,
        format!(
            "pgbackrest:\n  stanza: {STANZA}\n  repoPath: {}\n  volume: {{claimName: repo1}}\n",
            repo.display()
        ),
    )
    .unwrap();
    std::fs::write(
        secret.join("s3.conf"),
        format!("[global]\nrepo1-cipher-pass={PASS}\n"),
    )
    .unwrap();
    let bin = dir.join("pgro");
    std::fs::copy(env!("CARGO_BIN_EXE_pgro"), &bin).unwrap();
    for (p, mode) in [(dir, 0o755), (&secret, 0o755), (&source, 0o644)] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    std::fs::set_permissions(
        secret.join("s3.conf"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    (bin, source, secret)
}

/// `pgro restore --source` from a Job directory; the restored PGDATA and the result.
fn restore(job: &Path, repo: &Path, label: &str, target: &Path) -> (PathBuf, serde_json::Value) {
    let (bin, source, secret) = mounts(job, repo);
    let out = Command::new(&bin)
        .args(["restore", "--backup", label, "--source"])
        .arg(&source)
        .arg("--secret-dir")
        .arg(&secret)
        .arg("--target")
        .arg(target)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let res: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(res["snapshot"], label, "{res}");
    (PathBuf::from(res["pgdata"].as_str().unwrap()), res)
}

fn source_args<'a>(source: &'a Path, secret: &'a Path) -> Vec<&'a OsStr> {
    vec![
        OsStr::new("--source"),
        source.as_os_str(),
        OsStr::new("--source-secret-dir"),
        secret.as_os_str(),
        OsStr::new("--recovery-target"),
        OsStr::new("latest"),
    ]
}

/// Waits for `/readyz`; at the first 200, PostgreSQL must be out of recovery.
async fn wait_ready_after_promotion(inst: &mut Instance) {
    inst.wait_ready();
    let adm = instance_support::instance::connect_tcp(
        inst.port,
        "pgro_admin",
        instance_support::instance::ADMIN_PW,
        "postgres",
    )
    .await
    .unwrap();
    let in_recovery: bool = adm
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!in_recovery, "ready while in recovery:\n{}", inst.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_restore_replays_to_the_latest_commit_then_serves_read_only() {
    let Some(e) = env_for(16) else { return };
    let t0 = Instant::now();
    let tmp = test_root("pgro-pgbr");
    let root = tmp.path();
    let Some(src) = Source::start(&e, root).await else {
        return;
    };
    src.sql("CREATE TABLE ledger (n int, at timestamptz DEFAULT clock_timestamp()); INSERT INTO ledger (n) SELECT generate_series(1, 100)")
        .await;
    let label = src.backup(&e);
    // After the backup: more commits, a two-phase commit (replay needs a prepared-transaction slot, and
    // the restored configuration has max_prepared_transactions = 0), the last commit.
    src.sql("INSERT INTO ledger (n) SELECT generate_series(101, 200)")
        .await;
    let c = connect_socket(&src.sock, src.port, "postgres").await;
    c.batch_execute("BEGIN; INSERT INTO ledger (n) VALUES (1000); PREPARE TRANSACTION 'p1'")
        .await
        .unwrap();
    c.batch_execute("COMMIT PREPARED 'p1'").await.unwrap();
    src.sql("CREATE TABLE last_commit AS SELECT 42 AS answer, clock_timestamp() AS at")
        .await;
    let last_at = src.sql("SELECT at FROM last_commit").await;
    src.switch_wal().await;
    let t_source = t0.elapsed();

    // The Job restores, then its directory disappears: its restore_command could not run any more.
    let target = root.join("restores/latest");
    let job = root.join("job");
    std::fs::create_dir_all(root.join("restores")).unwrap();
    let (pgdata, _) = restore(&job, &src.repo, &label, &target);
    std::fs::remove_dir_all(&job).unwrap();
    assert!(pgdata.join("recovery.signal").exists());
    let label_text = std::fs::read_to_string(pgdata.join("backup_label")).unwrap();
    let first = label_text
        .lines()
        .find_map(|l| l.strip_prefix("START WAL LOCATION: "))
        .and_then(|l| l.split_once("(file "))
        .map(|(_, f)| f.trim_end_matches(')').to_owned())
        .unwrap();
    let t_restore = t0.elapsed();

    let pod = root.join("pod");
    let (pod_pgro, pod_source, pod_secret) = mounts(&pod, &src.repo);
    let args = source_args(&pod_source, &pod_secret);
    let mut inst = start_instance_with(
        &e, &target, &pgdata, &label, true, 1, None, &pod_pgro, &args,
    );
    wait_ready_after_promotion(&mut inst).await;
    let t_ready = t0.elapsed();
    let log = inst.log();
    let pos = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("`{needle}` not logged:\n{log}"))
    };
    assert!(
        pos("restored log file") < pos("archive recovery complete")
            && pos("archive recovery complete") < pos("instance ready"),
        "replayed from the archive, promoted, then ready:\n{log}"
    );
    assert!(!log.contains("pg_resetwal"), "{log}");
    // Segments read ahead and not needed are gone with their prefetcher once the copy is ready.
    assert!(
        !pgdata.join("pgro_wal_prefetch").exists()
            && !pgro::cli::wal_fetch::Spool::new(&pgdata).busy(),
        "the prefetch spool outlived recovery"
    );

    let pgro_conf = std::fs::read_to_string(pgdata.join("postgresql.pgro.conf")).unwrap();
    assert!(
        pgro_conf.contains(&format!(
            "restore_command = '{} wal-fetch",
            pod_pgro.display()
        )),
        "{pgro_conf}"
    );
    assert!(!pgro_conf.contains("/job/"), "{pgro_conf}");
    assert!(
        pgro_conf.contains("hot_standby = 'off'") && pgro_conf.contains("max_connections = '150'"),
        "{pgro_conf}"
    );

    let a = inst.analytics("postgres").await;
    let one = |sql: &'static str| first_value(&a, sql);
    assert_eq!(one("SELECT count(*) FROM ledger").await, "201");
    assert_eq!(one("SELECT answer FROM last_commit").await, "42");
    assert_eq!(one("SHOW max_connections").await, "150");
    assert_eq!(one("SHOW max_prepared_transactions").await, "3");
    for write in [
        "INSERT INTO ledger (n) VALUES (-1)",
        "CREATE TABLE public.x (i int)",
        "DELETE FROM ledger",
    ] {
        let r = a.batch_execute(write).await;
        let _ = a.batch_execute("ROLLBACK").await;
        assert!(r.is_err(), "the analytics role ran `{write}`");
    }
    let info = a
        .query_one(
            "SELECT source_state, data_time::text, (data_time >= $1::text::timestamptz)::text, \
             (data_time <= now())::text, wal_replayed::text, snapshot_id FROM _pgro.restore_info",
            &[&last_at],
        )
        .await
        .unwrap();
    let get = |i: usize| info.get::<_, Option<String>>(i).unwrap_or_default();
    assert_eq!(get(0), "base-backup");
    assert!(
        get(2) == "true" && get(3) == "true",
        "data_time {} is not the last replayed commit (≥ {last_at})",
        get(1)
    );
    let wal: serde_json::Value = serde_json::from_str(&get(4)).unwrap();
    assert!(
        wal["segments"].as_u64().unwrap() >= 1
            && wal["bytes"].as_u64().unwrap() > 0
            && wal["seconds"].as_f64().unwrap() >= 0.0,
        "{wal}"
    );
    assert_eq!(get(5), label);
    let recorded = (get(1), get(4));
    drop(a);
    assert!(inst.proc.stop().unwrap().success(), "{}", inst.log());
    let t_served = t0.elapsed();

    // A restart after promotion starts normally (no recovery, no check) and keeps the figures.
    let mut again = start_instance_with(
        &e, &target, &pgdata, &label, true, 2, None, &pod_pgro, &args,
    );
    wait_ready_after_promotion(&mut again).await;
    let log2 = again.log();
    assert!(!log2.contains("restored log file"), "{log2}");
    assert!(!log2.contains("first WAL segment"), "{log2}");
    let a = again.analytics("postgres").await;
    let row = a
        .query_one(
            "SELECT data_time::text, wal_replayed::text, (SELECT count(*) FROM ledger) FROM _pgro.restore_info",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, String>(0), row.get::<_, String>(1)), recorded);
    assert_eq!(row.get::<_, i64>(2), 201);
    drop(a);
    assert!(again.proc.stop().unwrap().success(), "{}", again.log());
    let t_restart = t0.elapsed();

    // The first segment the backup needs, deleted from a copy of the repository: fail fast, never serve.
    let broken_repo = root.join("repo-broken");
    run(Command::new("cp")
        .arg("-a")
        .arg(&src.repo)
        .arg(&broken_repo));
    let seg_dir = std::fs::read_dir(broken_repo.join("archive").join(STANZA))
        .unwrap()
        .flatten()
        .map(|e| e.path().join(&first[..16]))
        .find(|p| p.is_dir())
        .unwrap();
    let mut removed = 0;
    for f in std::fs::read_dir(&seg_dir).unwrap().flatten() {
        // `<segment>-<sha1>.<ext>`; the backup history file `<segment>.<offset>.backup` stays.
        if f.file_name()
            .to_string_lossy()
            .starts_with(&format!("{first}-"))
        {
            std::fs::remove_file(f.path()).unwrap();
            removed += 1;
        }
    }
    assert_eq!(removed, 1, "{}", seg_dir.display());
    let target2 = root.join("restores/gap");
    let (pgdata2, _) = restore(&root.join("job2"), &broken_repo, &label, &target2);
    let (pod2_pgro, pod2_source, pod2_secret) = mounts(&root.join("pod2"), &broken_repo);
    let args2 = source_args(&pod2_source, &pod2_secret);
    let probe = free_port();
    let mut failed = start_instance_with(
        &e,
        &target2,
        &pgdata2,
        &label,
        true,
        1,
        Some((free_port(), probe)),
        &pod2_pgro,
        &args2,
    );
    let started = Instant::now();
    let status = loop {
        assert_ne!(
            http_status(probe, "/readyz"),
            200,
            "served without the WAL it needs"
        );
        if let Some(s) = failed.proc.exited() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no fast failure:\n{}",
            failed.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let flog = failed.log();
    assert_eq!(status.code(), Some(EXIT_ARCHIVE), "{flog}");
    assert!(
        flog.contains(&format!(
            "the archive lacks WAL segment {first} that backup {label} needs"
        )),
        "{flog}"
    );
    assert!(
        !flog.contains("postgres started"),
        "PostgreSQL was started:\n{flog}"
    );
    assert!(pgdata2.join("backup_label").exists() && pgdata2.join("recovery.signal").exists());
    drop(src);
    eprintln!(
        "timings: source+backup {:.1}s, restore {:.1}s, replay+ready {:.1}s, checks {:.1}s, restart {:.1}s, \
         missing-WAL case {:.1}s (fails in {:.1}s)",
        t_source.as_secs_f64(),
        (t_restore - t_source).as_secs_f64(),
        (t_ready - t_restore).as_secs_f64(),
        (t_served - t_ready).as_secs_f64(),
        (t_restart - t_served).as_secs_f64(),
        (t0.elapsed() - t_restart).as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
}
