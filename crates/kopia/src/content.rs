//! Reading contents: index lookup, pack range read, ECC + AEAD, decompression and a hash check on
//! every read (kopia `repo/content`; the hash check is ours, kopia skips it).

use std::sync::{Arc, RwLock};

use bytes::Bytes;

use crate::compression::{DecompressError, decompress};
use crate::crypto::{Crypter, HashValue, Hasher};
use crate::error::{Corruption, Error, StorageError};
use crate::ids::{BlobId, ContentId};
use crate::index::{ContentInfo, IndexLoader, MergedIndex};

/// Contents larger than this are decoded on the blocking thread pool.
const INLINE_DECODE_LIMIT: u32 = 256 << 10;

/// Decrypts, decompresses and verifies contents.
#[derive(Debug)]
pub(crate) struct ContentReader {
    loader: IndexLoader,
    index: RwLock<Arc<MergedIndex>>,
    hasher: Hasher,
}

impl ContentReader {
    pub(crate) fn new(loader: IndexLoader, index: MergedIndex, hasher: Hasher) -> Self {
        Self {
            loader,
            index: RwLock::new(Arc::new(index)),
            hasher,
        }
    }

    fn crypter(&self) -> &Crypter {
        &self.loader.crypter
    }

    /// Re-reads the index set.
    pub(crate) async fn reload_index(&self) -> Result<(), Error> {
        let index = self.loader.load().await?;
        self.replace_index(index);
        Ok(())
    }

    pub(crate) fn index(&self) -> Arc<MergedIndex> {
        match self.index.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    pub(crate) fn replace_index(&self, index: MergedIndex) {
        match self.index.write() {
            Ok(mut g) => *g = Arc::new(index),
            Err(p) => *p.into_inner() = Arc::new(index),
        }
    }

    /// The winning index entry of a content.
    pub(crate) fn info(&self, id: &ContentId) -> Result<ContentInfo, Error> {
        match self.index().lookup(id) {
            Ok(Some(i)) => Ok(i),
            Ok(None) => Err(Error::ContentNotFound { content_id: *id }),
            Err((blob_id, cause)) => Err(Error::CorruptBlob { blob_id, cause }),
        }
    }

    async fn fetch_exact(&self, info: &ContentInfo) -> Result<Bytes, Error> {
        let start = u64::from(info.pack_offset);
        let end = start + u64::from(info.packed_length);
        match self
            .loader
            .storage
            .get_range(&info.pack_blob_id, start..end)
            .await
        {
            Ok(b) => Ok(b),
            // Blobs are immutable: a pack shorter than its index entry says is permanent damage
            // of this content, reported like any other (exit code "corrupted", never retried).
            Err(StorageError::InvalidRange { len, .. }) => {
                Err(corrupt(info, Corruption::Truncated { end, len }))
            }
            Err(e) => Err(Error::from_storage(&info.pack_blob_id, e)),
        }
    }

    /// Reads `range` of a pack: several neighbouring contents in one request.
    pub(crate) async fn fetch_pack_range(
        &self,
        pack: &BlobId,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, Error> {
        self.loader
            .storage
            .get_range(pack, range)
            .await
            .map_err(|e| Error::from_storage(pack, e))
    }

    /// Reads the stored (encrypted) bytes of a content. When its pack is gone, maintenance may
    /// have rewritten the content elsewhere: refresh the index once and retry if the entry moved
    /// (kopia-format.md §13).
    pub(crate) async fn fetch(&self, info: ContentInfo) -> Result<(ContentInfo, Bytes), Error> {
        match self.fetch_exact(&info).await {
            Ok(b) => Ok((info, b)),
            Err(Error::MissingBlob { blob_id }) if blob_id == info.pack_blob_id => {
                tracing::debug!(blob_id = %blob_id, "pack missing; refreshing index");
                self.reload_index().await?;
                let fresh = self.info(&info.content_id)?;
                if fresh == info {
                    return Err(Error::MissingBlob { blob_id });
                }
                let b = self.fetch_exact(&fresh).await?;
                Ok((fresh, b))
            }
            Err(e) => Err(e),
        }
    }

    /// Turns stored bytes into verified plaintext (CPU only).
    pub(crate) fn decode(&self, info: &ContentInfo, stored: Bytes) -> Result<Vec<u8>, Error> {
        decode_content(self.crypter(), &self.hasher, info, stored)
    }

    /// Turns several stored contents into verified plaintext, hashing them together (CPU only).
    pub(crate) fn decode_many(
        &self,
        items: Vec<(ContentInfo, Bytes)>,
    ) -> Vec<Result<Vec<u8>, Error>> {
        decode_contents(self.crypter(), &self.hasher, items)
    }

    /// Reads, decodes and verifies one content.
    pub(crate) async fn read(self: &Arc<Self>, id: &ContentId) -> Result<Vec<u8>, Error> {
        let info = self.info(id)?;
        let (info, stored) = self.fetch(info).await?;
        if info.packed_length <= INLINE_DECODE_LIMIT {
            return self.decode(&info, stored);
        }
        let me = Arc::clone(self);
        tokio::task::spawn_blocking(move || me.decode(&info, stored))
            .await
            .map_err(|e| Error::Task(Box::new(e)))?
    }
}

/// Decrypts (after ECC), decompresses and verifies the hash of a content.
pub(crate) fn decode_content(
    crypter: &Crypter,
    hasher: &Hasher,
    info: &ContentInfo,
    stored: Bytes,
) -> Result<Vec<u8>, Error> {
    let data = open_content(crypter, info, stored)?;
    check_hash(info, hasher.hash(&data))?;
    Ok(data)
}

/// Decodes several contents like [`decode_content`], hashing them together with
/// [`Hasher::hash_many`] (BLAKE2b, kopia's default, then runs about twice as fast). Results are
/// in input order; one bad content does not fail the others.
pub(crate) fn decode_contents(
    crypter: &Crypter,
    hasher: &Hasher,
    items: Vec<(ContentInfo, Bytes)>,
) -> Vec<Result<Vec<u8>, Error>> {
    let mut infos = Vec::with_capacity(items.len());
    let mut results: Vec<Result<Vec<u8>, Error>> = items
        .into_iter()
        .map(|(info, stored)| {
            let r = open_content(crypter, &info, stored);
            infos.push(info);
            r
        })
        .collect();
    let opened: Vec<&[u8]> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(Vec::as_slice))
        .collect();
    let mut hashes = hasher.hash_many(&opened).into_iter();
    for (r, info) in results.iter_mut().zip(&infos) {
        let verdict = match r {
            Ok(_) => match hashes.next() {
                Some(h) => check_hash(info, h),
                None => Err(corrupt(info, Corruption::HashMismatch)),
            },
            Err(_) => Ok(()),
        };
        if let Err(e) = verdict {
            *r = Err(e);
        }
    }
    results
}

fn corrupt(info: &ContentInfo, cause: Corruption) -> Error {
    Error::CorruptContent {
        content_id: info.content_id,
        pack: info.pack_blob_id.clone(),
        offset: u64::from(info.pack_offset),
        cause,
    }
}

fn check_hash(info: &ContentInfo, hash: HashValue) -> Result<(), Error> {
    if hash.as_bytes() != info.content_id.hash() {
        return Err(corrupt(info, Corruption::HashMismatch));
    }
    Ok(())
}

/// Decrypts (after ECC) and decompresses a content, without the hash check.
fn open_content(crypter: &Crypter, info: &ContentInfo, stored: Bytes) -> Result<Vec<u8>, Error> {
    if info.encryption_key_id != 0 {
        return Err(crate::Unsupported::EncryptionKeyId(info.encryption_key_id).into());
    }
    let plain = crypter
        .decrypt_owned(info.content_id.iv(), stored)
        .map_err(|c| corrupt(info, c))?;
    if info.compression_header_id == 0 {
        return Ok(plain);
    }
    match decompress(
        &plain,
        Some(info.compression_header_id),
        info.original_length as usize,
    ) {
        Ok(d) => Ok(d),
        Err(DecompressError::Corrupt(c)) => Err(corrupt(info, c)),
        Err(DecompressError::Unsupported(u)) => Err(u.into()),
    }
}

#[cfg(test)]
mod tests;
