//! pgBackRest sources end to end: a PGO-shaped repository (stanza `db`, `/pgbackrest/…/repo1` in S3, gz,
//! the Secret in PGO's `s3.conf` form) written by the real pgBackRest from a host PostgreSQL; the replica
//! reaches Ready serving the source's newest archived commit (the restore Job restores the backup, the
//! PostgreSQL pod replays the archive through `pgro wal-fetch`), and switches over after a new backup. A
//! CPO-shaped one (zst, bundles, block incremental, aes-256-cbc, the Secret with option keys) the same.

use std::collections::BTreeMap;
use std::time::Duration;

use pgro_testkit::pgbackrest::{
    BackupType, ClusterOptions, Compress, PgbrVersion, RepoOptions, SourceCluster, Storage,
};

use crate::READY_TIMEOUT;
use crate::e2e_support::*;

/// One text for the whole data set, the same on the source (psql) and through the Service.
fn digest_sql(cluster: &SourceCluster) -> String {
    format!(
        "SELECT md5(string_agg(s::text, ';')) FROM ({}) s",
        cluster.summary_sql()
    )
}

async fn run(w: &'static World, name: &str, repo: RepoOptions, secret: BTreeMap<String, String>) {
    let ns = w.env.namespace().await.unwrap();
    let repo = repo
        .storage(Storage::minio(&w.minio, BUCKET))
        .s3_path(&format!("/pgbackrest/{}/repo1", ns.name()));
    let options = ClusterOptions::new(16, PgbrVersion::Current, vec![repo]);
    let cluster = SourceCluster::start(
        w.env.components(),
        &w.root.path().join(format!("pgbr-{}", ns.name())),
        options,
    )
    .await
    .expect("pgBackRest source cluster");
    cluster.backup(1, BackupType::Full).await.unwrap();
    // Commits after the backup, archived: the copy must have them (WAL replayed to the latest).
    cluster.change(1).unwrap();
    cluster.switch_wal().await.unwrap();
    let sql = digest_sql(&cluster);
    let expected = cluster.psql(&sql).unwrap();

    put_secret(&ns, "pgbr-creds", secret).await;
    let gateway = w.env.kubelet().pod_gateway();
    let spec = format!(
        "source:\n  pgbackrest:\n    stanza: db\n    repoPath: /pgbackrest/{}/repo1\n    s3: {{bucket: {BUCKET}, endpoint: 'http://{gateway}', port: {}, region: us-east-1, uriStyle: path}}\n    secretRef: {{name: pgbr-creds}}\nschedule: '* * * * *'\nscheduleJitter: '0'\nswitchoverGracePeriod: 10s\n",
        ns.name(),
        w.minio_port
    );
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
        served_digest(w, &ns, name, &sql).await,
        expected,
        "the copy serves the newest archived commit"
    );
    // status.source, and the time of the newest data served (the last replayed commit, after the backup's
    // end) with the WAL replayed to reach it, read once the instance is ready.
    let restore = wait_restore_reported(&ns, &first).await;
    let status = restore.status.clone().unwrap();
    assert_eq!(status.source.as_deref(), Some("pgbackrest"));
    let data_time = status.data_time.clone().expect("dataTime");
    assert!(
        Some(&data_time) >= restore.spec.snapshot_time.as_ref(),
        "{status:?}"
    );
    assert!(
        status
            .wal_replayed
            .as_ref()
            .is_some_and(|w| w.segments > 0 && w.bytes > 0),
        "{status:?}"
    );

    // A new backup and more commits: the next scheduled refresh switches over to them.
    cluster.change(2).unwrap();
    cluster.backup(1, BackupType::Incr).await.unwrap();
    cluster.change(3).unwrap();
    cluster.switch_wal().await.unwrap();
    let expected = cluster.psql(&sql).unwrap();
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
        served_digest(w, &ns, name, &sql).await,
        expected,
        "after the switchover: {:?}",
        current(&r)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pgo_shaped_pgbackrest_source_is_served_to_the_last_commit_and_switches_over() {
    let Some(w) = world("pgo_shaped_pgbackrest_source").await else {
        return;
    };
    let secret = BTreeMap::from([(
        "s3.conf".to_owned(),
        format!("[global]\nrepo1-s3-key={MINIO_USER}\nrepo1-s3-key-secret={MINIO_SECRET}\n"),
    )]);
    run(
        w,
        "pgo",
        RepoOptions::posix().compress(Compress::Gz),
        secret,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cpo_shaped_encrypted_block_incremental_source_is_served_and_switches_over() {
    let Some(w) = world("cpo_shaped_pgbackrest_source").await else {
        return;
    };
    let secret = BTreeMap::from([
        ("repo1-s3-key".to_owned(), MINIO_USER.to_owned()),
        ("repo1-s3-key-secret".to_owned(), MINIO_SECRET.to_owned()),
        (
            "repo1-cipher-pass".to_owned(),
            "cpo-e2e-passphrase".to_owned(),
        ),
    ]);
    run(
        w,
        "cpo",
        RepoOptions::posix()
            .compress(Compress::Zst)
            .block_incremental()
            .encrypted("cpo-e2e-passphrase"),
        secret,
    )
    .await;
}
