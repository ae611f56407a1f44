//! What the first lines of a plain-SQL dump say about it (barman-restic-format.md B1.2, B4): a cluster
//! dump (`pg_dumpall`: roles, tablespaces, `CREATE DATABASE` and `\connect` per database) or one
//! database (`pg_dump`, with `CREATE DATABASE` only under `--create`), and the versions of the server it
//! came from and of the tool that wrote it — which decide the PostgreSQL major the copy runs.

use serde::{Deserialize, Serialize};

/// The PostgreSQL major a dump that names no version runs on: the newest pgro supports.
pub const NEWEST_MAJOR: u32 = 18;

/// How much of a dump is read to find its header: the versions come after the roles and tablespaces
/// of a cluster dump, so a cluster with thousands of roles needs a few MiB.
pub const HEADER_SCAN: usize = 16 << 20;

/// Which tool wrote the dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DumpKind {
    /// `pg_dumpall`: the whole cluster.
    Cluster,
    /// `pg_dump`: one database.
    Database,
}

/// The dump's header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DumpHeader {
    /// Cluster or single-database dump.
    pub kind: DumpKind,
    /// `-- Dumped from database version …` (the source server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dumped_from: Option<String>,
    /// `-- Dumped by pg_dump version …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dumped_by: Option<String>,
    /// A single-database dump creates its database (`pg_dump --create`).
    #[serde(default)]
    pub creates_database: bool,
}

/// Why the bytes are not a dump pgro can replay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// `pg_dump -Fc`/`-Ft`/`-Fd` output.
    #[error(
        "the file is a pg_dump archive (custom, tar or directory format), not plain SQL: pgro replays plain dumps, as KubeStash writes them (no -F flag)"
    )]
    Archive,
    /// gzip, zstd, … around the dump.
    #[error("the file is compressed ({0}); pgro replays plain SQL dumps as KubeStash stores them")]
    Compressed(&'static str),
    /// Neither header line.
    #[error(
        "the file does not start like a pg_dump or pg_dumpall dump (no \"-- PostgreSQL database dump\" or \"-- PostgreSQL database cluster dump\" line near its start)"
    )]
    NotADump,
}

impl DumpHeader {
    /// The PostgreSQL major the copy runs: that of the tool that wrote the dump when newer than the
    /// source server (a psql at least as new as the dump's pg_dump understands its `\restrict` lines,
    /// and a server at least as new as the source loads its objects), else the source's; `None` when
    /// the dump names neither.
    #[must_use]
    pub fn major(&self) -> Option<u32> {
        let from = self.dumped_from.as_deref().and_then(major_of);
        let by = self.dumped_by.as_deref().and_then(major_of);
        match (from, by) {
            (Some(f), Some(b)) => Some(f.max(b)),
            (f, b) => f.or(b),
        }
    }
}

/// The major of a version string: `15.18 (Debian 15.18-0+deb12u1)` → 15, `18beta1` → 18, `9.6.24` → 9.
#[must_use]
pub fn major_of(version: &str) -> Option<u32> {
    let digits: String = version
        .trim()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Reads the header from the dump's first bytes (up to [`HEADER_SCAN`]; a truncated last line is
/// ignored).
///
/// # Errors
/// Not a plain SQL dump.
pub fn parse(prefix: &[u8]) -> Result<DumpHeader, HeaderError> {
    if prefix.starts_with(b"PGDMP") {
        return Err(HeaderError::Archive);
    }
    for (magic, name) in [
        (&[0x1f, 0x8b][..], "gzip"),
        (&[0x28, 0xb5, 0x2f, 0xfd][..], "zstd"),
        (&b"BZh"[..], "bzip2"),
        (&[0x04, 0x22, 0x4d, 0x18][..], "lz4"),
        (&[0xfd, b'7', b'z', b'X', b'Z'][..], "xz"),
    ] {
        if prefix.starts_with(magic) {
            return Err(HeaderError::Compressed(name));
        }
    }
    let mut kind = None;
    let mut header = DumpHeader {
        kind: DumpKind::Database,
        dumped_from: None,
        dumped_by: None,
        creates_database: false,
    };
    // Only whole lines: the last one may be cut by the scan limit.
    let whole = match prefix.iter().rposition(|&b| b == b'\n') {
        Some(i) => &prefix[..=i],
        None => prefix,
    };
    for (n, raw) in whole.split(|&b| b == b'\n').enumerate() {
        let line = String::from_utf8_lossy(raw);
        let line = line.trim_end_matches('\r');
        if kind.is_none() {
            if line == "-- PostgreSQL database cluster dump" {
                kind = Some(DumpKind::Cluster);
            } else if line == "-- PostgreSQL database dump" {
                kind = Some(DumpKind::Database);
            } else if n > 20 {
                return Err(HeaderError::NotADump);
            }
            continue;
        }
        if let Some(v) = line.strip_prefix("-- Dumped from database version ") {
            header.dumped_from.get_or_insert_with(|| v.to_owned());
        } else if let Some(v) = line
            .strip_prefix("-- Dumped by pg_dump version ")
            .or_else(|| line.strip_prefix("-- Dumped by pg_dumpall version "))
        {
            header.dumped_by.get_or_insert_with(|| v.to_owned());
        } else if kind == Some(DumpKind::Database) && line.starts_with("CREATE DATABASE ") {
            header.creates_database = true;
        }
        let versions = header.dumped_from.is_some() && header.dumped_by.is_some();
        // A single-database dump's CREATE DATABASE comes right after its SET lines.
        if versions && (kind == Some(DumpKind::Cluster) || line.starts_with("CREATE TABLE")) {
            break;
        }
    }
    header.kind = kind.ok_or(HeaderError::NotADump)?;
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = "--\n-- PostgreSQL database cluster dump\n--\n\n\\restrict abc\n\nSET default_transaction_read_only = off;\n\nCREATE ROLE app;\n\n--\n-- Database \"template1\" dump\n--\n\n\\connect template1\n\n--\n-- PostgreSQL database dump\n--\n\n\\restrict def\n\n-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)\n-- Dumped by pg_dump version 17.6\n\nSET statement_timeout = 0;\n";

    #[test]
    fn a_cluster_dump_runs_on_the_newer_of_its_two_majors() {
        let h = parse(CLUSTER.as_bytes()).expect("parses");
        assert_eq!(h.kind, DumpKind::Cluster);
        assert_eq!(
            h.dumped_from.as_deref(),
            Some("15.18 (Debian 15.18-0+deb12u1)")
        );
        assert_eq!(h.major(), Some(17));
    }

    #[test]
    fn a_database_dump_and_its_create_flag() {
        let plain = "--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version 16.4\n-- Dumped by pg_dump version 16.4\n\nSET x = 1;\nCREATE TABLE t (i int);\n";
        let h = parse(plain.as_bytes()).expect("parses");
        assert_eq!(
            (h.kind, h.major(), h.creates_database),
            (DumpKind::Database, Some(16), false)
        );
        let created = plain.replace(
            "SET x = 1;",
            "CREATE DATABASE demo WITH TEMPLATE = template0;",
        );
        assert!(parse(created.as_bytes()).expect("parses").creates_database);
    }

    #[test]
    fn what_is_not_a_plain_dump_is_named() {
        assert_eq!(parse(b"PGDMP\x01\x0e"), Err(HeaderError::Archive));
        assert_eq!(
            parse(&[0x1f, 0x8b, 8, 0]),
            Err(HeaderError::Compressed("gzip"))
        );
        assert_eq!(parse(b"hello\nworld\n"), Err(HeaderError::NotADump));
        let long = "x\n".repeat(40) + "-- PostgreSQL database dump\n";
        assert_eq!(parse(long.as_bytes()), Err(HeaderError::NotADump));
        // No versions (an old or edited dump): the major is left to the caller.
        let bare = parse(b"-- PostgreSQL database dump\nSET a = 1;\n").expect("parses");
        assert_eq!(bare.major(), None);
        assert_eq!(major_of("18beta1"), Some(18));
        assert_eq!(major_of("9.6.24"), Some(9));
    }
}
