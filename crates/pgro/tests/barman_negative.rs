//! What a user sees when a barman-cloud store is not as it should be, at the command line (the same calls
//! the restore Job and the PostgreSQL pod make): FAILED and STARTED backups listed but never restored, a
//! truncated tar, a missing or foreign WAL segment, wrong credentials, and the store going away mid-replay
//! — each a clear message and the exit code of its class, never a silently older copy. The store is
//! written by the real barman-cloud; the damage is done with plain S3 calls. Outside CI a missing
//! component skips; under `CI=true` it fails.

mod barman_support;

use std::path::Path;

use barman_support::{Cfg, pgro_json, s3};
use object_store::ObjectStore as _;
use object_store::path::Path as Key;
use pgro_testkit::barman::{BarmanOptions, BarmanWorld};
use pgro_testkit::fixtures::MINIO_SECRET;

async fn get(s3: &object_store::aws::AmazonS3, key: &str) -> Vec<u8> {
    s3.get(&Key::from(key))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes")
        .to_vec()
}

async fn put(s3: &object_store::aws::AmazonS3, key: &str, data: Vec<u8>) {
    s3.put(&Key::from(key), data.into()).await.expect("put");
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn fake_pgdata(dir: &Path, system_id: u64, version: &str) {
    std::fs::create_dir_all(dir.join("global")).expect("mkdir");
    let mut control = vec![0u8; 8192];
    control[..8].copy_from_slice(&system_id.to_ne_bytes());
    std::fs::write(dir.join("global/pg_control"), control).expect("pg_control");
    std::fs::write(dir.join("PG_VERSION"), format!("{version}\n")).expect("PG_VERSION");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_stores_fail_clearly_with_their_exit_class() {
    let test = "damaged_stores_fail_clearly_with_their_exit_class";
    let options = BarmanOptions {
        major: 16,
        ..BarmanOptions::default()
    };
    let Some(world) = BarmanWorld::start(test, ("cnpg", "cluster-example"), &options).await else {
        return;
    };
    let cluster = &world.cluster;
    cluster
        .backup("backup-1", &["--gzip"])
        .await
        .expect("backup");
    let last = cluster.switch_wal().await.expect("switch");
    let cfg = Cfg::new(&world);
    let s3 = s3(&world);
    let base = "cnpg/cluster-example/base";
    let id = pgro_json(&cfg.cmd(&["backups", "list", "--json"]))[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let info =
        String::from_utf8(get(&s3, &format!("{base}/{id}/backup.info")).await).expect("utf-8");
    assert!(info.contains("status=DONE"), "{info}");

    // Newer FAILED and STARTED backups (an upload that failed, one still running or killed) are listed
    // with their status, never restored; asking for one by ID says why.
    for (newer, status) in [
        ("20991231T000000", "FAILED"),
        ("20991231T000001", "STARTED"),
    ] {
        put(
            &s3,
            &format!("{base}/{newer}/backup.info"),
            info.replace("status=DONE", &format!("status={status}"))
                .into_bytes(),
        )
        .await;
    }
    let rows = pgro_json(&cfg.cmd(&["backups", "list", "--json"]));
    let kinds: Vec<&str> = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["kind"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds, ["DONE", "FAILED", "STARTED"], "{rows}");
    let root = world.root.path();
    let target = |n: &str| root.join(n).to_string_lossy().into_owned();
    let latest = pgro_json(&cfg.cmd(&[
        "restore",
        "--backup",
        "latest",
        "--target",
        &target("latest"),
    ]));
    assert_eq!(
        latest["snapshot"],
        id.as_str(),
        "the newest DONE backup: {latest}"
    );
    let out = cfg.cmd(&[
        "restore",
        "--backup",
        "20991231T000000",
        "--target",
        &target("failed"),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("only a DONE backup restores"),
        "{}",
        stderr(&out)
    );

    // A DONE backup whose data.tar.gz was cut short: exit 5 (corrupted), naming the object.
    let tar = get(&s3, &format!("{base}/{id}/data.tar.gz")).await;
    let old = "20000101T000000";
    put(
        &s3,
        &format!("{base}/{old}/backup.info"),
        info.clone().into_bytes(),
    )
    .await;
    put(
        &s3,
        &format!("{base}/{old}/data.tar.gz"),
        tar[..tar.len() / 2].to_vec(),
    )
    .await;
    let out = cfg.cmd(&["restore", "--backup", old, "--target", &target("truncated")]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{old}/data.tar.gz")),
        "{}",
        stderr(&out)
    );
    // … and one that is a volume-snapshot backup or has no data.tar at all is refused before writing.
    let empty = "20000101T000001";
    put(
        &s3,
        &format!("{base}/{empty}/backup.info"),
        info.clone().into_bytes(),
    )
    .await;
    let out = cfg.cmd(&["restore", "--backup", empty, "--target", &target("empty")]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("no data.tar"), "{}", stderr(&out));

    // WAL: a segment the archive does not hold is "not found" (exit 1, PostgreSQL's end of archive);
    // one of another cluster (same serverName reused) is fatal (126) and says so.
    let pgdata = root.join("pgdata-check");
    let system_id = cluster.system_id().expect("system id");
    fake_pgdata(&pgdata, system_id, "16");
    let wal = |name: &str, pgdata: &Path| {
        cfg.cmd(&[
            "wal-fetch",
            "--pgdata",
            &pgdata.to_string_lossy(),
            name,
            &root.join("fetched").to_string_lossy(),
        ])
    };
    let out = wal(&last, &pgdata);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        std::fs::metadata(root.join("fetched"))
            .expect("fetched")
            .len(),
        16 << 20
    );
    let out = wal("0000000100000000000000FE", &pgdata);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let foreign = root.join("pgdata-foreign");
    fake_pgdata(&foreign, system_id ^ 1, "16");
    let out = wal(&last, &foreign);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("another cluster's WAL"),
        "{}",
        stderr(&out)
    );

    // Wrong credentials: exit 7 naming what was refused; the secret never appears.
    let wrong = root.join("cfg/secret/minio/ACCESS_SECRET_KEY");
    std::fs::write(&wrong, "not-the-secret-key").expect("write");
    let out = cfg.cmd(&["backups", "list"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cluster-example/base/"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("not-the-secret-key"));
    std::fs::write(&wrong, format!("{MINIO_SECRET}\n")).expect("write");

    // The store goes away during replay: a segment that exists cannot be read — fatal (126), never
    // "not found", so PostgreSQL cannot take an outage for the end of the archive and promote early.
    let BarmanWorld {
        cluster,
        minio,
        root,
    } = world;
    cluster.stop().await;
    drop(minio);
    let out = cfg.cmd(&[
        "wal-fetch",
        "--storage-attempts",
        "2",
        "--pgdata",
        &pgdata.to_string_lossy(),
        &last,
        &root.path().join("fetched-2").to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert!(!root.path().join("fetched-2").exists());
}

/// `endpointCA`: an HTTPS endpoint signed by a private CA is read when the CA is referenced, and refused
/// (exit 7, naming the certificate problem) when it is not — never read without verification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_endpoint_is_trusted_through_endpoint_ca_only() {
    let test = "an_https_endpoint_is_trusted_through_endpoint_ca_only";
    let root = pgro_testkit::fixtures::test_root("barman-tls-");
    let Some((minio, ca)) = pgro_testkit::skip_unless_ci(
        pgro_testkit::fixtures::Minio::start_tls(
            &pgro_testkit::Components::load(),
            &root.path().join("minio"),
            &[BarmanWorld::BUCKET],
        )
        .await,
        test,
    ) else {
        return;
    };
    let yaml = |ca_ref: &str| {
        format!(
            "barmanCloud:
  destinationPath: s3://{}/cnpg
  serverName: cluster-example
  endpointURL: https://{}
  {ca_ref}
  s3Credentials:
    accessKeyId: {{name: minio, key: ACCESS_KEY_ID}}
    secretAccessKey: {{name: minio, key: ACCESS_SECRET_KEY}}
",
            BarmanWorld::BUCKET,
            minio.endpoint()
        )
    };
    let trusted = Cfg::at(
        &root.path().join("trusted"),
        &yaml("endpointCA: {name: minio-ca, key: ca.crt}"),
    );
    std::fs::create_dir_all(trusted.secrets.join("minio-ca")).expect("mkdir");
    std::fs::write(trusted.secrets.join("minio-ca/ca.crt"), &ca).expect("ca");
    let rows = pgro_json(&trusted.cmd(&["backups", "list", "--json"]));
    assert_eq!(rows, serde_json::json!([]), "an empty store, read over TLS");

    let untrusted = Cfg::at(&root.path().join("untrusted"), &yaml(""));
    let out = untrusted.cmd(&["backups", "list", "--storage-attempts", "1"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(
        stderr(&out).to_lowercase().contains("certificate"),
        "{}",
        stderr(&out)
    );
    drop(minio);
}
