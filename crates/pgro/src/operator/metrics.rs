//! Prometheus metrics (behaviour O1), exposed at `/metrics` in the OpenMetrics text format.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `controller` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// `replica` or `restore`.
    pub controller: &'static str,
}

/// `controller` + `error` labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `replica` or `restore`.
    pub controller: &'static str,
    /// [`crate::operator::error::Error::label`].
    pub error: &'static str,
}

/// `reason` label (why a restore failed).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// The `Failed` condition's reason.
    pub reason: String,
}

/// `target` + `event` + `result` labels of notification deliveries.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    /// `webhook` or `graphQL`.
    pub target: &'static str,
    /// `RestoreCompleted` or `RestoreFailed`.
    pub event: String,
    /// `success` or `failure`.
    pub result: &'static str,
}

/// Every metric the operator exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Reconciles per controller.
    pub reconciles: Family<ControllerLabels, Counter>,
    /// Failed reconciles per controller and error class.
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    /// Reconcile duration per controller (seconds).
    pub reconcile_duration: Family<ControllerLabels, Histogram>,
    /// Restores created.
    pub restores_started: Counter,
    /// Restores that became active.
    pub restores_completed: Counter,
    /// Restores that failed, by reason.
    pub restores_failed: Family<ReasonLabels, Counter>,
    /// Restore Job duration (seconds).
    pub restore_duration: Histogram,
    /// Bytes restored by completed restore Jobs.
    pub restore_bytes: Counter,
    /// Switchovers of a replica's Service.
    pub switchovers: Counter,
    /// Replicas waiting for a restore slot.
    pub queue_depth: Gauge,
    /// Restores in `Pending`/`Restoring`.
    pub active_restores: Gauge,
    /// Time to list a repository's snapshots (seconds; cache misses only).
    pub snapshot_discovery: Histogram,
    /// Notification deliveries.
    pub notifications: Family<NotificationLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 16))
}

impl Metrics {
    /// A registry with every metric registered.
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("pgro");
        let reconciles = Family::<ControllerLabels, Counter>::default();
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let reconcile_duration = Family::<ControllerLabels, Histogram>::new_with_constructor(
            seconds_histogram as fn() -> Histogram,
        );
        let restores_started = Counter::default();
        let restores_completed = Counter::default();
        let restores_failed = Family::<ReasonLabels, Counter>::default();
        let restore_duration = Histogram::new(exponential_buckets(10.0, 2.0, 14));
        let restore_bytes = Counter::default();
        let switchovers = Counter::default();
        let queue_depth = Gauge::default();
        let active_restores = Gauge::default();
        let snapshot_discovery = seconds_histogram();
        let notifications = Family::<NotificationLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles per controller",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles per controller and error",
            reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration per controller",
            reconcile_duration.clone(),
        );
        registry.register(
            "restores_started",
            "Restores created",
            restores_started.clone(),
        );
        registry.register(
            "restores_completed",
            "Restores that became active",
            restores_completed.clone(),
        );
        registry.register(
            "restores_failed",
            "Restores that failed, by reason",
            restores_failed.clone(),
        );
        registry.register(
            "restore_duration_seconds",
            "Duration of completed restore Jobs",
            restore_duration.clone(),
        );
        registry.register(
            "restore_bytes",
            "Bytes restored by completed restore Jobs",
            restore_bytes.clone(),
        );
        registry.register("switchovers", "Service switchovers", switchovers.clone());
        registry.register(
            "restore_queue_depth",
            "Replicas waiting for a restore slot",
            queue_depth.clone(),
        );
        registry.register(
            "restores_in_progress",
            "Restores in Pending or Restoring, cluster-wide",
            active_restores.clone(),
        );
        registry.register(
            "snapshot_discovery_seconds",
            "Time to list a repository's snapshots (cache misses)",
            snapshot_discovery.clone(),
        );
        registry.register(
            "notifications",
            "Notification deliveries by target, event and result",
            notifications.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            restores_started,
            restores_completed,
            restores_failed,
            restore_duration,
            restore_bytes,
            switchovers,
            queue_depth,
            active_restores,
            snapshot_discovery,
            notifications,
        }
    }

    /// The OpenMetrics text exposition.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_family_with_the_pgro_prefix() {
        let m = Metrics::new();
        m.reconciles
            .get_or_create(&ControllerLabels {
                controller: "replica",
            })
            .inc();
        m.restores_failed
            .get_or_create(&ReasonLabels {
                reason: "WrongPassword".into(),
            })
            .inc();
        let text = m.encode();
        for name in [
            "pgro_reconciles_total{controller=\"replica\"} 1",
            "pgro_restores_failed_total{reason=\"WrongPassword\"} 1",
            "pgro_restore_queue_depth",
            "pgro_snapshot_discovery_seconds_bucket",
            "pgro_switchovers_total",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
    }
}
