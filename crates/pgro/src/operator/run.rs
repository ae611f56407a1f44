//! `pgro operator`: the HTTP endpoints, the live settings, leader election and the two controllers.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{Controller, WatchStreamExt};
use kube::{Client, ResourceExt};
use pgro_api::{LABEL_REPLICA, PostgresPhysicalReplica, PostgresPhysicalRestore};
use tokio::signal::unix::{SignalKind, signal};

use super::caches::{Caches, Readiness, Stores};
use super::context::Context;
use super::controllers::{self, replica, restore};
use super::http;
use super::leader::Elector;
use super::metrics::Metrics;
use super::notify::Notifier;
use super::settings::{OperatorArgs, Settings};

/// Runs the operator until SIGTERM/SIGINT (exit 0) or until it loses the leader Lease (exit 1, so the pod
/// restarts as a standby).
pub async fn run(args: OperatorArgs) -> ExitCode {
    let client = match Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no Kubernetes client configuration (in-cluster or KUBECONFIG)");
            return ExitCode::from(2);
        }
    };
    let identity = args.identity.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "pgro".into()),
            std::process::id()
        )
    });
    let defaults = Settings::from_args(&args);
    let settings = Arc::new(RwLock::new(Arc::new(defaults.clone())));
    let metrics = Arc::new(Metrics::new());

    let http_metrics = Arc::clone(&metrics);
    let addr = args.http_address;
    tokio::spawn(async move {
        if let Err(e) = http::serve(addr, http_metrics).await {
            tracing::error!(error = %e, "the HTTP endpoints stopped");
        }
    });
    if !args.config_map.is_empty() {
        tokio::spawn(watch_settings(
            client.clone(),
            args.namespace.clone(),
            args.config_map.clone(),
            defaults,
            Arc::clone(&settings),
        ));
    }

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let elector = Elector::new(
        Api::<Lease>::namespaced(client.clone(), &args.namespace),
        &args.lease_name,
        &identity,
        args.lease_duration,
    );
    tokio::select! {
        () = elector.acquire() => {}
        () = &mut shutdown => return ExitCode::SUCCESS,
    }
    let (wake_tx, wake_rx) = tokio::sync::mpsc::unbounded_channel();
    let queue_wake = wake_tx.clone();
    let notifier = match Notifier::new(client.clone(), Arc::clone(&metrics), wake_tx) {
        Ok(n) => Arc::new(n),
        Err(e) => {
            tracing::error!(error = %e, "building the HTTP client for notifications failed");
            return ExitCode::FAILURE;
        }
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        &identity,
        metrics,
        settings,
        notifier,
    ));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let controllers = tokio::spawn(run_controllers(client, ctx, stop_rx, wake_rx, queue_wake));
    let code = tokio::select! {
        () = elector.hold() => ExitCode::FAILURE,
        () = &mut shutdown => ExitCode::SUCCESS,
    };
    let _ = stop_tx.send(true);
    let _ = controllers.await;
    if code == ExitCode::SUCCESS {
        elector.release().await;
    }
    code
}

async fn shutdown_signal() {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received; stopping"),
        _ = int.recv() => tracing::info!("SIGINT received; stopping"),
    }
}

/// Keeps `settings` equal to the defaults overridden by the ConfigMap (behaviour O3).
async fn watch_settings(
    client: Client,
    namespace: String,
    name: String,
    defaults: Settings,
    settings: Arc<RwLock<Arc<Settings>>>,
) {
    let api: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
    let install = |data: &BTreeMap<String, String>| match Settings::with_overrides(&defaults, data)
    {
        Ok((s, unknown)) => {
            if !unknown.is_empty() {
                tracing::warn!(unknown = ?unknown, "settings ConfigMap has keys this version does not know");
            }
            let changed = settings.read().map(|cur| **cur != s).unwrap_or(true);
            if changed {
                if let Err(e) = crate::logging::reconfigure(s.log_format, &s.log_level) {
                    tracing::warn!(error = %e, "log settings not applied");
                }
                tracing::info!(settings = ?s, "settings reloaded");
                if let Ok(mut w) = settings.write() {
                    *w = Arc::new(s);
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "settings ConfigMap refused; keeping the settings in force")
        }
    };
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(Event::Apply(cm) | Event::InitApply(cm)) => install(&cm.data.unwrap_or_default()),
            Ok(Event::Delete(_)) => install(&BTreeMap::new()),
            Ok(Event::Init | Event::InitDone) => {}
            Err(e) => tracing::warn!(error = %e, "watching the settings ConfigMap failed"),
        }
    }
}

/// How many reconciles of one controller run at once. Unbounded, a queue move at 1,000 waiting replicas
/// would send 1,000 status writes to the API server together (past its in-flight limit); reconciles that
/// change nothing take microseconds, so a few at a time keep up.
const RECONCILE_CONCURRENCY: u16 = 16;

fn controller_config() -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().concurrency(RECONCILE_CONCURRENCY)
}

/// A watch that keeps `store`'s writer current, without the objects' `managedFields` (never read; a good
/// part of each object's size).
fn reflected<K>(
    api: Api<K>,
    cfg: watcher::Config,
    readiness: &Arc<Readiness>,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    readiness.register();
    let readiness = Arc::clone(readiness);
    let mut listed = false;
    let stream = reflector(
        writer,
        watcher::watcher(api, cfg).modify(|o| {
            o.meta_mut().managed_fields = None;
        }),
    )
    // After the reflector: the store holds the listing when InitDone passes here.
    .inspect(move |event| {
        if !listed && matches!(event, Ok(Event::InitDone)) {
            listed = true;
            readiness.listed();
        }
    })
    .touched_objects();
    (reader, stream)
}

async fn run_controllers(
    client: Client,
    ctx: Arc<Context>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    wake: tokio::sync::mpsc::UnboundedReceiver<ObjectRef<PostgresPhysicalReplica>>,
    queue_wake: tokio::sync::mpsc::UnboundedSender<ObjectRef<PostgresPhysicalReplica>>,
) {
    // Finished notification attempts wake their replica so the outcome is recorded.
    let woken = futures::stream::unfold(
        wake,
        |mut rx| async move { rx.recv().await.map(|r| (r, rx)) },
    );
    let all = watcher::Config::default;
    let children = watcher::Config::default().labels(LABEL_REPLICA);
    let c = client.clone();
    let readiness = Readiness::new();

    // Every read of a reconcile comes from these caches (see `caches`); each is fed by the watch that also
    // triggers the controller concerned, so a reconcile woken by a change sees it.
    let (replica_store, replica_stream) = reflected(
        Api::<PostgresPhysicalReplica>::all(c.clone()),
        all(),
        &readiness,
    );
    let (restore_store, restore_stream) = reflected(
        Api::<PostgresPhysicalRestore>::all(c.clone()),
        all(),
        &readiness,
    );
    let (services, service_stream) =
        reflected(Api::<Service>::all(c.clone()), children.clone(), &readiness);
    let (secrets, secret_stream) =
        reflected(Api::<Secret>::all(c.clone()), children.clone(), &readiness);
    // Every Secret, metadata only: a repository Secret's data is read once per resourceVersion.
    let (secret_meta, secret_meta_stream) = reflected(
        Api::<PartialObjectMeta<Secret>>::all(c.clone()),
        all(),
        &readiness,
    );
    let (own_restores, own_restore_stream) = reflected(
        Api::<PostgresPhysicalRestore>::all(c.clone()),
        all(),
        &readiness,
    );
    let (replicas_for_restores, replica_for_restore_stream) = reflected(
        Api::<PostgresPhysicalReplica>::all(c.clone()),
        all(),
        &readiness,
    );
    let (jobs, job_stream) = reflected(Api::<Job>::all(c.clone()), children.clone(), &readiness);
    let (deployments, deployment_stream) = reflected(
        Api::<Deployment>::all(c.clone()),
        children.clone(),
        &readiness,
    );
    let (pvcs, pvc_stream) = reflected(
        Api::<PersistentVolumeClaim>::all(c.clone()),
        children.clone(),
        &readiness,
    );
    tokio::spawn(Arc::clone(&readiness).report_until_ready(std::time::Duration::from_secs(60)));
    let _ = ctx.caches.set(Caches::new(
        Stores {
            replicas: replica_store.clone(),
            restores: restore_store.clone(),
            replicas_for_restores,
            jobs,
            deployments,
            pvcs,
            services,
            secrets,
            secret_meta,
        },
        readiness,
    ));

    // A restore's change concerns its own replica; replicas waiting for a slot are woken by the queue
    // watch when the queue moves, not by every restore's status change.
    let restore_to_replicas = move |r: PostgresPhysicalRestore| {
        let ns = r.namespace().unwrap_or_default();
        Some(ObjectRef::<PostgresPhysicalReplica>::new(&r.spec.replica.name).within(&ns))
    };
    let secret_store = replica_store.clone();
    // A changed repository Secret re-checks the replicas that use it.
    let secret_to_replicas = move |s: PartialObjectMeta<Secret>| {
        let ns = s.namespace().unwrap_or_default();
        let name = s.name_any();
        secret_store
            .state()
            .iter()
            .filter(|p| {
                p.namespace().as_deref() == Some(ns.as_str())
                    && p.spec
                        .effective_source()
                        .is_some_and(|source| source.secret_names().contains(&name.as_str()))
            })
            .map(|p| ObjectRef::from_obj(p.as_ref()))
            .collect::<Vec<_>>()
    };
    let mut stop_a = stop.clone();
    // Every restore change lets the queue watch decide at once (a freed slot is taken without waiting
    // for its next tick).
    let restore_changed = Arc::new(tokio::sync::Notify::new());
    let notify = Arc::clone(&restore_changed);
    let restore_stream = restore_stream.inspect(move |_| notify.notify_one());
    let replica_run = Controller::for_stream(replica_stream, replica_store.clone())
        .with_config(controller_config())
        .watches_stream(restore_stream, restore_to_replicas)
        .owns_stream(service_stream)
        .owns_stream(secret_stream)
        .watches_stream(secret_meta_stream, secret_to_replicas)
        .reconcile_on(woken)
        .graceful_shutdown_on(async move {
            let _ = stop_a.wait_for(|s| *s).await;
        })
        .run(
            replica::reconcile,
            |obj, err, ctx| controllers::error_policy("replica", &obj, err, &ctx),
            Arc::clone(&ctx),
        )
        .for_each(|_| futures::future::ready(()));

    tokio::spawn(super::queue_watch::run(
        super::queue_watch::Inputs {
            restores: restore_store,
            replicas: replica_store,
            changed: restore_changed,
            metrics: Arc::clone(&ctx.metrics),
            settings: Arc::clone(&ctx.settings),
            wake: queue_wake,
        },
        stop.clone(),
    ));
    // Replica spec changes (resources, annotations) reach the running instances of its restores.
    let restores_of = own_restores.clone();
    let replica_to_restores = move |p: PostgresPhysicalReplica| {
        let ns = p.namespace().unwrap_or_default();
        let name = p.name_any();
        restores_of
            .state()
            .iter()
            .filter(|r| {
                r.namespace().as_deref() == Some(ns.as_str()) && r.spec.replica.name == name
            })
            .map(|r| ObjectRef::from_obj(r.as_ref()))
            .collect::<Vec<_>>()
    };
    let restore_run = Controller::for_stream(own_restore_stream, own_restores)
        .with_config(controller_config())
        .owns_stream(job_stream)
        .owns_stream(deployment_stream)
        .owns_stream(pvc_stream)
        .owns(Api::<Service>::all(client), children)
        .watches_stream(replica_for_restore_stream, replica_to_restores)
        .graceful_shutdown_on(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .run(
            restore::reconcile,
            |obj, err, ctx| controllers::error_policy("restore", &obj, err, &ctx),
            ctx,
        )
        .for_each(|_| futures::future::ready(()));
    tracing::info!("controllers started");
    futures::join!(replica_run, restore_run);
    tracing::info!("controllers stopped");
}
