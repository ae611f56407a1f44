//! Jobs run by the controller-manager's Job controller on the process kubelet.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{ListParams, PostParams};

use crate::common::{from_yaml, job_condition};

#[tokio::test]
async fn job_writing_to_a_claim_completes_and_the_file_is_in_the_claim_directory() {
    let test = "job_writing_to_a_claim_completes_and_the_file_is_in_the_claim_directory";
    let Some(env) = crate::common::env(test).await else {
        return;
    };
    let ns = env.namespace().await.expect("namespace");
    let claim: PersistentVolumeClaim = from_yaml(
        "metadata: {name: data}\nspec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}",
    );
    ns.api::<PersistentVolumeClaim>()
        .create(&PostParams::default(), &claim)
        .await
        .expect("claim");
    let job: Job = from_yaml(
        r#"
metadata: {name: writer}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
      containers:
      - name: write
        image: debian:bookworm
        command: [sh, -c, 'echo restored > /data/result.txt']
        volumeMounts: [{name: data, mountPath: /data}]
"#,
    );
    let jobs = ns.api::<Job>();
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("create job");
    job_condition(&jobs, "writer", "Complete", Duration::from_secs(90)).await;
    let client = ns.client();
    let dir = env
        .kubelet()
        .claim_dir(&client, ns.name(), "data")
        .await
        .expect("claim directory");
    let content =
        std::fs::read_to_string(dir.join("result.txt")).expect("file in the claim directory");
    assert_eq!(content, "restored\n");
}

#[tokio::test]
async fn failing_job_fails_after_its_backoff_limit() {
    let Some(env) = crate::common::env("failing_job_fails_after_its_backoff_limit").await else {
        return;
    };
    let ns = env.namespace().await.expect("namespace");
    let job: Job = from_yaml(
        r#"
metadata: {name: failing}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: fail, image: debian:bookworm, command: [sh, -c, 'echo failing; exit 2']}
"#,
    );
    let jobs = ns.api::<Job>();
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("create job");
    let failed = job_condition(&jobs, "failing", "Failed", Duration::from_secs(120)).await;
    assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
    let pods = ns
        .api::<Pod>()
        .list(&ListParams::default().labels("job-name=failing"))
        .await
        .expect("pods");
    assert_eq!(pods.items.len(), 2, "backoffLimit 1 means two attempts");
    for pod in pods.items {
        let status = pod.status.expect("status");
        assert_eq!(status.phase.as_deref(), Some("Failed"));
        let code = status.container_statuses.expect("statuses")[0]
            .state
            .clone()
            .and_then(|s| s.terminated)
            .map(|t| t.exit_code);
        assert_eq!(code, Some(2));
    }
}

#[tokio::test]
async fn job_active_deadline_produces_deadline_exceeded() {
    let Some(env) = crate::common::env("job_active_deadline_produces_deadline_exceeded").await
    else {
        return;
    };
    let ns = env.namespace().await.expect("namespace");
    let job: Job = from_yaml(
        r#"
metadata: {name: slow}
spec:
  activeDeadlineSeconds: 3
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 2
      containers:
      - {name: slow, image: debian:bookworm, command: [sleep, '600']}
"#,
    );
    let jobs = ns.api::<Job>();
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("create job");
    let failed = job_condition(&jobs, "slow", "Failed", Duration::from_secs(60)).await;
    assert_eq!(failed.reason.as_deref(), Some("DeadlineExceeded"));
}
