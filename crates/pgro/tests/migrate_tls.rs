//! `pgro migrate-schemas` between real PostgreSQL instances across the TLS upgrade: the serving restore was
//! made by a pgro without TLS (plain text), the new one serves TLS only. With `--source-plain-text` (what
//! the operator passes when the source's Deployment has no certificate) the schema is copied, read from the
//! source in plain text and written to the target over verified TLS; without it the source is refused.

#![allow(clippy::unwrap_used)]

mod instance_support;

use std::path::Path;
use std::process::Command;

use instance_support::instance::{
    ADMIN_PW, ANALYTICS, TlsFiles, env_for, first_value, start_instance_on,
};
use instance_support::{free_port, test_root};
use pgro::operator::certificates::{issue_all, server_names};
use pgro::postgres::tls;

const NAME: &str = "ro.team.svc";

async fn admin(addr: &str, port: u16, ca: Option<&[u8]>) -> tokio_postgres::Client {
    let (c, conn_task) = match ca {
        Some(ca) => {
            let mut cfg = tls::config(NAME, addr.parse().unwrap(), port);
            cfg.user("pgro_admin").password(ADMIN_PW).dbname("postgres");
            let (c, conn) = cfg.connect(tls::connector(ca).unwrap()).await.unwrap();
            (c, tokio::spawn(conn))
        }
        None => {
            let mut cfg = tokio_postgres::Config::new();
            cfg.host(addr)
                .port(port)
                .user("pgro_admin")
                .password(ADMIN_PW)
                .dbname("postgres");
            let (c, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
            (c, tokio::spawn(conn))
        }
    };
    drop(conn_task);
    c
}

fn migrate(bin: &Path, port: u16, ca: &Path, plain_source: bool) -> std::process::Output {
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgro"));
    cmd.args([
        "migrate-schemas",
        "--source-host",
        "127.0.0.1",
        "--target-host",
        "127.0.0.2",
    ])
    .args([
        "--port",
        &port.to_string(),
        "--schema",
        "keep",
        "--owner",
        ANALYTICS,
    ])
    .args([
        "--budget",
        "60s",
        "--tls-server-name",
        NAME,
        "--tls-ca-file",
    ])
    .arg(ca)
    .env("PGPASSWORD", ADMIN_PW)
    .env("PATH", path);
    if plain_source {
        cmd.arg("--source-plain-text");
    }
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_text_source_migrates_into_a_tls_target() {
    let Some(e) = env_for(16) else { return };
    let tmp = test_root("pgro-mig");
    let root = tmp.path();
    let exe = Path::new(env!("CARGO_BIN_EXE_pgro"));
    let port = free_port();
    // Source: an instance as pgro made them before TLS (no certificate), on 127.0.0.1.
    let (src_dir, dst_dir) = (root.join("src"), root.join("dst"));
    for d in [&src_dir, &dst_dir] {
        std::fs::create_dir_all(d).unwrap();
        e.user.mkdir(&d.join("data"));
        e.initdb(&d.join("data"));
    }
    let mut src = start_instance_on(
        &e,
        &src_dir,
        &src_dir.join("data"),
        "old",
        true,
        1,
        Some((port, free_port())),
        exe,
        &[],
        "127.0.0.1",
    );
    // Target: TLS only, on 127.0.0.2 with the same port (as two Services would be).
    let issued = issue_all(
        "ro",
        "team",
        &server_names("ro", "team", "cluster.local"),
        jiff::Timestamp::now(),
    )
    .unwrap();
    let files = TlsFiles::write(&e, &root.join("tls"), &issued);
    let ca = &files.ca;
    let args = files.args(NAME);
    let mut dst = start_instance_on(
        &e,
        &dst_dir,
        &dst_dir.join("data"),
        "new",
        true,
        2,
        Some((port, free_port())),
        exe,
        &args,
        "127.0.0.2",
    );
    src.wait_ready();
    dst.wait_ready();
    let s = admin("127.0.0.1", port, None).await;
    s.batch_execute("CREATE SCHEMA keep; CREATE TABLE keep.notes AS SELECT g AS n FROM generate_series(1, 42) g")
        .await
        .unwrap();

    let refused = migrate(&e.bin, port, ca, false);
    assert!(
        !refused.status.success(),
        "TLS to a plain-text source must fail"
    );
    let out = migrate(&e.bin, port, ca, true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"complete\""), "{stdout}");
    let t = admin("127.0.0.2", port, Some(issued.ca_crt.as_bytes())).await;
    assert_eq!(
        first_value(&t, "SELECT count(*) FROM keep.notes").await,
        "42"
    );
    assert_eq!(
        first_value(
            &t,
            "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'keep'"
        )
        .await,
        ANALYTICS
    );
    assert!(src.proc.stop().unwrap().success());
    assert!(dst.proc.stop().unwrap().success());
}
