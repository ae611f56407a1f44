//! Fetching one file of the WAL archive (barman-restic-format.md A5): a segment, `<segment>.partial` or a
//! backup history file from `wals/<first 16 hex>/`, a timeline history file from `wals/`, each with any of
//! barman's compression extensions (an archive may mix them after a compression change). A segment that
//! is absent but has a `.partial` copy is served from that, as barman's restorer does.

use crate::catalog::Catalog;
use crate::codec::Compression;

/// The largest WAL file PostgreSQL writes (`--wal-segsize=1024`).
const WAL_LIMIT: u64 = 1 << 30;

/// Where a WAL file is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWal {
    /// Object key.
    pub key: String,
    /// From its extension.
    pub compression: Compression,
    /// Served from `<segment>.partial` because the segment itself is not archived.
    pub partial: bool,
    /// Stored size.
    pub size: u64,
}

/// A WAL fetch that failed.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// Not a name PostgreSQL asks `restore_command` for.
    #[error("{0:?} is not a WAL file name")]
    InvalidName(String),
    /// Listing or reading failed.
    #[error("reading {key} failed")]
    Storage {
        /// Key or prefix.
        key: String,
        /// The store's error.
        #[source]
        source: blobstore::Error,
    },
    /// A segment of another PostgreSQL cluster (its first page names another system identifier).
    #[error(
        "{key} belongs to database system {found}, not {expected}: the server directory holds another \
         cluster's WAL (is serverName right?)"
    )]
    Foreign {
        /// Key.
        key: String,
        /// The segment's system identifier.
        found: u64,
        /// The restored cluster's.
        expected: u64,
    },
    /// The stored file does not decode.
    #[error("{key} does not decode")]
    Corrupted {
        /// Key.
        key: String,
        /// The decoder's error.
        #[source]
        source: std::io::Error,
    },
}

fn hex(s: &str) -> bool {
    s.bytes().all(|c| c.is_ascii_hexdigit())
}

/// The directory (under `wals/`) a WAL file name lives in: `Some("")` for the root (history files),
/// `Some("<16 hex>/")` for segments, partials and backup history files (`<segment>.<8 hex>.backup`).
fn dir_of(name: &str) -> Option<String> {
    let is_hex = |r: std::ops::Range<usize>| name.get(r).is_some_and(hex);
    let rest = |from: usize| name.get(from..);
    let segment_dir = || Some(format!("{}/", name.get(..16)?));
    if is_hex(0..24) {
        return match rest(24)? {
            "" | ".partial" => segment_dir(),
            r if r.len() == 16
                && r.starts_with('.')
                && is_hex(25..33)
                && r.ends_with(".backup") =>
            {
                segment_dir()
            }
            _ => None,
        };
    }
    (name.len() == 16 && is_hex(0..8) && rest(8) == Some(".history")).then(String::new)
}

/// Range size of a streamed WAL read, and ranges in flight: a segment's memory stays bounded however many
/// are fetched at once.
const WAL_CHUNK: u64 = 4 << 20;
const WAL_AHEAD: usize = 2;

/// `XLP_LONG_HEADER` in `xlp_info`: the first page of every segment carries the long header.
const XLP_LONG_HEADER: u16 = 0x0002;
/// `XLogLongPageHeaderData` up to `xlp_seg_size`: short header (20 bytes, aligned to 24), then
/// `xlp_sysid` (u64) and `xlp_seg_size` (u32).
const LONG_HEADER: usize = 36;

/// The system identifier a segment's first page names, in the byte order of the machine that wrote it
/// (the same order as `pg_control`'s, read the same way); `None` when the page has no long header.
#[must_use]
pub fn segment_system_id(first_page: &[u8]) -> Option<u64> {
    let h = first_page.get(..LONG_HEADER)?;
    let info = u16::from_ne_bytes([h[2], h[3]]);
    (info & XLP_LONG_HEADER != 0).then(|| {
        let mut id = [0u8; 8];
        id.copy_from_slice(&h[24..32]);
        u64::from_ne_bytes(id)
    })
}

/// Lists each `wals/` directory once.
struct Directories {
    keys: std::collections::BTreeMap<String, Vec<(String, u64)>>,
}

impl Directories {
    /// Where `name` is stored in the listed directories (the segment itself before its `.partial`).
    fn find(&self, dir: &str, name: &str) -> Option<StoredWal> {
        let objects = self.keys.get(dir)?;
        let find = |want: &str| {
            objects.iter().find_map(|(k, size)| {
                let file = k.rsplit('/').next().unwrap_or(k);
                let (stem, compression) = Compression::split(file);
                (stem == want).then(|| (k.clone(), compression, *size))
            })
        };
        if let Some((key, compression, size)) = find(name) {
            return Some(StoredWal {
                key,
                compression,
                partial: false,
                size,
            });
        }
        if name.len() == 24
            && let Some((key, compression, size)) = find(&format!("{name}.partial"))
        {
            return Some(StoredWal {
                key,
                compression,
                partial: true,
                size,
            });
        }
        None
    }
}

/// A write of a decoded WAL file that failed on either side.
#[derive(Debug, thiserror::Error)]
pub enum ReadIntoError {
    /// Reading, decoding or checking the stored file.
    #[error(transparent)]
    Read(#[from] WalError),
    /// Writing the destination.
    #[error("writing the WAL file")]
    Write(#[source] std::io::Error),
}

impl Catalog {
    async fn list_dirs<'a>(
        &self,
        dirs: impl IntoIterator<Item = &'a str>,
    ) -> Result<Directories, WalError> {
        let mut keys = std::collections::BTreeMap::new();
        for dir in dirs {
            if keys.contains_key(dir) {
                continue;
            }
            let prefix = self.key(&format!("wals/{dir}"));
            let listing =
                self.store()
                    .list_dir(&prefix)
                    .await
                    .map_err(|source| WalError::Storage {
                        key: prefix.clone(),
                        source,
                    })?;
            let mut objects: Vec<(String, u64)> = listing
                .objects
                .iter()
                .map(|o| (o.key.clone(), o.size))
                .collect();
            objects.sort_unstable();
            keys.insert(dir.to_owned(), objects);
        }
        Ok(Directories { keys })
    }

    /// Where WAL file `name` is stored; `None` when the archive does not hold it.
    ///
    /// # Errors
    /// `name` is not a WAL file name, or listing fails.
    pub async fn find_wal(&self, name: &str) -> Result<Option<StoredWal>, WalError> {
        Ok(self
            .find_wals(std::slice::from_ref(&name.to_owned()))
            .await?
            .pop()
            .flatten())
    }

    /// Where each of `names` is stored, listing every `wals/` directory they fall in once (a batch of
    /// consecutive segments usually needs one listing).
    ///
    /// # Errors
    /// A name is not a WAL file name, or listing fails.
    pub async fn find_wals(&self, names: &[String]) -> Result<Vec<Option<StoredWal>>, WalError> {
        let dirs = names
            .iter()
            .map(|n| dir_of(n).ok_or_else(|| WalError::InvalidName(n.clone())))
            .collect::<Result<Vec<String>, WalError>>()?;
        let listed = self.list_dirs(dirs.iter().map(String::as_str)).await?;
        Ok(names
            .iter()
            .zip(&dirs)
            .map(|(n, d)| listed.find(d, n))
            .collect())
    }

    /// Reads and decodes a stored WAL file.
    ///
    /// # Errors
    /// Storage fails, or the file does not decode (or decodes to more than 1 GiB).
    pub async fn read_wal(&self, stored: &StoredWal) -> Result<Vec<u8>, WalError> {
        let (out, _) = self
            .read_wal_into(stored, Vec::new(), None)
            .await
            .map_err(|e| match e {
                ReadIntoError::Read(e) => e,
                ReadIntoError::Write(source) => WalError::Corrupted {
                    key: stored.key.clone(),
                    source,
                },
            })?;
        Ok(out)
    }

    /// Streams a stored WAL file into `out` (ranged GETs, decoded on the blocking pool, never held whole
    /// in memory); returns `out` and the decoded size. With `system_id`, a segment (or partial) whose
    /// first page names another system is refused: the server directory holds another cluster's WAL.
    ///
    /// # Errors
    /// Storage fails, the file does not decode (or decodes to more than 1 GiB), the system identifier
    /// differs, or writing fails.
    pub async fn read_wal_into<W: std::io::Write + Send + 'static>(
        &self,
        stored: &StoredWal,
        out: W,
        system_id: Option<u64>,
    ) -> Result<(W, u64), ReadIntoError> {
        let (reader, producer) = blobstore::stream_object(
            self.store().clone(),
            stored.key.clone(),
            stored.size,
            WAL_CHUNK,
            WAL_AHEAD,
        );
        let (key, c) = (stored.key.clone(), stored.compression);
        let segment = {
            let file = key.rsplit('/').next().unwrap_or(&key);
            let (stem, _) = Compression::split(file);
            stem.len() == 24 || stem.ends_with(".partial")
        };
        let copied = tokio::task::spawn_blocking(move || {
            copy_checked(
                c.decoder(reader),
                out,
                segment.then_some(system_id).flatten(),
            )
        })
        .await
        .map_err(|e| {
            ReadIntoError::Read(WalError::Corrupted {
                key: key.clone(),
                source: std::io::Error::other(e.to_string()),
            })
        })?;
        // A storage failure explains a short stream better than the decoder's complaint.
        let fetched = producer.await.map_err(|e| {
            ReadIntoError::Read(WalError::Corrupted {
                key: key.clone(),
                source: std::io::Error::other(e.to_string()),
            })
        })?;
        if let Err(source) = fetched {
            return Err(ReadIntoError::Read(WalError::Storage { key, source }));
        }
        copied.map_err(|e| match e {
            Copy::Decode(source) => ReadIntoError::Read(WalError::Corrupted { key, source }),
            Copy::Foreign { found, expected } => ReadIntoError::Read(WalError::Foreign {
                key,
                found,
                expected,
            }),
            Copy::Write(e) => ReadIntoError::Write(e),
        })
    }
}

enum Copy {
    Decode(std::io::Error),
    Foreign { found: u64, expected: u64 },
    Write(std::io::Error),
}

/// Copies the decoded stream into `out` (at most [`WAL_LIMIT`] bytes), checking the first page's system
/// identifier when `system_id` is given.
fn copy_checked<W: std::io::Write>(
    mut src: impl std::io::Read,
    mut out: W,
    system_id: Option<u64>,
) -> Result<(W, u64), Copy> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let mut checked = system_id.is_none();
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Copy::Decode(e)),
        };
        let mut n = n;
        if !checked {
            // The long header is 36 bytes; fill at least that much before looking.
            while n < LONG_HEADER {
                match src.read(&mut buf[n..]) {
                    Ok(0) => break,
                    Ok(m) => n += m,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Copy::Decode(e)),
                }
            }
            if let (Some(expected), Some(found)) = (system_id, segment_system_id(&buf[..n]))
                && found != expected
            {
                return Err(Copy::Foreign { found, expected });
            }
            checked = true;
        }
        total += n as u64;
        if total > WAL_LIMIT {
            return Err(Copy::Decode(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("decodes to more than {WAL_LIMIT} bytes"),
            )));
        }
        out.write_all(&buf[..n]).map_err(Copy::Write)?;
    }
    Ok((out, total))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn names_map_to_their_directories() {
        assert_eq!(
            dir_of("000000010000000000000007").as_deref(),
            Some("0000000100000000/")
        );
        assert_eq!(
            dir_of("000000010000000000000007.partial").as_deref(),
            Some("0000000100000000/")
        );
        assert_eq!(
            dir_of("000000010000000000000002.00000028.backup").as_deref(),
            Some("0000000100000000/")
        );
        assert_eq!(dir_of("00000002.history").as_deref(), Some(""));
        for bad in [
            "",
            "00000002.historyx",
            "0000000100000000000000",
            "../etc/passwd",
            "00000001000000000000000G",
        ] {
            assert_eq!(dir_of(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn odd_names_never_panic(s in "[0-9A-F.a-z\u{e9}]{0,44}") {
            let _ = dir_of(&s);
        }
    }

    #[tokio::test]
    async fn compressed_partial_and_history_files_are_found_and_read() {
        let s = Arc::new(blobstore::MemoryStore::new());
        let c = Catalog::new(s.clone(), "srv");
        let seg = vec![7u8; 4096];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &seg).expect("gz");
        s.put(
            "srv/wals/0000000100000000/000000010000000000000007.gz",
            gz.finish().expect("gz"),
        );
        s.put(
            "srv/wals/0000000100000000/000000010000000000000008.partial",
            vec![8u8; 100],
        );
        s.put(
            "srv/wals/00000002.history.zst",
            zstd::encode_all(&b"1\t0/9000000\tno recovery target\n"[..], 1).expect("zst"),
        );
        // Another server's segment of the same name is not ours.
        s.put(
            "other/wals/0000000100000000/000000010000000000000009",
            vec![9u8; 10],
        );

        let f = c
            .find_wal("000000010000000000000007")
            .await
            .expect("find")
            .expect("archived");
        assert_eq!((f.compression, f.partial), (Compression::Gzip, false));
        assert_eq!(c.read_wal(&f).await.expect("read"), seg);
        let p = c
            .find_wal("000000010000000000000008")
            .await
            .expect("find")
            .expect("partial");
        assert!(p.partial);
        assert_eq!(c.read_wal(&p).await.expect("read").len(), 100);
        let h = c
            .find_wal("00000002.history")
            .await
            .expect("find")
            .expect("history");
        assert!(
            c.read_wal(&h)
                .await
                .expect("read")
                .starts_with(b"1\t0/9000000")
        );
        assert_eq!(
            c.find_wal("000000010000000000000009").await.expect("find"),
            None
        );
        assert_eq!(c.find_wal("00000003.history").await.expect("find"), None);
        assert!(matches!(
            c.find_wal("x").await,
            Err(WalError::InvalidName(_))
        ));
        // A damaged object is an error naming it, never a short file.
        s.put(
            "srv/wals/0000000100000000/00000001000000000000000A.gz",
            b"\x1f\x8b\x08garbage".to_vec(),
        );
        let d = c
            .find_wal("00000001000000000000000A")
            .await
            .expect("find")
            .expect("there");
        let e = c.read_wal(&d).await.expect_err("damaged");
        assert!(e.to_string().contains("00000001000000000000000A.gz"), "{e}");
    }

    fn segment(system_id: u64, len: usize) -> Vec<u8> {
        let mut seg = vec![0u8; len];
        seg[..2].copy_from_slice(&0xD116u16.to_ne_bytes());
        seg[2..4].copy_from_slice(&(XLP_LONG_HEADER | 0x0004).to_ne_bytes());
        seg[24..32].copy_from_slice(&system_id.to_ne_bytes());
        seg
    }

    #[tokio::test]
    async fn a_batch_lists_each_directory_once_and_foreign_segments_are_refused() {
        let s = Arc::new(blobstore::MemoryStore::new());
        let c = Catalog::new(s.clone(), "srv");
        let mine = segment(7_000_000_000_000_000_001, 64 << 10);
        let mut lz4 = lz4_flex::frame::FrameEncoder::new(Vec::new());
        std::io::Write::write_all(&mut lz4, &mine).expect("lz4");
        s.put(
            "srv/wals/0000000100000000/0000000100000000000000FF.lz4",
            lz4.finish().expect("lz4"),
        );
        s.put(
            "srv/wals/0000000100000001/000000010000000100000000",
            segment(42, 4096),
        );
        let names: Vec<String> = [
            "0000000100000000000000FF",
            "000000010000000100000000",
            "000000010000000100000001",
        ]
        .map(str::to_owned)
        .to_vec();
        let found = c.find_wals(&names).await.expect("find");
        assert_eq!(found.iter().filter(|f| f.is_some()).count(), 2);
        let first = found[0].clone().expect("first");
        assert_eq!(first.compression, Compression::Lz4);
        let (out, n) = c
            .read_wal_into(&first, Vec::new(), Some(7_000_000_000_000_000_001))
            .await
            .expect("same system");
        assert_eq!((out.len() as u64, n), (64 << 10, 64 << 10));
        assert_eq!(out, mine);
        let second = found[1].clone().expect("second");
        let e = c
            .read_wal_into(&second, Vec::new(), Some(7_000_000_000_000_000_001))
            .await
            .expect_err("another system");
        assert!(
            e.to_string().contains("belongs to database system 42"),
            "{e}"
        );
        // Without an expected identifier (no pg_control to compare with) the bytes are served.
        assert_eq!(c.read_wal(&second).await.expect("read").len(), 4096);
        assert_eq!(segment_system_id(&[0u8; 10]), None);
        assert_eq!(segment_system_id(&[0u8; 64]), None);
    }
}
