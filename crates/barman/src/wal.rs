//! Fetching one file of the WAL archive (barman-restic-format.md A5): a segment, `<segment>.partial` or a
//! backup history file from `wals/<first 16 hex>/`, a timeline history file from `wals/`, each with any of
//! barman's compression extensions (an archive may mix them after a compression change). A segment that
//! is absent but has a `.partial` copy is served from that, as barman's restorer does.

use crate::catalog::Catalog;
use crate::codec::{self, Compression};

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

impl Catalog {
    /// Where WAL file `name` is stored; `None` when the archive does not hold it.
    ///
    /// # Errors
    /// `name` is not a WAL file name, or listing fails.
    pub async fn find_wal(&self, name: &str) -> Result<Option<StoredWal>, WalError> {
        let dir = dir_of(name).ok_or_else(|| WalError::InvalidName(name.to_owned()))?;
        let prefix = self.key(&format!("wals/{dir}"));
        let listing = self
            .store()
            .list_dir(&prefix)
            .await
            .map_err(|source| WalError::Storage {
                key: prefix.clone(),
                source,
            })?;
        let mut keys: Vec<&str> = listing.objects.iter().map(|o| o.key.as_str()).collect();
        keys.sort_unstable();
        let find = |want: &str| {
            keys.iter().find_map(|k| {
                let file = k.rsplit('/').next().unwrap_or(k);
                let (stem, compression) = Compression::split(file);
                (stem == want).then(|| ((*k).to_owned(), compression))
            })
        };
        if let Some((key, compression)) = find(name) {
            return Ok(Some(StoredWal {
                key,
                compression,
                partial: false,
            }));
        }
        if name.len() == 24
            && let Some((key, compression)) = find(&format!("{name}.partial"))
        {
            return Ok(Some(StoredWal {
                key,
                compression,
                partial: true,
            }));
        }
        Ok(None)
    }

    /// Reads and decodes a stored WAL file.
    ///
    /// # Errors
    /// Storage fails, or the file does not decode (or decodes to more than 1 GiB).
    pub async fn read_wal(&self, stored: &StoredWal) -> Result<Vec<u8>, WalError> {
        let data = self
            .store()
            .get(&stored.key)
            .await
            .map_err(|source| WalError::Storage {
                key: stored.key.clone(),
                source,
            })?;
        let (key, c) = (stored.key.clone(), stored.compression);
        tokio::task::spawn_blocking(move || {
            codec::decode_all(&data, c, WAL_LIMIT)
                .map_err(|source| WalError::Corrupted { key, source })
        })
        .await
        .map_err(|e| WalError::Corrupted {
            key: stored.key.clone(),
            source: std::io::Error::other(e.to_string()),
        })?
    }
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
}
