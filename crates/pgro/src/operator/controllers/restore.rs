//! The restore controller: reads a restore's children, asks [`plan::decide`], creates what is missing and
//! writes the status.

pub mod plan;

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use pgro_api::{PostgresPhysicalReplica, PostgresPhysicalRestore, RestorePhase};

use super::super::admin_sql;
use super::super::caches;
use super::super::context::Context;
use super::super::error::{Error, Result};
use super::super::k8s::{
    apply_new, apply_status, create_if_absent, newest_termination_message,
    newest_termination_message_of, publish,
};
use super::super::metrics::{CheckResultLabels, ControllerLabels, ReasonLabels};
use super::super::naming;
use super::super::quantity;
use super::super::specs::{self, LiveFields, RestoreInputs};
use super::super::verify;
use plan::{Child, DeploymentView, Fix, JobReport, JobView, Observed};

/// Reads the restore Job, and its pods' termination messages once it has finished.
async fn observe_job(ctx: &Context, ns: &str, restore: &str) -> Result<Option<JobView>> {
    let name = naming::restore_job(restore);
    let cache = ctx.caches().map(|c| &c.stores.jobs);
    let Some(job) = caches::lookup::<Job>(cache, &ctx.client, ns, &name).await? else {
        return Ok(None);
    };
    let status = job.status.clone().unwrap_or_default();
    let conds = status.conditions.unwrap_or_default();
    let cond = |t: &str| conds.iter().find(|c| c.type_ == t && c.status == "True");
    let complete_at = cond("Complete")
        .and_then(|c| c.last_transition_time.clone())
        .map(|t| t.0)
        .or_else(|| {
            status
                .completion_time
                .clone()
                .map(|t| t.0)
                .filter(|_| cond("Complete").is_some())
        });
    let failed = cond("Failed").map(|c| {
        (
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        )
    });
    let report = if complete_at.is_some() || failed.is_some() {
        newest_termination_message(&ctx.client, ns, &name, "restore")
            .await?
            .and_then(|m| JobReport::parse(&m))
    } else {
        None
    };
    Ok(Some(JobView {
        complete_at,
        failed,
        active: status.active.unwrap_or(0) > 0,
        report,
    }))
}

/// Reconciles one restore.
///
/// # Errors
///
/// API errors (retried per [`Error::class`]).
#[tracing::instrument(
    skip(restore, ctx),
    fields(kind = "PostgresPhysicalRestore", namespace, name)
)]
pub async fn reconcile(restore: Arc<PostgresPhysicalRestore>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let labels = ControllerLabels {
        controller: "restore",
    };
    ctx.metrics.reconciles.get_or_create(&labels).inc();
    let result = reconcile_inner(&restore, &ctx).await;
    ctx.metrics
        .reconcile_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    result
}

async fn reconcile_inner(restore: &PostgresPhysicalRestore, ctx: &Context) -> Result<Action> {
    let ns = restore
        .metadata
        .namespace
        .clone()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = restore.name_any();
    tracing::Span::current().record("namespace", ns.as_str());
    tracing::Span::current().record("name", name.as_str());
    if restore.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let cached = ctx.caches();
    if let Some(c) = cached {
        c.ready().await;
    }
    let Some(replica) = caches::lookup::<PostgresPhysicalReplica>(
        cached.map(|c| &c.stores.replicas_for_restores),
        &ctx.client,
        &ns,
        &restore.spec.replica.name,
    )
    .await?
    else {
        // Orphaned: the garbage collector deletes it with its replica.
        return Ok(Action::await_change());
    };
    let settings = ctx.settings();
    let client = ctx.client.clone();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let restores: Api<PostgresPhysicalRestore> = Api::namespaced(client.clone(), &ns);

    let phase = restore
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or(RestorePhase::Pending);
    let terminal = phase == RestorePhase::Failed;
    let pvc = terminal
        || caches::lookup::<PersistentVolumeClaim>(
            cached.map(|c| &c.stores.pvcs),
            &client,
            &ns,
            &naming::data_pvc(&name),
        )
        .await?
        .is_some();
    let report_needed = restore
        .status
        .as_ref()
        .is_none_or(|s| s.restored_at.is_none());
    // Once the Job's result is recorded the plan no longer reads the Job (which may be gone by then).
    let job = if terminal || !report_needed {
        None
    } else {
        observe_job(ctx, &ns, &name).await?
    };
    let deployment = if terminal {
        None
    } else {
        caches::lookup::<Deployment>(
            cached.map(|c| &c.stores.deployments),
            &client,
            &ns,
            &naming::restore_deployment(&name),
        )
        .await?
        .map(|d| DeploymentView {
            ready: d
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
                >= 1,
            live: LiveFields::of(&d),
        })
    };
    let service = terminal
        || caches::lookup::<Service>(cached.map(|c| &c.stores.services), &client, &ns, &name)
            .await?
            .is_some();
    // I1/I6: once the instance is ready, what it had to change is read (once) from `_pgro.restore_info`.
    let unread = restore
        .status
        .as_ref()
        .is_none_or(|s| s.instance_fixes.is_none());
    let read_fixes = unread && deployment.as_ref().is_some_and(|d| d.ready);
    let report = if read_fixes {
        match admin_sql::read_fixes(ctx, &ns, &restore.spec.replica.name, &name).await {
            Ok(report) => report,
            Err(e) => {
                tracing::warn!(restore = %name, error = %e, "reading _pgro.restore_info.fixes failed; retrying later");
                None
            }
        }
    } else {
        None
    };
    let fixes = report
        .as_ref()
        .and_then(|r| r.fixes.as_ref())
        .map(Fix::parse_all);
    let data_time = report
        .as_ref()
        .and_then(|r| r.data_time.as_deref())
        .and_then(|t| t.parse::<Timestamp>().ok());
    let wal_replayed = report
        .as_ref()
        .and_then(|r| r.wal_replayed.clone())
        .and_then(|v| serde_json::from_value(v).ok());
    let dump_replayed = report
        .as_ref()
        .and_then(|r| r.dump_replayed.clone())
        .and_then(|v| serde_json::from_value(v).ok());
    let source_state = report.and_then(|r| r.source_state);
    // A logical restore's instance reports a failed replay in its termination message.
    let logical = restore
        .spec
        .source
        .as_ref()
        .is_some_and(|s| s.restic.is_some());
    let instance_failure = if logical && deployment.as_ref().is_some_and(|d| !d.ready) {
        let selector = specs::postgres_selector(&name)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        newest_termination_message_of(&ctx.client, &ns, &selector, "postgres")
            .await?
            .and_then(|m| serde_json::from_str::<crate::restore::RestoreFailure>(m.trim()).ok())
    } else {
        None
    };
    let snapshot_bytes = quantity::to_bytes(&restore.spec.snapshot_size).unwrap_or(0);
    let verification = replica
        .spec
        .verification
        .as_ref()
        .filter(|v| verify::configured(Some(v)));
    let mut observed = Observed {
        restore,
        pvc,
        job,
        deployment,
        service,
        desired_live: specs::live_fields(&replica, &settings),
        ready_timeout: specs::ready_timeout(&settings, snapshot_bytes),
        fixes,
        source_state,
        data_time,
        wal_replayed,
        dump_replayed,
        instance_failure,
        verification,
        verified: None,
    };
    let mut plan = plan::decide(&observed, Timestamp::now());
    // Verification: the status says the checks run before they do; then the same decision with their
    // outcome. `base` is the restore as last written.
    let mut base = restore.clone();
    let mut events = Vec::new();
    if plan.verify
        && let Some(spec) = verification
    {
        // Written even when unchanged: the write carries the resourceVersion this pass read, so a stale
        // view (the watch not yet showing that the checks passed and the restore went Ready, maybe
        // already serving) ends here in a 409 and a fresh look, never in a second run of the checks
        // against a copy users may be reading (amcheck creates its extension there).
        base.metadata.resource_version = apply_status(&restores, restore, &plan.status).await?;
        base.status = Some(plan.status.clone());
        let target = verify::Target {
            ns: &ns,
            replica: &restore.spec.replica.name,
            restore: &name,
        };
        tracing::info!(restore = %name, "running verification checks");
        observed.verified = verify::run(ctx, target, spec).await?;
        observed.restore = &base;
        events = std::mem::take(&mut plan.events);
        plan = plan::decide(&observed, Timestamp::now());
        match &observed.verified {
            Some(v) => record_verification(ctx, &ns, &restore.spec.replica.name, v),
            // Not reachable yet: try again soon, not at the deadline.
            None => plan.requeue = Some(Duration::from_secs(10)),
        }
    }
    events.append(&mut plan.events);
    plan.events = events;

    let mut with_status = restore.clone();
    with_status.status = Some(plan.status.clone());
    let inputs = RestoreInputs {
        restore: &with_status,
        replica: &replica,
        settings: &settings,
    };
    // Services and Deployments are applied server-side (pgro's field manager); the claim and the Job are
    // immutable once made, so they are only ever created (and RBAC grants no patch on them).
    for child in &plan.create {
        match child {
            Child::DataPvc => {
                create_if_absent(&pvcs, &specs::data_pvc(&inputs)?).await?;
            }
            Child::RestoreJob => {
                let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
                create_if_absent(&jobs, &specs::restore_job(&inputs)?).await?;
            }
            Child::Deployment => {
                apply_new(&deployments, &specs::postgres_deployment(&inputs)?).await?;
            }
            Child::Service => apply_new(&services, &specs::restore_service(&inputs)?).await?,
        }
        tracing::info!(restore = %name, child = ?child, "created");
    }
    if let (Some(live), Some(current)) = (&plan.patch_live, &observed.deployment) {
        deployments
            .patch(
                &naming::restore_deployment(&name),
                &PatchParams::default(),
                &Patch::Strategic(live.patch(&current.live)),
            )
            .await?;
        tracing::info!(restore = %name, "applied resources and pod annotations to the running instance");
    }
    if base.status.as_ref() != Some(&plan.status) {
        apply_status(&restores, &base, &plan.status).await?;
        let new_phase = plan.status.phase.clone().unwrap_or(RestorePhase::Pending);
        if new_phase != phase {
            tracing::info!(restore = %name, from = %phase, to = %new_phase, "restore phase");
        }
        let was_restored = restore.status.as_ref().and_then(|s| s.restored_at.as_ref());
        if was_restored.is_none()
            && let Some(done) = &plan.status.restored_at
            && let Some(created) = &plan.status.created_at
        {
            let secs = done.0.duration_since(created.0).as_secs_f64();
            ctx.metrics.restore_duration.observe(secs.max(0.0));
            ctx.metrics.restore_bytes.inc_by(snapshot_bytes);
        }
        if new_phase == RestorePhase::Failed && phase != RestorePhase::Failed {
            let reason = plan
                .status
                .conditions
                .iter()
                .find(|c| c.type_ == pgro_api::condition_types::FAILED)
                .map_or_else(|| "Unknown".to_owned(), |c| c.reason.clone());
            ctx.metrics
                .restores_failed
                .get_or_create(&ReasonLabels { reason })
                .inc();
        }
    }
    let regarding = restore.object_ref(&());
    for ev in &plan.events {
        publish(ctx, &regarding, ev, "Reconcile").await;
        tracing::warn!(restore = %name, reason = ev.reason, note = %ev.note, "event");
    }
    // An unread `fixes` (the instance was not reachable yet) is tried again soon, not at the heartbeat.
    let heartbeat = if read_fixes && observed.fixes.is_none() {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(300)
    };
    Ok(Action::requeue(
        plan.requeue.map_or(heartbeat, |r| r.min(heartbeat)),
    ))
}

/// Counts each check's result per replica (`pgro_verification_checks_total`).
fn record_verification(ctx: &Context, ns: &str, replica: &str, v: &pgro_api::VerificationStatus) {
    for c in &v.checks {
        ctx.metrics
            .verification_checks
            .get_or_create(&CheckResultLabels {
                namespace: ns.to_owned(),
                replica: replica.to_owned(),
                check: c.name.clone(),
                result: if c.passed { "passed" } else { "failed" },
            })
            .inc();
    }
}

#[cfg(test)]
mod scenarios;
