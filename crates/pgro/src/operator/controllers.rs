//! The two controllers and their shared error policy (style H10, H11).

pub mod replica;
pub mod restore;

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use pgro_api::event_reasons;
use replica::plan::EventSpec;

use super::context::Context;
use super::error::{Error, ErrorClass};
use super::k8s::publish;
use super::metrics::ErrorLabels;

/// One error policy for both controllers: a metric, a structured warning, a Warning event on the object,
/// and a requeue by class.
pub fn error_policy<K>(
    controller: &'static str,
    obj: &Arc<K>,
    err: &Error,
    ctx: &Arc<Context>,
) -> Action
where
    K: Resource<DynamicType = ()>,
{
    let class = err.class();
    ctx.metrics
        .reconcile_errors
        .get_or_create(&ErrorLabels {
            controller,
            error: err.label(),
        })
        .inc();
    let after = match class {
        // A conflict means our view was stale: look again at once with fresh state.
        ErrorClass::Transient if err.label() == "conflict" => Duration::from_secs(1),
        ErrorClass::Transient | ErrorClass::Structural | ErrorClass::Terminal => {
            class.requeue_after()
        }
    };
    let retry_in = humantime::format_duration(after).to_string();
    // A conflict is routine (a stale view, retried at once): debug, not a warning per write.
    if err.label() == "conflict" {
        tracing::debug!(
            kind = controller,
            namespace = obj.namespace().unwrap_or_default(),
            name = obj.name_any(),
            error = %err,
            retry_in,
            "reconcile saw a stale object; retrying"
        );
    } else {
        tracing::warn!(
            kind = controller,
            namespace = obj.namespace().unwrap_or_default(),
            name = obj.name_any(),
            class = ?class,
            error = %err,
            retry_in,
            "reconcile failed; requeueing"
        );
    }
    // The event puts the reason where users look (`kubectl describe`); repeats fold into one series. A
    // conflict only means this pass saw a stale object and is retried at once: nothing to tell.
    if err.label() != "conflict" {
        let regarding = obj.object_ref(&());
        let ev = EventSpec {
            warning: true,
            reason: event_reasons::RECONCILE_FAILED,
            note: format!("{err}; retrying in {}", humantime::format_duration(after)),
            restore: None,
        };
        let ctx = Arc::clone(ctx);
        tokio::spawn(async move { publish(&ctx, &regarding, &ev, "Reconcile").await });
    }
    Action::requeue(after)
}
