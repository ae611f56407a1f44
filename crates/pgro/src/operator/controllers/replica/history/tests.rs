use pgro_api::testutil::from_yaml;

use super::*;

fn restore(name: &str, status: &str) -> PostgresPhysicalRestore {
    from_yaml(&format!(
        "apiVersion: pgro.bes.au/v1alpha1\nkind: PostgresPhysicalRestore\n\
         metadata: {{name: {name}, namespace: n, creationTimestamp: '2026-12-01T00:00:00Z'}}\n\
         spec: {{replica: {{name: p}}, snapshot: snap-{name}, snapshotSize: '1Gi', storageSize: '2Gi', \
         snapshotTime: '2026-11-30T23:00:00Z'}}\nstatus: {status}"
    ))
    .expect("restore")
}

/// A restore that switched over at `hh:mm` on 2026-12-01, verified, with WAL replay.
fn active(name: &str, at: &str) -> PostgresPhysicalRestore {
    restore(
        name,
        &format!(
            "{{phase: Active, createdAt: '2026-12-01T00:00:00Z', restoredAt: '2026-12-01T00:10:00Z', \
             walReplayed: {{segments: 3, bytes: 3, seconds: 30.0}}, \
             verification: {{startedAt: '2026-12-01T00:11:00Z', completedAt: '2026-12-01T00:11:20Z', passed: true, \
             checks: [{{name: orders, passed: true, value: 'true', seconds: 0.5}}]}}, \
             readyAt: '2026-12-01T00:11:20Z', activatedAt: '2026-12-01T{at}:00Z', \
             dataTime: '2026-11-30T23:30:00Z'}}"
        ),
    )
}

fn failed(name: &str, at: &str) -> PostgresPhysicalRestore {
    restore(
        name,
        &format!(
            "{{phase: Failed, createdAt: '2026-12-01T00:00:00Z', restoredAt: '2026-12-01T00:10:00Z', \
             verification: {{startedAt: '2026-12-01T00:19:00Z', completedAt: '2026-12-01T00:19:05Z', passed: false, \
             checks: [{{name: orders, passed: false, value: 'false', detail: 'n=3', message: 'returned false', seconds: 0.1}}]}}, \
             conditions: [{{type: Failed, status: 'True', reason: VerificationFailed, message: 'verification failed: check orders: returned false (n=3)', \
             lastTransitionTime: '2026-12-01T{at}:00Z'}}]}}"
        ),
    )
}

fn map(rs: Vec<PostgresPhysicalRestore>) -> BTreeMap<String, PostgresPhysicalRestore> {
    rs.into_iter()
        .map(|r| (r.metadata.name.clone().expect("name"), r))
        .collect()
}

fn at(t: Option<&Time>) -> Option<String> {
    t.map(|t| t.0.to_string())
}

#[test]
fn phase_durations_split_the_restore_at_its_recorded_times() {
    let d = durations(&active("a", "00:12"));
    assert_eq!(d.download, Some(600.0));
    assert_eq!(d.replay, Some(30.0));
    // Restored 00:10, checks from 00:11: 60 s to ready, 30 of them replaying WAL.
    assert_eq!(d.startup, Some(30.0));
    assert_eq!(d.verification, Some(20.0));
    assert_eq!(d.switchover, Some(40.0));
}

#[test]
fn each_ended_restore_is_recorded_once_newest_first_and_cut_to_the_limit() {
    let mut status = PostgresPhysicalReplicaStatus::default();
    let restores = map(vec![
        active("a", "00:12"),
        failed("b", "00:20"),
        restore("c", "{phase: Restoring}"),
    ]);
    let added = update(&mut status, &restores, Some("a"), 10);
    assert_eq!(added.len(), 2);
    let names: Vec<&str> = status.history.iter().map(|h| h.restore.as_str()).collect();
    assert_eq!(names, ["b", "a"]);
    let b = &status.history[0];
    assert_eq!(b.outcome, OUTCOME_FAILED);
    assert_eq!(b.verification.as_deref(), Some("failed"));
    assert_eq!(b.failed_checks, ["check orders: returned false (n=3)"]);
    assert!(
        b.failure
            .as_deref()
            .expect("failure")
            .starts_with("VerificationFailed: ")
    );
    assert_eq!(b.bytes, 1 << 30);
    let a = &status.history[1];
    assert_eq!(a.outcome, OUTCOME_ACTIVE);
    assert_eq!(a.backup, "snap-a");
    assert_eq!(
        at(status.data_time.as_ref()).as_deref(),
        Some("2026-11-30T23:30:00Z")
    );
    // The failed verification is the newest; the last passing one is a's.
    assert_eq!(
        status.last_verification.as_ref().and_then(|v| v.passed),
        Some(false)
    );
    assert_eq!(
        at(status.last_verified_at.as_ref()).as_deref(),
        Some("2026-12-01T00:11:20Z")
    );
    // Again: nothing new.
    let before = status.clone();
    assert!(update(&mut status, &restores, Some("a"), 10).is_empty());
    assert_eq!(status, before);

    // The limit keeps the newest; a restore older than every kept record is not re-added or re-reported.
    let more = map(vec![
        active("a", "00:12"),
        failed("b", "00:20"),
        failed("d", "00:30"),
    ]);
    let added = update(&mut status, &more, Some("a"), 2);
    assert_eq!(added.len(), 1);
    let names: Vec<&str> = status.history.iter().map(|h| h.restore.as_str()).collect();
    assert_eq!(names, ["d", "b"]);
    assert!(update(&mut status, &more, Some("a"), 2).is_empty());
    assert_eq!(status.history.len(), 2);
}

#[test]
fn records_survive_their_restores() {
    let mut status = PostgresPhysicalReplicaStatus::default();
    update(&mut status, &map(vec![active("a", "00:12")]), Some("a"), 10);
    update(&mut status, &BTreeMap::new(), None, 10);
    assert_eq!(status.history.len(), 1);
    assert_eq!(status.data_time, None);
}
