//! Helpers shared by the cluster tests.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use serde::de::DeserializeOwned;

/// The shared environment, with `/usr/bin/printenv` standing in for the pgro binary (the `pgro` image
/// mapping is tested without building pgro here).
pub(crate) async fn env(test: &str) -> Option<&'static pgro_testkit::TestEnv> {
    pgro_testkit::use_pgro_binary("/usr/bin/printenv");
    pgro_testkit::env_or_skip(test).await
}

/// Parses a YAML manifest into a typed object (tests keep manifests readable as YAML).
pub(crate) fn from_yaml<T: DeserializeOwned>(yaml: &str) -> T {
    let value: serde_json::Value = serde_yaml::from_str(yaml).expect("valid YAML");
    serde_json::from_value(value).expect("manifest matches the type")
}

/// Waits until the pod's phase is `phase`.
pub(crate) async fn pod_in_phase(
    pods: &Api<Pod>,
    name: &str,
    phase: &str,
    timeout: Duration,
) -> Pod {
    pgro_testkit::eventually(&format!("pod {name} in phase {phase}"), timeout, || async {
        let pod = pods.get(name).await?;
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        let finished_elsewhere =
            (current == "Failed" || current == "Succeeded") && current != phase;
        anyhow::ensure!(
            !finished_elsewhere,
            "pod {name} ended in {current}: {:?}",
            pod.status
        );
        if current == phase {
            return Ok(Some(pod));
        }
        anyhow::bail!("phase {current:?}, status {:?}", pod.status)
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"))
}

/// Waits until the Job has condition `type_` = True and returns it.
pub(crate) async fn job_condition(
    jobs: &Api<k8s_openapi::api::batch::v1::Job>,
    name: &str,
    type_: &str,
    timeout: Duration,
) -> k8s_openapi::api::batch::v1::JobCondition {
    pgro_testkit::eventually(
        &format!("job {name} condition {type_}"),
        timeout,
        || async {
            let job = jobs.get(name).await?;
            let conditions = job
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default();
            Ok(conditions
                .into_iter()
                .find(|c| c.type_ == type_ && c.status == "True"))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"))
}
