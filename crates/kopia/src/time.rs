//! Kopia timestamps: int64 nanoseconds since the Unix epoch, serialised as Go's RFC 3339 with
//! nanoseconds and trailing zeros trimmed (`time.RFC3339Nano` in UTC), as kopia's `fs.UTCTimestamp`.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Datelike, Timelike, Utc};

/// Nanoseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch (kopia's "zero" timestamp, omitted from `mtime`).
    pub const ZERO: Self = Self(0);

    /// From nanoseconds since the epoch.
    pub const fn from_nanos(ns: i64) -> Self {
        Self(ns)
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (floor).
    pub const fn as_secs(self) -> i64 {
        self.0.div_euclid(1_000_000_000)
    }

    /// Whether this is the epoch.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// As a `SystemTime`.
    pub fn to_system_time(self) -> SystemTime {
        let ns = self.0;
        if ns >= 0 {
            UNIX_EPOCH + Duration::from_nanos(ns.unsigned_abs())
        } else {
            UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
        }
    }

    /// From a `SystemTime` (saturating outside the representable range).
    pub fn from_system_time(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Self(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
            Err(e) => Self(
                i64::try_from(e.duration().as_nanos())
                    .map(|v| -v)
                    .unwrap_or(i64::MIN),
            ),
        }
    }

    /// Parses RFC 3339 with any offset, as Go's `time.Time.UnmarshalJSON`.
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let dt = DateTime::parse_from_rfc3339(s).ok()?;
        dt.timestamp_nanos_opt().map(Self)
    }
}

impl fmt::Display for Timestamp {
    /// Go `time.RFC3339Nano` in UTC.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dt: DateTime<Utc> = DateTime::from_timestamp_nanos(self.0);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        )?;
        let nanos = dt.nanosecond() % 1_000_000_000;
        if nanos != 0 {
            let frac = format!("{nanos:09}");
            write!(f, ".{}", frac.trim_end_matches('0'))?;
        }
        f.write_str("Z")
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom(format_args!("invalid RFC 3339 time {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_formats_like_go_rfc3339nano() {
        let t = Timestamp::parse_rfc3339("2023-03-16T20:46:59.70714Z").unwrap();
        assert_eq!(t.to_string(), "2023-03-16T20:46:59.70714Z");
        assert_eq!(Timestamp::ZERO.to_string(), "1970-01-01T00:00:00Z");
        let t = Timestamp::parse_rfc3339("2023-03-16T22:46:59.000000001+02:00").unwrap();
        assert_eq!(t.to_string(), "2023-03-16T20:46:59.000000001Z");
        assert!(Timestamp::parse_rfc3339("yesterday").is_none());
    }

    #[test]
    fn negative_timestamp_formats_before_epoch() {
        let t = Timestamp::from_nanos(-1_500_000_000);
        assert_eq!(t.to_string(), "1969-12-31T23:59:58.5Z");
        assert_eq!(t.as_secs(), -2);
    }
}
