//! What pods see of the cluster: the apiserver with their ServiceAccount token, host services exposed
//! on the gateway, the `pgro` image mapping, and restarts.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use tokio::io::AsyncWriteExt as _;

use crate::common::{env, from_yaml, pod_in_phase};

fn termination_message(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c[0].state.clone())
        .and_then(|s| s.terminated)
        .and_then(|t| t.message)
        .unwrap_or_default()
}

#[tokio::test]
async fn pods_reach_the_apiserver_with_their_service_account_token() {
    let Some(env) = env("pods_reach_the_apiserver_with_their_service_account_token").await else {
        return;
    };
    if !std::path::Path::new("/usr/bin/curl").exists() {
        pgro_testkit::skip_unless_ci::<()>(
            Err(pgro_testkit::Unavailable {
                what: "curl".into(),
                hint: "apt-get install curl".into(),
            }
            .into()),
            "in-cluster",
        );
        return;
    }
    let ns = env.namespace().await.expect("namespace");
    let pods = ns.api::<Pod>();
    let pod: Pod = from_yaml(
        r#"
metadata: {name: incluster}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: curlimages/curl
    command: [sh, -c]
    args:
    - >-
      cd /var/run/secrets/kubernetes.io/serviceaccount &&
      curl -sS --fail --cacert ca.crt -H "Authorization: Bearer $(cat token)"
      "https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/version" > /dev/termination-log &&
      test "$(cat namespace)" = "$POD_NAMESPACE"
    env: [{name: POD_NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}]
"#,
    );
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create");
    let pod = pod_in_phase(&pods, "incluster", "Succeeded", Duration::from_secs(60)).await;
    assert!(
        termination_message(&pod).contains("\"gitVersion\": \"v1.35"),
        "{}",
        termination_message(&pod)
    );
}

#[tokio::test]
async fn exposed_loopback_services_are_reachable_from_pods_on_the_gateway() {
    let Some(env) = env("exposed_loopback_services_are_reachable_from_pods_on_the_gateway").await
    else {
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let target = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(b"pong\n").await;
        }
    });
    let port = 20000 + (target.port() % 10000);
    let forward = env.kubelet().expose(port, target).expect("expose");
    let gateway = forward.addr();
    let ns = env.namespace().await.expect("namespace");
    let pods = ns.api::<Pod>();
    let pod: Pod = from_yaml(&format!(
        r#"
metadata: {{name: client}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: debian:bookworm
    command: [bash, -c, 'exec 3<>/dev/tcp/{}/{}; head -n1 <&3 > /dev/termination-log']
"#,
        gateway.ip(),
        gateway.port()
    ));
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create");
    let pod = pod_in_phase(&pods, "client", "Succeeded", Duration::from_secs(60)).await;
    assert_eq!(termination_message(&pod), "pong\n");
}

#[tokio::test]
async fn pgro_image_runs_the_configured_binary_at_its_entrypoint() {
    let Some(env) = env("pgro_image_runs_the_configured_binary_at_its_entrypoint").await else {
        return;
    };
    let ns = env.namespace().await.expect("namespace");
    let pods = ns.api::<Pod>();
    let pod: Pod = from_yaml(
        r#"
metadata: {name: pgro}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: ghcr.io/bes-au/pgro:0.1.0
    args: [MARKER]
    env: [{name: MARKER, value: from-the-pgro-image}]
"#,
    );
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create");
    pod_in_phase(&pods, "pgro", "Succeeded", Duration::from_secs(60)).await;
    let logs = env
        .kubelet()
        .logs(ns.name(), "pgro", Some("main"))
        .expect("logs");
    assert_eq!(logs, "from-the-pgro-image\n");
}

#[tokio::test]
async fn failing_container_restarts_with_back_off_and_keeps_its_previous_log() {
    let test = "failing_container_restarts_with_back_off_and_keeps_its_previous_log";
    let Some(env) = env(test).await else { return };
    let ns = env.namespace().await.expect("namespace");
    let pods = ns.api::<Pod>();
    let pod: Pod = from_yaml(
        r#"
metadata: {name: flaky}
spec:
  restartPolicy: OnFailure
  volumes: [{name: state, emptyDir: {}}]
  containers:
  - name: main
    image: debian:bookworm
    command: [sh, -c, 'echo run >> /state/runs; echo "attempt $(wc -l < /state/runs)"; test "$(wc -l < /state/runs)" -ge 3']
    volumeMounts: [{name: state, mountPath: /state}]
"#,
    );
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create");
    let pod = pod_in_phase(&pods, "flaky", "Succeeded", Duration::from_secs(60)).await;
    let status = &pod
        .status
        .expect("status")
        .container_statuses
        .expect("statuses")[0];
    assert_eq!(status.restart_count, 2);
    let last = status
        .last_state
        .clone()
        .and_then(|s| s.terminated)
        .expect("last state");
    assert_eq!(last.exit_code, 1);
    assert_eq!(
        env.kubelet().logs(ns.name(), "flaky", None).expect("logs"),
        "attempt 3\n"
    );
    assert_eq!(
        env.kubelet()
            .previous_logs(ns.name(), "flaky", None)
            .expect("previous"),
        "attempt 2\n"
    );
}

#[tokio::test]
async fn services_are_reachable_by_cluster_ip_and_by_dns_name() {
    let Some(env) = env("services_are_reachable_by_cluster_ip_and_by_dns_name").await else {
        return;
    };
    let ns = env.namespace().await.expect("namespace");
    let web: Pod = from_yaml(
        r#"
metadata: {name: web, labels: {app: web}}
spec:
  containers:
  - name: http
    image: python:3
    command: [python3, -m, http.server, '8080', --directory, /srv]
    ports: [{name: http, containerPort: 8080}]
    readinessProbe: {httpGet: {path: /hello.txt, port: http}, periodSeconds: 1}
    volumeMounts: [{name: content, mountPath: /srv}]
  volumes: [{name: content, configMap: {name: content}}]
"#,
    );
    let content: k8s_openapi::api::core::v1::ConfigMap =
        from_yaml("metadata: {name: content}\ndata: {hello.txt: hi}");
    ns.api::<k8s_openapi::api::core::v1::ConfigMap>()
        .create(&PostParams::default(), &content)
        .await
        .expect("cm");
    let pods = ns.api::<Pod>();
    pods.create(&PostParams::default(), &web)
        .await
        .expect("web pod");
    let service: k8s_openapi::api::core::v1::Service = from_yaml(
        "metadata: {name: web}\nspec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: http}]}",
    );
    let service = ns
        .api::<k8s_openapi::api::core::v1::Service>()
        .create(&PostParams::default(), &service)
        .await
        .expect("svc");
    let cluster_ip = service.spec.and_then(|s| s.cluster_ip).expect("cluster IP");

    // From the test process, through the ClusterIP.
    let addr: std::net::SocketAddr = format!("{cluster_ip}:80").parse().expect("addr");
    let body = pgro_testkit::eventually(
        "the service answers on its ClusterIP",
        Duration::from_secs(60),
        || async {
            let mut stream = env.kubelet().connect(addr).await?;
            use tokio::io::AsyncReadExt as _;
            stream.write_all(b"GET /hello.txt HTTP/1.0\r\n\r\n").await?;
            let mut response = String::new();
            stream.read_to_string(&mut response).await?;
            Ok(response.ends_with("hi").then_some(response))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(body.starts_with("HTTP/1.0 200"), "{body}");

    // From a pod, by DNS name (short and fully qualified).
    let client: Pod = from_yaml(&format!(
        r#"
metadata: {{name: dns-client}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: python:3
    command:
    - python3
    - -c
    - |
      import urllib.request
      a = urllib.request.urlopen("http://web/hello.txt").read().decode()
      b = urllib.request.urlopen("http://web.{ns}.svc.cluster.local/hello.txt").read().decode()
      open("/dev/termination-log", "w").write(a + b)
"#,
        ns = ns.name()
    ));
    pods.create(&PostParams::default(), &client)
        .await
        .expect("client pod");
    let done = pod_in_phase(&pods, "dns-client", "Succeeded", Duration::from_secs(60)).await;
    assert_eq!(termination_message(&done), "hihi");
}

#[tokio::test]
async fn host_processes_in_the_node_namespace_reach_the_apiserver() {
    let Some(env) = env("host_processes_in_the_node_namespace_reach_the_apiserver").await else {
        return;
    };
    let Some(kubectl) = env
        .components()
        .get("PGRO_KUBECTL")
        .map(std::path::PathBuf::from)
    else {
        pgro_testkit::skip_unless_ci::<()>(
            Err(pgro_testkit::Unavailable {
                what: "PGRO_KUBECTL".into(),
                hint: "scripts/testinfra.sh k8s".into(),
            }
            .into()),
            "host_processes_in_the_node_namespace_reach_the_apiserver",
        );
        return;
    };
    let log = std::env::temp_dir().join(format!("pgro-testkit-kubectl-{}.log", std::process::id()));
    let spec = pgro_testkit::ProcessSpec::new("kubectl", kubectl)
        .args(["get", "node", "-o", "name"])
        .log_to(&log);
    let proc = pgro_testkit::Proc::spawn(env.kubelet().node_process(spec))
        .await
        .expect("spawn");
    let status = proc.wait().await;
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert!(status.success(), "kubectl failed: {output}");
    assert_eq!(output.trim(), format!("node/{}", env.kubelet().node_name()));
}

#[tokio::test]
async fn exec_runs_inside_the_container_as_its_user_and_liveness_failures_restart_it() {
    let test = "exec_runs_inside_the_container_as_its_user_and_liveness_failures_restart_it";
    let Some(env) = env(test).await else { return };
    let ns = env.namespace().await.expect("namespace");
    let pods = ns.api::<Pod>();
    let pod: Pod = from_yaml(
        r#"
metadata: {name: lively}
spec:
  securityContext: {runAsUser: 26}
  containers:
  - name: main
    image: debian:bookworm
    workingDir: /work/dir
    # `$$$$` is `$$` after the kubelet's $(VAR) expansion, where `$$` escapes a `$`.
    command: [sh, -c, 'touch /tmp/healthy; echo $$$$ > /tmp/pid; sleep 3; rm /tmp/healthy; sleep 600']
    livenessProbe:
      exec: {command: [test, -f, /tmp/healthy]}
      periodSeconds: 1
      failureThreshold: 2
      terminationGracePeriodSeconds: 1
"#,
    );
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create");
    pod_in_phase(&pods, "lively", "Running", Duration::from_secs(60)).await;
    let output = pgro_testkit::eventually("exec output", Duration::from_secs(10), || async {
        let output = env
            .kubelet()
            .exec(
                ns.name(),
                "lively",
                None,
                &["sh", "-c", "id -u; pwd; cat /tmp/pid"],
            )
            .await?;
        Ok(output.status.success().then_some(output))
    })
    .await
    .expect("exec");
    // Same user, working directory and PID namespace (the container's shell is PID 1 there).
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "26\n/work/dir\n1\n"
    );
    pgro_testkit::eventually("a liveness restart", Duration::from_secs(30), || async {
        let pod = pods.get("lively").await?;
        let restarts = pod
            .status
            .and_then(|s| s.container_statuses)
            .map(|c| c[0].restart_count)
            .unwrap_or(0);
        Ok((restarts >= 1).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
}
