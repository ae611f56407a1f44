//! The `tls` volume and arguments of pgro's pods: the CA that verifies a replica's server, and for the
//! PostgreSQL pod the server certificate and key (TLS for client connections).

use k8s_openapi::api::core::v1::{
    KeyToPath, ProjectedVolumeSource, SecretProjection, Volume, VolumeProjection,
};
use pgro_api::PostgresPhysicalReplica;

use super::{BuildError, TLS_CRT, TLS_KEY, TLS_MOUNT};
use crate::operator::{certificates, naming};
use crate::postgres::tls::CA_KEY;

/// Volume `tls`: the CA clients trust (`<replica>-ca`) and, for the PostgreSQL pod, the server certificate
/// and key, projected into one directory ([`TLS_MOUNT`]). The CA's own key is never projected.
pub(super) fn volume(
    replica: &PostgresPhysicalReplica,
    server: bool,
) -> Result<Volume, BuildError> {
    let items = |keys: &[&str]| {
        keys.iter()
            .map(|k| KeyToPath {
                key: (*k).into(),
                path: (*k).into(),
                mode: None,
            })
            .collect()
    };
    let project = |secret: String, keys: &[&str]| VolumeProjection {
        secret: Some(SecretProjection {
            name: secret,
            items: Some(items(keys)),
            optional: Some(false),
        }),
        ..VolumeProjection::default()
    };
    let mut sources = vec![project(
        naming::ca_secret(super::replica_name(replica)?),
        &[CA_KEY],
    )];
    if server {
        sources.push(project(
            super::server_certificate_secret(replica)?,
            &[TLS_CRT, TLS_KEY],
        ));
    }
    Ok(Volume {
        name: "tls".into(),
        projected: Some(ProjectedVolumeSource {
            default_mode: Some(0o440),
            sources: Some(sources),
        }),
        ..Volume::default()
    })
}

/// Whether a restore's PostgreSQL Deployment serves TLS (its instance has a certificate). Restores made by a
/// pgro without TLS serve plain text until they are replaced; the schema migration must still read them.
#[must_use]
pub fn serves_tls(d: &k8s_openapi::api::apps::v1::Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .into_iter()
        .flat_map(|p| &p.containers)
        .flat_map(|c| c.args.iter().flatten())
        .any(|a| a == "--tls-cert-file")
}

/// `--tls-ca-file` and `--tls-server-name`: how a pgro process verifies the replica's server (the name is
/// the one every certificate must carry, `<replica>.<ns>.svc`).
pub(super) fn client_args(replica: &PostgresPhysicalReplica) -> Result<Vec<String>, BuildError> {
    let name = super::replica_name(replica)?;
    let ns = replica.metadata.namespace.as_deref().unwrap_or_default();
    Ok(vec![
        "--tls-ca-file".into(),
        format!("{TLS_MOUNT}/{CA_KEY}"),
        "--tls-server-name".into(),
        certificates::verified_name(name, ns),
    ])
}
