use std::path::PathBuf;

use pgro_api::testutil::from_yaml;

use super::*;

fn at(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn restore(status: &str) -> PostgresPhysicalRestore {
    from_yaml(&format!(
        r"
apiVersion: pgro.bes.au/v1alpha1
kind: PostgresPhysicalRestore
metadata:
  name: test-20261121-101500
  namespace: ns
  uid: u-1
  generation: 1
  creationTimestamp: '2026-11-21T10:15:00Z'
spec:
  replica: {{name: test}}
  snapshot: k1
  snapshotSize: '1000'
  storageSize: 1Mi
status: {status}
"
    ))
    .expect("restore")
}

fn live() -> LiveFields {
    LiveFields {
        resources: None,
        pod_annotations: None,
    }
}

fn observed(r: &PostgresPhysicalRestore) -> Observed<'_> {
    Observed {
        restore: r,
        pvc: true,
        job: None,
        deployment: None,
        service: false,
        desired_live: live(),
        ready_timeout: Duration::from_secs(1800),
        fixes: None,
        source_state: None,
        data_time: None,
        wal_replayed: None,
        dump_replayed: None,
        instance_failure: None,
        verification: None,
        verified: None,
    }
}

/// A restore whose Service exists and whose PostgreSQL runs, ready or not.
fn running(r: &PostgresPhysicalRestore, ready: bool) -> Observed<'_> {
    let mut o = observed(r);
    o.service = true;
    o.deployment = Some(DeploymentView {
        ready,
        live: live(),
    });
    o
}

fn done() -> JobReport {
    JobReport::Done(RestoreResult {
        postgres_version: "16".into(),
        pgdata: PathBuf::from("/pgdata/data"),
        pgdata_in_snapshot: PathBuf::new(),
        bytes: 1000,
        files: 10,
        seconds: 1.5,
        snapshot: "k1".into(),
        snapshot_time: "2026-11-21T10:00:00Z".into(),
        tablespaces: Vec::new(),
        dump: None,
    })
}

const NOW: &str = "2026-11-21T10:20:00Z";

#[test]
fn new_restore_creates_claim_and_job_and_stays_pending() {
    let r = restore("{}");
    let mut o = observed(&r);
    o.pvc = false;
    let p = decide(&o, at(NOW));
    assert_eq!(p.create, [Child::DataPvc, Child::RestoreJob]);
    assert_eq!(p.status.phase, Some(RestorePhase::Pending));
    assert_eq!(
        p.status.created_at.map(|t| t.0),
        Some(at("2026-11-21T10:15:00Z"))
    );
    assert_eq!(p.status.pvc.as_deref(), Some("test-20261121-101500-data"));
    assert_eq!(p.status.credentials_secret.as_deref(), Some("test-creds"));
    assert_eq!(
        p.status.restore_job.and_then(|j| j.phase).as_deref(),
        Some("Pending")
    );
}

#[test]
fn running_job_means_restoring() {
    let r = restore("{phase: Pending}");
    let mut o = observed(&r);
    o.job = Some(JobView {
        active: true,
        ..JobView::default()
    });
    let p = decide(&o, at(NOW));
    assert!(p.create.is_empty());
    assert_eq!(p.status.phase, Some(RestorePhase::Restoring));
    assert!(!conditions::is_true(&p.status.conditions, types::RESTORED));
}

#[test]
fn completed_job_records_result_and_starts_postgres() {
    let r = restore("{phase: Restoring}");
    let mut o = observed(&r);
    o.job = Some(JobView {
        complete_at: Some(at("2026-11-21T10:18:00Z")),
        report: Some(done()),
        ..JobView::default()
    });
    let p = decide(&o, at(NOW));
    assert_eq!(p.create, [Child::Deployment, Child::Service]);
    assert_eq!(p.status.phase, Some(RestorePhase::Restoring));
    assert_eq!(p.status.postgres_version.as_deref(), Some("16"));
    assert_eq!(
        p.status.restored_at.map(|t| t.0),
        Some(at("2026-11-21T10:18:00Z"))
    );
    let job = p.status.restore_job.expect("job status");
    assert_eq!(job.phase.as_deref(), Some("Succeeded"));
    assert_eq!(
        job.completed_at.map(|t| t.0),
        Some(at("2026-11-21T10:18:00Z"))
    );
    assert!(conditions::is_true(&p.status.conditions, types::RESTORED));
    assert_eq!(p.status.deployment.as_deref(), Some("test-20261121-101500"));
    // The ready deadline is 30 min after the Job: look again then at the latest.
    assert_eq!(p.requeue, Some(Duration::from_secs(28 * 60)));
}

#[test]
fn ready_deployment_makes_the_restore_ready() {
    let r =
        restore("{phase: Restoring, postgresVersion: '16', restoredAt: '2026-11-21T10:18:00Z'}");
    let o = running(&r, true);
    let p = decide(&o, at(NOW));
    assert!(p.create.is_empty(), "{:?}", p.create);
    assert_eq!(p.status.phase, Some(RestorePhase::Ready));
    assert!(conditions::is_true(&p.status.conditions, types::READY));
    assert_eq!(p.patch_live, None);
}

#[test]
fn job_failure_is_classified_from_the_termination_message() {
    let r = restore("{phase: Restoring}");
    for (error, reason) in [
        ("WrongPassword", "WrongPassword"),
        ("NoPgdataInSnapshot", reasons::NO_PGDATA),
        ("CorruptedContent", "CorruptedContent"),
        ("DiskFull", "DiskFull"),
    ] {
        let mut o = observed(&r);
        o.job = Some(JobView {
            failed: Some(("PodFailurePolicy".into(), "rule 0 matched".into())),
            report: Some(JobReport::Failed(RestoreFailure {
                error: error.into(),
                message: format!("{error}: details"),
                exit_code: 4,
            })),
            ..JobView::default()
        });
        let p = decide(&o, at(NOW));
        assert_eq!(p.status.phase, Some(RestorePhase::Failed));
        let c = conditions::get(&p.status.conditions, types::FAILED).expect("Failed");
        assert_eq!(c.reason, reason);
        assert_eq!(c.message, format!("{error}: details"));
        assert_eq!(
            p.status.restore_job.and_then(|j| j.phase).as_deref(),
            Some("Failed")
        );
    }
}

#[test]
fn job_deadline_and_unreported_failures_have_their_own_reasons() {
    let r = restore("{phase: Restoring}");
    let mut o = observed(&r);
    o.job = Some(JobView {
        failed: Some((
            "DeadlineExceeded".into(),
            "Job was active longer than specified deadline".into(),
        )),
        ..JobView::default()
    });
    let p = decide(&o, at(NOW));
    let c = conditions::get(&p.status.conditions, types::FAILED).expect("Failed");
    assert_eq!(c.reason, reasons::DEADLINE_EXCEEDED);
    o.job = Some(JobView {
        complete_at: Some(at(NOW)),
        ..JobView::default()
    });
    let p = decide(&o, at(NOW));
    assert_eq!(p.status.phase, Some(RestorePhase::Failed));
}

#[test]
fn postgres_not_ready_in_time_fails_the_restore() {
    let r =
        restore("{phase: Restoring, postgresVersion: '16', restoredAt: '2026-11-21T09:40:00Z'}");
    let o = running(&r, false);
    let p = decide(&o, at("2026-11-21T10:10:00Z"));
    assert_eq!(p.status.phase, Some(RestorePhase::Failed));
    let c = conditions::get(&p.status.conditions, types::FAILED).expect("Failed");
    assert_eq!(c.reason, reasons::READY_TIMEOUT);
}

const UNREADY_SINCE: &str = "{type: Ready, status: 'False', reason: PostgresNotReady, \
     message: waiting for PostgreSQL to become ready, lastTransitionTime: '2026-11-21T10:00:00Z'}";

#[test]
fn never_served_restore_that_stays_unready_fails_after_the_ready_timeout() {
    for phase in ["Ready", "Switching"] {
        let r = restore(&format!(
            "{{phase: {phase}, postgresVersion: '16', restoredAt: '2026-11-21T09:00:00Z', \
             conditions: [{UNREADY_SINCE}]}}"
        ));
        // Within the timeout: it waits, and looks again when the timeout ends.
        let p = decide(&running(&r, false), at("2026-11-21T10:20:00Z"));
        assert_eq!(
            p.status.phase.as_ref().map(ToString::to_string),
            Some(phase.to_owned())
        );
        assert_eq!(p.requeue, Some(Duration::from_secs(600)));
        // Past it: failed, so the replica can start another restore.
        let p = decide(&running(&r, false), at("2026-11-21T10:30:00Z"));
        assert_eq!(p.status.phase, Some(RestorePhase::Failed), "{phase}");
        let c = conditions::get(&p.status.conditions, types::FAILED).expect("Failed");
        assert_eq!(c.reason, reasons::READY_TIMEOUT);
    }
}

#[test]
fn unready_time_counts_from_when_readiness_was_lost() {
    // Ready until now: the timeout starts now, not at the restore's completion.
    let r = restore(
        "{phase: Ready, postgresVersion: '16', restoredAt: '2026-11-21T08:00:00Z', \
         conditions: [{type: Ready, status: 'True', reason: PostgresReady, \
         message: PostgreSQL accepts connections, lastTransitionTime: '2026-11-21T08:10:00Z'}]}",
    );
    let p = decide(&running(&r, false), at(NOW));
    assert_eq!(p.status.phase, Some(RestorePhase::Ready));
    assert_eq!(p.requeue, Some(Duration::from_secs(1800)));
    let c = conditions::get(&p.status.conditions, types::READY).expect("Ready");
    assert_eq!(c.last_transition_time.0, at(NOW));
}

#[test]
fn a_restore_that_has_served_is_never_failed_for_being_unready() {
    let r = restore(&format!(
        "{{phase: Ready, postgresVersion: '16', restoredAt: '2026-11-21T08:00:00Z', \
         activatedAt: '2026-11-21T08:30:00Z', conditions: [{UNREADY_SINCE}]}}"
    ));
    let p = decide(&running(&r, false), at("2026-11-21T12:00:00Z"));
    assert_eq!(p.status.phase, Some(RestorePhase::Ready));
    assert_eq!(p.requeue, None);
}

#[test]
fn failed_restore_is_left_alone() {
    let r = restore("{phase: Failed}");
    let mut o = observed(&r);
    o.pvc = false;
    let p = decide(&o, at(NOW));
    assert!(p.create.is_empty());
    assert_eq!(p.status.phase, Some(RestorePhase::Failed));
}

#[test]
fn active_restore_keeps_its_phase_and_follows_live_fields() {
    let r = restore("{phase: Active, postgresVersion: '16', restoredAt: '2026-11-21T09:40:00Z'}");
    let mut o = running(&r, false);
    o.desired_live = LiveFields {
        resources: None,
        pod_annotations: Some([("a".to_owned(), "b".to_owned())].into()),
    };
    let p = decide(&o, at("2026-11-21T12:00:00Z"));
    assert_eq!(p.status.phase, Some(RestorePhase::Active));
    assert!(!conditions::is_true(&p.status.conditions, types::READY));
    assert_eq!(p.patch_live, Some(o.desired_live.clone()));
    assert!(p.create.is_empty());
}

#[test]
fn termination_messages_parse_as_result_or_failure() {
    let ok = r#"{"postgresVersion":"16","pgdata":"/pgdata/data","pgdataInSnapshot":"","bytes":1,"files":1,"seconds":0.1,"snapshot":"k1","snapshotTime":"t"}"#;
    assert!(matches!(JobReport::parse(ok), Some(JobReport::Done(_))));
    let bad = r#"{"error":"WrongPassword","message":"wrong password","exitCode":4}"#;
    assert!(matches!(JobReport::parse(bad), Some(JobReport::Failed(_))));
    assert_eq!(JobReport::parse("panicked at src/main.rs"), None);
}

fn ready_with(fixes: serde_json::Value) -> Plan {
    let r =
        restore("{phase: Restoring, postgresVersion: '16', restoredAt: '2026-11-21T10:18:00Z'}");
    let mut o = running(&r, true);
    o.fixes = Some(Fix::parse_all(&fixes));
    decide(&o, at(NOW))
}

#[test]
fn source_state_is_recorded_with_the_fixes() {
    let r =
        restore("{phase: Restoring, postgresVersion: '16', restoredAt: '2026-11-21T10:18:00Z'}");
    let mut o = running(&r, true);
    o.fixes = Some(Vec::new());
    o.source_state = Some("crash-consistent".into());
    let p = decide(&o, at(NOW));
    assert_eq!(p.status.source_state.as_deref(), Some("crash-consistent"));
    o.fixes = None;
    o.source_state = None;
    assert_eq!(
        decide(&o, at(NOW)).status.source_state,
        None,
        "absent until read"
    );
}

#[test]
fn instance_fixes_are_recorded_once_with_a_warning_each() {
    let p = ready_with(serde_json::json!([
        {"fix": "pg_resetwal", "reason": "could not locate a valid checkpoint record", "backupLabelRemoved": false},
        {"fix": "locale", "database": "shop", "from": "de_DE.UTF-8", "to": "C.UTF-8"},
        {"fix": "something-newer", "x": 1},
    ]));
    assert_eq!(p.status.phase, Some(RestorePhase::Ready));
    let lines = p.status.instance_fixes.clone().expect("recorded");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("pg_resetwal: ")
            && lines[0].contains("could not locate a valid checkpoint record")
    );
    assert!(
        lines[1].contains("shop")
            && lines[1].contains("de_DE.UTF-8")
            && lines[1].contains("C.UTF-8")
    );
    let reasons: Vec<_> = p.events.iter().map(|e| (e.reason, e.warning)).collect();
    assert_eq!(
        reasons,
        [
            (event_reasons::RECOVERY_FALLBACK, true),
            (event_reasons::LOCALE_SWITCHED, true)
        ]
    );

    // Once recorded, a later read changes nothing and announces nothing.
    let mut r = restore("{}");
    r.status = Some(p.status.clone());
    let mut o = running(&r, true);
    o.fixes = Some(Vec::new());
    let again = decide(&o, at(NOW));
    assert_eq!(again.status.instance_fixes, Some(lines));
    assert!(again.events.is_empty());
}

#[test]
fn a_clean_instance_records_an_empty_list_and_no_event() {
    let p = ready_with(serde_json::json!([]));
    assert_eq!(p.status.instance_fixes, Some(Vec::new()));
    assert!(p.events.is_empty());
}

#[test]
fn fixes_not_read_leave_the_field_unset() {
    let r =
        restore("{phase: Restoring, postgresVersion: '16', restoredAt: '2026-11-21T10:18:00Z'}");
    let o = running(&r, true);
    let p = decide(&o, at(NOW));
    assert_eq!(p.status.phase, Some(RestorePhase::Ready));
    assert_eq!(p.status.instance_fixes, None);
}

#[test]
fn data_time_and_wal_replayed_are_recorded_with_the_fixes_else_the_snapshot_time() {
    let mut r =
        restore("{phase: Restoring, postgresVersion: '16', restoredAt: '2026-11-21T10:18:00Z'}");
    r.spec.snapshot_time = Some(ts(at("2026-11-21T10:00:00Z")));
    let mut o = running(&r, true);
    o.fixes = Some(Vec::new());
    let replay_end: Timestamp = "2026-11-21T10:07:00Z".parse().expect("time");
    o.data_time = Some(replay_end);
    o.wal_replayed = Some(pgro_api::WalReplayed {
        segments: 3,
        bytes: 3 << 24,
        seconds: 1.5,
    });
    let status = decide(&o, "2026-11-21T10:10:00Z".parse().expect("now")).status;
    assert_eq!(
        status.data_time.map(|t| t.0.to_string()),
        Some("2026-11-21T10:07:00Z".into())
    );
    assert_eq!(status.wal_replayed.map(|w| w.segments), Some(3));
    // A Kopia restore (no data_time recorded) serves the snapshot's own time.
    let mut o = running(&r, true);
    o.fixes = Some(Vec::new());
    let status = decide(&o, "2026-11-21T10:10:00Z".parse().expect("now")).status;
    assert_eq!(
        status.data_time.map(|t| t.0.to_string()),
        Some("2026-11-21T10:00:00Z".into())
    );
    assert!(status.wal_replayed.is_none());
}

#[test]
fn a_failed_logical_replay_fails_the_restore_with_its_report_before_the_timeout() {
    let r =
        restore("{phase: Restoring, postgresVersion: '16', restoredAt: '2026-11-21T10:18:00Z'}");
    let mut o = running(&r, false);
    o.instance_failure = Some(RestoreFailure {
        error: "StatementsFailed".into(),
        message: "1 of 40 statements of the dump failed: line 54: function f() does not exist"
            .into(),
        exit_code: 7,
    });
    let p = decide(&o, at(NOW));
    assert_eq!(p.status.phase, Some(RestorePhase::Failed));
    let failed = p
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Failed")
        .expect("Failed condition");
    assert_eq!(failed.reason, "StatementsFailed");
    assert!(failed.message.contains("line 54"), "{}", failed.message);
    // A ready instance's old termination message (a replay retried after a crash) is not a failure.
    let mut o = running(&r, true);
    o.instance_failure = Some(RestoreFailure {
        error: "StatementsFailed".into(),
        message: "old".into(),
        exit_code: 7,
    });
    assert_eq!(decide(&o, at(NOW)).status.phase, Some(RestorePhase::Ready));
}

#[test]
fn dump_statistics_set_the_dump_replayed_condition_and_warn_when_statements_failed() {
    let r =
        restore("{phase: Restoring, postgresVersion: '16', restoredAt: '2026-11-21T10:18:00Z'}");
    let stats = |failed: u64| pgro_api::DumpReplayed {
        statements: 40,
        failed,
        tolerated: 1,
        bytes: 1 << 20,
        seconds: 2.5,
        first_errors: (0..failed).map(|i| format!("line {i}: boom")).collect(),
    };
    for (failed, status, reason, warnings) in [
        (0, "True", "AllStatementsRan", 0),
        (2, "False", "StatementsFailed", 1),
    ] {
        let mut o = running(&r, true);
        o.fixes = Some(Vec::new());
        o.dump_replayed = Some(stats(failed));
        let p = decide(&o, at(NOW));
        assert_eq!(
            p.status.dump_replayed.as_ref().map(|d| d.failed),
            Some(failed)
        );
        let c = p
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == "DumpReplayed")
            .expect("condition");
        assert_eq!((c.status.as_str(), c.reason.as_str()), (status, reason));
        let warned = p
            .events
            .iter()
            .filter(|e| e.warning && e.reason == "DumpStatementsFailed")
            .count();
        assert_eq!(warned, warnings);
        if failed > 0 {
            assert!(c.message.contains("line 1: boom"), "{}", c.message);
        }
    }
}

fn checks() -> Verification {
    Verification {
        checks: vec![pgro_api::VerificationCheck {
            name: "orders".into(),
            database: "shop".into(),
            sql: "SELECT true".into(),
            timeout: "1m".into(),
        }],
        require_application_database: true,
        amcheck: None,
    }
}

fn outcome(passed: bool) -> VerificationStatus {
    VerificationStatus {
        started_at: Some(Time(at("2026-11-21T10:19:00Z"))),
        completed_at: Some(Time(at("2026-11-21T10:19:30Z"))),
        passed: Some(passed),
        checks: vec![pgro_api::CheckResult {
            name: "orders".into(),
            passed,
            value: Some(passed.to_string()),
            detail: Some("n=7".into()),
            message: (!passed).then(|| "returned false".into()),
            seconds: 0.2,
        }],
    }
}

const RESTORED: &str = "{phase: Restoring, restoredAt: '2026-11-21T10:18:00Z', instanceFixes: []}";

#[test]
fn a_ready_instance_waits_for_its_checks_before_it_is_ready() {
    let r = restore(RESTORED);
    let v = checks();
    let mut o = running(&r, true);
    o.verification = Some(&v);
    let p = decide(&o, at(NOW));
    assert!(p.verify);
    assert_eq!(p.status.phase, Some(RestorePhase::Restoring));
    assert_eq!(p.status.ready_at, None);
    let c = conditions::get(&p.status.conditions, types::VERIFIED).expect("Verified");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("Unknown", reasons::CHECKS_RUNNING)
    );
    assert!(
        c.message.contains("pgro.applicationDatabase, orders"),
        "{}",
        c.message
    );
    assert_eq!(
        p.status
            .verification
            .and_then(|v| v.started_at)
            .map(|t| t.0),
        Some(at(NOW))
    );
}

#[test]
fn passing_checks_make_the_restore_ready_and_are_recorded() {
    let r = restore(RESTORED);
    let v = checks();
    let mut o = running(&r, true);
    o.verification = Some(&v);
    o.verified = Some(outcome(true));
    let p = decide(&o, at(NOW));
    assert!(!p.verify);
    assert_eq!(p.status.phase, Some(RestorePhase::Ready));
    assert_eq!(p.status.ready_at.as_ref().map(|t| t.0), Some(at(NOW)));
    assert!(conditions::is_true(&p.status.conditions, types::VERIFIED));
    assert_eq!(p.status.verification, Some(outcome(true)));
    // Once passed, a later pass does not run them again.
    let again = restore(&serde_json::to_string(&p.status).expect("json"));
    let mut o = running(&again, true);
    o.verification = Some(&v);
    let p2 = decide(&o, at(NOW));
    assert!(!p2.verify);
    assert_eq!(p2.status.phase, Some(RestorePhase::Ready));
}

#[test]
fn a_failing_check_fails_the_restore_with_its_name_and_value_and_a_warning() {
    let r = restore(RESTORED);
    let v = checks();
    let mut o = running(&r, true);
    o.verification = Some(&v);
    o.verified = Some(outcome(false));
    let p = decide(&o, at(NOW));
    assert_eq!(p.status.phase, Some(RestorePhase::Failed));
    let verified = conditions::get(&p.status.conditions, types::VERIFIED).expect("Verified");
    assert_eq!(verified.status, "False");
    assert_eq!(verified.message, "check orders: returned false (n=7)");
    let failed = conditions::get(&p.status.conditions, types::FAILED).expect("Failed");
    assert_eq!(failed.reason, reasons::VERIFICATION_FAILED);
    assert!(failed.message.contains("check orders: returned false"));
    assert_eq!(p.events.len(), 1);
    assert_eq!(p.events[0].reason, event_reasons::VERIFICATION_FAILED);
}

#[test]
fn checks_that_cannot_reach_the_instance_fail_after_the_ready_timeout() {
    let r = restore(
        "{phase: Restoring, restoredAt: '2026-11-21T10:18:00Z', instanceFixes: [], \
         verification: {startedAt: '2026-11-21T09:00:00Z'}}",
    );
    let v = checks();
    let mut o = running(&r, true);
    o.verification = Some(&v);
    let p = decide(&o, at(NOW));
    assert!(!p.verify);
    assert_eq!(p.status.phase, Some(RestorePhase::Failed));
    let failed = conditions::get(&p.status.conditions, types::FAILED).expect("Failed");
    assert_eq!(failed.reason, reasons::VERIFICATION_FAILED);
    assert!(
        failed.message.contains("could not reach PostgreSQL"),
        "{}",
        failed.message
    );
}

#[test]
fn without_checks_a_ready_instance_is_ready_at_once() {
    let r = restore(RESTORED);
    let p = decide(&running(&r, true), at(NOW));
    assert!(!p.verify);
    assert_eq!(p.status.phase, Some(RestorePhase::Ready));
    assert_eq!(p.status.ready_at.as_ref().map(|t| t.0), Some(at(NOW)));
    assert!(conditions::get(&p.status.conditions, types::VERIFIED).is_none());
}

#[test]
fn the_checks_own_budget_extends_the_deadline() {
    // Started 2 h ago; ready timeout 30 min; amcheck may take 2 h: not failed yet.
    let r = restore(
        "{phase: Restoring, restoredAt: '2026-11-21T08:00:00Z', instanceFixes: [], \
         verification: {startedAt: '2026-11-21T08:20:00Z'}}",
    );
    let mut v = checks();
    v.amcheck = Some(pgro_api::Amcheck {
        heapallindexed: false,
        timeout: "2h".into(),
    });
    let mut o = running(&r, true);
    o.verification = Some(&v);
    let p = decide(&o, at(NOW));
    assert!(p.verify);
    assert_eq!(p.status.phase, Some(RestorePhase::Restoring));
}
