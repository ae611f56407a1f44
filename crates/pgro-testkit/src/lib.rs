//! Test-only infrastructure for pgro: a real Kubernetes control plane and a process kubelet.
//!
//! * [`ControlPlane`] starts etcd, kube-apiserver and kube-controller-manager on loopback with random
//!   ports and fresh certificates, installs the pgro CRDs and hands out [`kube::Client`]s.
//! * [`Kubelet`] plays kubelet and scheduler for one fake Node: it binds pods, gives each a network
//!   namespace with its own address, runs its containers as host processes in their own mount and PID
//!   namespaces (images mapped to local programs), and reports their status.
//! * [`TestEnv`] is both, started once per test binary ([`env`]), with per-test namespaces
//!   ([`TestNamespace`]).
//!
//! Every process the harness starts dies with the test binary (see [`Proc`]).
#![deny(missing_docs)]

pub mod barman;
mod certs;
mod control_plane;
mod crds;
pub mod emulators;
pub mod fixtures;
pub mod helm;
mod http;
mod infra;
mod kubelet;
pub mod manifests;
pub mod monitoring;
pub mod pgbackrest;
mod pgrun;
pub mod ports;
mod process;
pub mod restic;
pub mod service_psql;
mod shared;
pub mod standin;
mod tools;
mod wait;

pub use control_plane::{
    ControlPlane, ControlPlaneConfig, DEFAULT_POD_GATEWAY, audit_policy_for_user,
};
pub use crds::{parse as parse_crds, workspace_crds};
pub use infra::{Components, Unavailable, in_ci, skip_unless_ci};
pub use kubelet::{
    Forward, ImageMap, Kubelet, KubeletConfig, PGRO_IN_CONTAINER, POD_NETWORK_API_PORT,
    PROVISIONER, STANDIN_IN_CONTAINER, STORAGE_CLASS, StandIn, check_prerequisites,
};
pub use process::{OWNER_ENV, Proc, ProcessSpec, harness, processes_owned_by};
pub use shared::{TestEnv, TestNamespace, env, env_or_skip, use_pgro_binary};
pub use wait::eventually;
