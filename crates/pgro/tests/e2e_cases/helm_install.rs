//! Issue 17: the operator installed with `helm install` (release `analytics` in its own namespace, so every
//! name the chart derives from the release is exercised) instead of `deploy/operator.yaml`: it takes the
//! Lease in its namespace, reads its settings ConfigMap, and a replica reaches `Ready`; `helm uninstall`
//! removes the operator and its cluster-wide RBAC but keeps the CRDs and the user's replicas.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams};
use pgro_api::PostgresPhysicalReplica;
use pgro_testkit::helm::{Helm, chart_dir};
use pgro_testkit::skip_unless_ci;

use crate::e2e_support::*;
use crate::{READY_TIMEOUT, SERIAL, spec};

const RELEASE: &str = "analytics";
const RELEASE_NS: &str = "pgro-helm";

async fn delete_if_present<K>(api: Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => panic!("deleting {name}: {e}"),
    }
}

/// Removes what `deploy/operator.yaml` installed (not its Namespace): one operator per cluster.
async fn remove_manifest_operator(client: &Client) {
    let ns = |c: &Client| c.clone();
    delete_if_present(
        Api::<Deployment>::namespaced(ns(client), OPERATOR_NS),
        "pgro-operator",
    )
    .await;
    delete_if_present(
        Api::<ServiceAccount>::namespaced(ns(client), OPERATOR_NS),
        "pgro",
    )
    .await;
    delete_if_present(
        Api::<ConfigMap>::namespaced(ns(client), OPERATOR_NS),
        "pgro-config",
    )
    .await;
    delete_if_present(
        Api::<Service>::namespaced(ns(client), OPERATOR_NS),
        "pgro-metrics",
    )
    .await;
    delete_if_present(
        Api::<Role>::namespaced(ns(client), OPERATOR_NS),
        "pgro-operator",
    )
    .await;
    delete_if_present(
        Api::<RoleBinding>::namespaced(ns(client), OPERATOR_NS),
        "pgro-operator",
    )
    .await;
    delete_if_present(Api::<ClusterRole>::all(ns(client)), "pgro-operator").await;
    delete_if_present(Api::<ClusterRoleBinding>::all(ns(client)), "pgro-operator").await;
    pgro_testkit::eventually(
        "the manifest's operator pods gone",
        Duration::from_secs(120),
        || async { Ok(operator_pods(client).await.is_empty().then_some(())) },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn helm_install_runs_the_operator_and_uninstall_keeps_crds_and_replicas() {
    let Some(w) = world("helm_install").await else {
        return;
    };
    let Some(helm) = skip_unless_ci(Helm::find(w.env.components()), "helm_install") else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let client = w.client();
    let kubeconfig = w.env.control_plane().kubeconfig_path();
    remove_manifest_operator(&client).await;

    // The e2e settings, as a user would pass theirs: a values file.
    let mut values = String::from("settings:\n  maxConcurrentRestores: \"2\"\n");
    values.push_str("  postgresImageTemplate: \"postgres:{major}\"\n");
    for (k, v) in TEST_SETTINGS {
        values.push_str(&format!("  {k}: \"{v}\"\n"));
    }
    let values_file = w.root.path().join("helm-values.yaml");
    std::fs::write(&values_file, values).unwrap();
    let chart = chart_dir();
    helm.run(
        &[
            "install",
            RELEASE,
            chart.to_str().unwrap(),
            "--namespace",
            RELEASE_NS,
            "--create-namespace",
            "-f",
            values_file.to_str().unwrap(),
        ],
        Some(kubeconfig),
    )
    .unwrap()
    .assert_success();
    wait_operator_ready_in(&client, RELEASE_NS, 1).await;
    let cm: ConfigMap = Api::namespaced(client.clone(), RELEASE_NS)
        .get("analytics-pgro-config")
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap()["readyTimeout"], "5m");

    // It does the job.
    let ns = w.env.namespace().await.unwrap();
    let repo = w.repo(ns.name());
    w.kopia_secret(&ns, "kopia-credentials", &repo).await;
    repo.snap(&w.template, &["--tags", "area:postgres"]);
    create_replica(
        &ns,
        &replica_yaml("helm", &spec("postgres", "0 */6 * * *", "")),
    )
    .await;
    wait_replica(w, &ns, "helm", "Ready", READY_TIMEOUT, |r, _| {
        phase_is(r, "Ready")
    })
    .await;
    let lease: Lease = Api::namespaced(client.clone(), RELEASE_NS)
        .get("pgro-operator")
        .await
        .unwrap();
    let holder = lease.spec.unwrap().holder_identity.unwrap();
    assert!(
        holder.starts_with("analytics-pgro-operator-"),
        "the Lease in the release namespace is held by the chart's pod: {holder}"
    );

    // Uninstall: the operator and its cluster-wide RBAC go; CRDs (Helm never deletes crds/) and the
    // replica stay.
    helm.run(
        &["uninstall", RELEASE, "--namespace", RELEASE_NS],
        Some(kubeconfig),
    )
    .unwrap()
    .assert_success();
    let gone: Option<Deployment> = Api::namespaced(client.clone(), RELEASE_NS)
        .get_opt("analytics-pgro-operator")
        .await
        .unwrap();
    assert!(gone.is_none(), "the Deployment is uninstalled");
    let role: Option<ClusterRole> = Api::all(client.clone())
        .get_opt("analytics-pgro-operator")
        .await
        .unwrap();
    assert!(role.is_none(), "the ClusterRole is uninstalled");
    let kept: Option<PostgresPhysicalReplica> = ns.api().get_opt("helm").await.unwrap();
    assert!(kept.is_some(), "the CRDs and the replica stay");

    // The other tests run against the plain manifest again.
    install_operator(w.env, &[]).await;
    pgro_testkit::eventually(
        "the Helm release's pods gone",
        Duration::from_secs(120),
        || async {
            // Every pod, terminating ones included: the release leaves nothing behind.
            let pods: Api<Pod> = Api::namespaced(client.clone(), RELEASE_NS);
            Ok(pods
                .list(&ListParams::default())
                .await?
                .items
                .is_empty()
                .then_some(()))
        },
    )
    .await
    .unwrap();
    ns.delete().await.unwrap();
}
