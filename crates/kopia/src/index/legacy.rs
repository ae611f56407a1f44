//! Legacy (format v1) index blobs `n…` and compaction logs `m…` (kopia `indexblob.ManagerV0`).

use std::collections::HashSet;

use crate::crypto::Crypter;
use crate::error::Error;
use crate::ids::BlobId;
use crate::storage::Storage;

const INDEX_PREFIX: &str = "n";
const COMPACTION_LOG_PREFIX: &str = "m";

#[derive(Debug, serde::Deserialize)]
struct CompactionLog {
    #[serde(rename = "inputMetadata", default)]
    inputs: Vec<LogBlob>,
    #[serde(rename = "outputMetadata", default)]
    outputs: Vec<LogBlob>,
}

#[derive(Debug, serde::Deserialize)]
struct LogBlob {
    id: String,
}

/// All `n` blobs minus the inputs of compaction logs whose outputs all exist.
pub(crate) async fn legacy_index_set(
    storage: &dyn Storage,
    crypter: &Crypter,
) -> Result<Vec<BlobId>, Error> {
    let list = |p: &'static str| async move {
        storage.list(p).await.map_err(|source| Error::Storage {
            target: format!("list {p}"),
            source,
        })
    };
    let (indexes, logs) = futures::try_join!(list(INDEX_PREFIX), list(COMPACTION_LOG_PREFIX))?;
    let present: HashSet<&str> = indexes.iter().map(|b| b.id.as_str()).collect();
    let mut superseded: HashSet<String> = HashSet::new();
    for log in &logs {
        let data = match storage.get(&log.id).await {
            Ok(d) => d,
            // Deleted since listing: the compaction it describes is complete or abandoned.
            Err(crate::StorageError::NotFound { .. }) => continue,
            Err(e) => return Err(Error::from_storage(&log.id, e)),
        };
        let plain = crypter
            .decrypt_blob(&log.id, &data)
            .map_err(|cause| Error::CorruptBlob {
                blob_id: log.id.clone(),
                cause,
            })?;
        let parsed: CompactionLog =
            serde_json::from_slice(&plain).map_err(|e| Error::CorruptBlob {
                blob_id: log.id.clone(),
                cause: crate::Corruption::Json(e),
            })?;
        if parsed
            .outputs
            .iter()
            .all(|o| present.contains(o.id.as_str()))
        {
            superseded.extend(parsed.inputs.into_iter().map(|i| i.id));
        }
    }
    let mut out: Vec<BlobId> = indexes
        .into_iter()
        .map(|b| b.id)
        // The poison blob left by a v1 -> v2 upgrade is not an index.
        .filter(|id| !superseded.contains(id.as_str()) && !id.as_str().contains("upgrade_required"))
        .collect();
    out.sort();
    Ok(out)
}
