//! `shared_buffers` from the container's memory limit (cgroup v2 `memory.max`, or v1
//! `memory.limit_in_bytes`): a quarter of it, PostgreSQL's usual recommendation for a dedicated server.

use std::path::Path;

/// Parses a cgroup memory limit file's content: `None` for no limit (`max`, or v1's huge sentinel).
pub(crate) fn parse_limit(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return None;
    }
    // cgroup v1 reports "no limit" as a page-aligned value near i64::MAX.
    t.parse::<u64>()
        .ok()
        .filter(|v| *v > 0 && *v < (1u64 << 62))
}

/// A quarter of the limit, in whole 8 kB pages, at least 128 kB (PostgreSQL's minimum is 16 buffers).
pub(crate) fn shared_buffers_for(limit: u64) -> u64 {
    let quarter = limit / 4;
    (quarter / 8192 * 8192).max(128 * 1024)
}

/// Reads the limit of the cgroup this process is in, under `root` (normally `/sys/fs/cgroup`).
pub(crate) fn read_limit(root: &Path) -> Option<u64> {
    let v2 = root.join("memory.max");
    let v1 = root.join("memory/memory.limit_in_bytes");
    [v2, v1]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| parse_limit(&t))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_and_unlimited_is_none() {
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        assert_eq!(parse_limit("1073741824\n"), Some(1 << 30));
        assert_eq!(parse_limit("garbage"), None);
    }

    #[test]
    fn shared_buffers_is_a_page_aligned_quarter_with_a_floor() {
        assert_eq!(shared_buffers_for(1 << 30), 256 << 20);
        assert_eq!(shared_buffers_for(1_000_000_001) % 8192, 0);
        assert_eq!(shared_buffers_for(4096), 128 * 1024);
    }

    #[test]
    fn read_limit_prefers_cgroup_v2() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read_limit(d.path()), None);
        std::fs::create_dir(d.path().join("memory")).unwrap();
        std::fs::write(
            d.path().join("memory/memory.limit_in_bytes"),
            "2147483648\n",
        )
        .unwrap();
        assert_eq!(read_limit(d.path()), Some(2 << 30));
        std::fs::write(d.path().join("memory.max"), "1073741824\n").unwrap();
        assert_eq!(read_limit(d.path()), Some(1 << 30));
    }
}
