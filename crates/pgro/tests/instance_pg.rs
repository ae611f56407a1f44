//! `pgro restore` + `pgro instance` against real PostgreSQL 15–18 and real kopia snapshots of a source
//! cluster in every state a backup can catch it in (behaviour I1–I7):
//!
//! * clean: copied after a fast shutdown;
//! * crash: copied while `pgbench` writes, with every server process stopped (SIGSTOP) during the copy —
//!   the files are exactly what a crash at that instant leaves (crash-consistent, like a filesystem freeze);
//! * basebackup: `pg_basebackup -X stream`;
//! * standby: a running streaming standby (`pg_basebackup -R`), copied the same frozen way;
//! * nowal: `pg_basebackup -X none` (the WAL it needs is missing: the `pg_resetwal` fallback).
//!
//! One test per major shares one source cluster and one repository across the scenarios.

#![allow(clippy::unwrap_used)]

mod instance_support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use instance_support::instance::{
    ADMIN_PW, Env, Source, connect_socket, connect_tcp, env_for, start_instance, wait_socket,
};
use instance_support::{Kopia, Proc, copy_dir, free_port, frozen_copy, run, test_root};
use nix::sys::signal::Signal;
use tokio_postgres::Client;

/// (rows, md5 of all rows in a stable order) of a table.
async fn checksum(c: &Client, table: &str) -> (i64, String) {
    let row = c
        .query_one(&format!("SELECT count(*), coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM {table} t"), &[])
        .await
        .unwrap_or_else(|e| panic!("checksum {table}: {e}"));
    (row.get(0), row.get(1))
}

const TABLES: &[(&str, &str)] = &[("postgres", "items"), ("app", "orders"), ("intl", "words")];

/// Builds the source cluster with data, returns it running, with the checksums of its tables.
async fn build_source(e: &Env, root: &Path) -> (Source, HashMap<String, (i64, String)>) {
    let dir = root.join("src");
    let sock = root.join("srcsock");
    e.user.mkdir(&dir);
    e.user.mkdir(&sock);
    e.initdb(&dir);
    let port = free_port();
    std::fs::write(
        dir.join("extra.conf"),
        "work_mem = '8MB'\nrestore_command = 'false'\n",
    )
    .unwrap();
    let mut conf = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("postgresql.conf"))
        .unwrap();
    std::io::Write::write_all(
        &mut conf,
        format!(
            "port = {port}\nunix_socket_directories = '{}'\nlisten_addresses = ''\nmax_wal_size = '64MB'\n\
             include 'extra.conf'\ninclude_if_exists '/nonexistent/pgro/extra.conf'\n",
            sock.display()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut src = Source {
        dir,
        sock: sock.clone(),
        port,
        proc: None,
    };
    src.start(e);
    let pg = connect_socket(&sock, port, "postgres").await;
    pg.batch_execute(
        "CREATE ROLE alice LOGIN PASSWORD 'alice-pw';
         CREATE ROLE bob SUPERUSER LOGIN PASSWORD 'bob-pw';
         CREATE TABLE items AS SELECT g AS id, md5(g::text) AS name, g * 1.5 AS v FROM generate_series(1, 3000) g;
         ALTER TABLE items ADD PRIMARY KEY (id);
         CREATE INDEX items_name ON items (name);",
    )
    .await
    .unwrap();
    pg.batch_execute("CREATE DATABASE app").await.unwrap();
    pg.batch_execute("CREATE DATABASE intl TEMPLATE template0 LOCALE 'C.UTF-8'")
        .await
        .unwrap();
    let app = connect_socket(&sock, port, "app").await;
    app.batch_execute(
        "CREATE TABLE orders AS SELECT g AS id, 'order ' || g AS note FROM generate_series(1, 700) g;
         CREATE SCHEMA sales; CREATE TABLE sales.t (id serial PRIMARY KEY, x int); INSERT INTO sales.t (x) VALUES (1), (2);",
    )
    .await
    .unwrap();
    let intl = connect_socket(&sock, port, "intl").await;
    intl.batch_execute(
        "CREATE TABLE words AS SELECT g AS id, 'wört ' || g AS w FROM generate_series(1, 500) g;
         CREATE INDEX words_w ON words (w);",
    )
    .await
    .unwrap();
    run(Command::new(e.client_bin.join("pgbench"))
        .args(["-i", "-s", "1", "-q", "-h"])
        .arg(&sock)
        .args(["-p", &port.to_string(), "-U", "postgres", "postgres"]));
    let mut sums = HashMap::new();
    for (db, t) in TABLES {
        let c = match *db {
            "postgres" => &pg,
            "app" => &app,
            _ => &intl,
        };
        sums.insert(format!("{db}.{t}"), checksum(c, t).await);
    }
    drop(intl);
    // A locale the image does not have (as when the source ran on a host with more locales): PostgreSQL
    // refuses connections to this database until `pgro instance` switches it (I6).
    pg.batch_execute("UPDATE pg_database SET datcollate = 'de_DE.UTF-8', datctype = 'de_DE.UTF-8' WHERE datname = 'intl'")
        .await
        .unwrap();
    pg.batch_execute("CHECKPOINT").await.unwrap();
    (src, sums)
}

/// Source states, each copied into `states/<name>`.
async fn capture_states(
    e: &Env,
    root: &Path,
    src: &mut Source,
    with_nowal: bool,
) -> Vec<(&'static str, PathBuf)> {
    let states = root.join("states");
    std::fs::create_dir_all(&states).unwrap();
    let mut out = Vec::new();
    let sock = src.sock.clone();
    let port = src.port.to_string();
    let base = |dst: &Path, extra: &[&str]| {
        let mut c = e.user.command(e.client_bin.join("pg_basebackup"));
        c.arg("-D")
            .arg(dst)
            .args(["-c", "fast", "-h"])
            .arg(&sock)
            .args(["-p", &port, "-U", "postgres"])
            .args(extra);
        run(&mut c);
    };
    e.user.mkdir(&states);

    // (a) cleanly stopped
    src.stop();
    let clean = states.join("clean");
    copy_dir(&src.dir, &clean);
    out.push(("clean", clean));
    src.start(e);

    // (c) pg_basebackup -X stream
    let bb = states.join("basebackup");
    base(&bb, &["-X", "stream"]);
    out.push(("basebackup", bb));

    // (e) pg_basebackup without WAL
    if with_nowal {
        let nowal = states.join("nowal");
        base(&nowal, &["-X", "none"]);
        out.push(("nowal", nowal));
    }

    // (d) a running streaming standby
    let sb_dir = root.join("standby");
    let sb_sock = root.join("sbsock");
    e.user.mkdir(&sb_sock);
    e.user.mkdir(&sb_dir);
    base(&sb_dir, &["-X", "stream", "-R"]);
    std::fs::set_permissions(&sb_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let sb_port = free_port();
    let child = e
        .user
        .command(e.bin.join("postgres"))
        .arg("-D")
        .arg(&sb_dir)
        .args(["-c", &format!("port={sb_port}"), "-c"])
        .arg(format!("unix_socket_directories={}", sb_sock.display()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(root.join("standby.log")).unwrap())
        .spawn()
        .unwrap();
    let mut standby = Proc::new(child, Some(sb_dir.clone()), Signal::SIGINT);
    wait_socket(&sb_sock, sb_port);
    let primary = connect_socket(&sock, src.port, "postgres").await;
    let lsn: String = primary
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    let sb = connect_socket(&sb_sock, sb_port, "postgres").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let caught_up: bool = sb
            .query_one(
                "SELECT pg_is_in_recovery() AND pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                &[&lsn],
            )
            .await
            .unwrap()
            .get(0);
        if caught_up {
            break;
        }
        assert!(Instant::now() < deadline, "standby did not catch up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(sb);
    let sbcopy = states.join("standby");
    frozen_copy(standby.pid(), &sb_dir, &sbcopy);
    standby.stop();
    out.push(("standby", sbcopy));

    // (b) crash-consistent copy under pgbench load
    let mut bench = Proc::new(
        Command::new(e.client_bin.join("pgbench"))
            .args(["-n", "-c", "2", "-T", "60", "-h"])
            .arg(&sock)
            .args(["-p", &port, "-U", "postgres", "postgres"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        None,
        Signal::SIGKILL,
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let crash = states.join("crash");
    frozen_copy(src.pid(), &src.dir, &crash);
    bench.stop();
    out.push(("crash", crash));
    out
}

fn config_files(pgdata: &Path) -> Vec<(String, String)> {
    [
        "postgresql.conf",
        "postgresql.pgro.conf",
        "postgresql.auto.conf",
        "pg_hba.conf",
    ]
    .iter()
    .map(|n| {
        (
            n.to_string(),
            std::fs::read_to_string(pgdata.join(n)).unwrap(),
        )
    })
    .collect()
}

async fn assert_read_only(c: &Client, log: &str) {
    for (i, stmt) in [
        "INSERT INTO items (id, name, v) VALUES (-1, 'x', 0)",
        "UPDATE items SET v = 0 WHERE id = 1",
        "DELETE FROM items WHERE id = 1",
        "TRUNCATE pgbench_history",
        "CREATE TABLE public.newt (i int)",
        "CREATE SCHEMA news",
        "SELECT nextval('pgbench_history_tid_seq')",
    ]
    .iter()
    .enumerate()
    {
        // Every other statement after switching the GUC off: privileges must still refuse.
        if i % 2 == 1 || i > 3 {
            c.batch_execute("SET default_transaction_read_only = off")
                .await
                .unwrap();
        }
        let r = c.batch_execute(stmt).await;
        if stmt.starts_with("SELECT nextval") && r.is_err() {
            continue;
        }
        assert!(
            r.is_err() || stmt.starts_with("SELECT nextval"),
            "read-only analytics role could run {stmt}\n{log}"
        );
        if let Err(e) = r {
            let msg = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_default();
            assert!(
                msg.contains("permission denied")
                    || msg.contains("read-only transaction")
                    || msg.contains("does not exist"),
                "{stmt}: {msg}"
            );
        }
        c.batch_execute("RESET default_transaction_read_only")
            .await
            .unwrap();
    }
    // With the GUC off, the refusals above are privilege errors, not the read-only transaction's.
    c.batch_execute("SET default_transaction_read_only = off")
        .await
        .unwrap();
    let e = c
        .batch_execute("UPDATE items SET v = 0 WHERE id = 2")
        .await
        .unwrap_err();
    assert!(
        e.as_db_error()
            .unwrap()
            .message()
            .contains("permission denied"),
        "{e}"
    );
}

async fn assert_writable(c: &Client, log: &str) {
    for stmt in [
        "INSERT INTO orders (id, note) VALUES (-1, 'x')",
        "UPDATE orders SET note = 'y' WHERE id = -1",
        "DELETE FROM orders WHERE id = -1",
        "CREATE TABLE public.newt (i int)",
        "CREATE SCHEMA news",
        "TRUNCATE orders",
        "INSERT INTO sales.t (x) VALUES (3)",
    ] {
        c.batch_execute(stmt)
            .await
            .unwrap_or_else(|e| panic!("writable analytics role could not run {stmt}: {e}\n{log}"));
    }
}

async fn scenario(
    e: &Env,
    root: &Path,
    kopia: &Kopia,
    name: &str,
    dir: &Path,
    sums: &HashMap<String, (i64, String)>,
) {
    let t0 = Instant::now();
    let snapshot = kopia.snapshot(dir);
    let target = root.join("restores").join(name);
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    let out = run(Command::new(env!("CARGO_BIN_EXE_pgro"))
        .args(["restore", "--snapshot", &snapshot, "--target"])
        .arg(&target)
        .arg("--path")
        .arg(kopia.repo())
        .env("KOPIA_PASSWORD", &kopia.password)
        .env("NO_COLOR", "1"));
    let result: serde_json::Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|err| panic!("restore output {out:?}: {err}"));
    let pgdata = PathBuf::from(result["pgdata"].as_str().unwrap());
    let read_only = name != "basebackup";
    let mut inst = start_instance(e, &target, &pgdata, &snapshot, read_only, 1, None);
    inst.wait_ready();
    let log = inst.log();

    // Data equals the source at the snapshot's point; the analytics role reads every table.
    let mut clients = HashMap::new();
    for db in ["postgres", "app", "intl"] {
        clients.insert(db, inst.analytics(db).await);
    }
    for (db, t) in TABLES {
        let got = checksum(&clients[db], t).await;
        assert_eq!(&got, &sums[&format!("{db}.{t}")], "{name}: {db}.{t}\n{log}");
    }
    let pg = &clients["postgres"];
    if name != "nowal" {
        // TPC-B keeps balances and history in step within each transaction: equal sums = consistent copy.
        let row = pg
            .query_one(
                "SELECT (SELECT sum(abalance) FROM pgbench_accounts)::bigint, (SELECT coalesce(sum(delta), 0) FROM pgbench_history)::bigint, \
                 (SELECT sum(tbalance) FROM pgbench_tellers)::bigint, (SELECT count(*) FROM pgbench_accounts)",
                &[],
            )
            .await
            .unwrap();
        let (a, h, t, n): (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
        assert_eq!((a, t, n), (h, h, 100_000), "{name}: pgbench invariants");
        if name == "crash" {
            assert!(
                h != 0 || log.contains("redo"),
                "crash copy should contain pgbench work"
            );
        }
    }
    // Never waits for a primary; source passwords fail; pgro_admin logs in with scram over TCP.
    let in_recovery: bool = pg
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!in_recovery, "{name}: still in recovery");
    for (u, p) in [("alice", "alice-pw"), ("bob", "bob-pw")] {
        assert!(
            connect_tcp(inst.port, u, p, "postgres").await.is_err(),
            "{name}: source password of {u} works"
        );
    }
    let admin = connect_tcp(inst.port, "pgro_admin", ADMIN_PW, "postgres")
        .await
        .expect("pgro_admin login");
    let su: bool = admin
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(su);
    // I5: restore_info readable by the analytics role.
    let info = pg
        .query_one("SELECT snapshot_id, stage, fixes::text, snapshot_time IS NOT NULL FROM _pgro.restore_info", &[])
        .await
        .unwrap();
    assert_eq!(info.get::<_, String>(0), snapshot);
    assert_eq!(info.get::<_, String>(1), "ready");
    let fixes: serde_json::Value = serde_json::from_str(&info.get::<_, String>(2)).unwrap();
    assert!(info.get::<_, bool>(3));
    // I6: the database whose locale is missing was switched and recorded.
    let coll: String = pg
        .query_one(
            "SELECT datcollate::text FROM pg_database WHERE datname = 'intl'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(coll, "C.UTF-8");
    assert!(
        fixes
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["fix"] == "locale" && f["database"] == "intl"),
        "{fixes}"
    );
    let resetwal = fixes
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["fix"] == "pg_resetwal");
    if name == "nowal" {
        assert!(resetwal, "nowal: fallback not recorded: {fixes}");
        assert!(
            log.contains("WARN") && log.contains("pg_resetwal"),
            "nowal: no warning printed:\n{log}"
        );
    } else {
        assert!(
            !resetwal,
            "{name}: pg_resetwal used although WAL was complete:\n{log}"
        );
    }
    // I4
    if read_only {
        assert_read_only(pg, &log).await;
    } else {
        assert_writable(&clients["app"], &log).await;
    }
    drop(clients);
    drop(admin);

    // Idempotent restart; SIGTERM → fast shutdown, exit code 0, postmaster reaped.
    let before = config_files(&pgdata);
    let status = inst.proc.stop().expect("status");
    assert!(
        status.success(),
        "{name}: exit status {status}\n{}",
        inst.log()
    );
    assert!(
        !pgdata.join("postmaster.pid").exists(),
        "{name}: postmaster still running"
    );
    if name == "clean" {
        let mut again = start_instance(
            e,
            &target,
            &pgdata,
            &snapshot,
            read_only,
            2,
            Some((inst.port, inst.probe)),
        );
        again.wait_ready();
        assert_eq!(
            config_files(&pgdata),
            before,
            "config files changed on restart"
        );
        let conf = before[0].1.clone();
        let mut lines: Vec<&str> = conf.lines().filter(|l| !l.starts_with('#')).collect();
        let n = lines.len();
        lines.sort_unstable();
        lines.dedup();
        assert_eq!(
            lines.len(),
            n,
            "duplicate lines in postgresql.conf:\n{conf}"
        );
        let pgro_conf = before[1].1.clone();
        assert!(
            pgro_conf.trim_end().ends_with("work_mem = '16MB'"),
            "{pgro_conf}"
        );
        assert!(
            !conf.lines().any(|l| l.starts_with("restore_command"))
                && conf.contains("work_mem = '8MB'"),
            "{conf}"
        );
        let c = again.analytics("postgres").await;
        let fixes: String = c
            .query_one("SELECT fixes::text FROM _pgro.restore_info", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            fixes.matches("\"locale\"").count(),
            1,
            "fixes duplicated on restart: {fixes}"
        );
        drop(c);
        assert!(again.proc.stop().unwrap().success());
    }
    eprintln!("scenario {name}: ok in {:.1}s", t0.elapsed().as_secs_f64());
}

async fn instance_scenarios(major: u32) {
    let Some(e) = env_for(major) else { return };
    let t0 = Instant::now();
    let tmp = test_root("pgro-inst");
    let root = tmp.path();
    let with_nowal = e.bin.join("pg_resetwal").exists();
    if !with_nowal {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PostgreSQL {major}: no pg_resetwal in {}; CI=true makes the missing-WAL scenario mandatory",
            e.bin.display()
        );
        eprintln!(
            "PostgreSQL {major}: no pg_resetwal in {} — the missing-WAL scenario is skipped",
            e.bin.display()
        );
    }
    let (mut src, sums) = build_source(&e, root).await;
    let states = capture_states(&e, root, &mut src, with_nowal).await;
    src.stop();
    eprintln!(
        "PostgreSQL {major}: source and {} states in {:.1}s",
        states.len(),
        t0.elapsed().as_secs_f64()
    );
    let kopia = Kopia::create(e.kopia.clone(), root.join("kopia"));
    for (name, dir) in &states {
        scenario(&e, root, &kopia, name, dir, &sums).await;
    }
    eprintln!(
        "PostgreSQL {major}: all scenarios in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn instance_serves_every_source_state_pg15() {
    instance_scenarios(15).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn instance_serves_every_source_state_pg16() {
    instance_scenarios(16).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn instance_serves_every_source_state_pg17() {
    instance_scenarios(17).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn instance_serves_every_source_state_pg18() {
    instance_scenarios(18).await;
}
