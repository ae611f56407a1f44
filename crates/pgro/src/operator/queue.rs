//! Cluster-wide restore concurrency (behaviour R6).
//!
//! The limit is applied to restores that exist in `Pending`/`Restoring`, counted from the API server on
//! every decision, so it survives operator restarts and cannot leak. Replicas that want to start wait in the
//! order they started waiting (`status.waitingSince`), ties by namespace and name.

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

#[cfg(test)]
mod tests;
