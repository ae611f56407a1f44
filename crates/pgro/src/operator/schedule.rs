//! When the next restore is due (behaviour R4).
//!
//! `schedule` is a cron expression exactly as the `cronexpr` crate parses it: five fields, an optional
//! trailing IANA timezone (UTC when absent), and `H` in any field for a value derived from the replica's
//! identity. The jitter added to each fire time is uniform in [-j/2, +j/2] and derived deterministically from
//! (identity, fire time), so a restarted operator computes the same time again.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

/// A schedule that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The expression does not parse; the message is the parser's, then what is expected.
    #[error("invalid schedule {expression:?}: {source}. {hint}")]
    Parse {
        /// The expression.
        expression: String,
        /// The parser's reason.
        #[source]
        source: cronexpr::Error,
        /// What the schedule should look like, for this expression.
        hint: String,
    },
    /// The expression never fires within four years (e.g. `0 0 31 2 *`).
    #[error("schedule {expression:?} never fires within four years after {after}")]
    NeverFires {
        /// The expression.
        expression: String,
        /// The search start.
        after: Timestamp,
        /// The parser's reason, when it gave one.
        #[source]
        source: Option<cronexpr::Error>,
    },
}

/// What a schedule should look like, said for the mistake `expression` most likely is: six cron fields (a
/// seconds or year field, which the parser reads as a timezone), or anything else.
#[must_use]
pub fn hint(expression: &str) -> String {
    const FORM: &str = "Expected 5 fields, minute hour day-of-month month day-of-week, and an optional IANA \
                        timezone, e.g. '0 */6 * * *' (every 6 hours, UTC) or '30 2 * * * Europe/Berlin'; \
                        H picks a stable value per replica ('H H * * *')";
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let cron_like = |t: &str| {
        t.chars()
            .all(|c| c.is_ascii_digit() || "*/,-?LW#H".contains(c))
    };
    match fields.len() {
        6 | 7 if fields[5..].iter().all(|t| cron_like(t)) => format!(
            "{} fields: seconds and year fields are not supported (the sixth token is read as a timezone). {FORM}",
            fields.len()
        ),
        n if n < 5 => format!("only {n} field(s). {FORM}"),
        _ => FORM.to_owned(),
    }
}

/// How far ahead a fire time is searched (the same horizon `cronexpr` uses: leap days recur within it).
const HORIZON: SignedDuration = SignedDuration::from_hours(4 * 366 * 24);

/// A parsed schedule, bound to one replica's identity (for `H`).
#[derive(Debug, Clone)]
pub struct Schedule {
    expression: String,
    crontab: cronexpr::Crontab,
    timezone: TimeZone,
}

impl Schedule {
    /// Parses `expression` for the replica with the given identity (its UID).
    ///
    /// # Errors
    ///
    /// [`ScheduleError::Parse`] with the parser's message.
    pub fn parse(expression: &str, identity: &str) -> Result<Self, ScheduleError> {
        let mut options = cronexpr::ParseOptions::default();
        options.fallback_timezone_option = cronexpr::FallbackTimezoneOption::UTC;
        options.hashed_value = Some(hashed_value(identity));
        let crontab = cronexpr::parse_crontab_with(expression, options).map_err(|source| {
            ScheduleError::Parse {
                expression: expression.to_owned(),
                source,
                hint: hint(expression),
            }
        })?;
        // cronexpr parsed the optional sixth token as the timezone, so it resolves here too.
        let timezone = match expression.split_whitespace().nth(5) {
            Some(name) => TimeZone::get(name).unwrap_or(TimeZone::UTC),
            None => TimeZone::UTC,
        };
        Ok(Self {
            expression: expression.to_owned(),
            crontab,
            timezone,
        })
    }

    /// The first fire time strictly after `after`.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::NeverFires`] when no fire time exists within the parser's four-year horizon.
    pub fn next_fire_after(&self, after: Timestamp) -> Result<Timestamp, ScheduleError> {
        let never = |source| ScheduleError::NeverFires {
            expression: self.expression.clone(),
            after,
            source,
        };
        let failed = |e| never(Some(e));
        let horizon = after.saturating_add(HORIZON).unwrap_or(Timestamp::MAX);
        if !has_sub_hour_transition(&self.timezone, after, horizon) {
            return self
                .crontab
                .find_next(after)
                .map(|zoned| zoned.timestamp())
                .map_err(failed);
        }
        // cronexpr 1.7's `find_next` loops forever around an offset change that is not a whole number of
        // hours (Australia/Lord_Howe's 30-minute DST): rounding a time in the repeated half hour down to the
        // hour resolves to the earlier instant again. `matches` cannot loop, so step minute by minute.
        let minute = SignedDuration::from_mins(1);
        let truncated = after
            .round(
                jiff::TimestampRound::new()
                    .smallest(jiff::Unit::Minute)
                    .mode(jiff::RoundMode::Trunc),
            )
            .unwrap_or(after);
        let mut candidate = truncated.saturating_add(minute).unwrap_or(Timestamp::MAX);
        while candidate <= horizon {
            if self.crontab.matches(candidate).map_err(failed)? {
                return Ok(candidate);
            }
            candidate = candidate.saturating_add(minute).unwrap_or(Timestamp::MAX);
        }
        Err(never(None))
    }

    /// The time between the next two fire times after `now` (the schedule's current period).
    ///
    /// # Errors
    ///
    /// As [`Schedule::next_fire_after`].
    pub fn interval_after(&self, now: Timestamp) -> Result<SignedDuration, ScheduleError> {
        let a = self.next_fire_after(now)?;
        Ok(self.next_fire_after(a)?.duration_since(a))
    }
}

/// Whether the zone's UTC offset changes by something other than whole hours between `from` and `to`.
fn has_sub_hour_transition(timezone: &TimeZone, from: Timestamp, to: Timestamp) -> bool {
    let mut previous = timezone.to_offset(from);
    for transition in timezone.following(from).take_while(|t| t.timestamp() <= to) {
        if (transition.offset().seconds() - previous.seconds()) % 3600 != 0 {
            return true;
        }
        previous = transition.offset();
    }
    false
}

/// The value `H` stands for: a stable 64-bit hash of the replica's identity. `cronexpr` maps it into each
/// field's range, so different replicas spread over the hour (or day) while each keeps its own slot.
#[must_use]
pub fn hashed_value(identity: &str) -> u64 {
    let digest = Sha256::new()
        .chain_update(b"pgro/H\0")
        .chain_update(identity.as_bytes())
        .finalize();
    u64::from_be_bytes(first8(&digest))
}

/// The jitter for one fire time: uniform in [-j/2, +j/2] at millisecond resolution, derived from the
/// identity and the fire time (deterministic, so every reconcile agrees).
#[must_use]
pub fn jitter_offset(identity: &str, fire: Timestamp, jitter: SignedDuration) -> SignedDuration {
    let half = u128::try_from(jitter.as_millis() / 2).unwrap_or(0);
    if half == 0 {
        return SignedDuration::ZERO;
    }
    let digest = Sha256::new()
        .chain_update(b"pgro/jitter\0")
        .chain_update(identity.as_bytes())
        .chain_update(fire.as_millisecond().to_be_bytes())
        .finalize();
    let draw = u128::from(u64::from_be_bytes(first8(&digest))) % (2 * half + 1);
    // draw ∈ [0, 2·half] and half ≤ i64::MAX / 2, so both fit
    let offset = i64::try_from(draw).unwrap_or(0) - i64::try_from(half).unwrap_or(0);
    SignedDuration::from_millis(offset)
}

/// The next scheduled restore after `after` (the previous trigger, or now when there was none): the next
/// fire time plus its jitter, but never at or before `after` — so successive times strictly increase.
///
/// # Errors
///
/// [`ScheduleError::NeverFires`].
pub fn next_scheduled_restore(
    schedule: &Schedule,
    jitter: SignedDuration,
    identity: &str,
    after: Timestamp,
) -> Result<Timestamp, ScheduleError> {
    let fire = schedule.next_fire_after(after)?;
    let jittered = fire
        .saturating_add(jitter_offset(identity, fire, jitter))
        .unwrap_or(fire);
    let floor = after
        .saturating_add(SignedDuration::from_secs(1))
        .unwrap_or(after);
    Ok(jittered.max(floor))
}

/// Hash of the inputs `nextScheduledRestore` was computed from, kept in status: when `schedule` or
/// `scheduleJitter` change, the stored hash no longer matches and the time is recomputed.
#[must_use]
pub fn schedule_hash(schedule: &str, jitter: &str) -> String {
    let digest = Sha256::new()
        .chain_update(schedule.as_bytes())
        .chain_update(b"\0")
        .chain_update(jitter.as_bytes())
        .finalize();
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn first8(digest: &[u8]) -> [u8; 8] {
    let mut out = [0; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

#[cfg(test)]
mod tests;
