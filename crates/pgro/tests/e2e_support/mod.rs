//! The world the end-to-end tests run in, once per test binary: the `pgro-testkit` control plane and
//! process kubelet, MinIO on loopback (reachable from pods at the pod gateway), the operator installed from
//! `deploy/operator.yaml` (running as a pod, under its ServiceAccount and least-privilege RBAC), and a
//! PostgreSQL 16 source data directory with known contents. Each test gets a namespace, a Kopia repository
//! (its own prefix in the bucket, created by the real `kopia`) and the Kopia Secret for it.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::missing_panics_doc
)]

#[path = "../instance_support/mod.rs"]
pub mod instance_support;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use instance_support::run;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use pgro_api::{PostgresPhysicalReplica, PostgresPhysicalRestore};
use pgro_testkit::fixtures::{KopiaRepo, Minio, Postgres};
use pgro_testkit::{Forward, TestEnv, TestNamespace};
use tokio::sync::OnceCell;

pub use pgro_testkit::fixtures::{MINIO_SECRET, MINIO_USER};
pub const BUCKET: &str = "backups";
pub const REPO_PASSWORD: &str = "e2e-repository-password";
pub const OPERATOR_NS: &str = "pgro-system";
pub const SOURCE_ROWS: i64 = 2000;

/// Settings the tests run the operator with (short timers; the rest as shipped).
pub const TEST_SETTINGS: &[(&str, &str)] = &[
    ("snapshotCacheTtl", "1s"),
    ("failedRestoreRetention", "10m"),
    ("readyTimeout", "5m"),
    ("notificationBackoff", "2s,3s,4s,5s"),
];

pub struct World {
    pub env: &'static TestEnv,
    pub root: tempfile::TempDir,
    pub minio: Minio,
    pub minio_port: u16,
    _expose: Forward,
    pub pg: Postgres,
    /// A cleanly stopped PostgreSQL 16 data directory with table `items` (SOURCE_ROWS rows).
    pub template: PathBuf,
    /// (rows, md5) of `items` in the template.
    pub items: (i64, String),
}

static WORLD: OnceCell<Option<World>> = OnceCell::const_new();

/// The world, or `None` (test skipped) outside CI when something is missing; under `CI=true` a missing
/// component fails.
pub async fn world(test: &str) -> Option<&'static World> {
    pgro_testkit::use_pgro_binary(env!("CARGO_BIN_EXE_pgro"));
    WORLD
        .get_or_init(|| async {
            let env = pgro_testkit::env_or_skip(test).await?;
            env.crds().expect("deploy/crds.yaml installs");
            Some(World::start(env).await)
        })
        .await
        .as_ref()
}

impl World {
    async fn start(env: &'static TestEnv) -> Self {
        let t0 = Instant::now();
        let root = instance_support::test_root("pgro-e2e");
        let minio = Minio::start(env.components(), &root.path().join("minio"), &[BUCKET])
            .await
            .expect("MinIO starts");
        let expose = env
            .kubelet()
            .expose(
                minio.port,
                SocketAddr::from((Ipv4Addr::LOCALHOST, minio.port)),
            )
            .expect("expose MinIO to pods");
        let pg = Postgres::new(env.components(), 16).expect("PostgreSQL 16");
        let template = root.path().join("template");
        let items = pg.create_datadir(&template, SOURCE_ROWS).unwrap();
        install_operator(env, &[]).await;
        eprintln!(
            "e2e world ready in {:.1}s (control plane {:.1}s)",
            t0.elapsed().as_secs_f64(),
            env.started_in().as_secs_f64()
        );
        Self {
            env,
            root,
            minio_port: minio.port,
            minio,
            _expose: expose,
            pg,
            template,
            items,
        }
    }

    /// MinIO as pods (and the operator) reach it.
    pub fn pod_endpoint(&self) -> String {
        format!("{}:{}", self.env.kubelet().pod_gateway(), self.minio_port)
    }

    pub fn client(&self) -> Client {
        self.env.client().unwrap()
    }

    /// A Kopia repository of its own for a test (prefix `<name>/` in the bucket).
    pub fn repo(&self, name: &str) -> KopiaRepo {
        KopiaRepo::create_s3(
            self.env.components(),
            &self.minio,
            BUCKET,
            &format!("{name}/"),
            REPO_PASSWORD,
            &self.root.path().join("kopia").join(name),
        )
        .unwrap()
    }

    /// The Kopia Secret (seed keys plus endpoint, disableTls and prefix) for `repo` in `ns`.
    pub async fn kopia_secret(&self, ns: &TestNamespace, name: &str, repo: &KopiaRepo) {
        self.kopia_secret_with_password(ns, name, repo, REPO_PASSWORD)
            .await;
    }

    /// The same Secret with another repository password (after a rotation).
    pub async fn kopia_secret_with_password(
        &self,
        ns: &TestNamespace,
        name: &str,
        repo: &KopiaRepo,
        password: &str,
    ) {
        let data = BTreeMap::from([
            ("bucket".to_owned(), BUCKET.to_owned()),
            ("region".to_owned(), "us-east-1".to_owned()),
            ("repositoryPassword".to_owned(), password.to_owned()),
            ("accessKeyId".to_owned(), MINIO_USER.to_owned()),
            ("secretAccessKey".to_owned(), MINIO_SECRET.to_owned()),
            ("endpoint".to_owned(), self.pod_endpoint()),
            ("disableTls".to_owned(), "true".to_owned()),
            ("prefix".to_owned(), repo.prefix.clone()),
        ]);
        put_secret(ns, name, data).await;
    }

    /// A copy of the template data directory (owned by the PostgreSQL user) to change and snapshot.
    pub fn source_copy(&self, name: &str) -> PathBuf {
        let dst = self.root.path().join("sources").join(name);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        run(Command::new("cp").arg("-a").arg(&self.template).arg(&dst));
        dst
    }

    /// Starts PostgreSQL on `dir`, runs `sql`, stops it cleanly; returns the new (rows, md5) of `items`.
    pub fn change_source(&self, dir: &Path, sql: &str) -> (i64, String) {
        self.pg.with_server(dir, sql).unwrap()
    }
}

/// `kopia snapshot create`, panicking on failure.
pub trait SnapshotExt {
    fn snap(&self, dir: &Path, extra: &[&str]) -> String;
}

impl SnapshotExt for KopiaRepo {
    fn snap(&self, dir: &Path, extra: &[&str]) -> String {
        self.snapshot(dir, extra).unwrap()
    }
}

pub async fn checksum(c: &tokio_postgres::Client) -> (i64, String) {
    let row = c
        .query_one(
            "SELECT count(*), coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM items t",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// Creates or replaces a Secret.
pub async fn put_secret(ns: &TestNamespace, name: &str, data: BTreeMap<String, String>) {
    let secrets = ns.api::<Secret>();
    let s = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        string_data: Some(data),
        ..Default::default()
    };
    secrets
        .patch(name, &PatchParams::apply("e2e").force(), &Patch::Apply(&s))
        .await
        .unwrap();
}

/// Applies every document of a manifest by server-side apply.
pub async fn apply_manifest(client: &Client, yaml: &str) {
    pgro_testkit::manifests::apply(client, yaml, "e2e")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
}

/// `deploy/operator.yaml` with the test settings (plus `extra`) in its ConfigMap and `replicas`
/// operator pods; waits until one is ready.
pub async fn install_operator(env: &TestEnv, extra: &[(&str, &str)]) {
    let client = env.client().unwrap();
    apply_manifest(&client, include_str!("../../../../deploy/operator.yaml")).await;
    set_operator_settings(&client, extra).await;
    wait_operator_ready(&client, 1).await;
}

pub async fn set_operator_settings(client: &Client, extra: &[(&str, &str)]) {
    let mut data: BTreeMap<String, String> = BTreeMap::from([
        ("maxConcurrentRestores".to_owned(), "2".to_owned()),
        (
            "postgresImageTemplate".to_owned(),
            "postgres:{major}".to_owned(),
        ),
    ]);
    for (k, v) in TEST_SETTINGS.iter().chain(extra) {
        data.insert((*k).to_owned(), (*v).to_owned());
    }
    patch_operator_settings(client, serde_json::json!(data)).await;
}

/// Merges `data` into the settings ConfigMap (a `null` value removes its key).
pub async fn patch_operator_settings(client: &Client, data: serde_json::Value) {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), OPERATOR_NS);
    let patch = serde_json::json!({"data": data});
    cms.patch(
        "pgro-config",
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .unwrap();
}

pub async fn operator_pods(client: &Client) -> Vec<Pod> {
    operator_pods_in(client, OPERATOR_NS).await
}

/// The operator pods (not terminating) in namespace `ns` (another install, e.g. a Helm release's).
pub async fn operator_pods_in(client: &Client, ns: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.list(&ListParams::default().labels("app.kubernetes.io/component=operator"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub async fn wait_operator_ready(client: &Client, n: usize) {
    wait_operator_ready_in(client, OPERATOR_NS, n).await;
}

/// Waits until `n` operator pods in namespace `ns` are ready.
pub async fn wait_operator_ready_in(client: &Client, ns: &str, n: usize) {
    pgro_testkit::eventually("operator pods ready", Duration::from_secs(120), || async {
        let pods = operator_pods_in(client, ns).await;
        Ok((pods.iter().filter(|p| pod_ready(p)).count() >= n).then_some(()))
    })
    .await
    .unwrap();
}

pub async fn scale_operator(client: &Client, replicas: i32) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), OPERATOR_NS);
    let patch = serde_json::json!({"spec": {"replicas": replicas}});
    deployments
        .patch(
            "pgro-operator",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
}

/// The operator's logs (every operator pod on this node), for failure messages.
pub fn operator_logs(env: &TestEnv, pods: &[Pod]) -> String {
    pods.iter()
        .map(|p| {
            let name = p.name_any();
            let log = env
                .kubelet()
                .logs(OPERATOR_NS, &name, None)
                .unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            format!(
                "--- {name} (last lines) ---\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A replica from YAML (its `metadata.name` is set here).
pub fn replica_yaml(name: &str, spec_yaml: &str) -> PostgresPhysicalReplica {
    let indented: String = spec_yaml.lines().map(|l| format!("  {l}\n")).collect();
    pgro_api::testutil::from_yaml(&format!(
        "apiVersion: pgro.bes.au/v1alpha1\nkind: PostgresPhysicalReplica\nmetadata: {{name: {name}}}\nspec:\n{indented}"
    ))
    .unwrap()
}

pub async fn create_replica(ns: &TestNamespace, r: &PostgresPhysicalReplica) {
    ns.api::<PostgresPhysicalReplica>()
        .create(&PostParams::default(), r)
        .await
        .unwrap();
}

/// Waits for `pred` on the replica, printing the replica, its restores and the operator's log on timeout.
pub async fn wait_replica<F>(
    w: &World,
    ns: &TestNamespace,
    name: &str,
    what: &str,
    timeout: Duration,
    pred: F,
) -> PostgresPhysicalReplica
where
    F: Fn(&PostgresPhysicalReplica, &[PostgresPhysicalRestore]) -> bool,
{
    let replicas = ns.api::<PostgresPhysicalReplica>();
    let restores = ns.api::<PostgresPhysicalRestore>();
    let deadline = Instant::now() + timeout;
    loop {
        let r = replicas.get(name).await.unwrap();
        let rs = restores.list(&ListParams::default()).await.unwrap().items;
        if pred(&r, &rs) {
            return r;
        }
        if Instant::now() > deadline {
            let pods = operator_pods(&w.client()).await;
            panic!(
                "timed out after {timeout:?} waiting for {what}\nreplica status: {}\nrestores: {}\n{}",
                serde_json::to_string_pretty(&r.status).unwrap(),
                serde_json::to_string_pretty(
                    &rs.iter()
                        .map(|x| (x.name_any(), x.status.clone()))
                        .collect::<Vec<_>>()
                )
                .unwrap(),
                operator_logs(w.env, &pods)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub fn condition<'a>(
    conds: &'a [k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    t: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    conds.iter().find(|c| c.type_ == t)
}

pub fn cond_is(r: &PostgresPhysicalReplica, t: &str, status: &str, reason: &str) -> bool {
    r.status
        .as_ref()
        .and_then(|s| condition(&s.conditions, t))
        .is_some_and(|c| c.status == status && (reason.is_empty() || c.reason == reason))
}

pub fn phase_is(r: &PostgresPhysicalReplica, phase: &str) -> bool {
    r.status
        .as_ref()
        .and_then(|s| s.phase.as_ref())
        .is_some_and(|p| p.as_str() == phase)
}

pub fn current(r: &PostgresPhysicalReplica) -> Option<String> {
    r.status.as_ref().and_then(|s| s.current_restore.clone())
}

pub fn restore_phase(r: &PostgresPhysicalRestore) -> String {
    r.status
        .as_ref()
        .and_then(|s| s.phase.as_ref())
        .map_or_else(|| "Pending".to_owned(), |p| p.as_str().to_owned())
}

/// Connects through a Service (its ClusterIP, forwarded to loopback) as `user`, over TLS verified as a
/// user's `sslmode=verify-full` client would: the CA from `<replica>-ca`, the name `<replica>.<ns>.svc`.
pub async fn connect_service(
    w: &World,
    ns: &TestNamespace,
    service: &str,
    user: &str,
    password: &str,
) -> Result<(tokio_postgres::Client, Forward), tokio_postgres::Error> {
    let svc = ns.api::<Service>().get(service).await.unwrap();
    // A restore's Service carries its replica's label; the replica's own Service is named after it.
    let replica = svc
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(pgro_api::LABEL_REPLICA))
        .cloned()
        .unwrap_or_else(|| service.to_owned());
    let ip: Ipv4Addr = svc
        .spec
        .and_then(|s| s.cluster_ip)
        .unwrap()
        .parse()
        .unwrap();
    let fwd = w
        .env
        .kubelet()
        .port_forward(SocketAddr::from((ip, 5432)))
        .unwrap();
    let ca = replica_ca(ns, &replica).await;
    let mut cfg = pgro::postgres::tls::config(
        &format!("{replica}.{}.svc", ns.name()),
        std::net::IpAddr::V4(Ipv4Addr::LOCALHOST),
        fwd.addr().port(),
    );
    cfg.user(user)
        .password(password)
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(10));
    let (c, conn) = cfg
        .connect(pgro::postgres::tls::connector(&ca).expect("the replica's CA"))
        .await?;
    tokio::spawn(conn);
    Ok((c, fwd))
}

/// `ca.crt` of `<replica>-ca`: what a client verifies the replica's server with.
pub async fn replica_ca(ns: &TestNamespace, replica: &str) -> Vec<u8> {
    pgro_testkit::service_psql::replica_ca(&ns.client(), ns.name(), replica)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// The analytics credentials from `<replica>-creds`.
pub async fn analytics_credentials(ns: &TestNamespace, replica: &str) -> (String, String) {
    let s = ns
        .api::<Secret>()
        .get(&format!("{replica}-creds"))
        .await
        .unwrap();
    let d = s.data.unwrap();
    let get = |k: &str| String::from_utf8(d[k].0.clone()).unwrap();
    (get("username"), get("password"))
}

/// Addresses of ready endpoints of a Service.
pub async fn endpoint_addresses(ns: &TestNamespace, service: &str) -> Vec<String> {
    ns.api::<EndpointSlice>()
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={service}")))
        .await
        .unwrap()
        .items
        .iter()
        .flat_map(|s| s.endpoints.clone())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
        .flat_map(|e| e.addresses)
        .collect()
}

/// IPs of the pods of a restore.
pub async fn restore_pod_ips(ns: &TestNamespace, restore: &str) -> Vec<String> {
    ns.api::<Pod>()
        .list(&ListParams::default().labels(&format!(
            "pgro.bes.au/restore={restore},app.kubernetes.io/component=postgres"
        )))
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect()
}

/// Events recorded on a replica as (reason, note), oldest first; an event series counts as many times as it
/// was observed.
pub async fn event_reasons(ns: &TestNamespace, replica: &str) -> Vec<(String, String)> {
    let mut evs: Vec<Event> = ns
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(replica))
        .collect();
    evs.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    evs.into_iter()
        .flat_map(|e| {
            let n = e.series.as_ref().map_or(1, |s| s.count.max(1));
            let item = (e.reason.unwrap_or_default(), e.note.unwrap_or_default());
            std::iter::repeat_n(item, usize::try_from(n).unwrap_or(1))
        })
        .collect()
}

/// A restore's `status.instanceFixes`, once the operator has read it from the instance.
pub async fn instance_fixes(ns: &TestNamespace, restore: &str) -> Vec<String> {
    let api = ns.api::<PostgresPhysicalRestore>();
    let t0 = Instant::now();
    loop {
        let r = api.get(restore).await.unwrap();
        if let Some(f) = r.status.and_then(|s| s.instance_fixes) {
            return f;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "restore {restore}: instanceFixes not recorded within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Events regarding a restore as (type, reason, note).
pub async fn restore_events(ns: &TestNamespace, restore: &str) -> Vec<(String, String, String)> {
    ns.api::<Event>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("PostgresPhysicalRestore")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(restore)
        })
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect()
}

/// One request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: serde_json::Value,
    pub at: Instant,
}

/// How a [`Receiver`] answers its n-th request (0-based) to a path: status, body, delay.
pub type Behaviour = Arc<dyn Fn(usize, &str) -> (u16, String, Duration) + Send + Sync>;

/// An HTTP server in the test (axum, on loopback), reachable from pods at the pod gateway; it records every
/// request and answers as `behaviour` says.
pub struct Receiver {
    pub port: u16,
    pub requests: Arc<std::sync::Mutex<Vec<Received>>>,
    _task: tokio::task::JoinHandle<()>,
    _expose: Forward,
}

impl Receiver {
    pub async fn start(w: &World, behaviour: Behaviour) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests: Arc<std::sync::Mutex<Vec<Received>>> = Arc::default();
        let recorded = requests.clone();
        let app = axum::Router::new().fallback(
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  headers: axum::http::HeaderMap,
                  body: axum::body::Bytes| {
                let recorded = recorded.clone();
                let behaviour = behaviour.clone();
                async move {
                    let path = uri.path().to_owned();
                    let n = {
                        let mut r = recorded.lock().unwrap();
                        let n = r.iter().filter(|x| x.path == path).count();
                        r.push(Received {
                            method: method.to_string(),
                            path: path.clone(),
                            headers: headers
                                .iter()
                                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                                .collect(),
                            body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
                            at: Instant::now(),
                        });
                        n
                    };
                    let (status, text, delay) = behaviour(n, &path);
                    tokio::time::sleep(delay).await;
                    (
                        axum::http::StatusCode::from_u16(status).unwrap(),
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        text,
                    )
                }
            },
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let expose = w
            .env
            .kubelet()
            .expose(port, SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .unwrap();
        Self {
            port,
            requests,
            _task: task,
            _expose: expose,
        }
    }

    /// The URL pods use for `path`.
    pub fn url(&self, w: &World, path: &str) -> String {
        format!(
            "http://{}:{}{path}",
            w.env.kubelet().pod_gateway(),
            self.port
        )
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

/// Always 200 `{}` at once.
pub fn accept_all() -> Behaviour {
    Arc::new(|_, _| (200, "{}".to_owned(), Duration::ZERO))
}

/// The `/metrics` text of every operator pod (through a port forward into its network namespace).
pub async fn operator_metrics(w: &World) -> Vec<String> {
    let mut out = Vec::new();
    for pod in operator_pods(&w.client()).await {
        let Some(ip) = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        let fwd = w
            .env
            .kubelet()
            .port_forward(std::net::SocketAddr::from((ip, 8080)))
            .unwrap();
        let text = reqwest::get(format!("http://{}/metrics", fwd.addr()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        out.push(text);
    }
    out
}

/// The first column (text) of `sql` through the replica's Service, as its analytics user: what a client
/// of the copy reads.
pub async fn served_digest(w: &World, ns: &TestNamespace, replica: &str, sql: &str) -> String {
    let (user, password) = analytics_credentials(ns, replica).await;
    let (c, _fwd) = connect_service(w, ns, replica, &user, &password)
        .await
        .unwrap();
    c.query_one(sql, &[]).await.unwrap().get::<_, String>(0)
}

/// The restore once the operator has read what the instance recorded (`instanceFixes`, with
/// `dataTime` and `walReplayed` read at the same time), or after 60 s as it is.
pub async fn wait_restore_reported(ns: &TestNamespace, name: &str) -> PostgresPhysicalRestore {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r: PostgresPhysicalRestore = ns.api().get(name).await.unwrap();
        if r.status
            .as_ref()
            .is_some_and(|s| s.instance_fixes.is_some())
            || Instant::now() > deadline
        {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The value of the series `series` (name and labels exactly as exposed, e.g.
/// `pgro_replica_queue_position{namespace="n",replica="r"}`) in any operator's `/metrics`.
pub fn metric_value(texts: &[String], series: &str) -> Option<f64> {
    texts.iter().find_map(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    })
}

/// Waits (up to 60 s) until every `(series, value)` is exposed with that value (±1 ms), returning the texts.
pub async fn wait_metrics(w: &World, want: &[(String, f64)]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let texts = operator_metrics(w).await;
        let wrong: Vec<String> = want
            .iter()
            .filter(|(s, v)| metric_value(&texts, s).is_none_or(|got| (got - v).abs() > 0.001))
            .map(|(s, v)| format!("{s} = {v} (got {:?})", metric_value(&texts, s)))
            .collect();
        if wrong.is_empty() {
            return texts;
        }
        assert!(
            Instant::now() < deadline,
            "metrics not as expected: {wrong:?}\n{}",
            texts.join("\n---\n")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Seconds since the epoch, as the gauges expose times.
pub fn epoch(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> f64 {
    t.0.as_millisecond() as f64 / 1000.0
}

/// `sql` as the analytics role through the replica's Service with real libpq (`psql`) from the node's
/// network namespace: `host=<replica>.<ns>.svc hostaddr=<ClusterIP> sslmode=<sslmode> sslrootcert=<ca>`.
pub async fn libpq_service(
    w: &World,
    ns: &TestNamespace,
    replica: &str,
    sslmode: &str,
    ca: &Path,
    sql: &str,
) -> anyhow::Result<String> {
    let (user, password) = analytics_credentials(ns, replica).await;
    let ip = ns
        .api::<Service>()
        .get(replica)
        .await?
        .spec
        .and_then(|s| s.cluster_ip)
        .unwrap_or_default();
    let host = format!("{replica}.{}.svc", ns.name());
    pgro_testkit::service_psql::ServicePsql {
        host: &host,
        ip: &ip,
        user: &user,
        password: &password,
        sslmode,
        ca,
    }
    .run(w.env, sql)
}
