//! Installing CustomResourceDefinitions from a YAML stream and waiting until they are Established.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt as _};
use serde::Deserialize as _;

/// The workspace's generated CRDs (`deploy/crds.yaml`, written by `pgro gen-crds`), or the
/// colon-separated list in `PGRO_TESTKIT_CRDS` when set.
pub fn workspace_crds() -> Vec<PathBuf> {
    match std::env::var_os("PGRO_TESTKIT_CRDS") {
        Some(list) => std::env::split_paths(&list).collect(),
        None => vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds.yaml")],
    }
}

/// Parses every CRD document of a YAML stream (other kinds and empty documents are ignored).
///
/// # Errors
/// When the YAML does not parse or a CRD document does not match the CRD schema.
pub fn parse(yaml: &str) -> anyhow::Result<Vec<CustomResourceDefinition>> {
    let mut crds = Vec::new();
    for document in serde_yaml::Deserializer::from_str(yaml) {
        let value = serde_yaml::Value::deserialize(document)?;
        if value.get("kind").and_then(|k| k.as_str()) == Some("CustomResourceDefinition") {
            crds.push(serde_yaml::from_value(value)?);
        }
    }
    Ok(crds)
}

/// Server-side applies every CRD in `path` and waits until each is Established.
///
/// # Errors
/// When the file is unreadable, has no CRD, a CRD is rejected, or one is not Established within 60 s.
pub(crate) async fn install(client: &Client, path: &Path) -> anyhow::Result<()> {
    let yaml = std::fs::read_to_string(path)
        .with_context(|| format!("reading CRDs from {}", path.display()))?;
    let crds = parse(&yaml).with_context(|| format!("parsing {}", path.display()))?;
    if crds.is_empty() {
        bail!("{} holds no CustomResourceDefinition", path.display());
    }
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("pgro-testkit").force();
    for crd in &crds {
        api.patch(&crd.name_any(), &params, &Patch::Apply(crd))
            .await
            .with_context(|| format!("applying CRD {}", crd.name_any()))?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for crd in &crds {
        loop {
            let current = api.get(&crd.name_any()).await?;
            let established = current
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established {
                break;
            }
            if Instant::now() > deadline {
                bail!("CRD {} not Established after 60 s", crd.name_any());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}
