//! Durations in the spec (`scheduleJitter`, `minimumTtl`, `switchoverGracePeriod`).
//!
//! The apiserver admits exactly [`pgro_api::DURATION_PATTERN`]: `0`, or terms `<number>[.<fraction>] <unit>`
//! with optional spaces. This parser reads that grammar and nothing else, in integer nanoseconds, so every
//! admitted value parses to the sum of its terms (`humantime` 2.2, used before, overflows on fractions such
//! as `0.001d`; a property test found it).

use jiff::SignedDuration;

/// A duration field that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{field} {value:?} is not a duration such as 90s, 5m or 1h 30m")]
pub struct DurationError {
    /// The spec field.
    pub field: &'static str,
    /// The rejected value.
    pub value: String,
    /// Why.
    #[source]
    pub source: Reason,
}

/// What is wrong with a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// A term lacks its number.
    #[error("expected a number at byte {0}")]
    Number(usize),
    /// A term's unit is missing or unknown.
    #[error("unknown unit {0:?}")]
    Unit(String),
    /// The total does not fit.
    #[error("too long")]
    Overflow,
}

/// Nanoseconds per unit, by every name the admission pattern accepts.
fn unit_nanos(unit: &str) -> Option<u128> {
    const S: u128 = 1_000_000_000;
    Some(match unit {
        "ns" | "nsec" => 1,
        "us" | "usec" => 1_000,
        "ms" | "msec" | "millis" => 1_000_000,
        "s" | "sec" | "secs" | "second" | "seconds" => S,
        "m" | "min" | "mins" | "minute" | "minutes" => 60 * S,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600 * S,
        "d" | "day" | "days" => 86_400 * S,
        "w" | "wk" | "wks" | "week" | "weeks" => 604_800 * S,
        _ => return None,
    })
}

fn parse_nanos(text: &str) -> Result<u128, Reason> {
    if text.trim() == "0" {
        return Ok(0);
    }
    let b = text.as_bytes();
    let mut i = 0;
    let mut total: u128 = 0;
    let skip_space = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    skip_space(&mut i);
    if i == b.len() {
        return Err(Reason::Number(i));
    }
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(Reason::Number(i));
        }
        let whole: u128 = text[start..i].parse().map_err(|_| Reason::Overflow)?;
        let mut frac = (0u128, 1u128);
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let fs = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == fs {
                return Err(Reason::Number(i));
            }
            // Digits past nanosecond precision of a week cannot change the result; keep 24.
            let digits = &text[fs..i.min(fs + 24)];
            frac = (
                digits.parse().map_err(|_| Reason::Overflow)?,
                10u128.pow(u32::try_from(digits.len()).unwrap_or(24)),
            );
        }
        skip_space(&mut i);
        let us = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &text[us..i];
        let scale = unit_nanos(unit).ok_or_else(|| Reason::Unit(unit.to_owned()))?;
        let term = whole
            .checked_mul(scale)
            .and_then(|w| w.checked_add(frac.0 * scale / frac.1))
            .ok_or(Reason::Overflow)?;
        total = total.checked_add(term).ok_or(Reason::Overflow)?;
        skip_space(&mut i);
    }
    Ok(total)
}

/// Parses a spec duration.
///
/// # Errors
///
/// [`DurationError`] naming the field when the value does not follow the admitted grammar or overflows.
pub fn parse(field: &'static str, value: &str) -> Result<SignedDuration, DurationError> {
    let err = |source| DurationError {
        field,
        value: value.to_owned(),
        source,
    };
    let nanos = parse_nanos(value).map_err(err)?;
    let secs = i64::try_from(nanos / 1_000_000_000).map_err(|_| err(Reason::Overflow))?;
    let sub = i32::try_from(nanos % 1_000_000_000).map_err(|_| err(Reason::Overflow))?;
    Ok(SignedDuration::new(secs, sub))
}

#[cfg(test)]
mod tests;
