//! A replica's own children (behaviour R2): the credentials Secret, the admin Secret, the TLS Secrets and
//! the stable Service.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{LocalObjectReference, Secret, Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use pgro_api::{
    LABEL_RESTORE, PostgresPhysicalReplica, PostgresPhysicalRestore, PostgresPhysicalRestoreSpec,
};

use super::{
    BuildError, CA_PRIVATE_KEY, PASSWORD_KEY, TLS_CRT, TLS_KEY, USERNAME_KEY, controller_ref,
    replica_labels, replica_name,
};
use crate::operator::certificates::Issued;
use crate::operator::naming;
use crate::postgres::tls::CA_KEY;

/// The operator's superuser in every restored instance.
pub const ADMIN_USER: &str = "pgro_admin";

/// Selector value while no restore is active: matches no pod.
const NO_RESTORE: &str = "none";

fn meta(
    replica: &PostgresPhysicalReplica,
    name: String,
    component: &str,
) -> Result<ObjectMeta, BuildError> {
    Ok(ObjectMeta {
        name: Some(name),
        namespace: replica.metadata.namespace.clone(),
        labels: Some(replica_labels(replica_name(replica)?, component)),
        owner_references: Some(vec![controller_ref(replica)?]),
        ..ObjectMeta::default()
    })
}

fn secret(meta: ObjectMeta, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: meta,
        type_: Some("Opaque".into()),
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// Secret `<replica>-creds` with the analytics role's `username` and `password` (behaviour R2).
///
/// # Errors
///
/// [`BuildError::MissingMetadata`].
pub fn credentials_secret(
    replica: &PostgresPhysicalReplica,
    password: &str,
) -> Result<Secret, BuildError> {
    let name = naming::credentials_secret(replica_name(replica)?);
    Ok(secret(
        meta(replica, name, "credentials")?,
        &[
            (USERNAME_KEY, &replica.spec.analytics_username),
            (PASSWORD_KEY, password),
        ],
    ))
}

/// Secret `<replica>-admin` with the password of `pgro_admin`, the operator's channel into each instance.
///
/// # Errors
///
/// [`BuildError::MissingMetadata`].
pub fn admin_secret(
    replica: &PostgresPhysicalReplica,
    password: &str,
) -> Result<Secret, BuildError> {
    let name = naming::admin_secret(replica_name(replica)?);
    Ok(secret(
        meta(replica, name, "admin-credentials")?,
        &[(USERNAME_KEY, ADMIN_USER), (PASSWORD_KEY, password)],
    ))
}

/// Secret `<replica>-ca` with `ca.crt`: the CA clients verify the server with (pgro's own, or the one in
/// `spec.tls.certificateSecretRef`). It holds no key, so it can be handed to anyone who connects.
///
/// # Errors
///
/// [`BuildError::MissingMetadata`].
pub fn ca_secret(replica: &PostgresPhysicalReplica, ca_crt: &str) -> Result<Secret, BuildError> {
    let name = naming::ca_secret(replica_name(replica)?);
    Ok(secret(meta(replica, name, "ca")?, &[(CA_KEY, ca_crt)]))
}

/// Secret `<replica>-tls` (`kubernetes.io/tls`): the server certificate and key pgro issued, with the CA
/// and the CA's key that re-sign it before it expires. Pods mount only `tls.crt` and `tls.key` from it.
///
/// # Errors
///
/// [`BuildError::MissingMetadata`].
pub fn tls_secret(replica: &PostgresPhysicalReplica, i: &Issued) -> Result<Secret, BuildError> {
    let name = naming::tls_secret(replica_name(replica)?);
    let mut s = secret(
        meta(replica, name, "tls")?,
        &[
            (TLS_CRT, &i.tls_crt),
            (TLS_KEY, &i.tls_key),
            (CA_KEY, &i.ca_crt),
            (CA_PRIVATE_KEY, &i.ca_key),
        ],
    );
    s.type_ = Some("kubernetes.io/tls".into());
    Ok(s)
}

/// The Secret the PostgreSQL pods take `tls.crt` and `tls.key` from: the user's
/// (`spec.tls.certificateSecretRef`) or pgro's own `<replica>-tls`.
///
/// # Errors
///
/// [`BuildError::MissingMetadata`].
pub fn server_certificate_secret(replica: &PostgresPhysicalReplica) -> Result<String, BuildError> {
    Ok(
        match replica
            .spec
            .tls
            .as_ref()
            .and_then(|t| t.certificate_secret_ref.as_ref())
        {
            Some(r) => r.name.clone(),
            None => naming::tls_secret(replica_name(replica)?),
        },
    )
}

/// Service `<replica>` (ClusterIP, port 5432 `postgres`) selecting the active restore's pod, or none
/// (behaviour R2, R9). `serviceAnnotations` are applied as this field manager's own, so annotations set by
/// others stay.
///
/// # Errors
///
/// [`BuildError::MissingMetadata`].
pub fn replica_service(
    replica: &PostgresPhysicalReplica,
    active: Option<&str>,
) -> Result<Service, BuildError> {
    let name = naming::replica_service(replica_name(replica)?);
    let mut m = meta(replica, name, "service")?;
    m.annotations = replica.spec.service_annotations.clone();
    Ok(Service {
        metadata: m,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(match active {
                Some(restore) => super::postgres_selector(restore),
                None => BTreeMap::from([(LABEL_RESTORE.to_owned(), NO_RESTORE.to_owned())]),
            }),
            ports: Some(vec![super::postgres_service_port()]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

/// A new restore of `snapshot_id` for `replica` (behaviour R7): labelled, owned by the replica, with the
/// snapshot's size and time and the computed storage size in its (immutable) spec.
///
/// # Errors
///
/// [`BuildError::MissingMetadata`].
pub fn new_restore(
    replica: &PostgresPhysicalReplica,
    name: &str,
    snapshot_id: &str,
    snapshot_size: Quantity,
    storage_size: Quantity,
    snapshot_time: jiff::Timestamp,
) -> Result<PostgresPhysicalRestore, BuildError> {
    let replica_name = replica_name(replica)?;
    let mut restore = PostgresPhysicalRestore::new(
        name,
        PostgresPhysicalRestoreSpec {
            replica: LocalObjectReference {
                name: replica_name.to_owned(),
            },
            snapshot: snapshot_id.to_owned(),
            snapshot_size,
            storage_size,
            snapshot_time: Some(Time(snapshot_time)),
            source: replica.spec.source.clone(),
            recovery: replica.spec.recovery.clone(),
        },
    );
    restore.metadata = meta(replica, name.to_owned(), "restore")?;
    Ok(restore)
}
