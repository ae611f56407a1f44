use proptest::prelude::*;

use super::*;

fn at(text: &str) -> Timestamp {
    text.parse().expect("timestamp")
}

/// A replica serving snapshot `k1`, next scheduled at 06:00, now 06:00, newest snapshot `k2`.
fn serving() -> TriggerInputs<'static> {
    TriggerInputs {
        now: at("2026-11-21T06:00:00Z"),
        next_scheduled: at("2026-11-21T06:00:00Z"),
        active_snapshot: Some("k1"),
        restore_in_progress: false,
        live_restores: 1,
        last_completed_at: Some(at("2026-11-21T00:10:00Z")),
        minimum_ttl: None,
        consecutive_failures: 0,
        last_failure_at: None,
        latest_snapshot: Some("k2"),
    }
}

#[test]
fn due_schedule_with_a_new_snapshot_restores_it() {
    assert_eq!(
        decide(&serving()),
        Trigger::Restore {
            snapshot: "k2".into()
        }
    );
}

#[test]
fn before_the_scheduled_time_waits_for_it() {
    let i = TriggerInputs {
        now: at("2026-11-21T05:59:59Z"),
        ..serving()
    };
    assert_eq!(
        decide(&i),
        Trigger::Wait {
            until: at("2026-11-21T06:00:00Z")
        }
    );
}

#[test]
fn replica_that_never_restored_starts_at_once() {
    let i = TriggerInputs {
        active_snapshot: None,
        live_restores: 0,
        last_completed_at: None,
        now: at("2026-11-21T01:00:00Z"),
        ..serving()
    };
    assert_eq!(
        decide(&i),
        Trigger::Restore {
            snapshot: "k2".into()
        }
    );
}

#[test]
fn deleted_active_restore_is_replaced_at_once_even_within_ttl() {
    let i = TriggerInputs {
        active_snapshot: None,
        live_restores: 0,
        now: at("2026-11-21T01:00:00Z"),
        minimum_ttl: Some(SignedDuration::from_hours(24)),
        ..serving()
    };
    assert_eq!(
        decide(&i),
        Trigger::Restore {
            snapshot: "k2".into()
        }
    );
}

#[test]
fn same_snapshot_as_the_active_restore_is_skipped() {
    let i = TriggerInputs {
        latest_snapshot: Some("k1"),
        ..serving()
    };
    assert_eq!(decide(&i), Trigger::SkipSameSnapshot);
}

#[test]
fn minimum_ttl_skips_until_it_has_passed() {
    let i = TriggerInputs {
        minimum_ttl: Some(SignedDuration::from_hours(12)),
        ..serving()
    };
    assert_eq!(
        decide(&i),
        Trigger::SkipMinimumTtl {
            until: at("2026-11-21T12:10:00Z")
        }
    );
    let later = TriggerInputs {
        minimum_ttl: Some(SignedDuration::from_hours(5)),
        ..serving()
    };
    assert_eq!(
        decide(&later),
        Trigger::Restore {
            snapshot: "k2".into()
        }
    );
}

#[test]
fn no_matching_snapshot_is_reported() {
    assert_eq!(
        decide(&TriggerInputs {
            latest_snapshot: None,
            ..serving()
        }),
        Trigger::NoSnapshot
    );
}

#[test]
fn one_restore_at_a_time_per_replica() {
    assert_eq!(
        decide(&TriggerInputs {
            restore_in_progress: true,
            ..serving()
        }),
        Trigger::InProgress
    );
}

#[test]
fn at_most_three_live_restores_per_replica() {
    assert_eq!(
        decide(&TriggerInputs {
            live_restores: 3,
            ..serving()
        }),
        Trigger::AtRestoreLimit
    );
}

#[test]
fn three_consecutive_failures_suspend_scheduling() {
    let i = TriggerInputs {
        consecutive_failures: 3,
        last_failure_at: Some(at("2026-11-20T00:00:00Z")),
        ..serving()
    };
    assert_eq!(decide(&i), Trigger::Suspended);
    let reset = TriggerInputs {
        consecutive_failures: 0,
        ..i
    };
    assert_eq!(
        decide(&reset),
        Trigger::Restore {
            snapshot: "k2".into()
        }
    );
}

#[test]
fn backoff_is_two_then_four_minutes() {
    assert_eq!(failure_backoff(1), SignedDuration::from_mins(2));
    assert_eq!(failure_backoff(2), SignedDuration::from_mins(4));
}

#[test]
fn after_a_failure_with_nothing_serving_retry_comes_at_the_earlier_of_backoff_and_schedule() {
    let failed = at("2026-11-21T01:00:00Z");
    let i = TriggerInputs {
        active_snapshot: None,
        consecutive_failures: 1,
        last_failure_at: Some(failed),
        now: at("2026-11-21T01:01:00Z"),
        next_scheduled: at("2026-11-21T06:00:00Z"),
        ..serving()
    };
    assert_eq!(
        decide(&i),
        Trigger::Wait {
            until: at("2026-11-21T01:02:00Z")
        }
    );
    let second = TriggerInputs {
        consecutive_failures: 2,
        ..i
    };
    assert_eq!(
        decide(&second),
        Trigger::Wait {
            until: at("2026-11-21T01:04:00Z")
        }
    );
    let soon = TriggerInputs {
        next_scheduled: at("2026-11-21T01:01:30Z"),
        ..i
    };
    assert_eq!(
        decide(&soon),
        Trigger::Wait {
            until: at("2026-11-21T01:01:30Z")
        }
    );
}

#[test]
fn after_a_failure_with_an_active_restore_retry_comes_at_the_later_of_backoff_and_schedule() {
    let i = TriggerInputs {
        consecutive_failures: 1,
        last_failure_at: Some(at("2026-11-21T05:59:00Z")),
        ..serving()
    };
    assert_eq!(
        decide(&i),
        Trigger::Wait {
            until: at("2026-11-21T06:01:00Z")
        }
    );
    let old_failure = TriggerInputs {
        last_failure_at: Some(at("2026-11-21T01:00:00Z")),
        ..i
    };
    assert_eq!(
        decide(&old_failure),
        Trigger::Restore {
            snapshot: "k2".into()
        }
    );
}

proptest! {
    /// Nothing restores before it is due, and a restore is only ever of the newest snapshot and never of the
    /// one already serving.
    #[test]
    fn restores_only_when_due_and_only_something_new(
        now in 0i64..100_000, next in 0i64..100_000, failure in 0i64..100_000, failures in 0u32..5,
        active in prop::option::of(0u8..3), latest in prop::option::of(0u8..3), in_progress in any::<bool>(),
    ) {
        let ts = |s: i64| Timestamp::from_second(1_800_000_000 + s).expect("ts");
        let active = active.map(|a| format!("k{a}"));
        let latest = latest.map(|l| format!("k{l}"));
        let i = TriggerInputs {
            now: ts(now),
            next_scheduled: ts(next),
            active_snapshot: active.as_deref(),
            restore_in_progress: in_progress,
            live_restores: usize::from(active.is_some()),
            last_completed_at: None,
            minimum_ttl: None,
            consecutive_failures: failures,
            last_failure_at: Some(ts(failure)),
            latest_snapshot: latest.as_deref(),
        };
        if let Trigger::Restore { snapshot } = decide(&i) {
            prop_assert!(failures < SUSPEND_AFTER_FAILURES && !in_progress);
            prop_assert!(ts(now) >= due_at(&i));
            prop_assert_eq!(Some(snapshot.as_str()), latest.as_deref());
            prop_assert_ne!(Some(snapshot.as_str()), active.as_deref());
            if active.is_some() {
                prop_assert!(ts(now) >= ts(next), "an active restore is only replaced on schedule");
            }
        }
    }
}
