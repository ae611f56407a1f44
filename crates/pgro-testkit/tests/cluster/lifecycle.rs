//! Ownership and garbage collection with the controller-manager and the process kubelet.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PostParams};

use crate::common::{from_yaml, pod_in_phase};

#[tokio::test]
async fn deleting_a_deployment_garbage_collects_its_replica_set_and_stops_its_pods() {
    let test = "deleting_a_deployment_garbage_collects_its_replica_set_and_stops_its_pods";
    let Some(env) = crate::common::env(test).await else {
        return;
    };
    let ns = env.namespace().await.expect("namespace");
    let deployment: Deployment = from_yaml(
        r#"
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - {name: main, image: debian:bookworm, command: [sleep, '600']}
"#,
    );
    ns.api::<Deployment>()
        .create(&PostParams::default(), &deployment)
        .await
        .expect("deployment");
    let pods = ns.api::<Pod>();
    let running = pgro_testkit::eventually("two running pods", Duration::from_secs(60), || async {
        let list = pods.list(&ListParams::default().labels("app=web")).await?;
        let running: Vec<String> = list
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect();
        Ok((running.len() == 2).then_some(running))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    pod_in_phase(&pods, &running[0], "Running", Duration::from_secs(5)).await;
    let pids: Vec<u32> = running
        .iter()
        .flat_map(|p| env.kubelet().container_pids(ns.name(), p))
        .collect();
    assert_eq!(pids.len(), 2);

    ns.api::<Deployment>()
        .delete("web", &DeleteParams::background())
        .await
        .expect("delete deployment");
    let replica_sets = ns.api::<ReplicaSet>();
    pgro_testkit::eventually(
        "replica set and pods collected",
        Duration::from_secs(60),
        || async {
            let sets = replica_sets.list(&ListParams::default()).await?.items.len();
            let left = pods
                .list(&ListParams::default().labels("app=web"))
                .await?
                .items
                .len();
            Ok((sets == 0 && left == 0).then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} of a collected pod still runs"
        );
    }
}
