//! Pure builders of the objects pgro creates (style H6): inputs in, Kubernetes objects out — no client, no
//! environment, no clock. Paths, ports and labels come from the constants below, so the Deployment, the
//! Services and the instance manager agree on them.

mod replica_objects;
mod restore_objects;
pub mod source_mounts;
mod tls_mounts;

pub use tls_mounts::serves_tls;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, SeccompProfile, SecurityContext, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;
use pgro_api::{
    LABEL_COMPONENT, LABEL_REPLICA, LABEL_RESTORE, MANAGED_BY, PostgresPhysicalReplica,
};

pub use replica_objects::{
    ADMIN_USER, admin_secret, ca_secret, credentials_secret, new_restore, replica_service,
    server_certificate_secret, tls_secret,
};
pub use restore_objects::{
    LiveFields, MigrationInputs, RestoreInputs, data_pvc, live_fields, postgres_deployment,
    ready_timeout, restore_args, restore_deadline_seconds, restore_job, restore_service,
    schema_migration_job,
};

use super::naming;

/// Where the data PVC is mounted in the restore Job and the PostgreSQL pod.
pub const DATA_MOUNT: &str = "/pgdata";
/// PGDATA inside the PostgreSQL pod (`pgro restore` links `<target>/data` to the data directory).
pub const PGDATA: &str = "/pgdata/data";
/// Where the init container puts the `pgro` binary.
pub const PGRO_BIN_DIR: &str = "/pgro";
/// The `pgro` binary inside the PostgreSQL container.
pub const PGRO_IN_POSTGRES: &str = "/pgro/pgro";
/// The replica's credentials Secret inside the PostgreSQL container.
pub const CREDS_MOUNT: &str = "/etc/pgro/creds";
/// The admin Secret inside the PostgreSQL container.
pub const ADMIN_MOUNT: &str = "/etc/pgro/admin";
/// The server certificate, its key and the CA (`tls.crt`, `tls.key`, `ca.crt`) inside pgro's pods.
pub const TLS_MOUNT: &str = "/etc/pgro/tls";
/// PostgreSQL's port.
pub const POSTGRES_PORT: i32 = 5432;
/// The instance manager's probe port.
pub const PROBE_PORT: i32 = 8008;
/// Name of PostgreSQL's container port (Services target it by name).
pub const POSTGRES_PORT_NAME: &str = "postgres";
/// Keys of the credentials Secret.
pub const USERNAME_KEY: &str = "username";
/// Password key of the credentials and admin Secrets.
pub const PASSWORD_KEY: &str = "password";
/// Certificate key of a `kubernetes.io/tls` Secret.
pub const TLS_CRT: &str = "tls.crt";
/// Private key key of a `kubernetes.io/tls` Secret.
pub const TLS_KEY: &str = "tls.key";
/// The CA's private key in `<replica>-tls` (never mounted in a pod).
pub const CA_PRIVATE_KEY: &str = "ca.key";
/// Field manager of everything pgro applies.
pub const FIELD_MANAGER: &str = "pgro.bes.au/operator";

/// A builder input that cannot produce a valid object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The object lacks a name, namespace or UID.
    #[error("{kind} has no {field}")]
    MissingMetadata {
        /// The kind.
        kind: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A restore has no PostgreSQL version yet, so no image can be chosen.
    #[error("restore {restore} has no postgresVersion yet")]
    NoPostgresVersion {
        /// The restore.
        restore: String,
    },
}

/// An owner reference that makes `owner` the controller of the child.
///
/// # Errors
///
/// [`BuildError::MissingMetadata`] when `owner` has no name or UID.
pub fn controller_ref<K: Resource<DynamicType = ()>>(
    owner: &K,
) -> Result<OwnerReference, BuildError> {
    let kind = K::kind(&()).into_owned();
    let static_kind = if kind == "PostgresPhysicalReplica" {
        "PostgresPhysicalReplica"
    } else {
        "PostgresPhysicalRestore"
    };
    let missing = |field| BuildError::MissingMetadata {
        kind: static_kind,
        field,
    };
    let meta = owner.meta();
    Ok(OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind,
        name: meta.name.clone().ok_or_else(|| missing("metadata.name"))?,
        uid: meta.uid.clone().ok_or_else(|| missing("metadata.uid"))?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// Labels of a replica's own children.
#[must_use]
pub fn replica_labels(replica: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_REPLICA.to_owned(), naming::label_value(replica)),
        (LABEL_COMPONENT.to_owned(), component.to_owned()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            MANAGED_BY.to_owned(),
        ),
        ("app.kubernetes.io/name".to_owned(), "pgro".to_owned()),
    ])
}

/// Labels of a restore's children (and their pods).
#[must_use]
pub fn restore_labels(replica: &str, restore: &str, component: &str) -> BTreeMap<String, String> {
    let mut l = replica_labels(replica, component);
    l.insert(LABEL_RESTORE.to_owned(), naming::label_value(restore));
    l
}

/// The `postgres` port of pgro's Services (targets the container port by name).
#[must_use]
pub fn postgres_service_port() -> k8s_openapi::api::core::v1::ServicePort {
    k8s_openapi::api::core::v1::ServicePort {
        name: Some(POSTGRES_PORT_NAME.into()),
        port: POSTGRES_PORT,
        target_port: Some(
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
                POSTGRES_PORT_NAME.into(),
            ),
        ),
        protocol: Some("TCP".into()),
        ..k8s_openapi::api::core::v1::ServicePort::default()
    }
}

/// Component label of PostgreSQL pods.
pub const COMPONENT_POSTGRES: &str = "postgres";

/// The selector of a restore's PostgreSQL pod. The component matters: the restore Job's and the schema
/// migration Job's pods carry the restore's label too, and a Service must never send clients to them.
#[must_use]
pub fn postgres_selector(restore: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            pgro_api::LABEL_RESTORE.to_owned(),
            naming::label_value(restore),
        ),
        (LABEL_COMPONENT.to_owned(), COMPONENT_POSTGRES.to_owned()),
    ])
}

/// The replica's name, which every builder needs (the API server always sets it).
fn replica_name(replica: &PostgresPhysicalReplica) -> Result<&str, BuildError> {
    replica
        .metadata
        .name
        .as_deref()
        .ok_or(BuildError::MissingMetadata {
            kind: "PostgresPhysicalReplica",
            field: "metadata.name",
        })
}

/// The restricted pod security context every pgro pod runs with (non-root, as `uid`).
#[must_use]
pub fn pod_security(uid: i64) -> PodSecurityContext {
    PodSecurityContext {
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        fs_group: Some(uid),
        fs_group_change_policy: Some("OnRootMismatch".into()),
        run_as_non_root: Some(true),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// The container security context: no privilege escalation, no capabilities, read-only root.
#[must_use]
pub fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

/// The replica's tolerations followed by the operator's defaults (without duplicates).
#[must_use]
pub fn merged_tolerations(replica: &[Toleration], defaults: &[Toleration]) -> Vec<Toleration> {
    let mut out = replica.to_vec();
    for t in defaults {
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests;
