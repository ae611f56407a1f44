//! restic sources end to end (issue 15): a KubeStash-shaped repository (`<prefix>/<directory>/repository/
//! v1/<session>/dump`, `dumpfile.sql`, host `host-0`) written by the real restic from the real
//! `pg_dumpall` of a host PostgreSQL into the shared MinIO; the replica names it with the repository URL
//! KubeStash builds and two Secrets as KubeStash has them (the BackupStorage's credentials, the
//! Repository's encryption Secret), reaches Ready serving the dump (the Job reads its header, the
//! PostgreSQL pod replays it into a fresh cluster), records `dumpReplayed` and `DumpReplayed=True`, and
//! switches over after a new KubeStash backup.

use std::collections::BTreeMap;
use std::time::Duration;

use pgro_testkit::restic::{DumpCmd, DumpSource, PASSWORD, ResticRepo, kubestash_path};

use crate::READY_TIMEOUT;
use crate::e2e_support::*;

const DIGEST: &str = "SELECT md5(string_agg(x::text, ';' ORDER BY x.n)) FROM ledger x";

#[tokio::test(flavor = "multi_thread")]
async fn kubestash_restic_dumps_are_replayed_served_and_switched_over() {
    let Some(w) = world("kubestash_restic_dumps").await else {
        return;
    };
    let ns = w.env.namespace().await.unwrap();
    let src = DumpSource::start(w.env.components(), &w.root.path().join("restic-src"), 16)
        .await
        .expect("source cluster");
    src.psql("CREATE TABLE ledger (n int PRIMARY KEY, note text); INSERT INTO ledger SELECT g, 'row ' || g FROM generate_series(1, 500) g")
        .unwrap();
    let path = kubestash_path(
        &format!("demo-{}", ns.name()),
        "/postgres",
        "frequent-backup",
    );
    let repo = ResticRepo::s3(w.env.components(), &w.minio, BUCKET, &path).unwrap();
    repo.init(2).unwrap();
    src.backup(&repo, DumpCmd::All, "auto").unwrap();
    let expected = src.psql(DIGEST).unwrap();

    // The BackupStorage's Secret and the Repository's encryptionSecret, as KubeStash keeps them.
    put_secret(
        &ns,
        "s3-secret",
        BTreeMap::from([
            ("AWS_ACCESS_KEY_ID".to_owned(), MINIO_USER.to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), MINIO_SECRET.to_owned()),
        ]),
    )
    .await;
    put_secret(
        &ns,
        "encrypt-secret",
        BTreeMap::from([("RESTIC_PASSWORD".to_owned(), PASSWORD.to_owned())]),
    )
    .await;
    let gateway = w.env.kubelet().pod_gateway();
    let spec = format!(
        "source:
  restic:
    repository: s3:http://{gateway}:{}/{BUCKET}/{path}
    secretRef: {{name: s3-secret}}
    encryptionSecret: {{name: encrypt-secret}}
snapshotFilter: {{hostPattern: host-0}}
schedule: '* * * * *'
scheduleJitter: '0'
switchoverGracePeriod: 10s
",
        w.minio_port
    );
    let name = "kubestash";
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
    assert_eq!(served_digest(w, &ns, name, DIGEST).await, expected);
    let restore = wait_restore_reported(&ns, &first).await;
    let status = restore.status.clone().unwrap();
    assert_eq!(status.source.as_deref(), Some("restic"));
    let d = status.dump_replayed.clone().expect("dumpReplayed");
    assert!(
        d.statements > 50 && d.failed == 0 && d.bytes > 100_000,
        "{d:?}"
    );
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "DumpReplayed" && c.status == "True"),
        "{status:?}"
    );
    assert_eq!(
        status.data_time, restore.spec.snapshot_time,
        "the dump's time"
    );

    // A new KubeStash backup: the next scheduled refresh switches over to it.
    src.psql("INSERT INTO ledger SELECT g, 'row ' || g FROM generate_series(501, 700) g")
        .unwrap();
    src.backup(&repo, DumpCmd::All, "auto").unwrap();
    let expected = src.psql(DIGEST).unwrap();
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
    src.stop().await;
}
