//! Names pgBackRest gives things: backup labels (§1.3) and WAL file names (§1.5), checked by hand because
//! each is a fixed pattern of digits and hex.

/// `YYYYMMDD-HHMMSSF`, optionally followed by `_YYYYMMDD-HHMMSS` and `D` or `I`.
#[must_use]
pub fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    let stamp = |b: &[u8]| {
        b.len() == 15
            && b[..8].iter().all(u8::is_ascii_digit)
            && b[8] == b'-'
            && b[9..].iter().all(u8::is_ascii_digit)
    };
    match b.len() {
        16 => stamp(&b[..15]) && b[15] == b'F',
        33 => {
            stamp(&b[..15])
                && b[15] == b'F'
                && b[16] == b'_'
                && stamp(&b[17..32])
                && matches!(b[32], b'D' | b'I')
        }
        _ => false,
    }
}

/// 24 upper-case hex digits: a WAL segment name.
#[must_use]
pub fn is_segment(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'A'..=b'F'))
}

/// `<8 hex>.history`: a timeline history file.
#[must_use]
pub fn is_history(s: &str) -> bool {
    s.strip_suffix(".history")
        .is_some_and(|t| t.len() == 8 && t.bytes().all(|c| matches!(c, b'0'..=b'9' | b'A'..=b'F')))
}

/// `<segment>.<8 hex>.backup`: a backup history file.
#[must_use]
pub fn is_backup_history(s: &str) -> bool {
    s.strip_suffix(".backup").is_some_and(|t| {
        t.len() == 33
            && is_segment(&t[..24])
            && t.as_bytes()[24] == b'.'
            && t[25..]
                .bytes()
                .all(|c| matches!(c, b'0'..=b'9' | b'A'..=b'F'))
    })
}

/// 40 lower-case hex digits: a SHA-1 as pgBackRest writes it.
#[must_use]
pub fn is_sha1(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert!(is_label("20261205-230558F"));
        assert!(is_label("20261205-230558F_20261205-230616I"));
        assert!(is_label("20261205-230558F_20261205-230610D"));
        for bad in [
            "20261205-230558I",
            "20261205-230558F_20261205-230616F",
            "2026120-230558F",
            "../x",
            "",
        ] {
            assert!(!is_label(bad), "{bad}");
        }
    }

    #[test]
    fn wal_names() {
        assert!(is_segment("000000010000000000000003"));
        assert!(!is_segment("00000001000000000000000g"));
        assert!(is_history("00000002.history"));
        assert!(is_backup_history(
            "000000010000000000000002.00000028.backup"
        ));
        assert!(!is_backup_history("000000010000000000000002.backup"));
        assert!(is_sha1("55f6ffc7fb47b38102760467ac4609d4c6df623b"));
    }
}
