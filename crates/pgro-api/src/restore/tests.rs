use super::*;
use crate::RecoveryTarget;
use crate::testutil::from_yaml;

const FULL: &str = include_str!("../../tests/fixtures/restore-full.yaml");

#[test]
fn every_restore_field_round_trips_unchanged() {
    let original: serde_json::Value = serde_yaml::from_str(FULL).expect("fixture is YAML");
    let typed: PostgresPhysicalRestore = serde_json::from_value(original.clone()).expect("typed");
    assert_eq!(serde_json::to_value(&typed).expect("serialise"), original);
}

#[test]
fn every_restore_field_is_read_into_its_typed_place() {
    let r: PostgresPhysicalRestore = from_yaml(FULL).expect("parses");
    assert_eq!(r.spec.replica.name, "full");
    assert_eq!(r.spec.snapshot, "k0a1b2c3d4e5f60718293a4b5c6d7e8f9");
    assert_eq!(r.spec.snapshot_size, Quantity("1610612736".into()));
    assert_eq!(r.spec.storage_size, Quantity("1690Mi".into()));
    assert!(r.spec.snapshot_time.is_some());
    let source = r.spec.source.as_ref().and_then(|s| s.pgbackrest.as_ref());
    assert_eq!(
        source.map(|p| p.repo_path.as_str()),
        Some("/pgbackrest/repo1")
    );
    assert_eq!(
        r.spec.recovery.as_ref().map(|r| r.target),
        Some(RecoveryTarget::Consistent)
    );
    let st = r.status.expect("status");
    assert_eq!(st.phase, Some(RestorePhase::Active));
    assert_eq!(st.postgres_version.as_deref(), Some("16"));
    assert!(st.created_at.is_some() && st.restored_at.is_some() && st.activated_at.is_some());
    let job = st.restore_job.expect("job");
    assert_eq!(job.name, "full-20261121-101500-restore");
    assert_eq!(job.phase.as_deref(), Some("Succeeded"));
    assert!(job.completed_at.is_some());
    assert_eq!(st.pvc.as_deref(), Some("full-20261121-101500-data"));
    assert_eq!(st.deployment.as_deref(), Some("full-20261121-101500"));
    assert_eq!(st.credentials_secret.as_deref(), Some("full-creds"));
    assert_eq!(st.conditions[0].reason, "RestoreJobCompleted");
    assert_eq!(st.observed_generation, Some(1));
    assert_eq!(st.source.as_deref(), Some("pgbackrest"));
    assert!(st.data_time.is_some());
    assert_eq!(
        st.wal_replayed,
        Some(WalReplayed {
            segments: 50,
            bytes: 838_860_800,
            seconds: 42.5
        })
    );
}
