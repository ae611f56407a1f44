//! One container's lifecycle: prepare (image, environment, root filesystem), start, probe, restart per
//! the restart policy with back-off, and stop gracefully when the pod is deleted.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, Pod,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::sync::watch;

use super::envvars::{self, Lookups, PodFacts};
use super::image::container_path;
use super::probes::{self, Outcome, Target};
use super::rootfs::Rootfs;
use super::runtime::{ContainerSpec, Identity, Running, exit_code, termination_message};
use super::status::CStatus;
use super::{Ctx, PodRecord};

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// Why a container cannot start yet.
struct Waiting {
    reason: &'static str,
    message: String,
}

/// Drives one container. Publishes its status on `status`; stops when `stop` carries a grace period.
pub(crate) struct Supervisor {
    pub ctx: Arc<Ctx>,
    pub record: Arc<PodRecord>,
    pub pod: Pod,
    pub container: Container,
    pub init: bool,
    pub sandbox_pid: u32,
    pub pod_ip: IpAddr,
    pub volumes: BTreeMap<String, PathBuf>,
    pub status: watch::Sender<CStatus>,
    pub stop: watch::Receiver<Option<Duration>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    Always,
    OnFailure,
    Never,
}

impl Supervisor {
    fn policy(&self) -> Policy {
        let pod_policy = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            .unwrap_or("Always");
        if self.container.restart_policy.as_deref() == Some("Always") {
            return Policy::Always; // a native sidecar
        }
        match (self.init, pod_policy) {
            (_, "Never") => Policy::Never,
            (true, _) | (false, "OnFailure") => Policy::OnFailure,
            _ => Policy::Always,
        }
    }

    fn stopping(&self) -> Option<Duration> {
        *self.stop.borrow()
    }

    fn publish(&self, f: impl FnOnce(&mut CStatus)) {
        self.status.send_modify(f);
    }

    /// Sleeps `duration` unless a stop arrives first; returns true when stopping.
    async fn pause(&mut self, duration: Duration) -> bool {
        if self.stopping().is_some() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(duration) => self.stopping().is_some(),
            _ = self.stop.changed() => true,
        }
    }

    pub(crate) async fn run(mut self) {
        let policy = self.policy();
        let mut restart_count = 0;
        let mut backoff = self.ctx.backoff.0;
        let mut rootfs_ready: Option<PathBuf> = None;
        let dir = self
            .record
            .dir
            .join("containers")
            .join(&self.container.name);
        loop {
            if self.stopping().is_some() {
                self.publish(|s| s.finished = true);
                return;
            }
            let spec = match self.prepare(&dir, restart_count, &mut rootfs_ready).await {
                Ok(spec) => spec,
                Err(waiting) => {
                    let (name, image) = (
                        self.container.name.clone(),
                        self.container.image.clone().unwrap_or_default(),
                    );
                    self.publish(|s| {
                        let fresh =
                            CStatus::waiting(&name, &image, waiting.reason, Some(waiting.message));
                        s.status.state = fresh.status.state;
                    });
                    // Retried each second; the loop head notices a stop.
                    self.pause(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let termination_log = dir.join("termination-log");
            let _ = std::fs::write(&termination_log, b"");
            let running = match spec.start().await {
                Ok(running) => Arc::new(running),
                Err(error) => {
                    self.publish(|s| {
                        s.status.state =
                            Some(waiting_state("RunContainerError", format!("{error:#}")));
                    });
                    // Retried each second; the loop head notices a stop.
                    self.pause(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let started_at = now();
            let container_id = format!("pgro://{}", running.pid1().unwrap_or_default());
            self.record.set_running(
                &self.container.name,
                spec.clone(),
                running.clone(),
                restart_count,
            );
            let has_startup = self.container.startup_probe.is_some();
            let has_readiness = self.container.readiness_probe.is_some();
            let init_like = self.init && policy != Policy::Always;
            self.publish(|s| {
                s.status.state = Some(ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(started_at.clone()),
                    }),
                    ..Default::default()
                });
                s.status.ready = !init_like && !has_readiness && !has_startup;
                // A regular init container is not "started" in the sidecar sense: the next container
                // waits for it to complete, not to start.
                s.status.started = Some(!has_startup && !init_like);
                s.status.restart_count = restart_count;
                s.status.container_id = Some(container_id.clone());
                s.status.image_id = s.status.image.clone();
            });

            let target = Target {
                network: self.ctx.network.clone(),
                pod_ip: self.pod_ip,
                container: self.container.clone(),
                spec: spec.clone(),
            };
            let mut stopped = false;
            let probe_loop = probe_loop(target, running.clone(), self.status.clone(), init_like);
            tokio::pin!(probe_loop);
            let kill_reason = tokio::select! {
                _ = running.wait() => None,
                reason = &mut probe_loop => Some(reason),
                _ = self.stop.changed() => {
                    stopped = true;
                    let grace = self.stopping().unwrap_or_default();
                    running.stop(grace).await;
                    None
                }
            };
            if let Some(kill) = &kill_reason {
                tracing::info!(pod = %self.record.name, container = %self.container.name, reason = %kill.reason, "probe failed; restarting container");
                // A probe-level terminationGracePeriodSeconds overrides the pod's, as in the kubelet.
                let grace = kill
                    .grace_seconds
                    .map(|s| Duration::from_secs(s.max(0) as u64));
                running
                    .stop(grace.unwrap_or_else(|| self.termination_grace()))
                    .await;
            }
            let status = running.wait().await;
            let code = exit_code(status);
            let mut message = termination_message(&termination_log);
            let fallback = self.container.termination_message_policy.as_deref()
                == Some("FallbackToLogsOnError");
            if message.is_empty() && fallback && code != 0 {
                message = log_tail(&spec.log, 80, 2048);
            }
            let terminated = ContainerStateTerminated {
                exit_code: code,
                reason: Some(if code == 0 { "Completed" } else { "Error" }.into()),
                message: (!message.is_empty()).then_some(message),
                started_at: Some(started_at),
                finished_at: Some(now()),
                container_id: Some(container_id),
                ..Default::default()
            };
            let restart = !stopped
                && self.stopping().is_none()
                && match policy {
                    Policy::Always => true,
                    Policy::OnFailure => code != 0 || kill_reason.is_some(),
                    Policy::Never => false,
                };
            if !restart {
                self.publish(|s| {
                    s.status.state = Some(ContainerState {
                        terminated: Some(terminated),
                        ..Default::default()
                    });
                    s.status.ready = false;
                    s.status.started = Some(false);
                    s.finished = true;
                });
                return;
            }
            restart_count += 1;
            let wait = backoff;
            backoff = (backoff * 2).min(self.ctx.backoff.1);
            self.publish(|s| {
                s.status.last_state = Some(ContainerState {
                    terminated: Some(terminated),
                    ..Default::default()
                });
                s.status.state = Some(waiting_state(
                    "CrashLoopBackOff",
                    format!(
                        "back-off {wait:?} restarting failed container={}",
                        self.container.name
                    ),
                ));
                s.status.ready = false;
                s.status.started = Some(false);
                s.status.restart_count = restart_count;
            });
            if self.pause(wait).await {
                self.publish(|s| s.finished = true);
                return;
            }
        }
    }

    fn termination_grace(&self) -> Duration {
        let seconds = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        Duration::from_secs(seconds.max(0) as u64)
    }

    fn identity(&self) -> Identity {
        let pod_ctx = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.security_context.as_ref());
        let ctx = self.container.security_context.as_ref();
        let uid = ctx
            .and_then(|c| c.run_as_user)
            .or(pod_ctx.and_then(|c| c.run_as_user))
            .unwrap_or(0) as u32;
        let gid = ctx
            .and_then(|c| c.run_as_group)
            .or(pod_ctx.and_then(|c| c.run_as_group))
            .map(|g| g as u32)
            .or_else(|| passwd_gid(uid))
            .unwrap_or(0);
        let mut groups: Vec<u32> = pod_ctx
            .and_then(|c| c.fs_group)
            .into_iter()
            .map(|g| g as u32)
            .collect();
        groups.extend(
            pod_ctx
                .and_then(|c| c.supplemental_groups.clone())
                .unwrap_or_default()
                .into_iter()
                .map(|g| g as u32),
        );
        Identity { uid, gid, groups }
    }

    async fn prepare(
        &self,
        dir: &Path,
        restart_count: i32,
        rootfs_ready: &mut Option<PathBuf>,
    ) -> Result<ContainerSpec, Waiting> {
        let image = self.container.image.clone().unwrap_or_default();
        let launch = self
            .ctx
            .images
            .resolve(
                &image,
                self.container.command.as_deref().unwrap_or_default(),
                self.container.args.as_deref().unwrap_or_default(),
            )
            .map_err(|e| Waiting {
                reason: e.reason,
                message: e.message,
            })?;
        let namespace = self.record.namespace.clone();
        let mut lookups = Lookups::new(&self.ctx.client, &namespace);
        let facts = PodFacts {
            pod_ip: self.pod_ip.to_string(),
            host_ip: self.ctx.network.gateway().to_string(),
            node_name: self.ctx.node_name.clone(),
        };
        let hostname = self.record.hostname.clone();
        let mut base: Vec<(String, String)> = vec![
            ("PATH".into(), container_path(&launch.path_prefix)),
            ("HOSTNAME".into(), hostname),
            ("HOME".into(), "/root".into()),
        ];
        base.extend(launch.env.iter().cloned());
        base.extend(self.ctx.service_env());
        let env = envvars::resolve(&mut lookups, &self.pod, &self.container, &facts, &base)
            .await
            .map_err(|e| Waiting {
                reason: "CreateContainerConfigError",
                message: e.0,
            })?;
        let vars: BTreeMap<String, String> = env.iter().cloned().collect();
        let argv: Vec<String> = launch
            .argv
            .iter()
            .map(|a| envvars::expand(a, &vars))
            .collect();
        let identity = self.identity();
        let working_dir = self
            .container
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into());
        let root = match rootfs_ready {
            Some(root) => root.clone(),
            None => {
                let root = self
                    .build_rootfs(
                        dir,
                        &launch.binds,
                        &identity,
                        &working_dir,
                        !launch.path_prefix.is_empty(),
                    )
                    .await
                    .map_err(|e| Waiting {
                        reason: "CreateContainerError",
                        message: format!("{e:#}"),
                    })?;
                *rootfs_ready = Some(root.clone());
                root
            }
        };
        let logs = dir.join("logs");
        let _ = std::fs::create_dir_all(&logs);
        Ok(ContainerSpec {
            name: self.container.name.clone(),
            sandbox_pid: self.sandbox_pid,
            root,
            argv,
            env,
            working_dir,
            identity,
            log: logs.join(format!("{restart_count}.log")),
        })
    }

    async fn build_rootfs(
        &self,
        dir: &Path,
        image_binds: &[(PathBuf, PathBuf)],
        identity: &Identity,
        working_dir: &str,
        postgres: bool,
    ) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let termination_log = dir.join("termination-log");
        std::fs::write(&termination_log, b"")?;
        // Any user may write its termination message.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&termination_log, std::fs::Permissions::from_mode(0o666))?;
        let mut rootfs = Rootfs::new(dir, &termination_log)?;
        if postgres {
            rootfs.add_postgres_run_dir()?;
        }
        let etc = dir.join("etc");
        std::fs::create_dir_all(&etc)?;
        std::fs::write(
            etc.join("hosts"),
            format!(
                "127.0.0.1\tlocalhost\n::1\tlocalhost\n{}\t{}\n",
                self.pod_ip, self.record.hostname
            ),
        )?;
        std::fs::write(etc.join("hostname"), format!("{}\n", self.record.hostname))?;
        rootfs.bind(&etc.join("hosts"), Path::new("/etc/hosts"), false, false)?;
        rootfs.bind(
            &etc.join("hostname"),
            Path::new("/etc/hostname"),
            false,
            false,
        )?;
        let dns_policy = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.dns_policy.as_deref())
            .unwrap_or("ClusterFirst");
        if dns_policy == "ClusterFirst" || dns_policy == "ClusterFirstWithHostNet" {
            let resolv =
                super::services::resolv_conf(self.ctx.network.gateway(), &self.record.namespace);
            std::fs::write(etc.join("resolv.conf"), resolv)?;
            rootfs.bind(
                &etc.join("resolv.conf"),
                Path::new("/etc/resolv.conf"),
                true,
                false,
            )?;
        }
        if let Some(passwd) = passwd_for(identity.uid, identity.gid, postgres)? {
            std::fs::write(etc.join("passwd"), passwd)?;
            rootfs.bind(&etc.join("passwd"), Path::new("/etc/passwd"), true, false)?;
        }
        for (host, inside) in image_binds {
            rootfs.bind(host, inside, true, false)?;
        }
        let mut mounts = self.container.volume_mounts.clone().unwrap_or_default();
        mounts.sort_by_key(|m| Path::new(&m.mount_path).components().count());
        for mount in &mounts {
            let Some(source) = self.volumes.get(&mount.name) else {
                anyhow::bail!("volumeMount {:?} names no volume of the pod", mount.name);
            };
            let source = match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => {
                    let path = source.join(sub);
                    if !path.exists() {
                        std::fs::create_dir_all(&path)?;
                    }
                    path
                }
                None => source.clone(),
            };
            rootfs.bind(
                &source,
                Path::new(&mount.mount_path),
                mount.read_only.unwrap_or(false),
                true,
            )?;
        }
        rootfs.ensure_dir(Path::new(working_dir))?;
        rootfs
            .apply(&PathBuf::from(format!("/proc/{}/ns/mnt", self.sandbox_pid)))
            .await?;
        Ok(rootfs.root().to_path_buf())
    }
}

fn waiting_state(reason: &str, message: String) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message: Some(message),
        }),
        ..Default::default()
    }
}

/// Why a probe kills the container, and the probe's own grace period if it sets one.
struct ProbeKill {
    reason: String,
    grace_seconds: Option<i64>,
}

/// Startup probe until it passes, then liveness and readiness concurrently. Returns only when the
/// container must be restarted (startup or liveness failed `failureThreshold` times in a row).
async fn probe_loop(
    target: Target,
    running: Arc<Running>,
    status: watch::Sender<CStatus>,
    init_like: bool,
) -> ProbeKill {
    if init_like {
        return std::future::pending().await;
    }
    if let Some(probe) = target.container.startup_probe.clone() {
        tokio::time::sleep(probes::initial_delay(&probe)).await;
        let mut failures = 0;
        loop {
            match probes::run(&probe, &target, &running).await {
                Outcome::Success => break,
                Outcome::Failure(message) => {
                    failures += 1;
                    if failures >= probes::failure_threshold(&probe) {
                        return ProbeKill {
                            reason: format!("startup probe failed: {message}"),
                            grace_seconds: probe.termination_grace_period_seconds,
                        };
                    }
                }
            }
            tokio::time::sleep(probes::period(&probe)).await;
        }
        status.send_modify(|s| {
            s.status.started = Some(true);
            if target.container.readiness_probe.is_none() {
                s.status.ready = true;
            }
        });
    }
    let readiness = async {
        let Some(probe) = target.container.readiness_probe.clone() else {
            return std::future::pending::<()>().await;
        };
        tokio::time::sleep(probes::initial_delay(&probe)).await;
        let (mut successes, mut failures) = (0, 0);
        loop {
            match probes::run(&probe, &target, &running).await {
                Outcome::Success => {
                    failures = 0;
                    successes += 1;
                    if successes >= probes::success_threshold(&probe) {
                        status.send_if_modified(|s| !std::mem::replace(&mut s.status.ready, true));
                    }
                }
                Outcome::Failure(_) => {
                    successes = 0;
                    failures += 1;
                    if failures >= probes::failure_threshold(&probe) {
                        status.send_if_modified(|s| std::mem::replace(&mut s.status.ready, false));
                    }
                }
            }
            tokio::time::sleep(probes::period(&probe)).await;
        }
    };
    let liveness = async {
        let Some(probe) = target.container.liveness_probe.clone() else {
            return std::future::pending::<ProbeKill>().await;
        };
        tokio::time::sleep(probes::initial_delay(&probe)).await;
        let mut failures = 0;
        loop {
            match probes::run(&probe, &target, &running).await {
                Outcome::Success => failures = 0,
                Outcome::Failure(message) => {
                    failures += 1;
                    if failures >= probes::failure_threshold(&probe) {
                        return ProbeKill {
                            reason: format!("liveness probe failed: {message}"),
                            grace_seconds: probe.termination_grace_period_seconds,
                        };
                    }
                }
            }
            tokio::time::sleep(probes::period(&probe)).await;
        }
    };
    // Readiness runs until the container dies; only a liveness verdict ends this.
    tokio::select! {
        kill = liveness => kill,
        () = readiness => std::future::pending().await,
    }
}

fn log_tail(path: &Path, lines: usize, bytes: usize) -> String {
    let text = crate::process::file_tail(path, bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn passwd_gid(uid: u32) -> Option<u32> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.get(2)?.parse::<u32>().ok()? == uid).then(|| fields.get(3)?.parse().ok())?
    })
}

/// A container `/etc/passwd` when the host's does not fit: the postgres image names its user
/// `postgres` (initdb takes the superuser name from it); other images get an entry for an unknown uid.
fn passwd_for(uid: u32, gid: u32, postgres: bool) -> anyhow::Result<Option<String>> {
    let host = std::fs::read_to_string("/etc/passwd")?;
    let uid_field = uid.to_string();
    let known = host
        .lines()
        .any(|l| l.split(':').nth(2) == Some(uid_field.as_str()));
    if postgres && uid != 0 {
        let mut lines: Vec<String> = host
            .lines()
            .filter(|l| {
                let fields: Vec<&str> = l.split(':').collect();
                fields.first() != Some(&"postgres") && fields.get(2) != Some(&uid_field.as_str())
            })
            .map(str::to_owned)
            .collect();
        lines.push(format!(
            "postgres:x:{uid}:{gid}:PostgreSQL:/var/lib/postgresql:/bin/sh"
        ));
        return Ok(Some(lines.join("\n") + "\n"));
    }
    if known {
        return Ok(None);
    }
    Ok(Some(format!(
        "{host}uid{uid}:x:{uid}:{gid}::/tmp:/bin/sh\n"
    )))
}
