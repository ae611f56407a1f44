//! Small API helpers: create-if-absent, status writes with optimistic concurrency, events.

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::context::Context;
use super::controllers::replica::plan::EventSpec;
use super::error::{Error, Result};
use super::specs::FIELD_MANAGER;

/// Whether an API error is a 404.
#[must_use]
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Whether an API error is a 409 (conflict or already exists).
#[must_use]
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Creates a missing child by server-side apply with pgro's field manager (a running Deployment then changes
/// only through its live fields, so an existing child is never re-applied here).
///
/// # Errors
///
/// API errors.
pub async fn apply_new<K>(api: &Api<K>, obj: &K) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let name = obj
        .meta()
        .name
        .clone()
        .ok_or(Error::MissingField("metadata.name"))?;
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await?;
    Ok(())
}

/// Creates `obj` unless an object of that name exists. Returns whether it was created.
///
/// # Errors
///
/// Any API error but "already exists".
pub async fn create_if_absent<K>(api: &Api<K>, obj: &K) -> Result<bool>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => Ok(true),
        Err(e) if is_conflict(&e) => Ok(false),
        Err(e) => Err(Error::Kube(e)),
    }
}

/// Writes a custom resource's whole status by server-side apply, with the object's `resourceVersion` as a
/// precondition: a decision made from stale state fails with a conflict and is made again.
///
/// Returns the object's new `resourceVersion`.
///
/// # Errors
///
/// API errors (409 when the object changed since it was read).
pub async fn apply_status<K, S>(api: &Api<K>, obj: &K, status: &S) -> Result<Option<String>>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    S: Serialize,
{
    let name = obj.name_any();
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"name": name, "resourceVersion": obj.resource_version()},
        "status": status,
    });
    let written = api
        .patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    Ok(written.resource_version())
}

/// The termination message of `container` in the newest pod of Job `job` that has one (its current state,
/// else its last state): how the Job's last attempt ended.
///
/// # Errors
///
/// API errors listing the pods.
pub async fn newest_termination_message(
    client: &kube::Client,
    ns: &str,
    job: &str,
    container: &str,
) -> Result<Option<String>> {
    newest_termination_message_of(
        client,
        ns,
        &format!("batch.kubernetes.io/job-name={job}"),
        container,
    )
    .await
}

/// The termination message of `container` in the newest pod matching the label `selector` that has one
/// (current or last state).
///
/// # Errors
///
/// Listing the pods fails.
pub async fn newest_termination_message_of(
    client: &kube::Client,
    ns: &str,
    selector: &str,
    container: &str,
) -> Result<Option<String>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = pods.list(&ListParams::default().labels(selector)).await?;
    let newest = list
        .items
        .iter()
        .filter_map(|p| {
            let created = p.metadata.creation_timestamp.as_ref()?.0;
            let c = p
                .status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .iter()
                .find(|c| c.name == container)?;
            let term = c
                .state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .or_else(|| c.last_state.as_ref().and_then(|s| s.terminated.as_ref()))?;
            Some((created, term.message.clone().unwrap_or_default()))
        })
        .max_by_key(|(created, _)| *created);
    Ok(newest.map(|(_, message)| message))
}

/// Records an event on `regarding`, with the restore it concerns as `related` (best effort: a failed event
/// never fails a reconcile).
pub async fn publish(ctx: &Context, regarding: &ObjectReference, ev: &EventSpec, action: &str) {
    let secondary = ev.restore.as_ref().map(|name| ObjectReference {
        api_version: Some(format!("{}/{}", pgro_api::GROUP, pgro_api::VERSION)),
        kind: Some("PostgresPhysicalRestore".into()),
        name: Some(name.clone()),
        namespace: regarding.namespace.clone(),
        ..ObjectReference::default()
    });
    let event = Event {
        type_: if ev.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: ev.reason.to_owned(),
        note: Some(crate::restore::truncate(&ev.note, 1000)),
        action: action.to_owned(),
        secondary,
    };
    if let Err(e) = ctx.recorder.publish(&event, regarding).await {
        tracing::warn!(reason = ev.reason, error = %e, "recording an event failed");
    }
}
