//! Behaviour A3 through the real apiserver: the CRDs from deploy/crds.yaml install, and invalid
//! specs are rejected with the CEL messages of `pgro_api::validation`.

use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

fn replica(name: &str, extra: Value) -> DynamicObject {
    let mut spec =
        json!({"kopiaSecretRef": {"name": "kopia-credentials"}, "schedule": "0 */6 * * *"});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "pgro.bes.au/v1alpha1",
        "kind": "PostgresPhysicalReplica",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("dynamic object")
}

#[tokio::test]
async fn crds_install_and_the_apiserver_rejects_invalid_specs_with_the_cel_messages() {
    let test = "crds_install_and_the_apiserver_rejects_invalid_specs_with_the_cel_messages";
    let Some(env) = crate::common::env(test).await else {
        return;
    };
    env.crds().unwrap_or_else(|e| panic!("{e:#}"));
    let ns = env.namespace().await.expect("namespace");
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "pgro.bes.au",
        "v1alpha1",
        "PostgresPhysicalReplica",
    ));
    let api: Api<DynamicObject> = Api::namespaced_with(ns.client(), ns.name(), &resource);

    api.create(
        &PostParams::default(),
        &replica(
            "valid",
            json!({"scheduleJitter": "10m", "analyticsUsername": "analytics"}),
        ),
    )
    .await
    .expect("a valid replica is admitted");
    api.create(
        &PostParams::default(),
        &replica(
            "upper-scheme",
            json!({"notifications": [{"target": "webhook", "url": "HTTP://hooks.example.com/x"}]}),
        ),
    )
    .await
    .expect("a scheme in capitals is admitted");

    let graphql = json!({"notifications": [{"target": "graphQL", "url": "https://hooks.example.com/graphql"}]});
    let cases = [
        (
            json!({"scheduleJitter": "ten minutes"}),
            "scheduleJitter must be a duration",
        ),
        (
            json!({"analyticsUsername": "Bad-Name"}),
            "analyticsUsername must be a valid unquoted PostgreSQL identifier",
        ),
        (
            graphql,
            "a graphQL notification requires mutation and variablesTemplate",
        ),
        (
            json!({"storageSizeMaximum": "lots"}),
            "storageSizeMaximum must be a positive quantity",
        ),
        (
            json!({"notifications": [{"target": "webhook", "url": "http://"}]}),
            "url must be an absolute http:// or https:// URL with a host",
        ),
    ];
    for (i, (spec, message)) in cases.into_iter().enumerate() {
        let error = api
            .create(
                &PostParams::default(),
                &replica(&format!("invalid-{i}"), spec.clone()),
            )
            .await
            .expect_err(&format!("{spec} must be rejected"));
        match error {
            kube::Error::Api(status) => {
                assert_eq!(status.code, 422, "{spec}: {status:?}");
                assert!(
                    status.message.contains(message),
                    "{spec}: expected {message:?} in {:?}",
                    status.message
                );
            }
            other => panic!("{spec}: unexpected error {other}"),
        }
    }
}
