//! Durations in the spec (`scheduleJitter`, `minimumTtl`, `switchoverGracePeriod`).
//!
//! The apiserver admits exactly [`pgro_api::DURATION_PATTERN`]; the `humantime` crate parses a superset of
//! that language (the tests prove every admitted form parses to the intended value).

use jiff::SignedDuration;

/// A duration field that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{field} {value:?} is not a duration such as 90s, 5m or 1h 30m")]
pub struct DurationError {
    /// The spec field.
    pub field: &'static str,
    /// The rejected value.
    pub value: String,
    /// The parser's reason.
    #[source]
    pub source: humantime::DurationError,
}

/// Parses a spec duration.
///
/// # Errors
///
/// [`DurationError`] naming the field when the value does not parse or overflows.
pub fn parse(field: &'static str, value: &str) -> Result<SignedDuration, DurationError> {
    let err = |source| DurationError {
        field,
        value: value.to_owned(),
        source,
    };
    let std = humantime::parse_duration(value).map_err(err)?;
    SignedDuration::try_from(std).map_err(|_| err(humantime::DurationError::NumberOverflow))
}

#[cfg(test)]
mod tests;
