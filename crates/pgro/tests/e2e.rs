//! End-to-end: the operator (as a pod, under its own RBAC) against the real control plane, the process
//! kubelet, Kopia repositories in MinIO written by the real `kopia`, and real PostgreSQL. Each test names the
//! behaviour IDs it proves. Tests share one operator; tests that restart or reconfigure it live in
//! `e2e_disruptive.rs`.

#![allow(clippy::unwrap_used)]

#[path = "e2e_cases/barman.rs"]
mod barman;
mod e2e_support;
#[path = "e2e_cases/hardening.rs"]
mod hardening;
#[path = "e2e_cases/pgbackrest.rs"]
mod pgbackrest;
#[path = "e2e_cases/podsecurity.rs"]
mod podsecurity;
#[path = "e2e_cases/restic.rs"]
mod restic;
#[path = "e2e_cases/rotation.rs"]
mod rotation;
#[path = "e2e_cases/tls.rs"]
mod tls;
#[path = "e2e_cases/verification.rs"]
mod verification;

use std::sync::Arc;
use std::time::Duration;

use e2e_support::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use pgro_api::{PostgresPhysicalReplica, PostgresPhysicalRestore};

const READY_TIMEOUT: Duration = Duration::from_secs(240);

fn quick_start(extra: &str) -> String {
    format!(
        "kopiaSecretRef: {{name: kopia-credentials}}\nschedule: '0 */6 * * *'\nsnapshotFilter:\n  tags: {{area: postgres}}\n{extra}"
    )
}

/// I1: a snapshot whose WAL is gone (a cleanly stopped data directory with its WAL segments deleted) is
/// still served: the instance falls back to `pg_resetwal -f`, and the restore says so in
/// `status.instanceFixes`, in a Warning event and in `_pgro.restore_info.fixes`.
#[tokio::test(flavor = "multi_thread")]
async fn missing_wal_falls_back_to_pg_resetwal_and_the_restore_says_so() {
    let Some(w) = world("missing_wal_falls_back_to_pg_resetwal_and_the_restore_says_so").await
    else {
        return;
    };
    let ns = w.env.namespace().await.unwrap();
    let repo = w.repo(ns.name());
    let src = w.source_copy(&format!("nowal-{}", ns.name()));
    let mut removed = 0;
    for e in std::fs::read_dir(src.join("pg_wal")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.len() == 24 && name.chars().all(|c| c.is_ascii_hexdigit()) {
            std::fs::remove_file(e.path()).unwrap();
            removed += 1;
        }
    }
    assert!(removed > 0, "the template had WAL segments");
    repo.snap(&src, &["--tags", "area:postgres"]);
    w.kopia_secret(&ns, "kopia-credentials", &repo).await;
    create_replica(&ns, &replica_yaml("nowal", &quick_start(""))).await;

    let r = wait_replica(w, &ns, "nowal", "phase Ready", READY_TIMEOUT, |r, _| {
        phase_is(r, "Ready")
    })
    .await;
    let active = current(&r).unwrap();
    let fixes = instance_fixes(&ns, &active).await;
    assert_eq!(fixes.len(), 1, "{fixes:?}");
    assert!(
        fixes[0].starts_with("pg_resetwal: ") && fixes[0].contains("checkpoint record"),
        "{fixes:?}"
    );
    // The event follows the status write that records its cause.
    let mut events = Vec::new();
    for _ in 0..20 {
        events = restore_events(&ns, &active).await;
        if !events.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        events
            .iter()
            .any(|(t, reason, _)| t == "Warning" && reason == "RecoveryFallback"),
        "{events:?}"
    );
    let (user, password) = analytics_credentials(&ns, "nowal").await;
    let (c, _fwd) = connect_service(w, &ns, "nowal", &user, &password)
        .await
        .expect("analytics user connects");
    // A clean shutdown lost nothing but its WAL: the rows are all there.
    assert_eq!(checksum(&c).await, w.items);
    let recorded: String = c
        .query_one("SELECT fixes::text FROM _pgro.restore_info", &[])
        .await
        .unwrap()
        .get(0);
    assert!(recorded.contains("pg_resetwal"), "{recorded}");
}

/// Acceptance 1 (R2, R3, R4, R7, R9, R10, S1–S4, I3, O2): the seed's quick start reaches Ready, the
/// Service's endpoint is the restore's pod, the analytics user reads the source's data through it, and
/// every status field of both kinds is populated.
#[tokio::test(flavor = "multi_thread")]
async fn quick_start_replica_serves_the_snapshot_through_its_service() {
    let Some(w) = world("quick_start_replica_serves_the_snapshot_through_its_service").await else {
        return;
    };
    let ns = w.env.namespace().await.unwrap();
    let repo = w.repo(ns.name());
    let snap = repo.snap(&w.template, &["--tags", "area:postgres"]);
    w.kopia_secret(&ns, "kopia-credentials", &repo).await;
    create_replica(&ns, &replica_yaml("test", &quick_start(""))).await;

    let r = wait_replica(w, &ns, "test", "phase Ready", READY_TIMEOUT, |r, _| {
        phase_is(r, "Ready")
    })
    .await;
    let st = r.status.clone().unwrap();
    let active = st.current_restore.clone().unwrap();
    assert!(active.starts_with("test-"), "{active}");
    assert_eq!(st.service_name.as_deref(), Some("test"));
    assert_eq!(st.latest_available_snapshot.as_deref(), Some(snap.as_str()));
    assert!(st.last_restore_completed_at.is_some());
    let next = st.next_scheduled_restore.clone().unwrap().0;
    assert!(
        next > jiff::Timestamp::now(),
        "next restore {next} is in the future"
    );
    assert_eq!(st.queue_position, 0);
    assert_eq!(st.consecutive_restore_failures, 0);
    assert_eq!(st.previous_restore, None);
    assert_eq!(st.observed_generation, r.metadata.generation);
    let ci = st.connection_info.clone().unwrap();
    assert_eq!(ci.host, format!("test.{}.svc", ns.name()));
    assert_eq!((ci.port, ci.database.as_str()), (5432, "postgres"));
    assert_eq!(ci.username, "analytics");
    assert_eq!(ci.password_secret, "test-creds");
    for (t, s) in [
        ("Ready", "True"),
        ("KopiaSecretValid", "True"),
        ("ScheduleValid", "True"),
        ("SnapshotAvailable", "True"),
        ("RestoreSchedulingSuspended", "False"),
        ("StorageWithinLimit", "True"),
    ] {
        assert!(cond_is(&r, t, s, ""), "{t} is not {s}: {:?}", st.conditions);
    }

    // The restore and its children.
    let rs = ns
        .api::<PostgresPhysicalRestore>()
        .get(&active)
        .await
        .unwrap();
    let rst = rs.status.clone().unwrap();
    assert_eq!(restore_phase(&rs), "Active");
    assert_eq!(rs.spec.snapshot, snap);
    assert_eq!(rs.spec.replica.name, "test");
    assert!(rs.spec.snapshot_time.is_some());
    assert_eq!(rst.postgres_version.as_deref(), Some("16"));
    let (created, restored, activated) = (
        rst.created_at.clone().unwrap().0,
        rst.restored_at.clone().unwrap().0,
        rst.activated_at.clone().unwrap().0,
    );
    assert!(created <= restored && restored <= activated);
    let job = rst.restore_job.clone().unwrap();
    assert_eq!(job.name, format!("{active}-restore"));
    assert_eq!(job.phase.as_deref(), Some("Succeeded"));
    assert!(job.completed_at.is_some());
    assert_eq!(rst.pvc.as_deref(), Some(format!("{active}-data").as_str()));
    assert_eq!(rst.deployment.as_deref(), Some(active.as_str()));
    assert_eq!(rst.credentials_secret.as_deref(), Some("test-creds"));
    for t in ["Restored", "Ready"] {
        assert!(
            condition(&rst.conditions, t).is_some_and(|c| c.status == "True"),
            "restore {t}: {:?}",
            rst.conditions
        );
    }
    assert_eq!(
        rs.owner_references()[0].name,
        "test",
        "restore owned by its replica"
    );
    let labelled = |labels: &std::collections::BTreeMap<String, String>| {
        labels.get("pgro.bes.au/replica").map(String::as_str) == Some("test")
            && labels.get("pgro.bes.au/restore") == Some(&active)
    };
    let pvc = ns
        .api::<PersistentVolumeClaim>()
        .get(&format!("{active}-data"))
        .await
        .unwrap();
    let job = ns
        .api::<Job>()
        .get(&format!("{active}-restore"))
        .await
        .unwrap();
    let dep = ns.api::<Deployment>().get(&active).await.unwrap();
    let svc = ns.api::<Service>().get(&active).await.unwrap();
    for (kind, meta) in [
        ("PVC", &pvc.metadata),
        ("Job", &job.metadata),
        ("Deployment", &dep.metadata),
        ("Service", &svc.metadata),
    ] {
        assert!(labelled(meta.labels.as_ref().unwrap()), "{kind} labels");
        assert_eq!(
            meta.owner_references.as_ref().unwrap()[0].name,
            active,
            "{kind} owned by the restore"
        );
    }

    // The stable Service points at the restore's pod; the analytics user reads the source's data.
    let pod_ips = restore_pod_ips(&ns, &active).await;
    assert_eq!(pod_ips.len(), 1, "one PostgreSQL pod");
    let eps = endpoint_addresses(&ns, "test").await;
    assert_eq!(eps, pod_ips, "Service test's EndpointSlice");
    let (user, password) = analytics_credentials(&ns, "test").await;
    assert_eq!(user, "analytics");
    assert_eq!(password.len(), 32);
    let (c, _fwd) = connect_service(w, &ns, "test", &user, &password)
        .await
        .expect("analytics user connects through the Service");
    assert_eq!(checksum(&c).await, w.items, "the source's rows");
    let info = c
        .query_one("SELECT snapshot_id, stage FROM _pgro.restore_info", &[])
        .await
        .unwrap();
    assert_eq!(info.get::<_, String>(0), snap);
    assert_eq!(info.get::<_, String>(1), "ready");
    // A clean source needed no fixes, and the operator says so (I1, I6).
    assert_eq!(instance_fixes(&ns, &active).await, Vec::<String>::new());
    let events = restore_events(&ns, &active).await;
    assert!(
        !events
            .iter()
            .any(|(_, r, _)| r == "RecoveryFallback" || r == "LocaleSwitched"),
        "{events:?}"
    );
    assert!(
        c.batch_execute("INSERT INTO items VALUES (0, 'x')")
            .await
            .is_err(),
        "read-only by default"
    );
    // Source credentials do not work on the replica (I3).
    assert!(
        connect_service(w, &ns, "test", "app_owner", "source-password")
            .await
            .is_err()
    );
    let events = event_reasons(&ns, "test").await;
    let reasons: Vec<&str> = events.iter().map(|(r, _)| r.as_str()).collect();
    assert!(
        reasons.contains(&"RestoreStarted") && reasons.contains(&"RestoreCompleted"),
        "{events:?}"
    );
    // O1: the operator's health and metrics endpoints.
    let op = operator_pods(&w.client()).await;
    let ip: std::net::Ipv4Addr = op[0]
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap()
        .parse()
        .unwrap();
    let fwd = w
        .env
        .kubelet()
        .port_forward(std::net::SocketAddr::from((ip, 8080)))
        .unwrap();
    let base = format!("http://{}", fwd.addr());
    for path in ["/livez", "/readyz"] {
        let status = reqwest::get(format!("{base}{path}"))
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 200, "{path}");
    }
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for family in [
        "pgro_restores_started_total",
        "pgro_restores_completed_total",
        "pgro_switchovers_total",
        "pgro_reconciles_total{controller=\"replica\"}",
        "pgro_snapshot_discovery_seconds_count",
        "pgro_restore_duration_seconds_count",
    ] {
        assert!(metrics.contains(family), "{family} in\n{metrics}");
    }
    ns.delete().await.unwrap();
}

fn active_restores(rs: &[PostgresPhysicalRestore]) -> Vec<String> {
    rs.iter()
        .filter(|r| restore_phase(r) == "Active")
        .map(ResourceExt::name_any)
        .collect()
}

async fn restore_count(ns: &pgro_testkit::TestNamespace) -> usize {
    ns.api::<PostgresPhysicalRestore>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .len()
}

async fn patch_spec(ns: &pgro_testkit::TestNamespace, name: &str, spec: serde_json::Value) {
    ns.api::<PostgresPhysicalReplica>()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({ "spec": spec })),
        )
        .await
        .unwrap();
}

/// Acceptance 2 (R1): a missing Secret, a missing key, a wrong password and unreachable storage each set
/// `KopiaSecretValid=False` with their reason and create nothing; an active restore keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn kopia_secret_problems_create_nothing_and_leave_the_active_restore_serving() {
    let Some(w) = world("kopia_secret_problems").await else {
        return;
    };
    let ns = w.env.namespace().await.unwrap();
    let repo = w.repo(ns.name());
    repo.snap(&w.template, &["--tags", "area:postgres"]);
    create_replica(&ns, &replica_yaml("r1", &quick_start(""))).await;
    wait_replica(
        w,
        &ns,
        "r1",
        "SecretNotFound",
        Duration::from_secs(60),
        |r, _| cond_is(r, "KopiaSecretValid", "False", "SecretNotFound"),
    )
    .await;
    let mut data = std::collections::BTreeMap::from([
        ("region".to_owned(), "us-east-1".to_owned()),
        ("repositoryPassword".to_owned(), REPO_PASSWORD.to_owned()),
        ("accessKeyId".to_owned(), MINIO_USER.to_owned()),
        ("secretAccessKey".to_owned(), MINIO_SECRET.to_owned()),
        ("endpoint".to_owned(), w.pod_endpoint()),
        ("disableTls".to_owned(), "true".to_owned()),
        ("prefix".to_owned(), repo.prefix.clone()),
    ]);
    put_secret(&ns, "kopia-credentials", data.clone()).await;
    let r = wait_replica(
        w,
        &ns,
        "r1",
        "SecretInvalid",
        Duration::from_secs(60),
        |r, _| cond_is(r, "KopiaSecretValid", "False", "SecretInvalid"),
    )
    .await;
    let msg = &condition(&r.status.as_ref().unwrap().conditions, "KopiaSecretValid")
        .unwrap()
        .message;
    assert!(msg.contains("\"bucket\""), "names the missing key: {msg}");
    assert_eq!(restore_count(&ns).await, 0, "nothing created");
    assert!(
        ns.api::<Job>()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "no Job"
    );

    data.insert("bucket".into(), BUCKET.into());
    put_secret(&ns, "kopia-credentials", data.clone()).await;
    let r = wait_replica(w, &ns, "r1", "Ready", READY_TIMEOUT, |r, _| {
        phase_is(r, "Ready")
    })
    .await;
    let active = current(&r).unwrap();
    let (user, password) = analytics_credentials(&ns, "r1").await;

    for (key, value, reason) in [
        (
            "repositoryPassword",
            "not-the-password".to_owned(),
            "RepositoryPasswordInvalid",
        ),
        (
            "endpoint",
            format!("{}:{}", w.env.kubelet().pod_gateway(), free_port_on_host()),
            "StorageUnreachable",
        ),
    ] {
        let mut broken = data.clone();
        broken.insert(key.into(), value);
        put_secret(&ns, "kopia-credentials", broken).await;
        let r = wait_replica(w, &ns, "r1", reason, Duration::from_secs(90), |r, _| {
            cond_is(r, "KopiaSecretValid", "False", reason)
        })
        .await;
        assert!(phase_is(&r, "Ready"), "still Ready");
        assert_eq!(current(&r).as_deref(), Some(active.as_str()));
        let msg = &condition(&r.status.as_ref().unwrap().conditions, "KopiaSecretValid")
            .unwrap()
            .message;
        assert!(
            !msg.contains(MINIO_SECRET) && !msg.contains("not-the-password"),
            "{msg}"
        );
        assert_eq!(restore_count(&ns).await, 1, "nothing new for {reason}");
        assert_eq!(
            endpoint_addresses(&ns, "r1").await,
            restore_pod_ips(&ns, &active).await
        );
        let (c, _fwd) = connect_service(w, &ns, "r1", &user, &password)
            .await
            .expect("the active restore keeps serving");
        assert_eq!(checksum(&c).await, w.items);
    }
    ns.delete().await.unwrap();
}

fn free_port_on_host() -> u16 {
    e2e_support::instance_support::free_port()
}

/// Acceptance 3 (R3, R5, R9): no matching snapshot → nothing; the same snapshot at the next trigger →
/// nothing new; a new snapshot → second restore → switchover (the Service always has a ready endpoint) →
/// the old restore marked outgoing, deleted after `switchoverGracePeriod`, `previousRestore` cleared.
#[tokio::test(flavor = "multi_thread")]
async fn new_snapshot_is_switched_to_and_the_old_restore_goes_after_the_grace_period() {
    let Some(w) = world("new_snapshot_is_switched_to").await else {
        return;
    };
    let ns = w.env.namespace().await.unwrap();
    let repo = w.repo(ns.name());
    w.kopia_secret(&ns, "kopia-credentials", &repo).await;
    repo.snap(&w.template, &["--tags", "area:other"]);
    let spec = "kopiaSecretRef: {name: kopia-credentials}\nschedule: '* * * * *'\nscheduleJitter: '0'\nswitchoverGracePeriod: 30s\nsnapshotFilter:\n  tags: {area: postgres}";
    create_replica(&ns, &replica_yaml("r3", spec)).await;
    wait_replica(
        w,
        &ns,
        "r3",
        "NoMatchingSnapshots",
        Duration::from_secs(60),
        |r, _| cond_is(r, "SnapshotAvailable", "False", "NoMatchingSnapshots"),
    )
    .await;
    assert_eq!(restore_count(&ns).await, 0);

    let first_snap = repo.snap(&w.template, &["--tags", "area:postgres"]);
    let r = wait_replica(w, &ns, "r3", "Ready", READY_TIMEOUT, |r, _| {
        phase_is(r, "Ready")
    })
    .await;
    let first = current(&r).unwrap();
    // TLS: a libpq client with the CA from `r3-ca` and sslmode=verify-full gets in under the Service's
    // name; plain text is refused by the server. The same CA file is used again after the switchover.
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = ca_dir.path().join("r3-ca.crt");
    std::fs::write(&ca, replica_ca(&ns, "r3").await).unwrap();
    let rows = "SELECT count(*) FROM items";
    let before = libpq_service(w, &ns, "r3", "verify-full", &ca, rows)
        .await
        .expect("verify-full before the switchover");
    let plain = libpq_service(w, &ns, "r3", "disable", &ca, rows).await;
    let refused = format!("{:#}", plain.expect_err("sslmode=disable must be refused"));
    assert!(refused.contains("no encryption"), "{refused}");
    // Watch the Service's endpoints from now on: never empty while a ready restore exists.
    let watcher_ns = ns.name().to_owned();
    let client = w.client();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let gaps = tokio::spawn(async move {
        let slices: kube::Api<k8s_openapi::api::discovery::v1::EndpointSlice> =
            kube::Api::namespaced(client, &watcher_ns);
        let mut empty = 0;
        let mut samples = 0;
        while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
            let list = slices
                .list(&ListParams::default().labels("kubernetes.io/service-name=r3"))
                .await
                .unwrap();
            let ready = list
                .items
                .iter()
                .flat_map(|s| s.endpoints.iter())
                .any(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false));
            samples += 1;
            if !ready {
                empty += 1;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        (samples, empty)
    });

    // The next trigger finds the same snapshot: skipped, nothing new.
    let next = r
        .status
        .as_ref()
        .unwrap()
        .next_scheduled_restore
        .clone()
        .unwrap()
        .0;
    wait_replica(
        w,
        &ns,
        "r3",
        "a skipped trigger",
        Duration::from_secs(150),
        |r, _| {
            r.status
                .as_ref()
                .and_then(|s| s.next_scheduled_restore.as_ref())
                .is_some_and(|t| t.0 > next)
        },
    )
    .await;
    let events = event_reasons(&ns, "r3").await;
    assert!(
        events
            .iter()
            .any(|(r, n)| r == "RestoreSkipped" && n.contains(&first_snap)),
        "{events:?}"
    );
    assert_eq!(restore_count(&ns).await, 1, "same snapshot: nothing new");

    // A new snapshot is restored at the next trigger and switched to.
    let src = w.source_copy(ns.name());
    let items = w.change_source(
        &src,
        "INSERT INTO items SELECT g, 'new' FROM generate_series(100001, 100050) g",
    );
    let second_snap = repo.snap(&src, &["--tags", "area:postgres"]);
    let r = wait_replica(w, &ns, "r3", "switchover", READY_TIMEOUT, |r, _| {
        current(r).is_some_and(|c| c != first)
    })
    .await;
    let second = current(&r).unwrap();
    let st = r.status.clone().unwrap();
    assert_eq!(st.previous_restore.as_deref(), Some(first.as_str()));
    assert_eq!(
        st.latest_available_snapshot.as_deref(),
        Some(second_snap.as_str())
    );
    let rs = ns
        .api::<PostgresPhysicalRestore>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(
        active_restores(&rs),
        std::slice::from_ref(&second),
        "exactly one Active"
    );
    assert_eq!(
        endpoint_addresses(&ns, "r3").await,
        restore_pod_ips(&ns, &second).await
    );
    let (user, password) = analytics_credentials(&ns, "r3").await;
    let (c, _fwd) = connect_service(w, &ns, "r3", &user, &password)
        .await
        .unwrap();
    assert_eq!(checksum(&c).await, items, "the new snapshot's rows");
    let after = libpq_service(w, &ns, "r3", "verify-full", &ca, rows)
        .await
        .expect("verify-full with the same CA after the switchover");
    assert_eq!(after, items.0.to_string(), "rows before: {before}");
    // The outgoing restore says so to whoever is still connected to it.
    let (old, _fwd2) = connect_service(w, &ns, &first, &user, &password)
        .await
        .unwrap();
    pgro_testkit::eventually("outgoing stage", Duration::from_secs(30), || async {
        let stage: String = old
            .query_one("SELECT stage FROM _pgro.restore_info", &[])
            .await?
            .get(0);
        Ok((stage == "outgoing").then_some(()))
    })
    .await
    .unwrap();

    let r = wait_replica(
        w,
        &ns,
        "r3",
        "old restore deleted",
        Duration::from_secs(120),
        |r, rs| {
            r.status
                .as_ref()
                .is_some_and(|s| s.previous_restore.is_none())
                && !rs.iter().any(|x| x.name_any() == first)
        },
    )
    .await;
    assert_eq!(current(&r).as_deref(), Some(second.as_str()));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (samples, empty) = gaps.await.unwrap();
    assert!(samples > 20, "{samples} samples");
    assert_eq!(
        empty, 0,
        "the Service lacked a ready endpoint in {empty} of {samples} samples"
    );
    let events = event_reasons(&ns, "r3").await;
    assert_eq!(
        events
            .iter()
            .filter(|(r, _)| r == "RestoreCompleted")
            .count(),
        2,
        "{events:?}"
    );
    ns.delete().await.unwrap();
}

/// Acceptance 4 (R4, R5, S6): deleting the active restore replaces it at once; `minimumTtl` skips a
/// scheduled restore; a schedule edit recomputes `nextScheduledRestore`.
#[tokio::test(flavor = "multi_thread")]
async fn deleted_active_restore_is_replaced_ttl_skips_and_schedule_edits_apply() {
    let Some(w) = world("deleted_active_restore_is_replaced").await else {
        return;
    };
    let ns = w.env.namespace().await.unwrap();
    let repo = w.repo(ns.name());
    w.kopia_secret(&ns, "kopia-credentials", &repo).await;
    repo.snap(&w.template, &["--tags", "area:postgres"]);
    create_replica(
        &ns,
        &replica_yaml("r4", &quick_start("scheduleJitter: '0'")),
    )
    .await;
    let r = wait_replica(w, &ns, "r4", "Ready", READY_TIMEOUT, |r, _| {
        phase_is(r, "Ready")
    })
    .await;
    let first = current(&r).unwrap();

    // S6: delete the active restore → a replacement starts at once, although the schedule is hours away.
    let deleted_at = std::time::Instant::now();
    ns.api::<PostgresPhysicalRestore>()
        .delete(&first, &DeleteParams::default())
        .await
        .unwrap();
    wait_replica(
        w,
        &ns,
        "r4",
        "a replacement restore",
        Duration::from_secs(60),
        |_, rs| rs.iter().any(|x| x.name_any() != first),
    )
    .await;
    let started_in = deleted_at.elapsed();
    assert!(
        started_in < Duration::from_secs(30),
        "replacement started after {started_in:?}"
    );
    let r = wait_replica(w, &ns, "r4", "Ready again", READY_TIMEOUT, |r, _| {
        phase_is(r, "Ready") && current(r).is_some_and(|c| c != first)
    })
    .await;
    let second = current(&r).unwrap();

    // R5: minimumTtl protects the serving restore even when a new snapshot is due.
    let src = w.source_copy(ns.name());
    w.change_source(&src, "DELETE FROM items WHERE id <= 10");
    repo.snap(&src, &["--tags", "area:postgres"]);
    patch_spec(
        &ns,
        "r4",
        serde_json::json!({"minimumTtl": "1h", "schedule": "* * * * *"}),
    )
    .await;
    pgro_testkit::eventually(
        "a RestoreSkipped event for minimumTtl",
        Duration::from_secs(150),
        || async {
            let ev = event_reasons(&ns, "r4").await;
            Ok(ev
                .iter()
                .any(|(r, n)| r == "RestoreSkipped" && n.contains("minimumTtl"))
                .then_some(()))
        },
    )
    .await
    .unwrap();
    let r = ns.api::<PostgresPhysicalReplica>().get("r4").await.unwrap();
    assert_eq!(current(&r).as_deref(), Some(second.as_str()));
    assert_eq!(
        restore_count(&ns).await,
        1,
        "no new restore within minimumTtl"
    );

    // R4: a schedule edit recomputes the next restore at once.
    patch_spec(&ns, "r4", serde_json::json!({"schedule": "30 3 * * *"})).await;
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    let today = now
        .date()
        .at(3, 30, 0, 0)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap();
    let expected = if today > now {
        today
    } else {
        today.tomorrow().unwrap()
    }
    .timestamp();
    wait_replica(
        w,
        &ns,
        "r4",
        "nextScheduledRestore at 03:30",
        Duration::from_secs(60),
        |r, _| {
            r.status
                .as_ref()
                .and_then(|s| s.next_scheduled_restore.as_ref())
                .is_some_and(|t| t.0 == expected)
        },
    )
    .await;
    ns.delete().await.unwrap();
}

/// Flips one byte in the middle of the largest pack blob of a repository in MinIO (through S3, so MinIO's
/// own integrity checks are not what fails).
async fn corrupt_largest_pack(w: &World, prefix: &str) -> String {
    use futures::TryStreamExt;
    use object_store::ObjectStore;
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_endpoint(format!("http://127.0.0.1:{}", w.minio_port))
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id(MINIO_USER)
        .with_secret_access_key(MINIO_SECRET)
        .build()
        .unwrap();
    let listed: Vec<object_store::ObjectMeta> = s3
        .list(Some(&object_store::path::Path::from(
            prefix.trim_end_matches('/'),
        )))
        .try_collect()
        .await
        .unwrap();
    let pack = listed
        .iter()
        .filter(|m| m.location.filename().is_some_and(|f| f.starts_with('p')))
        .max_by_key(|m| m.size)
        .expect("a pack blob");
    let mut data = s3
        .get(&pack.location)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let mid = data.len() / 2;
    data[mid] ^= 0x55;
    s3.put(&pack.location, data.into()).await.unwrap();
    pack.location.filename().unwrap().to_owned()
}

fn restore_failure(rs: &PostgresPhysicalRestore) -> Option<(String, String)> {
    let st = rs.status.as_ref()?;
    condition(&st.conditions, "Failed")
        .filter(|c| c.status == "True")
        .map(|c| (c.reason.clone(), c.message.clone()))
}

/// Acceptance 6 (R8, S2): a snapshot without PostgreSQL and a corrupted pack each fail the restore with a
/// clear condition; three failures suspend scheduling; a status-subresource reset resumes it; a success
/// clears the condition and the counter.
#[tokio::test(flavor = "multi_thread")]
async fn failed_restores_are_explained_counted_suspended_and_resumed() {
    let Some(w) = world("failed_restores_are_explained").await else {
        return;
    };
    let ns = w.env.namespace().await.unwrap();
    let repo = w.repo(ns.name());
    w.kopia_secret(&ns, "kopia-credentials", &repo).await;
    let not_pg = w.root.path().join(format!("not-pg-{}", ns.name()));
    std::fs::create_dir_all(not_pg.join("etc")).unwrap();
    std::fs::write(not_pg.join("etc/app.conf"), "x = 1\n").unwrap();
    repo.snap(&not_pg, &["--tags", "area:broken"]);
    let spec = "kopiaSecretRef: {name: kopia-credentials}\nschedule: '* * * * *'\nscheduleJitter: '0'\nsnapshotFilter:\n  tags: {area: broken}";
    create_replica(&ns, &replica_yaml("r6", spec)).await;

    // A corrupted pack in another repository of the same namespace, for a second replica.
    let repo2 = w.repo(&format!("{}-corrupt", ns.name()));
    w.kopia_secret(&ns, "kopia-corrupt", &repo2).await;
    repo2.snap(&w.template, &["--tags", "area:postgres"]);
    let pack = corrupt_largest_pack(w, &repo2.prefix).await;
    create_replica(
        &ns,
        &replica_yaml(
            "r6c",
            "kopiaSecretRef: {name: kopia-corrupt}\nschedule: '0 0 1 1 *'\nsnapshotFilter:\n  tags: {area: postgres}",
        ),
    )
    .await;
    let r = wait_replica(
        w,
        &ns,
        "r6c",
        "a corrupt-pack failure",
        READY_TIMEOUT,
        |r, _| {
            r.status
                .as_ref()
                .is_some_and(|s| s.consecutive_restore_failures >= 1)
        },
    )
    .await;
    let rs = ns
        .api::<PostgresPhysicalRestore>()
        .list(&ListParams::default().labels("pgro.bes.au/replica=r6c"))
        .await
        .unwrap()
        .items;
    let (reason, message) = rs
        .iter()
        .find_map(restore_failure)
        .expect("a failed restore");
    assert_eq!(reason, "CorruptedContent", "{message}");
    assert!(message.contains(&pack), "names the pack {pack}: {message}");
    assert!(
        phase_is(&r, "Pending") || phase_is(&r, "Restoring"),
        "{:?}",
        r.status
    );

    // Three failures of the non-PostgreSQL snapshot suspend scheduling.
    let r = wait_replica(
        w,
        &ns,
        "r6",
        "suspension",
        Duration::from_secs(420),
        |r, _| {
            cond_is(
                r,
                "RestoreSchedulingSuspended",
                "True",
                "ConsecutiveFailures",
            )
        },
    )
    .await;
    let st = r.status.clone().unwrap();
    assert_eq!(st.consecutive_restore_failures, 3);
    assert!(phase_is(&r, "Failed"));
    let msg = &condition(&st.conditions, "RestoreSchedulingSuspended")
        .unwrap()
        .message;
    assert!(msg.contains("--subresource=status"), "{msg}");
    let rs = ns
        .api::<PostgresPhysicalRestore>()
        .list(&ListParams::default().labels("pgro.bes.au/replica=r6"))
        .await
        .unwrap()
        .items;
    let failed: Vec<_> = rs.iter().filter_map(restore_failure).collect();
    assert!(!failed.is_empty());
    for (reason, message) in &failed {
        assert_eq!(reason, "NoPgdata");
        assert!(
            message.contains("contains no PostgreSQL data directory"),
            "{message}"
        );
    }
    let events = event_reasons(&ns, "r6").await;
    assert!(
        events.iter().filter(|(r, _)| r == "RestoreFailed").count() >= 3,
        "{events:?}"
    );

    // Suspended: fixing the filter alone starts nothing.
    repo.snap(&w.template, &["--tags", "area:postgres"]);
    patch_spec(
        &ns,
        "r6",
        serde_json::json!({"snapshotFilter": {"tags": {"area": "postgres"}}}),
    )
    .await;
    let before = restore_count_of(&ns, "r6").await;
    tokio::time::sleep(Duration::from_secs(70)).await;
    assert_eq!(
        restore_count_of(&ns, "r6").await,
        before,
        "no restore while suspended"
    );

    // The documented reset resumes it; the success clears the condition and the counter.
    ns.api::<PostgresPhysicalReplica>()
        .patch_status(
            "r6",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"status": {"consecutiveRestoreFailures": 0}})),
        )
        .await
        .unwrap();
    let r = wait_replica(
        w,
        &ns,
        "r6",
        "Ready after the reset",
        READY_TIMEOUT,
        |r, _| phase_is(r, "Ready"),
    )
    .await;
    assert_eq!(r.status.as_ref().unwrap().consecutive_restore_failures, 0);
    assert!(cond_is(
        &r,
        "RestoreSchedulingSuspended",
        "False",
        "SchedulingActive"
    ));
    ns.delete().await.unwrap();
}

async fn restore_count_of(ns: &pgro_testkit::TestNamespace, replica: &str) -> usize {
    ns.api::<PostgresPhysicalRestore>()
        .list(&ListParams::default().labels(&format!("pgro.bes.au/replica={replica}")))
        .await
        .unwrap()
        .items
        .len()
}

/// Acceptance 7 (R7): a snapshot whose storage would exceed `storageSizeMaximum` creates no restore;
/// `StorageWithinLimit=False` and one Warning event say why.
#[tokio::test(flavor = "multi_thread")]
async fn storage_maximum_exceeded_creates_no_restore() {
    let Some(w) = world("storage_maximum_exceeded").await else {
        return;
    };
    let ns = w.env.namespace().await.unwrap();
    let repo = w.repo(ns.name());
    w.kopia_secret(&ns, "kopia-credentials", &repo).await;
    repo.snap(&w.template, &["--tags", "area:postgres"]);
    create_replica(
        &ns,
        &replica_yaml("r7", &quick_start("storageSizeMaximum: 1Mi")),
    )
    .await;
    let r = wait_replica(
        w,
        &ns,
        "r7",
        "StorageLimitExceeded",
        Duration::from_secs(60),
        |r, _| cond_is(r, "StorageWithinLimit", "False", "StorageLimitExceeded"),
    )
    .await;
    let msg = &condition(&r.status.as_ref().unwrap().conditions, "StorageWithinLimit")
        .unwrap()
        .message;
    assert!(msg.contains("exceeds storageSizeMaximum 1Mi"), "{msg}");
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(restore_count(&ns).await, 0, "no restore");
    let events = event_reasons(&ns, "r7").await;
    let warnings: Vec<_> = events
        .iter()
        .filter(|(r, _)| r == "StorageLimitExceeded")
        .collect();
    assert_eq!(warnings.len(), 1, "{events:?}");
    assert!(phase_is(&r, "Pending"));
    ns.delete().await.unwrap();
}

fn notification_status(
    r: &PostgresPhysicalReplica,
    name: &str,
    event: &str,
) -> Option<pgro_api::NotificationStatus> {
    r.status
        .as_ref()?
        .notifications
        .iter()
        .find(|n| n.name == name && n.event == event)
        .cloned()
}

/// Issue 6 (N1, N2): webhooks get the documented payload on switchover and on failure; header values from a
/// Secret arrive; the password is in the payload only with `includePassword`.
#[tokio::test(flavor = "multi_thread")]
async fn webhooks_get_the_documented_payload_on_switchover_and_failure() {
    let Some(w) = world("webhooks_get_the_documented_payload").await else {
        return;
    };
    let rx = Receiver::start(w, accept_all()).await;
    let ns = w.env.namespace().await.unwrap();
    let repo = w.repo(ns.name());
    w.kopia_secret(&ns, "kopia-credentials", &repo).await;
    let snap = repo.snap(&w.template, &["--tags", "area:postgres"]);
    put_secret(
        &ns,
        "hook-secret",
        std::collections::BTreeMap::from([("token".to_owned(), "tok-123".to_owned())]),
    )
    .await;
    let spec = format!(
        "{}notifications:\n- target: webhook\n  name: with-password\n  url: {}\n  method: PUT\n  includePassword: true\n  headers:\n    X-Token: {{secretKeyRef: {{name: hook-secret, key: token}}}}\n    X-Plain: plain-value\n- target: webhook\n  url: {}\n",
        quick_start("scheduleJitter: '0'\n"),
        rx.url(w, "/with"),
        rx.url(w, "/without"),
    );
    create_replica(&ns, &replica_yaml("n1", &spec)).await;
    let r = wait_replica(w, &ns, "n1", "both notified", READY_TIMEOUT, |r, _| {
        ["with-password", "webhook-1"]
            .iter()
            .all(|n| notification_status(r, n, "RestoreCompleted").is_some_and(|s| s.success))
    })
    .await;
    let active = current(&r).unwrap();
    let (_, password) = analytics_credentials(&ns, "n1").await;
    let with = rx.received("/with");
    assert_eq!(with.len(), 1, "one delivery");
    let req = &with[0];
    assert_eq!(req.method, "PUT");
    assert_eq!(req.headers["x-token"], "tok-123", "header from the Secret");
    assert_eq!(req.headers["x-plain"], "plain-value");
    assert_eq!(req.headers["content-type"], "application/json");
    let b = &req.body;
    assert_eq!(b["event"], "RestoreCompleted");
    assert_eq!(
        b["replica"],
        serde_json::json!({"name": "n1", "namespace": ns.name()})
    );
    assert_eq!(b["restore"]["name"], active.as_str());
    assert_eq!(b["restore"]["snapshot"], snap.as_str());
    assert_eq!(b["restore"]["postgresVersion"], "16");
    assert!(b["restore"]["snapshotTime"].is_string());
    assert!(b["timestamp"].is_string());
    assert_eq!(b["connectionInfo"]["host"], format!("n1.{}.svc", ns.name()));
    assert_eq!(b["connectionInfo"]["username"], "analytics");
    assert_eq!(b["connectionInfo"]["passwordSecret"], "n1-creds");
    assert_eq!(
        b["connectionInfo"]["password"],
        password.as_str(),
        "includePassword"
    );
    assert!(b.get("error").is_none());
    let without = rx.received("/without");
    assert_eq!(without[0].method, "POST", "default method");
    assert!(
        without[0].body["connectionInfo"].get("password").is_none(),
        "no password without includePassword"
    );
    let st = notification_status(&r, "with-password", "RestoreCompleted").unwrap();
    assert_eq!((st.attempts, st.success, st.last_error), (1, true, None));
    assert!(st.last_attempt_at.is_some() && st.next_attempt_at.is_none());
    assert_eq!(st.restore.as_deref(), Some(active.as_str()));
    // The password is in the webhook body only, never in status or events.
    let status_json = serde_json::to_string(&r.status).unwrap();
    assert!(!status_json.contains(&password));

    // A failed restore notifies too, with the error.
    let bad = w.root.path().join(format!("bad-{}", ns.name()));
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("README"), "not a database").unwrap();
    repo.snap(&bad, &["--tags", "area:bad"]);
    patch_spec(
        &ns,
        "n1",
        serde_json::json!({"schedule": "* * * * *", "snapshotFilter": {"tags": {"area": "bad"}}}),
    )
    .await;
    let r = wait_replica(w, &ns, "n1", "failure notified", READY_TIMEOUT, |r, _| {
        notification_status(r, "webhook-1", "RestoreFailed").is_some_and(|s| s.success)
    })
    .await;
    let failed = rx
        .received("/without")
        .into_iter()
        .find(|x| x.body["event"] == "RestoreFailed")
        .expect("a RestoreFailed delivery");
    let error = failed.body["error"].as_str().unwrap();
    assert!(
        error.starts_with("NoPgdata: ") && error.contains("contains no PostgreSQL data directory"),
        "{error}"
    );
    assert!(phase_is(&r, "Ready"), "the active restore keeps serving");
    ns.delete().await.unwrap();
}

/// Issue 6 (N3): a receiver that fails three times, then succeeds, is retried with back-off and the status
/// shows the attempts — while other replicas keep being reconciled (measured).
#[tokio::test(flavor = "multi_thread")]
async fn failing_webhook_is_retried_with_backoff_off_the_reconcile_path() {
    let Some(w) = world("failing_webhook_is_retried").await else {
        return;
    };
    // Three failures, each answered only after 4 s, then success.
    let rx = Receiver::start(
        w,
        Arc::new(|n, _| {
            if n < 3 {
                (
                    500,
                    "{\"error\":\"down\"}".to_owned(),
                    Duration::from_secs(4),
                )
            } else {
                (200, "{}".to_owned(), Duration::ZERO)
            }
        }),
    )
    .await;
    let ns = w.env.namespace().await.unwrap();
    let repo = w.repo(ns.name());
    w.kopia_secret(&ns, "kopia-credentials", &repo).await;
    repo.snap(&w.template, &["--tags", "area:postgres"]);
    let spec = format!(
        "{}notifications:\n- target: webhook\n  name: flaky\n  url: {}\n",
        quick_start(""),
        rx.url(w, "/flaky")
    );
    create_replica(&ns, &replica_yaml("n2", &spec)).await;
    // Another replica (no Secret: quick to reconcile) to measure reconcile latency during the deliveries.
    create_replica(&ns, &replica_yaml("other", &quick_start(""))).await;
    wait_replica(
        w,
        &ns,
        "n2",
        "first failed attempt",
        READY_TIMEOUT,
        |r, _| notification_status(r, "flaky", "RestoreCompleted").is_some_and(|s| s.attempts >= 1),
    )
    .await;
    let replicas = ns.api::<PostgresPhysicalReplica>();
    let mut latencies = Vec::new();
    for i in 0..5 {
        let r = replicas.get("other").await.unwrap();
        let want = r.metadata.generation.unwrap() + 1;
        let t = std::time::Instant::now();
        patch_spec(
            &ns,
            "other",
            serde_json::json!({"podAnnotations": {"round": i.to_string()}}),
        )
        .await;
        wait_replica(
            w,
            &ns,
            "other",
            "observedGeneration",
            Duration::from_secs(30),
            |r, _| r.status.as_ref().and_then(|s| s.observed_generation) == Some(want),
        )
        .await;
        latencies.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let r = wait_replica(
        w,
        &ns,
        "n2",
        "success after 3 failures",
        Duration::from_secs(120),
        |r, _| notification_status(r, "flaky", "RestoreCompleted").is_some_and(|s| s.success),
    )
    .await;
    let st = notification_status(&r, "flaky", "RestoreCompleted").unwrap();
    assert_eq!(st.attempts, 4, "{st:?}");
    assert_eq!(st.last_error, None);
    let got = rx.received("/flaky");
    assert_eq!(got.len(), 4);
    // Back-off 2 s, 3 s, 4 s counted from the end of the previous attempt (answered after 4 s);
    // `nextAttemptAt` is a metav1.Time, which keeps whole seconds, so allow one second less.
    for (i, min) in [(1, 5), (2, 6), (3, 7)] {
        let gap = got[i].at - got[i - 1].at;
        assert!(
            gap >= Duration::from_secs(min),
            "attempt {} after {gap:?}",
            i + 1
        );
    }
    let max = latencies.iter().max().unwrap();
    eprintln!("reconcile latency of another replica during failing deliveries: {latencies:?}");
    assert!(
        *max < Duration::from_secs(4),
        "a delivery blocked reconciling: {latencies:?}"
    );
    ns.delete().await.unwrap();
}

/// Issue 6 (N2): a GraphQL target gets `{query, variables}` rendered from its template, values escaped as
/// JSON; a response with `errors` counts as a failure and is retried.
#[tokio::test(flavor = "multi_thread")]
async fn graphql_target_gets_rendered_variables_and_errors_are_failures() {
    let Some(w) = world("graphql_target_gets_rendered_variables").await else {
        return;
    };
    let rx = Receiver::start(
        w,
        Arc::new(|n, _| {
            if n == 0 {
                (
                    200,
                    r#"{"data":null,"errors":[{"message":"denied"}]}"#.to_owned(),
                    Duration::ZERO,
                )
            } else {
                (
                    200,
                    r#"{"data":{"reported":true}}"#.to_owned(),
                    Duration::ZERO,
                )
            }
        }),
    )
    .await;
    let ns = w.env.namespace().await.unwrap();
    let repo = w.repo(ns.name());
    w.kopia_secret(&ns, "kopia-credentials", &repo).await;
    // A source path with a quote and a backslash: the failure message quotes it, so it needs JSON escaping.
    let bad = w.root.path().join(format!("bad \"dir\" \\ {}", ns.name()));
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("README"), "not a database").unwrap();
    repo.snap(&bad, &["--tags", "area:postgres"]);
    let mutation = "mutation Report($replica: String!, $error: String) { report(replica: $replica, error: $error) }";
    let template = r#"{"replica": {{json Replica}}, "namespace": {{json Namespace}}, "event": {{json Event}}, "snapshot": {{json Snapshot}}, "error": {{json Error}}, "port": {{ConnectionInfo.Port}}}"#;
    let spec = format!(
        "{}notifications:\n- target: graphQL\n  name: gql\n  url: {}\n  mutation: '{mutation}'\n  variablesTemplate: '{template}'\n",
        quick_start(""),
        rx.url(w, "/graphql"),
    );
    create_replica(&ns, &replica_yaml("n3", &spec)).await;
    let r = wait_replica(w, &ns, "n3", "GraphQL delivered", READY_TIMEOUT, |r, _| {
        notification_status(r, "gql", "RestoreFailed").is_some_and(|s| s.success)
    })
    .await;
    let st = notification_status(&r, "gql", "RestoreFailed").unwrap();
    assert_eq!(st.attempts, 2, "the errors response was a failure: {st:?}");
    let got = rx.received("/graphql");
    assert_eq!(got.len(), 2);
    let b = &got[1].body;
    assert_eq!(b["query"], mutation);
    let restore = ns
        .api::<PostgresPhysicalRestore>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|x| restore_phase(x) == "Failed")
        .expect("failed restore");
    let failed = condition(&restore.status.as_ref().unwrap().conditions, "Failed").unwrap();
    let v = &b["variables"];
    assert_eq!(v["replica"], "n3");
    assert_eq!(v["namespace"], ns.name());
    assert_eq!(v["event"], "RestoreFailed");
    assert_eq!(v["snapshot"], restore.spec.snapshot.as_str());
    assert_eq!(v["port"], 5432);
    assert_eq!(
        v["error"].as_str().unwrap(),
        format!("{}: {}", failed.reason, failed.message),
        "escaped and intact"
    );
    assert!(v["error"].as_str().unwrap().contains("bad \"dir\" \\"));
    ns.delete().await.unwrap();
}

async fn admin_password(ns: &pgro_testkit::TestNamespace, replica: &str) -> String {
    let s = ns
        .api::<k8s_openapi::api::core::v1::Secret>()
        .get(&format!("{replica}-admin"))
        .await
        .unwrap();
    String::from_utf8(s.data.unwrap()["password"].0.clone()).unwrap()
}

/// A new snapshot of a changed copy of the template, tagged for the replica.
fn new_snapshot(w: &World, repo: &pgro_testkit::fixtures::KopiaRepo, name: &str, n: i64) {
    let src = w.source_copy(name);
    w.change_source(
        &src,
        &format!("INSERT INTO items SELECT g, 'round {n}' FROM generate_series(200000 + {n} * 10, 200000 + {n} * 10 + 4) g"),
    );
    repo.snap(&src, &["--tags", "area:postgres"]);
}

/// Issue 6 (P1–P3): rows written to a persistent schema in the active restore are in the next one after the
/// switchover; a schema missing on the source is skipped and reported; a statement error makes the
/// migration `partial` with an event; a migration past its budget is `timeout-skipped`, its partial copy
/// dropped and the switchover goes ahead; a Job that keeps failing fails the new restore after its retries
/// while the old one keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn persistent_schemas_follow_switchovers_and_report_partial_timeout_and_failure() {
    let Some(w) = world("persistent_schemas_follow_switchovers").await else {
        return;
    };
    let ns = w.env.namespace().await.unwrap();
    let repo = w.repo(ns.name());
    w.kopia_secret(&ns, "kopia-credentials", &repo).await;
    repo.snap(&w.template, &["--tags", "area:postgres"]);
    create_replica(
        &ns,
        &replica_yaml(
            "ps",
            &quick_start(
                "scheduleJitter: '0'\nswitchoverGracePeriod: 20s\npersistentSchemas: [scratch]\n",
            ),
        ),
    )
    .await;
    let r = wait_replica(w, &ns, "ps", "Ready", READY_TIMEOUT, |r, _| {
        phase_is(r, "Ready")
    })
    .await;
    let first = current(&r).unwrap();
    let (user, password) = analytics_credentials(&ns, "ps").await;
    let admin_pw = admin_password(&ns, "ps").await;
    {
        // P1: the analytics role writes to its schema and nowhere else.
        let (c, _f) = connect_service(w, &ns, "ps", &user, &password)
            .await
            .unwrap();
        c.batch_execute("CREATE TABLE scratch.notes (id int PRIMARY KEY, body text); INSERT INTO scratch.notes VALUES (1, 'kept'), (2, 'across'), (3, 'switchovers')")
            .await
            .expect("writes to its persistent schema");
        assert!(
            c.batch_execute("INSERT INTO items VALUES (0, 'x')")
                .await
                .is_err(),
            "still read-only elsewhere"
        );
        // A view on a table only the old restore has: recreating it in the new one fails (partial).
        let (a, _g) = connect_service(w, &ns, &first, "pgro_admin", &admin_pw)
            .await
            .unwrap();
        a.batch_execute("CREATE TABLE public.only_here (x int); CREATE VIEW scratch.v AS SELECT x FROM public.only_here")
            .await
            .unwrap();
    }
    // A schema the running instance does not have (spec changes wait for the next restore).
    patch_spec(
        &ns,
        "ps",
        serde_json::json!({"persistentSchemas": ["scratch", "gone"], "schedule": "* * * * *"}),
    )
    .await;
    new_snapshot(w, &repo, &format!("{}-1", ns.name()), 1);
    let r = wait_replica(
        w,
        &ns,
        "ps",
        "switchover after migrating",
        READY_TIMEOUT,
        |r, _| current(r).is_some_and(|c| c != first),
    )
    .await;
    let second = current(&r).unwrap();
    let st = r.status.clone().unwrap();
    assert_eq!(st.schema_migration_phase.as_deref(), Some("partial"));
    assert_eq!(st.schema_migration_job, None);
    assert!(st.persistent_schema_data_size.is_some());
    let events = event_reasons(&ns, "ps").await;
    let partial = events
        .iter()
        .find(|(r, _)| r == "SchemaMigrationPartial")
        .map(|(_, n)| n.clone())
        .unwrap_or_else(|| panic!("no SchemaMigrationPartial event: {events:?}"));
    assert!(
        partial.contains("skipped (not on the source) [gone]"),
        "{partial}"
    );
    assert!(partial.contains("only_here"), "{partial}");
    {
        let (c, _f) = connect_service(w, &ns, "ps", &user, &password)
            .await
            .unwrap();
        let n: i64 = c
            .query_one("SELECT count(*) FROM scratch.notes", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 3, "rows written in the old restore are in the new one");
        c.batch_execute("INSERT INTO scratch.notes VALUES (4, 'still writable')")
            .await
            .expect("the analytics role owns the copy");
    }

    // P1 time budget (a fifth of a minute, at least 30 s): a lock on the source holds pg_dump past it.
    let (locker, _l) = connect_service(w, &ns, &second, "pgro_admin", &admin_pw)
        .await
        .unwrap();
    locker
        .batch_execute("BEGIN; LOCK TABLE scratch.notes IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    new_snapshot(w, &repo, &format!("{}-2", ns.name()), 2);
    let r = wait_replica(
        w,
        &ns,
        "ps",
        "switchover after the timeout",
        READY_TIMEOUT,
        |r, _| current(r).is_some_and(|c| c != second && c != first),
    )
    .await;
    let third = current(&r).unwrap();
    assert_eq!(
        r.status.as_ref().unwrap().schema_migration_phase.as_deref(),
        Some("timeout-skipped")
    );
    let events = event_reasons(&ns, "ps").await;
    assert!(
        events.iter().any(|(r, _)| r == "SchemaMigrationTimedOut"),
        "{events:?}"
    );
    {
        let (c, _f) = connect_service(w, &ns, "ps", &user, &password)
            .await
            .unwrap();
        let tables: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'scratch'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            tables, 0,
            "the partial copy was dropped; the schema is there, empty"
        );
    }
    drop(locker);

    // P1 retries: the source refuses the Job's login, so every run fails; the new restore fails after
    // the retries and the serving one stays.
    {
        let (a, _g) = connect_service(w, &ns, &third, "pgro_admin", &admin_pw)
            .await
            .unwrap();
        a.batch_execute("ALTER ROLE pgro_admin PASSWORD 'not-what-the-job-has'")
            .await
            .unwrap();
    }
    new_snapshot(w, &repo, &format!("{}-3", ns.name()), 3);
    let r = wait_replica(
        w,
        &ns,
        "ps",
        "migration failure",
        Duration::from_secs(420),
        |r, _| {
            r.status
                .as_ref()
                .and_then(|s| s.schema_migration_phase.as_deref())
                .is_some_and(|p| p.starts_with("failed: "))
                && r.status
                    .as_ref()
                    .is_some_and(|s| s.consecutive_restore_failures >= 1)
        },
    )
    .await;
    assert_eq!(
        current(&r).as_deref(),
        Some(third.as_str()),
        "the old restore keeps serving"
    );
    let failed = ns
        .api::<PostgresPhysicalRestore>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|x| restore_phase(x) == "Failed")
        .expect("the new restore failed");
    let (reason, message) = restore_failure(&failed).unwrap();
    assert_eq!(reason, "SchemaMigrationFailed", "{message}");
    let job = ns.api::<Job>().get("ps-schema-migration").await.unwrap();
    assert_eq!(
        job.status.and_then(|s| s.failed),
        Some(4),
        "one run and three retries"
    );
    ns.delete().await.unwrap();
}
