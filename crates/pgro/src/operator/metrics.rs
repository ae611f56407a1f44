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

/// `namespace` + `replica` labels of the per-replica metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct ReplicaLabels {
    /// The replica's namespace.
    pub namespace: String,
    /// The replica's name.
    pub replica: String,
}

/// A restore phase of one replica (`pgro_restore_phase_duration_seconds`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// The replica's namespace.
    pub namespace: String,
    /// The replica's name.
    pub replica: String,
    /// `download`, `replay`, `startup`, `verification` or `switchover`.
    pub phase: &'static str,
}

/// One verification check of one replica.
#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct CheckLabels {
    /// The replica's namespace.
    pub namespace: String,
    /// The replica's name.
    pub replica: String,
    /// The check's name.
    pub check: String,
}

/// One check's results of one replica.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckResultLabels {
    /// The replica's namespace.
    pub namespace: String,
    /// The replica's name.
    pub replica: String,
    /// The check's name.
    pub check: String,
    /// `passed` or `failed`.
    pub result: &'static str,
}

/// A gauge holding seconds since the epoch (or any other fractional value).
pub type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// The per-replica gauges, set from each replica's status by [`super::replica_metrics`] (so they are right
/// after an operator restart and vanish with the replica).
#[derive(Debug, Default)]
pub struct ReplicaGauges {
    /// Time of the newest data the active restore serves.
    pub data_timestamp: Family<ReplicaLabels, FloatGauge>,
    /// Time of the last successful switchover.
    pub last_restore_success: Family<ReplicaLabels, FloatGauge>,
    /// Time the last passing verification finished.
    pub last_verification_success: Family<ReplicaLabels, FloatGauge>,
    /// The replica's creation time.
    pub created: Family<ReplicaLabels, FloatGauge>,
    /// Seconds between the next two scheduled refreshes.
    pub schedule_interval: Family<ReplicaLabels, FloatGauge>,
    /// Consecutive failed restores.
    pub consecutive_failures: Family<ReplicaLabels, Gauge>,
    /// 1 while scheduling is suspended.
    pub suspended: Family<ReplicaLabels, Gauge>,
    /// Position in the restore queue (0: not waiting).
    pub queue_position: Family<ReplicaLabels, Gauge>,
    /// 1 when the check passed in the newest verification, 0 when it failed.
    pub check_passed: Family<CheckLabels, Gauge>,
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
    /// Per-replica gauges.
    pub replica: ReplicaGauges,
    /// Seconds per restore phase, per replica.
    pub phase_duration: Family<PhaseLabels, Histogram>,
    /// Verification check results, per replica and check.
    pub verification_checks: Family<CheckResultLabels, Counter>,
    /// Sets the per-replica gauges: from the replica controller after each status write, and from the
    /// queue watch for every replica (which also removes those of deleted replicas).
    pub replica_exporter: std::sync::Mutex<super::replica_metrics::Exporter>,
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
        let replica = ReplicaGauges::default();
        // 1 s … 36 h: a phase takes seconds (switchover) to a day (a multi-terabyte download).
        let phase_duration = Family::<PhaseLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(1.0, 2.0, 18))) as fn() -> Histogram,
        );
        let verification_checks = Family::<CheckResultLabels, Counter>::default();
        for (name, help, family) in [
            (
                "replica_data_timestamp_seconds",
                "Time of the newest data the active restore serves",
                &replica.data_timestamp,
            ),
            (
                "replica_last_restore_success_timestamp_seconds",
                "Time of the last successful switchover",
                &replica.last_restore_success,
            ),
            (
                "replica_last_verification_success_timestamp_seconds",
                "Time the last passing verification finished",
                &replica.last_verification_success,
            ),
            (
                "replica_created_timestamp_seconds",
                "Creation time of the replica",
                &replica.created,
            ),
            (
                "replica_schedule_interval_seconds",
                "Seconds between the replica's next two scheduled refreshes",
                &replica.schedule_interval,
            ),
        ] {
            registry.register(name, help, family.clone());
        }
        for (name, help, family) in [
            (
                "replica_consecutive_restore_failures",
                "Consecutive failed restores (3 suspend scheduling)",
                &replica.consecutive_failures,
            ),
            (
                "replica_scheduling_suspended",
                "1 while scheduling is suspended after consecutive failures",
                &replica.suspended,
            ),
            (
                "replica_queue_position",
                "Position in the restore queue, 0 when not waiting",
                &replica.queue_position,
            ),
        ] {
            registry.register(name, help, family.clone());
        }
        registry.register(
            "verification_check_passed",
            "1 when the check passed in the replica's newest verification, 0 when it failed",
            replica.check_passed.clone(),
        );
        registry.register(
            "restore_phase_duration_seconds",
            "Seconds per restore phase (download, replay, startup, verification, switchover)",
            phase_duration.clone(),
        );
        registry.register(
            "verification_checks",
            "Verification check results by replica, check and result",
            verification_checks.clone(),
        );
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
            replica,
            phase_duration,
            verification_checks,
            replica_exporter: std::sync::Mutex::default(),
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
