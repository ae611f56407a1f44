//! A provisioner for PersistentVolumeClaims: each pending claim gets a `hostPath` PV (a directory under
//! the kubelet's state) pre-bound to it; the controller-manager's PV controller then binds the pair.
//! Released volumes of ours are deleted with their directory (we act as the external provisioner, so
//! the PV controller leaves deletion to us).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use futures::TryStreamExt as _;
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeSpec,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, ResourceExt as _};

/// The provisioner name on our StorageClass and PVs.
pub const PROVISIONER: &str = "pgro.bes.au/process-kubelet";
/// The default StorageClass the kubelet creates.
pub const STORAGE_CLASS: &str = "standard";
const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";

/// Creates the default StorageClass (`standard`, Immediate binding, Delete reclaim) if it is missing.
pub(crate) async fn ensure_storage_class(client: &Client) -> anyhow::Result<()> {
    let api: Api<StorageClass> = Api::all(client.clone());
    if api.get_opt(STORAGE_CLASS).await?.is_some() {
        return Ok(());
    }
    let class = StorageClass {
        metadata: ObjectMeta {
            name: Some(STORAGE_CLASS.into()),
            annotations: Some(
                [(
                    "storageclass.kubernetes.io/is-default-class".to_owned(),
                    "true".to_owned(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        provisioner: PROVISIONER.into(),
        reclaim_policy: Some("Delete".into()),
        volume_binding_mode: Some("Immediate".into()),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &class).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The directory backing a claim.
pub(crate) fn claim_dir(root: &Path, claim: &PersistentVolumeClaim) -> PathBuf {
    let uid = claim.uid().unwrap_or_default();
    root.join(format!(
        "{}-{}-{}",
        claim.namespace().unwrap_or_default(),
        claim.name_any(),
        &uid[..uid.len().min(8)]
    ))
}

/// Provisions PVs for pending claims until cancelled.
pub(crate) async fn provision(client: Client, root: PathBuf) {
    let claims: Api<PersistentVolumeClaim> = Api::all(client.clone());
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let stream = watcher::watcher(claims, watcher::Config::default())
        .applied_objects()
        .default_backoff();
    let mut stream = std::pin::pin!(stream);
    loop {
        let claim = match stream.try_next().await {
            Ok(Some(claim)) => claim,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(error = %error, "claim watch failed");
                continue;
            }
        };
        let spec = claim.spec.clone().unwrap_or_default();
        let pending = claim
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_none_or(|p| p == "Pending");
        if spec.volume_name.is_some() || !pending || claim.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let class = spec.storage_class_name.clone().unwrap_or_default();
        if !class.is_empty() && class != STORAGE_CLASS {
            // Another class: still provision (tests rarely care about the class), keeping its name.
            tracing::debug!(class = %class, "provisioning a claim of a foreign storage class");
        }
        let dir = claim_dir(&root, &claim);
        if let Err(error) = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)))
        {
            tracing::warn!(error = %error, "creating a claim directory failed");
            continue;
        }
        let size = spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage").cloned())
            .unwrap_or_else(|| Quantity("1Gi".into()));
        let name = format!("pvc-{}", claim.uid().unwrap_or_default());
        let volume = PersistentVolume {
            metadata: ObjectMeta {
                name: Some(name),
                annotations: Some([(PROVISIONED_BY.to_owned(), PROVISIONER.to_owned())].into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                capacity: Some(BTreeMap::from([("storage".to_owned(), size)])),
                access_modes: spec
                    .access_modes
                    .clone()
                    .or_else(|| Some(vec!["ReadWriteOnce".into()])),
                volume_mode: spec.volume_mode.clone(),
                storage_class_name: Some(class),
                persistent_volume_reclaim_policy: Some("Delete".into()),
                host_path: Some(HostPathVolumeSource {
                    path: dir.display().to_string(),
                    type_: Some("DirectoryOrCreate".into()),
                }),
                claim_ref: Some(ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("PersistentVolumeClaim".into()),
                    namespace: claim.namespace(),
                    name: Some(claim.name_any()),
                    uid: claim.uid(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        match volumes.create(&PostParams::default(), &volume).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(error) => tracing::warn!(error = %error, "creating a persistent volume failed"),
        }
    }
}

/// Deletes our Released volumes and their directories.
pub(crate) async fn reclaim(client: Client, root: PathBuf) {
    let volumes: Api<PersistentVolume> = Api::all(client);
    let stream = watcher::watcher(volumes.clone(), watcher::Config::default())
        .applied_objects()
        .default_backoff();
    let mut stream = std::pin::pin!(stream);
    loop {
        let volume = match stream.try_next().await {
            Ok(Some(volume)) => volume,
            Ok(None) => return,
            Err(_) => continue,
        };
        let ours =
            volume.annotations().get(PROVISIONED_BY).map(String::as_str) == Some(PROVISIONER);
        let released = volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
        let delete = volume
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
            == Some("Delete");
        if !(ours && released && delete) || volume.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some(path) = volume
            .spec
            .as_ref()
            .and_then(|s| s.host_path.as_ref())
            .map(|h| PathBuf::from(&h.path))
            && path.starts_with(&root)
        {
            let _ = std::fs::remove_dir_all(&path);
        }
        let _ = volumes
            .delete(&volume.name_any(), &DeleteParams::default())
            .await;
    }
}
