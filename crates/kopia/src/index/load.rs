//! Loading the active index set into a [`MergedIndex`], through the [`IndexCache`].

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::{IndexBlob, IndexParseError, MergedIndex, epoch_index_set, legacy_index_set};
use crate::cache::IndexCache;
use crate::crypto::Crypter;
use crate::error::{Error, StorageError};
use crate::format::RepositoryConfig;
use crate::ids::BlobId;
use crate::storage::Storage;

/// Index blobs fetched concurrently while loading the index.
const INDEX_FETCH_PARALLELISM: usize = 8;
/// Attempts at computing a consistent index set (kopia retries 10 times on NotFound).
const INDEX_SET_ATTEMPTS: u32 = 10;

/// Everything needed to (re)load the index.
#[derive(Debug, Clone)]
pub(crate) struct IndexLoader {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) config: Arc<RepositoryConfig>,
    pub(crate) crypter: Crypter,
    pub(crate) cache: IndexCache,
}

impl IndexLoader {
    pub(crate) async fn load(&self) -> Result<MergedIndex, Error> {
        load_merged_index(
            self.storage.as_ref(),
            &self.config,
            &self.crypter,
            &self.cache,
        )
        .await
    }
}

pub(crate) async fn load_merged_index(
    storage: &dyn Storage,
    config: &RepositoryConfig,
    crypter: &Crypter,
    cache: &IndexCache,
) -> Result<MergedIndex, Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (ids, watermark) = if config.epoch.enabled {
            let s = epoch_index_set(storage).await?;
            (s.blobs, s.watermark)
        } else {
            (legacy_index_set(storage, crypter).await?, 0)
        };
        match load_blobs(storage, crypter, cache, &ids).await {
            Ok(blobs) => return Ok(MergedIndex::new(blobs, watermark)),
            // Compaction deleted a blob between listing and reading: list again.
            Err(Error::MissingBlob { blob_id }) if attempt < INDEX_SET_ATTEMPTS => {
                tracing::debug!(blob_id = %blob_id, attempt, "index blob vanished; recomputing index set");
                tokio::time::sleep(std::time::Duration::from_millis(100 << attempt.min(6))).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn load_blobs(
    storage: &dyn Storage,
    crypter: &Crypter,
    cache: &IndexCache,
    ids: &[BlobId],
) -> Result<Vec<(BlobId, Arc<IndexBlob>)>, Error> {
    futures::stream::iter(ids.iter().cloned())
        .map(|id| async move {
            if let Some(b) = cache.get(&id) {
                return Ok((id, b));
            }
            let data = storage
                .get(&id)
                .await
                .map_err(|e: StorageError| Error::from_storage(&id, e))?;
            let plain = crypter
                .decrypt_blob(&id, &data)
                .map_err(|cause| Error::CorruptBlob {
                    blob_id: id.clone(),
                    cause,
                })?;
            let blob = IndexBlob::parse(Bytes::from(plain)).map_err(|e| match e {
                IndexParseError::Corrupt(cause) => Error::CorruptBlob {
                    blob_id: id.clone(),
                    cause,
                },
                IndexParseError::Unsupported(u) => Error::Unsupported(u),
            })?;
            let blob = Arc::new(blob);
            cache.insert(id.clone(), Arc::clone(&blob));
            Ok((id, blob))
        })
        .buffered(INDEX_FETCH_PARALLELISM)
        .try_collect()
        .await
}
