//! `base/<backup_id>/backup.info` (barman-restic-format.md A3): `key=value` lines, split on the first
//! `=`, both sides trimmed, blank and `#` lines skipped, `None` for null. Unknown keys are ignored and
//! missing keys are null — barman adds keys over time, and a reader that refused them would stop reading
//! the stores of a newer barman. Only the keys a restore and a listing need are decoded; a malformed value
//! of one of them is an error naming the key.

use std::collections::BTreeMap;

use crate::pylit::{self, Value};

/// `status`: barman-cloud writes `STARTED`, then `DONE` or `FAILED`; the others exist in barman.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupStatus {
    /// Upload finished, `backup.info` rewritten: the only status pgro restores.
    Done,
    /// Being uploaded — or abandoned by a killed uploader (only its age tells).
    Started,
    /// The upload failed (`error` says why).
    Failed,
    /// Any other status barman knows (`EMPTY`, `WAITING_FOR_WALS`, `SYNCING`, …), kept as written.
    Other(String),
}

/// A user tablespace of the backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tablespace {
    /// Name.
    pub name: String,
    /// OID (its tar is `<oid>.tar[.ext]`).
    pub oid: u32,
    /// Its location on the source.
    pub location: String,
}

/// What pgro reads from a `backup.info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// `status`.
    pub status: BackupStatus,
    /// `backup_name` (CNPG: `backup-<timestamp>`); absent until the final write.
    pub name: Option<String>,
    /// `begin_time`.
    pub begin_time: Option<jiff::Timestamp>,
    /// `end_time` (`pg_backup_stop`, not the end of the upload).
    pub end_time: Option<jiff::Timestamp>,
    /// `begin_wal`: the segment of the start (redo) LSN — the first WAL a restore needs.
    pub begin_wal: Option<String>,
    /// `end_wal`.
    pub end_wal: Option<String>,
    /// `end_xlog`: the LSN where the copy becomes consistent.
    pub end_xlog: Option<String>,
    /// `timeline`.
    pub timeline: Option<u32>,
    /// `systemid` (decimal u64).
    pub system_id: Option<u64>,
    /// `version` (`server_version_num`, e.g. 150018).
    pub version: Option<u32>,
    /// `xlog_segment_size`.
    pub segment_size: Option<u64>,
    /// `tablespaces`.
    pub tablespaces: Vec<Tablespace>,
    /// `backup_label`: the text `pg_backup_stop` returned.
    pub backup_label: Option<String>,
    /// `error` of a failed backup.
    pub error: Option<String>,
    /// `snapshots_info` present: a volume-snapshot backup, with no tars in the store.
    pub snapshot_backup: bool,
    /// `size`: the data's size (barman-cloud leaves it `None`).
    pub size: Option<u64>,
}

/// A `backup.info` that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfoError {
    /// A line without `=`.
    #[error("line {line} is not key=value: {text:?}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// The line (cut to 80 characters).
        text: String,
    },
    /// A known key with a value of the wrong shape.
    #[error("{key}: {detail}")]
    Value {
        /// The key.
        key: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// No `status` line: not a `backup.info`.
    #[error("no status line: not a barman backup.info")]
    NoStatus,
}

impl BackupInfo {
    /// Parses the text of a `backup.info`.
    ///
    /// # Errors
    /// A line is not `key=value`, a known key's value is malformed, or there is no `status`.
    pub fn parse(text: &str) -> Result<Self, InfoError> {
        let mut kv: BTreeMap<&str, &str> = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let Some((k, v)) = t.split_once('=') else {
                return Err(InfoError::Syntax {
                    line: n + 1,
                    text: t.chars().take(80).collect(),
                });
            };
            kv.insert(k.trim(), v.trim());
        }
        let get = |k: &str| kv.get(k).copied().filter(|v| *v != "None");
        let status = match get("status").ok_or(InfoError::NoStatus)? {
            "DONE" => BackupStatus::Done,
            "STARTED" => BackupStatus::Started,
            "FAILED" => BackupStatus::Failed,
            s => BackupStatus::Other(s.to_owned()),
        };
        Ok(Self {
            status,
            name: get("backup_name").map(str::to_owned),
            begin_time: get("begin_time")
                .map(|v| time("begin_time", v))
                .transpose()?,
            end_time: get("end_time").map(|v| time("end_time", v)).transpose()?,
            begin_wal: get("begin_wal")
                .map(|v| segment("begin_wal", v))
                .transpose()?,
            end_wal: get("end_wal").map(|v| segment("end_wal", v)).transpose()?,
            end_xlog: get("end_xlog").map(str::to_owned),
            timeline: get("timeline").map(|v| number("timeline", v)).transpose()?,
            system_id: get("systemid").map(|v| number("systemid", v)).transpose()?,
            version: get("version").map(|v| number("version", v)).transpose()?,
            segment_size: get("xlog_segment_size")
                .map(|v| number("xlog_segment_size", v))
                .transpose()?,
            tablespaces: get("tablespaces")
                .map(tablespaces)
                .transpose()?
                .unwrap_or_default(),
            backup_label: get("backup_label")
                .map(|v| match pylit::parse(v) {
                    Ok(Value::Str(s)) => Ok(s),
                    Ok(_) => Err(bad("backup_label", "not a string")),
                    Err(e) => Err(bad("backup_label", e)),
                })
                .transpose()?,
            error: get("error").map(str::to_owned),
            snapshot_backup: get("snapshots_info").is_some(),
            size: get("size").map(|v| number("size", v)).transpose()?,
        })
    }

    /// Whether a restore may use it: `DONE` with the WAL range and end time set (barman-restic-format.md
    /// A3.3, the reader rule).
    #[must_use]
    pub fn restorable(&self) -> bool {
        self.status == BackupStatus::Done
            && self.begin_wal.is_some()
            && self.end_wal.is_some()
            && self.end_xlog.is_some()
            && self.end_time.is_some()
    }

    /// The PostgreSQL major (`version` 150018 → 15).
    #[must_use]
    pub fn major(&self) -> Option<u32> {
        self.version.map(|v| v / 10_000)
    }
}

fn bad(key: &'static str, detail: impl std::fmt::Display) -> InfoError {
    InfoError::Value {
        key,
        detail: detail.to_string(),
    }
}

fn number<T: std::str::FromStr>(key: &'static str, v: &str) -> Result<T, InfoError> {
    v.parse()
        .map_err(|_| bad(key, format!("{v:?} is not a number")))
}

/// Python's `str(datetime)`: `2026-12-05 23:10:20.119264+00:00`, the fraction absent when zero; very old
/// files have no offset (taken as UTC).
fn time(key: &'static str, v: &str) -> Result<jiff::Timestamp, InfoError> {
    let iso = v.replacen(' ', "T", 1);
    if let Ok(t) = iso.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    iso.parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| bad(key, format!("{v:?} is not a date and time")))
}

fn segment(key: &'static str, v: &str) -> Result<String, InfoError> {
    if v.len() == 24 && v.bytes().all(|c| c.is_ascii_hexdigit()) {
        Ok(v.to_ascii_uppercase())
    } else {
        Err(bad(key, format!("{v:?} is not a WAL segment name")))
    }
}

/// `[('ts1', 16384, '/path'), …]`.
fn tablespaces(v: &str) -> Result<Vec<Tablespace>, InfoError> {
    let key = "tablespaces";
    let Value::List(items) = pylit::parse(v).map_err(|e| bad(key, e))? else {
        return Err(bad(key, "not a list"));
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::List(t) => match t.as_slice() {
                [Value::Str(name), Value::Int(oid), Value::Str(location), ..] => Ok(Tablespace {
                    name: name.clone(),
                    oid: u32::try_from(*oid).map_err(|_| bad(key, format!("OID {oid}")))?,
                    location: location.clone(),
                }),
                _ => Err(bad(key, "an entry is not (name, oid, location)")),
            },
            _ => Err(bad(key, "an entry is not a tuple")),
        })
        .collect()
}

#[cfg(test)]
mod tests;
