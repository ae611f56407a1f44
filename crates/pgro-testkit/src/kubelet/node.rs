//! The fake Node: registration, status, Lease heartbeat, and the one-node scheduler (Binding).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use futures::TryStreamExt as _;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    Binding, Node, NodeAddress, NodeCondition, NodeStatus, NodeSystemInfo, ObjectReference, Pod,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, ResourceExt as _};

const MANAGER: &str = "pgro-testkit-kubelet";

fn now() -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::now()
}

fn node_status(ip: Ipv4Addr, name: &str) -> NodeStatus {
    let ready = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(Time(now())),
        last_transition_time: Some(Time(now())),
    };
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let resources: BTreeMap<String, Quantity> = [
        ("cpu", cpus.to_string()),
        ("memory", "16Gi".to_owned()),
        ("pods", "110".to_owned()),
        ("ephemeral-storage", "100Gi".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), Quantity(v)))
    .collect();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    NodeStatus {
        conditions: Some(vec![
            ready(
                "Ready",
                "True",
                "KubeletReady",
                "process kubelet is posting ready status",
            ),
            ready(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "no memory pressure",
            ),
            ready(
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "no disk pressure",
            ),
            ready(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "no PID pressure",
            ),
        ]),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: name.into(),
            },
        ]),
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        node_info: Some(NodeSystemInfo {
            architecture: std::env::consts::ARCH
                .replace("x86_64", "amd64")
                .replace("aarch64", "arm64"),
            operating_system: "linux".into(),
            os_image: "pgro-testkit process kubelet".into(),
            kernel_version: kernel,
            kubelet_version: "v1.35.4".into(),
            container_runtime_version: "pgro-testkit://0.1.0".into(),
            machine_id: name.into(),
            system_uuid: name.into(),
            boot_id: std::process::id().to_string(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Creates (or takes over) the Node and marks it Ready.
pub(crate) async fn register(client: &Client, name: &str, ip: Ipv4Addr) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", name),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("node.kubernetes.io/instance-type", "pgro-testkit"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels),
            ..Default::default()
        },
        ..Default::default()
    };
    nodes
        .patch(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&node),
        )
        .await?;
    let status = serde_json::json!({ "status": node_status(ip, name) });
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    Ok(())
}

/// Renews the node Lease every 10 s and the Ready condition every minute, as the kubelet does.
pub(crate) async fn heartbeat(client: Client, name: String, ip: Ipv4Addr) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let nodes: Api<Node> = Api::all(client);
    let mut tick = 0u64;
    loop {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(name.clone()),
                lease_duration_seconds: Some(40),
                renew_time: Some(MicroTime(now())),
                ..Default::default()
            }),
        };
        if let Err(error) = leases
            .patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&lease),
            )
            .await
        {
            tracing::warn!(error = %error, "node lease renewal failed");
        }
        if tick % 6 == 5 {
            let status = serde_json::json!({ "status": node_status(ip, &name) });
            let _ = nodes
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await;
        }
        tick += 1;
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

/// The scheduler for one node: binds every unscheduled pod of the default scheduler to it.
pub(crate) async fn binder(client: Client, node: String) {
    let pods: Api<Pod> = Api::all(client.clone());
    let config = watcher::Config::default().fields("spec.nodeName=");
    let stream = watcher::watcher(pods, config)
        .applied_objects()
        .default_backoff();
    let mut stream = std::pin::pin!(stream);
    loop {
        let pod = match stream.try_next().await {
            Ok(Some(pod)) => pod,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(error = %error, "pod watch for binding failed");
                continue;
            }
        };
        let spec = pod.spec.as_ref();
        let scheduler = spec
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or("default-scheduler");
        if spec.and_then(|s| s.node_name.as_ref()).is_some()
            || scheduler != "default-scheduler"
            || pod.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        let namespace = pod.namespace().unwrap_or_default();
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(pod.name_any()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            target: ObjectReference {
                kind: Some("Node".into()),
                name: Some(node.clone()),
                api_version: Some("v1".into()),
                ..Default::default()
            },
        };
        let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        if let Err(error) = api
            .create_subresource::<Binding, serde_json::Value>(
                "binding",
                &pod.name_any(),
                &PostParams::default(),
                &binding,
            )
            .await
        {
            // A conflict means it is already bound (or gone): the watch will tell.
            tracing::debug!(pod = %pod.name_any(), error = %error, "binding failed");
        }
    }
}
