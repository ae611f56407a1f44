//! Behaviour A3: the CEL admission rules in the generated CRDs, evaluated client-side with kube's CEL
//! interpreter. (The same inputs go through a real apiserver in the control-plane tests.)

use kube::CustomResourceExt;
use kube::core::cel::{Validator, compile_schema};
use pgro_api::{PostgresPhysicalReplica, PostgresPhysicalRestore};
use serde_json::{Value, json};

fn schema<K: CustomResourceExt>() -> Value {
    let crd = K::crd();
    let version = &crd.spec.versions[0];
    serde_json::to_value(
        version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("schema"),
    )
    .expect("schema is JSON")
}

fn replica(spec: Value) -> Value {
    let mut base =
        json!({"kopiaSecretRef": {"name": "kopia-credentials"}, "schedule": "0 */6 * * *"});
    if let (Some(base), Some(extra)) = (base.as_object_mut(), spec.as_object()) {
        base.extend(extra.clone());
    }
    json!({"apiVersion": "pgro.bes.au/v1alpha1", "kind": "PostgresPhysicalReplica",
           "metadata": {"name": "test", "namespace": "pgro-example"}, "spec": base})
}

/// The messages of every failed rule, or empty when the object is admitted.
fn rejections(schema: &Value, object: &Value, old: Option<&Value>) -> Vec<String> {
    match Validator::new().validate(schema, object, old) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

fn assert_rejected(spec: Value, expected_message: &str) {
    let errors = rejections(
        &schema::<PostgresPhysicalReplica>(),
        &replica(spec.clone()),
        None,
    );
    assert!(
        errors.iter().any(|e| e.contains(expected_message)),
        "spec {spec} should be rejected with {expected_message:?}, got {errors:?}"
    );
}

fn assert_admitted(spec: Value) {
    let errors = rejections(
        &schema::<PostgresPhysicalReplica>(),
        &replica(spec.clone()),
        None,
    );
    assert!(
        errors.is_empty(),
        "spec {spec} should be admitted, got {errors:?}"
    );
}

#[test]
fn every_cel_rule_compiles() {
    for schema in [
        schema::<PostgresPhysicalReplica>(),
        schema::<PostgresPhysicalRestore>(),
    ] {
        let compiled = compile_schema(&schema);
        assert!(
            !compiled.has_errors(),
            "{:?}",
            compiled.compilation_errors()
        );
    }
}

#[test]
fn seed_quick_start_and_full_examples_are_admitted() {
    assert_admitted(
        json!({"schedule": "* */6 * * *", "snapshotFilter": {"tags": {"area": "postgres"}}}),
    );
    let full: Value =
        serde_yaml::from_str(include_str!("fixtures/replica-full.yaml")).expect("yaml");
    let errors = rejections(&schema::<PostgresPhysicalReplica>(), &full, None);
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn durations_in_friendly_form_are_admitted() {
    for d in [
        "5m",
        "1h 30m",
        "1h30m",
        "90s",
        "0",
        "0s",
        "2d",
        "1w",
        "1.5h",
        "10 minutes",
        "500ms",
    ] {
        assert_admitted(json!({"scheduleJitter": d, "minimumTtl": d, "switchoverGracePeriod": d}));
    }
}

#[test]
fn malformed_durations_are_rejected_naming_the_field() {
    for d in [
        "",
        "5",
        "ten minutes",
        "5 parsecs",
        "-5m",
        "1h,30m",
        "P1D",
        "3M",
        "1y",
    ] {
        assert_rejected(
            json!({"scheduleJitter": d}),
            "scheduleJitter must be a duration",
        );
        assert_rejected(json!({"minimumTtl": d}), "minimumTtl must be a duration");
        assert_rejected(
            json!({"switchoverGracePeriod": d}),
            "switchoverGracePeriod must be a duration",
        );
    }
}

#[test]
fn quantities_must_parse_and_be_positive() {
    assert_admitted(json!({"storageSizeOverride": "20Gi", "storageSizeMaximum": "1Ti"}));
    assert_admitted(json!({"storageSizeMaximum": 1_099_511_627_776_i64}));
    for q in ["lots", "20 Gi", "1.5.3Gi", "-1Gi", "0"] {
        assert_rejected(
            json!({"storageSizeOverride": q}),
            "storageSizeOverride must be a positive quantity",
        );
        assert_rejected(
            json!({"storageSizeMaximum": q}),
            "storageSizeMaximum must be a positive quantity",
        );
    }
}

#[test]
fn override_above_maximum_is_rejected() {
    assert_rejected(
        json!({"storageSizeOverride": "3Ti"}),
        "storageSizeOverride must not exceed storageSizeMaximum",
    );
    assert_admitted(json!({"storageSizeOverride": "2Ti"}));
}

#[test]
fn analytics_username_must_be_a_plain_unreserved_identifier() {
    for ok in ["analytics", "_reader", "bi_team_2", &"a".repeat(63)] {
        assert_admitted(json!({"analyticsUsername": ok}));
    }
    for bad in [
        "Analytics",
        "2fast",
        "bi-team",
        "bi team",
        "",
        "a\"; DROP ROLE x; --",
        &"a".repeat(64),
    ] {
        assert_rejected(
            json!({"analyticsUsername": bad}),
            "analyticsUsername must be a valid unquoted PostgreSQL identifier",
        );
    }
    for reserved in [
        "pg_monitor",
        "postgres",
        "public",
        "pgro_admin",
        "current_user",
    ] {
        assert_rejected(
            json!({"analyticsUsername": reserved}),
            "analyticsUsername must not start with pg_",
        );
    }
}

#[test]
fn persistent_schema_names_must_be_plain_identifiers() {
    assert_admitted(json!({"persistentSchemas": ["scratch", "team_reports"]}));
    for bad in [
        "Scratch",
        "my-schema",
        "pg_catalog",
        "_pgro",
        "information_schema",
        "",
    ] {
        assert_rejected(
            json!({"persistentSchemas": ["ok", bad]}),
            "persistentSchemas entries must be valid",
        );
    }
}

#[test]
fn graphql_requires_mutation_and_variables_template() {
    let url = "https://api.example.com/graphql";
    assert_rejected(
        json!({"notifications": [{"target": "graphQL", "url": url}]}),
        "a graphQL notification requires mutation and variablesTemplate",
    );
    assert_rejected(
        json!({"notifications": [{"target": "graphQL", "url": url, "mutation": "mutation { x }"}]}),
        "a graphQL notification requires mutation and variablesTemplate",
    );
    assert_admitted(json!({"notifications": [
        {"target": "graphQL", "url": url, "mutation": "mutation { x }", "variablesTemplate": "{}"}]}));
    assert_rejected(
        json!({"notifications": [{"target": "graphQL", "url": url, "mutation": "m", "variablesTemplate": "{}", "method": "PUT"}]}),
        "always sent with method POST",
    );
    assert_rejected(
        json!({"notifications": [{"target": "webhook", "url": url, "mutation": "m"}]}),
        "only valid for target graphQL",
    );
}

#[test]
fn notification_urls_must_be_http() {
    for bad in [
        "ftp://example.com/x",
        "not a url",
        "/relative/path",
        "http://",
        "https:///path",
    ] {
        assert_rejected(
            json!({"notifications": [{"target": "webhook", "url": bad}]}),
            "url must be an absolute http",
        );
    }
    for good in [
        "HTTP://hooks.example.com/x",
        "https://h:8443",
        "http://10.0.0.1/hook?x=1",
    ] {
        assert_admitted(json!({"notifications": [{"target": "webhook", "url": good}]}));
    }
}

/// The apiserver refuses CEL rules on a node that preserves unknown fields, so header values (string or
/// `{secretKeyRef}`) carry none; the operator checks their shape.
#[test]
fn header_values_preserve_their_shape_without_rules() {
    let s = schema::<PostgresPhysicalReplica>();
    let headers =
        &s["properties"]["spec"]["properties"]["notifications"]["items"]["properties"]["headers"];
    let value = &headers["additionalProperties"];
    assert_eq!(value["x-kubernetes-preserve-unknown-fields"], json!(true));
    assert!(value.get("x-kubernetes-validations").is_none());
}

/// Every string a rule scans and every list whose items carry rules is bounded, so the apiserver's CEL cost
/// estimate stays within its budget.
#[test]
fn scanned_strings_and_rule_lists_are_bounded() {
    let s = schema::<PostgresPhysicalReplica>();
    let spec = &s["properties"]["spec"]["properties"];
    for field in [
        "scheduleJitter",
        "minimumTtl",
        "switchoverGracePeriod",
        "analyticsUsername",
        "schedule",
    ] {
        assert!(spec[field]["maxLength"].is_u64(), "{field} has maxLength");
    }
    assert!(spec["notifications"]["maxItems"].is_u64());
    assert!(spec["notifications"]["items"]["properties"]["url"]["maxLength"].is_u64());
    assert!(spec["persistentSchemas"]["maxItems"].is_u64());
    assert!(spec["persistentSchemas"]["items"]["maxLength"].is_u64());
}

#[test]
fn kopia_secret_ref_needs_a_name() {
    let obj = json!({"apiVersion": "pgro.bes.au/v1alpha1", "kind": "PostgresPhysicalReplica",
        "metadata": {"name": "t"}, "spec": {"kopiaSecretRef": {}, "schedule": "0 * * * *"}});
    let errors = rejections(&schema::<PostgresPhysicalReplica>(), &obj, None);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("kopiaSecretRef.name is required")),
        "{errors:?}"
    );
}

#[test]
fn enumerations_are_closed_in_the_schema() {
    let s = schema::<PostgresPhysicalReplica>();
    let item = &s["properties"]["spec"]["properties"]["notifications"]["items"]["properties"];
    assert_eq!(item["target"]["enum"], json!(["webhook", "graphQL"]));
    assert_eq!(
        item["method"]["enum"],
        json!(["GET", "POST", "PUT", "PATCH"])
    );
    assert_eq!(
        s["properties"]["status"]["properties"]["phase"]["enum"],
        json!(["Pending", "Restoring", "Ready", "Failed"])
    );
    let r = schema::<PostgresPhysicalRestore>();
    assert_eq!(
        r["properties"]["status"]["properties"]["phase"]["enum"],
        json!([
            "Pending",
            "Restoring",
            "Ready",
            "Switching",
            "Active",
            "Failed"
        ])
    );
}

#[test]
fn restore_spec_is_immutable() {
    let restore = |snapshot: &str| {
        json!({"apiVersion": "pgro.bes.au/v1alpha1", "kind": "PostgresPhysicalRestore",
        "metadata": {"name": "r"}, "spec": {"replica": {"name": "test"}, "snapshot": snapshot,
        "snapshotSize": "1Gi", "storageSize": "1127Mi"}})
    };
    let s = schema::<PostgresPhysicalRestore>();
    assert!(rejections(&s, &restore("a"), None).is_empty());
    assert!(rejections(&s, &restore("a"), Some(&restore("a"))).is_empty());
    let errors = rejections(&s, &restore("b"), Some(&restore("a")));
    assert!(
        errors.iter().any(|e| e.contains("spec is immutable")),
        "{errors:?}"
    );
}

/// A replica whose spec is exactly `spec` plus a schedule (no `kopiaSecretRef`).
fn replica_from(spec: Value) -> Value {
    let mut base = json!({"schedule": "0 */6 * * *"});
    if let (Some(base), Some(extra)) = (base.as_object_mut(), spec.as_object()) {
        base.extend(extra.clone());
    }
    json!({"apiVersion": "pgro.bes.au/v1alpha1", "kind": "PostgresPhysicalReplica",
           "metadata": {"name": "test", "namespace": "pgro-example"}, "spec": base})
}

fn source_rejections(spec: Value) -> Vec<String> {
    rejections(
        &schema::<PostgresPhysicalReplica>(),
        &replica_from(spec),
        None,
    )
}

fn assert_source_rejected(spec: Value, expected_message: &str) {
    let errors = source_rejections(spec.clone());
    assert!(
        errors.iter().any(|e| e.contains(expected_message)),
        "spec {spec} should be rejected with {expected_message:?}, got {errors:?}"
    );
}

fn assert_source_admitted(spec: Value) {
    let errors = source_rejections(spec.clone());
    assert!(
        errors.is_empty(),
        "spec {spec} should be admitted, got {errors:?}"
    );
}

fn pgbackrest(fields: Value) -> Value {
    json!({"source": {"pgbackrest": fields}})
}

const ONE_SOURCE: &str = "set exactly one of kopiaSecretRef or source: they are alternative ways";

#[test]
fn kopia_secret_ref_and_source_together_are_rejected() {
    assert_rejected(
        json!({"source": {"kopia": {"secretRef": {"name": "kopia-credentials"}}}}),
        ONE_SOURCE,
    );
    assert_rejected(
        pgbackrest(json!({"volume": {"claimName": "repo1"}})),
        ONE_SOURCE,
    );
}

#[test]
fn replica_without_kopia_secret_ref_or_source_is_rejected() {
    assert_source_rejected(json!({}), ONE_SOURCE);
}

#[test]
fn source_with_no_member_or_two_members_is_rejected() {
    let message = "source must set exactly one of kopia, pgbackrest, barmanCloud";
    assert_source_rejected(json!({"source": {}}), message);
    assert_source_rejected(
        json!({"source": {"kopia": {"secretRef": {"name": "k"}},
                          "pgbackrest": {"volume": {"claimName": "repo1"}}}}),
        message,
    );
}

#[test]
fn pgbackrest_source_with_no_storage_or_two_storages_is_rejected() {
    let message = "source.pgbackrest must set exactly one storage: s3, gcs, azure, volume";
    assert_source_rejected(pgbackrest(json!({"stanza": "db"})), message);
    assert_source_rejected(
        pgbackrest(json!({"volume": {"claimName": "repo1"}, "gcs": {"bucket": "b"}})),
        message,
    );
    assert_source_rejected(
        pgbackrest(
            json!({"s3": {"bucket": "b", "endpoint": "e", "region": "r"},
                          "azure": {"container": "c"}}),
        ),
        message,
    );
}

#[test]
fn pgo_shaped_pgbackrest_source_is_admitted() {
    let pgo: Value =
        serde_yaml::from_str(include_str!("fixtures/replica-pgbackrest.yaml")).expect("yaml");
    let errors = rejections(&schema::<PostgresPhysicalReplica>(), &pgo, None);
    assert!(errors.is_empty(), "{errors:?}");
    // PGO's defaults: stanza db, repo1 at /pgbackrest/repo1, credentials in the cluster's Secret.
    assert_source_admitted(pgbackrest(json!({
        "stanza": "db", "repoPath": "/pgbackrest/repo1",
        "s3": {"bucket": "b", "endpoint": "s3.amazonaws.com", "region": "us-east-1", "uriStyle": "host"},
        "secretRef": {"name": "pgo-s3-creds"}})));
    assert_source_admitted(pgbackrest(json!({"gcs": {"bucket": "b"}})));
    assert_source_admitted(pgbackrest(json!({"azure": {"container": "c"}, "repo": 2})));
    assert_source_admitted(pgbackrest(
        json!({"volume": {"claimName": "repo1", "subPath": "pgbackrest/repo1"}}),
    ));
    assert_source_admitted(json!({"source": {"kopia": {"secretRef": {"name": "k"}}},
                                  "recovery": {"target": "consistent"}}));
}

#[test]
fn stanza_must_be_a_safe_path_component() {
    for ok in ["db", "main", "my_stanza-1.2", "_x", "PG16"] {
        assert_source_admitted(pgbackrest(
            json!({"stanza": ok, "volume": {"claimName": "repo1"}}),
        ));
    }
    for bad in ["a b", "a/b", "..", ".hidden", "-x", "ü", "db\n"] {
        assert_source_rejected(
            pgbackrest(json!({"stanza": bad, "volume": {"claimName": "repo1"}})),
            "source.pgbackrest.stanza must be letters, digits",
        );
    }
}

#[test]
fn repo_path_must_be_absolute_and_sub_path_relative_without_dot_dot() {
    let volume = |repo_path: &str, sub_path: &str| {
        pgbackrest(json!({"repoPath": repo_path,
                          "volume": {"claimName": "repo1", "subPath": sub_path}}))
    };
    assert_source_admitted(volume("/pgbackrest/repo1", "a/b..c/d"));
    for bad in ["pgbackrest/repo1", "/pgbackrest/../etc", "/.."] {
        assert_source_rejected(
            volume(bad, "x"),
            "source.pgbackrest.repoPath must be an absolute path",
        );
    }
    for bad in ["/abs", "../up", "a/../../b", ".."] {
        assert_source_rejected(
            volume("/r", bad),
            "source.pgbackrest.volume.subPath must be a relative path",
        );
    }
}

#[test]
fn source_secret_refs_need_a_name() {
    assert_source_rejected(
        json!({"source": {"kopia": {"secretRef": {}}}}),
        "source.kopia.secretRef.name is required",
    );
    assert_source_rejected(
        pgbackrest(json!({"gcs": {"bucket": "b"}, "secretRef": {"name": ""}})),
        "source.pgbackrest.secretRef.name is required",
    );
}

#[test]
fn source_enumerations_are_closed_and_defaulted() {
    let s = schema::<PostgresPhysicalReplica>();
    let spec = &s["properties"]["spec"]["properties"];
    let p = &spec["source"]["properties"]["pgbackrest"]["properties"];
    assert_eq!(
        p["s3"]["properties"]["uriStyle"]["enum"],
        json!(["host", "path"])
    );
    assert_eq!(p["s3"]["properties"]["uriStyle"]["default"], json!("host"));
    assert_eq!(p["s3"]["properties"]["verifyTls"]["default"], json!(true));
    assert_eq!(p["stanza"]["default"], json!("db"));
    assert_eq!(p["repoPath"]["default"], json!("/var/lib/pgbackrest"));
    assert_eq!(
        (&p["repo"]["minimum"], &p["repo"]["maximum"]),
        (&json!(1.0), &json!(256.0))
    );
    let target = &spec["recovery"]["properties"]["target"];
    assert_eq!(target["enum"], json!(["latest", "consistent"]));
    assert_eq!(target["default"], json!("latest"));
    for path in ["stanza", "repoPath"] {
        assert!(p[path]["maxLength"].is_u64(), "{path} has maxLength");
    }
    assert!(p["volume"]["properties"]["subPath"]["maxLength"].is_u64());
}

#[test]
fn restore_spec_may_carry_the_replica_source() {
    let restore = json!({"apiVersion": "pgro.bes.au/v1alpha1", "kind": "PostgresPhysicalRestore",
        "metadata": {"name": "r"}, "spec": {"replica": {"name": "test"}, "snapshot": "20261121-101500F",
        "snapshotSize": "1Gi", "storageSize": "1127Mi",
        "source": {"pgbackrest": {"volume": {"claimName": "repo1"}}}, "recovery": {"target": "latest"}}});
    let s = schema::<PostgresPhysicalRestore>();
    assert!(rejections(&s, &restore, None).is_empty());
    assert!(rejections(&s, &restore, Some(&restore)).is_empty());
}

fn barman(fields: Value) -> Value {
    let mut base = json!({"destinationPath": "s3://backups/prod", "serverName": "cluster-example"});
    if let (Some(base), Some(extra)) = (base.as_object_mut(), fields.as_object()) {
        base.extend(extra.clone());
    }
    json!({"source": {"barmanCloud": base}})
}

#[test]
fn cnpg_barman_object_store_block_is_admitted_as_copied() {
    let cnpg: Value =
        serde_yaml::from_str(include_str!("fixtures/replica-barman-cloud.yaml")).expect("yaml");
    let errors = rejections(&schema::<PostgresPhysicalReplica>(), &cnpg, None);
    assert!(errors.is_empty(), "{errors:?}");
    for path in [
        "gs://bucket",
        "gs://bucket/a/b",
        "https://account.blob.core.windows.net/container/prefix",
        "http://127.0.0.1:10000/devstoreaccount1/container",
    ] {
        assert_source_admitted(barman(json!({"destinationPath": path})));
    }
    assert_source_admitted(barman(
        json!({"googleCredentials": {"gkeEnvironment": true}}),
    ));
    assert_source_admitted(barman(json!({"azureCredentials": {
        "connectionString": {"name": "azure", "key": "AZURE_CONNECTION_STRING"}}})));
}

#[test]
fn barman_destination_server_and_endpoint_are_checked() {
    for bad in [
        "backups",
        "s3://",
        "file:///var/backups",
        "https://account.blob.core.windows.net",
    ] {
        assert_source_rejected(
            barman(json!({"destinationPath": bad})),
            "source.barmanCloud.destinationPath must be s3://",
        );
    }
    for bad in ["a/b", "..", ".x", "a b"] {
        assert_source_rejected(
            barman(json!({"serverName": bad})),
            "source.barmanCloud.serverName must be letters",
        );
    }
    for bad in ["minio:9000", "http://", "ftp://minio"] {
        assert_source_rejected(
            barman(json!({"endpointURL": bad})),
            "source.barmanCloud.endpointURL must be an http",
        );
    }
    assert_source_rejected(
        barman(json!({"s3Credentials": {"inheritFromIAMRole": true},
                      "googleCredentials": {"gkeEnvironment": true}})),
        "source.barmanCloud sets at most one of s3Credentials, azureCredentials, googleCredentials",
    );
    // serverName has no default here: CNPG's is the Cluster's name, which pgro cannot know.
    let s = schema::<PostgresPhysicalReplica>();
    let b = &s["properties"]["spec"]["properties"]["source"]["properties"]["barmanCloud"];
    assert_eq!(b["required"], json!(["destinationPath", "serverName"]));
}

fn restic(fields: Value) -> Value {
    let mut base = json!({"repository": "s3:http://minio:9000/kubestash/demo/postgres/repository/v1/frequent-backup/dump",
        "secretRef": {"name": "s3-secret"}});
    if let (Some(base), Some(extra)) = (base.as_object_mut(), fields.as_object()) {
        base.extend(extra.clone());
    }
    json!({"source": {"restic": base}})
}

#[test]
fn kubestash_restic_source_is_admitted_with_restics_url_forms() {
    let ks: Value =
        serde_yaml::from_str(include_str!("fixtures/replica-restic.yaml")).expect("yaml");
    let errors = rejections(&schema::<PostgresPhysicalReplica>(), &ks, None);
    assert!(errors.is_empty(), "{errors:?}");
    for url in [
        "s3:https://s3.eu-west-1.amazonaws.com/bucket/demo/postgres",
        "s3:s3.amazonaws.com/bucket/demo",
        "s3:minio.example:9000/bucket",
        "gs:bucket:/demo/postgres/repository/v1/s/dump",
        "azure:container:/demo/postgres",
    ] {
        assert_source_admitted(restic(json!({"repository": url})));
    }
    assert_source_admitted(restic(json!({"fileName": "dir/dump.sql"})));
}

#[test]
fn restic_repository_file_name_and_secret_are_checked() {
    for bad in [
        "/srv/restic",
        "local:/srv/restic",
        "sftp:user@host:/srv",
        "rest:http://host:8000/",
        "s3:http://minio:9000",
        "gs:bucket",
        "b2:bucket:path",
    ] {
        assert_source_rejected(
            restic(json!({"repository": bad})),
            "source.restic.repository must be a restic repository URL",
        );
    }
    for bad in ["../etc/passwd", "a/../../b", "/"] {
        assert_source_rejected(
            restic(json!({"fileName": bad})),
            "source.restic.fileName must be a path inside the snapshot",
        );
    }
    let s = schema::<PostgresPhysicalReplica>();
    let r = &s["properties"]["spec"]["properties"]["source"]["properties"]["restic"];
    assert_eq!(r["required"], json!(["repository", "secretRef"]));
    assert_eq!(
        r["properties"]["fileName"]["default"],
        json!("dumpfile.sql")
    );
    assert_eq!(r["properties"]["failOnErrors"]["default"], json!(true));
}

#[test]
fn verification_check_names_are_dns_labels_and_timeouts_durations() {
    let check = |name: &str, timeout: &str| {
        json!({"verification": {"checks": [
            {"name": name, "database": "shop", "sql": "SELECT true", "timeout": timeout}
        ], "amcheck": {"heapallindexed": true, "timeout": "1h"}}, "historyLimit": 20})
    };
    assert_admitted(check("orders-present", "30s"));
    assert_rejected(check("Orders_Present", "30s"), "name must be a DNS label");
    assert_rejected(check("-x", "30s"), "name must be a DNS label");
    assert_rejected(check("orders", "soon"), "timeout must be a duration");
    assert_rejected(
        json!({"verification": {"amcheck": {"timeout": "1 month"}}}),
        "amcheck.timeout must be a duration",
    );
}
