//! Cluster-wide restore concurrency (behaviour R6).
//!
//! The limit is applied to restores that exist in `Pending`/`Restoring`, counted from the operator's watch
//! caches for every decision and re-read from the API server (a quorum list) at the moment a restore is
//! created, so it survives operator restarts, a stale cache and cannot leak. Replicas that want to start
//! wait in the order they started waiting (`status.waitingSince`), ties by namespace and name.

use jiff::Timestamp;

/// A replica that wants to start a restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiter<'a> {
    /// Replica namespace.
    pub namespace: &'a str,
    /// Replica name.
    pub name: &'a str,
    /// `status.waitingSince` (or now, for a replica that starts waiting in this pass).
    pub since: Timestamp,
}

impl Waiter<'_> {
    fn order_key(&self) -> (Timestamp, &str, &str) {
        (self.since, self.namespace, self.name)
    }
}

/// Whether a waiting replica may start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A slot is free for this replica.
    Start,
    /// All slots are taken by restores in progress or by replicas ahead in the queue.
    Wait {
        /// 1-based position among those still waiting (`status.queuePosition`).
        position: u32,
    },
}

/// Decides for `me`, given every waiting replica (with or without `me`), the number of restores in
/// `Pending`/`Restoring` cluster-wide, and `maxConcurrentRestores`.
#[must_use]
pub fn admit(
    me: &Waiter<'_>,
    waiting: &[Waiter<'_>],
    in_progress: usize,
    max_concurrent: usize,
) -> Admission {
    let ahead = waiting
        .iter()
        .filter(|w| (w.namespace, w.name) != (me.namespace, me.name))
        .filter(|w| w.order_key() < me.order_key())
        .count();
    let free = max_concurrent.saturating_sub(in_progress);
    if ahead < free {
        Admission::Start
    } else {
        Admission::Wait {
            position: u32::try_from(ahead - free + 1).unwrap_or(u32::MAX),
        }
    }
}

/// [`admit`] for every waiting replica at once (same order as `waiting`): one sort instead of one scan per
/// replica, so the whole queue is decided from one view.
#[must_use]
pub fn admit_all(
    waiting: &[Waiter<'_>],
    in_progress: usize,
    max_concurrent: usize,
) -> Vec<Admission> {
    let mut order: Vec<usize> = (0..waiting.len()).collect();
    order.sort_by(|a, b| waiting[*a].order_key().cmp(&waiting[*b].order_key()));
    let free = max_concurrent.saturating_sub(in_progress);
    let mut out = vec![Admission::Start; waiting.len()];
    for (rank, i) in order.into_iter().enumerate() {
        if rank >= free {
            out[i] = Admission::Wait {
                position: u32::try_from(rank - free + 1).unwrap_or(u32::MAX),
            };
        }
    }
    out
}

#[cfg(test)]
mod tests;
