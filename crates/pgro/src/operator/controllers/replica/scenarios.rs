//! The replica controller against a scripted apiserver (style H14 b): the order of a switchover's writes,
//! the live readiness read before the Service moves, and what a missing Kopia Secret leaves behind.

use http::Method;
use jiff::SignedDuration;
use k8s_openapi::ByteString;
use serde_json::{Value, json};

use super::*;
use crate::operator::testing::{ApiServerVerifier, list, merged, respond, run_scenario};

const NS: &str = "/namespaces/ns";
const REPLICA: &str = "/apis/pgro.bes.au/v1alpha1/namespaces/ns/postgresphysicalreplicas/test";
const RESTORES: &str = "/apis/pgro.bes.au/v1alpha1/namespaces/ns/postgresphysicalrestores";
const OLD: &str = "test-20261121-040000";
const NEW: &str = "test-20261121-100000";

fn ago(hours: i64) -> String {
    (Timestamp::now() - SignedDuration::from_hours(hours))
        .round(jiff::Unit::Second)
        .expect("round")
        .to_string()
}

fn replica_json(status: Value) -> Value {
    json!({
        "apiVersion": "pgro.bes.au/v1alpha1", "kind": "PostgresPhysicalReplica",
        "metadata": {"name": "test", "namespace": "ns", "uid": "p-uid", "generation": 3, "resourceVersion": "7",
            "creationTimestamp": ago(48)},
        "spec": {"kopiaSecretRef": {"name": "kopia-credentials"}, "schedule": "0 */6 * * *",
            "switchoverGracePeriod": "5m"},
        "status": status
    })
}

fn replica(status: Value) -> Arc<PostgresPhysicalReplica> {
    Arc::new(serde_json::from_value(replica_json(status)).expect("replica"))
}

fn ready_condition() -> Value {
    json!({"type": "Ready", "status": "True", "reason": "PostgresReady",
        "message": "PostgreSQL accepts connections", "lastTransitionTime": ago(1)})
}

fn restore_json(name: &str, created: &str, status: &Value) -> Value {
    json!({
        "apiVersion": "pgro.bes.au/v1alpha1", "kind": "PostgresPhysicalRestore",
        "metadata": {"name": name, "namespace": "ns", "uid": format!("{name}-uid"), "generation": 1,
            "resourceVersion": "40", "creationTimestamp": created,
            "labels": {"pgro.bes.au/replica": "test", "pgro.bes.au/restore": name},
            "ownerReferences": [{"apiVersion": "pgro.bes.au/v1alpha1", "kind": "PostgresPhysicalReplica",
                "name": "test", "uid": "p-uid", "controller": true}]},
        "spec": {"replica": {"name": "test"}, "snapshot": format!("snap-{name}"), "snapshotSize": "1000",
            "storageSize": "1Mi"},
        "status": status
    })
}

fn old_active() -> Value {
    restore_json(
        OLD,
        &ago(7),
        &json!({"phase": "Active", "activatedAt": ago(6), "postgresVersion": "16",
            "conditions": [ready_condition()]}),
    )
}

fn new_ready(phase: &str) -> Value {
    restore_json(
        NEW,
        &ago(1),
        &json!({"phase": phase, "postgresVersion": "16", "conditions": [ready_condition()]}),
    )
}

fn secret(name: &str, data: &[(&str, &str)]) -> Value {
    let s = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    };
    let mut v = serde_json::to_value(s).expect("secret");
    v["apiVersion"] = "v1".into();
    v["kind"] = "Secret".into();
    v
}

/// The reads every pass starts with: the replica's Secrets (R2), its restores, the Kopia Secret (R1) and
/// the schema migration Job. The Kopia Secret names a filesystem repository that does not exist, so
/// discovery fails without any network (the switchover does not depend on it).
async fn opening_reads(api: &mut ApiServerVerifier, restores: Vec<Value>, kopia: Option<Value>) {
    replica_reads(api, restores).await;
    match kopia {
        Some(s) => {
            api.answer(
                Method::GET,
                &format!("/api/v1{NS}/secrets/kopia-credentials"),
                200,
                &s,
            )
            .await;
        }
        None => {
            api.not_found(&format!("/api/v1{NS}/secrets/kopia-credentials"))
                .await;
        }
    }
    // No persistent schemas: no schema-migration Job is looked for.
}

/// The replica's own Secrets (R2) and its restores.
async fn replica_reads(api: &mut ApiServerVerifier, restores: Vec<Value>) {
    api.answer(
        Method::GET,
        &format!("/api/v1{NS}/secrets/test-creds"),
        200,
        &secret(
            "test-creds",
            &[("username", "analytics"), ("password", "x")],
        ),
    )
    .await;
    api.answer(
        Method::GET,
        &format!("/api/v1{NS}/secrets/test-admin"),
        200,
        &secret(
            "test-admin",
            &[("username", "pgro_admin"), ("password", "y")],
        ),
    )
    .await;
    // TLS (+): a current certificate and the CA Secret that matches it: nothing to write.
    let issued = crate::operator::certificates::issue_all(
        "test",
        "ns",
        &crate::operator::certificates::server_names("test", "ns", "cluster.local"),
        jiff::Timestamp::now(),
    )
    .expect("certificates");
    api.answer(
        Method::GET,
        &format!("/api/v1{NS}/secrets/test-tls"),
        200,
        &secret(
            "test-tls",
            &[
                ("tls.crt", &issued.tls_crt),
                ("tls.key", &issued.tls_key),
                ("ca.crt", &issued.ca_crt),
                ("ca.key", &issued.ca_key),
            ],
        ),
    )
    .await;
    api.answer(
        Method::GET,
        &format!("/api/v1{NS}/secrets/test-ca"),
        200,
        &secret("test-ca", &[("ca.crt", &issued.ca_crt)]),
    )
    .await;
    let listed = api
        .answer(
            Method::GET,
            RESTORES,
            200,
            &list(
                "pgro.bes.au/v1alpha1",
                "PostgresPhysicalRestoreList",
                restores,
            ),
        )
        .await;
    assert!(listed.has_query("labelSelector", "pgro.bes.au/replica=test"));
}

fn missing_repository() -> Value {
    secret(
        "kopia-credentials",
        &[
            ("storage", "filesystem"),
            ("path", "/nonexistent/pgro-scenario-repository"),
            ("repositoryPassword", "pw"),
        ],
    )
}

/// Expects a restore's status to be re-read and written with `phase`; returns the written status.
async fn phase_write(api: &mut ApiServerVerifier, current: &Value, phase: &str) -> Value {
    let name = current["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    api.answer(Method::GET, &format!("{RESTORES}/{name}"), 200, current)
        .await;
    let (call, send) = api
        .expect(Method::PATCH, &format!("{RESTORES}/{name}/status"))
        .await;
    assert_eq!(call.body["metadata"]["resourceVersion"], "40");
    assert_eq!(call.body["status"]["phase"], phase, "{name}");
    let updated = merged(current, &call.body);
    send.send_response(respond(200, &updated));
    updated
}

/// The live read of the new restore's Deployment just before the Service would move to it.
async fn new_pod_ready(api: &mut ApiServerVerifier, ready_replicas: i32) {
    api.answer(
        Method::GET,
        &format!("/apis/apps/v1{NS}/deployments/{NEW}"),
        200,
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": NEW},
            "status": {"readyReplicas": ready_replicas}}),
    )
    .await;
}

async fn stable_service(api: &mut ApiServerVerifier) -> Value {
    let call = api
        .echo(Method::PATCH, &format!("/api/v1{NS}/services/test"))
        .await;
    assert!(call.has_query("fieldManager", "pgro.bes.au/operator"));
    call.body["spec"]["selector"].clone()
}

/// Behaviour R9: mark the new restore `Switching`, read its pod's readiness live, move the Service, demote
/// the old restore, promote the new one, then write the replica's status and its `RestoreCompleted` event.
/// A crash between any two writes leaves a state the next pass finishes (the plan's tests and the
/// disruptive e2e test cover that side).
#[tokio::test]
async fn switchover_writes_happen_in_the_crash_safe_order() {
    let (ctx, mut api) = Context::test();
    let obj = replica(json!({"phase": "Ready", "currentRestore": OLD}));
    let script = async move {
        opening_reads(
            &mut api,
            vec![old_active(), new_ready("Ready")],
            Some(missing_repository()),
        )
        .await;
        let switching = phase_write(&mut api, &new_ready("Ready"), "Switching").await;
        new_pod_ready(&mut api, 1).await;
        let selector = stable_service(&mut api).await;
        assert_eq!(selector["pgro.bes.au/restore"], NEW);
        let demoted = phase_write(&mut api, &old_active(), "Ready").await;
        // The outgoing restore keeps when it served: the grace period counts from its successor.
        assert_eq!(
            demoted["status"]["activatedAt"],
            old_active()["status"]["activatedAt"]
        );
        let promoted = phase_write(&mut api, &switching, "Active").await;
        assert!(promoted["status"]["activatedAt"].is_string());
        assert_eq!(stable_service(&mut api).await["pgro.bes.au/restore"], NEW);
        let status = api
            .answer(
                Method::PATCH,
                &format!("{REPLICA}/status"),
                200,
                &replica_json(json!({})),
            )
            .await;
        assert_eq!(status.body["metadata"]["resourceVersion"], "7");
        let s = &status.body["status"];
        assert_eq!(s["currentRestore"], NEW);
        assert_eq!(s["previousRestore"], OLD);
        assert_eq!(s["consecutiveRestoreFailures"], 0);
        let reasons = api.events().await;
        assert!(
            reasons.contains(&"RestoreCompleted".to_owned()),
            "{reasons:?}"
        );
    };
    run_scenario(script, reconcile(obj, ctx))
        .await
        .expect("reconcile");
}

/// Behaviour R9: the Service never moves to a pod that is not ready at the moment of the switch, even when
/// the restore's status still says it is; the pass stops and looks again shortly.
#[tokio::test]
async fn service_stays_when_the_new_pod_is_not_ready_right_now() {
    let (ctx, mut api) = Context::test();
    let obj = replica(json!({"phase": "Ready", "currentRestore": OLD}));
    let script = async move {
        opening_reads(
            &mut api,
            vec![old_active(), new_ready("Switching")],
            Some(missing_repository()),
        )
        .await;
        new_pod_ready(&mut api, 0).await;
        api.done().await;
    };
    let action = run_scenario(script, reconcile(obj, ctx))
        .await
        .expect("reconcile");
    assert_eq!(action, KubeAction::requeue(Duration::from_secs(5)));
}

/// Behaviour R1: a missing Kopia Secret creates no restore and no child; the Service keeps selecting
/// nothing, the condition says which Secret is missing, and a warning event is recorded.
#[tokio::test]
async fn missing_kopia_secret_is_a_condition_and_creates_nothing() {
    let (ctx, mut api) = Context::test();
    let obj = replica(json!({}));
    let script = async move {
        opening_reads(&mut api, vec![], None).await;
        let selector = stable_service(&mut api).await;
        assert_eq!(selector["pgro.bes.au/restore"], "none");
        let status = api
            .answer(
                Method::PATCH,
                &format!("{REPLICA}/status"),
                200,
                &replica_json(json!({})),
            )
            .await;
        let valid = status.body["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "KopiaSecretValid"))
            .expect("KopiaSecretValid")
            .clone();
        assert_eq!(valid["status"], "False");
        assert_eq!(valid["reason"], "SecretNotFound");
        assert_eq!(
            valid["message"],
            "Secret kopia-credentials not found in namespace ns"
        );
        assert!(status.body["status"]["currentRestore"].is_null());
        api.events().await;
    };
    run_scenario(script, reconcile(obj, ctx))
        .await
        .expect("reconcile");
}

/// A pgBackRest repository on a volume, which the operator cannot list yet: no Secret is read and nothing
/// is created; the Service selects nothing and `SourceValid` says why.
#[tokio::test]
async fn pgbackrest_volume_source_is_unsupported_and_creates_nothing() {
    let (ctx, mut api) = Context::test();
    let mut spec = replica_json(json!({}));
    spec["spec"] = json!({"source": {"pgbackrest": {"volume": {"claimName": "repo1"}}},
        "schedule": "0 */6 * * *"});
    let obj = Arc::new(serde_json::from_value(spec).expect("replica"));
    let script = async move {
        replica_reads(&mut api, vec![]).await;
        let selector = stable_service(&mut api).await;
        assert_eq!(selector["pgro.bes.au/restore"], "none");
        let status = api
            .answer(
                Method::PATCH,
                &format!("{REPLICA}/status"),
                200,
                &replica_json(json!({})),
            )
            .await;
        let conditions = status.body["status"]["conditions"]
            .as_array()
            .expect("conditions")
            .clone();
        let valid = conditions
            .iter()
            .find(|c| c["type"] == "SourceValid")
            .expect("SourceValid");
        assert_eq!(
            (&valid["status"], &valid["reason"]),
            (&json!("False"), &json!("UnsupportedRepository"))
        );
        assert!(
            valid["message"]
                .as_str()
                .is_some_and(|m| m.contains("on a volume is not read by the operator yet"))
        );
        assert!(!conditions.iter().any(|c| c["type"] == "KopiaSecretValid"));
        assert!(status.body["status"]["currentRestore"].is_null());
        api.events().await;
    };
    run_scenario(script, reconcile(obj, ctx))
        .await
        .expect("reconcile");
}
