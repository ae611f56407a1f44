//! What an outside test found, reproduced on real PostgreSQL 15–18 with real kopia snapshots:
//!
//! * tablespaces: the copy uses the tablespace inside the snapshot and never opens the source's path, which
//!   stays byte-identical whether it exists on this host or not; a snapshot without the tablespace fails
//!   the restore before anything is downloaded, naming the tablespace;
//! * a hostile pre-existing analytics role (superuser, owner of tables, a schema and a database, its own
//!   `default_transaction_read_only = off`, `CONNECTION LIMIT 0`, expired) can log in and write nothing:
//!   every statement of an attack list is refused, and what a role may change about itself is put back;
//! * clear failures: no binaries of the data directory's major, a missing `pg_control`, an unknown
//!   `shared_preload_libraries`, a target that holds another snapshot; no noise at the first start.

#![allow(clippy::unwrap_used)]

mod instance_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use instance_support::instance::{
    ADMIN_PW, ANALYTICS, ANALYTICS_PW, Env, Instance, Source, connect_socket, connect_tcp, env_for,
    start_instance,
};
use instance_support::{Kopia, file_tree, free_port, run, test_root};
use tokio_postgres::Client;

/// Exit codes documented in the README ("Exit codes").
const EXIT_TARGET_NOT_EMPTY: i32 = 11;
const EXIT_MISSING_TABLESPACE: i32 = 12;
const EXIT_INSTANCE_DATA_DIR: i32 = 3;
const EXIT_INSTANCE_START: i32 = 4;
const EXIT_INSTANCE_NO_BINARIES: i32 = 5;

/// The source: `src/data` (PGDATA) and `src/ts1` (tablespace `ts1`), with a hostile `analytics` role.
async fn build_source(e: &Env, root: &Path) -> Source {
    let top = root.join("src");
    let dir = top.join("data");
    let ts = top.join("ts1");
    let sock = root.join("srcsock");
    for d in [&top, &dir, &ts, &sock] {
        e.user.mkdir(d);
    }
    e.initdb(&dir);
    let port = free_port();
    // A Debian-layout source keeps pg_ident.conf outside PGDATA.
    std::fs::remove_file(dir.join("pg_ident.conf")).unwrap();
    let mut conf = std::fs::read_to_string(dir.join("postgresql.conf")).unwrap();
    conf.push_str(&format!(
        "port = {port}\nunix_socket_directories = '{}'\nlisten_addresses = ''\n\
         ident_file = '/etc/postgresql/pgro-test/main/pg_ident.conf'\n",
        sock.display()
    ));
    std::fs::write(dir.join("postgresql.conf"), conf).unwrap();
    let mut src = Source {
        dir,
        sock: sock.clone(),
        port,
        proc: None,
    };
    src.start(e);
    let pg = connect_socket(&sock, port, "postgres").await;
    // One statement at a time: CREATE TABLESPACE/DATABASE refuse to run in a (implicit) transaction block.
    let setup = format!(
        "CREATE TABLESPACE ts1 LOCATION '{}';
         CREATE ROLE app_writer;
         CREATE ROLE {ANALYTICS} SUPERUSER LOGIN PASSWORD 'source-pw' CONNECTION LIMIT 0 VALID UNTIL '2000-01-01';
         CREATE TABLE items (id int PRIMARY KEY, v text);
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g;
         CREATE TABLE ts_only (id int, v text) TABLESPACE ts1;
         INSERT INTO ts_only SELECT g, md5(g::text) FROM generate_series(1, 1000) g;
         CREATE INDEX ts_only_id ON ts_only (id) TABLESPACE ts1;
         GRANT INSERT, UPDATE, DELETE ON items TO app_writer;
         GRANT app_writer TO {ANALYTICS};
         GRANT INSERT ON items TO PUBLIC;
         GRANT CREATE ON SCHEMA public TO PUBLIC;
         CREATE SCHEMA aschema AUTHORIZATION {ANALYTICS};
         CREATE TABLE aschema.owned (i int);
         ALTER TABLE aschema.owned OWNER TO {ANALYTICS};
         INSERT INTO aschema.owned VALUES (1), (2);
         CREATE SEQUENCE aschema.seq;
         CREATE VIEW aschema.v AS SELECT id FROM items;
         CREATE MATERIALIZED VIEW aschema.mv AS SELECT count(*) AS n FROM items;
         CREATE FUNCTION public.bump() RETURNS int SECURITY DEFINER LANGUAGE sql
           AS 'INSERT INTO items VALUES (-5, ''x'') RETURNING id';
         GRANT EXECUTE ON FUNCTION pg_read_file(text) TO PUBLIC;
         SELECT lo_from_bytea(0, 'source large object');
         ALTER ROLE {ANALYTICS} SET default_transaction_read_only = off;
         ALTER ROLE {ANALYTICS} IN DATABASE postgres SET default_transaction_read_only = off;
         CREATE DATABASE tsdb TABLESPACE ts1;
         CREATE DATABASE adb OWNER {ANALYTICS};",
        ts.display()
    );
    for stmt in setup.split(";\n") {
        pg.batch_execute(stmt)
            .await
            .unwrap_or_else(|e| panic!("{stmt}: {e}"));
    }
    connect_socket(&sock, port, "tsdb")
        .await
        .batch_execute("CREATE TABLE t AS SELECT generate_series(1, 100) AS g")
        .await
        .unwrap();
    connect_socket(&sock, port, "adb")
        .await
        .batch_execute(&format!(
            "CREATE TABLE mine AS SELECT generate_series(1, 3) AS i; ALTER TABLE mine OWNER TO {ANALYTICS};
             ALTER ROLE {ANALYTICS} IN DATABASE adb SET default_transaction_read_only = off;"
        ))
        .await
        .unwrap();
    pg.batch_execute("CHECKPOINT").await.unwrap();
    src
}

fn pgro_restore(kopia: &Kopia, snapshot: &str, target: &Path) -> (Output, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_pgro"))
        .args(["restore", "--snapshot", snapshot, "--target"])
        .arg(target)
        .arg("--path")
        .arg(kopia.repo())
        .env("KOPIA_PASSWORD", &kopia.password)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let json = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim())
        .unwrap_or(serde_json::Value::Null);
    (out, json)
}

/// Statements the analytics role must never get through, in every database it can reach.
const ATTACKS: &[&str] = &[
    "INSERT INTO items VALUES (-1, 'x')",
    "UPDATE items SET v = 'x' WHERE id = 1",
    "DELETE FROM items WHERE id = 1",
    "TRUNCATE items",
    "INSERT INTO aschema.owned VALUES (3)",
    "ALTER TABLE aschema.owned ADD COLUMN z int",
    "DROP TABLE aschema.owned",
    "CREATE TABLE public.newt (i int)",
    "CREATE SCHEMA news",
    "CREATE TEMP TABLE tt (i int)",
    "CREATE TEMP VIEW tv AS SELECT 1",
    "DO $$ BEGIN INSERT INTO items VALUES (-2, 'x'); END $$",
    "SELECT nextval('aschema.seq')",
    "SELECT setval('aschema.seq', 42)",
    "LOCK TABLE items IN ACCESS EXCLUSIVE MODE",
    "COPY items TO PROGRAM 'true'",
    "COPY items FROM PROGRAM 'true'",
    "COPY items TO '/tmp/pgro-attack'",
    "COPY items FROM '/etc/hostname'",
    "SELECT pg_read_file('PG_VERSION')",
    "SELECT lo_creat(-1)",
    "SELECT lo_create(0)",
    "SELECT lo_from_bytea(0, 'x')",
    "SELECT public.bump()",
    "REFRESH MATERIALIZED VIEW aschema.mv",
    "CREATE INDEX ON items (v)",
    "GRANT SELECT ON items TO PUBLIC",
    "COMMENT ON TABLE items IS 'x'",
    "ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO PUBLIC",
    "ALTER ROLE analytics SUPERUSER",
    "CREATE ROLE intruder",
    "CREATE DATABASE intruder",
    "SET ROLE app_writer",
    "SET ROLE postgres",
    "SET SESSION AUTHORIZATION postgres",
    "CREATE EXTENSION IF NOT EXISTS hstore",
    "DROP EXTENSION plpgsql",
    "SELECT rolpassword FROM pg_authid",
    "INSERT INTO _pgro.restore_info (stage) VALUES ('x')",
];

/// Runs every attack three ways (default session; after `SET default_transaction_read_only = off`, as its
/// own statement so the next transaction starts read-write; in `BEGIN READ WRITE`) and asserts each is
/// refused.
async fn assert_attacks_refused(c: &Client, db: &str, log: &str) {
    for stmt in ATTACKS {
        for how in ["default", "guc off", "read write"] {
            let r = match how {
                "default" => c.batch_execute(stmt).await,
                "guc off" => {
                    c.batch_execute("SET default_transaction_read_only = off")
                        .await
                        .unwrap();
                    c.batch_execute(stmt).await
                }
                _ => {
                    c.batch_execute(&format!("BEGIN READ WRITE; {stmt}; COMMIT"))
                        .await
                }
            };
            let _ = c.batch_execute("ROLLBACK").await;
            let _ = c.batch_execute("RESET ALL").await;
            // With the session setting off, a refusal must come from privileges, not from a read-only
            // transaction (SQLSTATE 25006).
            if let Some(d) = r
                .as_ref()
                .err()
                .and_then(tokio_postgres::Error::as_db_error)
            {
                assert!(
                    how == "default" || d.code().code() != "25006",
                    "{db}: `{stmt}` ({how}) was refused only because the transaction was read-only"
                );
            }
            assert!(
                r.is_err(),
                "{db}: the read-only analytics role ran `{stmt}` ({how})\n{log}"
            );
        }
    }
}

async fn admin(inst: &Instance, db: &str) -> Client {
    connect_tcp(inst.port, "pgro_admin", ADMIN_PW, db)
        .await
        .unwrap()
}

/// Reads every user relation of the connected database as the analytics role.
async fn assert_reads_everything(adm: &Client, c: &Client, db: &str) {
    let rels = adm
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'v', 'm', 'S', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_toast%'",
            &[],
        )
        .await
        .unwrap();
    assert!(!rels.is_empty());
    for r in rels {
        let rel: String = r.get(0);
        c.query(&format!("SELECT * FROM {rel} LIMIT 1"), &[])
            .await
            .unwrap_or_else(|e| panic!("{db}: analytics cannot read {rel}: {e}"));
    }
}

/// `ALTER ROLE <self> PASSWORD` and `ALTER ROLE <self> SET` need no privilege: they are put back at once.
async fn assert_self_changes_reverted(inst: &Instance, adm: &Client) {
    let c = inst.analytics("postgres").await;
    c.batch_execute("SET default_transaction_read_only = off")
        .await
        .unwrap();
    // PostgreSQL lets a role change its own password and settings; pgro puts them back.
    c.batch_execute(&format!("ALTER ROLE {ANALYTICS} PASSWORD 'hijacked'"))
        .await
        .unwrap();
    c.batch_execute(&format!(
        "ALTER ROLE {ANALYTICS} SET default_transaction_read_only = off"
    ))
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let old_works = connect_tcp(inst.port, ANALYTICS, ANALYTICS_PW, "postgres")
            .await
            .is_ok();
        let new_works = connect_tcp(inst.port, ANALYTICS, "hijacked", "postgres")
            .await
            .is_ok();
        let settings: Vec<String> = adm
            .query(
                "SELECT array_to_string(s.setconfig, ',') FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole \
                 WHERE r.rolname = $1",
                &[&ANALYTICS],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        if old_works && !new_works && settings == ["default_transaction_read_only=on"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the analytics role's own changes were not reverted (old password works: {old_works}, \
             new works: {new_works}, settings {settings:?})\n{}",
            inst.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A restored copy served read-only with the hostile role: reads work, attacks fail.
async fn serve_and_attack(e: &Env, target: &Path, pgdata: &Path, snapshot: &str, source_ts: &Path) {
    let mut inst = start_instance(e, target, pgdata, snapshot, true, 1, None);
    inst.wait_ready();
    let log = inst.log();
    for noise in [
        "role \"pgro_admin\" does not exist",
        "could not open usermap file",
    ] {
        assert!(!log.contains(noise), "first start logged `{noise}`:\n{log}");
    }
    let adm = admin(&inst, "postgres").await;
    let c = inst.analytics("postgres").await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM ts_only WHERE v = md5(id::text)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1000, "tablespace rows");
    let n: i64 = inst
        .analytics("tsdb")
        .await
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 100, "database in the tablespace");
    let loc: String = adm
        .query_one(
            "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        !Path::new(&loc).starts_with(source_ts),
        "tablespace still at the source path: {loc}"
    );
    let state: String = c
        .query_one("SELECT source_state FROM _pgro.restore_info", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "clean-shutdown");
    assert_reads_everything(&adm, &c, "postgres").await;
    assert_attacks_refused(&c, "postgres", &log).await;
    let adb = inst.analytics("adb").await;
    assert_reads_everything(&admin(&inst, "adb").await, &adb, "adb").await;
    assert_attacks_refused(&adb, "adb", &log).await;
    let owned: i64 = adm
        .query_one(
            "SELECT (SELECT count(*) FROM pg_class WHERE relowner = r.oid) + (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid) \
             + (SELECT count(*) FROM pg_database WHERE datdba = r.oid) FROM pg_roles r WHERE rolname = $1",
            &[&ANALYTICS],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owned, 0, "the analytics role still owns objects");
    let (rows, los): (i64, i64) = {
        let r = adm
            .query_one("SELECT (SELECT count(*) FROM items), (SELECT count(*) FROM pg_largeobject_metadata)", &[])
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((rows, los), (500, 1), "something was written");
    assert_self_changes_reverted(&inst, &adm).await;
    // The instance's own writes (roles, checkpoints) happened; the source must not have seen any of them.
    adm.batch_execute("CHECKPOINT").await.unwrap();
    drop((c, adb, adm));
    assert!(inst.proc.stop().unwrap().success(), "{}", inst.log());
}

async fn hardening(major: u32) {
    let Some(e) = env_for(major) else { return };
    let t0 = Instant::now();
    let tmp = test_root("pgro-hard");
    let root = tmp.path();
    let mut src = build_source(&e, root).await;
    src.stop();
    let source_ts = root.join("src/ts1");
    let before = file_tree(&source_ts);
    let kopia = Kopia::create(e.kopia.clone(), root.join("kopia"));
    let with_ts = kopia.snapshot(&root.join("src"));
    let again = kopia.snapshot(&root.join("src"));
    let pgdata_only = kopia.snapshot(&root.join("src/data"));
    let restores = root.join("restores");
    std::fs::create_dir_all(&restores).unwrap();

    // Source path present on this host.
    let target = restores.join("present");
    let (out, res) = pgro_restore(&kopia, &with_ts, &target);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ts = &res["tablespaces"][0];
    assert_eq!(ts["name"], "ts1", "{res}");
    assert_eq!(ts["location"], source_ts.to_str().unwrap(), "{res}");
    let oid = ts["oid"].as_u64().unwrap();
    let pgdata = PathBuf::from(res["pgdata"].as_str().unwrap());
    let link = std::fs::canonicalize(pgdata.join(format!("pg_tblspc/{oid}"))).unwrap();
    assert!(
        link.starts_with(std::fs::canonicalize(&target).unwrap()),
        "{}",
        link.display()
    );
    serve_and_attack(&e, &target, &pgdata, &with_ts, &source_ts).await;
    assert!(
        file_tree(&source_ts) == before,
        "the source tablespace changed"
    );

    // A target that holds another snapshot is refused before anything is fetched; the same one resumes.
    let (out, res) = pgro_restore(&kopia, &again, &target);
    assert_eq!(out.status.code(), Some(EXIT_TARGET_NOT_EMPTY), "{res}");
    assert!(res["message"].as_str().unwrap().contains(&with_ts), "{res}");
    let (out, _) = pgro_restore(&kopia, &with_ts, &target);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Source path absent on this host.
    let away = root.join("src-away");
    std::fs::rename(root.join("src"), &away).unwrap();
    let target = restores.join("absent");
    let (out, res) = pgro_restore(&kopia, &with_ts, &target);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pgdata = PathBuf::from(res["pgdata"].as_str().unwrap());
    let mut inst = start_instance(&e, &target, &pgdata, &with_ts, true, 1, None);
    inst.wait_ready();
    let n: i64 = inst
        .analytics("postgres")
        .await
        .query_one("SELECT count(*) FROM ts_only", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1000);
    assert!(inst.proc.stop().unwrap().success());
    assert!(
        !root.join("src").exists(),
        "something was created at the source path"
    );
    std::fs::rename(&away, root.join("src")).unwrap();
    assert!(
        file_tree(&source_ts) == before,
        "the source tablespace changed"
    );

    // A snapshot without the tablespace: refused before the download, naming it.
    let target = restores.join("missing");
    let (out, res) = pgro_restore(&kopia, &pgdata_only, &target);
    assert_eq!(out.status.code(), Some(EXIT_MISSING_TABLESPACE), "{res}");
    let msg = res["message"].as_str().unwrap();
    assert!(
        msg.contains("ts1")
            && msg.contains(&oid.to_string())
            && msg.contains(source_ts.to_str().unwrap()),
        "{msg}"
    );
    assert!(
        !target.join("snapshot/base").exists(),
        "data was downloaded before the check"
    );

    clear_failures(&e, root, &restores.join("present"), major).await;
    eprintln!(
        "PostgreSQL {major}: hardening in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
}

/// Item 6: what `pgro instance` says when it cannot start.
async fn clear_failures(e: &Env, root: &Path, restored: &Path, major: u32) {
    let copy = root.join("failures");
    run(Command::new("cp").arg("-a").arg(restored).arg(&copy));
    let pgdata = copy.join("data");
    let instance = |path: &str, extra: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pgro"));
        c.arg("instance").arg("--pgdata").arg(&pgdata);
        c.args([
            "--port",
            &free_port().to_string(),
            "--listen-addresses",
            "127.0.0.1",
        ])
        .arg("--socket-dir")
        .arg(copy.join("sock"))
        .args(["--probe-address", &format!("127.0.0.1:{}", free_port())])
        .args(["--user", &e.user.name])
        .env("PATH", path)
        .env("NO_COLOR", "1");
        if let Some(x) = extra {
            c.args(["--extra-config", x]);
        }
        c.output().unwrap()
    };
    let other = if major == 15 { 16 } else { 15 };
    let other_bin = env_for(other)
        .map(|o| o.bin.display().to_string())
        .unwrap_or_default();
    for (path, what) in [
        ("/usr/bin:/bin".to_string(), "none"),
        (format!("{other_bin}:/usr/bin:/bin"), "other major"),
    ] {
        let out = instance(&path, None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(EXIT_INSTANCE_NO_BINARIES),
            "{what}: {err}"
        );
        assert!(
            err.contains(&format!(
                "PGDATA is PostgreSQL {major}; no postgres {major} binaries found on PATH"
            )),
            "{what}: {err}"
        );
    }
    let bin_path = format!("{}:/usr/bin:/bin", e.bin.display());
    let out = instance(
        &bin_path,
        Some("shared_preload_libraries = 'pgro_missing_library'"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(EXIT_INSTANCE_START), "{err}");
    assert!(
        err.contains("pgro_missing_library") && err.contains("postgresExtraConfig"),
        "{err}"
    );
    assert!(!err.contains("does not show missing WAL"), "{err}");
    std::fs::remove_file(pgdata.join("global/pg_control")).unwrap();
    let out = instance(&bin_path, None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(EXIT_INSTANCE_DATA_DIR), "{err}");
    assert!(err.contains("pg_control"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_role_and_tablespace_are_contained_pg15() {
    hardening(15).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_role_and_tablespace_are_contained_pg16() {
    hardening(16).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_role_and_tablespace_are_contained_pg17() {
    hardening(17).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_role_and_tablespace_are_contained_pg18() {
    hardening(18).await;
}
