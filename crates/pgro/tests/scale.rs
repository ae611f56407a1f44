//! The operator at scale (issue 18): N replicas (default 200) on the local control plane with restores that
//! complete quickly, measuring what the operator costs — its RSS and CPU, the API requests it makes by verb
//! and resource (apiserver audit log, filtered to its ServiceAccount), its reconciles, the admission delay
//! (slot free → next restore created), slot idle time while replicas wait, and whether `queuePosition` is an
//! exact ranking at every sample.
//!
//! Ignored (it is a measurement, minutes long, not a check of CI's default path). Run it with
//! `scripts/scale` (see `docs/testing.md`), which builds the stand-in program and passes the knobs:
//!
//! * `SCALE_REPLICAS` (200), `SCALE_NAMESPACES` (4), `SCALE_DURATION` (seconds from the first replica
//!   created, 600), `SCALE_RESTORE_SECONDS` (how long each restore Job is held before the real restore,
//!   20), `SCALE_MAX_CONCURRENT` (`maxConcurrentRestores`, 2), `SCALE_SAMPLE_SECONDS` (2),
//!   `SCALE_SNAPSHOT_CACHE_TTL` (`snapshotCacheTtl`, 30s), `SCALE_REPORT` (markdown output file),
//!   `PGRO_STANDIN_BINARY` (the `pgro-standin` program), `PGRO_BINARY` (the operator binary; default this
//!   package's `pgro`).
//!
//! What is real: etcd, kube-apiserver, kube-controller-manager, the process kubelet, the operator (a pod
//! from `deploy/operator.yaml` under its ServiceAccount and RBAC), MinIO, the Kopia repository (written by
//! `kopia`), every restore Job (`pgro restore` of a small PostgreSQL 16 data directory), the `copy-binary`
//! init containers, PVCs, Services and Deployments. What stands in: the PostgreSQL container of each
//! restore runs `pgro-standin postgres` instead of `pgro instance` (probes answer 200, port 5432 forwards to
//! one shared real PostgreSQL holding `pgro_admin` and `_pgro.restore_info`), and each restore Job waits
//! `SCALE_RESTORE_SECONDS` before it runs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod e2e_support;
#[path = "scale_support/measure.rs"]
mod measure;
#[path = "scale_support/report.rs"]
mod report;
#[path = "scale_support/watch.rs"]
mod watch;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e_support::{MINIO_SECRET, MINIO_USER, OPERATOR_NS, install_operator, operator_pods};
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use pgro_api::{PostgresPhysicalReplica, PostgresPhysicalRestore};
use pgro_testkit::fixtures::{KopiaRepo, Minio, Postgres, standin_upstream};
use pgro_testkit::{
    Components, ControlPlaneConfig, KubeletConfig, StandIn, TestEnv, audit_policy_for_user,
};

use measure::*;
use report::*;
use watch::*;

const OPERATOR_USER: &str = "system:serviceaccount:pgro-system:pgro";
const BUCKET: &str = "backups";
const PASSWORD: &str = "scale-repository-password";

fn knob<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Wall-clock seconds (UNIX epoch) — the audit log's clock, so harness and apiserver times compare.
fn now() -> f64 {
    ts_secs(jiff::Timestamp::now())
}

fn ts_secs(t: jiff::Timestamp) -> f64 {
    t.as_microsecond() as f64 / 1e6
}

#[derive(Debug, Clone)]
struct Knobs {
    replicas: usize,
    namespaces: usize,
    duration: f64,
    restore_seconds: f64,
    max_concurrent: usize,
    sample: f64,
    /// Seconds between LISTs of every replica for the position check (a multiple of `sample`).
    list_every: f64,
    cache_ttl: String,
    report: PathBuf,
}

impl Knobs {
    fn load() -> Self {
        let replicas = knob("SCALE_REPLICAS", 200usize);
        Self {
            replicas,
            namespaces: knob("SCALE_NAMESPACES", 4usize).max(1),
            duration: knob("SCALE_DURATION", 600.0),
            restore_seconds: knob("SCALE_RESTORE_SECONDS", 20.0),
            max_concurrent: knob("SCALE_MAX_CONCURRENT", 2usize),
            sample: knob("SCALE_SAMPLE_SECONDS", 2.0),
            list_every: knob("SCALE_LIST_SECONDS", 2.0),
            cache_ttl: knob("SCALE_SNAPSHOT_CACHE_TTL", "30s".to_owned()),
            report: knob(
                "SCALE_REPORT",
                PathBuf::from(format!("/tmp/pgro-scale-{replicas}.md")),
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The run.

fn standin_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PGRO_STANDIN_BINARY") {
        return PathBuf::from(p);
    }
    let sibling = PathBuf::from(env!("CARGO_BIN_EXE_pgro")).with_file_name("pgro-standin");
    assert!(
        sibling.is_file(),
        "no stand-in program: build it (cargo build -p pgro-testkit --bin pgro-standin) or set PGRO_STANDIN_BINARY; scripts/scale does both"
    );
    sibling
}

fn replica(name: &str) -> PostgresPhysicalReplica {
    e2e_support::replica_yaml(
        name,
        // A yearly schedule: each replica restores once, at creation, during the run.
        "kopiaSecretRef: {name: kopia-credentials}\nschedule: '0 0 1 1 *'\nsnapshotFilter:\n  tags: {area: postgres}\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement of several minutes with N replicas; run scripts/scale"]
async fn operator_at_scale() {
    let knobs = Knobs::load();
    eprintln!("scale: {knobs:?}");
    let components = Components::load();
    pgro_testkit::check_prerequisites().expect("root and host tools");
    let root = e2e_support::instance_support::test_root("pgro-scale");

    // One real PostgreSQL every stand-in instance forwards to.
    let upstream = standin_upstream(&components, 16, &root.path().join("upstream"), 400)
        .await
        .expect("shared PostgreSQL for the stand-ins");
    let control_plane = ControlPlaneConfig {
        audit_policy: Some(audit_policy_for_user(OPERATOR_USER)),
        // Every replica and every restore has a Service: more than the default /24 holds.
        service_cluster_ip_range: "10.0.0.0/16".into(),
        ..ControlPlaneConfig::default()
    };
    let mut kubelet = KubeletConfig::from_components(&components);
    let operator_binary = std::env::var_os("PGRO_BINARY")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_pgro")), PathBuf::from);
    kubelet.images.pgro_binary = Some(operator_binary.clone());
    kubelet.images.postgres_standin = Some(StandIn {
        binary: standin_binary(),
        upstream: format!("{}:{}", kubelet.pod_gateway, upstream.port),
        restore_delay: Duration::from_secs_f64(knobs.restore_seconds),
    });
    let env = TestEnv::start(components.clone(), control_plane, kubelet)
        .await
        .expect("control plane and kubelet");
    let t_setup = now();
    let _upstream_exposed = env
        .kubelet()
        .expose(upstream.port, upstream.addr())
        .unwrap();
    let minio = Minio::start(&components, &root.path().join("minio"), &[BUCKET])
        .await
        .expect("MinIO");
    let _minio_exposed = env
        .kubelet()
        .expose(
            minio.port,
            SocketAddr::from((Ipv4Addr::LOCALHOST, minio.port)),
        )
        .unwrap();
    let source = root.path().join("source");
    Postgres::new(&components, 16)
        .unwrap()
        .create_datadir(&source, 10)
        .expect("PostgreSQL 16 data directory");
    let repo = KopiaRepo::create_s3(
        &components,
        &minio,
        BUCKET,
        "scale/",
        PASSWORD,
        &root.path().join("kopia"),
    )
    .unwrap();
    let snapshot = repo
        .snapshot(&source, &["--tags", "area:postgres"])
        .unwrap();
    install_operator(
        &env,
        &[
            ("maxConcurrentRestores", &knobs.max_concurrent.to_string()),
            ("snapshotCacheTtl", &knobs.cache_ttl),
        ],
    )
    .await;
    eprintln!(
        "scale: world ready in {:.0} s (snapshot {snapshot}, operator {})",
        now() - t_setup,
        operator_binary.display()
    );
    let client = env.client().unwrap();
    let audit_path = env
        .control_plane()
        .audit_log_path()
        .expect("audit log")
        .to_owned();
    let apiserver_metrics = |client: Client| async move {
        let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
        tokio::time::timeout(Duration::from_secs(30), client.request_text(request))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
    };

    // The harness's view, from its own watches.
    let watched = Arc::new(Mutex::new(Watched {
        max_concurrent: knobs.max_concurrent,
        ..Watched::default()
    }));
    spawn_watches(&client, watched.clone());

    // Namespaces, one Kopia Secret in each (the same repository), then the replicas.
    let namespaces: Vec<String> = (0..knobs.namespaces)
        .map(|i| format!("scale-{i}"))
        .collect();
    for ns in &namespaces {
        let api: Api<Namespace> = Api::all(client.clone());
        api.create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .unwrap();
        let data = BTreeMap::from([
            ("bucket".to_owned(), BUCKET.to_owned()),
            ("region".to_owned(), "us-east-1".to_owned()),
            ("repositoryPassword".to_owned(), PASSWORD.to_owned()),
            ("accessKeyId".to_owned(), MINIO_USER.to_owned()),
            ("secretAccessKey".to_owned(), MINIO_SECRET.to_owned()),
            (
                "endpoint".to_owned(),
                format!("{}:{}", env.kubelet().pod_gateway(), minio.port),
            ),
            ("disableTls".to_owned(), "true".to_owned()),
            ("prefix".to_owned(), repo.prefix.clone()),
        ]);
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some("kopia-credentials".into()),
                ..Default::default()
            },
            string_data: Some(data),
            ..Default::default()
        };
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        secrets
            .patch(
                "kopia-credentials",
                &PatchParams::apply("scale").force(),
                &Patch::Apply(&secret),
            )
            .await
            .unwrap();
    }
    let metrics_before = apiserver_metrics(client.clone()).await;
    let t0 = now();
    let creating = {
        let client = client.clone();
        let namespaces = namespaces.clone();
        let n = knobs.replicas;
        tokio::spawn(async move {
            futures::stream::iter(0..n)
                .map(|i| {
                    let ns = namespaces[i % namespaces.len()].clone();
                    let client = client.clone();
                    async move {
                        let api: Api<PostgresPhysicalReplica> = Api::namespaced(client, &ns);
                        api.create(&PostParams::default(), &replica(&format!("r{i:04}")))
                            .await
                            .map(|_| ())
                    }
                })
                .buffer_unordered(8)
                .try_collect::<Vec<()>>()
                .await
                .map(|_| now())
        })
    };

    // Sampling.
    let mut audit = AuditTail::default();
    let mut samples: Vec<Sample> = Vec::new();
    let mut operator = operator_handle(&env, &client).await;
    let replicas_api: Api<PostgresPhysicalReplica> = Api::all(client.clone());
    let mut created_at: Option<f64> = None;
    let mut creating = Some(creating);
    let http = reqwest::Client::new();
    let mut next = t0;
    let mut last_list = f64::MIN;
    while now() < t0 + knobs.duration {
        next += knobs.sample;
        let wait = next - now();
        if wait > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
        if let Some(task) = creating.as_ref()
            && task.is_finished()
        {
            let done = creating
                .take()
                .unwrap()
                .await
                .unwrap()
                .expect("replicas created");
            created_at = Some(done);
            eprintln!(
                "scale: {} replicas created in {:.1} s",
                knobs.replicas,
                done - t0
            );
        }
        let t = now();
        audit.read(&audit_path);
        if operator.pid.is_none_or(|p| proc_rss_cpu(p).is_none()) {
            operator = operator_handle(&env, &client).await;
        }
        let (rss_kib, cpu_seconds) = operator
            .pid
            .and_then(proc_rss_cpu)
            .map_or((None, None), |(r, c)| (Some(r), Some(c)));
        let metrics_text = match &operator.metrics {
            Some(fwd) => match http
                .get(format!("http://{}/metrics", fwd.addr()))
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            },
            None => String::new(),
        };
        let due = t - last_list >= knobs.list_every - 0.1;
        if due {
            last_list = t;
        }
        // From the apiserver's watch cache (resourceVersion 0): one consistent view, without a quorum
        // read of every replica from etcd every sample.
        let list = if due {
            match tokio::time::timeout(
                Duration::from_secs(20),
                replicas_api.list(&ListParams::default().match_any()),
            )
            .await
            {
                Ok(Ok(list)) => Some(list),
                Ok(Err(error)) => {
                    eprintln!("scale: listing replicas failed: {error}");
                    None
                }
                Err(_) => {
                    eprintln!("scale: listing replicas took longer than 20 s");
                    None
                }
            }
        } else {
            None
        };
        let positions = list.as_ref().map(|list| {
            let rows: Vec<_> = list
                .items
                .iter()
                .map(|r| {
                    let st = r.status.clone().unwrap_or_default();
                    (
                        r.metadata.namespace.clone().unwrap_or_default(),
                        r.name_any(),
                        st.waiting_since.map(|t| t.0),
                        st.queue_position,
                    )
                })
                .collect();
            let rows: Vec<_> = rows
                .iter()
                .map(|(ns, n, s, p)| (ns.as_str(), n.as_str(), *s, *p))
                .collect();
            check_positions(&rows)
        });
        let (in_progress, ready, waiting) = {
            let mut w = watched.lock().unwrap();
            w.advance(t);
            let ready = w.replicas.values().filter(|r| r.phase == "Ready").count();
            let waiting = w.waiting();
            let restoring = w
                .replicas
                .values()
                .filter(|r| r.phase == "Restoring" || r.phase == "Ready")
                .count();
            if w.formed_at.is_none()
                && created_at.is_some()
                && waiting > 0
                && waiting + restoring >= knobs.replicas
            {
                w.formed_at = Some(t);
                eprintln!(
                    "scale: queue formed {:.1} s after the first replica",
                    t - t0
                );
            }
            (w.in_progress(), ready, waiting)
        };
        let sample = Sample {
            t,
            rss_kib,
            cpu_seconds,
            reconciles_replica: metric(
                &metrics_text,
                "pgro_reconciles_total",
                "controller=\"replica\"",
            ),
            reconciles_restore: metric(
                &metrics_text,
                "pgro_reconciles_total",
                "controller=\"restore\"",
            ),
            gauge_queue: metric(&metrics_text, "pgro_restore_queue_depth", ""),
            gauge_in_progress: metric(&metrics_text, "pgro_restores_in_progress", ""),
            replicas: list.as_ref().map_or(0, |l| l.items.len()),
            waiting,
            in_progress,
            ready,
            positions,
            load1: load1(),
        };
        let recent = audit
            .requests
            .iter()
            .filter(|r| r.t > t - knobs.sample)
            .count();
        eprintln!(
            "scale: t={:>5.0}s replicas={:>4} rss={:>6} KiB req/s={:>6.1} waiting={:>4} in-progress={} ready={:>4} positions {} load={:.1}",
            t - t0,
            sample.replicas,
            sample.rss_kib.unwrap_or(0),
            recent as f64 / knobs.sample,
            sample.waiting,
            sample.in_progress,
            sample.ready,
            match &sample.positions {
                Some(p) if p.exact() => "exact".to_owned(),
                Some(p) => format!("{p:?}"),
                None => "not listed".to_owned(),
            },
            sample.load1,
        );
        samples.push(sample);
    }
    let t_end = now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    audit.read(&audit_path);
    let metrics_after = apiserver_metrics(client.clone()).await;
    let watched = {
        let mut w = watched.lock().unwrap();
        w.advance(t_end);
        std::mem::take(&mut *w)
    };
    let report = report(
        &knobs,
        t0,
        t_end,
        created_at,
        &samples,
        &audit,
        &watched,
        &apiserver_requests(&metrics_before),
        &apiserver_requests(&metrics_after),
    );
    println!("{report}");
    std::fs::write(&knobs.report, &report).unwrap();
    eprintln!("scale: report written to {}", knobs.report.display());
    drop(operator);
    env.stop().await;
}
