//! Issue 17 (PodSecurity): every pod pgro creates — the restore Job's and PostgreSQL's — is admitted in a
//! namespace that enforces the `restricted` Pod Security Standard, on the real apiserver (whose
//! PodSecurity admission is on by default; a privileged pod is refused there, which the test checks first).

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};

use crate::e2e_support::*;
use crate::{READY_TIMEOUT, quick_start};

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_reaches_ready_in_a_restricted_pod_security_namespace() {
    let Some(w) = world("a_replica_reaches_ready_in_a_restricted_namespace").await else {
        return;
    };
    let ns = w.env.namespace().await.unwrap();
    let namespaces: Api<Namespace> = Api::all(w.client());
    namespaces
        .patch(
            ns.name(),
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"metadata": {"labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            }}})),
        )
        .await
        .unwrap();
    // Enforcement is live: a pod that escalates is refused.
    let privileged: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "privileged"},
        "spec": {"containers": [{"name": "c", "image": "busybox",
                  "securityContext": {"privileged": true}}]}
    }))
    .unwrap();
    let refused = ns
        .api::<Pod>()
        .create(&PostParams::default(), &privileged)
        .await
        .expect_err("a privileged pod is refused");
    assert!(refused.to_string().contains("PodSecurity"), "{refused}");

    let repo = w.repo(ns.name());
    w.kopia_secret(&ns, "kopia-credentials", &repo).await;
    repo.snap(&w.template, &["--tags", "area:postgres"]);
    create_replica(&ns, &replica_yaml("psa", &quick_start(""))).await;
    let r = wait_replica(w, &ns, "psa", "Ready", READY_TIMEOUT, |r, _| {
        phase_is(r, "Ready")
    })
    .await;
    let active = current(&r).unwrap();
    assert_eq!(restore_pod_ips(&ns, &active).await.len(), 1);
    let (user, password) = analytics_credentials(&ns, "psa").await;
    let (c, _fwd) = connect_service(w, &ns, "psa", &user, &password)
        .await
        .expect("the analytics user connects");
    assert_eq!(checksum(&c).await, w.items);
    ns.delete().await.unwrap();
}
