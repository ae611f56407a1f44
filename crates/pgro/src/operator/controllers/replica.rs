//! The replica controller: keeps the base objects in shape, discovers snapshots in-process, asks
//! [`plan::decide`], admits new restores against the cluster-wide limit, performs the switchover steps and
//! writes the status.

pub mod archive_source;
pub mod history;
pub mod plan;
mod secrets;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action as KubeAction;
use kube::{Resource, ResourceExt};
use pgro_api::{
    ANNOTATION_OUTGOING, LABEL_REPLICA, PostgresPhysicalReplica, PostgresPhysicalRestore,
    RestorePhase, SourceRef, condition_reasons as reasons, condition_types as types, event_reasons,
};

use super::super::admin_sql;
use super::super::caches;
use super::super::conditions;
use super::super::context::Context;
use super::super::error::{Error, Result};
use super::super::k8s::{
    apply_status, create_if_absent, is_not_found, newest_termination_message, publish,
};
use super::super::kopia_secret;
use super::super::metrics::{ControllerLabels, PhaseLabels};
use super::super::naming;
use super::super::notify;
use super::super::notify::plan::Transition;
use super::super::quantity;
use super::super::queue::{self, Waiter};
use super::super::queue_watch;
use super::super::snapshots::{CompiledFilter, SnapshotInfo, choose_newest};
use super::super::specs::{self, FIELD_MANAGER};
use crate::cli::kopia::error_chain;
use crate::cli::repository::RepositoryError;
use plan::{Action, FailureView, MigrationState, MigrationView, Observed, RestoreView, Source};

/// Reconciles one replica.
///
/// # Errors
///
/// API errors (retried per [`Error::class`]).
#[tracing::instrument(
    skip(replica, ctx),
    fields(kind = "PostgresPhysicalReplica", namespace, name)
)]
pub async fn reconcile(
    replica: Arc<PostgresPhysicalReplica>,
    ctx: Arc<Context>,
) -> Result<KubeAction> {
    let started = Instant::now();
    let labels = ControllerLabels {
        controller: "replica",
    };
    ctx.metrics.reconciles.get_or_create(&labels).inc();
    let result = reconcile_inner(&replica, &ctx).await;
    ctx.metrics
        .reconcile_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    result
}

fn view(r: &PostgresPhysicalRestore) -> RestoreView {
    let status = r.status.clone().unwrap_or_default();
    let phase = status.phase.clone().unwrap_or(RestorePhase::Pending);
    let failure = (phase == RestorePhase::Failed).then(|| {
        let c = conditions::get(&status.conditions, types::FAILED);
        FailureView {
            at: c.map_or_else(
                || {
                    r.metadata
                        .creation_timestamp
                        .as_ref()
                        .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
                },
                |c| c.last_transition_time.0,
            ),
            reason: c.map_or_else(|| "Unknown".to_owned(), |c| c.reason.clone()),
            message: c.map_or_else(String::new, |c| c.message.clone()),
        }
    });
    RestoreView {
        name: r.name_any(),
        phase,
        snapshot: r.spec.snapshot.clone(),
        created: r
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
        activated_at: status.activated_at.as_ref().map(|t| t.0),
        failure,
        ready: conditions::is_true(&status.conditions, types::READY),
        outgoing_marked: r.annotations().contains_key(ANNOTATION_OUTGOING),
        deleting: r.metadata.deletion_timestamp.is_some(),
        postgres_version: status.postgres_version.clone(),
        snapshot_bytes: quantity::to_bytes(&r.spec.snapshot_size).unwrap_or(0),
    }
}

/// The schema migration Job and how it ended (its termination message is the result).
async fn observe_migration(
    ctx: &Context,
    ns: &str,
    replica: &str,
) -> Result<Option<MigrationView>> {
    let name = naming::schema_migration_job(replica);
    let cache = ctx.caches().map(|c| &c.stores.jobs);
    let Some(job) = caches::lookup::<Job>(cache, &ctx.client, ns, &name).await? else {
        return Ok(None);
    };
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let target = job
        .labels()
        .get(pgro_api::LABEL_RESTORE)
        .cloned()
        .unwrap_or_default();
    let conds = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let is = |t: &str| conds.iter().any(|c| c.type_ == t && c.status == "True");
    let message = || async {
        Ok::<_, Error>(
            newest_termination_message(&ctx.client, ns, &name, "migrate")
                .await?
                .unwrap_or_default(),
        )
    };
    let state = if is("Complete") {
        let m = message().await?;
        match serde_json::from_str::<crate::migrate::MigrationResult>(m.trim()) {
            Ok(r) => MigrationState::Done(r),
            Err(_) => {
                MigrationState::Failed(format!("no result in the Job's termination message: {m}"))
            }
        }
    } else if is("Failed") {
        let m = message().await?;
        let why = serde_json::from_str::<crate::migrate::MigrationFailure>(m.trim())
            .map_or_else(|_| m.trim().chars().take(300).collect(), |f| f.error);
        MigrationState::Failed(why)
    } else {
        MigrationState::Running
    };
    Ok(Some(MigrationView { target, state }))
}

/// R1/R3: the Secret, the repository and the newest matching snapshot.
async fn discover(ctx: &Context, replica: &PostgresPhysicalReplica, ns: &str) -> Result<Source> {
    let secret_ref = match replica.spec.effective_source() {
        Some(SourceRef::Kopia(secret_ref)) => secret_ref,
        Some(SourceRef::Pgbackrest(p)) => {
            return archive_source::discover_pgbackrest(ctx, p, ns).await;
        }
        Some(SourceRef::BarmanCloud(b)) => {
            return archive_source::discover_barman(ctx, b, ns).await;
        }
        Some(SourceRef::Restic(r)) => {
            return archive_source::discover_restic(
                ctx,
                r,
                replica.spec.snapshot_filter.as_ref(),
                ns,
            )
            .await;
        }
        // Admission refuses this; it is reachable only when the CRD's rules were bypassed.
        None => {
            return Ok(Source::SourceInvalid {
                reason: reasons::UNSUPPORTED_REPOSITORY,
                message: "the spec names no single backup source: set exactly one of kopiaSecretRef or source, and exactly one member of source".into(),
            });
        }
    };
    let secret_name = secret_ref.name.clone().unwrap_or_default();
    if let Some(other) = secret_ref.namespace.as_deref().filter(|n| *n != ns) {
        return Ok(Source::SecretInvalid {
            message: format!(
                "the Kopia Secret's namespace {other:?} is not the replica's namespace {ns:?}; the Secret must live beside the replica"
            ),
        });
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let secret_data = match ctx.caches() {
        // Read again only when the Secret's resourceVersion moved.
        Some(c) => c.secret_data(&secrets, ns, &secret_name).await?,
        None => secrets
            .get_opt(&secret_name)
            .await?
            .map(|s| Arc::new(s.data.unwrap_or_default())),
    };
    let Some(secret_data) = secret_data else {
        return Ok(Source::SecretNotFound {
            secret: secret_name,
        });
    };
    let data = match kopia_secret::decode(&secret_name, &secret_data) {
        Ok(d) => d,
        Err(e) => {
            return Ok(Source::SecretInvalid {
                message: e.to_string(),
            });
        }
    };
    let args = match kopia_secret::repository_args(&secret_name, &data) {
        Ok(a) => a,
        Err(e) => {
            return Ok(Source::SecretInvalid {
                message: e.to_string(),
            });
        }
    };
    let filter = match CompiledFilter::new(replica.spec.snapshot_filter.as_ref()) {
        Ok(f) => f,
        Err(e) => {
            return Ok(Source::FilterInvalid {
                message: e.to_string(),
            });
        }
    };
    let ttl = ctx.settings().snapshot_cache_ttl;
    let listing = match ctx
        .repos
        .snapshots(&kopia_secret::cache_key(&data), &args, ttl)
        .await
    {
        Ok(l) => l,
        Err(RepositoryError::Config(e)) => {
            return Ok(Source::SecretInvalid {
                message: e.to_string(),
            });
        }
        Err(RepositoryError::Kopia(e)) => {
            let reason = match e.kind() {
                kopia::ErrorKind::WrongPassword => reasons::REPOSITORY_PASSWORD_INVALID,
                kopia::ErrorKind::Unreachable | kopia::ErrorKind::Storage => {
                    reasons::STORAGE_UNREACHABLE
                }
                kopia::ErrorKind::NotFound
                | kopia::ErrorKind::Corrupted
                | kopia::ErrorKind::Unsupported
                | kopia::ErrorKind::Locked
                | kopia::ErrorKind::Io
                | kopia::ErrorKind::InvalidArgument => reasons::REPOSITORY_UNUSABLE,
            };
            return Ok(Source::Repository {
                reason,
                message: format!("repository {}: {}", args.location(), error_chain(&e)),
            });
        }
    };
    if !listing.took.is_zero() {
        ctx.metrics
            .snapshot_discovery
            .observe(listing.took.as_secs_f64());
    }
    let infos: Vec<SnapshotInfo> = listing
        .snapshots
        .iter()
        .map(SnapshotInfo::from_manifest)
        .collect();
    Ok(Source::Snapshots {
        latest: choose_newest(&infos, &filter).cloned(),
        total: infos.len(),
    })
}

/// R6: decides from the watch caches whether a slot is free (a waiting replica makes no API request); at
/// the moment of creation the in-progress count is re-read from the API server under the admission lock, so
/// a stale cache or a second operator cannot take a slot twice. Returns `false` when that read shows a
/// restore of this replica the plan did not see (a stale cache): nothing is created and the pass is redone.
async fn admit_and_create(
    ctx: &Context,
    replica: &PostgresPhysicalReplica,
    seen: &BTreeMap<String, PostgresPhysicalRestore>,
    plan: &mut plan::Plan,
    now: Timestamp,
) -> Result<bool> {
    let Some(wanted) = plan.wanted.clone() else {
        return Ok(true);
    };
    let ns = replica.namespace().unwrap_or_default();
    let name = replica.name_any();
    let me = Waiter {
        namespace: &ns,
        name: &name,
        since: replica
            .status
            .as_ref()
            .and_then(|s| s.waiting_since.as_ref())
            .map_or(now, |t| t.0),
    };
    let max = usize::try_from(ctx.settings().max_concurrent_restores).unwrap_or(usize::MAX);
    let others =
        |all: Vec<(String, String, Timestamp, u32)>| -> Vec<(String, String, Timestamp, u32)> {
            all.into_iter()
                .filter(|(n, m, _, _)| !(n == &ns && m == &name))
                .collect()
        };
    let waiting = match ctx.caches() {
        Some(c) => {
            let waiting = others(queue_watch::waiters(&c.stores.replicas.state()));
            let restores = c.stores.restores.state();
            let (cached, _) = queue_watch::counts(restores.iter().map(AsRef::as_ref), []);
            let view = waiters_view(&waiting);
            let admission = queue::admit(&me, &view, usize::try_from(cached).unwrap_or(0), max);
            if let queue::Admission::Wait { .. } = admission {
                plan::admit(plan, admission, now);
                tracing::debug!(replica = %name, position = plan.status.queue_position, max, "waiting for a restore slot");
                return Ok(true);
            }
            waiting
        }
        // No caches (the scripted-apiserver tests): the queue from the API server.
        None => {
            let replicas: Api<PostgresPhysicalReplica> = Api::all(ctx.client.clone());
            let all = replicas.list(&ListParams::default()).await?;
            others(queue_watch::waiters(
                &all.items.into_iter().map(Arc::new).collect::<Vec<_>>(),
            ))
        }
    };
    let _slot = ctx.admission.lock().await;
    // Quorum read, not the cache: the count must include the restore this process created a moment ago.
    let all: Api<PostgresPhysicalRestore> = Api::all(ctx.client.clone());
    let restores = all
        .list(&ListParams::default().labels(LABEL_REPLICA))
        .await?;
    let uid = replica.uid().unwrap_or_default();
    let unseen = caches::owned_restores(
        restores.items.iter(),
        &ns,
        &naming::label_value(&name),
        &uid,
    )
    .into_keys()
    .find(|r| !seen.contains_key(r));
    if let Some(unseen) = unseen {
        tracing::debug!(replica = %name, restore = %unseen, "the cache lags behind a restore of this replica; deciding again");
        return Ok(false);
    }
    let (in_progress, _) = queue_watch::counts(restores.items.iter(), []);
    let in_progress = usize::try_from(in_progress).unwrap_or(usize::MAX);
    let admission = queue::admit(&me, &waiters_view(&waiting), in_progress, max);
    plan::admit(plan, admission, now);
    if !matches!(admission, queue::Admission::Start) {
        tracing::info!(replica = %name, position = plan.status.queue_position, in_progress, max, "no restore slot after all; waiting");
        return Ok(true);
    }
    let restore = specs::new_restore(
        replica,
        &wanted.name,
        &wanted.snapshot.id,
        plan::snapshot_size(&wanted.snapshot),
        wanted.storage_size.clone(),
        wanted.snapshot.start_time,
    )?;
    let api: Api<PostgresPhysicalRestore> = Api::namespaced(ctx.client.clone(), &ns);
    api.create(&Default::default(), &restore).await?;
    ctx.metrics.restores_started.inc();
    tracing::info!(replica = %name, restore = %wanted.name, snapshot_id = %wanted.snapshot.id, "restore created");
    Ok(true)
}

fn waiters_view(waiting: &[(String, String, Timestamp, u32)]) -> Vec<Waiter<'_>> {
    waiting
        .iter()
        .map(|(n, m, s, _)| Waiter {
            namespace: n,
            name: m,
            since: *s,
        })
        .collect()
}

/// Whether the restore's PostgreSQL pod is ready right now (read live, not from status, just before the
/// Service moves to it).
async fn deployment_ready(ctx: &Context, ns: &str, restore: &str) -> Result<bool> {
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    Ok(deployments
        .get_opt(&naming::restore_deployment(restore))
        .await?
        .and_then(|d| d.status)
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
        >= 1)
}

async fn apply_service(
    ctx: &Context,
    replica: &PostgresPhysicalReplica,
    ns: &str,
    target: Option<&str>,
) -> Result<()> {
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), ns);
    let svc = specs::replica_service(replica, target)?;
    let name = svc.name_any();
    if ctx
        .caches()
        .is_some_and(|c| c.service_unchanged(ns, &name, &svc))
    {
        return Ok(());
    }
    let applied = services
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&svc),
        )
        .await?;
    if let (Some(c), Some(rv)) = (ctx.caches(), applied.resource_version()) {
        c.service_applied(ns, &name, &svc, rv);
    }
    Ok(())
}

/// `_pgro.restore_info.stage = 'outgoing'` in a restore that no longer serves, over the per-restore Service
/// as `pgro_admin` (best effort: it only informs people connected to the old copy), then the annotation that
/// says it was done.
async fn mark_outgoing(ctx: &Context, replica: &str, ns: &str, restore: &str) -> Result<()> {
    if !admin_sql::mark_outgoing(ctx, ns, replica, restore).await? {
        return Ok(());
    }
    let restores: Api<PostgresPhysicalRestore> = Api::namespaced(ctx.client.clone(), ns);
    let patch = serde_json::json!({"metadata": {"annotations": {ANNOTATION_OUTGOING: "true"}}});
    restores
        .patch(restore, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    tracing::info!(restore = %restore, "marked outgoing");
    Ok(())
}

/// Marks a restore `Failed` with a condition saying why.
async fn fail_restore(
    ctx: &Context,
    ns: &str,
    name: &str,
    reason: &str,
    message: &str,
) -> Result<()> {
    let api: Api<PostgresPhysicalRestore> = Api::namespaced(ctx.client.clone(), ns);
    let Some(current) = api.get_opt(name).await? else {
        return Ok(());
    };
    let mut status = current.status.clone().unwrap_or_default();
    if status.phase == Some(RestorePhase::Failed) {
        return Ok(());
    }
    status.phase = Some(RestorePhase::Failed);
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now());
    conditions::set(
        &mut status.conditions,
        conditions::Cond {
            type_: types::FAILED,
            status: true,
            reason,
            message: message.to_owned(),
        },
        current.metadata.generation,
        &now,
    );
    apply_status(&api, &current, &status).await?;
    tracing::warn!(restore = %name, reason, "restore failed");
    Ok(())
}

async fn set_restore_phase(
    ctx: &Context,
    ns: &str,
    name: &str,
    phase: &RestorePhase,
    activated_at: Option<Timestamp>,
) -> Result<()> {
    let api: Api<PostgresPhysicalRestore> = Api::namespaced(ctx.client.clone(), ns);
    // Re-read: an earlier step of this pass may have changed it.
    let Some(current) = api.get_opt(name).await? else {
        return Ok(());
    };
    let mut status = current.status.clone().unwrap_or_default();
    status.phase = Some(phase.clone());
    if let Some(t) = activated_at {
        status.activated_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t));
    }
    if current.status.as_ref() != Some(&status) {
        apply_status(&api, &current, &status).await?;
        tracing::info!(restore = %name, phase = %phase, "restore phase");
    }
    Ok(())
}

#[allow(clippy::too_many_lines)]
async fn reconcile_inner(replica: &PostgresPhysicalReplica, ctx: &Context) -> Result<KubeAction> {
    let ns = replica
        .metadata
        .namespace
        .clone()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = replica.name_any();
    tracing::Span::current().record("namespace", ns.as_str());
    tracing::Span::current().record("name", name.as_str());
    if replica.metadata.deletion_timestamp.is_some() {
        return Ok(KubeAction::await_change());
    }
    if let Some(c) = ctx.caches() {
        c.ready().await;
    }
    let uid = replica
        .metadata
        .uid
        .clone()
        .ok_or(Error::MissingField("metadata.uid"))?;
    let settings = ctx.settings();
    secrets::ensure_credentials(ctx, replica, &ns).await?;
    let tls_problem = secrets::ensure_tls(ctx, replica, &ns).await?;

    let restores_api: Api<PostgresPhysicalRestore> = Api::namespaced(ctx.client.clone(), &ns);
    let label = naming::label_value(&name);
    let owned: BTreeMap<String, PostgresPhysicalRestore> = match ctx.caches() {
        Some(c) => {
            let all = c.stores.restores.state();
            caches::owned_restores(all.iter().map(AsRef::as_ref), &ns, &label, &uid)
        }
        None => {
            let listed = restores_api
                .list(&ListParams::default().labels(&format!("{LABEL_REPLICA}={label}")))
                .await?;
            caches::owned_restores(listed.items.iter(), &ns, &label, &uid)
        }
    };
    let views: Vec<RestoreView> = owned.values().map(view).collect();
    let source = discover(ctx, replica, &ns).await?;
    // Only replicas with persistent schemas ever migrate (the others need not look for a Job).
    let migration = if replica
        .spec
        .persistent_schemas
        .as_ref()
        .is_some_and(|s| !s.is_empty())
    {
        observe_migration(ctx, &ns, &name).await?
    } else {
        None
    };
    let now = Timestamp::now();
    let mut plan = plan::decide(
        &Observed {
            replica,
            restores: &views,
            source,
            failed_retention: settings.failed_restore_retention,
            migration,
            tls_problem,
        },
        now,
    );
    if !admit_and_create(ctx, replica, &owned, &mut plan, now).await? {
        return Ok(KubeAction::requeue(Duration::from_secs(1)));
    }

    let deletes = DeleteParams::foreground();
    for action in &plan.actions {
        match action {
            Action::SetRestorePhase {
                restore,
                phase,
                activated_at,
            } => set_restore_phase(ctx, &ns, restore, phase, *activated_at).await?,
            Action::SwitchService { restore } => {
                if !deployment_ready(ctx, &ns, restore).await? {
                    // Never point the Service at a pod that is not ready: finish on a later pass.
                    tracing::info!(restore = %restore, "switchover waits for the new pod to be ready");
                    return Ok(KubeAction::requeue(Duration::from_secs(5)));
                }
                apply_service(ctx, replica, &ns, Some(restore)).await?;
                ctx.metrics.switchovers.inc();
                tracing::info!(replica = %name, restore = %restore, "service switched");
            }
            Action::MarkOutgoing { restore } => {
                if let Err(e) = mark_outgoing(ctx, &name, &ns, restore).await {
                    tracing::warn!(restore = %restore, error = %e, "marking the outgoing restore failed; retrying later");
                }
            }
            Action::StartMigration {
                target,
                source,
                major,
                budget,
            } => {
                let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
                let job_name = naming::schema_migration_job(&name);
                if jobs.get_opt(&job_name).await?.is_some() {
                    // An earlier migration's Job: remove it (with its pods), then start afresh.
                    match jobs.delete(&job_name, &DeleteParams::background()).await {
                        Ok(_) | Err(kube::Error::Api(_)) => {}
                        Err(e) => return Err(e.into()),
                    }
                    return Ok(KubeAction::requeue(Duration::from_secs(2)));
                }
                // A restore made by a pgro before TLS serves plain text until it is replaced.
                let source_tls = caches::lookup::<Deployment>(
                    ctx.caches().map(|c| &c.stores.deployments),
                    &ctx.client,
                    &ns,
                    &naming::restore_deployment(source),
                )
                .await?
                .is_none_or(|d| specs::serves_tls(&d));
                let job = specs::schema_migration_job(&specs::MigrationInputs {
                    replica,
                    source,
                    target,
                    major,
                    budget: *budget,
                    settings: &settings,
                    source_tls,
                })?;
                create_if_absent(&jobs, &job).await?;
                tracing::info!(replica = %name, from = %source, into = %target, budget = ?budget, "schema migration started");
            }
            Action::FailRestore {
                restore,
                reason,
                message,
            } => fail_restore(ctx, &ns, restore, reason, message).await?,
            Action::DeleteRestore { restore, why } => {
                match restores_api.delete(restore, &deletes).await {
                    Ok(_) => tracing::info!(restore = %restore, why, "restore deleted"),
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    apply_service(ctx, replica, &ns, plan.service_target.as_deref()).await?;

    // N1-N3: the transitions of this pass notify every target; finished attempts are recorded.
    let transitions: Vec<Transition> = plan
        .events
        .iter()
        .filter(|e| {
            e.reason == event_reasons::RESTORE_COMPLETED
                || e.reason == event_reasons::RESTORE_FAILED
        })
        .filter_map(|e| {
            Some(Transition {
                event: e.reason.to_owned(),
                restore: e.restore.clone()?,
            })
        })
        .collect();
    let outcomes = ctx.notifier.outcomes(&ns, &name);
    let notifications = notify::plan::plan(
        &replica.spec.notifications,
        &plan.status.notifications,
        &transitions,
        &outcomes,
        &settings.notification_backoff,
        now,
    );
    plan.status.notifications = notifications.entries;
    let current = plan.status.current_restore.clone();
    let recorded = history::update(
        &mut plan.status,
        &owned,
        current.as_deref(),
        replica.spec.history_limit,
    );
    if let Some(at) = notifications.next_at {
        let d = Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO);
        plan.requeue = plan.requeue.min(d.max(Duration::from_secs(1)));
    }

    // Status first, then events: a conflict makes the next pass derive (and report) the same transitions.
    let seen = replica.resource_version();
    let unwritten = replica.status.as_ref() != Some(&plan.status)
        && !ctx
            .caches()
            .is_some_and(|c| c.status_written(&ns, &name, seen.as_deref(), &plan.status));
    let mut shown = replica.clone();
    if unwritten {
        let api: Api<PostgresPhysicalReplica> = Api::namespaced(ctx.client.clone(), &ns);
        let now_at = apply_status(&api, replica, &plan.status).await?;
        if let Some(c) = ctx.caches() {
            c.record_status(&ns, &name, seen, now_at.clone(), &plan.status);
        }
        // Observed once: a record is new only in the pass that writes it.
        observe_phases(ctx, &ns, &name, &recorded);
        shown.metadata.resource_version = now_at;
    }
    // The gauges follow this pass's status at once (the queue watch also sets them, and drops those of
    // deleted replicas).
    shown.status = Some(plan.status.clone());
    if let Ok(mut exporter) = ctx.metrics.replica_exporter.lock() {
        exporter.update(&ctx.metrics, &shown, now);
    }
    ctx.notifier.recorded(&ns, &name, &notifications.recorded);
    if !notifications.due.is_empty() {
        let mut current = replica.clone();
        current.status = Some(plan.status.clone());
        ctx.notifier.start(&current, notifications.due);
    }
    if plan.promoted.is_some() {
        ctx.metrics.restores_completed.inc();
    }
    let regarding = replica.object_ref(&());
    for ev in &plan.events {
        publish(ctx, &regarding, ev, "Reconcile").await;
        tracing::info!(replica = %name, reason = ev.reason, note = %ev.note, "event");
    }
    Ok(KubeAction::requeue(plan.requeue))
}

/// `pgro_restore_phase_duration_seconds` for the restores recorded in this pass.
fn observe_phases(ctx: &Context, ns: &str, replica: &str, recorded: &[pgro_api::RestoreRecord]) {
    for r in recorded {
        let d = &r.durations;
        for (phase, secs) in [
            ("download", d.download),
            ("replay", d.replay),
            ("startup", d.startup),
            ("verification", d.verification),
            ("switchover", d.switchover),
        ] {
            if let Some(s) = secs {
                ctx.metrics
                    .phase_duration
                    .get_or_create(&PhaseLabels {
                        namespace: ns.to_owned(),
                        replica: replica.to_owned(),
                        phase,
                    })
                    .observe(s);
            }
        }
    }
}

#[cfg(test)]
mod scenarios;
