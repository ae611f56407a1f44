//! Pods on the process kubelet: commands, exit codes, logs, environment, volumes, users, deletion.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{DeleteParams, PostParams};

use crate::common::{from_yaml, pod_in_phase};

#[tokio::test]
async fn pod_command_exit_code_termination_message_and_logs_are_reported() {
    let Some(env) =
        crate::common::env("pod_command_exit_code_termination_message_and_logs_are_reported").await
    else {
        return;
    };
    let ns = env.namespace().await.expect("namespace");
    let pods = ns.api::<Pod>();
    let pod: Pod = from_yaml(
        r#"
metadata: {name: exits}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: debian:bookworm
    command: [sh, -c, 'echo hello; echo to-stderr >&2; printf bye > /dev/termination-log; exit 3']
"#,
    );
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    let pod = pod_in_phase(&pods, "exits", "Failed", Duration::from_secs(60)).await;
    let status = pod.status.expect("status");
    let terminated = status.container_statuses.expect("statuses")[0]
        .state
        .clone()
        .and_then(|s| s.terminated)
        .expect("terminated");
    assert_eq!(terminated.exit_code, 3);
    assert_eq!(terminated.message.as_deref(), Some("bye"));
    assert!(status.pod_ip.is_some_and(|ip| ip.starts_with("10.244.")));
}

#[tokio::test]
async fn deleting_a_pod_sends_sigterm_then_sigkill_after_the_grace_period_and_stops_its_processes()
{
    let test =
        "deleting_a_pod_sends_sigterm_then_sigkill_after_the_grace_period_and_stops_its_processes";
    let Some(env) = crate::common::env(test).await else {
        return;
    };
    let ns = env.namespace().await.expect("namespace");
    let witness = std::env::temp_dir().join(format!("pgro-testkit-witness-{}", ns.name()));
    let pods = ns.api::<Pod>();
    // One container exits on SIGTERM (and records it); the other ignores SIGTERM and must be SIGKILLed.
    let pod: Pod = from_yaml(&format!(
        r#"
metadata: {{name: sleeper}}
spec:
  terminationGracePeriodSeconds: 2
  volumes: [{{name: witness, hostPath: {{path: {}, type: DirectoryOrCreate}}}}]
  containers:
  - name: polite
    image: debian:bookworm
    command: [sh, -c, 'trap "echo got-term > /witness/polite; exit 0" TERM; echo started; while true; do sleep 0.1; done']
    volumeMounts: [{{name: witness, mountPath: /witness}}]
  - name: stubborn
    image: debian:bookworm
    command: [sh, -c, 'trap "" TERM; sleep 300 & while true; do sleep 0.1; done']
"#,
        witness.display()
    ));
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    pod_in_phase(&pods, "sleeper", "Running", Duration::from_secs(60)).await;
    let pids = pgro_testkit::eventually(
        "both containers running",
        Duration::from_secs(10),
        || async {
            let pids = env.kubelet().container_pids(ns.name(), "sleeper");
            Ok((pids.len() == 2).then_some(pids))
        },
    )
    .await
    .expect("PIDs");
    let logs = pgro_testkit::eventually("log line", Duration::from_secs(10), || async {
        let logs = env.kubelet().logs(ns.name(), "sleeper", Some("polite"))?;
        Ok(logs.contains("started").then_some(logs))
    })
    .await
    .expect("logs");
    assert!(logs.contains("started"));
    let begin = std::time::Instant::now();
    pods.delete("sleeper", &DeleteParams::default())
        .await
        .expect("delete");
    pgro_testkit::eventually("pod object gone", Duration::from_secs(30), || async {
        Ok(pods.get_opt("sleeper").await?.is_none().then_some(()))
    })
    .await
    .expect("pod deleted");
    let took = begin.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "the stubborn container got its grace period ({took:?})"
    );
    assert!(
        took < Duration::from_secs(15),
        "SIGKILL after the grace period ({took:?})"
    );
    assert_eq!(
        std::fs::read_to_string(witness.join("polite")).expect("witness"),
        "got-term\n"
    );
    let _ = std::fs::remove_dir_all(&witness);
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} still runs"
        );
    }
}

/// Also a regression test: a regular init container that was still running counted as done (as if it were a
/// sidecar), so the next container started early; and Secret files with `defaultMode: 0440` were not
/// readable by a non-root pod with an fsGroup.
#[tokio::test]
async fn env_volumes_init_containers_and_run_as_user_are_honoured() {
    let Some(env) =
        crate::common::env("env_volumes_init_containers_and_run_as_user_are_honoured").await
    else {
        return;
    };
    let ns = env.namespace().await.expect("namespace");
    let secret: Secret = from_yaml("metadata: {name: creds}\nstringData: {password: s3cret}");
    ns.api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret");
    let cm: ConfigMap = from_yaml("metadata: {name: settings}\ndata: {mode: fast, level: '7'}");
    ns.api::<ConfigMap>()
        .create(&PostParams::default(), &cm)
        .await
        .expect("configmap");
    let pods = ns.api::<Pod>();
    let pod: Pod = from_yaml(
        r#"
metadata: {name: envy}
spec:
  restartPolicy: Never
  securityContext: {runAsUser: 26, fsGroup: 2000}
  volumes:
  - {name: scratch, emptyDir: {}}
  - {name: secret, secret: {secretName: creds, defaultMode: 288}}
  - {name: config, configMap: {name: settings, items: [{key: mode, path: sub/mode.txt}]}}
  initContainers:
  - name: first
    image: debian:bookworm
    command: [sh, -c, 'sleep 1; printf a > /scratch/order']
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  - name: second
    image: debian:bookworm
    command: [sh, -c, 'printf b >> /scratch/order']
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  containers:
  - name: main
    image: debian:bookworm
    command: [sh, -c]
    args:
    - >-
      printf '%s|%s|%s|%s|%s|%s|%s|%s|%s|%s' "$(cat /scratch/order)" "$PASSWORD" "$MODE" "$CFG_level"
      "$POD_NAME" "$POD_NAMESPACE" "$POD_IP" "$(id -u)" "$(cat /etc/secret/password)" "$(cat /etc/config/sub/mode.txt)"
      > /dev/termination-log
    env:
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: password}}}
    - {name: MODE, valueFrom: {configMapKeyRef: {name: settings, key: mode}}}
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: POD_NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    envFrom:
    - {prefix: CFG_, configMapRef: {name: settings}}
    volumeMounts:
    - {name: scratch, mountPath: /scratch}
    - {name: secret, mountPath: /etc/secret, readOnly: true}
    - {name: config, mountPath: /etc/config}
"#,
    );
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    let pod = pod_in_phase(&pods, "envy", "Succeeded", Duration::from_secs(60)).await;
    let status = pod.status.expect("status");
    let message = status.container_statuses.expect("statuses")[0]
        .state
        .clone()
        .and_then(|s| s.terminated)
        .and_then(|t| t.message)
        .expect("termination message");
    let ip = status.pod_ip.expect("pod IP");
    assert_eq!(
        message,
        format!("ab|s3cret|fast|7|envy|{}|{ip}|26|s3cret|fast", ns.name())
    );
}

#[tokio::test]
async fn environment_starts_within_a_minute() {
    let Some(env) = crate::common::env("environment_starts_within_a_minute").await else {
        return;
    };
    eprintln!(
        "control plane started in {:.2?}; control plane + kubelet in {:.2?}",
        env.control_plane().started_in(),
        env.started_in()
    );
    assert!(
        env.started_in() < Duration::from_secs(60),
        "{:?}",
        env.started_in()
    );
}
