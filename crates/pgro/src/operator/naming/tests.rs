use proptest::prelude::*;

use super::*;

fn at(text: &str) -> Timestamp {
    text.parse().expect("timestamp")
}

#[test]
fn restore_name_is_replica_and_utc_creation_time() {
    assert_eq!(
        restore_name("test", at("2026-11-21T10:15:00Z")),
        "test-20261121-101500"
    );
    assert_eq!(
        restore_name("test", at("2026-11-21T10:15:00+13:00")),
        "test-20261120-211500"
    );
}

#[test]
fn children_of_a_restore_carry_fixed_suffixes() {
    let r = "test-20261121-101500";
    assert_eq!(data_pvc(r), "test-20261121-101500-data");
    assert_eq!(restore_job(r), "test-20261121-101500-restore");
    assert_eq!(restore_deployment(r), r);
    assert_eq!(replica_service("test"), "test");
    assert_eq!(credentials_secret("test"), "test-creds");
    assert_eq!(schema_migration_job("test"), "test-schema-migration");
}

#[test]
fn long_replica_name_is_shortened_with_a_stable_hash() {
    let long = "analytics-warehouse-production-eu-west-replica";
    let name = restore_name(long, at("2026-11-21T10:15:00Z"));
    assert_eq!(name.len(), MAX_RESTORE_NAME_LEN, "{name}");
    assert!(name.starts_with("analytics-warehouse-"), "{name}");
    assert!(name.ends_with("-20261121-101500"), "{name}");
    assert_eq!(
        name,
        restore_name(long, at("2026-11-21T10:15:00Z")),
        "deterministic"
    );
}

#[test]
fn replica_names_that_are_not_dns_labels_become_labels() {
    for weird in ["db.prod", "9lives", "UPPER", "---", "a-", "1.2.3"] {
        let service = replica_service(weird);
        assert!(is_dns_label(&service), "{weird} -> {service}");
        assert_ne!(service, weird);
    }
}

#[test]
fn label_values_are_names_unless_too_long() {
    assert_eq!(label_value("test"), "test");
    let long = "a".repeat(100);
    let value = label_value(&long);
    assert_eq!(value.len(), MAX_NAME_LEN);
    assert_ne!(label_value(&"a".repeat(101)), value);
}

/// Names the apiserver accepts for a namespaced custom resource (DNS-1123 subdomains).
fn replica_names() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9.-]{0,120}[a-z0-9])?"
}

proptest! {
    #[test]
    fn every_generated_name_is_a_label_within_limits(replica in replica_names(), secs in 0i64..4_000_000_000) {
        let restore = restore_name(&replica, Timestamp::from_second(secs).expect("in range"));
        prop_assert!(restore.len() <= MAX_RESTORE_NAME_LEN, "{}", restore);
        prop_assert!(is_dns_label(&restore), "{}", restore);
        for child in [data_pvc(&restore), restore_job(&restore), restore_deployment(&restore)] {
            prop_assert!(is_dns_label(&child), "{}", child);
        }
        // pods of the Deployment: <deploy>-<≤10>-<5>; pods of the Job: <job>-<5>
        prop_assert!(restore.len() + 17 <= MAX_NAME_LEN);
        prop_assert!(restore_job(&restore).len() + 6 <= MAX_NAME_LEN);
        for name in [replica_service(&replica), credentials_secret(&replica), schema_migration_job(&replica)] {
            prop_assert!(is_dns_label(&name), "{}", name);
        }
        prop_assert!(schema_migration_job(&replica).len() + 6 <= MAX_NAME_LEN);
    }

    #[test]
    fn distinct_replicas_get_distinct_names(a in replica_names(), b in replica_names()) {
        prop_assume!(a != b);
        let t = Timestamp::from_second(1_800_000_000).expect("in range");
        prop_assert_ne!(restore_name(&a, t), restore_name(&b, t));
        prop_assert_ne!(replica_service(&a), replica_service(&b));
        prop_assert_ne!(label_value(&a), label_value(&b));
    }
}
