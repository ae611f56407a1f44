//! barman-cloud sources end to end: a CloudNativePG-shaped store (its command lines, its PGDATA
//! configuration with `/controller/…` paths) written by the real barman-cloud from a host PostgreSQL into
//! the shared MinIO; the replica names it with CNPG's `barmanObjectStore` block as a Cluster has it (the
//! credentials as per-key Secret references), reaches Ready serving the newest archived commit (the Job
//! restores the base backup, the PostgreSQL pod replays the archive through `pgro wal-fetch`), records
//! `dataTime` as the last replayed commit, and switches over after a new backup.

use std::collections::BTreeMap;
use std::time::Duration;

use pgro_testkit::barman::{BarmanCluster, BarmanOptions};

use crate::READY_TIMEOUT;
use crate::e2e_support::*;

const DIGEST: &str = "SELECT md5(string_agg(x::text, ';' ORDER BY x.n)) FROM ledger x";

#[tokio::test(flavor = "multi_thread")]
async fn cnpg_shaped_barman_cloud_source_is_served_to_the_last_commit_and_switches_over() {
    let Some(w) = world("cnpg_shaped_barman_cloud_source").await else {
        return;
    };
    let ns = w.env.namespace().await.unwrap();
    let prefix = format!("cnpg-{}", ns.name());
    let options = BarmanOptions {
        major: 16,
        wal_compression: Some("--gzip".into()),
        tablespace: false,
        cnpg_conf: true,
        waldir: false,
    };
    let cluster = BarmanCluster::start(
        w.env.components(),
        &w.root.path().join(&prefix),
        &w.minio,
        (BUCKET, &prefix, "cluster-example"),
        &options,
    )
    .await
    .expect("barman-cloud source cluster");
    cluster
        .psql("CREATE TABLE ledger (n int, at timestamptz DEFAULT clock_timestamp()); INSERT INTO ledger (n) SELECT generate_series(1, 500)")
        .unwrap();
    cluster
        .backup("backup-1", &["--snappy"])
        .await
        .expect("backup");
    // Commits after the backup, archived: the copy must have them, and dataTime is the last one's time.
    cluster
        .psql("INSERT INTO ledger (n) SELECT generate_series(501, 600)")
        .unwrap();
    let last_at = cluster
        .psql("SELECT to_char(max(at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM ledger")
        .unwrap();
    cluster.switch_wal().await.unwrap();
    let expected = cluster.psql(DIGEST).unwrap();

    put_secret(
        &ns,
        "minio-creds",
        BTreeMap::from([
            ("ACCESS_KEY_ID".to_owned(), MINIO_USER.to_owned()),
            ("ACCESS_SECRET_KEY".to_owned(), MINIO_SECRET.to_owned()),
        ]),
    )
    .await;
    let gateway = w.env.kubelet().pod_gateway();
    // The Cluster's `backup.barmanObjectStore`, as CNPG users have it (wal/data included).
    let spec = format!(
        "source:
  barmanCloud:
    destinationPath: s3://{BUCKET}/{prefix}
    serverName: cluster-example
    endpointURL: http://{gateway}:{}
    s3Credentials:
      accessKeyId: {{name: minio-creds, key: ACCESS_KEY_ID}}
      secretAccessKey: {{name: minio-creds, key: ACCESS_SECRET_KEY}}
    wal: {{compression: gzip, maxParallel: 8}}
    data: {{compression: snappy, immediateCheckpoint: true}}
schedule: '* * * * *'
scheduleJitter: '0'
switchoverGracePeriod: 10s
",
        w.minio_port
    );
    let name = "cnpg";
    create_replica(&ns, &replica_yaml(name, &spec)).await;
    let r = wait_replica(w, &ns, name, "Ready", READY_TIMEOUT, |r, _| {
        phase_is(r, "Ready")
    })
    .await;
    assert!(
        cond_is(&r, "SourceValid", "True", "RepositoryOpened"),
        "{:?}",
        r.status
    );
    let first = current(&r).unwrap();
    assert_eq!(
        served_digest(w, &ns, name, DIGEST).await,
        expected,
        "the copy serves the newest archived commit"
    );
    let restore = wait_restore_reported(&ns, &first).await;
    let status = restore.status.clone().unwrap();
    assert_eq!(status.source.as_deref(), Some("barmanCloud"));
    // Both at whole seconds (metav1.Time's resolution; the source's time truncated to match).
    let data_time: jiff::Timestamp = status.data_time.clone().expect("dataTime").0;
    let last: jiff::Timestamp = last_at.parse().unwrap();
    assert!(
        data_time >= last && data_time <= jiff::Timestamp::now(),
        "dataTime {data_time} is the last replayed commit ({last_at}): {status:?}"
    );
    assert!(
        status
            .wal_replayed
            .as_ref()
            .is_some_and(|w| w.segments > 0 && w.bytes > 0),
        "{status:?}"
    );

    // A new backup and more commits: the next scheduled refresh switches over to them.
    cluster
        .psql("INSERT INTO ledger (n) SELECT generate_series(601, 700)")
        .unwrap();
    cluster
        .backup("backup-2", &["--bzip2"])
        .await
        .expect("second backup");
    cluster
        .psql("INSERT INTO ledger (n) SELECT generate_series(701, 800)")
        .unwrap();
    cluster.switch_wal().await.unwrap();
    let expected = cluster.psql(DIGEST).unwrap();
    let r = wait_replica(
        w,
        &ns,
        name,
        "switched over",
        READY_TIMEOUT + Duration::from_secs(60),
        |r, _| phase_is(r, "Ready") && current(r).is_some_and(|c| c != first),
    )
    .await;
    assert_eq!(
        served_digest(w, &ns, name, DIGEST).await,
        expected,
        "after the switchover: {:?}",
        current(&r)
    );
    cluster.stop().await;
}
