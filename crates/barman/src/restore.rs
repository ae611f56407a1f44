//! Restoring a base backup (barman-restic-format.md A4, A6): every tar of `base/<id>/` — `data.tar[.ext]`
//! and its parts `data_NNNN.tar[.ext]` into PGDATA, `<oid>.tar[.ext]` and its parts into
//! `<tablespaces>/<oid>` with `pg_tblspc/<oid>` relinked to it (relative, inside the volume) — each
//! streamed GET → decompress → tar, parts in parallel. Entries must be relative paths without `..`
//! (`tar`'s `unpack_in` refuses anything else and never follows a link out of the target); links inside
//! a tar are not written (PostgreSQL data directories hold none but `pg_tblspc/*`, which are made here,
//! and a linked `pg_wal`, made here as a directory).

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use futures::StreamExt as _;

use crate::catalog::{Backup, Catalog};
use crate::codec::Compression;

/// Range read size of a streamed tar.
const CHUNK: u64 = 8 << 20;
/// Ranges fetched ahead of the tar reader, per part.
const AHEAD: usize = 4;

/// One tar of a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Object key.
    pub key: String,
    /// `None` for PGDATA, the tablespace OID otherwise.
    pub tablespace: Option<u32>,
    /// From its extension.
    pub compression: Compression,
    /// Stored size.
    pub size: u64,
}

/// Called with (stored bytes read, stored bytes of all tars) as a restore proceeds, from any thread.
pub type Progress = std::sync::Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Counts what passes through into the shared total and reports it.
struct Counting<R> {
    inner: R,
    done: std::sync::Arc<std::sync::atomic::AtomicU64>,
    total: u64,
    progress: Option<Progress>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let done = self
            .done
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed)
            + n as u64;
        if let Some(p) = &self.progress {
            p(done, self.total);
        }
        Ok(n)
    }
}

/// What a restore wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreSummary {
    /// Regular files written.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Tablespaces: OID and directory.
    pub tablespaces: Vec<(u32, PathBuf)>,
}

/// A restore that failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Listing or reading failed.
    #[error("reading {key} failed")]
    Storage {
        /// Key or prefix.
        key: String,
        /// The store's error.
        #[source]
        source: blobstore::Error,
    },
    /// A tar does not decode, holds an unsafe path, or writing failed.
    #[error("restoring {key}")]
    Tar {
        /// Key.
        key: String,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// The backup lacks a tar it needs or is not restorable.
    #[error("backup {id}: {detail}")]
    Incomplete {
        /// Backup ID.
        id: String,
        /// What is missing.
        detail: String,
    },
}

/// `data` or an OID, then `.tar` or `_NNNN.tar`, then a compression extension.
fn part_of(file: &str) -> Option<(Option<u32>, Compression)> {
    let (stem, compression) = Compression::split(file);
    let stem = stem.strip_suffix(".tar")?;
    let base = match stem.split_once('_') {
        Some((b, n)) if n.len() == 4 && n.bytes().all(|c| c.is_ascii_digit()) => b,
        Some(_) => return None,
        None => stem,
    };
    if base == "data" {
        return Some((None, compression));
    }
    base.parse::<u32>().ok().map(|oid| (Some(oid), compression))
}

impl Catalog {
    /// The tars of backup `id`, in key order.
    ///
    /// # Errors
    /// Listing fails.
    pub async fn parts(&self, id: &str) -> Result<Vec<Part>, RestoreError> {
        let prefix = self.key(&format!("base/{id}/"));
        let listing =
            self.store()
                .list_dir(&prefix)
                .await
                .map_err(|source| RestoreError::Storage {
                    key: prefix.clone(),
                    source,
                })?;
        let mut parts: Vec<Part> = listing
            .objects
            .iter()
            .filter_map(|o| {
                let file = o.key.rsplit('/').next()?;
                let (tablespace, compression) = part_of(file)?;
                Some(Part {
                    key: o.key.clone(),
                    tablespace,
                    compression,
                    size: o.size,
                })
            })
            .collect();
        parts.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(parts)
    }

    /// An estimate of the restored size of backup `id`, for sizing its volume before restoring:
    /// barman-cloud leaves `size` empty in `backup.info`, and a compressed stream does not say how much it
    /// holds, so the stored size of each tar counts as is when uncompressed and times a typical
    /// PostgreSQL data compression ratio otherwise ([`Compression::expansion`]).
    ///
    /// # Errors
    /// Listing fails.
    pub async fn estimated_size(&self, id: &str) -> Result<u64, crate::catalog::ListError> {
        let parts = self.parts(id).await.map_err(|e| match e {
            RestoreError::Storage { key, source } => crate::catalog::ListError {
                prefix: key,
                source,
            },
            other => crate::catalog::ListError {
                prefix: self.key(&format!("base/{id}/")),
                source: blobstore::Error::Io {
                    path: id.into(),
                    source: io::Error::other(other.to_string()),
                },
            },
        })?;
        Ok(parts
            .iter()
            .map(|p| p.size.saturating_mul(p.compression.expansion()))
            .sum())
    }

    /// Restores `backup` into `pgdata` and `tablespaces/<oid>` (both created; they must be empty or
    /// absent), `parallel` tars at once, reporting stored bytes read to `progress`.
    ///
    /// # Errors
    /// The backup is not restorable or lacks a tar, storage fails, a tar is damaged or unsafe, or writing
    /// fails. What was written stays (the caller discards the volume).
    pub async fn restore(
        &self,
        backup: &Backup,
        pgdata: &Path,
        tablespaces: &Path,
        parallel: usize,
        progress: Option<Progress>,
    ) -> Result<RestoreSummary, RestoreError> {
        let incomplete = |detail: String| RestoreError::Incomplete {
            id: backup.id.clone(),
            detail,
        };
        if !backup.info.restorable() {
            return Err(incomplete(format!(
                "status {:?}, not a finished backup",
                backup.info.status
            )));
        }
        let parts = self.parts(&backup.id).await?;
        if !parts.iter().any(|p| p.tablespace.is_none()) {
            return Err(incomplete("no data.tar".into()));
        }
        for ts in &backup.info.tablespaces {
            if !parts.iter().any(|p| p.tablespace == Some(ts.oid)) {
                return Err(incomplete(format!(
                    "no tar of tablespace {} ({})",
                    ts.name, ts.oid
                )));
            }
        }
        let io_err = |p: &Path, e: io::Error| RestoreError::Tar {
            key: p.display().to_string(),
            source: e,
        };
        for d in [pgdata, tablespaces] {
            std::fs::create_dir_all(d).map_err(|e| io_err(d, e))?;
            if std::fs::read_dir(d)
                .map_err(|e| io_err(d, e))?
                .next()
                .is_some()
            {
                return Err(io_err(
                    d,
                    io::Error::other("not empty: a restore writes only into an empty directory"),
                ));
            }
        }
        let total: u64 = parts.iter().map(|p| p.size).sum();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let results: Vec<Result<(u64, u64), RestoreError>> = futures::stream::iter(&parts)
            .map(|p| {
                let dest = match p.tablespace {
                    None => pgdata.to_owned(),
                    Some(oid) => tablespaces.join(oid.to_string()),
                };
                let counter = (done.clone(), total, progress.clone());
                async move { self.unpack(p, dest, counter).await }
            })
            .buffer_unordered(parallel.max(1))
            .collect()
            .await;
        let mut summary = RestoreSummary {
            files: 0,
            bytes: 0,
            tablespaces: Vec::new(),
        };
        for r in results {
            let (files, bytes) = r?;
            summary.files += files;
            summary.bytes += bytes;
        }
        // PostgreSQL refuses to start on a data directory (or tablespace) open to others; the tar's `./`
        // entry does not set the mode of a directory that exists.
        let private = |d: &Path| {
            std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .map_err(|e| io_err(d, e))
        };
        // Not the tablespaces' parent: whoever runs PostgreSQL on this copy (the instance chowns PGDATA and
        // each tablespace, not the directory holding them) must be able to pass through it.
        private(pgdata)?;
        for ts in &backup.info.tablespaces {
            private(&tablespaces.join(ts.oid.to_string()))?;
        }
        // A `pg_wal` that was a link at the source (`initdb --waldir`) comes as a link entry, which is not
        // written: PostgreSQL needs the directory (it makes `archive_status` itself).
        let wal = pgdata.join("pg_wal");
        if std::fs::symlink_metadata(&wal).is_err() {
            std::fs::create_dir(&wal).map_err(|e| io_err(&wal, e))?;
            private(&wal)?;
        }
        let tblspc = pgdata.join("pg_tblspc");
        std::fs::create_dir_all(&tblspc).map_err(|e| io_err(&tblspc, e))?;
        for ts in &backup.info.tablespaces {
            let dir = tablespaces.join(ts.oid.to_string());
            let link = tblspc.join(ts.oid.to_string());
            let _ = std::fs::remove_dir(&link); // barman's data.tar may hold it as an empty directory
            let target = relative(&tblspc, &dir);
            std::os::unix::fs::symlink(&target, &link).map_err(|e| io_err(&link, e))?;
            summary.tablespaces.push((ts.oid, dir));
        }
        Ok(summary)
    }

    /// Streams one tar into `dest`: ranged GETs fetched ahead, decoded and unpacked on the blocking pool.
    async fn unpack(
        &self,
        part: &Part,
        dest: PathBuf,
        (done, total, progress): (
            std::sync::Arc<std::sync::atomic::AtomicU64>,
            u64,
            Option<Progress>,
        ),
    ) -> Result<(u64, u64), RestoreError> {
        let (reader, producer) = blobstore::stream_object(
            self.store().clone(),
            part.key.clone(),
            part.size,
            CHUNK,
            AHEAD,
        );
        let (key, c) = (part.key.clone(), part.compression);
        let consumer = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dest)?;
            let counted = Counting {
                inner: reader,
                done,
                total,
                progress,
            };
            untar(c.decoder(counted), &dest)
        })
        .await
        .map_err(|e| RestoreError::Tar {
            key: key.clone(),
            source: io::Error::other(e.to_string()),
        })?;
        // A storage failure explains a short stream better than the tar reader's complaint.
        producer
            .await
            .map_err(|e| RestoreError::Tar {
                key: key.clone(),
                source: io::Error::other(e.to_string()),
            })?
            .map_err(|source| RestoreError::Storage {
                key: key.clone(),
                source,
            })?;
        consumer.map_err(|source| RestoreError::Tar { key, source })
    }
}

/// Unpacks a tar stream into `dest`; returns (files, bytes).
pub(crate) fn untar(r: impl Read, dest: &Path) -> io::Result<(u64, u64)> {
    let mut archive = tar::Archive::new(r);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(false);
    let (mut files, mut bytes) = (0, 0);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            continue;
        }
        let path = entry.path()?.into_owned();
        if path.is_absolute()
            || path
                .components()
                .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unsafe path {} in the tar", path.display()),
            ));
        }
        let size = entry.header().size()?;
        if !entry.unpack_in(dest)? {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unsafe path {} in the tar", path.display()),
            ));
        }
        if kind.is_file() {
            files += 1;
            bytes += size;
        }
    }
    end_of_archive(archive.into_inner())?;
    Ok((files, bytes))
}

/// The rest of a tar stream after its entries: the `tar` crate stops at the first zero block *or* at the
/// end of the stream, and writes a short last file without complaint — so a tar cut anywhere would restore
/// silently incomplete. A complete tar (Python's `tarfile`, which barman uses) ends with two zero blocks
/// padded to a 10 KiB record, and the reader stops after the first: at least one more zero block must
/// follow, and nothing else. Reading to the end also lets the decoder check its trailer (gzip's CRC).
fn end_of_archive(mut rest: impl Read) -> io::Result<()> {
    let mut buf = vec![0u8; 64 << 10];
    let mut zeros = 0u64;
    loop {
        let n = match rest.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf[..n].iter().any(|b| *b != 0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "data after the tar's end-of-archive blocks",
            ));
        }
        zeros += n as u64;
    }
    if zeros < 512 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the tar ends without its end-of-archive blocks: the object is truncated",
        ));
    }
    Ok(())
}

/// `to` relative to the directory `from` (both absolute or both relative to the same place).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let f: Vec<_> = from.components().collect();
    let t: Vec<_> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_names_are_parts() {
        assert_eq!(part_of("data.tar"), Some((None, Compression::None)));
        assert_eq!(part_of("data_0001.tar.lz4"), Some((None, Compression::Lz4)));
        assert_eq!(
            part_of("16384.tar.gz"),
            Some((Some(16384), Compression::Gzip))
        );
        assert_eq!(
            part_of("16384_0002.tar.snappy"),
            Some((Some(16384), Compression::Snappy))
        );
        for not in [
            "backup.info",
            "data.tar.7z",
            "data_1.tar",
            "x.tar",
            "data",
            "16384.tarx",
        ] {
            assert_eq!(part_of(not), None, "{not}");
        }
    }

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            b.append_data(&mut h, name, *data).expect("append");
        }
        b.into_inner().expect("tar")
    }

    #[test]
    fn a_tar_cut_anywhere_is_an_error_never_a_shorter_restore() {
        let big = vec![7u8; 3000];
        let data = tar_of(&[("a", b"first"), ("b", &big)]);
        let dir = tempfile::tempdir().expect("tempdir");
        let made = |name: String| {
            let d = dir.path().join(name);
            std::fs::create_dir(&d).expect("mkdir");
            d
        };
        assert_eq!(
            untar(&data[..], &made("whole".into())).expect("complete"),
            (2, 5 + 3000)
        );
        // At an entry boundary (before the end blocks), inside the second header, inside its data, and
        // between the two end blocks' worth of zeros and nothing.
        let second_header = 512 + 512;
        for cut in [
            second_header,
            second_header + 100,
            second_header + 512 + 1000,
            data.len() - 1024,
        ] {
            let e = untar(&data[..cut], &made(format!("cut{cut}"))).expect_err("truncated");
            // Inside a header or an entry's data the tar reader itself objects; at an entry boundary or
            // before the end blocks only the end check does.
            if cut == second_header || cut == data.len() - 1024 {
                assert!(e.to_string().contains("truncated"), "cut at {cut}: {e}");
            }
        }
        let mut garbage = data.clone();
        garbage.extend_from_slice(b"trailing");
        let e = untar(&garbage[..], &made("garbage".into())).expect_err("garbage");
        assert!(e.to_string().contains("after the tar's end"), "{e}");
    }

    #[tokio::test]
    async fn the_restored_size_is_estimated_from_the_tars_never_zero() {
        let s = std::sync::Arc::new(blobstore::MemoryStore::new());
        let c = Catalog::new(s.clone(), "srv");
        s.put(
            "srv/base/20261206T040000/backup.info",
            b"status=DONE".to_vec(),
        );
        s.put("srv/base/20261206T040000/data.tar", vec![0; 1000]);
        s.put("srv/base/20261206T040000/data_0001.tar.gz", vec![0; 100]);
        s.put("srv/base/20261206T040000/16384.tar.lz4", vec![0; 10]);
        assert_eq!(
            c.estimated_size("20261206T040000").await.expect("size"),
            1000 + 100 * 5 + 10 * 3
        );
    }

    #[test]
    fn links_are_relative_inside_the_volume() {
        assert_eq!(
            relative(
                Path::new("/v/snap/pgdata/pg_tblspc"),
                Path::new("/v/snap/tablespaces/16384")
            ),
            PathBuf::from("../../tablespaces/16384")
        );
    }

    #[test]
    fn an_escaping_tar_entry_is_refused_and_nothing_is_written_outside() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o600);
        h.set_cksum();
        // tar's builder refuses `..`; write the name into the header bytes directly.
        let name = b"../escaped";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        b.append(&h, &b"x"[..]).expect("append");
        let data = b.into_inner().expect("tar");
        let target = dir.join("pgdata");
        std::fs::create_dir_all(&target).expect("mkdir");
        let e = untar(&data[..], &target).expect_err("refused");
        assert!(e.to_string().contains("unsafe path"), "{e}");
        assert!(!dir.join("escaped").exists());
    }
}
