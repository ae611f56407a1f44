//! Applying multi-document YAML manifests (`deploy/operator.yaml`, `examples/*.yaml`) by server-side apply,
//! as `kubectl apply --server-side` does: each document's kind looked up by discovery.

use anyhow::{Context as _, bail};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::{Client, ResourceExt as _};
use serde::Deserialize as _;

/// Applies every document of `yaml` with field manager `manager` (forcing conflicts, as a re-apply of the
/// same manifest should).
///
/// # Errors
/// A document that is not an object with apiVersion, kind and name; an unknown kind; a refused apply.
pub async fn apply(client: &Client, yaml: &str, manager: &str) -> anyhow::Result<()> {
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value = serde_yaml::Value::deserialize(doc).context("parsing a YAML document")?;
        if value.is_null() {
            continue;
        }
        let obj: DynamicObject = serde_yaml::from_value(value).context("a Kubernetes object")?;
        let Some(tm) = obj.types.clone() else {
            bail!("a document without apiVersion and kind");
        };
        let gvk = GroupVersionKind::try_from(&tm)?;
        let (ar, caps) = kube::discovery::pinned_kind(client, &gvk)
            .await
            .with_context(|| format!("looking up {}", tm.kind))?;
        let api: Api<DynamicObject> = if caps.scope == kube::discovery::Scope::Namespaced {
            let ns = obj
                .namespace()
                .with_context(|| format!("{} {} names no namespace", tm.kind, obj.name_any()))?;
            Api::namespaced_with(client.clone(), &ns, &ar)
        } else {
            Api::all_with(client.clone(), &ar)
        };
        api.patch(
            &obj.name_any(),
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&obj),
        )
        .await
        .with_context(|| format!("applying {} {}", tm.kind, obj.name_any()))?;
    }
    Ok(())
}
