//! PostgreSQL Deployments (image `postgres:<major>`) on the process kubelet, reached on their pod IP.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{ListParams, PostParams};

use crate::common::from_yaml;

/// initdb + postgres as a non-root user, a Service in front, then SQL over the pod IP.
async fn postgres_deployment_serves_sql(major: u32) {
    let test =
        format!("postgres_{major}_deployment_becomes_available_and_serves_sql_on_its_pod_ip");
    let Some(env) = crate::common::env(&test).await else {
        return;
    };
    if let Err(error) = env.components().postgres_bin(major) {
        pgro_testkit::skip_unless_ci::<()>(Err(error.into()), &test);
        return;
    }
    let (uid, _) = env.components().postgres_user();
    let ns = env.namespace().await.expect("namespace");
    // pg_isready exists in every major but 17 (server-only build): exec probe there, TCP probe for 17.
    let probe = if major == 17 {
        "tcpSocket: {port: 5432}".to_owned()
    } else {
        "exec: {command: [pg_isready, -h, 127.0.0.1, -p, '5432']}".to_owned()
    };
    let deployment: Deployment = from_yaml(&format!(
        r#"
metadata: {{name: pg}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: pg}}}}
  template:
    metadata: {{labels: {{app: pg}}}}
    spec:
      securityContext: {{runAsUser: {uid}}}
      terminationGracePeriodSeconds: 5
      volumes: [{{name: data, emptyDir: {{}}}}]
      containers:
      - name: postgres
        image: postgres:{major}
        command: [sh, -c]
        args:
        - >-
          initdb -D "$PGDATA" -U postgres --auth=trust >/dev/null &&
          echo 'host all all 0.0.0.0/0 trust' >> "$PGDATA/pg_hba.conf" &&
          exec postgres -D "$PGDATA" -c listen_addresses='*'
        ports: [{{containerPort: 5432, name: postgres}}]
        volumeMounts: [{{name: data, mountPath: /var/lib/postgresql}}]
        readinessProbe:
          {probe}
          periodSeconds: 1
"#
    ));
    ns.api::<Deployment>()
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");
    let service: Service = from_yaml(
        "metadata: {name: pg}\nspec: {selector: {app: pg}, ports: [{name: postgres, port: 5432}]}",
    );
    ns.api::<Service>()
        .create(&PostParams::default(), &service)
        .await
        .expect("create service");

    let deployments = ns.api::<Deployment>();
    pgro_testkit::eventually(
        "deployment pg Available",
        Duration::from_secs(120),
        || async {
            let d = deployments.get("pg").await?;
            let available = d
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .into_iter()
                .any(|c| c.type_ == "Available" && c.status == "True");
            Ok(available.then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));

    let pods = ns
        .api::<Pod>()
        .list(&ListParams::default().labels("app=pg"))
        .await
        .expect("pods");
    let pod = pods.items.into_iter().next().expect("one pod");
    let ip = pod.status.and_then(|s| s.pod_ip).expect("pod IP");
    let slices = ns.api::<EndpointSlice>();
    pgro_testkit::eventually(
        "EndpointSlice with the pod IP",
        Duration::from_secs(30),
        || async {
            let list = slices
                .list(&ListParams::default().labels("kubernetes.io/service-name=pg"))
                .await?;
            let listed = list.items.iter().flat_map(|s| &s.endpoints).any(|e| {
                e.addresses.contains(&ip)
                    && e.conditions.as_ref().and_then(|c| c.ready) == Some(true)
            });
            Ok(listed.then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));

    let stream = env
        .kubelet()
        .connect((ip.parse::<std::net::IpAddr>().expect("ip"), 5432).into())
        .await
        .expect("TCP to the pod IP");
    let (client, connection) = tokio_postgres::Config::new()
        .user("postgres")
        .dbname("postgres")
        .connect_raw(stream, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL handshake");
    tokio::spawn(connection);
    let version: String = client
        .query_one("SHOW server_version", &[])
        .await
        .expect("query")
        .get(0);
    assert!(
        version.starts_with(&format!("{major}.")),
        "server_version {version}"
    );
    client
        .batch_execute("CREATE TABLE t (v int); INSERT INTO t VALUES (41), (1)")
        .await
        .expect("DDL + DML");
    let sum: i64 = client
        .query_one("SELECT sum(v) FROM t", &[])
        .await
        .expect("select")
        .get(0);
    assert_eq!(sum, 42);
    let user: String = client
        .query_one("SELECT current_user", &[])
        .await
        .expect("select")
        .get(0);
    assert_eq!(user, "postgres");
}

#[tokio::test]
async fn postgres_15_deployment_becomes_available_and_serves_sql_on_its_pod_ip() {
    postgres_deployment_serves_sql(15).await;
}

#[tokio::test]
async fn postgres_16_deployment_becomes_available_and_serves_sql_on_its_pod_ip() {
    postgres_deployment_serves_sql(16).await;
}

#[tokio::test]
async fn postgres_17_deployment_becomes_available_and_serves_sql_on_its_pod_ip() {
    postgres_deployment_serves_sql(17).await;
}

#[tokio::test]
async fn postgres_18_deployment_becomes_available_and_serves_sql_on_its_pod_ip() {
    postgres_deployment_serves_sql(18).await;
}
