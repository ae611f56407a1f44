//! The pod's status as the kubelet reports it: phase, conditions, container statuses.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, HostIP, Pod,
    PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// One container's status as its supervisor publishes it.
#[derive(Debug, Clone, Default)]
pub(crate) struct CStatus {
    pub status: ContainerStatus,
    /// No further restarts will happen (terminated for good).
    pub finished: bool,
}

impl CStatus {
    pub(crate) fn waiting(name: &str, image: &str, reason: &str, message: Option<String>) -> Self {
        Self {
            status: ContainerStatus {
                name: name.to_owned(),
                image: image.to_owned(),
                image_id: String::new(),
                state: Some(ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some(reason.to_owned()),
                        message,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            finished: false,
        }
    }

    pub(crate) fn terminated(&self) -> Option<&ContainerStateTerminated> {
        self.status
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
    }

    pub(crate) fn running(&self) -> bool {
        self.status
            .state
            .as_ref()
            .is_some_and(|s| s.running.is_some())
    }

    pub(crate) fn succeeded(&self) -> bool {
        self.finished && self.terminated().is_some_and(|t| t.exit_code == 0)
    }
}

/// What the pod worker knows beyond container statuses.
#[derive(Debug, Clone, Default)]
pub(crate) struct PodState {
    pub pod_ip: Option<String>,
    pub host_ip: String,
    pub start_time: Option<Time>,
    pub sandbox_ready: bool,
    pub init: Vec<CStatus>,
    pub main: Vec<CStatus>,
    /// Phase, reason and message forced by the kubelet (e.g. `Failed`/`DeadlineExceeded`).
    pub forced: Option<(String, String, String)>,
}

fn phase(pod: &Pod, state: &PodState) -> String {
    if let Some((phase, _, _)) = &state.forced {
        return phase.clone();
    }
    let never = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) == Some("Never");
    let init_done = state
        .init
        .iter()
        .all(|c| c.succeeded() || is_sidecar_started(c));
    if !init_done {
        let init_failed = state.init.iter().any(|c| c.finished && !c.succeeded());
        return if init_failed && never {
            "Failed"
        } else {
            "Pending"
        }
        .into();
    }
    if !state.main.is_empty() && state.main.iter().all(|c| c.finished) {
        return if state.main.iter().all(CStatus::succeeded) {
            "Succeeded"
        } else {
            "Failed"
        }
        .into();
    }
    if state
        .main
        .iter()
        .any(|c| c.running() || c.terminated().is_some())
    {
        return "Running".into();
    }
    "Pending".into()
}

fn is_sidecar_started(c: &CStatus) -> bool {
    c.status.started == Some(true) && c.running()
}

/// True when every init container has completed (or, for sidecars, started).
pub(crate) fn initialized(state: &PodState) -> bool {
    state
        .init
        .iter()
        .all(|c| c.succeeded() || is_sidecar_started(c))
}

fn condition(
    previous: &BTreeMap<String, PodCondition>,
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    now: &Time,
) -> PodCondition {
    let status = if ok { "True" } else { "False" }.to_owned();
    let last_transition_time = match previous.get(type_) {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Some(now.clone()),
    };
    PodCondition {
        type_: type_.to_owned(),
        status,
        last_transition_time,
        reason: if ok { None } else { reason.map(str::to_owned) },
        ..Default::default()
    }
}

/// Renders the pod status from `state`, keeping conditions the kubelet does not own (PodScheduled, gates).
/// `last` is what this kubelet wrote before: its condition times win over a possibly stale `pod`.
pub(crate) fn render(
    pod: &Pod,
    state: &PodState,
    last: Option<&PodStatus>,
    now: &Time,
) -> PodStatus {
    let current = pod.status.clone().unwrap_or_default();
    let mut previous: BTreeMap<String, PodCondition> = current
        .conditions
        .iter()
        .flatten()
        .map(|c| (c.type_.clone(), c.clone()))
        .collect();
    for condition in last
        .and_then(|l| l.conditions.as_ref())
        .into_iter()
        .flatten()
    {
        previous.insert(condition.type_.clone(), condition.clone());
    }
    let phase = phase(pod, state);
    let terminal = phase == "Succeeded" || phase == "Failed";
    let initialized = initialized(state);
    let containers_ready =
        initialized && !state.main.is_empty() && state.main.iter().all(|c| c.status.ready);
    let gates_ok = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .is_none_or(|gates| {
            gates.iter().all(|g| {
                previous
                    .get(&g.condition_type)
                    .is_some_and(|c| c.status == "True")
            })
        });
    let mut conditions: Vec<PodCondition> = previous
        .values()
        .filter(|c| {
            ![
                "PodReadyToStartContainers",
                "Initialized",
                "ContainersReady",
                "Ready",
            ]
            .contains(&c.type_.as_str())
        })
        .cloned()
        .collect();
    conditions.push(condition(
        &previous,
        "PodReadyToStartContainers",
        state.sandbox_ready && !terminal,
        None,
        now,
    ));
    conditions.push(condition(
        &previous,
        "Initialized",
        initialized,
        Some("ContainersNotInitialized"),
        now,
    ));
    conditions.push(condition(
        &previous,
        "ContainersReady",
        containers_ready && !terminal,
        Some("ContainersNotReady"),
        now,
    ));
    let ready_reason = if terminal {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    conditions.push(condition(
        &previous,
        "Ready",
        containers_ready && gates_ok && !terminal,
        Some(ready_reason),
        now,
    ));
    let (reason, message) = match &state.forced {
        Some((_, reason, message)) => (Some(reason.clone()), Some(message.clone())),
        None => (current.reason.clone(), current.message.clone()),
    };
    PodStatus {
        phase: Some(phase),
        conditions: Some(conditions),
        host_ip: Some(state.host_ip.clone()),
        host_ips: Some(vec![HostIP {
            ip: state.host_ip.clone(),
        }]),
        pod_ip: state.pod_ip.clone(),
        pod_ips: state.pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        start_time: state.start_time.clone(),
        init_container_statuses: (!state.init.is_empty())
            .then(|| state.init.iter().map(|c| c.status.clone()).collect()),
        container_statuses: Some(state.main.iter().map(|c| c.status.clone()).collect()),
        qos_class: current.qos_class.clone(),
        reason,
        message,
        ..Default::default()
    }
}
