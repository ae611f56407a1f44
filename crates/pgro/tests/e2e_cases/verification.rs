//! Issue 16: verification before the switchover, the replica's history and the per-replica metrics. A
//! passing check lets the switch happen and records its value; a failing one leaves the old restore
//! serving, sets `Verified=False`, emits the event and the notification and is recorded in the history;
//! amcheck on a copy with a broken index fails the restore.

use std::time::Duration;

use kube::api::ListParams;
use pgro_api::{PostgresPhysicalReplica, PostgresPhysicalRestore};

use crate::e2e_support::*;
use crate::{READY_TIMEOUT, patch_spec, quick_start, restore_failure};
use pgro_testkit::TestNamespace;

const ITEMS_CHECK: &str = "- {name: items-present, database: postgres, sql: 'SELECT count(*) >= 100 AS ok, count(*) AS n FROM items'}";

/// A source data directory of PostgreSQL 17 with `items` (the PostgreSQL 16 build of the test
/// infrastructure ships no `amcheck`; an image without it fails the check with a message saying so).
fn pg17_source(w: &World, name: &str, sql: Option<&str>) -> std::path::PathBuf {
    let pg = pgro_testkit::fixtures::Postgres::new(w.env.components(), 17).unwrap();
    let dir = w.root.path().join("sources").join(name);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    pg.create_datadir(&dir, SOURCE_ROWS).unwrap();
    if let Some(sql) = sql {
        pg.with_server(&dir, sql).unwrap();
    }
    dir
}

fn series(name: &str, ns: &str, replica: &str, extra: &str) -> String {
    format!("{name}{{namespace=\"{ns}\",replica=\"{replica}\"{extra}}}")
}

#[tokio::test(flavor = "multi_thread")]
async fn verification_gates_the_switchover_and_is_recorded_in_history_events_notifications_and_metrics()
 {
    let Some(w) = world("verification_gates_the_switchover").await else {
        return;
    };
    let rx = Receiver::start(w, accept_all()).await;
    let ns = w.env.namespace().await.unwrap();
    let repo = w.repo(ns.name());
    w.kopia_secret(&ns, "kopia-credentials", &repo).await;
    // A partitioned table (its index has no storage of its own) must not trip amcheck; an application
    // database for `requireApplicationDatabase`; and amcheck in pgro's schema, as an operator restarted
    // mid-run leaves it in a copy: the next run removes it.
    let src = pg17_source(
        w,
        &format!("verify-{}", ns.name()),
        Some(
            "CREATE TABLE parted (id int PRIMARY KEY) PARTITION BY RANGE (id); \
             CREATE TABLE parted_low PARTITION OF parted FOR VALUES FROM (0) TO (1000); \
             INSERT INTO parted SELECT generate_series(0, 999); \
             CREATE SCHEMA _pgro_amcheck; CREATE EXTENSION amcheck WITH SCHEMA _pgro_amcheck",
        ),
    );
    pgro_testkit::fixtures::Postgres::new(w.env.components(), 17)
        .unwrap()
        .with_server(&src, "CREATE DATABASE shop")
        .unwrap();
    repo.snap(&src, &["--tags", "area:postgres"]);
    let spec = quick_start(&format!(
        "scheduleJitter: '0'\nhistoryLimit: 5\nverification:\n  requireApplicationDatabase: true\n  checks:\n  {ITEMS_CHECK}\n  amcheck: {{heapallindexed: true}}\nnotifications:\n- target: webhook\n  url: {}\n",
        rx.url(w, "/hook")
    ));
    create_replica(&ns, &replica_yaml("v1", &spec)).await;
    let r = wait_replica(w, &ns, "v1", "Ready and recorded", READY_TIMEOUT, |r, _| {
        phase_is(r, "Ready") && r.status.as_ref().is_some_and(|s| !s.history.is_empty())
    })
    .await;
    let first = current(&r).unwrap();
    let restore: PostgresPhysicalRestore = ns.api().get(&first).await.unwrap();
    let st = restore.status.clone().unwrap();
    let v = st.verification.clone().expect("status.verification");
    assert_eq!(v.passed, Some(true), "{v:?}");
    let names: Vec<&str> = v.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["pgro.applicationDatabase", "items-present", "pgro.amcheck"]
    );
    assert_eq!(v.checks[1].value.as_deref(), Some("true"));
    assert_eq!(
        v.checks[1].detail.as_deref(),
        Some(format!("n={SOURCE_ROWS}").as_str())
    );
    assert!(
        v.checks[2]
            .value
            .as_deref()
            .unwrap()
            .ends_with("0 with findings"),
        "{v:?}"
    );
    assert!(cond_is_restore(
        &restore,
        "Verified",
        "True",
        "ChecksPassed"
    ));
    assert!(st.ready_at.is_some() && st.activated_at.is_some());
    // amcheck was created for the run and dropped again: the copy is as the backup had it.
    let extensions = served_digest(
        w,
        &ns,
        "v1",
        "SELECT count(*)::text FROM pg_extension WHERE extname = 'amcheck'",
    )
    .await;
    assert_eq!(extensions, "0");
    let rs = r.status.clone().unwrap();
    let h = &rs.history[0];
    assert_eq!(
        (h.restore.as_str(), h.outcome.as_str()),
        (first.as_str(), "Active")
    );
    assert_eq!(h.verification.as_deref(), Some("passed"));
    assert!(h.durations.download.is_some() && h.durations.verification.is_some());
    assert!(h.durations.switchover.is_some() && h.bytes > 0);
    assert!(rs.last_verified_at.is_some());

    // A failing check: the new restore fails before the switch; the first keeps serving.
    patch_spec(
        &ns,
        "v1",
        serde_json::json!({"schedule": "* * * * *", "verification": {"checks": [
            {"name": "items-present", "database": "postgres", "sql": "SELECT count(*) >= 100 AS ok, count(*) AS n FROM items"},
            {"name": "many-items", "database": "postgres", "sql": "SELECT count(*) > 1000000 AS ok, count(*) AS n FROM items"}
        ], "amcheck": {"heapallindexed": true}}}),
    )
    .await;
    // The same source again (a new snapshot): `requireApplicationDatabase` still holds (the merge patch
    // keeps it) and passes, so only `many-items` fails.
    repo.snap(&src, &["--tags", "area:postgres"]);
    let r = wait_failure(w, &ns, "v1").await;
    // No further attempts while the rest is checked.
    patch_spec(&ns, "v1", serde_json::json!({"schedule": "0 0 1 1 *"})).await;
    assert_eq!(
        current(&r).as_deref(),
        Some(first.as_str()),
        "the first still serves"
    );
    assert!(phase_is(&r, "Ready"));
    let (failed, reason, message) = failed_restore(&ns, "v1").await;
    let failed_name = failed.metadata.name.clone().unwrap();
    assert_eq!(reason, "VerificationFailed");
    assert!(
        message.contains("check many-items: returned false (n=2000)"),
        "{message}"
    );
    assert!(cond_is_restore(
        &failed,
        "Verified",
        "False",
        "VerificationFailed"
    ));
    let fv = failed
        .status
        .as_ref()
        .unwrap()
        .verification
        .clone()
        .unwrap();
    let outcome: Vec<(&str, bool)> = fv
        .checks
        .iter()
        .map(|c| (c.name.as_str(), c.passed))
        .collect();
    assert_eq!(
        outcome,
        [
            ("pgro.applicationDatabase", true),
            ("items-present", true),
            ("many-items", false)
        ],
        "amcheck not run after a failure"
    );
    let events = restore_events(&ns, &failed_name).await;
    assert!(
        events.iter().any(|(t, reason, note)| t == "Warning"
            && reason == "VerificationFailed"
            && note.contains("many-items")),
        "{events:?}"
    );
    assert_eq!(
        endpoint_addresses(&ns, "v1").await,
        restore_pod_ips(&ns, &first).await,
        "the Service still points at the first restore"
    );
    // The notification carries the results.
    let delivered = pgro_testkit::eventually(
        "the RestoreFailed webhook",
        Duration::from_secs(60),
        || async {
            Ok(rx
                .received("/hook")
                .into_iter()
                .find(|x| x.body["event"] == "RestoreFailed"))
        },
    )
    .await
    .unwrap();
    let b = &delivered.body;
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .starts_with("VerificationFailed: "),
        "{b}"
    );
    assert_eq!(b["verification"]["passed"], false);
    assert_eq!(b["verification"]["checks"][2]["name"], "many-items");
    assert_eq!(b["verification"]["checks"][2]["value"], "false");
    let completed = rx
        .received("/hook")
        .into_iter()
        .find(|x| x.body["event"] == "RestoreCompleted")
        .expect("RestoreCompleted delivered");
    assert_eq!(completed.body["verification"]["passed"], true);

    // The history holds the failure, newest first.
    let r = wait_replica(
        w,
        &ns,
        "v1",
        "the failure in the history",
        READY_TIMEOUT,
        |r, _| {
            r.status
                .as_ref()
                .is_some_and(|s| s.history.iter().any(|h| h.restore == failed_name))
        },
    )
    .await;
    let rs = r.status.clone().unwrap();
    let f = rs
        .history
        .iter()
        .find(|h| h.restore == failed_name)
        .unwrap();
    assert_eq!(f.outcome, "Failed");
    assert_eq!(f.verification.as_deref(), Some("failed"));
    assert!(f.failed_checks[0].contains("many-items"), "{f:?}");
    assert!(
        f.failure
            .as_deref()
            .unwrap()
            .starts_with("VerificationFailed: ")
    );
    assert_eq!(rs.history.last().unwrap().restore, first);

    // Each per-replica metric, with the values the status holds.
    let n = ns.name();
    let g = |name: &str| series(name, n, "v1", "");
    let check = |c: &str| {
        series(
            "pgro_verification_check_passed",
            n,
            "v1",
            &format!(",check=\"{c}\""),
        )
    };
    let r: PostgresPhysicalReplica = ns.api().get("v1").await.unwrap();
    let rs = r.status.clone().unwrap();
    let texts = wait_metrics(
        w,
        &[
            (
                g("pgro_replica_data_timestamp_seconds"),
                epoch(rs.data_time.as_ref().unwrap()),
            ),
            (
                g("pgro_replica_last_restore_success_timestamp_seconds"),
                epoch(rs.last_restore_completed_at.as_ref().unwrap()),
            ),
            (
                g("pgro_replica_last_verification_success_timestamp_seconds"),
                epoch(rs.last_verified_at.as_ref().unwrap()),
            ),
            (
                g("pgro_replica_created_timestamp_seconds"),
                epoch(r.metadata.creation_timestamp.as_ref().unwrap()),
            ),
            (
                g("pgro_replica_consecutive_restore_failures"),
                f64::from(rs.consecutive_restore_failures),
            ),
            (g("pgro_replica_scheduling_suspended"), 0.0),
            (g("pgro_replica_queue_position"), 0.0),
            (check("items-present"), 1.0),
            (check("many-items"), 0.0),
            // `0 0 1 1 *`: the length of next year.
            (g("pgro_replica_schedule_interval_seconds"), {
                let next = jiff::Timestamp::now()
                    .to_zoned(jiff::tz::TimeZone::UTC)
                    .year()
                    + 1;
                let leap = next % 4 == 0 && (next % 100 != 0 || next % 400 == 0);
                86400.0 * if leap { 366.0 } else { 365.0 }
            }),
        ],
    )
    .await;
    let phase = |p: &str| {
        metric_value(
            &texts,
            &series(
                "pgro_restore_phase_duration_seconds_count",
                n,
                "v1",
                &format!(",phase=\"{p}\""),
            ),
        )
    };
    assert_eq!(phase("switchover"), Some(1.0), "one switchover recorded");
    assert!(phase("download").unwrap() >= 2.0 && phase("verification").unwrap() >= 2.0);
    let failed_checks = metric_value(
        &texts,
        &series(
            "pgro_verification_checks_total",
            n,
            "v1",
            ",check=\"many-items\",result=\"failed\"",
        ),
    );
    assert!(failed_checks.unwrap() >= 1.0);

    // What an auditor reads without Prometheus.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgro"))
        .args(["status", "-n", n, "v1", "--kubeconfig"])
        .arg(w.env.control_plane().kubeconfig_path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        row(&first).contains("Active") && row(&first).contains("passed"),
        "{text}"
    );
    assert!(
        row(&failed_name).contains("Failed") && row(&failed_name).contains("VerificationFailed"),
        "{text}"
    );
    ns.delete().await.unwrap();
}

/// Waits until `replica` has counted a failed restore.
async fn wait_failure(w: &World, ns: &TestNamespace, replica: &str) -> PostgresPhysicalReplica {
    wait_replica(w, ns, replica, "a failed restore", READY_TIMEOUT, |r, _| {
        r.status
            .as_ref()
            .is_some_and(|s| s.consecutive_restore_failures >= 1)
    })
    .await
}

/// A failed restore of `replica`, with its `Failed` condition's reason and message.
async fn failed_restore(
    ns: &TestNamespace,
    replica: &str,
) -> (PostgresPhysicalRestore, String, String) {
    let all: Vec<PostgresPhysicalRestore> = ns
        .api()
        .list(&ListParams::default().labels(&format!("pgro.bes.au/replica={replica}")))
        .await
        .unwrap()
        .items;
    all.into_iter()
        .find_map(|r| restore_failure(&r).map(|(reason, message)| (r, reason, message)))
        .expect("a failed restore")
}

fn cond_is_restore(r: &PostgresPhysicalRestore, t: &str, status: &str, reason: &str) -> bool {
    r.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == t))
        .is_some_and(|c| c.status == status && c.reason == reason)
}

/// amcheck on a copy whose index file is empty (the backup lost it): PostgreSQL starts and serves a plain
/// scan, but the check finds the index broken and the restore fails before it could serve.
#[tokio::test(flavor = "multi_thread")]
async fn amcheck_finds_a_broken_index_and_fails_the_restore() {
    let Some(w) = world("amcheck_finds_a_broken_index").await else {
        return;
    };
    let ns = w.env.namespace().await.unwrap();
    let repo = w.repo(ns.name());
    w.kopia_secret(&ns, "kopia-credentials", &repo).await;
    // The database `postgres` has OID 5; the index's file is the one new relation file.
    let files = |dir: &std::path::Path| -> std::collections::BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.chars().all(|c| c.is_ascii_digit()))
            .collect()
    };
    let plain = pg17_source(w, &format!("amcheck-plain-{}", ns.name()), None);
    let src = pg17_source(
        w,
        &format!("amcheck-{}", ns.name()),
        Some("CREATE INDEX items_by_id ON items (id)"),
    );
    let db = src.join("base/5");
    let before = files(&plain.join("base/5"));
    let new: Vec<String> = files(&db).difference(&before).cloned().collect();
    assert_eq!(new.len(), 1, "one new relation file: {new:?}");
    std::fs::OpenOptions::new()
        .write(true)
        .open(db.join(&new[0]))
        .unwrap()
        .set_len(0)
        .unwrap();
    repo.snap(&src, &["--tags", "area:postgres"]);
    // And a backup holding only PostgreSQL's own databases, for `requireApplicationDatabase` (and, in
    // another replica, a check that selects too many rows).
    repo.snap(&plain, &["--tags", "area:plain"]);
    // And a check that selects four million rows: refused for returning more than one, without the
    // operator reading them all.
    create_replica(
        &ns,
        &replica_yaml(
            "rows",
            "kopiaSecretRef: {name: kopia-credentials}\nschedule: '0 */6 * * *'\nsnapshotFilter:\n  tags: {area: plain}\nverification:\n  checks:\n  - {name: all-pairs, database: postgres, sql: 'SELECT true FROM items a, items b'}\n",
        ),
    )
    .await;
    create_replica(
        &ns,
        &replica_yaml(
            "empty",
            "kopiaSecretRef: {name: kopia-credentials}\nschedule: '0 */6 * * *'\nsnapshotFilter:\n  tags: {area: plain}\nverification:\n  requireApplicationDatabase: true\n",
        ),
    )
    .await;
    create_replica(
        &ns,
        &replica_yaml("am", &quick_start("verification:\n  amcheck: {}\n")),
    )
    .await;
    let r = wait_failure(w, &ns, "am").await;
    assert_eq!(current(&r), None, "nothing serves");
    let (_, reason, message) = failed_restore(&ns, "am").await;
    assert_eq!(reason, "VerificationFailed");
    assert!(
        message.contains("check pgro.amcheck") && message.contains("items_by_id"),
        "{message}"
    );
    wait_failure(w, &ns, "empty").await;
    let (_, reason, message) = failed_restore(&ns, "empty").await;
    assert_eq!(reason, "VerificationFailed");
    assert!(
        message.contains("check pgro.applicationDatabase")
            && message.contains("only PostgreSQL's own databases"),
        "{message}"
    );
    wait_failure(w, &ns, "rows").await;
    let (_, reason, message) = failed_restore(&ns, "rows").await;
    assert_eq!(reason, "VerificationFailed");
    assert!(
        message.contains("check all-pairs: returned more than one row"),
        "{message}"
    );
    ns.delete().await.unwrap();
}
