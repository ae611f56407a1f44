//! `pgro-dev`: a local Kubernetes for developing pgro. Starts the test control plane and the process
//! kubelet, installs the CRDs, writes a kubeconfig, and runs until Ctrl-C, then stops everything.

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
    kubelet.images.pgro_binary = args.pgro_binary.or_else(default_pgro_binary);
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
    println!("pgro-dev: Ctrl-C stops everything");

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    eprintln!("pgro-dev: stopping");
    env.stop().await;
    let _ = std::fs::remove_file(&args.kubeconfig);
    Ok(())
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
