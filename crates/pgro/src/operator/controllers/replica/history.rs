//! `status.history`, `status.lastVerification`, `status.lastVerifiedAt` and `status.dataTime` of a replica,
//! as a pure function of its status and its restores: each restore that switched over or failed is recorded
//! once, newest first, and the list is cut to `spec.historyLimit`. The records live in the replica's status,
//! so they outlast the restores and the operator.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use pgro_api::{
    PhaseDurations, PostgresPhysicalReplicaStatus, PostgresPhysicalRestore, RestorePhase,
    RestoreRecord, VerificationStatus, condition_types,
};

use crate::operator::quantity;
use crate::restore::truncate;

/// Longest failure text kept per record.
const FAILURE_MAX: usize = 300;
/// Failed checks kept per record.
const FAILED_CHECKS_MAX: usize = 3;

/// Outcome of a restore that switched over.
pub const OUTCOME_ACTIVE: &str = "Active";
/// Outcome of a restore that failed.
pub const OUTCOME_FAILED: &str = "Failed";

fn secs(from: Option<&Time>, to: Option<&Time>) -> Option<f64> {
    let d = to?.0.duration_since(from?.0).as_secs_f64();
    Some(d.max(0.0))
}

/// Seconds in each phase the restore reached.
#[must_use]
pub fn durations(r: &PostgresPhysicalRestore) -> PhaseDurations {
    let Some(s) = r.status.as_ref() else {
        return PhaseDurations::default();
    };
    let created = s
        .created_at
        .as_ref()
        .or(r.metadata.creation_timestamp.as_ref());
    let replay = s
        .wal_replayed
        .as_ref()
        .map(|w| w.seconds)
        .or_else(|| s.dump_replayed.as_ref().map(|d| d.seconds));
    let verification = s.verification.as_ref();
    let checks_started = verification.and_then(|v| v.started_at.as_ref());
    let instance_ready = checks_started.or(s.ready_at.as_ref());
    PhaseDurations {
        download: secs(created, s.restored_at.as_ref()),
        replay,
        startup: secs(s.restored_at.as_ref(), instance_ready)
            .map(|d| (d - replay.unwrap_or(0.0)).max(0.0)),
        verification: verification.and_then(|v| secs(checks_started, v.completed_at.as_ref())),
        switchover: secs(s.ready_at.as_ref(), s.activated_at.as_ref()),
    }
}

/// The record of a restore that switched over or failed; `None` for one still on its way.
#[must_use]
pub fn record(r: &PostgresPhysicalRestore) -> Option<RestoreRecord> {
    let s = r.status.as_ref()?;
    let failed = s
        .conditions
        .iter()
        .find(|c| c.type_ == condition_types::FAILED && c.status == "True");
    let outcome = match (&s.phase, failed, &s.activated_at) {
        (Some(RestorePhase::Failed), _, _) | (_, Some(_), None) => OUTCOME_FAILED,
        (_, _, Some(_)) => OUTCOME_ACTIVE,
        _ => return None,
    };
    let verification = s.verification.as_ref().and_then(|v| v.passed);
    let failed_checks = s
        .verification
        .iter()
        .flat_map(|v| &v.checks)
        .filter(|c| !c.passed)
        .take(FAILED_CHECKS_MAX)
        .map(|c| truncate(&crate::operator::verify::failure_line(c), FAILURE_MAX))
        .collect();
    Some(RestoreRecord {
        restore: r.metadata.name.clone().unwrap_or_default(),
        outcome: outcome.to_owned(),
        backup: r.spec.snapshot.clone(),
        backup_time: r.spec.snapshot_time.clone(),
        data_time: s.data_time.clone(),
        source: s.source.clone(),
        postgres_version: s.postgres_version.clone(),
        started_at: s
            .created_at
            .clone()
            .or(r.metadata.creation_timestamp.clone()),
        restored_at: s.restored_at.clone(),
        ready_at: s.ready_at.clone(),
        activated_at: s.activated_at.clone(),
        failed_at: failed
            .filter(|_| outcome == OUTCOME_FAILED)
            .map(|c| c.last_transition_time.clone()),
        durations: durations(r),
        bytes: quantity::to_bytes(&r.spec.snapshot_size).unwrap_or(0),
        verification: verification.map(|p| if p { "passed" } else { "failed" }.to_owned()),
        failed_checks,
        failure: failed.map(|c| truncate(&format!("{}: {}", c.reason, c.message), FAILURE_MAX)),
    })
}

/// When a record's restore ended (switched over or failed), for ordering.
fn ended(r: &RestoreRecord) -> Option<Timestamp> {
    r.activated_at
        .as_ref()
        .or(r.failed_at.as_ref())
        .or(r.started_at.as_ref())
        .map(|t| t.0)
}

/// Records the restores that ended since the last pass (returned, oldest first, for the duration
/// histograms), and keeps `dataTime` and the verification fields in step. `current` is the active restore.
pub fn update(
    status: &mut PostgresPhysicalReplicaStatus,
    restores: &BTreeMap<String, PostgresPhysicalRestore>,
    current: Option<&str>,
    limit: u32,
) -> Vec<RestoreRecord> {
    let mut added: Vec<RestoreRecord> = restores
        .values()
        .filter(|r| {
            let name = r.metadata.name.as_deref().unwrap_or_default();
            !status.history.iter().any(|h| h.restore == name)
        })
        .filter_map(record)
        .collect();
    added.sort_by_key(ended);
    for r in &added {
        status.history.insert(0, r.clone());
    }
    // Newest first, whatever order earlier passes left.
    status.history.sort_by_key(|r| std::cmp::Reverse(ended(r)));
    status
        .history
        .truncate(usize::try_from(limit.max(1)).unwrap_or(usize::MAX));
    // A restore still around but older than every kept record stays out (and is not reported again).
    added.retain(|a| status.history.iter().any(|h| h.restore == a.restore));

    status.data_time = current
        .and_then(|c| restores.get(c))
        .and_then(|r| r.status.as_ref()?.data_time.clone());
    let finished = || {
        restores
            .values()
            .filter_map(|r| r.status.as_ref()?.verification.as_ref())
            .filter(|v| v.passed.is_some() && v.completed_at.is_some())
    };
    let completed = |v: &VerificationStatus| v.completed_at.as_ref().map(|t| t.0);
    let newer = |v: &VerificationStatus, known: Option<&Time>| {
        known.is_none_or(|k| completed(v).is_some_and(|t| t > k.0))
    };
    if let Some(v) = finished().max_by_key(|v| completed(v)) {
        let known = status.last_verification.as_ref();
        if newer(v, known.and_then(|l| l.completed_at.as_ref())) {
            status.last_verification = Some(v.clone());
        }
    }
    if let Some(v) = finished()
        .filter(|v| v.passed == Some(true))
        .max_by_key(|v| completed(v))
        && newer(v, status.last_verified_at.as_ref())
    {
        status.last_verified_at.clone_from(&v.completed_at);
    }
    added
}

#[cfg(test)]
mod tests;
