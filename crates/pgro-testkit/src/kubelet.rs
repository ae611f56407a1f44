//! The process kubelet: a fake Node whose pods really run, as host processes in namespaces.
//!
//! It registers a Node (Ready, Lease heartbeat), binds unscheduled pods to it, provisions a directory per
//! PersistentVolumeClaim, and runs each pod in a sandbox (network, IPC, UTS and mount namespaces, an
//! address on the pod network) with one PID namespace and root filesystem per container. See
//! `docs/testing.md` for the model and its limits.

mod envvars;
mod image;
mod network;
mod node;
mod pods;
mod probes;
mod rootfs;
mod runtime;
mod services;
mod status;
mod storage;
mod supervisor;
mod volumes;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use kube::Client;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub use image::{ImageMap, PGRO_IN_CONTAINER, STANDIN_IN_CONTAINER, StandIn};
pub use network::Forward;
pub use storage::{PROVISIONER, STORAGE_CLASS};

use crate::control_plane::{ControlPlane, DEFAULT_POD_GATEWAY};
use crate::infra::{Components, Unavailable};
use crate::process::{ProcessSpec, harness};
use crate::tools::{KUBELET_TOOLS, tool};
use network::NodeNetwork;
use runtime::{ContainerSpec, Running};

/// The port on the pod-network gateway where pods reach the apiserver (`KUBERNETES_SERVICE_PORT`).
pub const POD_NETWORK_API_PORT: u16 = 443;

/// How to run the kubelet.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// The Node's name.
    pub node_name: String,
    /// The pod network's gateway (the bridge address in the node namespace); pods get the next addresses.
    pub pod_gateway: Ipv4Addr,
    /// The pod network's prefix length.
    pub pod_prefix: u8,
    /// Image → program table.
    pub images: ImageMap,
    /// First container restart back-off, doubled per restart (the real kubelet starts at 10 s).
    pub restart_backoff: Duration,
    /// Back-off cap.
    pub max_restart_backoff: Duration,
}

impl KubeletConfig {
    /// Defaults: node `pgro-node`, pod network 10.244.0.0/16, every installed PostgreSQL major, the
    /// `pgro` binary from `PGRO_BINARY` when set, and stand-ins when `PGRO_KUBELET_POSTGRES_STANDIN` and
    /// `PGRO_KUBELET_STANDIN_BINARY` are set ([`StandIn::from_env`]).
    pub fn from_components(components: &Components) -> Self {
        Self {
            node_name: "pgro-node".into(),
            pod_gateway: DEFAULT_POD_GATEWAY,
            pod_prefix: 16,
            images: ImageMap {
                pgro_binary: std::env::var_os("PGRO_BINARY").map(PathBuf::from),
                postgres: components.postgres_majors(),
                postgres_standin: StandIn::from_env(),
            },
            restart_backoff: Duration::from_secs(1),
            max_restart_backoff: Duration::from_secs(30),
        }
    }
}

/// The latest start of a container: its spec, process and restart count.
type StartedContainer = (ContainerSpec, Arc<Running>, i32);

/// What public helpers need to know about a running pod.
#[derive(Debug)]
pub(crate) struct PodRecord {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub hostname: String,
    pub dir: PathBuf,
    ip: Mutex<Option<IpAddr>>,
    containers: Mutex<BTreeMap<String, StartedContainer>>,
}

impl PodRecord {
    fn new(namespace: &str, name: &str, uid: &str, hostname: &str, dir: PathBuf) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
            hostname: hostname.into(),
            dir,
            ip: Mutex::new(None),
            containers: Mutex::new(BTreeMap::new()),
        }
    }

    fn set_ip(&self, ip: IpAddr) {
        if let Ok(mut slot) = self.ip.lock() {
            *slot = Some(ip);
        }
    }

    pub(crate) fn set_running(
        &self,
        container: &str,
        spec: ContainerSpec,
        running: Arc<Running>,
        restarts: i32,
    ) {
        if let Ok(mut map) = self.containers.lock() {
            map.insert(container.into(), (spec, running, restarts));
        }
    }

    fn container(&self, name: Option<&str>) -> Option<StartedContainer> {
        let map = self.containers.lock().ok()?;
        match name {
            Some(name) => map.get(name).cloned(),
            None => map.values().next().cloned(),
        }
    }
}

/// Shared by the kubelet's tasks.
pub(crate) struct Ctx {
    pub client: Client,
    pub node_name: String,
    pub dir: PathBuf,
    pub network: Arc<NodeNetwork>,
    pub images: ImageMap,
    pub backoff: (Duration, Duration),
    pods: Mutex<BTreeMap<String, Arc<PodRecord>>>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("node_name", &self.node_name)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    /// The `KUBERNETES_SERVICE_*` variables every container gets (in-cluster client configuration).
    pub(crate) fn service_env(&self) -> Vec<(String, String)> {
        let host = self.network.gateway().to_string();
        let port = POD_NETWORK_API_PORT.to_string();
        vec![
            ("KUBERNETES_SERVICE_HOST".into(), host.clone()),
            ("KUBERNETES_SERVICE_PORT".into(), port.clone()),
            ("KUBERNETES_SERVICE_PORT_HTTPS".into(), port.clone()),
            ("KUBERNETES_PORT".into(), format!("tcp://{host}:{port}")),
        ]
    }

    fn register(&self, record: Arc<PodRecord>) {
        if let Ok(mut pods) = self.pods.lock() {
            pods.insert(record.uid.clone(), record);
        }
    }

    fn unregister(&self, uid: &str) {
        if let Ok(mut pods) = self.pods.lock() {
            pods.remove(uid);
        }
    }

    fn find(&self, namespace: &str, name: &str) -> Option<Arc<PodRecord>> {
        let pods = self.pods.lock().ok()?;
        pods.values()
            .find(|p| p.namespace == namespace && p.name == name)
            .cloned()
    }
}

/// A running process kubelet. Dropping it (or [`Kubelet::stop`]) kills every pod process.
#[derive(Debug)]
pub struct Kubelet {
    ctx: Arc<Ctx>,
    tasks: Vec<JoinHandle<()>>,
    _api: Forward,
    node_kubeconfig: PathBuf,
}

/// Checks that the kubelet can run here: root (namespaces, mounts) and the host tools.
///
/// # Errors
/// [`Unavailable`] naming what is missing.
pub fn check_prerequisites() -> Result<(), Unavailable> {
    if !nix::unistd::geteuid().is_root() {
        return Err(Unavailable {
            what: "root privileges".into(),
            hint: "the process kubelet creates network and mount namespaces; run the tests as root"
                .into(),
        });
    }
    for name in KUBELET_TOOLS {
        if crate::tools::find(name).is_none() {
            return Err(Unavailable {
                what: format!("host tool {name}"),
                hint: "install util-linux, iproute2 and coreutils (scripts/testinfra.sh host)"
                    .into(),
            });
        }
    }
    Ok(())
}

impl Kubelet {
    /// Starts the kubelet against `control_plane`: pod network, Node, default StorageClass, and the
    /// binder, provisioner and pod manager tasks (on the harness runtime).
    ///
    /// # Errors
    /// [`Unavailable`] without root or host tools; otherwise the failing step.
    pub async fn start(
        control_plane: &ControlPlane,
        config: KubeletConfig,
    ) -> anyhow::Result<Self> {
        check_prerequisites()?;
        let client_config = control_plane.config().clone();
        let dir = control_plane.dir().join("kubelet");
        let node_kubeconfig = dir.join("node.kubeconfig");
        let server = format!("https://{}:{POD_NETWORK_API_PORT}", config.pod_gateway);
        let kubeconfig_yaml = control_plane.kubeconfig_yaml_for(&server);
        let api_target = SocketAddr::from((Ipv4Addr::LOCALHOST, control_plane.api_port()));
        let node_kubeconfig_path = node_kubeconfig.clone();
        // Everything long-lived (clients, tasks, sockets) must belong to the harness runtime.
        harness()
            .spawn(async move {
                std::fs::create_dir_all(dir.join("volumes"))?;
                std::fs::create_dir_all(dir.join("pods"))?;
                std::fs::write(&node_kubeconfig_path, kubeconfig_yaml)?;
                let client = Client::try_from(client_config)?;
                let network = Arc::new(
                    NodeNetwork::create(config.pod_gateway, config.pod_prefix)
                        .await
                        .context("creating the pod network")?,
                );
                let api = network.expose(POD_NETWORK_API_PORT, api_target)?;
                node::register(&client, &config.node_name, config.pod_gateway)
                    .await
                    .context("registering the node")?;
                storage::ensure_storage_class(&client).await?;
                let ctx = Arc::new(Ctx {
                    client: client.clone(),
                    node_name: config.node_name.clone(),
                    dir: dir.clone(),
                    network,
                    images: config.images.clone(),
                    backoff: (config.restart_backoff, config.max_restart_backoff),
                    pods: Mutex::new(BTreeMap::new()),
                });
                let (catalog, changed, mut tasks) = services::watch(&client);
                tasks.extend([
                    tokio::spawn(services::proxy(
                        ctx.network.clone(),
                        catalog.clone(),
                        changed,
                    )),
                    tokio::spawn(services::dns(ctx.network.clone(), catalog)),
                    tokio::spawn(node::heartbeat(
                        client.clone(),
                        config.node_name.clone(),
                        config.pod_gateway,
                    )),
                    tokio::spawn(node::binder(client.clone(), config.node_name.clone())),
                    tokio::spawn(storage::provision(client.clone(), dir.join("volumes"))),
                    tokio::spawn(storage::reclaim(client.clone(), dir.join("volumes"))),
                    tokio::spawn(pods::manage(ctx.clone())),
                ]);
                anyhow::Ok(Kubelet {
                    ctx,
                    tasks,
                    _api: api,
                    node_kubeconfig: node_kubeconfig_path,
                })
            })
            .await
            .map_err(|e| anyhow!("kubelet start task failed: {e}"))?
    }

    /// The Node's name.
    pub fn node_name(&self) -> &str {
        &self.ctx.node_name
    }

    /// The pod network gateway (also the Node's InternalIP and pods' `KUBERNETES_SERVICE_HOST`).
    pub fn pod_gateway(&self) -> Ipv4Addr {
        self.ctx.network.gateway()
    }

    /// `/proc/<pid>/ns/net` of the node namespace, for `nsenter --net=…` (e.g. `psql` against a pod IP).
    pub fn netns_path(&self) -> String {
        self.ctx.network.netns_path()
    }

    /// The PID holding the node network namespace.
    pub fn netns_holder_pid(&self) -> u32 {
        self.ctx.network.holder_pid()
    }

    /// A kubeconfig whose server is the apiserver as seen from the pod network (`https://<gateway>:443`),
    /// for processes started with [`Kubelet::node_process`].
    pub fn node_kubeconfig_path(&self) -> &Path {
        &self.node_kubeconfig
    }

    /// Opens a TCP connection to a pod address (from the node namespace). Usable from any runtime.
    ///
    /// # Errors
    /// When the connection fails.
    pub async fn connect(&self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        self.ctx.network.connect(addr).await
    }

    /// Forwards a fresh loopback port of the host to `addr` on the pod network; for clients that need
    /// an address (kubectl, psql, HTTP clients). Dropping the [`Forward`] closes the listener.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub fn port_forward(&self, addr: SocketAddr) -> anyhow::Result<Forward> {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let network = self.ctx.network.clone();
        let task = harness().spawn(async move {
            let Ok(listener) = TcpListener::from_std(listener) else {
                return;
            };
            while let Ok((inbound, _)) = listener.accept().await {
                let network = network.clone();
                tokio::spawn(async move {
                    if let Ok(outbound) = network.connect(addr).await {
                        network::pipe(inbound, outbound).await;
                    }
                });
            }
        });
        Ok(Forward::new(local, task))
    }

    /// Makes a host loopback service (e.g. MinIO on 127.0.0.1:9000) reachable from pods at
    /// `<gateway>:port`.
    ///
    /// # Errors
    /// When the port is taken on the gateway.
    pub fn expose(&self, port: u16, target: SocketAddr) -> anyhow::Result<Forward> {
        self.ctx.network.expose(port, target)
    }

    /// Wraps a host process so it runs in the node network namespace (it reaches pod IPs, and the
    /// apiserver through [`Kubelet::node_kubeconfig_path`], which it gets as `KUBECONFIG`).
    pub fn node_process(&self, spec: ProcessSpec) -> ProcessSpec {
        spec.env("KUBECONFIG", &self.node_kubeconfig).wrapped_in([
            tool("nsenter").into_os_string(),
            format!("--net={}", self.netns_path()).into(),
            "--".into(),
        ])
    }

    /// The current log of a container (`container` = `None`: the first one), like `kubectl logs`.
    ///
    /// # Errors
    /// When the pod or container is not running on this kubelet.
    pub fn logs(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
    ) -> anyhow::Result<String> {
        let record = self
            .ctx
            .find(namespace, pod)
            .ok_or_else(|| anyhow!("pod {namespace}/{pod} is not on this node"))?;
        let (spec, _, _) = record
            .container(container)
            .ok_or_else(|| anyhow!("container not started yet"))?;
        Ok(String::from_utf8_lossy(&std::fs::read(&spec.log).unwrap_or_default()).into_owned())
    }

    /// The log of the previous run of a restarted container (`kubectl logs --previous`).
    ///
    /// # Errors
    /// When the pod or container is unknown or has not restarted.
    pub fn previous_logs(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
    ) -> anyhow::Result<String> {
        let record = self
            .ctx
            .find(namespace, pod)
            .ok_or_else(|| anyhow!("pod {namespace}/{pod} is not on this node"))?;
        let (spec, _, restarts) = record
            .container(container)
            .ok_or_else(|| anyhow!("container not started yet"))?;
        anyhow::ensure!(restarts > 0, "container has not restarted");
        let previous = spec.log.with_file_name(format!("{}.log", restarts - 1));
        Ok(String::from_utf8_lossy(&std::fs::read(previous)?).into_owned())
    }

    /// Runs a command in a running container (`kubectl exec`), returning its output.
    ///
    /// # Errors
    /// When the pod or container is unknown, or the command cannot be started or times out.
    pub async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        command: &[&str],
    ) -> anyhow::Result<std::process::Output> {
        let record = self
            .ctx
            .find(namespace, pod)
            .ok_or_else(|| anyhow!("pod {namespace}/{pod} is not on this node"))?;
        let (spec, running, _) = record
            .container(container)
            .ok_or_else(|| anyhow!("container not started yet"))?;
        let command: Vec<String> = command.iter().map(|s| (*s).to_owned()).collect();
        spec.exec(&running, &command, Duration::from_secs(60)).await
    }

    /// Host PIDs of the PID-1 processes of a pod's running containers (empty once they stopped).
    pub fn container_pids(&self, namespace: &str, pod: &str) -> Vec<u32> {
        let Some(record) = self.ctx.find(namespace, pod) else {
            return Vec::new();
        };
        let Ok(map) = record.containers.lock() else {
            return Vec::new();
        };
        map.values()
            .filter(|(_, running, _)| running.exit_status().is_none())
            .filter_map(|(_, r, _)| r.pid1())
            .collect()
    }

    /// The pod's state directory on the host (volumes under `volumes/`, container roots and logs under
    /// `containers/`), while the pod exists on this node.
    pub fn pod_dir(&self, namespace: &str, pod: &str) -> Option<PathBuf> {
        self.ctx.find(namespace, pod).map(|r| r.dir.clone())
    }

    /// The host directory of a bound PersistentVolumeClaim.
    ///
    /// # Errors
    /// When the claim does not exist or is not bound.
    pub async fn claim_dir(
        &self,
        client: &Client,
        namespace: &str,
        claim: &str,
    ) -> anyhow::Result<PathBuf> {
        let mut lookups = envvars::Lookups::new(client, namespace);
        volumes::claim_dir(&mut lookups, claim)
            .await
            .map_err(|e| anyhow!(e.0))
    }

    /// Stops every pod (their processes are killed) and the node network.
    pub async fn stop(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
            let _ = task.await;
        }
        // The records hold the last handle of each running container.
        if let Ok(mut pods) = self.ctx.pods.lock() {
            pods.clear();
        }
        // Aborting the manager dropped every pod worker and container handle, which kills them.
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.ctx.network.stop().await;
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Ok(mut pods) = self.ctx.pods.lock() {
            pods.clear();
        }
    }
}
