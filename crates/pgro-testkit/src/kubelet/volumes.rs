//! Pod volumes as host directories: emptyDir and materialised Secret/ConfigMap/downward API/projected
//! volumes under the pod's directory; PVCs as the directory of their bound PV (`hostPath` or `local`);
//! `hostPath` as is.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    DownwardAPIVolumeFile, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod, ServiceAccount,
    Volume,
};
use kube::Api;
use kube::api::PostParams;

use super::envvars::{ConfigError, Lookups, PodFacts, field_ref};

/// Why volumes are not ready yet; the pod stays in `ContainerCreating` and the kubelet retries.
#[derive(Debug)]
pub(crate) struct NotReady(pub String);

impl From<ConfigError> for NotReady {
    fn from(error: ConfigError) -> Self {
        Self(error.0)
    }
}

/// Prepares every volume of `pod`; returns volume name → host path.
pub(crate) async fn prepare(
    lookups: &mut Lookups<'_>,
    pod: &Pod,
    facts: &PodFacts,
    pod_dir: &Path,
) -> Result<BTreeMap<String, PathBuf>, NotReady> {
    let spec = pod.spec.clone().unwrap_or_default();
    let fs_group = spec.security_context.as_ref().and_then(|s| s.fs_group);
    let mut prepared = BTreeMap::new();
    for volume in spec.volumes.iter().flatten() {
        let path = prepare_one(lookups, pod, facts, pod_dir, volume)
            .await
            .map_err(|e| NotReady(format!("volume {:?}: {}", volume.name, e.0)))?;
        if let Some(gid) = fs_group
            && (volume.empty_dir.is_some() || volume.persistent_volume_claim.is_some())
        {
            // fsGroup: the volume's group becomes fsGroup, with setgid so new files inherit it.
            let _ = nix::unistd::chown(&path, None, Some(nix::unistd::Gid::from_raw(gid as u32)));
            let mode = std::fs::metadata(&path)
                .map(|m| m.permissions().mode())
                .unwrap_or(0o777);
            let _ = std::fs::set_permissions(
                &path,
                std::fs::Permissions::from_mode((mode & 0o7777) | 0o2070),
            );
        }
        if let Some(gid) = fs_group
            && (volume.secret.is_some()
                || volume.config_map.is_some()
                || volume.projected.is_some()
                || volume.downward_api.is_some())
        {
            // Like the kubelet's SetVolumeOwnership for these read-only volumes: the files' group becomes
            // fsGroup and they become group-readable, so `defaultMode: 0440` works for a non-root pod.
            group_readable(&path, gid as u32);
        }
        prepared.insert(volume.name.clone(), path);
    }
    Ok(prepared)
}

fn group_readable(path: &Path, gid: u32) {
    let _ = nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)));
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o7777;
    if meta.is_dir() {
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o050));
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            group_readable(&entry.path(), gid);
        }
    } else if meta.is_file() {
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o040));
    }
}

fn io(error: std::io::Error) -> NotReady {
    NotReady(error.to_string())
}

fn mkdir(path: &Path, mode: u32) -> Result<(), NotReady> {
    std::fs::create_dir_all(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io)
}

async fn prepare_one(
    lookups: &mut Lookups<'_>,
    pod: &Pod,
    facts: &PodFacts,
    pod_dir: &Path,
    volume: &Volume,
) -> Result<PathBuf, NotReady> {
    let dir = pod_dir.join("volumes").join(&volume.name);
    if volume.empty_dir.is_some() {
        mkdir(&dir, 0o777)?;
        return Ok(dir);
    }
    if let Some(host) = &volume.host_path {
        let path = PathBuf::from(&host.path);
        match host.type_.as_deref().unwrap_or("") {
            "DirectoryOrCreate" => mkdir(&path, 0o755)?,
            "FileOrCreate" if !path.exists() => {
                std::fs::write(&path, b"").map_err(io)?;
            }
            "Directory" if !path.is_dir() => {
                return Err(NotReady(format!(
                    "hostPath {} is not a directory",
                    host.path
                )));
            }
            _ => {}
        }
        return Ok(path);
    }
    if let Some(claim) = &volume.persistent_volume_claim {
        return claim_dir(lookups, &claim.claim_name).await;
    }
    if let Some(secret) = &volume.secret {
        let name = secret.secret_name.clone().unwrap_or_default();
        let data = lookups.secret_data(&name).await?;
        let data = match (data, secret.optional.unwrap_or(false)) {
            (Some(data), _) => data,
            (None, true) => BTreeMap::new(),
            (None, false) => return Err(NotReady(format!("secret {name:?} not found"))),
        };
        mkdir(&dir, 0o755)?;
        write_keys(
            &dir,
            &data,
            secret.items.as_deref(),
            secret.default_mode.unwrap_or(0o644),
        )?;
        return Ok(dir);
    }
    if let Some(cm) = &volume.config_map {
        let data = lookups.config_map_data(&cm.name).await?;
        let data = match (data, cm.optional.unwrap_or(false)) {
            (Some(data), _) => data,
            (None, true) => BTreeMap::new(),
            (None, false) => return Err(NotReady(format!("configmap {:?} not found", cm.name))),
        };
        mkdir(&dir, 0o755)?;
        write_keys(
            &dir,
            &data,
            cm.items.as_deref(),
            cm.default_mode.unwrap_or(0o644),
        )?;
        return Ok(dir);
    }
    if let Some(downward) = &volume.downward_api {
        mkdir(&dir, 0o755)?;
        write_downward(
            &dir,
            pod,
            facts,
            downward.items.as_deref().unwrap_or_default(),
            downward.default_mode.unwrap_or(0o644),
        )?;
        return Ok(dir);
    }
    if let Some(projected) = &volume.projected {
        mkdir(&dir, 0o755)?;
        let mode = projected.default_mode.unwrap_or(0o644);
        for source in projected.sources.iter().flatten() {
            if let Some(secret) = &source.secret {
                if let Some(data) = lookups.secret_data(&secret.name).await? {
                    write_keys(&dir, &data, secret.items.as_deref(), mode)?;
                } else if !secret.optional.unwrap_or(false) {
                    return Err(NotReady(format!("secret {:?} not found", secret.name)));
                }
            }
            if let Some(cm) = &source.config_map {
                if let Some(data) = lookups.config_map_data(&cm.name).await? {
                    write_keys(&dir, &data, cm.items.as_deref(), mode)?;
                } else if !cm.optional.unwrap_or(false) {
                    return Err(NotReady(format!("configmap {:?} not found", cm.name)));
                }
            }
            if let Some(downward) = &source.downward_api {
                write_downward(
                    &dir,
                    pod,
                    facts,
                    downward.items.as_deref().unwrap_or_default(),
                    mode,
                )?;
            }
            if let Some(token) = &source.service_account_token {
                let value = service_account_token(
                    lookups,
                    pod,
                    token.audience.clone(),
                    token.expiration_seconds,
                )
                .await?;
                write_file(&dir.join(&token.path), value.as_bytes(), mode)?;
            }
        }
        return Ok(dir);
    }
    Err(NotReady("unsupported volume type (the process kubelet supports emptyDir, hostPath, persistentVolumeClaim, secret, configMap, downwardAPI and projected)".into()))
}

/// The directory of a bound claim (its PV's `hostPath`/`local` path).
pub(crate) async fn claim_dir(
    lookups: &mut Lookups<'_>,
    claim_name: &str,
) -> Result<PathBuf, NotReady> {
    let claims: Api<PersistentVolumeClaim> =
        Api::namespaced(lookups.client.clone(), lookups.namespace);
    let claim = claims
        .get_opt(claim_name)
        .await
        .map_err(|e| NotReady(e.to_string()))?
        .ok_or_else(|| NotReady(format!("persistentvolumeclaim {claim_name:?} not found")))?;
    let bound = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let volume_name = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|_| bound);
    let Some(volume_name) = volume_name else {
        return Err(NotReady(format!(
            "persistentvolumeclaim {claim_name:?} is not bound yet"
        )));
    };
    let volumes: Api<PersistentVolume> = Api::all(lookups.client.clone());
    let volume = volumes
        .get(&volume_name)
        .await
        .map_err(|e| NotReady(e.to_string()))?;
    let spec = volume.spec.unwrap_or_default();
    let path = spec
        .host_path
        .map(|h| h.path)
        .or(spec.local.map(|l| l.path))
        .ok_or_else(|| {
            NotReady(format!(
                "persistentvolume {volume_name:?} is neither hostPath nor local"
            ))
        })?;
    let path = PathBuf::from(path);
    if !path.exists() {
        mkdir(&path, 0o777)?;
    }
    Ok(path)
}

async fn service_account_token(
    lookups: &mut Lookups<'_>,
    pod: &Pod,
    audience: Option<String>,
    expiration: Option<i64>,
) -> Result<String, NotReady> {
    let account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let api: Api<ServiceAccount> = Api::namespaced(lookups.client.clone(), lookups.namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audience.into_iter().collect(),
            expiration_seconds: Some(expiration.unwrap_or(3607)),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let response = api
        .create_token_request(&account, &PostParams::default(), &request)
        .await
        .map_err(|e| NotReady(format!("token request for serviceaccount {account:?}: {e}")))?;
    response
        .status
        .map(|s| s.token)
        .ok_or_else(|| NotReady("token request returned no token".into()))
}

fn write_file(path: &Path, data: &[u8], mode: i32) -> Result<(), NotReady> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::fs::write(path, data).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode as u32 & 0o7777))
        .map_err(io)
}

fn write_keys(
    dir: &Path,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    mode: i32,
) -> Result<(), NotReady> {
    match items {
        Some(items) => {
            for item in items {
                let value = data
                    .get(&item.key)
                    .ok_or_else(|| NotReady(format!("key {:?} not found", item.key)))?;
                write_file(&dir.join(&item.path), value, item.mode.unwrap_or(mode))?;
            }
        }
        None => {
            for (key, value) in data {
                write_file(&dir.join(key), value, mode)?;
            }
        }
    }
    Ok(())
}

fn write_downward(
    dir: &Path,
    pod: &Pod,
    facts: &PodFacts,
    items: &[DownwardAPIVolumeFile],
    mode: i32,
) -> Result<(), NotReady> {
    for item in items {
        let value = match &item.field_ref {
            Some(field) => match field.field_path.as_str() {
                "metadata.labels" | "metadata.annotations" => {
                    let map = if field.field_path == "metadata.labels" {
                        &pod.metadata.labels
                    } else {
                        &pod.metadata.annotations
                    };
                    map.iter()
                        .flatten()
                        .map(|(k, v)| format!("{k}={v:?}\n"))
                        .collect()
                }
                path => field_ref(pod, facts, path)?,
            },
            None => String::new(),
        };
        write_file(
            &dir.join(&item.path),
            value.as_bytes(),
            item.mode.unwrap_or(mode),
        )?;
    }
    Ok(())
}
