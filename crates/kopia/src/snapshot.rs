//! Snapshot manifests and directory listings (kopia `snapshot`, `fs`), with JSON shaped exactly
//! like kopia's (field order, `omitempty`, RFC 3339 nanosecond timestamps).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Corruption, Error, Unsupported};
use crate::ids::{ManifestId, ObjectId};
use crate::repository::{Indexed, Repository};
use crate::time::Timestamp;

mod mode;

pub use mode::FileMode;

fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}
fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}
fn is_zero_ts(v: &Timestamp) -> bool {
    v.is_zero()
}

/// Where a snapshot came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SourceInfo {
    /// Host name.
    pub host: String,
    /// User name.
    #[serde(rename = "userName")]
    pub user_name: String,
    /// Path.
    pub path: String,
}

impl std::fmt::Display for SourceInfo {
    /// Kopia `SourceInfo.String()`: `user@host:path`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}:{}", self.user_name, self.host, self.path)
    }
}

/// Snapshot statistics (`snapshot.Stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Stats {
    #[serde(rename = "totalSize", default)]
    pub total_size: i64,
    #[serde(rename = "excludedTotalSize", default)]
    pub excluded_total_size: i64,
    #[serde(rename = "fileCount", default)]
    pub file_count: i32,
    #[serde(rename = "cachedFiles", default)]
    pub cached_files: i32,
    #[serde(rename = "nonCachedFiles", default)]
    pub non_cached_files: i32,
    #[serde(rename = "dirCount", default)]
    pub dir_count: i32,
    #[serde(rename = "excludedFileCount", default)]
    pub excluded_file_count: i32,
    #[serde(rename = "excludedDirCount", default)]
    pub excluded_dir_count: i32,
    #[serde(rename = "ignoredErrorCount", default)]
    pub ignored_error_count: i32,
    #[serde(rename = "errorCount", default)]
    pub error_count: i32,
}

/// A failed entry recorded in a directory summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryWithError {
    /// Path.
    pub path: String,
    /// Error text.
    pub error: String,
}

/// Directory summary (`fs.DirectorySummary`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectorySummary {
    /// Total size of files below.
    #[serde(default)]
    pub size: i64,
    /// Number of files below.
    #[serde(default)]
    pub files: i64,
    /// Number of symlinks below.
    #[serde(default)]
    pub symlinks: i64,
    /// Number of directories below.
    #[serde(default)]
    pub dirs: i64,
    /// Latest modification time below.
    #[serde(rename = "maxTime", default)]
    pub max_time: Timestamp,
    /// Incomplete reason.
    #[serde(
        rename = "incomplete",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub incomplete: String,
    /// Fatal error count.
    #[serde(rename = "numFailed", default)]
    pub num_failed: i64,
    /// Ignored error count.
    #[serde(
        rename = "numIgnoredErrors",
        default,
        skip_serializing_if = "is_zero_i64"
    )]
    pub num_ignored_errors: i64,
    /// First failed entries.
    #[serde(
        rename = "errors",
        default,
        deserialize_with = "crate::serde_util::null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub errors: Vec<EntryWithError>,
}

/// The type of a directory entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EntryType {
    /// `d`.
    Directory,
    /// `f`.
    File,
    /// `s`.
    Symlink,
    /// Anything else (kopia's restore fails on these).
    Other(String),
}

impl Serialize for EntryType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            Self::Directory => "d",
            Self::File => "f",
            Self::Symlink => "s",
            Self::Other(o) => o,
        })
    }
}

impl<'de> Deserialize<'de> for EntryType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "d" => Self::Directory,
            "f" => Self::File,
            "s" => Self::Symlink,
            _ => Self::Other(s),
        })
    }
}

impl EntryType {
    fn is_empty(&self) -> bool {
        matches!(self, Self::Other(s) if s.is_empty())
    }
}

/// A directory entry (`snapshot.DirEntry`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    /// Name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Type.
    #[serde(
        rename = "type",
        default = "empty_type",
        skip_serializing_if = "EntryType::is_empty"
    )]
    pub entry_type: EntryType,
    /// Go `os.FileMode` bits.
    #[serde(rename = "mode", default, skip_serializing_if = "FileMode::is_zero")]
    pub mode: FileMode,
    /// Size.
    #[serde(rename = "size", default, skip_serializing_if = "is_zero_i64")]
    pub size: i64,
    /// Modification time.
    #[serde(rename = "mtime", default, skip_serializing_if = "is_zero_ts")]
    pub mtime: Timestamp,
    /// Owner user ID.
    #[serde(rename = "uid", default, skip_serializing_if = "is_zero_u32")]
    pub uid: u32,
    /// Owner group ID.
    #[serde(rename = "gid", default, skip_serializing_if = "is_zero_u32")]
    pub gid: u32,
    /// The object.
    #[serde(rename = "obj")]
    pub object_id: ObjectId,
    /// Summary (directories).
    #[serde(rename = "summ", default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<DirectorySummary>,
}

fn empty_type() -> EntryType {
    EntryType::Other(String::new())
}

/// A snapshot manifest (`snapshot.Manifest`) with its ID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotManifest {
    /// The manifest entry ID (stored empty; filled in when loading).
    #[serde(default)]
    pub id: ManifestId,
    /// Source.
    pub source: SourceInfo,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Start time.
    #[serde(rename = "startTime")]
    pub start_time: Timestamp,
    /// End time.
    #[serde(rename = "endTime")]
    pub end_time: Timestamp,
    /// Statistics.
    #[serde(default)]
    pub stats: Stats,
    /// Incomplete (checkpoint) reason.
    #[serde(
        rename = "incomplete",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub incomplete_reason: String,
    /// Root entry.
    #[serde(rename = "rootEntry")]
    pub root_entry: Option<DirEntry>,
    /// User tags.
    #[serde(
        default,
        deserialize_with = "crate::serde_util::null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub tags: BTreeMap<String, String>,
    /// Storage statistics (CLI-computed; passed through).
    #[serde(
        rename = "storageStats",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub storage_stats: Option<serde_json::Value>,
    /// Pins.
    #[serde(
        default,
        deserialize_with = "crate::serde_util::null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub pins: Vec<String>,
    /// Why the effective retention policy keeps this snapshot (`latest-1`, `daily-2`, …,
    /// `incomplete`); computed by [`Repository::list_snapshots`], never stored.
    #[serde(
        rename = "retentionReason",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub retention_reasons: Vec<String>,
}

impl SnapshotManifest {
    /// Total size of the snapshot (root summary size, falling back to stats).
    pub fn total_size(&self) -> i64 {
        self.root_entry
            .as_ref()
            .and_then(|r| r.summary.as_ref())
            .map_or(self.stats.total_size, |s| s.size)
    }
}

/// A directory listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// Stream type, always `kopia:directory`.
    pub stream: String,
    /// Entries (Go writes `null` for an empty directory).
    #[serde(default, deserialize_with = "crate::serde_util::null_as_default")]
    pub entries: Vec<DirEntry>,
    /// Summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<DirectorySummary>,
}

/// Kopia `snapshot list --json` framing: `[`, items separated by `,\n ` (first by `\n `), then `\n]`.
///
/// # Errors
///
/// Serialisation errors (not expected for valid manifests).
pub fn snapshot_list_json(snapshots: &[SnapshotManifest]) -> Result<String, serde_json::Error> {
    let mut out = String::from("[");
    for (i, s) in snapshots.iter().enumerate() {
        out.push_str(if i == 0 { "\n " } else { ",\n " });
        out.push_str(&serde_json::to_string(s)?);
    }
    out.push_str("\n]");
    Ok(out)
}

impl Repository<Indexed> {
    /// All snapshots of all sources (including incomplete ones), ordered like
    /// `kopia snapshot list --json`: by source (`user@host:path`), then start and end time.
    ///
    /// # Errors
    ///
    /// Content read errors, [`Error::CorruptManifest`] for malformed payloads.
    pub async fn list_snapshots(&self) -> Result<Vec<SnapshotManifest>, Error> {
        let entries = self.list_manifests(&[]).await?;
        let (snaps, policies): (Vec<_>, Vec<_>) = entries
            .into_iter()
            .partition(|e| e.labels.get("type").is_some_and(|t| t == "snapshot"));
        let policies: Vec<_> = policies
            .into_iter()
            .filter(|e| e.matches(&[("type", "policy")]))
            .collect();
        let mut out = Vec::with_capacity(snaps.len());
        for e in snaps {
            let mut m: SnapshotManifest =
                serde_json::from_str(e.data.get()).map_err(|err| Error::CorruptSnapshot {
                    manifest_id: e.id.clone(),
                    cause: Corruption::Json(err),
                })?;
            m.id = e.id;
            m.retention_reasons.clear();
            out.push(m);
        }
        out.sort_by(|a, b| {
            a.source
                .to_string()
                .cmp(&b.source.to_string())
                .then(a.start_time.cmp(&b.start_time))
                .then(a.end_time.cmp(&b.end_time))
        });
        let mut start = 0;
        while start < out.len() {
            let end = start
                + out[start..]
                    .iter()
                    .take_while(|m| m.source == out[start].source)
                    .count();
            let policy = crate::retention::effective_retention(&policies, &out[start].source)?;
            policy.compute_reasons(&mut out[start..end]);
            start = end;
        }
        Ok(out)
    }

    /// Reads and parses a directory object.
    ///
    /// # Errors
    ///
    /// Object read errors, [`Error::CorruptObject`] for malformed JSON,
    /// [`Error::Unsupported`] for an unknown stream type.
    pub async fn read_directory(&self, oid: ObjectId) -> Result<Directory, Error> {
        let bytes = self.read_object(oid).await?;
        let dir: Directory = serde_json::from_slice(&bytes).map_err(|e| Error::CorruptObject {
            object_id: oid,
            cause: Corruption::Json(e),
        })?;
        if dir.stream != "kopia:directory" {
            return Err(Unsupported::Stream(dir.stream).into());
        }
        Ok(dir)
    }
}
