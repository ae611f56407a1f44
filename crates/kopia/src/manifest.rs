//! Manifests (kopia `repo/manifest`): gzip-compressed JSON documents stored as `m`-prefixed
//! contents, merged by ID with the latest `modified` winning.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use futures::{StreamExt, TryStreamExt};
use serde_json::value::RawValue;

use crate::error::{Corruption, Error};
use crate::ids::{ContentId, ManifestId};
use crate::repository::{Indexed, Repository};
use crate::time::Timestamp;

/// Manifest contents read concurrently.
const MANIFEST_READ_PARALLELISM: usize = 16;
/// Content prefix of manifests.
const MANIFEST_PREFIX: u8 = b'm';

#[derive(Debug, serde::Deserialize)]
struct ManifestFile {
    #[serde(default, deserialize_with = "crate::serde_util::null_as_default")]
    entries: Vec<ManifestEntryJson>,
}

#[derive(Debug, serde::Deserialize)]
struct ManifestEntryJson {
    id: ManifestId,
    #[serde(default, deserialize_with = "crate::serde_util::null_as_default")]
    labels: BTreeMap<String, String>,
    modified: Timestamp,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    data: Option<Box<RawValue>>,
}

/// A live manifest entry.
#[derive(Debug, Clone)]
pub struct ManifestEntry {
    /// Entry ID.
    pub id: ManifestId,
    /// Labels (`type`, `hostname`, `username`, `path`, `tag:*`, …).
    pub labels: BTreeMap<String, String>,
    /// Last modification.
    pub modified: Timestamp,
    /// Payload JSON.
    pub data: Box<RawValue>,
}

impl ManifestEntry {
    /// Whether every `(key, value)` in `filter` is among the labels.
    pub fn matches(&self, filter: &[(&str, &str)]) -> bool {
        filter
            .iter()
            .all(|(k, v)| self.labels.get(*k).is_some_and(|x| x == v))
    }
}

fn parse_manifest_content(
    content_id: ContentId,
    data: &[u8],
) -> Result<Vec<ManifestEntryJson>, Error> {
    let mut json = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .read_to_end(&mut json)
        .map_err(|e| Error::CorruptManifest {
            content_id,
            cause: Corruption::Decompress(e),
        })?;
    let f: ManifestFile = serde_json::from_slice(&json).map_err(|e| Error::CorruptManifest {
        content_id,
        cause: Corruption::Json(e),
    })?;
    Ok(f.entries)
}

impl Repository<Indexed> {
    /// All live manifest entries matching `filter` (label key/value pairs), sorted by ID.
    ///
    /// # Errors
    ///
    /// Content read errors and [`Error::CorruptManifest`].
    pub async fn list_manifests(
        &self,
        filter: &[(&str, &str)],
    ) -> Result<Vec<ManifestEntry>, Error> {
        let infos = self.list_contents(Some(MANIFEST_PREFIX))?;
        let contents = self.contents();
        let files: Vec<Vec<ManifestEntryJson>> = futures::stream::iter(infos)
            .map(|info| async move {
                let data = contents.read(&info.content_id).await?;
                parse_manifest_content(info.content_id, &data)
            })
            .buffered(MANIFEST_READ_PARALLELISM)
            .try_collect()
            .await?;
        let mut merged: HashMap<ManifestId, ManifestEntryJson> = HashMap::new();
        for e in files.into_iter().flatten() {
            match merged.get(&e.id) {
                // Kopia keeps the first entry seen on equal timestamps.
                Some(cur) if e.modified <= cur.modified => {}
                Some(_) | None => {
                    merged.insert(e.id.clone(), e);
                }
            }
        }
        let mut out: Vec<ManifestEntry> = merged
            .into_values()
            .filter(|e| !e.deleted)
            .filter_map(|e| {
                let data = e.data?;
                Some(ManifestEntry {
                    id: e.id,
                    labels: e.labels,
                    modified: e.modified,
                    data,
                })
            })
            .filter(|e| e.matches(filter))
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}
