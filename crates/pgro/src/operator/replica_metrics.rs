//! The per-replica gauges (`pgro_replica_*`, `pgro_verification_check_passed`), set from each replica's
//! spec and status by the queue watch. Derived from the stored status, they are right after an operator
//! restart; a replica's series (and its phase histograms) vanish when it is deleted, so cardinality stays
//! bounded by the replicas that exist.

use std::collections::{BTreeSet, HashMap};

use jiff::Timestamp;
use pgro_api::{PostgresPhysicalReplica, condition_types};

use super::conditions;
use super::metrics::{CheckLabels, Metrics, PhaseLabels, ReplicaLabels};
use super::schedule::Schedule;

/// Phases of `pgro_restore_phase_duration_seconds`.
pub const PHASES: [&str; 5] = [
    "download",
    "replay",
    "startup",
    "verification",
    "switchover",
];

/// The gauge values of one replica.
#[derive(Debug, Clone, PartialEq)]
pub struct Values {
    /// `dataTime` of the active restore (seconds since the epoch).
    pub data_time: Option<f64>,
    /// `lastRestoreCompletedAt`.
    pub last_restore_success: Option<f64>,
    /// `lastVerifiedAt`.
    pub last_verification_success: Option<f64>,
    /// `metadata.creationTimestamp`.
    pub created: Option<f64>,
    /// Seconds between the next two fire times (`None` for a schedule that does not parse).
    pub schedule_interval: Option<f64>,
    /// `consecutiveRestoreFailures`.
    pub consecutive_failures: i64,
    /// `RestoreSchedulingSuspended=True`.
    pub suspended: bool,
    /// `queuePosition`.
    pub queue_position: i64,
    /// Each check of the newest verification: (name, passed).
    pub checks: Vec<(String, bool)>,
}

fn epoch(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> f64 {
    t.0.as_millisecond() as f64 / 1000.0
}

/// The gauge values of `r` at `now`.
#[must_use]
pub fn values(r: &PostgresPhysicalReplica, now: Timestamp) -> Values {
    let status = r.status.clone().unwrap_or_default();
    let uid = r.metadata.uid.clone().unwrap_or_default();
    let schedule_interval = Schedule::parse(&r.spec.schedule, &uid)
        .and_then(|s| s.interval_after(now))
        .ok()
        .map(|d| d.as_secs_f64());
    Values {
        data_time: status.data_time.as_ref().map(epoch),
        last_restore_success: status.last_restore_completed_at.as_ref().map(epoch),
        last_verification_success: status.last_verified_at.as_ref().map(epoch),
        created: r.metadata.creation_timestamp.as_ref().map(epoch),
        schedule_interval,
        consecutive_failures: i64::from(status.consecutive_restore_failures),
        suspended: conditions::is_true(
            &status.conditions,
            condition_types::RESTORE_SCHEDULING_SUSPENDED,
        ),
        queue_position: i64::from(status.queue_position),
        checks: status
            .last_verification
            .iter()
            .flat_map(|v| &v.checks)
            .map(|c| (c.name.clone(), c.passed))
            .collect(),
    }
}

/// Keeps the gauges in step with the replicas, recomputing one only when it changed (or its schedule
/// moved on).
#[derive(Debug, Default)]
pub struct Exporter {
    /// Per replica: the resourceVersion and time the values were computed from, and the check names set.
    seen: HashMap<ReplicaLabels, (Option<String>, Timestamp, BTreeSet<String>)>,
}

/// How long a replica's schedule interval is trusted before it is recomputed.
const RECOMPUTE: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

impl Exporter {
    /// Sets one replica's gauges (unless it is unchanged since they were last set); returns its labels.
    pub fn update(
        &mut self,
        m: &Metrics,
        r: &PostgresPhysicalReplica,
        now: Timestamp,
    ) -> ReplicaLabels {
        let labels = ReplicaLabels {
            namespace: r.metadata.namespace.clone().unwrap_or_default(),
            replica: r.metadata.name.clone().unwrap_or_default(),
        };
        let rv = r.metadata.resource_version.clone();
        if self
            .seen
            .get(&labels)
            .is_some_and(|(v, at, _)| *v == rv && now.duration_since(*at) < RECOMPUTE)
        {
            return labels;
        }
        let v = values(r, now);
        let old_checks = self
            .seen
            .get(&labels)
            .map(|(_, _, c)| c.clone())
            .unwrap_or_default();
        let checks = set(m, &labels, &v, &old_checks);
        self.seen.insert(labels.clone(), (rv, now, checks));
        labels
    }

    /// Sets every replica's gauges and removes those of replicas that are gone.
    pub fn sync<'a>(
        &mut self,
        m: &Metrics,
        replicas: impl Iterator<Item = &'a PostgresPhysicalReplica>,
        now: Timestamp,
    ) {
        let present: BTreeSet<ReplicaLabels> = replicas.map(|r| self.update(m, r, now)).collect();
        let gone: Vec<ReplicaLabels> = self
            .seen
            .keys()
            .filter(|l| !present.contains(*l))
            .cloned()
            .collect();
        for labels in gone {
            if let Some((_, _, checks)) = self.seen.remove(&labels) {
                remove(m, &labels, &checks);
            }
        }
    }
}

fn optional(
    family: &prometheus_client::metrics::family::Family<ReplicaLabels, super::metrics::FloatGauge>,
    labels: &ReplicaLabels,
    value: Option<f64>,
) {
    match value {
        Some(v) => {
            family.get_or_create(labels).set(v);
        }
        None => {
            family.remove(labels);
        }
    }
}

/// Sets one replica's gauges; returns the check names now exported.
fn set(
    m: &Metrics,
    labels: &ReplicaLabels,
    v: &Values,
    old_checks: &BTreeSet<String>,
) -> BTreeSet<String> {
    let g = &m.replica;
    optional(&g.data_timestamp, labels, v.data_time);
    optional(&g.last_restore_success, labels, v.last_restore_success);
    optional(
        &g.last_verification_success,
        labels,
        v.last_verification_success,
    );
    optional(&g.created, labels, v.created);
    optional(&g.schedule_interval, labels, v.schedule_interval);
    g.consecutive_failures
        .get_or_create(labels)
        .set(v.consecutive_failures);
    g.suspended
        .get_or_create(labels)
        .set(i64::from(v.suspended));
    g.queue_position.get_or_create(labels).set(v.queue_position);
    let check = |name: &str| CheckLabels {
        namespace: labels.namespace.clone(),
        replica: labels.replica.clone(),
        check: name.to_owned(),
    };
    let now: BTreeSet<String> = v.checks.iter().map(|(n, _)| n.clone()).collect();
    for (name, passed) in &v.checks {
        g.check_passed
            .get_or_create(&check(name))
            .set(i64::from(*passed));
    }
    for name in old_checks.difference(&now) {
        g.check_passed.remove(&check(name));
    }
    now
}

/// Removes every series of a replica that is gone.
fn remove(m: &Metrics, labels: &ReplicaLabels, checks: &BTreeSet<String>) {
    let g = &m.replica;
    for family in [
        &g.data_timestamp,
        &g.last_restore_success,
        &g.last_verification_success,
        &g.created,
        &g.schedule_interval,
    ] {
        family.remove(labels);
    }
    for family in [&g.consecutive_failures, &g.suspended, &g.queue_position] {
        family.remove(labels);
    }
    for name in checks {
        g.check_passed.remove(&CheckLabels {
            namespace: labels.namespace.clone(),
            replica: labels.replica.clone(),
            check: name.clone(),
        });
        for result in ["passed", "failed"] {
            m.verification_checks
                .remove(&super::metrics::CheckResultLabels {
                    namespace: labels.namespace.clone(),
                    replica: labels.replica.clone(),
                    check: name.clone(),
                    result,
                });
        }
    }
    for phase in PHASES {
        m.phase_duration.remove(&PhaseLabels {
            namespace: labels.namespace.clone(),
            replica: labels.replica.clone(),
            phase,
        });
    }
}

#[cfg(test)]
mod tests;
