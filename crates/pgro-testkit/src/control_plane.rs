//! etcd + kube-apiserver + kube-controller-manager on loopback, with random ports and fresh credentials.
//!
//! The flags follow controller-runtime's envtest (`pkg/internal/testing/controlplane`), plus the
//! controller-manager: without it there are no Jobs, ReplicaSets, EndpointSlices, garbage collection or
//! default ServiceAccounts, and the operator relies on all of those.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use crate::certs::{self, Material};
use crate::crds;
use crate::infra::{Components, Unavailable};
use crate::process::{Proc, ProcessSpec};

/// The gateway of the process kubelet's default pod network; the apiserver certificate covers it so
/// that pods can talk TLS to the apiserver through it.
pub const DEFAULT_POD_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 1);

/// How to start a control plane.
#[derive(Debug, Clone)]
pub struct ControlPlaneConfig {
    /// Where state, certificates and logs go (default: a fresh directory under `/tmp/pgro-testkit`).
    pub state_dir: Option<PathBuf>,
    /// CRD manifests to install and wait for (default: the workspace's `deploy/crds.yaml` when present).
    pub crds: Vec<PathBuf>,
    /// Extra IP addresses for the apiserver's serving certificate.
    pub extra_serving_ips: Vec<IpAddr>,
    /// How long each component may take to become healthy.
    pub start_timeout: Duration,
    /// An audit policy (YAML): when set, the apiserver writes audit events as JSON lines to
    /// `<state>/logs/audit.log` ([`ControlPlane::audit_log_path`]).
    pub audit_policy: Option<String>,
    /// More kube-apiserver flags (`--name=value`), appended after the harness's own.
    pub extra_apiserver_args: Vec<String>,
    /// `--service-cluster-ip-range` (default `10.0.0.0/24`: 254 Services; each replica and each restore
    /// has one, so a scale run needs more, e.g. `10.0.0.0/16`). Its first address must stay `10.0.0.1`,
    /// which the serving certificate covers.
    pub service_cluster_ip_range: String,
}

/// An audit policy that records every request of one user at level `Metadata` (who, verb, resource,
/// response code, arrival and completion times; no bodies) once, when it completes, and nothing else.
pub fn audit_policy_for_user(user: &str) -> String {
    format!(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived, ResponseStarted]\nrules:\n  - level: Metadata\n    users: [{user:?}]\n  - level: None\n"
    )
}

impl Default for ControlPlaneConfig {
    fn default() -> Self {
        let default_crds = crds::workspace_crds();
        Self {
            state_dir: None,
            crds: default_crds.into_iter().filter(|p| p.exists()).collect(),
            extra_serving_ips: vec![IpAddr::V4(DEFAULT_POD_GATEWAY)],
            start_timeout: Duration::from_secs(90),
            audit_policy: None,
            extra_apiserver_args: Vec::new(),
            service_cluster_ip_range: "10.0.0.0/24".into(),
        }
    }
}

/// A running control plane. Stop it with [`ControlPlane::stop`]; dropping it kills the processes.
#[derive(Debug)]
pub struct ControlPlane {
    dir: PathBuf,
    owns_dir: bool,
    api_port: u16,
    material: Material,
    config: Config,
    kubeconfig_path: PathBuf,
    audit_log: Option<PathBuf>,
    started_in: Duration,
    // Declared in stop order: dropping kills the controller-manager first, etcd last.
    controller_manager: Proc,
    apiserver: Proc,
    etcd: Proc,
}

/// A free loopback TCP port outside the ephemeral range (see [`crate::ports`]).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(crate::ports::free_port()?)
}

/// The root of the harness's state directories; each harness uses `<root>/<pid>-<random>`.
pub(crate) fn state_root() -> PathBuf {
    std::env::var_os("PGRO_TESTKIT_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/pgro-testkit"))
}

/// A fresh state directory, world-traversable (pods run as non-root users below it). Directories left
/// by harnesses that no longer run (killed before they could clean up) are removed first.
pub(crate) fn new_state_dir() -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let root = state_root();
    std::fs::create_dir_all(&root)?;
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))?;
    if let Ok(entries) = std::fs::read_dir(&root) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let owner = name
                .to_str()
                .and_then(|n| n.split('-').next())
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = owner
                && pid != std::process::id()
                && !Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = root.join(format!(
        "{}-{}",
        std::process::id(),
        certs::random_token(6).to_lowercase()
    ));
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    Ok(dir)
}

impl ControlPlane {
    /// Starts etcd, kube-apiserver and kube-controller-manager, waits until each is healthy, and
    /// installs the configured CRDs.
    ///
    /// # Errors
    /// [`Unavailable`] when a binary is not installed; otherwise the failing component with its log tail.
    pub async fn start(
        components: &Components,
        config: ControlPlaneConfig,
    ) -> anyhow::Result<Self> {
        let etcd_bin = components.path("PGRO_ETCD")?;
        let apiserver_bin = components.path("PGRO_KUBE_APISERVER")?;
        let kcm_bin = components.path("PGRO_KUBE_CONTROLLER_MANAGER")?;
        if crate::tools::find("setpriv").is_none() {
            return Err(Unavailable {
                what: "setpriv".into(),
                hint: "install util-linux".into(),
            }
            .into());
        }
        let begin = Instant::now();
        let owns_dir = config.state_dir.is_none();
        let dir = match &config.state_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                dir.clone()
            }
            None => new_state_dir()?,
        };
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        let material = certs::generate(&dir.join("certs"), &config.extra_serving_ips)?;

        let (etcd_port, peer_port, api_port) = (free_port()?, free_port()?, free_port()?);
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd = Proc::spawn(
            ProcessSpec::new("etcd", &etcd_bin)
                .args(["--data-dir".as_ref(), dir.join("etcd").as_os_str()])
                .args([
                    "--listen-client-urls",
                    &etcd_url,
                    "--advertise-client-urls",
                    &etcd_url,
                ])
                .args([
                    "--listen-peer-urls",
                    &peer_url,
                    "--initial-advertise-peer-urls",
                    &peer_url,
                ])
                .args([
                    "--initial-cluster",
                    &format!("default={peer_url}"),
                    "--unsafe-no-fsync",
                ])
                .args(["--log-level", "warn"])
                .log_to(logs.join("etcd.log")),
        )
        .await?;
        wait_for("etcd", &etcd, config.start_timeout, || async {
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", etcd_port)).await?;
            let response =
                crate::http::get(stream, "127.0.0.1", "/health", &[], Duration::from_secs(2))
                    .await?;
            anyhow::ensure!(
                response.body.contains("\"health\":\"true\""),
                "etcd /health: {}",
                response.body
            );
            Ok(())
        })
        .await?;
        tracing::info!(
            component = "etcd",
            elapsed_ms = begin.elapsed().as_millis() as u64,
            "component healthy"
        );

        let server = format!("https://127.0.0.1:{api_port}");
        let mut audit_args = Vec::new();
        let audit_log = match &config.audit_policy {
            Some(policy) => {
                let policy_file = dir.join("audit-policy.yaml");
                std::fs::write(&policy_file, policy)?;
                let log = logs.join("audit.log");
                audit_args.push(format!("--audit-policy-file={}", policy_file.display()));
                audit_args.push(format!("--audit-log-path={}", log.display()));
                audit_args.push("--audit-log-format=json".to_owned());
                audit_args.push("--audit-log-maxsize=0".to_owned());
                Some(log)
            }
            None => None,
        };
        let apiserver = Proc::spawn(
            ProcessSpec::new("kube-apiserver", &apiserver_bin)
                .arg(format!("--etcd-servers={etcd_url}"))
                .args(["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1"])
                .arg(format!("--secure-port={api_port}"))
                .arg(format!("--cert-dir={}", dir.join("certs").display()))
                .arg(format!(
                    "--tls-cert-file={}",
                    material.serving_cert_file.display()
                ))
                .arg(format!(
                    "--tls-private-key-file={}",
                    material.serving_key_file.display()
                ))
                .arg(format!("--client-ca-file={}", material.ca_file.display()))
                .arg(format!(
                    "--service-cluster-ip-range={}",
                    config.service_cluster_ip_range
                ))
                .arg("--allow-privileged=true")
                .args(["--authorization-mode=RBAC", "--profiling=false"])
                .arg(format!(
                    "--token-auth-file={}",
                    material.token_file.display()
                ))
                .arg(format!("--service-account-issuer={server}"))
                .arg(format!(
                    "--service-account-key-file={}",
                    material.sa_pub_file.display()
                ))
                .arg(format!(
                    "--service-account-signing-key-file={}",
                    material.sa_key_file.display()
                ))
                .args(&audit_args)
                .args(&config.extra_apiserver_args)
                .log_to(logs.join("kube-apiserver.log")),
        )
        .await?;

        let kubeconfig_path = dir.join("admin.kubeconfig");
        let kubeconfig_text =
            kubeconfig_yaml(&server, &material.ca_pem, &material.admin_token, "default");
        std::fs::write(&kubeconfig_path, &kubeconfig_text)?;
        let config_k = client_config(&kubeconfig_text).await?;
        wait_for(
            "kube-apiserver",
            &apiserver,
            config.start_timeout,
            || async {
                let client = Client::try_from(config_k.clone())?;
                let request = http::Request::get("/readyz").body(Vec::new())?;
                let text = client.request_text(request).await?;
                anyhow::ensure!(text.trim() == "ok", "/readyz: {text}");
                Ok(())
            },
        )
        .await?;
        tracing::info!(
            component = "kube-apiserver",
            elapsed_ms = begin.elapsed().as_millis() as u64,
            "component healthy"
        );

        let kcm_kubeconfig = dir.join("controller-manager.kubeconfig");
        std::fs::write(
            &kcm_kubeconfig,
            kubeconfig_yaml(
                &server,
                &material.ca_pem,
                &material.controller_manager_token,
                "default",
            ),
        )?;
        let controller_manager = Proc::spawn(
            ProcessSpec::new("kube-controller-manager", &kcm_bin)
                .arg(format!("--kubeconfig={}", kcm_kubeconfig.display()))
                .args(["--leader-elect=false", "--secure-port=0"])
                .arg(format!(
                    "--service-account-private-key-file={}",
                    material.sa_key_file.display()
                ))
                .arg(format!("--root-ca-file={}", material.ca_file.display()))
                .arg("--controllers=*,-node-lifecycle-controller")
                .log_to(logs.join("kube-controller-manager.log")),
        )
        .await?;
        // The controller-manager serves no health endpoint here (--secure-port=0); the ServiceAccount
        // controller creating `default/default` shows its controllers run, and test namespaces need it.
        wait_for(
            "kube-controller-manager",
            &controller_manager,
            config.start_timeout,
            || async {
                let client = Client::try_from(config_k.clone())?;
                Api::<ServiceAccount>::namespaced(client, "default")
                    .get("default")
                    .await?;
                Ok(())
            },
        )
        .await?;
        tracing::info!(
            component = "kube-controller-manager",
            elapsed_ms = begin.elapsed().as_millis() as u64,
            "component healthy"
        );

        let control_plane = Self {
            dir,
            owns_dir,
            api_port,
            material,
            config: config_k,
            kubeconfig_path,
            audit_log,
            started_in: Duration::ZERO,
            controller_manager,
            apiserver,
            etcd,
        };
        for path in &config.crds {
            crds::install(&control_plane.client()?, path).await?;
        }
        Ok(Self {
            started_in: begin.elapsed(),
            ..control_plane
        })
    }

    /// A new client for the *current* tokio runtime (a `kube::Client` spawns its connection tasks on
    /// the runtime that creates it, so clients must not be shared across `#[tokio::test]` runtimes).
    ///
    /// # Errors
    /// When the TLS configuration cannot be built.
    pub fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::try_from(self.config.clone())?)
    }

    /// The client configuration (cluster-admin).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The admin kubeconfig file (for `kubectl --kubeconfig` or the operator's `KUBECONFIG`).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// A kubeconfig (YAML) for reaching the apiserver at `server` (e.g. through the pod network).
    pub fn kubeconfig_yaml_for(&self, server: &str) -> String {
        kubeconfig_yaml(
            server,
            &self.material.ca_pem,
            &self.material.admin_token,
            "default",
        )
    }

    /// The apiserver's loopback port.
    pub fn api_port(&self) -> u16 {
        self.api_port
    }

    /// `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.api_port)
    }

    /// The CA certificate (PEM) that signed the apiserver's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.material.ca_pem
    }

    /// The state directory (logs under `logs/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The audit log (JSON lines), when [`ControlPlaneConfig::audit_policy`] was set.
    pub fn audit_log_path(&self) -> Option<&Path> {
        self.audit_log.as_deref()
    }

    /// How long [`ControlPlane::start`] took.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The PIDs of etcd, kube-apiserver and kube-controller-manager.
    pub fn pids(&self) -> [u32; 3] {
        [
            self.etcd.pid(),
            self.apiserver.pid(),
            self.controller_manager.pid(),
        ]
    }

    /// Installs CRDs from a YAML file and waits until they are Established.
    ///
    /// # Errors
    /// When the file cannot be read or parsed, the apiserver rejects a CRD, or it is not Established in time.
    pub async fn install_crds(&self, path: &Path) -> anyhow::Result<()> {
        crds::install(&self.client()?, path).await
    }

    /// Stops the controller-manager, the apiserver and etcd (SIGTERM, then SIGKILL) and removes the state
    /// directory it created (kept when `PGRO_TESTKIT_KEEP=1`).
    pub async fn stop(self) {
        self.controller_manager.stop(Duration::from_secs(5)).await;
        self.apiserver.stop(Duration::from_secs(10)).await;
        self.etcd.stop(Duration::from_secs(5)).await;
        if self.owns_dir && std::env::var_os("PGRO_TESTKIT_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Polls `check` every 100 ms until it succeeds, the process exits, or `timeout` passes.
pub(crate) async fn wait_for<F, Fut>(
    what: &str,
    proc: &Proc,
    timeout: Duration,
    mut check: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = anyhow!("not checked yet");
    loop {
        if let Some(status) = proc.exit_status() {
            bail!(
                "{what} exited ({status}) during startup; log tail:\n{}",
                proc.log_tail(4000)
            );
        }
        match check().await {
            Ok(()) => return Ok(()),
            Err(error) => last_error = error,
        }
        if Instant::now() > deadline {
            bail!(
                "{what} not healthy after {timeout:?}: {last_error:#}; log tail:\n{}",
                proc.log_tail(4000)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn kubeconfig_yaml(server: &str, ca_pem: &str, token: &str, namespace: &str) -> String {
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let value = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "pgro-testkit", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": "pgro-testkit-admin", "user": {"token": token}}],
        "contexts": [{"name": "pgro-testkit", "context": {"cluster": "pgro-testkit", "user": "pgro-testkit-admin", "namespace": namespace}}],
        "current-context": "pgro-testkit",
    });
    serde_yaml::to_string(&value).unwrap_or_default()
}

async fn client_config(kubeconfig_yaml: &str) -> anyhow::Result<Config> {
    let kubeconfig =
        Kubeconfig::from_yaml(kubeconfig_yaml).context("parsing the generated kubeconfig")?;
    let mut config =
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    config.read_timeout = Some(Duration::from_secs(300));
    Ok(config)
}
