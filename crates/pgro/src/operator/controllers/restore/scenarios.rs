//! The restore controller against a scripted apiserver (style H14 b): which requests a reconcile makes, in
//! which order, with which bodies.

use http::Method;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::*;
use crate::operator::controllers::error_policy;
use crate::operator::error::ErrorClass;
use crate::operator::testing::{ApiServerVerifier, list, merged, respond, run_scenario, status};

const NS: &str = "/namespaces/ns";
const RESTORES: &str = "/apis/pgro.bes.au/v1alpha1/namespaces/ns/postgresphysicalrestores";
const NAME: &str = "test-20261121-101500";
const REPLICA: &str = "/apis/pgro.bes.au/v1alpha1/namespaces/ns/postgresphysicalreplicas/test";

fn replica_json() -> Value {
    json!({
        "apiVersion": "pgro.bes.au/v1alpha1", "kind": "PostgresPhysicalReplica",
        "metadata": {"name": "test", "namespace": "ns", "uid": "p-uid", "generation": 3, "resourceVersion": "7"},
        "spec": {"kopiaSecretRef": {"name": "kopia-credentials"}, "schedule": "0 */6 * * *"}
    })
}

/// Every pass starts by reading the restore's replica.
async fn read_replica(api: &mut ApiServerVerifier) {
    api.answer(Method::GET, REPLICA, 200, &replica_json()).await;
}

/// A new restore's children, read in this order, none there yet.
async fn children_absent(api: &mut ApiServerVerifier) {
    for path in [
        format!("/api/v1{NS}/persistentvolumeclaims/{NAME}-data"),
        format!("/apis/batch/v1{NS}/jobs/{NAME}-restore"),
        format!("/apis/apps/v1{NS}/deployments/{NAME}"),
        format!("/api/v1{NS}/services/{NAME}"),
    ] {
        api.not_found(&path).await;
    }
}

fn restore_json(status: Value) -> Value {
    json!({
        "apiVersion": "pgro.bes.au/v1alpha1", "kind": "PostgresPhysicalRestore",
        "metadata": {
            "name": NAME, "namespace": "ns", "uid": "r-uid", "generation": 1, "resourceVersion": "41",
            "creationTimestamp": "2026-11-21T10:15:00Z",
            "labels": {"pgro.bes.au/replica": "test", "pgro.bes.au/restore": NAME},
            "ownerReferences": [{"apiVersion": "pgro.bes.au/v1alpha1", "kind": "PostgresPhysicalReplica",
                "name": "test", "uid": "p-uid", "controller": true}]
        },
        "spec": {"replica": {"name": "test"}, "snapshot": "k1", "snapshotSize": "1000", "storageSize": "1Mi"},
        "status": status
    })
}

fn restore(status: Value) -> Arc<PostgresPhysicalRestore> {
    Arc::new(serde_json::from_value(restore_json(status)).expect("restore"))
}

fn owned_by_the_restore(body: &Value) -> bool {
    body["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|o| {
            o.iter()
                .any(|r| r["uid"] == "r-uid" && r["controller"] == true)
        })
        && body["metadata"]["labels"]["pgro.bes.au/restore"] == NAME
        && body["metadata"]["labels"]["pgro.bes.au/replica"] == "test"
}

/// Behaviour S1/S2: a new restore reads its children, creates the claim and the Job (owned, labelled), and
/// writes one status with its resourceVersion as precondition.
#[tokio::test]
async fn new_restore_creates_claim_and_job_then_writes_its_status_once() {
    let (ctx, mut api) = Context::test();
    let obj = restore(Value::Null);
    let script = async move {
        read_replica(&mut api).await;
        children_absent(&mut api).await;
        let pvc = api
            .echo(Method::POST, &format!("/api/v1{NS}/persistentvolumeclaims"))
            .await;
        assert_eq!(pvc.body["metadata"]["name"], format!("{NAME}-data"));
        assert!(owned_by_the_restore(&pvc.body), "{}", pvc.body);
        assert_eq!(pvc.body["spec"]["resources"]["requests"]["storage"], "1Mi");
        let job = api
            .echo(Method::POST, &format!("/apis/batch/v1{NS}/jobs"))
            .await;
        assert_eq!(job.body["metadata"]["name"], format!("{NAME}-restore"));
        assert!(owned_by_the_restore(&job.body), "{}", job.body);
        let container = &job.body["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["name"], "restore");
        assert_eq!(container["args"][0], "restore");
        // Secrets arrive as environment from the Secret, never in the Job's text.
        assert!(!job.body.to_string().contains("repositoryPassword\":\""));
        let (status, send) = api
            .expect(Method::PATCH, &format!("{RESTORES}/{NAME}/status"))
            .await;
        assert!(status.has_query("fieldManager", "pgro.bes.au/operator"));
        assert!(status.has_query("force", "true"));
        assert_eq!(status.body["metadata"]["resourceVersion"], "41");
        assert_eq!(status.body["status"]["phase"], "Pending");
        assert_eq!(status.body["status"]["pvc"], format!("{NAME}-data"));
        assert_eq!(status.body["status"]["restoreJob"]["phase"], "Pending");
        send.send_response(respond(
            200,
            &merged(&restore_json(Value::Null), &status.body),
        ));
        api.done().await;
    };
    let action = run_scenario(script, reconcile(obj, ctx))
        .await
        .expect("reconcile");
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
}

/// Behaviour S2/S4: a completed Job's termination report is read from its pod; PostgreSQL's Deployment and
/// the per-restore Service are applied server-side; the status records the result.
#[tokio::test]
async fn completed_job_starts_postgres_and_records_the_result() {
    let (ctx, mut api) = Context::test();
    let obj = restore(json!({"phase": "Restoring"}));
    // The reconcile reads the real clock: the Job finished a minute ago, well inside the ready timeout.
    let finished = (Timestamp::now() - jiff::SignedDuration::from_mins(1))
        .round(jiff::Unit::Second)
        .expect("round")
        .to_string();
    let report = json!({"postgresVersion": "16", "pgdata": "/pgdata/data", "pgdataInSnapshot": "",
        "bytes": 1000, "files": 10, "seconds": 1.5, "snapshot": "k1", "snapshotTime": "2026-11-21T10:00:00Z"});
    let script = async move {
        read_replica(&mut api).await;
        api.answer(
            Method::GET,
            &format!("/api/v1{NS}/persistentvolumeclaims/{NAME}-data"),
            200,
            &json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": format!("{NAME}-data")}}),
        )
        .await;
        api.answer(
            Method::GET,
            &format!("/apis/batch/v1{NS}/jobs/{NAME}-restore"),
            200,
            &json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": format!("{NAME}-restore")},
                "status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True",
                    "lastTransitionTime": finished}]}}),
        )
        .await;
        let pods = api.answer(
            Method::GET,
            &format!("/api/v1{NS}/pods"),
            200,
            &list("v1", "PodList", vec![json!({"metadata": {"name": "p1", "creationTimestamp": "2026-11-21T10:16:00Z"},
                "status": {"containerStatuses": [{"name": "restore", "image": "i", "imageID": "", "ready": false,
                    "restartCount": 0, "state": {"terminated": {"exitCode": 0, "message": report.to_string()}}}]}})]),
        )
        .await;
        assert!(pods.has_query(
            "labelSelector",
            &format!("batch.kubernetes.io/job-name={NAME}-restore")
        ));
        api.not_found(&format!("/apis/apps/v1{NS}/deployments/{NAME}"))
            .await;
        api.not_found(&format!("/api/v1{NS}/services/{NAME}")).await;
        let deployment = api
            .echo(
                Method::PATCH,
                &format!("/apis/apps/v1{NS}/deployments/{NAME}"),
            )
            .await;
        assert!(deployment.has_query("fieldManager", "pgro.bes.au/operator"));
        assert!(
            owned_by_the_restore(&deployment.body),
            "{}",
            deployment.body
        );
        let pod = &deployment.body["spec"]["template"]["spec"];
        assert_eq!(pod["initContainers"][0]["name"], "install-pgro");
        assert_eq!(pod["containers"][0]["image"], "postgres:16");
        assert!(
            pod["containers"][0]["args"]
                .to_string()
                .contains("instance")
        );
        let service = api
            .echo(Method::PATCH, &format!("/api/v1{NS}/services/{NAME}"))
            .await;
        assert_eq!(
            service.body["spec"]["selector"]["pgro.bes.au/restore"],
            NAME
        );
        let status = api
            .answer(
                Method::PATCH,
                &format!("{RESTORES}/{NAME}/status"),
                200,
                &restore_json(json!({"phase": "Restoring"})),
            )
            .await;
        let s = &status.body["status"];
        assert_eq!(s["phase"], "Restoring");
        assert_eq!(s["postgresVersion"], "16");
        assert_eq!(s["restoredAt"], finished);
        assert_eq!(s["restoreJob"]["phase"], "Succeeded");
        assert_eq!(s["deployment"], NAME);
        let restored = s["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Restored"))
            .expect("Restored condition");
        assert_eq!(restored["status"], "True");
        api.done().await;
    };
    run_scenario(script, reconcile(obj, ctx))
        .await
        .expect("reconcile");
}

/// Behaviour R8: a failed restore is terminal; its children are not even read and nothing is written.
#[tokio::test]
async fn failed_restore_is_read_once_and_never_written() {
    let (ctx, mut api) = Context::test();
    let obj = restore(json!({
        "phase": "Failed", "observedGeneration": 1, "createdAt": "2026-11-21T10:15:00Z",
        "pvc": format!("{NAME}-data"), "credentialsSecret": "test-creds"
    }));
    let script = async move {
        read_replica(&mut api).await;
        api.done().await;
    };
    run_scenario(script, reconcile(obj, ctx))
        .await
        .expect("reconcile");
}

/// An orphaned restore (replica gone) waits for the garbage collector.
#[tokio::test]
async fn orphaned_restore_waits_for_the_garbage_collector() {
    let (ctx, mut api) = Context::test();
    let script = async move {
        api.not_found(REPLICA).await;
        api.done().await;
    };
    let action = run_scenario(script, reconcile(restore(Value::Null), ctx))
        .await
        .expect("reconcile");
    assert_eq!(action, Action::await_change());
}

/// A status written from a stale view is refused (409) and retried at once with fresh state.
#[tokio::test]
async fn stale_status_write_is_a_conflict_retried_in_a_second() {
    let (ctx, mut api) = Context::test();
    let obj = restore(Value::Null);
    let policy_ctx = Arc::clone(&ctx);
    let script = async move {
        read_replica(&mut api).await;
        children_absent(&mut api).await;
        // Another writer created the children first: "already exists" is success.
        api.answer(
            Method::POST,
            &format!("/api/v1{NS}/persistentvolumeclaims"),
            409,
            &status(409, "AlreadyExists"),
        )
        .await;
        api.answer(
            Method::POST,
            &format!("/apis/batch/v1{NS}/jobs"),
            409,
            &status(409, "AlreadyExists"),
        )
        .await;
        api.answer(
            Method::PATCH,
            &format!("{RESTORES}/{NAME}/status"),
            409,
            &status(409, "Conflict"),
        )
        .await;
        api.done().await;
    };
    // The error policy runs while the script still listens: a conflict records no event.
    let pass = async {
        let err = reconcile(Arc::clone(&obj), ctx)
            .await
            .expect_err("a conflict fails the reconcile");
        let action = error_policy("restore", &obj, &err, &policy_ctx);
        (err, action)
    };
    let (err, action) = run_scenario(script, pass).await;
    assert_eq!(err.class(), ErrorClass::Transient);
    assert_eq!(action, Action::requeue(Duration::from_secs(1)));
}

/// Style H10: any other failure is retried by class and told on the object as a Warning event.
#[tokio::test]
async fn failed_reconcile_is_retried_and_told_in_a_warning_event() {
    let (ctx, mut api) = Context::test();
    let obj = restore(Value::Null);
    let policy_ctx = Arc::clone(&ctx);
    let script = async move {
        read_replica(&mut api).await;
        api.answer(
            Method::GET,
            &format!("/api/v1{NS}/persistentvolumeclaims/{NAME}-data"),
            500,
            &status(500, "InternalError"),
        )
        .await;
        let event = api
            .echo(Method::POST, "/apis/events.k8s.io/v1/namespaces/ns/events")
            .await;
        assert_eq!(event.body["type"], "Warning");
        assert_eq!(event.body["reason"], "ReconcileFailed");
        assert_eq!(event.body["regarding"]["kind"], "PostgresPhysicalRestore");
        assert_eq!(event.body["regarding"]["name"], NAME);
        let note = event.body["note"].as_str().expect("note");
        assert!(
            note.contains("the API server answered 500 InternalError: InternalError (scripted)")
                && note.ends_with("retrying in 10s")
                && !note.contains('{'),
            "{note}"
        );
        api.done().await;
    };
    let pass = async {
        let err = reconcile(Arc::clone(&obj), ctx)
            .await
            .expect_err("a server error fails the reconcile");
        error_policy("restore", &obj, &err, &policy_ctx)
    };
    let action = run_scenario(script, pass).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(10)));
}

/// Issue 16: a pass that would run the verification checks first writes the status it read, with its
/// resourceVersion as precondition. From a stale view (the checks already passed and the restore went on,
/// maybe to serving, but the watch has not shown it yet) that write is refused and nothing touches the
/// instance: no Service or Secret is read to connect, no check runs a second time against a live copy.
/// The stale view is exactly what the first pass wrote before its checks ran.
#[tokio::test]
async fn checks_never_run_from_a_stale_view() {
    let finished = (Timestamp::now() - jiff::SignedDuration::from_mins(1))
        .round(jiff::Unit::Second)
        .expect("round")
        .to_string();
    let before = json!({
        "phase": "Restoring", "observedGeneration": 1, "createdAt": "2026-11-21T10:15:00Z",
        "pvc": format!("{NAME}-data"), "deployment": NAME, "restoredAt": finished,
        "postgresVersion": "16", "instanceFixes": [],
        "restoreJob": {"name": format!("{NAME}-restore"), "phase": "Succeeded"}
    });
    // Pass 1: the instance is ready; the status says the checks run, then the checks look for the
    // instance (its Service has no address yet: they try again later).
    let (ctx, api) = Context::test();
    let ready_children = |mut api: ApiServerVerifier| async move {
        let mut replica = replica_json();
        replica["spec"]["verification"] = json!({"requireApplicationDatabase": true});
        api.answer(Method::GET, REPLICA, 200, &replica).await;
        api.answer(
            Method::GET,
            &format!("/api/v1{NS}/persistentvolumeclaims/{NAME}-data"),
            200,
            &json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": format!("{NAME}-data")}}),
        )
        .await;
        api.answer(
            Method::GET,
            &format!("/apis/apps/v1{NS}/deployments/{NAME}"),
            200,
            &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": NAME},
                "status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}}),
        )
        .await;
        api.answer(
            Method::GET,
            &format!("/api/v1{NS}/services/{NAME}"),
            200,
            &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": NAME}, "spec": {}}),
        )
        .await;
        api
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let script = async move {
        let mut api = ready_children(api).await;
        let (write, send) = api
            .expect(Method::PATCH, &format!("{RESTORES}/{NAME}/status"))
            .await;
        let written = write.body["status"].clone();
        assert_eq!(written["phase"], "Restoring");
        assert!(
            written["verification"]["startedAt"].is_string(),
            "{written}"
        );
        send.send_response(respond(
            200,
            &merged(&restore_json(Value::Null), &write.body),
        ));
        // The checks look for the instance's address.
        api.answer(
            Method::GET,
            &format!("/api/v1{NS}/services/{NAME}"),
            200,
            &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": NAME}, "spec": {}}),
        )
        .await;
        api.done().await;
        tx.send(written).expect("send");
    };
    run_scenario(script, reconcile(restore(before), ctx))
        .await
        .expect("pass 1");
    let written = rx.await.expect("the status pass 1 wrote");

    // Pass 2, from that same view (stale: the watch has not delivered what came after).
    let (ctx, api) = Context::test();
    let policy_ctx = Arc::clone(&ctx);
    let obj = restore(written);
    let script = async move {
        let mut api = ready_children(api).await;
        let (write, send) = api
            .expect(Method::PATCH, &format!("{RESTORES}/{NAME}/status"))
            .await;
        assert_eq!(write.body["metadata"]["resourceVersion"], "41");
        send.send_response(respond(409, &status(409, "Conflict")));
        api.done().await;
    };
    let pass = async {
        let err = reconcile(Arc::clone(&obj), ctx)
            .await
            .expect_err("the stale view ends in a conflict");
        error_policy("restore", &obj, &err, &policy_ctx)
    };
    let action = run_scenario(script, pass).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(1)));
}
