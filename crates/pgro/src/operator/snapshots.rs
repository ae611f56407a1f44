//! Which snapshot to restore (behaviour R3): apply `snapshotFilter`, ignore incomplete snapshots, and pick
//! the newest by parsed start time (ties: end time, then id).

use std::collections::BTreeMap;

use globset::{Glob, GlobBuilder, GlobMatcher};
use jiff::Timestamp;
use pgro_api::SnapshotFilter;

/// What the filter and the choice need to know about one snapshot; built from the repository's snapshot
/// manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Snapshot (manifest) ID.
    pub id: String,
    /// Source host.
    pub host: String,
    /// Source user.
    pub user_name: String,
    /// Source path as recorded (Windows paths as `D:\Full`).
    pub path: String,
    /// Description (empty when none).
    pub description: String,
    /// Start time.
    pub start_time: Timestamp,
    /// End time.
    pub end_time: Option<Timestamp>,
    /// Tags, keyed as Kopia stores them (`tag:area`) or plainly.
    pub tags: BTreeMap<String, String>,
    /// Whether the snapshot is incomplete (`incompleteReason` set).
    pub incomplete: bool,
    /// Total size of the snapshot's files, in bytes.
    pub total_size: u64,
}

impl SnapshotInfo {
    /// What the choice needs from a repository snapshot manifest.
    #[must_use]
    pub fn from_manifest(m: &kopia::SnapshotManifest) -> Self {
        let ts = |t: kopia::Timestamp| {
            Timestamp::from_nanosecond(i128::from(t.as_nanos())).unwrap_or(Timestamp::UNIX_EPOCH)
        };
        Self {
            id: m.id.to_string(),
            host: m.source.host.clone(),
            user_name: m.source.user_name.clone(),
            path: m.source.path.clone(),
            description: m.description.clone(),
            start_time: ts(m.start_time),
            end_time: (!m.end_time.is_zero()).then(|| ts(m.end_time)),
            tags: m.tags.clone(),
            incomplete: !m.incomplete_reason.is_empty(),
            total_size: u64::try_from(m.total_size()).unwrap_or(0),
        }
    }
}

/// A glob in the filter does not compile.
#[derive(Debug, thiserror::Error)]
#[error("snapshotFilter.{field} {pattern:?} is not a valid glob: {source}")]
pub struct FilterError {
    /// Which pattern.
    pub field: &'static str,
    /// The pattern.
    pub pattern: String,
    /// The glob compiler's reason.
    #[source]
    pub source: globset::Error,
}

/// A `snapshotFilter` compiled once per reconcile.
#[derive(Debug, Clone, Default)]
pub struct CompiledFilter {
    tags: Vec<(String, String)>,
    host: Option<GlobMatcher>,
    description: Option<GlobMatcher>,
    path: Option<GlobMatcher>,
}

impl CompiledFilter {
    /// Compiles the filter (no filter matches every complete snapshot).
    ///
    /// # Errors
    ///
    /// [`FilterError`] naming the pattern that does not compile.
    pub fn new(filter: Option<&SnapshotFilter>) -> Result<Self, FilterError> {
        let Some(filter) = filter else {
            return Ok(Self::default());
        };
        let tags = filter
            .tags
            .iter()
            .flatten()
            .map(|(k, v)| (tag_key(k).to_owned(), v.clone()))
            .collect();
        Ok(Self {
            tags,
            host: compile("hostPattern", filter.host_pattern.as_deref())?,
            description: compile("descriptionPattern", filter.description_pattern.as_deref())?,
            path: compile(
                "pathPattern",
                filter
                    .path_pattern
                    .as_deref()
                    .map(normalise_path)
                    .as_deref(),
            )?,
        })
    }

    /// Whether a snapshot satisfies every criterion. Incomplete snapshots never do.
    #[must_use]
    pub fn matches(&self, snapshot: &SnapshotInfo) -> bool {
        let tags_match = self.tags.iter().all(|(key, value)| {
            snapshot
                .tags
                .iter()
                .any(|(k, v)| tag_key(k) == key && v == value)
        });
        let glob =
            |m: &Option<GlobMatcher>, text: &str| m.as_ref().is_none_or(|m| m.is_match(text));
        !snapshot.incomplete
            && tags_match
            && glob(&self.host, &snapshot.host)
            && glob(&self.description, &snapshot.description)
            && glob(&self.path, &normalise_path(&snapshot.path))
    }
}

/// The newest snapshot that matches: latest start time; ties broken by later end time, then greater id, so
/// the choice never depends on listing order.
#[must_use]
pub fn choose_newest<'a>(
    snapshots: &'a [SnapshotInfo],
    filter: &CompiledFilter,
) -> Option<&'a SnapshotInfo> {
    snapshots
        .iter()
        .filter(|s| filter.matches(s))
        .max_by(|a, b| (a.start_time, a.end_time, &a.id).cmp(&(b.start_time, b.end_time, &b.id)))
}

/// Kopia keeps user tags as manifest labels `tag:<key>`; filters may name either form.
fn tag_key(key: &str) -> &str {
    key.strip_prefix("tag:").unwrap_or(key)
}

/// Windows source paths in Unix style: `D:\Full\db` → `/D/Full/db`; other paths are unchanged.
#[must_use]
pub fn normalise_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let drive = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
    if drive && (bytes.len() == 2 || bytes[2] == b'\\' || bytes[2] == b'/') {
        let rest = path[2..].replace('\\', "/");
        let rest = rest.trim_start_matches('/');
        if rest.is_empty() {
            format!("/{}", &path[..1])
        } else {
            format!("/{}/{rest}", &path[..1])
        }
    } else {
        path.to_owned()
    }
}

fn compile(field: &'static str, pattern: Option<&str>) -> Result<Option<GlobMatcher>, FilterError> {
    let Some(pattern) = pattern else {
        return Ok(None);
    };
    // `*` crosses `/` (literal_separator off), as users expect from `/backups/*` matching nested paths.
    let glob: Result<Glob, _> = GlobBuilder::new(pattern).literal_separator(false).build();
    glob.map(|g| Some(g.compile_matcher()))
        .map_err(|source| FilterError {
            field,
            pattern: pattern.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests;
