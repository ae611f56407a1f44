//! `pgro-dev --demo`: the operator from `deploy/operator.yaml` and the README's quick start on the local
//! cluster, with a progress line whenever something a user would look at changes, until the replica serves;
//! then the sample's rows read through it as the analytics user, the command that opens psql, and a
//! refresh on Enter (more rows, a new kopia snapshot, a one-minute schedule) to watch a switchover.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use pgro_testkit::TestEnv;
use pgro_testkit::service_psql::{ServicePsql, replica_ca};
use serde_json::Value;
use tokio::io::AsyncBufReadExt as _;

use super::Sample;

const NS: &str = "pgro-example";
const REPLICA: &str = "test";
const OPERATOR_NS: &str = "pgro-system";
/// How long the demo waits for each stage before saying what it saw.
const PATIENCE: Duration = Duration::from_secs(600);

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn api(client: &Client, kind: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("pgro.bes.au", "v1alpha1", kind);
    let ar = ApiResource::from_gvk(&gvk);
    Api::namespaced_with(client.clone(), NS, &ar)
}

/// Prints `line` with the time since `start`, once per change.
struct Progress {
    start: Instant,
    last: String,
}

impl Progress {
    fn show(&mut self, line: String) {
        if line != self.last {
            println!("  [{:>6.1}s] {line}", self.start.elapsed().as_secs_f64());
            self.last = line;
        }
    }
}

fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("-")
        .to_owned()
}

/// One line about the replica and its restores: what a user would read from `kubectl get`.
async fn replica_line(client: &Client) -> anyhow::Result<(String, Value)> {
    let replica = match api(client, "PostgresPhysicalReplica")
        .get_opt(REPLICA)
        .await?
    {
        Some(r) => serde_json::to_value(r)?,
        None => return Ok(("replica not created yet".into(), Value::Null)),
    };
    let phase = replica
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending");
    let mut line = format!("replica {REPLICA}: {phase}");
    if let Some(q) = replica
        .pointer("/status/queuePosition")
        .and_then(Value::as_u64)
        .filter(|q| *q > 0)
    {
        line.push_str(&format!(", queue position {q}"));
    }
    // A condition off its healthy value says what the operator waits for or what is wrong (these two are
    // healthy when False; every other replica condition when True).
    for c in replica
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let healthy = if ["RestoreSchedulingSuspended", "RestoreDeferred"]
            .contains(&c["type"].as_str().unwrap_or(""))
        {
            "False"
        } else {
            "True"
        };
        if c["status"] != healthy {
            line.push_str(&format!(" · {}: {}", text(c, "/type"), text(c, "/message")));
        }
    }
    let restores = api(client, "PostgresPhysicalRestore")
        .list(&ListParams::default().labels(&format!("pgro.bes.au/replica={REPLICA}")))
        .await?;
    for r in restores.items {
        let r = serde_json::to_value(r)?;
        line.push_str(&format!(
            " · restore {}: {}",
            text(&r, "/metadata/name"),
            text(&r, "/status/phase")
        ));
        let job = text(&r, "/status/restoreJob/phase");
        if job != "-" {
            line.push_str(&format!(" (Job {job})"));
        }
    }
    Ok((line, replica))
}

/// Follows the replica until `done` holds, a line per change.
async fn follow(
    client: &Client,
    progress: &mut Progress,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (line, replica) = replica_line(client).await?;
        progress.show(line);
        if done(&replica) {
            return Ok(replica);
        }
        if Instant::now() > deadline {
            bail!(
                "{what} did not happen within {PATIENCE:?}; the last state is above (operator logs: \
                 `kubectl -n {OPERATOR_NS} logs deploy/pgro-operator`)"
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn operator_ready(client: &Client, progress: &mut Progress) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), OPERATOR_NS);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let list = pods
            .list(&ListParams::default().labels("app.kubernetes.io/component=operator"))
            .await?;
        let state = list.items.first().map_or("no pod yet".to_owned(), |p| {
            let s = p.status.clone().unwrap_or_default();
            let ready = s
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            // Why a container does not run (a missing image mapping, a crash), as kubectl shows it.
            let waiting = s
                .container_statuses
                .iter()
                .flatten()
                .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
                .map(|w| {
                    format!(
                        " ({}: {})",
                        w.reason.clone().unwrap_or_default(),
                        w.message.clone().unwrap_or_default()
                    )
                })
                .collect::<String>();
            format!(
                "pod {}: {}{waiting}{}",
                p.metadata.name.clone().unwrap_or_default(),
                s.phase.unwrap_or_default(),
                if ready { ", Ready" } else { "" }
            )
        });
        let ready = state.ends_with(", Ready");
        progress.show(format!("operator {state}"));
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the operator was not ready within {PATIENCE:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `SQL` through the replica's Service as the analytics user, from the node's network namespace, over TLS
/// checked as `sslmode=verify-full` with the CA from `<replica>-ca`.
fn psql(env: &TestEnv, ip: &str, password: &str, sql: &str) -> anyhow::Result<String> {
    ServicePsql {
        host: &format!("{REPLICA}.{NS}.svc"),
        ip,
        user: "analytics",
        password,
        sslmode: "verify-full",
        ca: &ca_file(),
    }
    .run(env, sql)
}

/// Where the demo keeps the replica's CA for psql: `<replica>-ca.crt` in the working directory.
fn ca_file() -> PathBuf {
    let name = format!("{REPLICA}-ca.crt");
    std::env::current_dir().map_or_else(|_| PathBuf::from(&name), |d| d.join(&name))
}

async fn served_count(env: &TestEnv, client: &Client) -> anyhow::Result<(String, String)> {
    let secret = Api::<Secret>::namespaced(client.clone(), NS)
        .get(&format!("{REPLICA}-creds"))
        .await?;
    let data = secret.data.unwrap_or_default();
    let password = data
        .get("password")
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .context("no password in the credentials Secret")?;
    let ip = Api::<Service>::namespaced(client.clone(), NS)
        .get(REPLICA)
        .await?
        .spec
        .and_then(|s| s.cluster_ip)
        .context("the replica Service has no cluster IP")?;
    // What a client of the replica verifies the server with (as the printed psql command does).
    let ca = replica_ca(client, NS, REPLICA).await?;
    std::fs::write(ca_file(), ca).context("writing the CA file")?;
    let count = psql(env, &ip, &password, "SELECT count(*) FROM items")?;
    Ok((ip, count))
}

/// More rows in the sample database, a new snapshot, and a schedule that picks it up within a minute.
async fn refresh(client: &Client, sample: &Sample) -> anyhow::Result<String> {
    sample.postgres.with_server(
        &sample.data,
        "INSERT INTO items SELECT g, md5(g::text) FROM generate_series((SELECT max(id) + 1 FROM items), \
         (SELECT max(id) + 1000 FROM items)) g",
    )?;
    let id = sample
        .repo
        .snapshot(&sample.data, &["--tags", "area:postgres"])?;
    let patch = serde_json::json!({"spec": {"schedule": "* * * * *", "scheduleJitter": "0"}});
    api(client, "PostgresPhysicalReplica")
        .patch(REPLICA, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(id)
}

/// Runs the demo; the caller stops it at Ctrl-C or SIGTERM.
pub(crate) async fn run(env: &TestEnv, sample: &Sample, kubeconfig: &Path) -> anyhow::Result<()> {
    let client = env.client()?;
    let mut progress = Progress {
        start: Instant::now(),
        last: String::new(),
    };
    println!("pgro-dev: deploying the operator (deploy/operator.yaml)");
    let manifest = std::fs::read_to_string(workspace().join("deploy/operator.yaml"))?;
    pgro_testkit::manifests::apply(&client, &manifest, "pgro-dev").await?;
    operator_ready(&client, &mut progress).await?;
    println!("pgro-dev: applying the quick start (examples/quick-start.yaml)");
    let quick_start = std::fs::read_to_string(workspace().join("examples/quick-start.yaml"))?;
    pgro_testkit::manifests::apply(&client, &quick_start, "pgro-dev").await?;
    let replica = follow(&client, &mut progress, "the replica becoming Ready", |r| {
        r.pointer("/status/phase") == Some(&Value::from("Ready"))
    })
    .await?;
    let (ip, count) = served_count(env, &client).await?;
    let kubectl = env.components().get("PGRO_KUBECTL").unwrap_or("kubectl");
    let psql_bin = env.components().get("PGRO_PSQL").unwrap_or("psql");
    println!(
        "pgro-dev: replica {REPLICA} serves restore {} — {count} rows in table items, read as analytics \
         through Service {REPLICA} ({ip})",
        text(&replica, "/status/currentRestore")
    );
    println!("\nOpen psql as the analytics user (another terminal, as root, in this directory):");
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!(
        "  {kubectl} -n {NS} get secret {REPLICA}-ca -o jsonpath='{{.data.ca\\.crt}}' | base64 -d > {REPLICA}-ca.crt"
    );
    println!(
        "  nsenter --net={} env PGPASSWORD=\"$({kubectl} -n {NS} get secret {REPLICA}-creds -o jsonpath='{{.data.password}}' | base64 -d)\" \\\n    {psql_bin} \"host={REPLICA}.{NS}.svc hostaddr={ip} user=analytics dbname=postgres sslmode=verify-full sslrootcert={REPLICA}-ca.crt\"",
        env.kubelet().netns_path()
    );
    println!(
        "  (TLS only: the server's certificate names {REPLICA}.{NS}.svc; hostaddr stands in for cluster DNS)"
    );
    println!("\nTry next:");
    println!(
        "  * press Enter here: 1000 rows are added to the sample database, kopia takes a new snapshot and the\n    replica's schedule becomes every minute (jitter 0); the switchover shows below"
    );
    println!("  * {kubectl} -n {NS} get ppr,pprestore -w");
    println!("  * writes are refused: INSERT INTO items VALUES (0, 'x') in psql");
    println!("pgro-dev: Ctrl-C stops everything");

    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        if !matches!(lines.next_line().await, Ok(Some(_))) {
            // No terminal (stdin closed): only a signal ends the demo (the caller waits for it).
            std::future::pending::<()>().await;
        }
        let before = text(&replica_line(&client).await?.1, "/status/currentRestore");
        let id = refresh(&client, sample).await?;
        println!("pgro-dev: new snapshot {id}; schedule '* * * * *', jitter 0");
        let replica = follow(&client, &mut progress, "the switchover", |r| {
            r.pointer("/status/phase") == Some(&Value::from("Ready"))
                && r.pointer("/status/currentRestore")
                    .and_then(Value::as_str)
                    .is_some_and(|c| c != before)
        })
        .await?;
        let (_, count) = served_count(env, &client).await?;
        println!(
            "pgro-dev: switched over to {} — {count} rows now; press Enter again or Ctrl-C",
            text(&replica, "/status/currentRestore")
        );
    }
}
