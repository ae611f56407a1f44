//! Exec, HTTP and TCP probes, run on each probe's period with its thresholds (defaults as in the API:
//! period 10 s, timeout 1 s, success 1, failure 3).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::network::NodeNetwork;
use super::runtime::{ContainerSpec, Running};

/// The outcome of one probe run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    Failure(String),
}

/// Everything a probe needs to reach its container.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub network: Arc<NodeNetwork>,
    pub pod_ip: IpAddr,
    pub container: Container,
    pub spec: ContainerSpec,
}

pub(crate) fn period(probe: &Probe) -> Duration {
    Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64)
}

pub(crate) fn initial_delay(probe: &Probe) -> Duration {
    Duration::from_secs(probe.initial_delay_seconds.unwrap_or(0).max(0) as u64)
}

pub(crate) fn failure_threshold(probe: &Probe) -> u32 {
    probe.failure_threshold.unwrap_or(3).max(1) as u32
}

pub(crate) fn success_threshold(probe: &Probe) -> u32 {
    probe.success_threshold.unwrap_or(1).max(1) as u32
}

fn resolve_port(container: &Container, port: &IntOrString) -> Option<u16> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).ok(),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
}

/// Runs `probe` once against the container.
pub(crate) async fn run(probe: &Probe, target: &Target, running: &Running) -> Outcome {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(exec) = &probe.exec {
        let command = exec.command.clone().unwrap_or_default();
        return match target.spec.exec(running, &command, timeout).await {
            Ok(output) if output.status.success() => Outcome::Success,
            Ok(output) => Outcome::Failure(format!(
                "exec probe {command:?} failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout).trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            )),
            Err(error) => Outcome::Failure(format!("exec probe {command:?}: {error:#}")),
        };
    }
    if let Some(http) = &probe.http_get {
        let Some(port) = resolve_port(&target.container, &http.port) else {
            return Outcome::Failure(format!("unknown probe port {:?}", http.port));
        };
        if http
            .scheme
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("https"))
        {
            return Outcome::Failure(
                "HTTPS probes are not supported by the process kubelet".into(),
            );
        }
        let addr = SocketAddr::new(target.pod_ip, port);
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        let headers: Vec<(String, String)> = http
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        let attempt = async {
            let stream = target.network.connect(addr).await?;
            crate::http::get(stream, &target.pod_ip.to_string(), &path, &headers, timeout).await
        };
        return match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(response)) if (200..400).contains(&response.status) => Outcome::Success,
            Ok(Ok(response)) => Outcome::Failure(format!(
                "HTTP probe failed with statuscode: {}",
                response.status
            )),
            Ok(Err(error)) => Outcome::Failure(format!("Get \"http://{addr}{path}\": {error:#}")),
            Err(_) => Outcome::Failure(format!(
                "Get \"http://{addr}{path}\": timeout after {timeout:?}"
            )),
        };
    }
    if let Some(tcp) = &probe.tcp_socket {
        let Some(port) = resolve_port(&target.container, &tcp.port) else {
            return Outcome::Failure(format!("unknown probe port {:?}", tcp.port));
        };
        let addr = SocketAddr::new(target.pod_ip, port);
        return match tokio::time::timeout(timeout, target.network.connect(addr)).await {
            Ok(Ok(_)) => Outcome::Success,
            Ok(Err(error)) => Outcome::Failure(format!("dial tcp {addr}: {error}")),
            Err(_) => Outcome::Failure(format!("dial tcp {addr}: timeout")),
        };
    }
    Outcome::Failure(
        "probe has no exec, httpGet or tcpSocket handler (gRPC is not supported)".into(),
    )
}
