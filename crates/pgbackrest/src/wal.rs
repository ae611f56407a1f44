//! Fetching one file of the WAL archive (pgbackrest-format.md §1.5, §6.10): a segment is found by listing its
//! 16-character directory for `<segment>-<sha1>[.<ext>]` in the newest matching archive id, decrypted with
//! `archive.info`'s passphrase, decompressed by its extension and checked against the SHA-1 in its name;
//! history and backup-history files are read by their exact name.

use crate::codec::{self, Compress, Encoding};
use crate::error::Error;
use crate::info::ArchiveInfo;
use crate::ini::hex;
use crate::label;
use crate::repo::Repository;

/// The largest WAL segment PostgreSQL allows (`--wal-segsize=1024`).
const SEGMENT_LIMIT: u64 = 1 << 30;

/// A stored copy of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSegment {
    /// Object key.
    pub key: String,
    /// SHA-1 of the segment (from its name).
    pub sha1: String,
    /// Compression (from its extension).
    pub compress: Compress,
}

/// The segment names a WAL request asks for: `<24 hex>` or `<24 hex>.partial`.
fn segment_request(name: &str) -> Option<&str> {
    let seg = name.strip_suffix(".partial").unwrap_or(name);
    label::is_segment(seg).then_some(seg)
}

/// Parses a stored name `<request>-<sha1>[.<ext>]`.
fn stored_name<'a>(file: &'a str, request: &str) -> Option<(&'a str, Compress)> {
    let rest = file.strip_prefix(request)?.strip_prefix('-')?;
    let (sha, compress) = Compress::split_ext(rest)?;
    label::is_sha1(sha).then_some((sha, compress))
}

impl Repository {
    /// Where WAL file `name` (a segment, `<segment>.partial`, `<tli>.history` or a `.backup` file) of the
    /// cluster `(system_id, version)` is stored; `None` when the archive does not hold it.
    ///
    /// # Errors
    /// `name` is not a WAL file name, the archive has no entry for the cluster, two different copies of a
    /// segment exist, or listing fails.
    pub async fn find_wal(
        &self,
        archive: &ArchiveInfo,
        system_id: u64,
        version: &str,
        name: &str,
    ) -> Result<Option<StoredSegment>, Error> {
        let ids = archive.archive_ids_for(system_id, version);
        if ids.is_empty() {
            return Err(Error::NotFound(format!(
                "archive/{}/archive.info has no entry for PostgreSQL {version} with system identifier \
                 {system_id}: the archive belongs to another cluster",
                self.stanza()
            )));
        }
        let stanza = self.stanza();
        if segment_request(name).is_some() {
            let found = self
                .find_segments(archive, system_id, version, &[name.to_owned()])
                .await?;
            return Ok(found.into_iter().next().flatten());
        }
        if !(label::is_history(name) || label::is_backup_history(name)) {
            return Err(Error::InvalidArgument(format!(
                "{name:?} is not a WAL file name"
            )));
        }
        for id in &ids {
            let key = if label::is_backup_history(name) {
                format!("archive/{stanza}/{id}/{}/{name}", &name[..16])
            } else {
                format!("archive/{stanza}/{id}/{name}")
            };
            match self.store().head(&key).await {
                Ok(_) => {
                    return Ok(Some(StoredSegment {
                        key,
                        sha1: String::new(),
                        compress: Compress::None,
                    }));
                }
                Err(e) if e.class() == blobstore::ErrorClass::NotFound => {}
                Err(e) => return Err(Error::storage(&key, e)),
            }
        }
        Ok(None)
    }

    /// Where each of the segments `names` (`<24 hex>` or `<24 hex>.partial`) is stored, listing each
    /// 16-character directory once (a prefetch of the next segments costs one listing, not one each).
    ///
    /// # Errors
    /// As [`Repository::find_wal`].
    pub async fn find_segments(
        &self,
        archive: &ArchiveInfo,
        system_id: u64,
        version: &str,
        names: &[String],
    ) -> Result<Vec<Option<StoredSegment>>, Error> {
        let ids = archive.archive_ids_for(system_id, version);
        if ids.is_empty() {
            return Err(Error::NotFound(format!(
                "archive/{}/archive.info has no entry for PostgreSQL {version} with system identifier \
                 {system_id}: the archive belongs to another cluster",
                self.stanza()
            )));
        }
        if let Some(bad) = names.iter().find(|n| segment_request(n).is_none()) {
            return Err(Error::InvalidArgument(format!(
                "{bad:?} is not a WAL segment name"
            )));
        }
        let mut out: Vec<Option<StoredSegment>> = vec![None; names.len()];
        let mut listings: std::collections::HashMap<String, blobstore::Listing> =
            std::collections::HashMap::new();
        for id in &ids {
            for (i, name) in names.iter().enumerate() {
                if out[i].is_some() {
                    continue;
                }
                let dir = format!("archive/{}/{id}/{}/", self.stanza(), &name[..16]);
                if !listings.contains_key(&dir) {
                    let l = self
                        .store()
                        .list_dir(&dir)
                        .await
                        .map_err(|e| Error::storage(&dir, e))?;
                    listings.insert(dir.clone(), l);
                }
                let mut found: Vec<StoredSegment> = listings[&dir]
                    .objects
                    .iter()
                    .filter_map(|o| {
                        let file = o.key.rsplit('/').next().unwrap_or(&o.key);
                        stored_name(file, name).map(|(sha, compress)| StoredSegment {
                            key: o.key.clone(),
                            sha1: sha.to_owned(),
                            compress,
                        })
                    })
                    .collect();
                found.sort_by(|a, b| a.key.cmp(&b.key));
                if let Some(first) = found.first() {
                    if found.iter().any(|f| f.sha1 != first.sha1) {
                        return Err(Error::corrupted(
                            format!("WAL {name} in archive {id}"),
                            "stored twice with different contents (duplicates)",
                        ));
                    }
                    out[i] = Some(first.clone());
                }
            }
        }
        Ok(out)
    }

    /// Reads and decodes a stored WAL file, checking the SHA-1 of segments; the whole file in memory (tests,
    /// small files). `pgro wal-fetch` streams with [`Repository::read_wal_into`].
    ///
    /// # Errors
    /// Storage fails, or the file does not decode or verify.
    pub async fn read_wal(
        &self,
        archive: &ArchiveInfo,
        stored: &StoredSegment,
    ) -> Result<Vec<u8>, Error> {
        let (out, _) = self
            .read_wal_into(archive, stored, Vec::with_capacity(16 << 20))
            .await?;
        Ok(out)
    }

    /// Reads a stored WAL file, decodes it into `out` a chunk at a time while hashing it, and checks the
    /// SHA-1 in its name at the end: the decoded segment is never held whole (one copy fewer, and a batch of
    /// prefetched segments costs their compressed size in memory, not 16 MiB each). Returns `out` and the
    /// decoded length. On an error `out` may hold a prefix: the caller writes to a temporary name.
    ///
    /// # Errors
    /// Storage fails, the file does not decode or verify, or writing to `out` fails.
    pub async fn read_wal_into<W: std::io::Write + Send + 'static>(
        &self,
        archive: &ArchiveInfo,
        stored: &StoredSegment,
        out: W,
    ) -> Result<(W, u64), Error> {
        let data = self
            .store()
            .get(&stored.key)
            .await
            .map_err(|e| Error::storage(&stored.key, e))?;
        let pass = archive.cipher_pass.clone();
        let stored = stored.clone();
        tokio::task::spawn_blocking(move || {
            let enc = Encoding {
                pass: pass.as_deref(),
                compress: stored.compress,
                raw: false,
            };
            decode_verified(&data, enc, &stored, out)
        })
        .await
        .map_err(|e| Error::io("(WAL decoder)", std::io::Error::other(e.to_string())))?
    }
}

/// The copy loop of [`Repository::read_wal_into`]: decode, hash, write, then compare the SHA-1.
fn decode_verified<W: std::io::Write>(
    data: &[u8],
    enc: Encoding<'_>,
    stored: &StoredSegment,
    mut out: W,
) -> Result<(W, u64), Error> {
    use sha1::Digest as _;
    use std::io::Read as _;
    let key = &stored.key;
    let mut reader = codec::decoder(data, enc);
    let mut hasher = sha1::Sha1::new();
    // 1 MiB: large enough that the decoders run in long stretches, small enough to stay in L2/L3.
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::corrupted(key, e)),
        };
        total += n as u64;
        if total > SEGMENT_LIMIT {
            return Err(Error::corrupted(
                key,
                format!("decodes to more than the {SEGMENT_LIMIT} bytes a WAL file can hold"),
            ));
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| Error::io(format!("(decoded {key})"), e))?;
    }
    if !stored.sha1.is_empty() {
        let got = hex(&hasher.finalize());
        if got != stored.sha1 {
            return Err(Error::corrupted(
                key,
                format!("its SHA-1 is {got}, its name says {}", stored.sha1),
            ));
        }
    }
    Ok((out, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_match_only_their_request() {
        let seg = "000000010000000000000003";
        let sha = "55f6ffc7fb47b38102760467ac4609d4c6df623b";
        assert_eq!(
            stored_name(&format!("{seg}-{sha}.gz"), seg),
            Some((sha, Compress::Gz))
        );
        assert_eq!(
            stored_name(&format!("{seg}-{sha}"), seg),
            Some((sha, Compress::None))
        );
        // A plain request never matches a partial segment.
        assert_eq!(stored_name(&format!("{seg}.partial-{sha}.zst"), seg), None);
        let partial = format!("{seg}.partial");
        assert_eq!(
            stored_name(&format!("{seg}.partial-{sha}.zst"), &partial),
            Some((sha, Compress::Zst))
        );
        assert_eq!(stored_name(&format!("{seg}-{sha}.xz"), seg), None);
        assert_eq!(
            segment_request("000000010000000000000003.partial"),
            Some(seg)
        );
        assert_eq!(segment_request("00000002.history"), None);
    }
}
