//! The pod network: a "node" network namespace holding a bridge, and one sandbox namespace per pod
//! (network, IPC, UTS and mount) attached to the bridge by a veth pair.
//!
//! Namespaces are held by `sleep` processes, not by `ip netns` bind mounts: when the harness dies those
//! processes die (see `process.rs`) and the kernel frees the namespaces with their interfaces, so nothing
//! can be left behind. The node namespace has no link to the host's network at all: traffic to pod
//! addresses never leaves namespaces the harness made. The harness itself reaches pods by creating
//! sockets inside the node namespace (a socket keeps the namespace it was created in), and exposes
//! chosen loopback services (the apiserver, test servers) to pods through proxies listening on the
//! gateway address.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Mutex;

use anyhow::{Context as _, anyhow};
use nix::sched::{CloneFlags, setns};
use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::process::{self, Proc, ProcessSpec, harness};
use crate::tools::tool;

/// Name of the bridge inside the node namespace.
const BRIDGE: &str = "pgro0";

/// Runs `f` on a short-lived thread that has joined the namespace `ns` (net or UTS namespaces can be
/// joined by one thread of a multi-threaded process; sockets created there stay in that namespace).
pub(crate) fn in_namespace<T, F>(ns: &File, kind: CloneFlags, f: F) -> std::io::Result<T>
where
    T: Send,
    F: FnOnce() -> std::io::Result<T> + Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                setns(ns, kind).map_err(std::io::Error::from)?;
                f()
            })
            .join()
            .map_err(|_| std::io::Error::other("namespace thread panicked"))?
    })
}

/// `nsenter --net=<ns> ip <args>`.
async fn ip_in(netns: &str, args: &[&str]) -> anyhow::Result<()> {
    let spec = ProcessSpec::new("ip", tool("nsenter"))
        .arg(format!("--net={netns}"))
        .arg("--")
        .arg(tool("ip"))
        .args(args);
    process::run(spec)
        .await
        .map(drop)
        .with_context(|| format!("ip {}", args.join(" ")))
}

/// Round-robin address allocation in the pod subnet (round-robin so a deleted pod's address is not
/// immediately reused by the next pod, which would confuse EndpointSlice assertions).
#[derive(Debug)]
struct Ipam {
    base: u32,
    size: u32,
    next: u32,
    used: std::collections::BTreeSet<u32>,
}

impl Ipam {
    fn allocate(&mut self) -> Option<Ipv4Addr> {
        // Offsets 0 (network), 1 (gateway) and size-1 (broadcast) are reserved.
        for _ in 0..self.size {
            let offset = self.next;
            self.next = if self.next + 1 >= self.size - 1 {
                2
            } else {
                self.next + 1
            };
            if self.used.insert(offset) {
                return Some(Ipv4Addr::from(self.base + offset));
            }
        }
        None
    }

    fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&(u32::from(ip) - self.base));
    }
}

/// The node namespace with its bridge, gateway address and address pool.
#[derive(Debug)]
pub(crate) struct NodeNetwork {
    holder: Proc,
    netns: File,
    gateway: Ipv4Addr,
    prefix: u8,
    ipam: Mutex<Ipam>,
    veth_counter: std::sync::atomic::AtomicU32,
}

impl NodeNetwork {
    /// Creates the node namespace, its bridge `pgro0` with `gateway/prefix`, and loopback.
    pub(crate) async fn create(gateway: Ipv4Addr, prefix: u8) -> anyhow::Result<Self> {
        let holder = Proc::spawn(
            ProcessSpec::new("node-netns", tool("unshare"))
                .args(["--net", "--"])
                .arg(tool("sleep"))
                .arg("infinity"),
        )
        .await?;
        let netns_path = format!("/proc/{}/ns/net", holder.pid());
        wait_for_namespace(&holder, &netns_path).await?;
        let netns = File::open(&netns_path).with_context(|| format!("opening {netns_path}"))?;
        ip_in(&netns_path, &["link", "set", "lo", "up"]).await?;
        ip_in(&netns_path, &["link", "add", BRIDGE, "type", "bridge"]).await?;
        ip_in(
            &netns_path,
            &["addr", "add", &format!("{gateway}/{prefix}"), "dev", BRIDGE],
        )
        .await?;
        ip_in(&netns_path, &["link", "set", BRIDGE, "up"]).await?;
        let size = 1u32 << (32 - prefix);
        let base = u32::from(gateway) & !(size - 1);
        let ipam = Ipam {
            base,
            size,
            next: (u32::from(gateway) - base) + 1,
            used: [1].into(),
        };
        Ok(Self {
            holder,
            netns,
            gateway,
            prefix,
            ipam: Mutex::new(ipam),
            veth_counter: 0.into(),
        })
    }

    /// `/proc/<holder>/ns/net`, for `nsenter --net=`.
    pub(crate) fn netns_path(&self) -> String {
        format!("/proc/{}/ns/net", self.holder.pid())
    }

    /// The PID holding the node namespace.
    pub(crate) fn holder_pid(&self) -> u32 {
        self.holder.pid()
    }

    pub(crate) fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// Opens a TCP connection from inside the node namespace (to a pod address or the gateway).
    pub(crate) async fn connect(&self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        let socket = in_namespace(&self.netns, CloneFlags::CLONE_NEWNET, || {
            Socket::new(Domain::for_address(addr), Type::STREAM, None)
        })?;
        socket.set_nonblocking(true)?;
        let stream: std::net::TcpStream = socket.into();
        tokio::net::TcpSocket::from_std_stream(stream)
            .connect(addr)
            .await
    }

    /// The node namespace (for joining it from a thread).
    pub(crate) fn netns(&self) -> &File {
        &self.netns
    }

    /// `ip <args>` inside the node namespace.
    pub(crate) async fn ip(&self, args: &[&str]) -> anyhow::Result<()> {
        ip_in(&self.netns_path(), args).await
    }

    /// A listening socket inside the node namespace (must be turned into a tokio listener on the
    /// runtime that will poll it).
    pub(crate) fn listen_std(&self, addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
        let listener = in_namespace(&self.netns, CloneFlags::CLONE_NEWNET, || {
            std::net::TcpListener::bind(addr)
        })?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    }

    /// Makes `target` (a host loopback address) reachable from pods at `gateway:port`.
    pub(crate) fn expose(&self, port: u16, target: SocketAddr) -> anyhow::Result<Forward> {
        let listener = self.listen_std(SocketAddr::V4(SocketAddrV4::new(self.gateway, port)))?;
        let task = harness().spawn(async move {
            let Ok(listener) = TcpListener::from_std(listener) else {
                return;
            };
            while let Ok((inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(outbound) = TcpStream::connect(target).await {
                        pipe(inbound, outbound).await;
                    }
                });
            }
        });
        Ok(Forward {
            local: SocketAddr::V4(SocketAddrV4::new(self.gateway, port)),
            task,
        })
    }

    /// Creates a pod sandbox: net + IPC + UTS + mount namespaces, a veth into the bridge, an address,
    /// a default route via the gateway and the hostname.
    pub(crate) async fn sandbox(&self, hostname: &str) -> anyhow::Result<Sandbox> {
        let ip = self
            .ipam
            .lock()
            .map_err(|_| anyhow!("ipam lock poisoned"))?
            .allocate()
            .ok_or_else(|| anyhow!("pod address pool exhausted"))?;
        let created = self.sandbox_with(hostname, ip).await;
        if created.is_err() {
            self.release(ip);
        }
        created
    }

    async fn sandbox_with(&self, hostname: &str, ip: Ipv4Addr) -> anyhow::Result<Sandbox> {
        let holder = Proc::spawn(
            ProcessSpec::new("pod-sandbox", tool("unshare"))
                .args([
                    "--net",
                    "--ipc",
                    "--uts",
                    "--mount",
                    "--propagation",
                    "private",
                    "--",
                ])
                .arg(tool("sleep"))
                .arg("infinity"),
        )
        .await?;
        let pid = holder.pid();
        let pod_netns = format!("/proc/{pid}/ns/net");
        wait_for_namespace(&holder, &pod_netns).await?;
        let n = self
            .veth_counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let veth = format!("vp{:x}-{n}", self.holder.pid() % 0xffff);
        let node = self.netns_path();
        ip_in(
            &node,
            &[
                "link",
                "add",
                &veth,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &pid.to_string(),
            ],
        )
        .await?;
        ip_in(&node, &["link", "set", &veth, "master", BRIDGE, "up"]).await?;
        ip_in(
            &pod_netns,
            &[
                "addr",
                "add",
                &format!("{ip}/{}", self.prefix),
                "dev",
                "eth0",
            ],
        )
        .await?;
        ip_in(&pod_netns, &["link", "set", "eth0", "up"]).await?;
        ip_in(&pod_netns, &["link", "set", "lo", "up"]).await?;
        ip_in(
            &pod_netns,
            &["route", "add", "default", "via", &self.gateway.to_string()],
        )
        .await?;
        let uts = File::open(format!("/proc/{pid}/ns/uts"))?;
        let name = hostname.to_owned();
        in_namespace(&uts, CloneFlags::CLONE_NEWUTS, move || {
            nix::unistd::sethostname(&name).map_err(std::io::Error::from)
        })
        .context("setting the pod hostname")?;
        Ok(Sandbox { holder, ip })
    }

    /// Returns a sandbox's address to the pool.
    pub(crate) fn release(&self, ip: Ipv4Addr) {
        if let Ok(mut ipam) = self.ipam.lock() {
            ipam.release(ip);
        }
    }

    /// Stops the node namespace's holder; the kernel removes the namespace and the bridge.
    pub(crate) async fn stop(&self) {
        self.holder.stop(std::time::Duration::from_secs(1)).await;
    }
}

/// A pod's namespaces, held by a `sleep` process.
#[derive(Debug)]
pub(crate) struct Sandbox {
    holder: Proc,
    ip: Ipv4Addr,
}

impl Sandbox {
    pub(crate) fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    pub(crate) fn pid(&self) -> u32 {
        self.holder.pid()
    }

    /// Stops the holder: the namespaces (and the veth pair) disappear with it.
    pub(crate) async fn stop(&self) {
        self.holder.stop(std::time::Duration::from_secs(1)).await;
    }
}

/// A running TCP proxy; dropping it stops accepting.
#[derive(Debug)]
pub struct Forward {
    local: SocketAddr,
    task: JoinHandle<()>,
}

impl Forward {
    /// Where to connect.
    pub fn addr(&self) -> SocketAddr {
        self.local
    }

    pub(crate) fn new(local: SocketAddr, task: JoinHandle<()>) -> Self {
        Self { local, task }
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both directions until either side closes.
pub(crate) async fn pipe(mut a: TcpStream, mut b: TcpStream) {
    let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
}

/// `unshare` creates the namespaces before exec'ing `sleep`; wait until `/proc/PID/ns/*` shows the new
/// ones (the holder's `exe` is `sleep`) so nobody joins the parent's namespaces by mistake.
async fn wait_for_namespace(holder: &Proc, ns_path: &str) -> anyhow::Result<()> {
    let own = std::fs::read_link("/proc/self/ns/net").ok();
    for _ in 0..200 {
        let exe = std::fs::read_link(format!("/proc/{}/exe", holder.pid())).ok();
        let ns = std::fs::read_link(ns_path).ok();
        if exe.as_ref().is_some_and(|e| e.ends_with("sleep")) && ns.is_some() && ns != own {
            return Ok(());
        }
        if let Some(status) = holder.exit_status() {
            return Err(anyhow!("namespace holder exited ({status})"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    Err(anyhow!("namespace holder {} did not start", holder.pid()))
}
