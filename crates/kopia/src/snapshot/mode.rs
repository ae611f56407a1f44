//! Go `os.FileMode` values as stored in directory entries (`"mode": "0755"`, octal with base
//! auto-detection when parsing, kopia `snapshot.Permissions`).

use std::fmt;

/// Go `os.ModeSetuid`.
const GO_SETUID: u32 = 1 << 23;
/// Go `os.ModeSetgid`.
const GO_SETGID: u32 = 1 << 22;
/// Go `os.ModeSticky`.
const GO_STICKY: u32 = 1 << 20;

/// File mode bits in Go's `os.FileMode` layout.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FileMode(pub u32);

impl FileMode {
    /// Whether no bits are set (the field is then omitted).
    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }

    /// The POSIX mode: permission bits plus setuid/setgid/sticky mapped to 04000/02000/01000.
    pub fn to_posix(self) -> u32 {
        let mut m = self.0 & 0o777;
        if self.0 & GO_SETUID != 0 {
            m |= 0o4000;
        }
        if self.0 & GO_SETGID != 0 {
            m |= 0o2000;
        }
        if self.0 & GO_STICKY != 0 {
            m |= 0o1000;
        }
        m
    }

    /// Parses like Go `strconv.ParseInt(s, 0, 32)`: `0x`/`0o`/`0b`/leading-`0` prefixes.
    pub fn parse(s: &str) -> Option<Self> {
        let (neg, body) = match s.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let body = body.replace('_', "");
        let lower = body.to_ascii_lowercase();
        let v = if let Some(h) = lower.strip_prefix("0x") {
            i64::from_str_radix(h, 16).ok()?
        } else if let Some(o) = lower.strip_prefix("0o") {
            i64::from_str_radix(o, 8).ok()?
        } else if let Some(b) = lower.strip_prefix("0b") {
            i64::from_str_radix(b, 2).ok()?
        } else if lower.len() > 1 && lower.starts_with('0') {
            i64::from_str_radix(&lower[1..], 8).ok()?
        } else {
            lower.parse::<i64>().ok()?
        };
        let v = if neg { -v } else { v };
        let v = i32::try_from(v).ok()?;
        Some(Self(v as u32))
    }
}

impl fmt::Debug for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileMode(0{:o})", self.0)
    }
}

impl serde::Serialize for FileMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Go: "0" + strconv.FormatInt(int64(p), 8). Permissions is a uint32-based type whose
        // JSON value always comes from a non-negative int32, so the u32 prints identically.
        s.collect_str(&format_args!("0{:o}", self.0))
    }
}

impl<'de> serde::Deserialize<'de> for FileMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| serde::de::Error::custom(format_args!("invalid mode {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_special_bits_map_to_posix() {
        assert_eq!(FileMode::parse("04000777").unwrap().to_posix(), 0o1777);
        assert_eq!(FileMode::parse("040000755").unwrap().to_posix(), 0o4755);
        assert_eq!(FileMode::parse("020000750").unwrap().to_posix(), 0o2750);
        assert_eq!(FileMode::parse("0644").unwrap().to_posix(), 0o644);
        assert_eq!(FileMode::parse("420").unwrap().to_posix(), 0o644);
        assert_eq!(FileMode::parse("0x1ed").unwrap().to_posix(), 0o755);
        assert!(FileMode::parse("09").is_none());
        assert_eq!(serde_json::to_string(&FileMode(0o755)).unwrap(), "\"0755\"");
    }
}
