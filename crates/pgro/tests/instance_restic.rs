//! `pgro instance` on a logical restore from a KubeStash-shaped restic repository in MinIO (written by
//! the real restic from the real `pg_dumpall`, PostgreSQL 15–18, repository versions 1 and 2, compression
//! off / auto / max):
//!
//! * `pgro restore --source` reports the dump (cluster dump, the source's major) and writes nothing;
//! * the instance initialises a fresh cluster, replays the dump streamed from MinIO, and only then is
//!   ready: the analytics role reads every database read-only, the tablespace's table lives in a tablespace
//!   inside the volume, `pg_dumpall --no-role-passwords` of the copy equals the source's (pgro's own role,
//!   schema and grants aside), and no byte of a production password hash is anywhere in the volume;
//! * a dump with a failing statement fails the restore by default (exit 7, the statement named in the
//!   termination log, never replayed again on restart) and serves with `failOnErrors: false`, the failure
//!   recorded in `_pgro.restore_info.dump_replayed`.
//!
//! Outside CI a missing component skips; under `CI=true` it fails.

#![allow(clippy::unwrap_used)]

mod instance_support;
mod restic_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use instance_support::instance::{
    ADMIN_PW, ANALYTICS, Env, Instance, connect_tcp, env_for, first_value, start_instance_with,
};
use instance_support::run;
use pgro_testkit::barman::dump_difference;
use pgro_testkit::fixtures::Minio;
use pgro_testkit::restic::{DumpCmd, DumpSource, SOURCE_PASSWORDS};
use pgro_testkit::{Components, skip_unless_ci};
use restic_support::{Mounts, open_up, repository};

const EXIT_REPLAY: i32 = 7;

/// Starts the instance on a fresh volume `<root>/<name>/vol`.
fn start(e: &Env, root: &Path, name: &str, m: &Mounts, snapshot: &str) -> (Instance, PathBuf) {
    let pod = root.join(name);
    let vol = pod.join("vol");
    std::fs::create_dir_all(&vol).unwrap();
    let termination = pod.join("termination-log");
    // As the kubelet makes it: writable by the container's user.
    std::fs::write(&termination, "").unwrap();
    open_up(&termination, 0o666);
    let args = m.instance_args(&termination);
    let more: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsString::as_os_str).collect();
    let inst = start_instance_with(
        e,
        &pod,
        &vol.join("data"),
        snapshot,
        true,
        1,
        None,
        &m.bin,
        &more,
    );
    (inst, pod)
}

/// Drops what pgro adds to every copy (its roles, `_pgro`, the DDL guard, the read-only hardening of
/// large-object writes and of `TEMPORARY`) and comments from a dump: pg_dump separates objects by blank
/// lines, so a block naming `_pgro` goes whole; lines naming its roles go one by one.
fn without_pgro(dump: &str) -> String {
    let hardening = |l: &str| {
        l.starts_with("REVOKE ALL ON FUNCTION pg_catalog.lo")
            || l.starts_with("REVOKE CONNECT,TEMPORARY ON DATABASE ")
            || l.starts_with("GRANT CONNECT ON DATABASE ")
            || l.contains("pgro_refuse_ddl")
            // Only the copy's postgres database has a table (_pgro.restore_info) to set these for.
            || l == "SET default_tablespace = '';"
            || l == "SET default_table_access_method = heap;"
    };
    dump.split("\n\n")
        .filter(|block| !block.contains("_pgro"))
        .flat_map(str::lines)
        .filter(|l| {
            !(l.is_empty()
                || l.starts_with("--")
                || hardening(l)
                || l.contains("pgro_admin")
                || l.contains(ANALYTICS))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every file under `dir` whose bytes hold `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file()
                && std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
            {
                hits.push(p);
            }
        }
    }
    hits
}

/// Waits for the instance to exit; its status.
fn exits(inst: &mut Instance) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(s) = inst.proc.exited() {
            return s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{}",
            inst.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubestash_dumps_of_every_major_replay_into_fresh_clusters_without_passwords() {
    let test = "kubestash_dumps_of_every_major_replay_into_fresh_clusters_without_passwords";
    let components = Components::load();
    let root = pgro_testkit::fixtures::test_root("restic-instance-");
    let Some(minio) = restic_support::minio(&components, root.path(), test).await else {
        return;
    };
    for (major, version, compression) in
        [(15, 2, "auto"), (16, 1, ""), (17, 2, "off"), (18, 2, "max")]
    {
        let Some(e) = env_for(major) else { return };
        let dir = root.path().join(format!("pg{major}"));
        let Some(src) = skip_unless_ci(
            DumpSource::start(&components, &dir.join("src"), major).await,
            test,
        ) else {
            return;
        };
        let (repo, path) = repository(&components, &minio, &format!("/postgres{major}"), version);
        let snapshot = src.backup(&repo, DumpCmd::All, compression).unwrap();
        let m = Mounts::at(&dir.join("cfg"), &minio, &path, true);

        // The Job: the dump's header, nothing written.
        let target = dir.join("job-target");
        std::fs::create_dir_all(&target).unwrap();
        let res: serde_json::Value = serde_json::from_str(&run(&mut m.pgro(&[
            "restore",
            "--backup",
            "latest",
            "--target",
            &target.to_string_lossy(),
        ])))
        .unwrap();
        assert_eq!(res["postgresVersion"], major.to_string(), "{res}");
        assert_eq!(res["snapshot"], snapshot.as_str());
        assert_eq!(res["dump"]["kind"], "cluster", "{res}");
        assert_eq!(
            std::fs::read_dir(&target).unwrap().count(),
            0,
            "nothing written"
        );

        let (mut inst, pod) = start(&e, &dir, "pod", &m, &snapshot);
        inst.wait_ready();
        let log = inst.log();
        assert!(
            log.find("dump replayed").unwrap() < log.find("instance ready").unwrap(),
            "ready only after the replay:\n{log}"
        );
        let a = inst.analytics("postgres").await;
        let demo = inst.analytics("demo").await;
        assert_eq!(
            first_value(&demo, "SELECT count(*) FROM orders").await,
            "20001"
        );
        assert_eq!(first_value(&demo, "SELECT order_count()").await, "20001");
        assert_eq!(
            first_value(&demo, "SELECT note FROM orders WHERE id = 0").await,
            "ALTER ROLE app WITH PASSWORD 'not-a-statement';",
            "data that looks like SQL is data"
        );
        let ts = first_value(
            &demo,
            "SELECT pg_tablespace_location(reltablespace) FROM pg_class c JOIN pg_tablespace t ON t.oid = c.reltablespace WHERE relname = 'archived'",
        )
        .await;
        assert!(
            ts.starts_with(
                &pod.join("vol/logical/tablespaces")
                    .to_string_lossy()
                    .into_owned()
            ),
            "the tablespace is inside the volume: {ts}"
        );
        assert_eq!(
            first_value(&demo, "SELECT count(*) FROM archived").await,
            "3000"
        );
        let inventory = inst.analytics("inventory").await;
        assert_eq!(
            first_value(&inventory, "SELECT sum(qty) FROM items").await,
            "125250"
        );
        for write in [
            "INSERT INTO orders (id, customer) VALUES (-1, 'x')",
            "CREATE TABLE public.x (i int)",
        ] {
            let r = demo.batch_execute(write).await;
            assert!(r.is_err(), "the analytics role ran `{write}`");
        }
        let info: serde_json::Value = serde_json::from_str(
            &first_value(&a, "SELECT dump_replayed::text FROM _pgro.restore_info").await,
        )
        .unwrap();
        assert!(info["statements"].as_u64().unwrap() > 50, "{info}");
        assert_eq!(info["failed"], 0, "{info}");
        assert!(info["bytes"].as_u64().unwrap() > 100_000, "{info}");

        // The copy's dump equals the source's, pgro's own objects aside; no production password hash.
        let admin = connect_tcp(inst.port, "pgro_admin", ADMIN_PW, "postgres")
            .await
            .unwrap();
        assert_eq!(
            first_value(
                &admin,
                "SELECT count(*) FROM pg_authid WHERE rolpassword IS NOT NULL AND rolname NOT IN ('pgro_admin', 'analytics')"
            )
            .await,
            "0"
        );
        let copy = run(Command::new(src.bin().join("pg_dumpall"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &inst.port.to_string(),
                "-U",
                "pgro_admin",
                "--no-role-passwords",
            ])
            .env("PGPASSWORD", ADMIN_PW));
        let copy = copy
            .lines()
            .map(|l| match l.find(" LOCATION '") {
                Some(i) if l.starts_with("CREATE TABLESPACE") => {
                    format!("{} LOCATION '…';", &l[..i])
                }
                _ if l.starts_with("\\restrict ") => "\\restrict …".to_owned(),
                _ if l.starts_with("\\unrestrict ") => "\\unrestrict …".to_owned(),
                _ => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        let theirs = src.dumpall().await.unwrap();
        if std::env::var_os("PGRO_KEEP_DUMPS").is_some() {
            std::fs::write(
                format!("/tmp/restic-src-{major}.sql"),
                without_pgro(&theirs),
            )
            .unwrap();
            std::fs::write(format!("/tmp/restic-copy-{major}.sql"), without_pgro(&copy)).unwrap();
        }
        if let Some(d) = dump_difference(&without_pgro(&theirs), &without_pgro(&copy)) {
            panic!("PostgreSQL {major}: the copy differs from the source: {d}");
        }
        drop((a, demo, inventory, admin));
        assert!(inst.proc.stop().unwrap().success(), "{}", inst.log());
        let hashes = src
            .psql("SELECT rolpassword FROM pg_authid WHERE rolname IN ('app', 'reporter')")
            .unwrap();
        for h in hashes.lines() {
            let salt = h.split('$').nth(2).unwrap_or(h);
            let hits = files_holding(&pod.join("vol"), salt.as_bytes());
            assert!(hits.is_empty(), "a production password hash is in {hits:?}");
        }
        for pw in SOURCE_PASSWORDS {
            assert!(files_holding(&pod.join("vol"), pw.as_bytes()).is_empty());
        }
        src.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_statement_fails_the_restore_unless_allowed_and_is_never_replayed_twice() {
    let test = "a_failing_statement_fails_the_restore_unless_allowed_and_is_never_replayed_twice";
    let components = Components::load();
    let Some(e) = env_for(16) else { return };
    let root = pgro_testkit::fixtures::test_root("restic-fail-");
    let Some(minio) = restic_support::minio(&components, root.path(), test).await else {
        return;
    };
    let Some(src) = skip_unless_ci(
        DumpSource::start(&components, &root.path().join("src"), 16).await,
        test,
    ) else {
        return;
    };
    let (repo, path) = repository(&components, &minio, "/postgres", 2);
    let good = src.backup(&repo, DumpCmd::Demo, "auto").unwrap();
    // The same single-database dump with one statement the copy cannot run, inserted mid-way.
    let mut dump = String::from_utf8(repo.dump(&good, "/dumpfile.sql").unwrap()).unwrap();
    let at = dump.find("CREATE TABLE").unwrap();
    // …and a psql shell escape, refused by pgro's filter (the directory is writable by anyone, so only
    // the refusal keeps the file from appearing).
    let open = root.path().join("open");
    std::fs::create_dir_all(&open).unwrap();
    open_up(&open, 0o777);
    let pwned = open.join("pwned");
    dump.insert_str(
        at,
        &format!(
            "SELECT no_such_function();\n\\! touch {}\n",
            pwned.display()
        ),
    );
    let line = dump[..at].lines().count() + 1;
    let bad = repo
        .backup_bytes(dump.as_bytes(), "dumpfile.sql", "host-0", "auto")
        .unwrap();

    let strict = Mounts::at(&root.path().join("strict"), &minio, &path, true);
    let (mut inst, pod) = start(&e, root.path(), "pod-strict", &strict, &bad);
    let status = exits(&mut inst);
    assert_eq!(status.code(), Some(EXIT_REPLAY), "{}", inst.log());
    // Failed statements' text (which may hold a credential) is in no log, the server's included.
    assert!(
        !inst.log().contains("STATEMENT:  SELECT no_such_function"),
        "{}",
        inst.log()
    );
    assert!(
        inst.log()
            .contains("ERROR:  function no_such_function() does not exist")
    );
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(pod.join("termination-log"))
            .unwrap_or_else(|e| panic!("{e}: {}", inst.log())),
    )
    .unwrap();
    let message = report["message"].as_str().unwrap();
    assert_eq!(report["error"], "StatementsFailed", "{report}");
    assert!(
        message.contains(&format!(
            "line {line}: function no_such_function() does not exist"
        )) && message.contains("failOnErrors"),
        "{message}"
    );
    // A restart reports the same failure at once, without replaying.
    std::fs::write(pod.join("termination-log"), "").unwrap();
    let more = strict.instance_args(&pod.join("termination-log"));
    let more: Vec<&std::ffi::OsStr> = more.iter().map(std::ffi::OsString::as_os_str).collect();
    let mut again = start_instance_with(
        &e,
        &pod,
        &pod.join("vol/data"),
        &bad,
        true,
        2,
        None,
        &strict.bin,
        &more,
    );
    let status = exits(&mut again);
    assert_eq!(status.code(), Some(EXIT_REPLAY), "{}", again.log());
    assert!(
        !again.log().contains("replaying the dump"),
        "{}",
        again.log()
    );
    assert!(
        std::fs::read_to_string(pod.join("termination-log"))
            .unwrap()
            .contains("no_such_function")
    );

    // Allowed: served, the failure recorded; a single-database dump lands in the analytics database.
    let lenient = Mounts::at(&root.path().join("lenient"), &minio, &path, false);
    let (mut inst, _) = start(&e, root.path(), "pod-lenient", &lenient, &bad);
    inst.wait_ready();
    let a = inst.analytics("postgres").await;
    assert_eq!(
        first_value(&a, "SELECT count(*) FROM orders").await,
        "20001"
    );
    let info: serde_json::Value = serde_json::from_str(
        &first_value(&a, "SELECT dump_replayed::text FROM _pgro.restore_info").await,
    )
    .unwrap();
    assert_eq!(
        info["failed"], 2,
        "the statement and the shell escape: {info}"
    );
    assert!(
        info["firstErrors"][0]
            .as_str()
            .unwrap()
            .contains("no_such_function"),
        "{info}"
    );
    assert_eq!(
        info["firstErrors"][1],
        format!(
            "line {}: psql meta-command \\! refused (a dump may only use \\connect, \\restrict and \\unrestrict)",
            line + 1
        ),
        "{info}"
    );
    assert!(!pwned.exists(), "the dump ran a shell command");
    drop(a);
    assert!(inst.proc.stop().unwrap().success(), "{}", inst.log());
    src.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_repository_is_retried_on_restart_never_recorded_as_failed() {
    let test = "an_unreachable_repository_is_retried_on_restart_never_recorded_as_failed";
    let components = Components::load();
    let Some(e) = env_for(16) else { return };
    let root = pgro_testkit::fixtures::test_root("restic-down-");
    let Some(minio) = restic_support::minio(&components, root.path(), test).await else {
        return;
    };
    let minio_dir = minio.dir.clone();
    let Some(src) = skip_unless_ci(
        DumpSource::start(&components, &root.path().join("src"), 16).await,
        test,
    ) else {
        return;
    };
    let (repo, path) = repository(&components, &minio, "/postgres", 2);
    let id = src.backup(&repo, DumpCmd::All, "auto").unwrap();
    let m = Mounts::at(&root.path().join("cfg"), &minio, &path, true);
    let port = minio.port;
    drop(minio);
    let (mut inst, pod) = start(&e, root.path(), "pod", &m, &id);
    let status = exits(&mut inst);
    assert_eq!(status.code(), Some(EXIT_REPLAY), "{}", inst.log());
    assert!(inst.log().contains("starts over"), "{}", inst.log());
    assert_eq!(
        std::fs::read_to_string(pod.join("termination-log")).unwrap(),
        "",
        "no failure report: the restore is not failed for an outage"
    );
    // The store is back (same data, same port): the restarted container replays and serves.
    let _minio = Minio::start_on(&components, &minio_dir, port)
        .await
        .unwrap();
    let more = m.instance_args(&pod.join("termination-log"));
    let more: Vec<&std::ffi::OsStr> = more.iter().map(std::ffi::OsString::as_os_str).collect();
    let mut again = start_instance_with(
        &e,
        &pod,
        &pod.join("vol/data"),
        &id,
        true,
        2,
        None,
        &m.bin,
        &more,
    );
    again.wait_ready();
    let a = again.analytics("demo").await;
    assert_eq!(
        first_value(&a, "SELECT count(*) FROM orders").await,
        "20001"
    );
    drop(a);
    assert!(again.proc.stop().unwrap().success(), "{}", again.log());
    src.stop().await;
}
