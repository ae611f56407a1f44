//! `pgro instance` with a server certificate, against real PostgreSQL and real libpq (`psql`): TCP admits
//! TLS only, a `verify-full` client with the CA gets in under the certificate's name and under no other,
//! a plain-text client is refused with PostgreSQL's own reason, and a renewed certificate written over the
//! mounted one is served without a restart.

#![allow(clippy::unwrap_used)]

mod instance_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use instance_support::instance::{
    ANALYTICS, ANALYTICS_PW, Env, TlsFiles, env_for, secret_file, start_instance_with,
};
use instance_support::test_root;
use pgro::operator::certificates::{issue_all, issue_server, server_names};
use pgro::postgres::tls;

const NAME: &str = "ro.team.svc";

/// `psql` (libpq) with `conninfo`; its stdout, or stderr as the error.
fn psql(e: &Env, conninfo: &str) -> Result<String, String> {
    let out = Command::new(e.bin.join("psql"))
        .args([
            "--no-psqlrc",
            "-tAc",
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ])
        .arg(conninfo)
        .env("PGPASSWORD", ANALYTICS_PW)
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn conninfo(port: u16, host: &str, ca: &Path, mode: &str) -> String {
    format!(
        "host={host} hostaddr=127.0.0.1 port={port} user={ANALYTICS} dbname=postgres sslmode={mode} sslrootcert={}",
        ca.display()
    )
}

async fn tls_only(major: u32) {
    let Some(e) = env_for(major) else { return };
    let tmp = test_root("pgro-tls");
    let root = tmp.path();
    let pgdata = root.join("data");
    e.user.mkdir(&pgdata);
    e.initdb(&pgdata);
    let now = jiff::Timestamp::now();
    let issued = issue_all(
        "ro",
        "team",
        &server_names("ro", "team", "cluster.local"),
        now,
    )
    .unwrap();
    let files = TlsFiles::write(&e, &root.join("tls"), &issued);
    let (crt, key, ca) = (&files.crt, &files.key, &files.ca);
    let mut args = files.args(NAME);
    args.extend([
        std::ffi::OsStr::new("--tls-refresh"),
        std::ffi::OsStr::new("1s"),
    ]);
    let exe = Path::new(env!("CARGO_BIN_EXE_pgro"));
    let mut inst = start_instance_with(&e, root, &pgdata, "tls", true, 1, None, exe, &args);
    inst.wait_ready();
    let port = inst.port;

    // libpq, verify-full under the certificate's name: in, and the session is encrypted.
    assert_eq!(
        psql(&e, &conninfo(port, NAME, ca, "verify-full")).unwrap(),
        "t"
    );
    // The same server under a name the certificate does not carry: refused by the client.
    let err = psql(&e, &conninfo(port, "other.team.svc", ca, "verify-full")).unwrap_err();
    assert!(err.contains("does not match host name"), "{err}");
    // Plain text: refused by the server, saying why.
    let err = psql(&e, &conninfo(port, NAME, ca, "disable")).unwrap_err();
    assert!(err.contains("no encryption"), "{err}");
    // pgro's own client (what the operator and the schema migration use) verifies the same way.
    let cfg = || {
        let mut c = tls::config(NAME, "127.0.0.1".parse().unwrap(), port);
        c.user(ANALYTICS).password(ANALYTICS_PW).dbname("postgres");
        c
    };
    let (c, conn) = cfg()
        .connect(tls::connector(issued.ca_crt.as_bytes()).unwrap())
        .await
        .unwrap();
    tokio::spawn(conn);
    assert_eq!(
        c.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0),
        1
    );
    let stranger = issue_all("ro", "team", &[NAME.to_owned()], now).unwrap();
    let refused = cfg()
        .connect(tls::connector(stranger.ca_crt.as_bytes()).unwrap())
        .await;
    assert!(
        refused.is_err(),
        "a certificate from another CA must be refused"
    );
    let logged = inst.log();
    assert!(!logged.contains(ANALYTICS_PW), "no password in the log");

    // Renewal: a certificate for one more name, signed by the same CA, written over the mounted one.
    let mut names = server_names("ro", "team", "cluster.local");
    names.push("renewed.team.svc".into());
    let (new_crt, new_key) = issue_server(&issued.ca_crt, &issued.ca_key, &names, now).unwrap();
    secret_file(&e, crt, &new_crt);
    secret_file(&e, key, &new_key);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match psql(&e, &conninfo(port, "renewed.team.svc", ca, "verify-full")) {
            Ok(v) => {
                assert_eq!(v, "t");
                break;
            }
            Err(err) => assert!(
                Instant::now() < deadline,
                "the renewed certificate was not served within 60 s: {err}\n{}",
                inst.log()
            ),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        c.query_one("SELECT 2", &[]).await.unwrap().get::<_, i32>(0),
        2,
        "sessions open before the reload carry on"
    );
    assert!(inst.proc.stop().unwrap().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_only_with_verify_full_and_renewal_pg15() {
    tls_only(15).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_only_with_verify_full_and_renewal_pg18() {
    tls_only(18).await;
}
