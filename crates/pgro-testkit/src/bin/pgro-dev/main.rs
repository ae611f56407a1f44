//! `pgro-dev`: a local Kubernetes for developing pgro. Starts the test control plane and the process
//! kubelet, installs the CRDs, writes a kubeconfig, and runs until Ctrl-C, then stops everything.
//! `--demo` (what `scripts/demo` runs) also deploys the operator and the quick start and follows them.

mod demo;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use pgro_testkit::{Components, ControlPlaneConfig, KubeletConfig, TestEnv};

/// A local control plane + process kubelet for kubectl and the operator.
#[derive(Debug, Parser)]
#[command(name = "pgro-dev")]
struct Args {
    /// Also write the admin kubeconfig here.
    #[arg(long, default_value = "pgro-dev.kubeconfig")]
    kubeconfig: PathBuf,
    /// The binary the `pgro` image maps to (default: target/debug/pgro of this workspace, if built).
    #[arg(long, env = "PGRO_BINARY")]
    pgro_binary: Option<PathBuf>,
    /// CRD manifests to install (default: deploy/crds.yaml).
    #[arg(long)]
    crds: Vec<PathBuf>,
    /// Also start a sample backup repository: MinIO on loopback (reachable from pods), a PostgreSQL 16 data
    /// directory snapshotted into it by kopia (tag area=postgres), and the Secret `kopia-credentials` in
    /// namespace `pgro-example` for the README's quick start.
    #[arg(long)]
    sample: bool,
    /// The sample, the operator from deploy/operator.yaml and the quick start's replica, followed until it
    /// serves; then how to open psql, and a refresh on Enter.
    #[arg(long)]
    demo: bool,
}

/// What `--sample` keeps running, and what the demo needs to take another snapshot.
struct Sample {
    _minio: pgro_testkit::fixtures::Minio,
    _expose: pgro_testkit::Forward,
    repo: pgro_testkit::fixtures::KopiaRepo,
    postgres: pgro_testkit::fixtures::Postgres,
    data: PathBuf,
}

async fn sample(env: &TestEnv) -> anyhow::Result<Sample> {
    use pgro_testkit::fixtures::{KopiaRepo, MINIO_SECRET, MINIO_USER, Minio, Postgres};
    let dir = env.control_plane().dir().join("sample");
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let minio = Minio::start(env.components(), &dir.join("minio"), &["backups"]).await?;
    let expose = env.kubelet().expose(
        minio.port,
        std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, minio.port)),
    )?;
    let pg = Postgres::new(env.components(), 16)?;
    let data = dir.join("postgres-16");
    let (rows, _) = pg.create_datadir(&data, 1000)?;
    let password = "sample-repository-password";
    let repo = KopiaRepo::create_s3(
        env.components(),
        &minio,
        "backups",
        "pgro-example/",
        password,
        &dir.join("kopia"),
    )?;
    let snapshot = repo.snapshot(&data, &["--tags", "area:postgres"])?;
    let client = env.client()?;
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(client.clone());
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "pgro-example"}}))?;
    let apply = kube::api::PatchParams::apply("pgro-dev").force();
    namespaces
        .patch("pgro-example", &apply, &kube::api::Patch::Apply(&ns))
        .await?;
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "kopia-credentials", "namespace": "pgro-example"},
        "stringData": {
            "bucket": "backups",
            "region": "us-east-1",
            "repositoryPassword": password,
            "accessKeyId": MINIO_USER,
            "secretAccessKey": MINIO_SECRET,
            "endpoint": format!("{}:{}", env.kubelet().pod_gateway(), minio.port),
            "disableTls": "true",
            "prefix": repo.prefix,
        },
    }))?;
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client, "pgro-example");
    secrets
        .patch(
            "kopia-credentials",
            &apply,
            &kube::api::Patch::Apply(&secret),
        )
        .await?;
    println!(
        "  sample: MinIO on {} (pods: {}:{}), PostgreSQL 16 data ({rows} rows in table items) in kopia snapshot {snapshot}",
        minio.endpoint(),
        env.kubelet().pod_gateway(),
        minio.port
    );
    println!("          Secret pgro-example/kopia-credentials describes the repository");
    Ok(Sample {
        _minio: minio,
        _expose: expose,
        repo,
        postgres: pg,
        data,
    })
}

fn default_pgro_binary() -> Option<PathBuf> {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let candidate = target.join("debug/pgro");
    candidate.canonicalize().ok().filter(|c| c.is_file())
}

async fn run(args: Args) -> anyhow::Result<()> {
    let components = Components::load();
    let mut kubelet = KubeletConfig::from_components(&components);
    // Absolute: the kubelet starts containers in other directories.
    kubelet.images.pgro_binary = match args.pgro_binary {
        Some(p) => Some(
            std::fs::canonicalize(&p)
                .map_err(|e| anyhow::anyhow!("--pgro-binary {}: {e}", p.display()))?,
        ),
        None => default_pgro_binary(),
    };
    let crds = if args.crds.is_empty() {
        pgro_testkit::workspace_crds()
    } else {
        args.crds
    };
    // CRDs are installed after startup so that a CRD the apiserver rejects is reported, not fatal.
    let control_plane = ControlPlaneConfig {
        crds: Vec::new(),
        ..ControlPlaneConfig::default()
    };
    let env = TestEnv::start(components, control_plane, kubelet.clone()).await?;
    for path in &crds {
        match env.control_plane().install_crds(path).await {
            Ok(()) => eprintln!("pgro-dev: installed CRDs from {}", path.display()),
            Err(error) => eprintln!(
                "pgro-dev: WARNING: CRDs from {} not installed: {error:#}",
                path.display()
            ),
        }
    }
    std::fs::copy(env.control_plane().kubeconfig_path(), &args.kubeconfig)?;
    let kubeconfig = std::fs::canonicalize(&args.kubeconfig)?;
    // For scripts: the node network namespace (ClusterIPs and pod IPs are reachable inside it).
    let netns_file = kubeconfig.with_extension("netns");
    std::fs::write(&netns_file, format!("{}\n", env.kubelet().netns_path()))?;
    let kubectl = env
        .components()
        .get("PGRO_KUBECTL")
        .unwrap_or("kubectl")
        .to_owned();
    println!(
        "pgro-dev: control plane and node {} ready in {:.1?}",
        env.kubelet().node_name(),
        env.started_in()
    );
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!("  {kubectl} get nodes");
    match &kubelet.images.pgro_binary {
        Some(binary) => println!("  image pgro runs {}", binary.display()),
        None => println!("  image pgro is not mapped (build pgro or pass --pgro-binary)"),
    }
    println!(
        "  pod network {}/{} (node namespace held by PID {}):",
        env.kubelet().pod_gateway(),
        kubelet.pod_prefix,
        env.kubelet().netns_holder_pid()
    );
    println!(
        "    nsenter --net={} psql -h <pod IP> -U postgres",
        env.kubelet().netns_path()
    );
    println!("  run the operator where it reaches pods and the apiserver:");
    println!(
        "    KUBECONFIG={} nsenter --net={} target/debug/pgro operator",
        env.kubelet().node_kubeconfig_path().display(),
        env.kubelet().netns_path()
    );
    println!(
        "  logs: {}/logs, pods: {}/kubelet/pods",
        env.control_plane().dir().display(),
        env.control_plane().dir().display()
    );
    let sample = if args.sample || args.demo {
        Some(sample(&env).await?)
    } else {
        None
    };
    // Ctrl-C or SIGTERM at any point (the demo included) stops everything below.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stop = async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    };
    let outcome = match &sample {
        Some(s) if args.demo => tokio::select! {
            r = demo::run(&env, s, &kubeconfig) => r,
            () = stop => Ok(()),
        },
        _ => {
            println!("pgro-dev: Ctrl-C stops everything");
            stop.await;
            Ok(())
        }
    };
    eprintln!("pgro-dev: stopping");
    drop(sample);
    env.stop().await;
    let _ = std::fs::remove_file(&args.kubeconfig);
    let _ = std::fs::remove_file(&netns_file);
    outcome
}

fn main() -> ExitCode {
    let args = Args::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PGRO_TESTKIT_LOG")
                .unwrap_or_else(|_| "warn,kube_client=off".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    // The harness runtime outlives everything it starts (see pgro_testkit::harness).
    match pgro_testkit::harness().block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("pgro-dev: {error:#}");
            ExitCode::FAILURE
        }
    }
}
