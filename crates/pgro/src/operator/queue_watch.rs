//! The restore queue seen from the controllers' caches (reflector stores), every second, with no API
//! request: the in-progress and queue-depth gauges follow the cluster's state (they drain to 0 when the
//! queue does), and the queue is decided for every waiting replica at once. A waiting replica is woken
//! only when that decision differs from what its status says — a slot freed for it, or its position moved —
//! instead of every waiting replica polling on a timer or waking on every restore's status change.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use pgro_api::{PostgresPhysicalReplica, PostgresPhysicalRestore, RestorePhase};
use tokio::sync::mpsc::UnboundedSender;

use super::metrics::Metrics;
use super::queue::{self, Admission, Waiter};
use super::settings::Settings;

/// How often the gauges are recomputed from the caches when no restore changes.
const INTERVAL: Duration = Duration::from_secs(1);

/// After a restore changed, how long to let a burst of changes settle before deciding (a slot that frees is
/// taken within about this long, not at the next tick).
const SETTLE: Duration = Duration::from_millis(50);

/// A replica woken for a decision is not woken again for the same decision within this time (its reconcile
/// may be queued or writing).
const RESEND: Duration = Duration::from_secs(5);

/// How long the other replicas' position updates wait for a replica that may start (see [`hold_moves`]).
const HOLD: Duration = Duration::from_secs(2);

/// Whether the position updates in `wakes` wait: a replica may start and was told so less than [`HOLD`]
/// ago (`told` gives how long ago, `None` if not yet). When a slot frees, every waiting replica moves up by
/// one — up to one status write each, which would compete with the admission for the API server; they
/// follow once it has started (or after [`HOLD`], should it not start).
#[must_use]
pub fn hold_moves(
    wakes: &[(String, String, Admission)],
    told: impl Fn(&str, &str) -> Option<Duration>,
) -> bool {
    wakes
        .iter()
        .filter(|(_, _, d)| *d == Admission::Start)
        .any(|(ns, name, _)| told(ns, name).is_none_or(|ago| ago < HOLD))
}

/// (restores in `Pending`/`Restoring`, replicas waiting for a slot).
#[must_use]
pub fn counts<'a>(
    restores: impl IntoIterator<Item = &'a PostgresPhysicalRestore>,
    replicas: impl IntoIterator<Item = &'a PostgresPhysicalReplica>,
) -> (i64, i64) {
    let in_progress = restores
        .into_iter()
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .filter(|r| {
            r.status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or(RestorePhase::Pending)
                .is_in_progress()
        })
        .count();
    let waiting = replicas
        .into_iter()
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .filter(|r| r.status.as_ref().is_some_and(|s| s.waiting_since.is_some()))
        .count();
    (
        i64::try_from(in_progress).unwrap_or(i64::MAX),
        i64::try_from(waiting).unwrap_or(i64::MAX),
    )
}

/// Replicas waiting for a slot, as the queue orders them.
#[must_use]
pub fn waiters(
    replicas: &[std::sync::Arc<PostgresPhysicalReplica>],
) -> Vec<(String, String, jiff::Timestamp, u32)> {
    replicas
        .iter()
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .filter_map(|r| {
            let s = r.status.as_ref()?;
            let since = s.waiting_since.as_ref()?.0;
            Some((
                r.namespace().unwrap_or_default(),
                r.name_any(),
                since,
                s.queue_position,
            ))
        })
        .collect()
}

/// The replicas to wake, with the queue's decision for each: a slot is free for them, or their recorded
/// position is not the queue's.
#[must_use]
pub fn to_wake(
    waiting: &[(String, String, jiff::Timestamp, u32)],
    in_progress: usize,
    max_concurrent: usize,
) -> Vec<(String, String, Admission)> {
    let view: Vec<Waiter<'_>> = waiting
        .iter()
        .map(|(ns, name, since, _)| Waiter {
            namespace: ns,
            name,
            since: *since,
        })
        .collect();
    queue::admit_all(&view, in_progress, max_concurrent)
        .into_iter()
        .zip(waiting)
        .filter(|(decision, (_, _, _, recorded))| match decision {
            Admission::Start => true,
            Admission::Wait { position } => position != recorded,
        })
        .map(|(decision, (ns, name, _, _))| (ns.clone(), name.clone(), decision))
        .collect()
}

/// What the queue watch reads and whom it tells.
#[derive(Debug)]
pub struct Inputs {
    /// Every restore.
    pub restores: Store<PostgresPhysicalRestore>,
    /// Every replica.
    pub replicas: Store<PostgresPhysicalReplica>,
    /// Notified on every restore change seen by the restore cache.
    pub changed: Arc<tokio::sync::Notify>,
    /// The gauges.
    pub metrics: Arc<Metrics>,
    /// `maxConcurrentRestores` in force.
    pub settings: Arc<RwLock<Arc<Settings>>>,
    /// Wakes a replica's reconcile.
    pub wake: UnboundedSender<ObjectRef<PostgresPhysicalReplica>>,
}

/// Keeps the gauges in step with the caches and wakes the replicas the queue moved, until `stop` is set:
/// at once (after [`SETTLE`]) when a restore changed, and every [`INTERVAL`] for everything else.
pub async fn run(inputs: Inputs, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Inputs {
        restores,
        replicas,
        changed,
        metrics,
        settings,
        wake,
    } = inputs;
    let mut sent: HashMap<(String, String), (Admission, Instant)> = HashMap::new();
    loop {
        let r = restores.state();
        let p = replicas.state();
        if let Ok(mut exporter) = metrics.replica_exporter.lock() {
            exporter.sync(
                &metrics,
                p.iter().map(AsRef::as_ref),
                jiff::Timestamp::now(),
            );
        }
        let (in_progress, waiting_count) =
            counts(r.iter().map(AsRef::as_ref), p.iter().map(AsRef::as_ref));
        metrics.active_restores.set(in_progress);
        metrics.queue_depth.set(waiting_count);
        let max = settings.read().map_or(2, |s| {
            usize::try_from(s.max_concurrent_restores).unwrap_or(usize::MAX)
        });
        let in_progress = usize::try_from(in_progress).unwrap_or(usize::MAX);
        sent.retain(|_, (_, at)| at.elapsed() < RESEND);
        let wakes = to_wake(&waiters(&p), in_progress, max);
        let hold = hold_moves(&wakes, |ns, name| {
            sent.get(&(ns.to_owned(), name.to_owned()))
                .filter(|(d, _)| *d == Admission::Start)
                .map(|(_, at)| at.elapsed())
        });
        for (ns, name, decision) in wakes {
            if hold && decision != Admission::Start {
                continue;
            }
            let key = (ns, name);
            if sent.get(&key).is_some_and(|(d, _)| *d == decision) {
                continue;
            }
            let _ = wake.send(ObjectRef::new(&key.1).within(&key.0));
            sent.insert(key, (decision, Instant::now()));
        }
        let restore_changed = tokio::select! {
            () = tokio::time::sleep(INTERVAL) => false,
            () = changed.notified() => true,
            _ = stop.wait_for(|s| *s) => return,
        };
        if restore_changed {
            tokio::time::sleep(SETTLE).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use pgro_api::testutil::from_yaml;

    use super::*;

    fn restore(phase: &str) -> PostgresPhysicalRestore {
        from_yaml(&format!(
            "apiVersion: pgro.bes.au/v1alpha1\nkind: PostgresPhysicalRestore\nmetadata: {{name: r, namespace: n}}\n\
             spec: {{replica: {{name: x}}, snapshot: k, snapshotSize: '1', storageSize: '1'}}\nstatus: {{phase: {phase}}}"
        ))
        .expect("restore")
    }

    fn replica(status: &str) -> PostgresPhysicalReplica {
        from_yaml(&format!(
            "apiVersion: pgro.bes.au/v1alpha1\nkind: PostgresPhysicalReplica\nmetadata: {{name: p, namespace: n}}\n\
             spec: {{kopiaSecretRef: {{name: s}}, schedule: '0 * * * *'}}\nstatus: {status}"
        ))
        .expect("replica")
    }

    #[test]
    fn only_replicas_the_queue_moved_are_woken() {
        let t = |s: i64| jiff::Timestamp::from_second(1_800_000_000 + s).expect("ts");
        let w = |name: &str, since: i64, recorded: u32| {
            ("ns".to_string(), name.to_string(), t(since), recorded)
        };
        // Two slots busy: positions 1, 2, 3 recorded correctly → nobody is woken.
        let queue = [w("a", 0, 1), w("b", 1, 2), w("c", 2, 3)];
        assert!(to_wake(&queue, 2, 2).is_empty());
        // One slot frees: a may start, b and c move up.
        let names: Vec<String> = to_wake(&queue, 1, 2)
            .into_iter()
            .map(|(_, n, _)| n)
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        // After b and c recorded their new positions, only a (still to start) is woken.
        let moved = [w("a", 0, 1), w("b", 1, 1), w("c", 2, 2)];
        let names: Vec<String> = to_wake(&moved, 1, 2)
            .into_iter()
            .map(|(_, n, _)| n)
            .collect();
        assert_eq!(names, ["a"]);
    }

    #[test]
    fn position_updates_wait_for_a_replica_that_may_start() {
        let wake = |name: &str, d: Admission| ("ns".to_owned(), name.to_owned(), d);
        let wakes = [
            wake("a", Admission::Start),
            wake("b", Admission::Wait { position: 1 }),
        ];
        // a not told yet, or told a moment ago: b's new position waits.
        assert!(hold_moves(&wakes, |_, _| None));
        assert!(hold_moves(&wakes, |_, _| Some(Duration::from_millis(500))));
        // a was told long ago and has not started: b is not held back for ever.
        assert!(!hold_moves(&wakes, |_, _| Some(Duration::from_secs(3))));
        // Nobody may start: positions go out at once.
        assert!(!hold_moves(&wakes[1..], |_, _| None));
    }

    #[test]
    fn gauges_count_what_exists_and_drain_to_zero() {
        let rs = [
            restore("Restoring"),
            restore("Pending"),
            restore("Active"),
            restore("Failed"),
        ];
        let ps = [
            replica("{waitingSince: '2026-12-01T00:00:00Z'}"),
            replica("{}"),
        ];
        assert_eq!(counts(&rs, &ps), (2, 1));
        assert_eq!(counts(&[], &[]), (0, 0));
    }
}
