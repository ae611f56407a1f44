//! `deploy/crds.yaml` is exactly `pgro gen-crds` (behaviour A6), and every field of the API seed stands at its
//! place in it with the seed's type and default.

use serde_json::Value;

const COMMITTED: &str = include_str!("../../../deploy/crds.yaml");

fn documents() -> Vec<Value> {
    COMMITTED
        .split("\n---\n")
        .filter(|d| d.contains("kind: CustomResourceDefinition"))
        .map(|d| serde_yaml::from_str(d).expect("CRD document is YAML"))
        .collect()
}

fn crd(kind: &str) -> Value {
    documents()
        .into_iter()
        .find(|d| d["spec"]["names"]["kind"] == kind)
        .unwrap_or_else(|| panic!("{kind} in deploy/crds.yaml"))
}

/// The schema node at a dotted path below `openAPIV3Schema` (`spec.snapshotFilter.tags`); `[]` steps into
/// list items.
fn node<'a>(crd: &'a Value, path: &str) -> &'a Value {
    let mut node = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    for part in path.split('.') {
        node = if part == "[]" {
            &node["items"]
        } else {
            &node["properties"][part]
        };
        assert!(!node.is_null(), "{path}: no schema at {part}");
    }
    node
}

#[test]
fn committed_crds_are_what_gen_crds_prints() {
    let generated = pgro::crds::render().expect("render");
    assert!(
        generated == COMMITTED,
        "deploy/crds.yaml is stale: run `cargo run -p pgro -- gen-crds > deploy/crds.yaml`"
    );
}

#[test]
fn both_kinds_are_namespaced_with_status_short_names_and_category_all() {
    for (kind, short) in [
        ("PostgresPhysicalReplica", "ppr"),
        ("PostgresPhysicalRestore", "pprestore"),
    ] {
        let c = crd(kind);
        assert_eq!(c["spec"]["group"], "pgro.bes.au");
        assert_eq!(c["spec"]["scope"], "Namespaced");
        assert_eq!(c["spec"]["versions"][0]["name"], "v1alpha1");
        assert!(
            c["spec"]["versions"][0]["subresources"]["status"].is_object(),
            "{kind} status subresource"
        );
        assert!(
            c["spec"]["names"]["shortNames"]
                .as_array()
                .is_some_and(|s| s.iter().any(|n| n == short))
        );
        assert!(
            c["spec"]["names"]["categories"]
                .as_array()
                .is_some_and(|s| s.iter().any(|n| n == "all"))
        );
    }
}

#[test]
fn printer_columns_follow_behaviour_a1() {
    let columns = |kind: &str| -> Vec<String> {
        crd(kind)["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| c["name"].as_str().expect("name").to_owned())
            .collect()
    };
    assert_eq!(
        columns("PostgresPhysicalReplica"),
        ["Phase", "Service", "Current restore", "Next restore", "Age"]
    );
    assert_eq!(
        columns("PostgresPhysicalRestore"),
        [
            "Phase",
            "Replica",
            "Snapshot",
            "Snapshot size",
            "Storage size",
            "Postgres version",
            "Age"
        ]
    );
}

/// Every field of the seed's tables: (path, type, default). Types: the OpenAPI type, `quantity` for
/// int-or-string quantities, `time` for date-time strings.
const REPLICA_FIELDS: &[(&str, &str, Option<&str>)] = &[
    ("spec.kopiaSecretRef", "object", None),
    ("spec.kopiaSecretRef.name", "string", None),
    ("spec.snapshotFilter", "object", None),
    ("spec.snapshotFilter.tags", "object", None),
    ("spec.snapshotFilter.hostPattern", "string", None),
    ("spec.snapshotFilter.descriptionPattern", "string", None),
    ("spec.snapshotFilter.pathPattern", "string", None),
    ("spec.schedule", "string", None),
    ("spec.scheduleJitter", "string", Some("\"10m\"")),
    ("spec.minimumTtl", "string", None),
    ("spec.switchoverGracePeriod", "string", Some("\"5m\"")),
    ("spec.analyticsUsername", "string", Some("\"analytics\"")),
    ("spec.storageClass", "string", None),
    ("spec.storageSizeOverride", "quantity", None),
    ("spec.storageSizeMaximum", "quantity", Some("\"2Ti\"")),
    ("spec.resources", "object", None),
    ("spec.resources.limits", "object", None),
    ("spec.serviceAnnotations", "object", None),
    ("spec.podAnnotations", "object", None),
    ("spec.affinity", "object", None),
    ("spec.affinity.nodeAffinity", "object", None),
    ("spec.tolerations", "array", Some("[]")),
    ("spec.readOnly", "boolean", Some("true")),
    ("spec.postgresExtraConfig", "string", None),
    ("spec.notifications", "array", Some("[]")),
    ("spec.notifications.[].target", "string", None),
    ("spec.notifications.[].url", "string", None),
    ("spec.notifications.[].headers", "object", None),
    ("spec.notifications.[].includePassword", "boolean", None),
    ("spec.notifications.[].method", "string", Some("\"POST\"")),
    ("spec.notifications.[].mutation", "string", None),
    ("spec.notifications.[].variablesTemplate", "string", None),
    ("spec.persistentSchemas", "array", None),
    ("status.phase", "string", None),
    ("status.currentRestore", "string", None),
    ("status.previousRestore", "string", None),
    ("status.serviceName", "string", None),
    ("status.lastRestoreCompletedAt", "time", None),
    ("status.nextScheduledRestore", "time", None),
    ("status.latestAvailableSnapshot", "string", None),
    ("status.connectionInfo", "object", None),
    ("status.connectionInfo.host", "string", None),
    ("status.connectionInfo.port", "integer", None),
    ("status.connectionInfo.database", "string", None),
    ("status.connectionInfo.username", "string", None),
    ("status.connectionInfo.passwordSecret", "string", None),
    ("status.queuePosition", "integer", Some("0")),
    ("status.notifications", "array", None),
    ("status.conditions", "array", None),
    ("status.conditions.[].lastTransitionTime", "time", None),
    ("status.conditions.[].observedGeneration", "integer", None),
    ("status.schemaMigrationJob", "string", None),
    ("status.schemaMigrationPhase", "string", None),
    ("status.persistentSchemaDataSize", "quantity", None),
    ("status.consecutiveRestoreFailures", "integer", Some("0")),
];

const RESTORE_FIELDS: &[(&str, &str, Option<&str>)] = &[
    ("spec.replica", "object", None),
    ("spec.replica.name", "string", None),
    ("spec.snapshot", "string", None),
    ("spec.snapshotSize", "quantity", None),
    ("spec.storageSize", "quantity", None),
    ("status.phase", "string", None),
    ("status.postgresVersion", "string", None),
    ("status.createdAt", "time", None),
    ("status.restoredAt", "time", None),
    ("status.activatedAt", "time", None),
    ("status.restoreJob", "object", None),
    ("status.restoreJob.name", "string", None),
    ("status.restoreJob.phase", "string", None),
    ("status.restoreJob.completedAt", "time", None),
    ("status.pvc", "string", None),
    ("status.deployment", "string", None),
    ("status.credentialsSecret", "string", None),
    ("status.conditions", "array", None),
];

fn assert_fields(kind: &str, fields: &[(&str, &str, Option<&str>)]) {
    let c = crd(kind);
    for (path, ty, default) in fields {
        let n = node(&c, path);
        match *ty {
            "quantity" => assert_eq!(
                n["x-kubernetes-int-or-string"], true,
                "{kind} {path} is a quantity"
            ),
            "time" => {
                assert_eq!(n["type"], "string", "{kind} {path}");
                assert_eq!(n["format"], "date-time", "{kind} {path}");
            }
            ty => assert_eq!(n["type"], ty, "{kind} {path}"),
        }
        let expected: Option<Value> =
            default.map(|d| serde_json::from_str(d).expect("default literal"));
        assert_eq!(n.get("default"), expected.as_ref(), "{kind} {path} default");
    }
}

#[test]
fn every_seed_replica_field_is_at_its_place() {
    assert_fields("PostgresPhysicalReplica", REPLICA_FIELDS);
    let c = crd("PostgresPhysicalReplica");
    let required = node(&c, "spec")["required"]
        .as_array()
        .expect("required")
        .clone();
    assert!(required.contains(&"schedule".into()));
    // `kopiaSecretRef` became optional in the schema when `source` was added (+): a CEL rule requires
    // exactly one of the two, so a seed manifest still needs it unless it names a `source`.
    assert!(!required.contains(&"kopiaSecretRef".into()));
    let rules = node(&c, "spec")["x-kubernetes-validations"]
        .as_array()
        .expect("spec rules")
        .clone();
    assert!(
        rules
            .iter()
            .any(|r| r["rule"] == "has(self.kopiaSecretRef) != has(self.source)")
    );
    let item_required = node(&c, "spec.notifications.[]")["required"]
        .as_array()
        .expect("required")
        .clone();
    assert!(item_required.contains(&"target".into()) && item_required.contains(&"url".into()));
}

#[test]
fn every_seed_restore_field_is_at_its_place() {
    assert_fields("PostgresPhysicalRestore", RESTORE_FIELDS);
    let c = crd("PostgresPhysicalRestore");
    let required = node(&c, "spec")["required"]
        .as_array()
        .expect("required")
        .clone();
    for field in ["replica", "snapshot", "snapshotSize", "storageSize"] {
        assert!(required.contains(&field.into()), "spec.{field} is required");
    }
}

#[test]
fn conditions_merge_by_type() {
    for kind in ["PostgresPhysicalReplica", "PostgresPhysicalRestore"] {
        let c = crd(kind);
        let conditions = node(&c, "status.conditions");
        assert_eq!(conditions["x-kubernetes-list-type"], "map", "{kind}");
        assert_eq!(
            conditions["x-kubernetes-list-map-keys"],
            serde_json::json!(["type"]),
            "{kind}"
        );
    }
}
