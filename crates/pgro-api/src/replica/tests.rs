use super::*;
use crate::testutil::from_yaml;

const SEED_EXAMPLE: &str = include_str!("../../tests/fixtures/seed-example.yaml");
const FULL: &str = include_str!("../../tests/fixtures/replica-full.yaml");

fn yaml_as_json(yaml: &str) -> serde_json::Value {
    serde_yaml::from_str(yaml).expect("fixture is YAML")
}

#[test]
fn seed_quick_start_deserialises_with_seed_defaults() {
    let replica: PostgresPhysicalReplica = from_yaml(SEED_EXAMPLE).expect("seed example parses");
    assert_eq!(replica.metadata.namespace.as_deref(), Some("pgro-example"));
    assert_eq!(replica.metadata.name.as_deref(), Some("test"));
    let spec = &replica.spec;
    assert_eq!(
        spec.kopia_secret_ref
            .as_ref()
            .and_then(|s| s.name.as_deref()),
        Some("kopia-credentials")
    );
    assert_eq!(
        spec.kopia_secret().and_then(|s| s.name.as_deref()),
        Some("kopia-credentials")
    );
    assert_eq!((&spec.source, &spec.recovery), (&None, &None));
    assert_eq!(spec.schedule, "* */6 * * *");
    let tags = spec
        .snapshot_filter
        .as_ref()
        .and_then(|f| f.tags.as_ref())
        .expect("tags");
    assert_eq!(tags.get("area").map(String::as_str), Some("postgres"));
    // behaviour A2: the seed's defaults
    assert_eq!(spec.schedule_jitter, "10m");
    assert_eq!(spec.switchover_grace_period, "5m");
    assert_eq!(spec.analytics_username, "analytics");
    assert_eq!(spec.storage_size_maximum, Quantity("2Ti".into()));
    assert!(spec.read_only);
    assert!(spec.tolerations.is_empty());
    assert!(spec.notifications.is_empty());
    assert_eq!(spec.minimum_ttl, None);
    assert_eq!(spec.storage_size_override, None);
    assert_eq!(spec.persistent_schemas, None);
}

#[test]
fn every_replica_field_round_trips_unchanged() {
    let original = yaml_as_json(FULL);
    let typed: PostgresPhysicalReplica = serde_json::from_value(original.clone()).expect("typed");
    let back = serde_json::to_value(&typed).expect("serialise");
    assert_eq!(back, original);
}

#[test]
fn every_replica_field_is_read_into_its_typed_place() {
    let r: PostgresPhysicalReplica = from_yaml(FULL).expect("full fixture parses");
    let s = &r.spec;
    assert_eq!(
        s.kopia_secret_ref
            .as_ref()
            .and_then(|r| r.namespace.as_deref()),
        Some("pgro-example")
    );
    let f = s.snapshot_filter.as_ref().expect("filter");
    assert_eq!(f.host_pattern.as_deref(), Some("db-*"));
    assert_eq!(f.description_pattern.as_deref(), Some("*nightly*"));
    assert_eq!(f.path_pattern.as_deref(), Some("/D/Full*"));
    assert_eq!(f.tags.as_ref().map(BTreeMap::len), Some(2));
    assert_eq!(s.schedule_jitter, "1h 30m");
    assert_eq!(s.minimum_ttl.as_deref(), Some("12h"));
    assert_eq!(s.switchover_grace_period, "15m");
    assert_eq!(s.analytics_username, "reporting");
    assert_eq!(s.storage_class.as_deref(), Some("fast-ssd"));
    assert_eq!(s.storage_size_override, Some(Quantity("500Gi".into())));
    assert_eq!(s.storage_size_maximum, Quantity("1Ti".into()));
    let limits = s
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .expect("limits");
    assert_eq!(limits.get("memory"), Some(&Quantity("8Gi".into())));
    assert_eq!(s.service_annotations.as_ref().map(BTreeMap::len), Some(1));
    assert_eq!(s.pod_annotations.as_ref().map(BTreeMap::len), Some(1));
    assert!(
        s.affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .is_some()
    );
    assert_eq!(s.tolerations[0].key.as_deref(), Some("dedicated"));
    assert!(!s.read_only);
    assert!(
        s.postgres_extra_config
            .as_deref()
            .is_some_and(|c| c.contains("pg_stat_statements"))
    );
    assert_eq!(
        s.persistent_schemas.as_deref(),
        Some(&["scratch".to_owned(), "team_reports".to_owned()][..])
    );

    let [webhook, graphql] = &s.notifications[..] else {
        panic!("two notifications")
    };
    assert_eq!(webhook.target, NotificationTarget::Webhook);
    assert_eq!(webhook.name.as_deref(), Some("slack"));
    assert_eq!(webhook.method, Some(WebhookMethod::Put));
    assert_eq!(webhook.include_password, Some(true));
    let headers = webhook.headers.as_ref().expect("headers");
    assert_eq!(
        headers.get("X-Plain"),
        Some(&HeaderValue::Plain("hello".into()))
    );
    assert_eq!(
        headers.get("Authorization"),
        Some(&HeaderValue::Secret {
            secret_key_ref: SecretKeySelector {
                name: "webhook-token".into(),
                key: "token".into()
            }
        })
    );
    assert_eq!(graphql.target, NotificationTarget::GraphQl);
    assert!(
        graphql
            .mutation
            .as_deref()
            .is_some_and(|m| m.starts_with("mutation"))
    );
    assert!(
        graphql
            .variables_template
            .as_deref()
            .is_some_and(|t| t.contains("{{json Replica}}"))
    );

    let st = r.status.as_ref().expect("status");
    assert_eq!(st.phase, Some(ReplicaPhase::Ready));
    assert_eq!(st.current_restore.as_deref(), Some("full-20261121-101500"));
    assert_eq!(st.previous_restore.as_deref(), Some("full-20261120-101500"));
    assert_eq!(st.service_name.as_deref(), Some("full"));
    assert!(st.last_restore_completed_at.is_some());
    assert!(st.next_scheduled_restore.is_some());
    assert_eq!(
        st.latest_available_snapshot.as_deref(),
        Some("k0a1b2c3d4e5f60718293a4b5c6d7e8f9")
    );
    let ci = st.connection_info.as_ref().expect("connection info");
    assert_eq!(
        (ci.host.as_str(), ci.port, ci.database.as_str()),
        ("full.pgro-example.svc", 5432, "postgres")
    );
    assert_eq!(
        (ci.username.as_str(), ci.password_secret.as_str()),
        ("reporting", "full-creds")
    );
    assert_eq!(st.queue_position, 2);
    let n = &st.notifications[0];
    assert_eq!(
        (n.name.as_str(), n.event.as_str(), n.attempts, n.success),
        ("slack", "RestoreCompleted", 2, false)
    );
    assert!(n.last_attempt_at.is_some() && n.next_attempt_at.is_some());
    assert_eq!(n.last_error.as_deref(), Some("HTTP 502 Bad Gateway"));
    assert_eq!(st.conditions[0].type_, "Ready");
    assert_eq!(st.conditions[0].observed_generation, Some(4));
    assert_eq!(
        st.schema_migration_job.as_deref(),
        Some("full-schema-migration")
    );
    assert_eq!(
        st.schema_migration_phase.as_deref(),
        Some("failed: source unreachable")
    );
    assert_eq!(
        st.persistent_schema_data_size,
        Some(Quantity("120Mi".into()))
    );
    assert_eq!(st.consecutive_restore_failures, 1);
    assert!(st.last_restore_failed_at.is_some() && st.waiting_since.is_some());
    assert_eq!(st.schedule_hash.as_deref(), Some("5d41402abc4b2a76"));
    assert_eq!(st.observed_generation, Some(4));
}

#[test]
fn empty_status_serialises_to_counters_only() {
    let json = serde_json::to_value(PostgresPhysicalReplicaStatus::default()).expect("serialise");
    assert_eq!(
        json,
        serde_json::json!({"queuePosition": 0, "consecutiveRestoreFailures": 0})
    );
}

#[test]
fn webhook_method_defaults_to_post() {
    let n: NotificationConfig = serde_json::from_value(
        serde_json::json!({"target": "webhook", "url": "https://x.example/"}),
    )
    .expect("parse");
    assert_eq!(n.method, Some(WebhookMethod::Post));
}
