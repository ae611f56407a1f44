//! Conditions merged by type (behaviour A5): `lastTransitionTime` changes only when the status does, so a
//! reconcile that finds nothing new writes nothing new.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond<'a> {
    /// `type`.
    pub type_: &'a str,
    /// `True` or `False`.
    pub status: bool,
    /// `reason` (UpperCamelCase constant).
    pub reason: &'a str,
    /// Human message; keep it stable between reconciles that find the same thing.
    pub message: String,
}

/// Sets `c` in `conditions`, keeping `lastTransitionTime` when the status is unchanged.
pub fn set(conditions: &mut Vec<Condition>, c: Cond<'_>, generation: Option<i64>, now: &Time) {
    let status = if c.status { "True" } else { "False" };
    set_as(conditions, status, c, generation, now);
}

/// As [`set`], with status `Unknown` (`c.status` is ignored): the answer is being worked out.
pub fn set_unknown(
    conditions: &mut Vec<Condition>,
    c: Cond<'_>,
    generation: Option<i64>,
    now: &Time,
) {
    set_as(conditions, "Unknown", c, generation, now);
}

fn set_as(
    conditions: &mut Vec<Condition>,
    status: &str,
    c: Cond<'_>,
    generation: Option<i64>,
    now: &Time,
) {
    match conditions.iter_mut().find(|x| x.type_ == c.type_) {
        Some(existing) => {
            if existing.status != status {
                existing.last_transition_time = now.clone();
            }
            existing.status = status.to_owned();
            existing.reason = c.reason.to_owned();
            existing.message = c.message;
            existing.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: c.type_.to_owned(),
            status: status.to_owned(),
            reason: c.reason.to_owned(),
            message: c.message,
            last_transition_time: now.clone(),
            observed_generation: generation,
        }),
    }
}

/// The condition of `type_`, if present.
#[must_use]
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of `type_` is `True`.
#[must_use]
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    get(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Time {
        Time(s.parse().expect("timestamp"))
    }

    #[test]
    fn transition_time_changes_only_with_status() {
        let mut c = Vec::new();
        let cond = |status, reason: &'static str| Cond {
            type_: "Ready",
            status,
            reason,
            message: reason.to_owned(),
        };
        set(
            &mut c,
            cond(false, "A"),
            Some(1),
            &t("2026-01-01T00:00:00Z"),
        );
        set(
            &mut c,
            cond(false, "B"),
            Some(2),
            &t("2026-01-01T00:05:00Z"),
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].reason, "B");
        assert_eq!(c[0].observed_generation, Some(2));
        assert_eq!(c[0].last_transition_time, t("2026-01-01T00:00:00Z"));
        set(&mut c, cond(true, "C"), Some(2), &t("2026-01-01T00:09:00Z"));
        assert_eq!(c[0].last_transition_time, t("2026-01-01T00:09:00Z"));
        assert!(is_true(&c, "Ready"));
        assert!(!is_true(&c, "Other"));
    }
}
