//! The replica's phase (behaviour R10).

use pgro_api::ReplicaPhase;

/// `Ready` while an active restore serves (also during a refresh: the serving copy is what users see),
/// otherwise `Restoring` while a restore is under way, `Failed` when scheduling is suspended, else
/// `Pending`.
#[must_use]
pub fn replica_phase(
    active_serves: bool,
    restore_in_progress: bool,
    suspended: bool,
) -> ReplicaPhase {
    match (active_serves, restore_in_progress, suspended) {
        (true, _, _) => ReplicaPhase::Ready,
        (false, true, _) => ReplicaPhase::Restoring,
        (false, false, true) => ReplicaPhase::Failed,
        (false, false, false) => ReplicaPhase::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_replica_is_ready_even_while_refreshing_or_suspended() {
        for (progress, suspended) in [(false, false), (true, false), (false, true), (true, true)] {
            assert_eq!(
                replica_phase(true, progress, suspended),
                ReplicaPhase::Ready
            );
        }
    }

    #[test]
    fn replica_without_active_restore_is_restoring_failed_or_pending() {
        assert_eq!(replica_phase(false, true, false), ReplicaPhase::Restoring);
        assert_eq!(replica_phase(false, true, true), ReplicaPhase::Restoring);
        assert_eq!(replica_phase(false, false, true), ReplicaPhase::Failed);
        assert_eq!(replica_phase(false, false, false), ReplicaPhase::Pending);
    }
}
