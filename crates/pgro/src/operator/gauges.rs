//! The queue and in-progress gauges, computed from the controllers' caches (reflector stores), not from
//! the last admission: after a restore finishes, a replica is deleted or everything goes, they follow the
//! cluster's state. Recomputing reads only local caches, so it makes no API request.

use std::time::Duration;

use kube::runtime::reflector::Store;
use pgro_api::{PostgresPhysicalReplica, PostgresPhysicalRestore, RestorePhase};

use super::metrics::Metrics;

/// How often the gauges are recomputed from the caches.
const INTERVAL: Duration = Duration::from_secs(1);

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

/// Keeps the gauges in step with the caches until `stop` is set.
pub async fn run(
    restores: Store<PostgresPhysicalRestore>,
    replicas: Store<PostgresPhysicalReplica>,
    metrics: std::sync::Arc<Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let r = restores.state();
        let p = replicas.state();
        let (in_progress, waiting) =
            counts(r.iter().map(AsRef::as_ref), p.iter().map(AsRef::as_ref));
        metrics.active_restores.set(in_progress);
        metrics.queue_depth.set(waiting);
        tokio::select! {
            () = tokio::time::sleep(INTERVAL) => {}
            _ = stop.wait_for(|s| *s) => return,
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
