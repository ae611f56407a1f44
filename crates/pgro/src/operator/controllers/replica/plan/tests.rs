use std::collections::BTreeMap;

use pgro_api::testutil::from_yaml;

use super::*;

fn at(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

const NOW: &str = "2026-11-21T06:00:00Z";

fn replica(extra_spec: &str, status: &str) -> PostgresPhysicalReplica {
    from_yaml(&format!(
        r"
apiVersion: pgro.bes.au/v1alpha1
kind: PostgresPhysicalReplica
metadata: {{name: test, namespace: ns, uid: 5f0e-uid, generation: 3}}
spec:
  kopiaSecretRef: {{name: kopia-credentials}}
  schedule: '0 */6 * * *'
  scheduleJitter: '0'
  {extra_spec}
status: {status}
"
    ))
    .expect("replica")
}

fn snap(id: &str, size: u64) -> SnapshotInfo {
    SnapshotInfo {
        id: id.into(),
        host: "db1".into(),
        user_name: "postgres".into(),
        path: "/var/lib/postgresql/16/main".into(),
        description: String::new(),
        start_time: at("2026-11-21T05:00:00Z"),
        end_time: Some(at("2026-11-21T05:10:00Z")),
        tags: BTreeMap::new(),
        incomplete: false,
        total_size: size,
    }
}

fn listed(id: &str) -> Source {
    Source::Snapshots {
        latest: Some(snap(id, 1 << 30)),
        total: 4,
    }
}

fn view(name: &str, phase: RestorePhase, snapshot: &str) -> RestoreView {
    RestoreView {
        name: name.into(),
        phase,
        snapshot: snapshot.into(),
        created: at("2026-11-21T00:00:00Z"),
        activated_at: None,
        failure: None,
        ready: false,
        outgoing_marked: false,
        deleting: false,
        postgres_version: Some("16".into()),
        snapshot_bytes: 1 << 30,
    }
}

/// A restore that served until a successor took over: back in `Ready`, marked outgoing.
fn outgoing(name: &str, since: &str) -> RestoreView {
    RestoreView {
        activated_at: Some(at(since)),
        ready: true,
        outgoing_marked: true,
        ..view(name, RestorePhase::Ready, name)
    }
}

fn active(name: &str, snapshot: &str, since: &str) -> RestoreView {
    RestoreView {
        activated_at: Some(at(since)),
        ready: true,
        ..view(name, RestorePhase::Active, snapshot)
    }
}

fn observe<'a>(
    r: &'a PostgresPhysicalReplica,
    restores: &'a [RestoreView],
    source: Source,
) -> Observed<'a> {
    Observed {
        replica: r,
        restores,
        source,
        failed_retention: Duration::from_secs(600),
        migration: None,
        tls_problem: None,
    }
}

fn cond<'a>(p: &'a Plan, t: &str) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    conditions::get(&p.status.conditions, t).unwrap_or_else(|| panic!("condition {t}"))
}

#[test]
fn new_replica_wants_the_newest_snapshot_at_once_and_reports_status() {
    let r = replica("", "{}");
    let p = decide(&observe(&r, &[], listed("k1")), at(NOW));
    let w = p.wanted.as_ref().expect("a restore is wanted");
    assert_eq!(w.name, "test-20261121-060000");
    assert_eq!(w.snapshot.id, "k1");
    assert_eq!(w.storage_size.0, "1127Mi");
    assert_eq!(w.next_scheduled, Some(at("2026-11-21T12:00:00Z")));
    assert_eq!(p.status.phase, Some(pgro_api::ReplicaPhase::Pending));
    assert_eq!(p.status.service_name.as_deref(), Some("test"));
    let ci = p.status.connection_info.as_ref().expect("connection info");
    assert_eq!(ci.host, "test.ns.svc");
    assert_eq!(ci.username, "analytics");
    assert_eq!(ci.password_secret, "test-creds");
    assert_eq!(p.status.latest_available_snapshot.as_deref(), Some("k1"));
    assert_eq!(p.status.observed_generation, Some(3));
    for (t, s) in [
        (types::KOPIA_SECRET_VALID, "True"),
        (types::SNAPSHOT_AVAILABLE, "True"),
        (types::SCHEDULE_VALID, "True"),
        (types::STORAGE_WITHIN_LIMIT, "True"),
        (types::RESTORE_SCHEDULING_SUSPENDED, "False"),
        (types::READY, "False"),
    ] {
        assert_eq!(cond(&p, t).status, s, "{t}");
    }
    assert!(p.actions.is_empty());
    assert_eq!(p.service_target, None);
}

#[test]
fn admission_starts_or_queues_the_wanted_restore() {
    let r = replica("", "{}");
    let mut started = decide(&observe(&r, &[], listed("k1")), at(NOW));
    admit(&mut started, Admission::Start, at(NOW));
    assert!(started.wanted.is_some());
    assert_eq!(
        started.status.next_scheduled_restore.as_ref().map(|t| t.0),
        Some(at("2026-11-21T12:00:00Z"))
    );
    assert_eq!(
        started.status.phase,
        Some(pgro_api::ReplicaPhase::Restoring)
    );
    assert!(
        started
            .events
            .iter()
            .any(|e| e.reason == event_reasons::RESTORE_STARTED)
    );

    let mut queued = decide(&observe(&r, &[], listed("k1")), at(NOW));
    admit(&mut queued, Admission::Wait { position: 2 }, at(NOW));
    assert!(queued.wanted.is_none());
    assert_eq!(queued.status.queue_position, 2);
    assert_eq!(
        queued.status.waiting_since.as_ref().map(|t| t.0),
        Some(at(NOW))
    );
    // Woken by the queue watch when the queue moves, not by a short per-replica timer.
    assert!(
        queued.requeue > Duration::from_secs(10),
        "{:?}",
        queued.requeue
    );

    // Waiting keeps its place in line: waitingSince does not move.
    let r2 = replica(
        "",
        "{waitingSince: '2026-11-21T05:59:00Z', queuePosition: 2}",
    );
    let mut again = decide(&observe(&r2, &[], listed("k1")), at(NOW));
    admit(&mut again, Admission::Wait { position: 1 }, at(NOW));
    assert_eq!(
        again.status.waiting_since.as_ref().map(|t| t.0),
        Some(at("2026-11-21T05:59:00Z"))
    );
    assert_eq!(again.status.queue_position, 1);
}

#[test]
fn ready_restore_is_switched_to_in_order() {
    let r = replica("", "{currentRestore: old}");
    let restores = [
        active("old", "k1", "2026-11-20T06:00:00Z"),
        RestoreView {
            ready: true,
            created: at("2026-11-21T05:50:00Z"),
            ..view("new", RestorePhase::Ready, "k2")
        },
    ];
    let p = decide(&observe(&r, &restores, listed("k2")), at(NOW));
    assert_eq!(
        p.actions,
        [
            Action::SetRestorePhase {
                restore: "new".into(),
                phase: RestorePhase::Switching,
                activated_at: None
            },
            Action::SwitchService {
                restore: "new".into()
            },
            Action::SetRestorePhase {
                restore: "old".into(),
                phase: RestorePhase::Ready,
                activated_at: None
            },
            Action::SetRestorePhase {
                restore: "new".into(),
                phase: RestorePhase::Active,
                activated_at: Some(at(NOW))
            },
        ]
    );
    assert_eq!(p.promoted.as_deref(), Some("new"));
    assert_eq!(p.service_target.as_deref(), Some("new"));
    assert_eq!(p.status.current_restore.as_deref(), Some("new"));
    assert_eq!(
        p.status.last_restore_completed_at.as_ref().map(|t| t.0),
        Some(at(NOW))
    );
    assert_eq!(p.status.consecutive_restore_failures, 0);
    assert_eq!(p.status.phase, Some(pgro_api::ReplicaPhase::Ready));
    assert!(
        p.events
            .iter()
            .any(|e| e.reason == event_reasons::RESTORE_COMPLETED)
    );
    // The new one already holds the newest snapshot: nothing else is wanted.
    assert!(p.wanted.is_none());
}

#[test]
fn switchover_interrupted_after_the_service_moved_is_finished() {
    let r = replica("", "{currentRestore: old}");
    let restores = [
        // Crash after demoting the old restore, before promoting the new one.
        RestoreView {
            activated_at: Some(at("2026-11-20T06:00:00Z")),
            ready: true,
            ..view("old", RestorePhase::Ready, "k1")
        },
        RestoreView {
            ready: true,
            created: at("2026-11-21T05:50:00Z"),
            ..view("new", RestorePhase::Switching, "k2")
        },
    ];
    let p = decide(&observe(&r, &restores, listed("k2")), at(NOW));
    assert_eq!(
        p.actions[..2],
        [
            Action::SwitchService {
                restore: "new".into()
            },
            Action::SetRestorePhase {
                restore: "new".into(),
                phase: RestorePhase::Active,
                activated_at: Some(at(NOW))
            },
        ]
    );
    assert_eq!(p.status.previous_restore.as_deref(), Some("old"));
    assert!(p.actions.contains(&Action::MarkOutgoing {
        restore: "old".into()
    }));
}

#[test]
fn two_active_restores_left_by_a_crash_keep_only_the_newest() {
    let r = replica("", "{}");
    let restores = [
        active("old", "k1", "2026-11-20T06:00:00Z"),
        active("new", "k2", "2026-11-21T05:00:00Z"),
    ];
    let p = decide(&observe(&r, &restores, listed("k2")), at(NOW));
    assert_eq!(
        p.actions[0],
        Action::SetRestorePhase {
            restore: "old".into(),
            phase: RestorePhase::Ready,
            activated_at: None
        }
    );
    assert_eq!(p.status.current_restore.as_deref(), Some("new"));
}

#[test]
fn outgoing_restore_is_deleted_after_the_grace_period_and_previous_cleared() {
    let r = replica(
        "switchoverGracePeriod: 5m",
        "{currentRestore: new, previousRestore: old}",
    );
    let restores = [
        RestoreView {
            activated_at: Some(at("2026-11-20T06:00:00Z")),
            ready: true,
            outgoing_marked: true,
            ..view("old", RestorePhase::Ready, "k1")
        },
        active("new", "k2", "2026-11-21T05:58:00Z"),
    ];
    let during = decide(&observe(&r, &restores, listed("k2")), at(NOW));
    assert_eq!(during.status.previous_restore.as_deref(), Some("old"));
    assert!(during.actions.is_empty(), "{:?}", during.actions);
    assert!(during.requeue <= Duration::from_secs(180));
    let after = decide(
        &observe(&r, &restores, listed("k2")),
        at("2026-11-21T06:03:00Z"),
    );
    assert_eq!(
        after.actions,
        [Action::DeleteRestore {
            restore: "old".into(),
            why: "switchover grace period over"
        }]
    );
    assert_eq!(after.status.previous_restore, None);
}

/// Regression: every outgoing restore was timed from the newest switchover, so one made outgoing by an
/// earlier switchover was kept past its own grace period.
#[test]
fn each_outgoing_restore_is_deleted_at_its_own_grace_deadline() {
    let r = replica(
        "switchoverGracePeriod: 5m",
        "{currentRestore: c, previousRestore: b}",
    );
    // a was demoted at 05:57 (b took over), b at 05:59 (c took over).
    let restores = [
        outgoing("a", "2026-11-21T05:50:00Z"),
        outgoing("b", "2026-11-21T05:57:00Z"),
        active("c", "c", "2026-11-21T05:59:00Z"),
    ];
    let deleted = |now: &str| -> Vec<String> {
        decide(&observe(&r, &restores, listed("c")), at(now))
            .actions
            .into_iter()
            .filter_map(|a| match a {
                Action::DeleteRestore { restore, .. } => Some(restore),
                _ => None,
            })
            .collect()
    };
    assert!(deleted("2026-11-21T06:01:59Z").is_empty());
    assert_eq!(deleted("2026-11-21T06:02:00Z"), ["a"]);
    assert_eq!(deleted("2026-11-21T06:03:59Z"), ["a"]);
    assert_eq!(deleted("2026-11-21T06:04:00Z"), ["a", "b"]);
}

/// Regression: the limit of three live restores per replica skipped due refreshes silently.
#[test]
fn a_due_restore_held_by_the_live_restore_limit_is_a_condition_and_an_event() {
    let mut r = replica(
        "switchoverGracePeriod: 1h",
        "{currentRestore: c, nextScheduledRestore: '2026-11-21T05:00:00Z'}",
    );
    r.status.as_mut().expect("status").schedule_hash =
        Some(schedule::schedule_hash("0 */6 * * *", "0"));
    let restores = [
        outgoing("a", "2026-11-21T05:30:00Z"),
        outgoing("b", "2026-11-21T05:40:00Z"),
        active("c", "c", "2026-11-21T05:50:00Z"),
    ];
    let p = decide(&observe(&r, &restores, listed("k9")), at(NOW));
    assert!(p.wanted.is_none());
    let c = cond(&p, types::RESTORE_DEFERRED);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", reasons::LIVE_RESTORE_LIMIT)
    );
    assert!(c.message.contains("a, b, c"), "{}", c.message);
    assert!(
        p.events
            .iter()
            .any(|e| e.reason == event_reasons::RESTORE_DEFERRED)
    );
    // Once recorded, the event is not repeated.
    let mut r2 = r.clone();
    r2.status = Some(p.status.clone());
    let p2 = decide(&observe(&r2, &restores, listed("k9")), at(NOW));
    assert!(
        !p2.events
            .iter()
            .any(|e| e.reason == event_reasons::RESTORE_DEFERRED)
    );
}

/// Regression: a malformed header value was only found when a delivery failed after a restore.
#[test]
fn malformed_notification_headers_are_a_condition_at_reconcile() {
    let r = replica(
        "notifications: [{target: webhook, name: hook, url: 'https://h.example/x', headers: {X-Token: {value: 1}, X-Ok: plain}}]",
        "{}",
    );
    let p = decide(&observe(&r, &[], listed("k1")), at(NOW));
    let c = cond(&p, types::NOTIFICATIONS_VALID);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", reasons::INVALID_HEADER)
    );
    assert!(
        c.message.contains("hook.X-Token") && !c.message.contains("X-Ok"),
        "{}",
        c.message
    );
    let ok = replica("", "{}");
    assert_eq!(
        cond(
            &decide(&observe(&ok, &[], listed("k1")), at(NOW)),
            types::NOTIFICATIONS_VALID
        )
        .status,
        "True"
    );
}

#[test]
fn same_snapshot_at_the_scheduled_time_creates_nothing_and_advances_the_schedule() {
    let r = replica(
        "",
        "{currentRestore: a, nextScheduledRestore: '2026-11-21T06:00:00Z', scheduleHash: x}",
    );
    // A stale hash would recompute; use the real one.
    let mut r = r;
    r.status.as_mut().expect("status").schedule_hash =
        Some(schedule::schedule_hash("0 */6 * * *", "0"));
    let restores = [active("a", "k1", "2026-11-21T00:00:00Z")];
    let p = decide(&observe(&r, &restores, listed("k1")), at(NOW));
    assert!(p.wanted.is_none());
    assert!(
        p.events
            .iter()
            .any(|e| e.reason == event_reasons::RESTORE_SKIPPED)
    );
    assert_eq!(
        p.status.next_scheduled_restore.as_ref().map(|t| t.0),
        Some(at("2026-11-21T12:00:00Z"))
    );
    // A new snapshot at the same time is restored.
    let p = decide(&observe(&r, &restores, listed("k2")), at(NOW));
    assert_eq!(p.wanted.map(|w| w.snapshot.id).as_deref(), Some("k2"));
}

#[test]
fn minimum_ttl_skips_while_the_active_restore_is_young() {
    let mut r = replica(
        "minimumTtl: 12h",
        "{currentRestore: a, nextScheduledRestore: '2026-11-21T06:00:00Z', lastRestoreCompletedAt: '2026-11-21T01:00:00Z'}",
    );
    r.status.as_mut().expect("status").schedule_hash =
        Some(schedule::schedule_hash("0 */6 * * *", "0"));
    let restores = [active("a", "k1", "2026-11-21T01:00:00Z")];
    let p = decide(&observe(&r, &restores, listed("k2")), at(NOW));
    assert!(p.wanted.is_none());
    let skipped = p
        .events
        .iter()
        .find(|e| e.reason == event_reasons::RESTORE_SKIPPED)
        .expect("skip event");
    assert!(skipped.note.contains("minimumTtl"), "{}", skipped.note);
}

#[test]
fn schedule_edit_recomputes_the_next_restore() {
    let mut r = replica(
        "",
        "{currentRestore: a, nextScheduledRestore: '2026-11-21T12:00:00Z'}",
    );
    r.status.as_mut().expect("status").schedule_hash =
        Some(schedule::schedule_hash("0 */6 * * *", "0"));
    r.spec.schedule = "30 7 * * *".into();
    let restores = [active("a", "k1", "2026-11-21T01:00:00Z")];
    let p = decide(&observe(&r, &restores, listed("k1")), at(NOW));
    assert_eq!(
        p.status.next_scheduled_restore.as_ref().map(|t| t.0),
        Some(at("2026-11-21T07:30:00Z"))
    );
    assert_eq!(
        p.status.schedule_hash,
        Some(schedule::schedule_hash("30 7 * * *", "0"))
    );
}

#[test]
fn deleted_active_restore_is_replaced_at_once() {
    let mut r = replica(
        "",
        "{currentRestore: a, nextScheduledRestore: '2026-11-21T12:00:00Z'}",
    );
    r.status.as_mut().expect("status").schedule_hash =
        Some(schedule::schedule_hash("0 */6 * * *", "0"));
    let restores = [RestoreView {
        deleting: true,
        ..active("a", "k1", "2026-11-21T01:00:00Z")
    }];
    let p = decide(&observe(&r, &restores, listed("k1")), at(NOW));
    assert_eq!(
        p.wanted.as_ref().map(|w| w.snapshot.id.as_str()),
        Some("k1")
    );
    assert_eq!(p.status.current_restore, None);
    assert_eq!(cond(&p, types::READY).status, "False");
}

fn failed(name: &str, when: &str, created: &str) -> RestoreView {
    RestoreView {
        created: at(created),
        failure: Some(FailureView {
            at: at(when),
            reason: "CorruptedContent".into(),
            message: "content k9 in pack p1 failed its hash check".into(),
        }),
        ..view(name, RestorePhase::Failed, "k2")
    }
}

#[test]
fn each_failure_is_counted_once_and_three_suspend_scheduling() {
    let r = replica("", "{}");
    let restores = [failed("f1", "2026-11-21T05:00:00Z", "2026-11-21T04:50:00Z")];
    let p = decide(&observe(&r, &restores, listed("k2")), at(NOW));
    assert_eq!(p.status.consecutive_restore_failures, 1);
    assert_eq!(
        p.newly_failed,
        [("f1".to_owned(), "CorruptedContent".to_owned())]
    );
    let ev = p
        .events
        .iter()
        .find(|e| e.reason == event_reasons::RESTORE_FAILED)
        .expect("event");
    assert!(ev.warning && ev.note.contains("pack p1"), "{}", ev.note);
    // Backoff: nothing serves, so the retry comes 2 minutes after the failure (already past).
    assert!(p.wanted.is_some());

    // The same failure seen again is not counted again.
    let mut r2 = r.clone();
    r2.status = Some(p.status.clone());
    let p2 = decide(&observe(&r2, &restores, listed("k2")), at(NOW));
    assert_eq!(p2.status.consecutive_restore_failures, 1);
    assert!(p2.newly_failed.is_empty());

    let r3 = replica(
        "",
        "{consecutiveRestoreFailures: 2, lastRestoreFailedAt: '2026-11-21T04:00:00Z'}",
    );
    let p3 = decide(&observe(&r3, &restores, listed("k2")), at(NOW));
    assert_eq!(p3.status.consecutive_restore_failures, 3);
    assert!(p3.wanted.is_none());
    let c = cond(&p3, types::RESTORE_SCHEDULING_SUSPENDED);
    assert_eq!(c.status, "True");
    assert!(c.message.contains("--subresource=status"), "{}", c.message);
    assert_eq!(p3.status.phase, Some(pgro_api::ReplicaPhase::Failed));
}

/// Regression: a password rotated before the Secret made restores fail with `WrongPassword`, and three of
/// them suspended scheduling for good.
#[test]
fn wrong_password_failures_never_count_toward_suspension() {
    let r = replica(
        "",
        "{consecutiveRestoreFailures: 2, lastRestoreFailedAt: '2026-11-21T04:00:00Z'}",
    );
    let restores = [RestoreView {
        failure: Some(FailureView {
            at: at("2026-11-21T05:00:00Z"),
            reason: "WrongPassword".into(),
            message: "the repository password is wrong".into(),
        }),
        ..failed("f1", "2026-11-21T05:00:00Z", "2026-11-21T04:50:00Z")
    }];
    let p = decide(&observe(&r, &restores, listed("k2")), at(NOW));
    assert_eq!(p.status.consecutive_restore_failures, 2);
    assert_eq!(
        cond(&p, types::RESTORE_SCHEDULING_SUSPENDED).status,
        "False"
    );
    assert!(
        p.events
            .iter()
            .any(|e| e.reason == event_reasons::RESTORE_FAILED),
        "the failure is still reported"
    );
}

#[test]
fn reset_counter_resumes_and_success_clears_the_condition() {
    let r = replica(
        "",
        "{consecutiveRestoreFailures: 0, lastRestoreFailedAt: '2026-11-21T05:00:00Z'}",
    );
    let restores = [failed("f1", "2026-11-21T05:00:00Z", "2026-11-21T04:50:00Z")];
    let p = decide(&observe(&r, &restores, listed("k2")), at(NOW));
    assert_eq!(p.status.consecutive_restore_failures, 0);
    assert!(p.wanted.is_some());
    assert_eq!(
        cond(&p, types::RESTORE_SCHEDULING_SUSPENDED).status,
        "False"
    );
}

#[test]
fn failed_restores_are_deleted_after_retention_once_superseded() {
    let r = replica(
        "",
        "{consecutiveRestoreFailures: 1, lastRestoreFailedAt: '2026-11-21T05:00:00Z'}",
    );
    let only = [failed("f1", "2026-11-21T05:00:00Z", "2026-11-21T04:50:00Z")];
    let p = decide(&observe(&r, &only, listed("k2")), at(NOW));
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::DeleteRestore { .. })),
        "the newest failure stays until the next attempt"
    );
    let two = [
        failed("f1", "2026-11-21T05:00:00Z", "2026-11-21T04:50:00Z"),
        view("retry", RestorePhase::Restoring, "k2"),
    ];
    let mut two = two;
    two[1].created = at("2026-11-21T05:30:00Z");
    let p = decide(&observe(&r, &two, listed("k2")), at(NOW));
    assert!(p.actions.contains(&Action::DeleteRestore {
        restore: "f1".into(),
        why: "failed restore retention over"
    }));
}

#[test]
fn missing_secret_keeps_the_active_restore_serving_and_creates_nothing() {
    let r = replica("", "{currentRestore: a}");
    let restores = [active("a", "k1", "2026-11-21T01:00:00Z")];
    let p = decide(
        &observe(
            &r,
            &restores,
            Source::SecretNotFound {
                secret: "kopia-credentials".into(),
            },
        ),
        at(NOW),
    );
    let c = cond(&p, types::KOPIA_SECRET_VALID);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "SecretNotFound")
    );
    assert!(p.wanted.is_none());
    assert_eq!(p.service_target.as_deref(), Some("a"));
    assert_eq!(cond(&p, types::READY).status, "True");
    assert!(p.requeue >= Duration::from_secs(10) && p.requeue <= Duration::from_secs(300));
    for (reason, source) in [
        (
            reasons::REPOSITORY_PASSWORD_INVALID,
            Source::Repository {
                reason: reasons::REPOSITORY_PASSWORD_INVALID,
                message: "wrong password".into(),
            },
        ),
        (
            reasons::SECRET_INVALID,
            Source::SecretInvalid {
                message: "Secret kc has no \"bucket\" key".into(),
            },
        ),
    ] {
        let p = decide(&observe(&r, &restores, source), at(NOW));
        assert_eq!(cond(&p, types::KOPIA_SECRET_VALID).reason, reason);
    }
}

#[test]
fn unsupported_source_sets_source_valid_false_and_creates_nothing() {
    let r = replica("", "{currentRestore: a}");
    let restores = [active("a", "k1", "2026-11-21T01:00:00Z")];
    let first = decide(&observe(&r, &restores, listed("k1")), at(NOW));
    assert!(conditions::get(&first.status.conditions, types::SOURCE_VALID).is_none());
    let mut r = r;
    r.status = Some(first.status);
    let unsupported = Source::SourceInvalid {
        reason: reasons::UNSUPPORTED_REPOSITORY,
        message: "the pgBackRest source is not yet supported".into(),
    };
    let p = decide(&observe(&r, &restores, unsupported), at(NOW));
    let c = cond(&p, types::SOURCE_VALID);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "UnsupportedRepository")
    );
    assert!(
        conditions::get(&p.status.conditions, types::KOPIA_SECRET_VALID).is_none(),
        "no stale KopiaSecretValid for a Secret the spec no longer names"
    );
    assert!(p.wanted.is_none());
    assert_eq!(p.service_target.as_deref(), Some("a"));
    assert!(p.requeue >= Duration::from_secs(10) && p.requeue <= Duration::from_secs(300));
    // Back on a Kopia source, the condition goes away.
    r.status = Some(p.status);
    let p = decide(&observe(&r, &restores, listed("k1")), at(NOW));
    assert!(conditions::get(&p.status.conditions, types::SOURCE_VALID).is_none());
    assert_eq!(cond(&p, types::KOPIA_SECRET_VALID).status, "True");
}

#[test]
fn storage_limit_blocks_the_restore_with_one_event() {
    let r = replica("storageSizeMaximum: 1Gi", "{}");
    let p = decide(&observe(&r, &[], listed("k1")), at(NOW));
    assert!(p.wanted.is_none());
    let c = cond(&p, types::STORAGE_WITHIN_LIMIT);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "StorageLimitExceeded")
    );
    assert_eq!(
        p.events
            .iter()
            .filter(|e| e.reason == event_reasons::STORAGE_LIMIT_EXCEEDED)
            .count(),
        1
    );
    let mut r2 = r.clone();
    r2.status = Some(p.status.clone());
    let p2 = decide(&observe(&r2, &[], listed("k1")), at(NOW));
    assert!(p2.events.is_empty(), "no repeated event: {:?}", p2.events);
}

#[test]
fn invalid_schedule_schedules_nothing() {
    let mut r = replica("", "{}");
    r.spec.schedule = "every day".into();
    let p = decide(&observe(&r, &[], listed("k1")), at(NOW));
    assert!(p.wanted.is_none());
    assert_eq!(p.status.next_scheduled_restore, None);
    let c = cond(&p, types::SCHEDULE_VALID);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "InvalidSchedule")
    );
}

#[test]
fn one_restore_at_a_time_per_replica() {
    let r = replica("", "{currentRestore: a}");
    let restores = [
        active("a", "k1", "2026-11-21T01:00:00Z"),
        view("b", RestorePhase::Restoring, "k2"),
    ];
    let p = decide(&observe(&r, &restores, listed("k3")), at(NOW));
    assert!(p.wanted.is_none());
    assert_eq!(p.status.phase, Some(pgro_api::ReplicaPhase::Ready));
}

fn with_schemas() -> PostgresPhysicalReplica {
    replica(
        "persistentSchemas: [scratch]\nswitchoverGracePeriod: 1m",
        "{currentRestore: old, previousRestore: older}",
    )
}

fn switchover_restores() -> Vec<RestoreView> {
    vec![
        RestoreView {
            activated_at: Some(at("2026-11-19T06:00:00Z")),
            ready: true,
            outgoing_marked: true,
            ..view("older", RestorePhase::Ready, "k0")
        },
        active("old", "k1", "2026-11-20T06:00:00Z"),
        RestoreView {
            ready: true,
            created: at("2026-11-21T05:50:00Z"),
            postgres_version: Some("17".into()),
            ..view("new", RestorePhase::Switching, "k2")
        },
    ]
}

fn result(phase: &str) -> crate::migrate::MigrationResult {
    crate::migrate::MigrationResult {
        phase: phase.into(),
        migrated: vec![crate::migrate::Copied {
            schema: "scratch".into(),
            database: "postgres".into(),
        }],
        skipped: vec!["gone".into()],
        errors: u32::from(phase == "partial"),
        error_messages: vec![],
        source_database_size: (1 << 30) + (5 << 20),
        seconds: 1.0,
    }
}

#[test]
fn persistent_schemas_migrate_before_the_switch_and_hold_outgoing_deletion() {
    let r = with_schemas();
    let restores = switchover_restores();
    let p = decide(&observe(&r, &restores, listed("k2")), at(NOW));
    assert!(p.actions.iter().any(
        |a| matches!(a, Action::StartMigration { target, source, major, .. }
        if target == "new" && source == "old" && major == "17")
    ));
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::SwitchService { .. }))
    );
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::DeleteRestore { .. })),
        "P3: nothing deleted while migrating: {:?}",
        p.actions
    );
    assert_eq!(p.status.schema_migration_phase.as_deref(), Some("active"));
    assert_eq!(
        p.status.schema_migration_job.as_deref(),
        Some("test-schema-migration")
    );
    assert_eq!(p.status.current_restore.as_deref(), Some("old"));

    let mut o = observe(&r, &restores, listed("k2"));
    o.migration = Some(MigrationView {
        target: "new".into(),
        state: MigrationState::Running,
    });
    let p = decide(&o, at(NOW));
    assert!(!p.actions.iter().any(|a| matches!(
        a,
        Action::StartMigration { .. } | Action::SwitchService { .. }
    )));
}

#[test]
fn finished_migration_switches_reports_and_sizes_the_next_restore() {
    let r = with_schemas();
    let restores = switchover_restores();
    for (phase, reason, warning) in [
        ("complete", event_reasons::SCHEMA_MIGRATION_COMPLETED, false),
        ("partial", event_reasons::SCHEMA_MIGRATION_PARTIAL, true),
        (
            "timeout-skipped",
            event_reasons::SCHEMA_MIGRATION_TIMED_OUT,
            true,
        ),
    ] {
        let mut o = observe(&r, &restores, listed("k2"));
        o.migration = Some(MigrationView {
            target: "new".into(),
            state: MigrationState::Done(result(phase)),
        });
        let p = decide(&o, at(NOW));
        assert!(p.actions.contains(&Action::SwitchService {
            restore: "new".into()
        }));
        assert_eq!(p.status.current_restore.as_deref(), Some("new"));
        assert_eq!(p.status.schema_migration_phase.as_deref(), Some(phase));
        assert_eq!(p.status.schema_migration_job, None);
        assert_eq!(
            p.status
                .persistent_schema_data_size
                .as_ref()
                .map(|q| q.0.as_str()),
            Some("5Mi")
        );
        let ev = p.events.iter().find(|e| e.reason == reason).expect(reason);
        assert_eq!(ev.warning, warning);
        if phase != "timeout-skipped" {
            assert!(
                ev.note.contains("skipped (not on the source) [gone]"),
                "{}",
                ev.note
            );
        }
    }
}

#[test]
fn failed_migration_fails_the_new_restore_and_the_old_keeps_serving() {
    let r = with_schemas();
    let restores = switchover_restores();
    let mut o = observe(&r, &restores, listed("k2"));
    o.migration = Some(MigrationView {
        target: "new".into(),
        state: MigrationState::Failed("connecting to old: password authentication failed".into()),
    });
    let p = decide(&o, at(NOW));
    assert!(
        p.actions
            .iter()
            .any(|a| matches!(a, Action::FailRestore { restore, reason, .. }
        if restore == "new" && *reason == reasons::SCHEMA_MIGRATION_FAILED))
    );
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::SwitchService { .. }))
    );
    assert_eq!(p.status.current_restore.as_deref(), Some("old"));
    assert!(
        p.status
            .schema_migration_phase
            .as_deref()
            .is_some_and(|s| s.starts_with("failed: connecting to old"))
    );
}

#[test]
fn migration_budget_is_a_fifth_of_the_schedule_interval() {
    let six_hours = Schedule::parse("0 */6 * * *", "uid").expect("schedule");
    assert_eq!(
        migration_budget(&six_hours, at(NOW)),
        Duration::from_secs(72 * 60)
    );
    let minutely = Schedule::parse("* * * * *", "uid").expect("schedule");
    assert_eq!(
        migration_budget(&minutely, at(NOW)),
        Duration::from_secs(30)
    );
}
