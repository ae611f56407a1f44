//! Starting one container process, signalling it, and running commands inside it.
//!
//! A container is `nsenter` (into the pod's mount, network, IPC and UTS namespaces) → `unshare --pid
//! --fork --kill-child --mount-proc` (its own PID namespace and `/proc`) → `chroot` into its root →
//! `setpriv` (user, groups, parent-death signal) → `env --chdir` → the program. No shell is involved.
//! The program is PID 1 of its PID namespace: when it dies, the kernel kills every process it left.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::process::{self, Proc, ProcessSpec, children_of};
use crate::tools::tool;

/// Who the container runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Identity {
    fn setpriv_args(&self) -> Vec<String> {
        if self.uid == 0 && self.gid == 0 && self.groups.is_empty() {
            return Vec::new();
        }
        let mut args = vec![
            format!("--reuid={}", self.uid),
            format!("--regid={}", self.gid),
        ];
        if self.groups.is_empty() {
            args.push("--clear-groups".into());
        } else {
            let groups: Vec<String> = self.groups.iter().map(u32::to_string).collect();
            args.push(format!("--groups={}", groups.join(",")));
        }
        args
    }
}

/// Everything needed to start (and restart) one container.
#[derive(Debug, Clone)]
pub(crate) struct ContainerSpec {
    pub name: String,
    pub sandbox_pid: u32,
    pub root: PathBuf,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: String,
    pub identity: Identity,
    pub log: PathBuf,
}

/// A started container.
#[derive(Debug)]
pub(crate) struct Running {
    proc: Proc,
    pid1: Option<u32>,
}

/// The exit code Kubernetes reports: the code, or 128 + signal.
pub(crate) fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(9))
}

impl ContainerSpec {
    fn ns(&self, kind: &str) -> String {
        format!("/proc/{}/ns/{kind}", self.sandbox_pid)
    }

    /// Starts the container and waits (briefly) until its PID 1 exists.
    pub(crate) async fn start(&self) -> anyhow::Result<Running> {
        let mut spec = ProcessSpec::new(format!("container {}", self.name), tool("nsenter"))
            .arg(format!("--mount={}", self.ns("mnt")))
            .arg(format!("--net={}", self.ns("net")))
            .arg(format!("--ipc={}", self.ns("ipc")))
            .arg(format!("--uts={}", self.ns("uts")))
            .arg("--")
            .arg(tool("unshare"))
            .args(["--pid", "--fork", "--kill-child"])
            .arg(format!("--mount-proc={}", self.root.join("proc").display()))
            .arg("--")
            .arg(tool("chroot"))
            .arg(&self.root)
            .arg("/usr/bin/setpriv")
            .args(self.identity.setpriv_args())
            .args(["--pdeathsig", "KILL", "--", "/usr/bin/env"])
            .arg(format!("--chdir={}", self.working_dir))
            .arg("--")
            .args(&self.argv)
            .env_clear()
            .log_to(&self.log);
        for (key, value) in &self.env {
            spec = spec.env(key, value);
        }
        let proc = Proc::spawn(spec).await?;
        let mut pid1 = None;
        for _ in 0..200 {
            if let Some(child) = children_of(proc.pid()).first() {
                pid1 = Some(*child);
                break;
            }
            if proc.exit_status().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(Running { proc, pid1 })
    }

    /// Runs `command` inside the running container (its namespaces, root, working directory, user and
    /// environment), for exec probes and [`crate::Kubelet::exec`]. Killed after `timeout`.
    pub(crate) async fn exec(
        &self,
        running: &Running,
        command: &[String],
        timeout: Duration,
    ) -> anyhow::Result<std::process::Output> {
        let pid1 = running
            .pid1
            .ok_or_else(|| anyhow::anyhow!("container {} has no PID 1", self.name))?;
        let mut spec = ProcessSpec::new(format!("exec in {}", self.name), tool("nsenter"))
            .arg(format!("--target={pid1}"))
            .args([
                "--mount", "--net", "--ipc", "--uts", "--pid", "--root", "--wd", "--",
            ])
            .arg("/usr/bin/setpriv")
            .args(self.identity.setpriv_args())
            .args(["--pdeathsig", "KILL", "--"])
            .args(command)
            .env_clear();
        for (key, value) in &self.env {
            spec = spec.env(key, value);
        }
        match tokio::time::timeout(timeout, process::output(spec)).await {
            Ok(output) => output,
            Err(_) => Err(anyhow::anyhow!("timed out after {timeout:?}")),
        }
    }
}

impl Running {
    /// PID 1 of the container's PID namespace, as seen from the host.
    pub(crate) fn pid1(&self) -> Option<u32> {
        self.pid1
    }

    pub(crate) fn exit_status(&self) -> Option<ExitStatus> {
        self.proc.exit_status()
    }

    pub(crate) async fn wait(&self) -> ExitStatus {
        self.proc.wait().await
    }

    /// Sends `signal` to the container's PID 1 (the `unshare` parent forwards nothing). Only while
    /// `unshare` runs: it reaps PID 1 and exits right after, so the PID cannot name another process.
    pub(crate) fn signal(&self, signal: Signal) {
        match self.pid1 {
            Some(pid) if self.proc.exit_status().is_none() => {
                let _ = kill(Pid::from_raw(pid as i32), signal);
            }
            Some(_) => {}
            None => self.proc.signal(signal),
        }
    }

    /// SIGTERM, then SIGKILL after `grace`. Killing PID 1 tears down the whole PID namespace.
    pub(crate) async fn stop(&self, grace: Duration) -> ExitStatus {
        if let Some(status) = self.exit_status() {
            return status;
        }
        self.signal(Signal::SIGTERM);
        if let Ok(status) = tokio::time::timeout(grace, self.wait()).await {
            return status;
        }
        self.signal(Signal::SIGKILL);
        match tokio::time::timeout(Duration::from_secs(5), self.wait()).await {
            Ok(status) => status,
            Err(_) => {
                self.proc.signal(Signal::SIGKILL);
                self.wait().await
            }
        }
    }
}

/// Reads the termination message (at most 4096 bytes, as the kubelet does).
pub(crate) fn termination_message(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).into_owned()
}
