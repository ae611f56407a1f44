use pgro_api::testutil::from_yaml;

use super::*;

fn replica(name: &str, rv: &str, status: &str) -> PostgresPhysicalReplica {
    from_yaml(&format!(
        "apiVersion: pgro.bes.au/v1alpha1\nkind: PostgresPhysicalReplica\n\
         metadata: {{name: {name}, namespace: n, uid: u-{name}, resourceVersion: '{rv}', \
         creationTimestamp: '2026-12-01T00:00:00Z'}}\n\
         spec: {{kopiaSecretRef: {{name: s}}, schedule: '0 */6 * * *'}}\nstatus: {status}"
    ))
    .expect("replica")
}

fn now() -> Timestamp {
    "2026-12-06T00:30:00Z".parse().expect("now")
}

#[test]
fn values_come_from_the_status_and_the_schedule() {
    let r = replica(
        "p",
        "1",
        "{dataTime: '2026-12-05T23:00:00Z', lastRestoreCompletedAt: '2026-12-06T00:10:00Z', \
         consecutiveRestoreFailures: 2, queuePosition: 3, \
         conditions: [{type: RestoreSchedulingSuspended, status: 'True', reason: ConsecutiveFailures, message: m, \
         lastTransitionTime: '2026-12-06T00:00:00Z'}], \
         lastVerification: {passed: false, checks: [{name: a, passed: true, seconds: 1}, {name: b, passed: false, seconds: 1}]}}",
    );
    let v = values(&r, now());
    assert_eq!(v.data_time, Some(1_796_511_600.0));
    assert_eq!(v.schedule_interval, Some(6.0 * 3600.0));
    assert_eq!(v.last_verification_success, None);
    assert_eq!(v.consecutive_failures, 2);
    assert!(v.suspended);
    assert_eq!(v.queue_position, 3);
    assert_eq!(v.checks, [("a".to_owned(), true), ("b".to_owned(), false)]);
}

#[test]
fn series_follow_the_replicas_and_vanish_with_them() {
    let m = Metrics::new();
    let mut e = Exporter::default();
    let a = replica(
        "a",
        "1",
        "{dataTime: '2026-12-05T23:00:00Z', lastVerification: {passed: true, checks: [{name: orders, passed: true, seconds: 1}]}}",
    );
    let b = replica("b", "1", "{queuePosition: 1}");
    e.sync(&m, [&a, &b].into_iter(), now());
    let text = m.encode();
    for line in [
        "pgro_replica_data_timestamp_seconds{namespace=\"n\",replica=\"a\"} 1796511600.0",
        "pgro_replica_queue_position{namespace=\"n\",replica=\"b\"} 1",
        "pgro_replica_created_timestamp_seconds{namespace=\"n\",replica=\"b\"} 1796083200.0",
        "pgro_replica_schedule_interval_seconds{namespace=\"n\",replica=\"a\"} 21600.0",
        "pgro_verification_check_passed{namespace=\"n\",replica=\"a\",check=\"orders\"} 1",
        "pgro_replica_scheduling_suspended{namespace=\"n\",replica=\"a\"} 0",
    ] {
        assert!(text.contains(line), "{line} missing in\n{text}");
    }
    assert!(!text.contains("pgro_replica_data_timestamp_seconds{namespace=\"n\",replica=\"b\"}"));
    // a's check changes name; b is deleted.
    let a2 = replica(
        "a",
        "2",
        "{lastVerification: {passed: false, checks: [{name: amount, passed: false, seconds: 1}]}}",
    );
    e.sync(&m, [&a2].into_iter(), now());
    let text = m.encode();
    assert!(text.contains(
        "pgro_verification_check_passed{namespace=\"n\",replica=\"a\",check=\"amount\"} 0"
    ));
    assert!(!text.contains("check=\"orders\""), "{text}");
    assert!(!text.contains("replica=\"b\""), "{text}");
    assert!(
        !text.contains("pgro_replica_data_timestamp_seconds{"),
        "{text}"
    );
}

#[test]
fn a_yearly_schedule_is_a_year_apart() {
    let mut r = replica("p", "1", "{}");
    r.spec.schedule = "0 0 1 1 *".into();
    let v = values(&r, now());
    assert_eq!(v.schedule_interval, Some(365.0 * 86400.0));
}

#[test]
fn a_changed_replica_is_recomputed() {
    let m = Metrics::new();
    let mut e = Exporter::default();
    let mut r = replica("a", "1", "{}");
    r.spec.schedule = "* * * * *".into();
    e.sync(&m, [&r].into_iter(), now());
    assert!(
        m.encode()
            .contains("pgro_replica_schedule_interval_seconds{namespace=\"n\",replica=\"a\"} 60.0")
    );
    r.spec.schedule = "0 0 1 1 *".into();
    r.metadata.resource_version = Some("2".into());
    e.sync(&m, [&r].into_iter(), now());
    let text = m.encode();
    assert!(
        text.contains(
            "pgro_replica_schedule_interval_seconds{namespace=\"n\",replica=\"a\"} 31536000.0"
        ),
        "{text}"
    );
}

#[test]
fn a_yearly_schedule_is_a_year_apart_now() {
    let mut r = replica("p", "1", "{}");
    r.spec.schedule = "0 0 1 1 *".into();
    r.metadata.uid = Some("6f1c1f0e-6a2b-4c5e-9d3c-2f7e8a9b0c1d".into());
    let v = values(&r, Timestamp::now());
    assert!(
        v.schedule_interval.unwrap_or(0.0) > 300.0 * 86400.0,
        "{v:?}"
    );
}
