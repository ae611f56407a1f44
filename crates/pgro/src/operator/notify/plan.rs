//! Which notifications are due (behaviour N3), as a pure function of the replica's targets, the delivery
//! state in its status, the transitions of this reconcile, the attempts that finished, and `now`.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use pgro_api::{NotificationConfig, NotificationStatus};

use super::target_name;

/// Attempts per notification (the first and four retries).
pub const MAX_ATTEMPTS: u32 = 5;

/// Delays before the 2nd … 5th attempt (behaviour N3).
pub const DEFAULT_BACKOFF: [Duration; 4] = [
    Duration::from_secs(30),
    Duration::from_secs(120),
    Duration::from_secs(600),
    Duration::from_secs(3600),
];

/// An event that notifies every target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// `RestoreCompleted` or `RestoreFailed`.
    pub event: String,
    /// The restore it is about.
    pub restore: String,
}

/// A finished attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Target name.
    pub name: String,
    /// Event.
    pub event: String,
    /// Which attempt (1-based).
    pub attempt: u32,
    /// When it was made.
    pub at: Timestamp,
    /// When it ended (the back-off counts from here, so a slow failure is not retried at once).
    pub finished: Timestamp,
    /// Accepted by the target.
    pub success: bool,
    /// Why not.
    pub error: Option<String>,
}

/// An attempt to make now.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    /// Target name.
    pub name: String,
    /// The target.
    pub target: NotificationConfig,
    /// Event.
    pub event: String,
    /// Attempt number (1-based).
    pub attempt: u32,
    /// The restore the event is about.
    pub restore: String,
    /// When the event happened.
    pub occurred_at: Timestamp,
}

/// The new delivery state and what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// `status.notifications`.
    pub entries: Vec<NotificationStatus>,
    /// Attempts to start now.
    pub due: Vec<Due>,
    /// The earliest future attempt.
    pub next_at: Option<Timestamp>,
    /// Outcomes recorded in `entries` (forget them once the status is written).
    pub recorded: Vec<Outcome>,
}

/// Plans deliveries.
#[must_use]
pub fn plan(
    targets: &[NotificationConfig],
    current: &[NotificationStatus],
    transitions: &[Transition],
    outcomes: &[Outcome],
    backoff: &[Duration],
    now: Timestamp,
) -> Planned {
    let names: Vec<(String, &NotificationConfig)> = targets
        .iter()
        .enumerate()
        .map(|(i, t)| (target_name(t, i), t))
        .collect();
    // Entries of targets that are no longer configured go.
    let mut entries: Vec<NotificationStatus> = current
        .iter()
        .filter(|e| names.iter().any(|(n, _)| *n == e.name))
        .cloned()
        .collect();
    // A new event replaces the previous delivery of the same event to the same target.
    for t in transitions {
        for (name, _) in &names {
            entries.retain(|e| !(e.name == *name && e.event == t.event));
            entries.push(NotificationStatus {
                name: name.clone(),
                event: t.event.clone(),
                last_attempt_at: None,
                attempts: 0,
                success: false,
                last_error: None,
                next_attempt_at: Some(Time(now)),
                restore: Some(t.restore.clone()),
                occurred_at: Some(Time(now)),
            });
        }
    }
    let mut recorded = Vec::new();
    for o in outcomes {
        let Some(e) = entries
            .iter_mut()
            .find(|e| e.name == o.name && e.event == o.event && e.attempts + 1 == o.attempt)
        else {
            continue;
        };
        e.attempts = o.attempt;
        e.last_attempt_at = Some(Time(o.at));
        e.success = o.success;
        e.last_error = o.error.clone();
        e.next_attempt_at = if o.success || o.attempt >= MAX_ATTEMPTS {
            None
        } else {
            let delay = backoff
                .get(usize::try_from(o.attempt - 1).unwrap_or(usize::MAX))
                .or(backoff.last())
                .copied()
                .unwrap_or(Duration::from_secs(60));
            o.finished.checked_add(delay).ok().map(Time)
        };
        recorded.push(o.clone());
    }
    let mut due = Vec::new();
    let mut next_at: Option<Timestamp> = None;
    for e in &entries {
        let Some(at) = e.next_attempt_at.as_ref().map(|t| t.0) else {
            continue;
        };
        if e.success || e.attempts >= MAX_ATTEMPTS {
            continue;
        }
        if at <= now {
            if let Some((_, target)) = names.iter().find(|(n, _)| *n == e.name) {
                due.push(Due {
                    name: e.name.clone(),
                    target: (*target).clone(),
                    event: e.event.clone(),
                    attempt: e.attempts + 1,
                    restore: e.restore.clone().unwrap_or_default(),
                    occurred_at: e.occurred_at.as_ref().map_or(now, |t| t.0),
                });
            }
        } else {
            next_at = Some(next_at.map_or(at, |n| n.min(at)));
        }
    }
    entries.sort_by(|a, b| (&a.name, &a.event).cmp(&(&b.name, &b.event)));
    Planned {
        entries,
        due,
        next_at,
        recorded,
    }
}

/// Parses a back-off list (`30s,2m,10m,1h`).
///
/// # Errors
///
/// An element that is not a duration, or an empty list.
pub fn parse_backoff(text: &str) -> Result<Vec<Duration>, String> {
    let v: Vec<Duration> = text
        .split(',')
        .map(|p| humantime::parse_duration(p.trim()).map_err(|e| format!("{p:?}: {e}")))
        .collect::<Result<_, _>>()?;
    if v.is_empty() {
        Err("empty".into())
    } else {
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use pgro_api::NotificationTarget;

    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn target(name: Option<&str>) -> NotificationConfig {
        NotificationConfig {
            target: NotificationTarget::Webhook,
            name: name.map(str::to_owned),
            url: "http://hooks.example/x".into(),
            headers: None,
            include_password: None,
            method: None,
            mutation: None,
            variables_template: None,
        }
    }

    fn completed() -> Transition {
        Transition {
            event: "RestoreCompleted".into(),
            restore: "r-1".into(),
        }
    }

    #[test]
    fn a_transition_makes_every_target_due_at_once() {
        let now = at("2026-11-21T06:00:00Z");
        let p = plan(
            &[target(Some("ops")), target(None)],
            &[],
            &[completed()],
            &[],
            &DEFAULT_BACKOFF,
            now,
        );
        let names: Vec<_> = p.due.iter().map(|d| (d.name.as_str(), d.attempt)).collect();
        assert_eq!(names, [("ops", 1), ("webhook-1", 1)]);
        assert_eq!(p.entries.len(), 2);
        assert!(
            p.entries
                .iter()
                .all(|e| e.restore.as_deref() == Some("r-1"))
        );
    }

    #[test]
    fn failures_back_off_and_stop_after_five_attempts() {
        let t0 = at("2026-11-21T06:00:00Z");
        let mut entries = plan(
            &[target(Some("ops"))],
            &[],
            &[completed()],
            &[],
            &DEFAULT_BACKOFF,
            t0,
        )
        .entries;
        let mut when = t0;
        let expected = [30, 120, 600, 3600];
        for attempt in 1..=5u32 {
            let o = Outcome {
                name: "ops".into(),
                event: "RestoreCompleted".into(),
                attempt,
                at: when,
                finished: when,
                success: false,
                error: Some("HTTP 500: boom".into()),
            };
            let p = plan(
                &[target(Some("ops"))],
                &entries,
                &[],
                std::slice::from_ref(&o),
                &DEFAULT_BACKOFF,
                when,
            );
            assert_eq!(p.recorded, [o]);
            let e = &p.entries[0];
            assert_eq!(e.attempts, attempt);
            assert_eq!(e.last_error.as_deref(), Some("HTTP 500: boom"));
            if attempt < 5 {
                let next = e.next_attempt_at.as_ref().expect("retry").0;
                assert_eq!(
                    next.duration_since(when).as_secs(),
                    expected[attempt as usize - 1]
                );
                assert!(p.due.is_empty(), "not before the back-off");
                assert_eq!(p.next_at, Some(next));
                when = next;
                let later = plan(
                    &[target(Some("ops"))],
                    &p.entries,
                    &[],
                    &[],
                    &DEFAULT_BACKOFF,
                    when,
                );
                assert_eq!(later.due[0].attempt, attempt + 1);
            } else {
                assert_eq!(e.next_attempt_at, None, "gives up after 5");
                assert!(p.due.is_empty());
            }
            entries = p.entries;
        }
    }

    #[test]
    fn success_is_recorded_once_and_stale_outcomes_are_ignored() {
        let t0 = at("2026-11-21T06:00:00Z");
        let entries = plan(
            &[target(Some("ops"))],
            &[],
            &[completed()],
            &[],
            &DEFAULT_BACKOFF,
            t0,
        )
        .entries;
        let ok = Outcome {
            name: "ops".into(),
            event: "RestoreCompleted".into(),
            attempt: 1,
            at: t0,
            finished: t0,
            success: true,
            error: None,
        };
        let p = plan(
            &[target(Some("ops"))],
            &entries,
            &[],
            std::slice::from_ref(&ok),
            &DEFAULT_BACKOFF,
            t0,
        );
        assert!(p.entries[0].success && p.entries[0].next_attempt_at.is_none());
        // Recording it again (a status write that conflicted, then a retry) changes nothing.
        let again = plan(
            &[target(Some("ops"))],
            &p.entries,
            &[],
            &[ok],
            &DEFAULT_BACKOFF,
            t0,
        );
        assert_eq!(again.entries, p.entries);
        assert!(again.recorded.is_empty());
    }

    #[test]
    fn removed_targets_are_forgotten_and_backoff_parses() {
        let t0 = at("2026-11-21T06:00:00Z");
        let entries = plan(
            &[target(Some("ops"))],
            &[],
            &[completed()],
            &[],
            &DEFAULT_BACKOFF,
            t0,
        )
        .entries;
        let p = plan(
            &[target(Some("other"))],
            &entries,
            &[],
            &[],
            &DEFAULT_BACKOFF,
            t0,
        );
        assert!(p.entries.is_empty());
        assert_eq!(
            parse_backoff("30s, 2m,10m,1h").expect("valid"),
            DEFAULT_BACKOFF.to_vec()
        );
        assert!(parse_backoff("soon").is_err());
    }
}
