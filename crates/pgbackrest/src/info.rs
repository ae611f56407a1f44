//! `backup/<stanza>/backup.info` and `archive/<stanza>/archive.info` (pgbackrest-format.md §2.5, §2.6), decoded
//! from a verified [`Ini`].

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::ini::Ini;

/// Full, differential or incremental.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackupType {
    /// A full backup.
    Full,
    /// Changes since the last full.
    Diff,
    /// Changes since the previous backup.
    Incr,
}

impl BackupType {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "full" => Self::Full,
            "diff" => Self::Diff,
            "incr" => Self::Incr,
            _ => return None,
        })
    }

    /// `full`, `diff` or `incr`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Diff => "diff",
            Self::Incr => "incr",
        }
    }
}

/// One entry of `[backup:current]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupEntry {
    /// The label (`20261205-230558F_20261205-230616I`).
    pub label: String,
    /// Full, diff or incr.
    pub kind: BackupType,
    /// The backup it is based on.
    pub prior: Option<String>,
    /// Start and stop, Unix seconds.
    pub timestamp_start: i64,
    /// Stop, Unix seconds: the time of the newest data the backup alone makes consistent.
    pub timestamp_stop: i64,
    /// First WAL segment needed for consistency.
    pub archive_start: Option<String>,
    /// Last WAL segment needed for consistency.
    pub archive_stop: Option<String>,
    /// LSN at the start (`0/2000028`).
    pub lsn_start: Option<String>,
    /// LSN at the stop.
    pub lsn_stop: Option<String>,
    /// Database bytes (what a restore writes).
    pub size: u64,
    /// Bytes in the repository for the whole set.
    pub repo_size: u64,
    /// `[db:history]` id the backup belongs to.
    pub db_id: u32,
    /// User annotations (`--annotation`).
    pub annotations: BTreeMap<String, String>,
    /// pgBackRest version that wrote it.
    pub writer_version: String,
    /// Whether the backup was taken online (offline backups need no WAL).
    pub online: bool,
}

/// A `[db:history]` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbHistory {
    /// History id (the `N` of archive id `<version>-N`).
    pub id: u32,
    /// PostgreSQL system identifier.
    pub system_id: u64,
    /// PostgreSQL version (`"15"`, `"9.6"`).
    pub version: String,
}

/// `backup.info`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupInfo {
    /// Sub-passphrase of the manifests (encrypted repositories).
    pub cipher_pass: Option<String>,
    /// Current `[db]`.
    pub db: DbHistory,
    /// `[db:history]`, by id.
    pub history: Vec<DbHistory>,
    /// `[backup:current]`, oldest first.
    pub backups: Vec<BackupEntry>,
}

/// `archive.info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveInfo {
    /// Sub-passphrase of everything in the archive (encrypted repositories).
    pub cipher_pass: Option<String>,
    /// Current `[db]`.
    pub db: DbHistory,
    /// `[db:history]`, by id.
    pub history: Vec<DbHistory>,
}

impl ArchiveInfo {
    /// Archive ids (`15-1`) of the history entries matching a cluster's system id and version, newest
    /// first: where its WAL may be.
    #[must_use]
    pub fn archive_ids_for(&self, system_id: u64, version: &str) -> Vec<String> {
        let mut ids: Vec<&DbHistory> = self
            .history
            .iter()
            .filter(|h| h.system_id == system_id && h.version == version)
            .collect();
        ids.sort_by_key(|h| std::cmp::Reverse(h.id));
        ids.into_iter()
            .map(|h| format!("{}-{}", h.version, h.id))
            .collect()
    }
}

#[derive(Deserialize)]
struct EntryJson {
    #[serde(rename = "backrest-version", default)]
    backrest_version: String,
    #[serde(rename = "backup-type")]
    backup_type: String,
    #[serde(rename = "backup-prior")]
    prior: Option<String>,
    #[serde(rename = "backup-timestamp-start")]
    timestamp_start: i64,
    #[serde(rename = "backup-timestamp-stop")]
    timestamp_stop: i64,
    #[serde(rename = "backup-archive-start")]
    archive_start: Option<String>,
    #[serde(rename = "backup-archive-stop")]
    archive_stop: Option<String>,
    #[serde(rename = "backup-lsn-start")]
    lsn_start: Option<String>,
    #[serde(rename = "backup-lsn-stop")]
    lsn_stop: Option<String>,
    #[serde(rename = "backup-info-size", default)]
    size: u64,
    #[serde(rename = "backup-info-repo-size", default)]
    repo_size: u64,
    #[serde(rename = "db-id")]
    db_id: u32,
    #[serde(rename = "backup-annotation", default)]
    annotations: BTreeMap<String, String>,
    #[serde(rename = "option-online", default = "yes")]
    online: bool,
}

fn yes() -> bool {
    true
}

/// `[db:history]` values: `archive.info` names the system id `db-id` (a typo pgBackRest keeps).
#[derive(Deserialize)]
struct HistoryJson {
    #[serde(rename = "db-system-id")]
    system_id: Option<u64>,
    #[serde(rename = "db-id")]
    archive_system_id: Option<u64>,
    #[serde(rename = "db-version")]
    version: String,
}

fn db(ini: &Ini) -> Result<DbHistory, String> {
    Ok(DbHistory {
        id: ini.get_json("db", "db-id")?.ok_or("no [db] db-id")?,
        system_id: ini
            .get_json("db", "db-system-id")?
            .ok_or("no [db] db-system-id")?,
        version: ini
            .get_json("db", "db-version")?
            .ok_or("no [db] db-version")?,
    })
}

fn history(ini: &Ini, archive: bool) -> Result<Vec<DbHistory>, String> {
    let mut out = Vec::new();
    for (k, v) in ini.section("db:history") {
        let id = k
            .parse()
            .map_err(|_| format!("[db:history] key {k:?} is not a number"))?;
        let h: HistoryJson =
            serde_json::from_str(v).map_err(|e| format!("[db:history] {k}: {e}"))?;
        let system_id = if archive {
            h.archive_system_id
        } else {
            h.system_id
        };
        out.push(DbHistory {
            id,
            system_id: system_id.ok_or_else(|| format!("[db:history] {k}: no system id"))?,
            version: h.version,
        });
    }
    out.sort_by_key(|h| h.id);
    Ok(out)
}

fn cipher_pass(ini: &Ini) -> Result<Option<String>, String> {
    ini.get_json("cipher", "cipher-pass")
}

/// Decodes a verified `backup.info`.
///
/// # Errors
/// A required key is missing or has the wrong type.
pub(crate) fn backup_info(ini: &Ini) -> Result<BackupInfo, String> {
    let mut backups = Vec::new();
    for (label, v) in ini.section("backup:current") {
        if !crate::label::is_label(label) {
            return Err(format!("[backup:current] {label:?} is not a backup label"));
        }
        let e: EntryJson =
            serde_json::from_str(v).map_err(|e| format!("[backup:current] {label}: {e}"))?;
        backups.push(BackupEntry {
            label: label.to_owned(),
            kind: BackupType::parse(&e.backup_type)
                .ok_or_else(|| format!("{label}: backup type {:?}", e.backup_type))?,
            prior: e.prior,
            timestamp_start: e.timestamp_start,
            timestamp_stop: e.timestamp_stop,
            archive_start: e.archive_start,
            archive_stop: e.archive_stop,
            lsn_start: e.lsn_start,
            lsn_stop: e.lsn_stop,
            size: e.size,
            repo_size: e.repo_size,
            db_id: e.db_id,
            annotations: e.annotations,
            writer_version: e.backrest_version,
            online: e.online,
        });
    }
    backups.sort_by(|a, b| a.label.cmp(&b.label));
    Ok(BackupInfo {
        cipher_pass: cipher_pass(ini)?,
        db: db(ini)?,
        history: history(ini, false)?,
        backups,
    })
}

/// Decodes a verified `archive.info`.
///
/// # Errors
/// A required key is missing or has the wrong type.
pub(crate) fn archive_info(ini: &Ini) -> Result<ArchiveInfo, String> {
    Ok(ArchiveInfo {
        cipher_pass: cipher_pass(ini)?,
        db: db(ini)?,
        history: history(ini, true)?,
    })
}

#[cfg(test)]
mod tests;
