//! The pod manager (a watch on this node's pods, one worker per pod UID) and the pod worker: sandbox,
//! volumes, init containers in order, containers, status, deadline and graceful deletion.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt as _;
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt as _};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::envvars::{Lookups, PodFacts};
use super::network::Sandbox;
use super::status::{self, CStatus, PodState};
use super::supervisor::Supervisor;
use super::volumes;
use super::{Ctx, PodRecord};

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// Watches the node's pods and runs one worker per pod UID.
pub(crate) async fn manage(ctx: Arc<Ctx>) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node_name));
    let stream = watcher::watcher(api, config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut workers: HashMap<String, watch::Sender<Option<Pod>>> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut listed: HashSet<String> = HashSet::new();
    loop {
        let event = match stream.try_next().await {
            Ok(Some(event)) => event,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(error = %error, "pod watch failed");
                continue;
            }
        };
        match event {
            Event::Init => listed.clear(),
            Event::InitApply(pod) | Event::Apply(pod) => {
                let uid = pod.uid().unwrap_or_default();
                listed.insert(uid.clone());
                match workers.get(&uid) {
                    Some(tx) => {
                        let _ = tx.send(Some(pod));
                    }
                    None => {
                        let (tx, rx) = watch::channel(Some(pod));
                        workers.insert(uid, tx);
                        tasks.spawn(run_pod(ctx.clone(), rx));
                    }
                }
            }
            Event::Delete(pod) => {
                if let Some(tx) = workers.remove(&pod.uid().unwrap_or_default()) {
                    let _ = tx.send(None);
                }
            }
            Event::InitDone => {
                workers.retain(|uid, tx| {
                    let keep = listed.contains(uid);
                    if !keep {
                        let _ = tx.send(None);
                    }
                    keep
                });
            }
        }
        while tasks.try_join_next().is_some() {}
    }
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// What a pod worker is told by the watch: the latest object, or that it is gone from the API.
struct Updates(watch::Receiver<Option<Pod>>);

impl Updates {
    fn latest(&self) -> Option<Pod> {
        self.0.borrow().clone()
    }

    /// Waits for the next change; `None` when the pod is gone (or the manager stopped).
    async fn next(&mut self) -> Option<Pod> {
        match self.0.changed().await {
            Ok(()) => self.latest(),
            Err(_) => None,
        }
    }
}

/// The grace period of a deletion in progress, if any.
fn deletion_grace(pod: &Pod) -> Option<Duration> {
    pod.metadata.deletion_timestamp.as_ref()?;
    let seconds = pod
        .metadata
        .deletion_grace_period_seconds
        .or(pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30);
    Some(Duration::from_secs(seconds.max(0) as u64))
}

struct Worker {
    ctx: Arc<Ctx>,
    api: Api<Pod>,
    pod: Pod,
    record: Arc<PodRecord>,
    state: PodState,
    last: Option<PodStatus>,
}

impl Worker {
    async fn write_status(&mut self) {
        let rendered = status::render(&self.pod, &self.state, self.last.as_ref(), &now());
        if self.last.as_ref() == Some(&rendered) {
            return;
        }
        let patch = serde_json::json!({ "status": rendered });
        match self
            .api
            .patch_status(
                &self.pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => self.last = Some(rendered),
            Err(error) => {
                tracing::debug!(pod = %self.pod.name_any(), error = %error, "status update failed")
            }
        }
    }

    fn phase(&self) -> Option<String> {
        self.last.as_ref().and_then(|s| s.phase.clone())
    }

    /// The kubelet's final word: delete the object with grace 0, guarded by the UID.
    async fn final_delete(&self) {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: self.pod.uid(),
                resource_version: None,
            }),
            ..Default::default()
        };
        let _ = self.api.delete(&self.pod.name_any(), &params).await;
    }
}

/// Runs one pod from admission to deletion.
async fn run_pod(ctx: Arc<Ctx>, updates: watch::Receiver<Option<Pod>>) {
    let mut updates = Updates(updates);
    let Some(pod) = updates.latest() else { return };
    let namespace = pod.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let uid = pod.uid().unwrap_or_default();
    let hostname = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .unwrap_or_else(|| pod.name_any());
    let record = Arc::new(PodRecord::new(
        &namespace,
        &pod.name_any(),
        &uid,
        &hostname,
        ctx.dir.join("pods").join(&uid),
    ));
    let mut worker = Worker {
        ctx: ctx.clone(),
        api,
        pod: pod.clone(),
        record: record.clone(),
        state: PodState::default(),
        last: pod.status.clone(),
    };
    if is_terminal(&pod) || pod.metadata.deletion_timestamp.is_some() {
        // Nothing runs for it here (finished before, or deleted before it started).
        wait_for_deletion(&mut worker, &mut updates).await;
        return;
    }
    ctx.register(record.clone());
    let _ = std::fs::create_dir_all(&record.dir);
    worker.state.host_ip = ctx.network.gateway().to_string();
    worker.state.start_time = Some(now());
    let spec = pod.spec.clone().unwrap_or_default();
    let image = |c: &Container| c.image.clone().unwrap_or_default();
    worker.state.init = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| CStatus::waiting(&c.name, &image(c), "PodInitializing", None))
        .collect();
    let main_reason = if worker.state.init.is_empty() {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    worker.state.main = spec
        .containers
        .iter()
        .map(|c| CStatus::waiting(&c.name, &image(c), main_reason, None))
        .collect();

    let sandbox = match ctx.network.sandbox(&hostname).await {
        Ok(sandbox) => sandbox,
        Err(error) => {
            for c in &mut worker.state.main {
                *c = CStatus::waiting(
                    &c.status.name,
                    &c.status.image,
                    "ContainerCreating",
                    Some(format!("creating the pod sandbox: {error:#}")),
                );
            }
            worker.write_status().await;
            wait_for_deletion(&mut worker, &mut updates).await;
            ctx.unregister(&uid);
            return;
        }
    };
    record.set_ip(sandbox.ip().into());
    worker.state.pod_ip = Some(sandbox.ip().to_string());
    worker.state.sandbox_ready = true;
    worker.write_status().await;

    let outcome = run_containers(&mut worker, &mut updates, &sandbox).await;
    sandbox.stop().await;
    ctx.network.release(sandbox.ip());
    worker.state.sandbox_ready = false;
    worker.write_status().await;
    if outcome == Outcome::Finished {
        wait_for_deletion(&mut worker, &mut updates).await;
    } else if outcome == Outcome::Deleted {
        worker.final_delete().await;
    }
    ctx.unregister(&uid);
    if std::env::var_os("PGRO_TESTKIT_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&record.dir);
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Reached Succeeded/Failed; the object stays until someone deletes it.
    Finished,
    /// Deleted gracefully: the kubelet removes the object.
    Deleted,
    /// Gone from the API (force-deleted).
    Gone,
}

async fn wait_for_deletion(worker: &mut Worker, updates: &mut Updates) {
    loop {
        if worker.pod.metadata.deletion_timestamp.is_some() {
            worker.final_delete().await;
            return;
        }
        match updates.next().await {
            Some(pod) => worker.pod = pod,
            None => return,
        }
    }
}

/// Prepares volumes, runs init containers then containers, and follows them until the pod finishes
/// or is deleted. Every container has stopped when it returns.
async fn run_containers(worker: &mut Worker, updates: &mut Updates, sandbox: &Sandbox) -> Outcome {
    let ctx = worker.ctx.clone();
    let spec = worker.pod.spec.clone().unwrap_or_default();
    let facts = PodFacts {
        pod_ip: sandbox.ip().to_string(),
        host_ip: ctx.network.gateway().to_string(),
        node_name: ctx.node_name.clone(),
    };
    // Volumes, retried until ready (e.g. a claim not bound yet) or the pod goes away.
    let volumes = loop {
        let namespace = worker.record.namespace.clone();
        let mut lookups = Lookups::new(&ctx.client, &namespace);
        match volumes::prepare(&mut lookups, &worker.pod, &facts, &worker.record.dir).await {
            Ok(volumes) => break volumes,
            Err(not_ready) => {
                for c in worker
                    .state
                    .init
                    .iter_mut()
                    .chain(worker.state.main.iter_mut())
                    .take(1)
                {
                    *c = CStatus::waiting(
                        &c.status.name,
                        &c.status.image,
                        "ContainerCreating",
                        Some(not_ready.0.clone()),
                    );
                }
                worker.write_status().await;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    pod = updates.next() => match pod {
                        Some(pod) => worker.pod = pod,
                        None => return Outcome::Gone,
                    }
                }
                if worker.pod.metadata.deletion_timestamp.is_some() {
                    return Outcome::Deleted;
                }
            }
        }
    };

    let (stop_tx, stop_rx) = watch::channel::<Option<Duration>>(None);
    let (changed_tx, mut changed_rx) = mpsc::unbounded_channel::<()>();
    let mut supervisors = JoinSet::new();
    let mut init_status: Vec<watch::Receiver<CStatus>> = Vec::new();
    let mut main_status: Vec<watch::Receiver<CStatus>> = Vec::new();
    let init_containers = spec.init_containers.clone().unwrap_or_default();
    let (record, pod_snapshot) = (worker.record.clone(), worker.pod.clone());
    let start =
        |container: &Container, init: bool, initial: CStatus, supervisors: &mut JoinSet<()>| {
            let (status_tx, status_rx) = watch::channel(initial);
            let supervisor = Supervisor {
                ctx: ctx.clone(),
                record: record.clone(),
                pod: pod_snapshot.clone(),
                container: container.clone(),
                init,
                sandbox_pid: sandbox.pid(),
                pod_ip: sandbox.ip().into(),
                volumes: volumes.clone(),
                status: status_tx,
                stop: stop_rx.clone(),
            };
            let mut forward = status_rx.clone();
            let changed = changed_tx.clone();
            supervisors.spawn(async move {
            let run = supervisor.run();
            tokio::pin!(run);
            loop {
                tokio::select! {
                    () = &mut run => { let _ = changed.send(()); return; }
                    r = forward.changed() => { if r.is_err() { return; } let _ = changed.send(()); }
                }
            }
        });
            status_rx
        };

    let deadline = spec
        .active_deadline_seconds
        .map(|s| Instant::now() + Duration::from_secs(s.max(0) as u64));
    let mut next_init = 0usize;
    let mut main_started = false;
    let mut stop_sent = false;
    let mut gone = false;
    let _ = changed_tx.send(());
    loop {
        tokio::select! {
            _ = changed_rx.recv() => {}
            pod = updates.next() => match pod {
                Some(pod) => worker.pod = pod,
                None => gone = true,
            },
            _ = sleep_until(deadline) => {}
        }
        worker
            .state
            .init
            .iter_mut()
            .zip(&init_status)
            .for_each(|(s, rx)| *s = rx.borrow().clone());
        worker
            .state
            .main
            .iter_mut()
            .zip(&main_status)
            .for_each(|(s, rx)| *s = rx.borrow().clone());

        let deleting = deletion_grace(&worker.pod);
        if !stop_sent && (gone || deleting.is_some()) {
            let _ = stop_tx.send(Some(if gone {
                Duration::ZERO
            } else {
                deleting.unwrap_or_default()
            }));
            stop_sent = true;
        }
        if !stop_sent
            && deadline.is_some_and(|d| Instant::now() >= d)
            && worker.state.forced.is_none()
        {
            worker.state.forced = Some((
                "Failed".into(),
                "DeadlineExceeded".into(),
                "Pod was active on the node longer than the specified deadline".into(),
            ));
            let grace = spec.termination_grace_period_seconds.unwrap_or(30).max(0) as u64;
            let _ = stop_tx.send(Some(Duration::from_secs(grace)));
            stop_sent = true;
        }
        // Init containers one after another: the next starts when the previous completed (a native
        // sidecar counts once started).
        if !stop_sent {
            let previous_done = next_init == 0
                || status::initialized(&PodState {
                    init: worker.state.init[..next_init].to_vec(),
                    ..Default::default()
                });
            let failed_for_good = worker.state.init[..next_init]
                .iter()
                .any(|c| c.finished && !c.succeeded());
            if failed_for_good {
                let _ = stop_tx.send(Some(Duration::ZERO));
                stop_sent = true;
            } else if next_init < init_containers.len() && previous_done {
                let initial = worker.state.init[next_init].clone();
                init_status.push(start(
                    &init_containers[next_init],
                    true,
                    initial,
                    &mut supervisors,
                ));
                next_init += 1;
            } else if !main_started && next_init == init_containers.len() && previous_done {
                for (i, container) in spec.containers.iter().enumerate() {
                    let initial = worker.state.main[i].clone();
                    main_status.push(start(container, false, initial, &mut supervisors));
                }
                main_started = true;
            }
        }
        worker.write_status().await;

        let started: Vec<&CStatus> = worker.state.init[..init_status.len()]
            .iter()
            .chain(worker.state.main[..main_status.len()].iter())
            .collect();
        let all_stopped = started.iter().all(|c| c.finished);
        if stop_sent && all_stopped {
            while supervisors.join_next().await.is_some() {}
            if gone {
                return Outcome::Gone;
            }
            if deleting.is_some() {
                mark_unstarted_finished(&mut worker.state);
                worker.write_status().await;
                return Outcome::Deleted;
            }
            return Outcome::Finished;
        }
        if !stop_sent
            && matches!(worker.phase().as_deref(), Some("Succeeded" | "Failed"))
            && all_stopped
        {
            // Finished on its own (restartPolicy Never/OnFailure and every container exited).
            let _ = stop_tx.send(Some(Duration::ZERO));
            while supervisors.join_next().await.is_some() {}
            return Outcome::Finished;
        }
    }
}

/// Containers that never started are reported terminated once the pod is deleted.
fn mark_unstarted_finished(state: &mut PodState) {
    for c in state.init.iter_mut().chain(state.main.iter_mut()) {
        if c.status.state.as_ref().is_some_and(|s| s.waiting.is_some()) {
            c.status.state = Some(k8s_openapi::api::core::v1::ContainerState {
                terminated: Some(k8s_openapi::api::core::v1::ContainerStateTerminated {
                    exit_code: 137,
                    reason: Some("ContainerStatusUnknown".into()),
                    message: Some(
                        "The container could not be located when the pod was terminated".into(),
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            });
            c.finished = true;
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) if deadline > Instant::now() => {
            tokio::time::sleep_until(deadline.into()).await
        }
        Some(_) => std::future::pending().await,
        None => std::future::pending().await,
    }
}
