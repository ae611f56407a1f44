//! Whether a replica starts a new restore now (behaviour R4, R5, R8).

use jiff::{SignedDuration, Timestamp};

/// Consecutive failures after which scheduling stops until the counter is reset.
pub const SUSPEND_AFTER_FAILURES: u32 = 3;

/// What the trigger decision looks at, read from the replica, its restores and the repository.
#[derive(Debug, Clone, Copy)]
pub struct TriggerInputs<'a> {
    /// The current time.
    pub now: Timestamp,
    /// `status.nextScheduledRestore`, already recomputed if the schedule changed.
    pub next_scheduled: Timestamp,
    /// Snapshot held by the active restore; `None` when no restore is active (never restored, or the active
    /// one was deleted).
    pub active_snapshot: Option<&'a str>,
    /// A restore of this replica is in `Pending`/`Restoring`/`Ready`/`Switching`.
    pub restore_in_progress: bool,
    /// Restores of this replica outside `Failed`.
    pub live_restores: usize,
    /// `status.lastRestoreCompletedAt`.
    pub last_completed_at: Option<Timestamp>,
    /// `spec.minimumTtl`.
    pub minimum_ttl: Option<SignedDuration>,
    /// `status.consecutiveRestoreFailures`.
    pub consecutive_failures: u32,
    /// `status.lastRestoreFailedAt`.
    pub last_failure_at: Option<Timestamp>,
    /// Newest snapshot matching the filter.
    pub latest_snapshot: Option<&'a str>,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Scheduling is suspended after [`SUSPEND_AFTER_FAILURES`] consecutive failures.
    Suspended,
    /// A restore is already under way (at most one per replica).
    InProgress,
    /// Three restores exist outside `Failed` (active, outgoing, new): wait for the outgoing one to go.
    AtRestoreLimit,
    /// Nothing to do before `until`.
    Wait {
        /// When to look again.
        until: Timestamp,
    },
    /// Due, but the last restore completed less than `minimumTtl` ago; the schedule advances.
    SkipMinimumTtl {
        /// When the TTL ends.
        until: Timestamp,
    },
    /// Due, but the active restore already holds the newest snapshot; the schedule advances.
    SkipSameSnapshot,
    /// Due, but no snapshot matches the filter.
    NoSnapshot,
    /// Start a restore of this snapshot.
    Restore {
        /// The snapshot to restore.
        snapshot: String,
    },
}

/// Retry delay after the `failures`-th consecutive failure: 2 min, then 4 min.
#[must_use]
pub fn failure_backoff(failures: u32) -> SignedDuration {
    match failures {
        0 => SignedDuration::ZERO,
        1 => SignedDuration::from_mins(2),
        _ => SignedDuration::from_mins(4),
    }
}

/// When the next attempt is due. Without an active restore the replica starts at once (never restored, or
/// the active one was deleted) — after a failure, at the earlier of the backoff and the schedule, because
/// nothing serves. With an active restore it waits for the schedule — after a failure, for the later of the
/// two, because the active restore keeps serving.
#[must_use]
pub fn due_at(inputs: &TriggerInputs<'_>) -> Timestamp {
    let retry_at = inputs
        .last_failure_at
        .filter(|_| inputs.consecutive_failures > 0)
        .map(|failed| {
            failed
                .saturating_add(failure_backoff(inputs.consecutive_failures))
                .unwrap_or(failed)
        });
    match (inputs.active_snapshot.is_some(), retry_at) {
        (false, None) => inputs.now,
        (false, Some(retry)) => retry.min(inputs.next_scheduled),
        (true, None) => inputs.next_scheduled,
        (true, Some(retry)) => retry.max(inputs.next_scheduled),
    }
}

/// Decides whether to start a restore now.
#[must_use]
pub fn decide(inputs: &TriggerInputs<'_>) -> Trigger {
    if inputs.consecutive_failures >= SUSPEND_AFTER_FAILURES {
        return Trigger::Suspended;
    }
    if inputs.restore_in_progress {
        return Trigger::InProgress;
    }
    let due = due_at(inputs);
    if inputs.now < due {
        return Trigger::Wait { until: due };
    }
    if inputs.live_restores >= 3 {
        return Trigger::AtRestoreLimit;
    }
    // The TTL protects a serving restore from churn; with nothing serving, a replacement starts at once.
    if let (Some(_), Some(ttl), Some(completed)) = (
        inputs.active_snapshot,
        inputs.minimum_ttl,
        inputs.last_completed_at,
    ) {
        let until = completed.saturating_add(ttl).unwrap_or(completed);
        if inputs.now < until {
            return Trigger::SkipMinimumTtl { until };
        }
    }
    match inputs.latest_snapshot {
        None => Trigger::NoSnapshot,
        Some(latest) if Some(latest) == inputs.active_snapshot => Trigger::SkipSameSnapshot,
        Some(latest) => Trigger::Restore {
            snapshot: latest.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests;
