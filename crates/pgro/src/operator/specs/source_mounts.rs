//! What a pod reading a WAL-archive source mounts (the restore Job; the PostgreSQL pod for `wal-fetch`):
//! the `spec.source` object as a file through the downward API (from a pod annotation: no extra object, no
//! RBAC), and the source's Secret keys read-only as files — never as environment variables or arguments.
//! A pgBackRest source's one Secret is a directory of its keys; a barman-cloud source's referenced keys
//! are projected as `<secret>/<key>`, only those keys, from as many Secrets as it names; a restic source's
//! Secrets (storage, and the encryption Secret holding `RESTIC_PASSWORD`) are each a directory
//! `<secret>/` of their keys (restic's variable names are not known in advance, so no key is listed).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    DownwardAPIVolumeFile, DownwardAPIVolumeSource, KeyToPath, ObjectFieldSelector,
    PersistentVolumeClaimVolumeSource, ProjectedVolumeSource, SecretProjection, SecretVolumeSource,
    Volume, VolumeMount, VolumeProjection,
};
use pgro_api::{
    BarmanCloudSource, PgbackrestSource, Recovery, RecoveryTarget, ResticSource, Source,
};

use super::BuildError;

/// Pod annotation carrying the source object (YAML).
pub const SOURCE_ANNOTATION: &str = "pgro.bes.au/source";
/// Where the source object is mounted.
pub const SOURCE_DIR: &str = "/etc/pgro/source";
/// The source object's file.
pub const SOURCE_FILE: &str = "/etc/pgro/source/source.yaml";
/// Where the source Secret's keys are mounted.
pub const SOURCE_SECRET_DIR: &str = "/etc/pgro/source-secret";

/// Volumes, mounts and the annotation for one source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceMounts {
    /// Pod annotations to add.
    pub annotations: BTreeMap<String, String>,
    /// Pod volumes.
    pub volumes: Vec<Volume>,
    /// Container mounts.
    pub mounts: Vec<VolumeMount>,
    /// `--secret-dir` (or the instance's `--source-secret-dir`), when the source has a Secret.
    pub secret_dir: Option<&'static str>,
}

/// The mounts of a restore's source when it is not Kopia (pgBackRest, barman-cloud, restic); `None` for
/// Kopia.
///
/// # Errors
/// The source cannot be serialised (never for a valid object).
pub fn archive_source_mounts(source: Option<&Source>) -> Result<Option<SourceMounts>, BuildError> {
    match source {
        Some(Source {
            pgbackrest: Some(p),
            ..
        }) => source_mounts(p).map(Some),
        Some(Source {
            barman_cloud: Some(b),
            ..
        }) => barman_mounts(b).map(Some),
        Some(Source {
            restic: Some(r), ..
        }) => restic_mounts(r).map(Some),
        _ => Ok(None),
    }
}

/// The annotation and the downward-API volume carrying `source` as `source.yaml`.
fn source_file(source: &Source) -> Result<SourceMounts, BuildError> {
    let yaml = serde_yaml::to_string(source).map_err(|_| BuildError::MissingMetadata {
        kind: "PostgresPhysicalRestore",
        field: "spec.source",
    })?;
    let mut m = SourceMounts {
        annotations: BTreeMap::from([(SOURCE_ANNOTATION.to_owned(), yaml)]),
        ..SourceMounts::default()
    };
    m.volumes.push(Volume {
        name: "source".into(),
        downward_api: Some(DownwardAPIVolumeSource {
            items: Some(vec![DownwardAPIVolumeFile {
                path: "source.yaml".into(),
                field_ref: Some(ObjectFieldSelector {
                    field_path: format!("metadata.annotations['{SOURCE_ANNOTATION}']"),
                    ..ObjectFieldSelector::default()
                }),
                ..DownwardAPIVolumeFile::default()
            }]),
            default_mode: Some(0o444),
        }),
        ..Volume::default()
    });
    m.mounts.push(mount("source", SOURCE_DIR, None));
    Ok(m)
}

/// The mounts of a barman-cloud source: each referenced key projected as `<secret>/<key>`.
///
/// # Errors
/// The source cannot be serialised (never for a valid object).
pub fn barman_mounts(b: &BarmanCloudSource) -> Result<SourceMounts, BuildError> {
    let mut m = source_file(&Source {
        barman_cloud: Some(b.clone()),
        ..Source::default()
    })?;
    let sources: Vec<VolumeProjection> = b
        .secret_names()
        .into_iter()
        .map(|name| {
            let mut items: Vec<KeyToPath> = b
                .secret_keys()
                .iter()
                .filter(|k| k.name == name)
                .map(|k| KeyToPath {
                    key: k.key.clone(),
                    path: format!("{name}/{}", k.key),
                    mode: None,
                })
                .collect();
            items.sort_by(|a, b| a.path.cmp(&b.path));
            items.dedup_by(|a, b| a.path == b.path);
            VolumeProjection {
                secret: Some(SecretProjection {
                    name: name.to_owned(),
                    items: Some(items),
                    optional: Some(false),
                }),
                ..VolumeProjection::default()
            }
        })
        .collect();
    if !sources.is_empty() {
        m.volumes.push(Volume {
            name: "source-secret".into(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(sources),
                default_mode: Some(0o440),
            }),
            ..Volume::default()
        });
        m.mounts
            .push(mount("source-secret", SOURCE_SECRET_DIR, None));
        m.secret_dir = Some(SOURCE_SECRET_DIR);
    }
    Ok(m)
}

/// The mounts of a restic source: each Secret whole as `<secret>/`.
///
/// # Errors
/// The source cannot be serialised (never for a valid object).
pub fn restic_mounts(r: &ResticSource) -> Result<SourceMounts, BuildError> {
    let mut m = source_file(&Source {
        restic: Some(r.clone()),
        ..Source::default()
    })?;
    for (i, name) in r.secret_names().into_iter().enumerate() {
        let volume = format!("source-secret-{i}");
        m.volumes.push(Volume {
            name: volume.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(name.to_owned()),
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        m.mounts
            .push(mount(&volume, &format!("{SOURCE_SECRET_DIR}/{name}"), None));
        m.secret_dir = Some(SOURCE_SECRET_DIR);
    }
    Ok(m)
}

/// The mounts of a pgBackRest source.
///
/// # Errors
/// The source cannot be serialised (never for a valid object).
pub fn source_mounts(p: &PgbackrestSource) -> Result<SourceMounts, BuildError> {
    let mut m = source_file(&Source {
        pgbackrest: Some(p.clone()),
        ..Source::default()
    })?;
    if let Some(name) = p.secret_ref.as_ref().and_then(|r| r.name.clone()) {
        m.volumes.push(Volume {
            name: "source-secret".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(name),
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        m.mounts
            .push(mount("source-secret", SOURCE_SECRET_DIR, None));
        m.secret_dir = Some(SOURCE_SECRET_DIR);
    }
    if let Some(v) = &p.volume {
        m.volumes.push(Volume {
            name: "source-repository".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: v.claim_name.clone(),
                read_only: Some(true),
            }),
            ..Volume::default()
        });
        m.mounts
            .push(mount("source-repository", &p.repo_path, v.sub_path.clone()));
    }
    Ok(m)
}

fn mount(name: &str, path: &str, sub_path: Option<String>) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(true),
        sub_path,
        ..VolumeMount::default()
    }
}

/// `latest` or `consistent`, as the command lines spell it.
#[must_use]
pub fn recovery_target(r: Option<&Recovery>) -> &'static str {
    match r.map(|r| r.target) {
        Some(RecoveryTarget::Consistent) => "consistent",
        _ => "latest",
    }
}

/// `pgro restore` for a WAL-archive source (parsed by the same `clap` types; see the tests).
#[must_use]
pub fn restore_args(backup: &str, m: &SourceMounts, recovery: &str) -> Vec<String> {
    let mut a: Vec<String> = ["restore", "--source", SOURCE_FILE]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    if let Some(d) = m.secret_dir {
        a.extend(["--secret-dir".to_owned(), d.to_owned()]);
    }
    a.extend(
        [
            "--backup",
            backup,
            "--recovery-target",
            recovery,
            "--target",
            super::DATA_MOUNT,
            "--termination-log",
            "/dev/termination-log",
        ]
        .iter()
        .map(|s| (*s).to_owned()),
    );
    a
}

#[cfg(test)]
mod tests;
