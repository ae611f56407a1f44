//! The JSON a restic repository stores (barman-restic-format.md B2): IDs, `config`, snapshots, index files
//! and tree blobs, and the v2 "unpacked file" framing (`0x02` ‖ zstd frame, or plain JSON).

use std::fmt;

use serde::Deserialize;

/// The largest decompressed JSON file or tree accepted (index files of big repositories are a few MiB;
/// this stops a decompression bomb, not a real repository).
pub const MAX_JSON: u64 = 1 << 30;

/// A SHA-256 ID (of a file's stored bytes, or of a blob's plaintext).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub [u8; 32]);

impl Id {
    /// Parses 64 hex digits.
    ///
    /// # Errors
    /// Anything else.
    pub fn parse(s: &str) -> Result<Self, String> {
        let b = s.as_bytes();
        if b.len() != 64 {
            return Err(format!("{s:?} is not a 64-digit hex ID"));
        }
        let mut out = [0u8; 32];
        for (i, pair) in b.chunks(2).enumerate() {
            let hex = std::str::from_utf8(pair).map_err(|_| format!("{s:?} is not hex"))?;
            out[i] = u8::from_str_radix(hex, 16).map_err(|_| format!("{s:?} is not hex"))?;
        }
        Ok(Self(out))
    }

    /// SHA-256 of `data`.
    #[must_use]
    pub fn of(data: &[u8]) -> Self {
        use sha2::Digest as _;
        Self(sha2::Sha256::digest(data).into())
    }

    /// 64 lower-case hex digits.
    #[must_use]
    pub fn hex(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", &self.to_string()[..8])
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The decrypted `config`.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Repository version: 1 (no compression) or 2.
    pub version: u32,
    /// The repository's ID.
    pub id: String,
}

/// A snapshot file's JSON.
#[derive(Debug, Clone, Deserialize)]
pub struct SnapshotJson {
    /// When the backup started.
    pub time: jiff::Timestamp,
    /// The root tree.
    pub tree: Id,
    /// The backed-up paths (`["/dumpfile.sql"]` for KubeStash's `--stdin` backups).
    #[serde(default)]
    pub paths: Vec<String>,
    /// `--host`.
    #[serde(default)]
    pub hostname: String,
    /// The user that ran the backup.
    #[serde(default)]
    pub username: String,
    /// `--tag`s.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// `restic x.y.z`.
    #[serde(default)]
    pub program_version: Option<String>,
    /// Statistics (restic ≥ 0.17).
    #[serde(default)]
    pub summary: Option<Summary>,
}

/// A snapshot's statistics.
#[derive(Debug, Clone, Deserialize)]
pub struct Summary {
    /// When the backup finished.
    #[serde(default)]
    pub backup_end: Option<jiff::Timestamp>,
    /// Bytes read from the source (the dump's size for a `--stdin` backup).
    #[serde(default)]
    pub total_bytes_processed: Option<u64>,
}

/// An index file's JSON.
#[derive(Debug, Clone, Deserialize)]
pub struct IndexJson {
    /// Packs and the blobs in each.
    #[serde(default)]
    pub packs: Vec<PackJson>,
}

/// One pack of an index file.
#[derive(Debug, Clone, Deserialize)]
pub struct PackJson {
    /// The pack file's ID.
    pub id: Id,
    /// Its blobs.
    #[serde(default)]
    pub blobs: Vec<BlobJson>,
}

/// One blob of a pack.
#[derive(Debug, Clone, Deserialize)]
pub struct BlobJson {
    /// SHA-256 of the plaintext.
    pub id: Id,
    /// `data` or `tree`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Byte offset in the pack.
    pub offset: u64,
    /// Stored (encrypted) length.
    pub length: u64,
    /// Present exactly when the blob is zstd-compressed (v2).
    #[serde(default)]
    pub uncompressed_length: Option<u64>,
}

/// A tree blob's JSON.
#[derive(Debug, Clone, Deserialize)]
pub struct TreeJson {
    /// The entries of a directory.
    #[serde(default)]
    pub nodes: Vec<NodeJson>,
}

/// One entry of a tree.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeJson {
    /// File name.
    pub name: String,
    /// `file`, `dir`, `symlink`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// A file's size.
    #[serde(default)]
    pub size: Option<u64>,
    /// A file's data blobs, in order.
    #[serde(default)]
    pub content: Option<Vec<Id>>,
    /// A directory's tree.
    #[serde(default)]
    pub subtree: Option<Id>,
}

/// The JSON inside an unpacked file's plaintext: v2 files may be `0x02` ‖ zstd frame; `config` and v1
/// files are plain.
///
/// # Errors
/// A frame that does not decompress (or is too large), or a plaintext that is neither.
pub fn unframe(plain: Vec<u8>, version: u32) -> Result<Vec<u8>, String> {
    match plain.first() {
        Some(2) if version >= 2 => {
            let decoder =
                zstd::stream::read::Decoder::new(&plain[1..]).map_err(|e| format!("zstd: {e}"))?;
            blobstore::read_bounded(decoder, MAX_JSON).map_err(|e| format!("zstd: {e}"))
        }
        Some(b'{' | b'[') => Ok(plain),
        Some(b) => Err(format!("unknown framing byte 0x{b:02x}")),
        None => Err("empty".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn ids_round_trip_through_hex(b in proptest::array::uniform32(any::<u8>())) {
            let id = Id(b);
            prop_assert_eq!(Id::parse(&id.hex()), Ok(id));
        }

        #[test]
        fn unframe_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64), v in 1u32..3) {
            let _ = unframe(data, v);
        }
    }

    #[test]
    fn bad_ids_are_refused() {
        assert!(Id::parse("ab").is_err());
        assert!(Id::parse(&"g".repeat(64)).is_err());
        assert!(Id::parse(&"é".repeat(32)).is_err());
    }

    #[test]
    fn v2_frames_decompress_and_v1_stays_plain() {
        let json = br#"{"a":1}"#.to_vec();
        let mut framed = vec![2u8];
        framed.extend(zstd::encode_all(&json[..], 3).expect("zstd"));
        assert_eq!(unframe(framed.clone(), 2), Ok(json.clone()));
        assert!(unframe(framed, 1).is_err(), "v1 has no frames");
        assert_eq!(unframe(json.clone(), 2), Ok(json));
        assert!(unframe(vec![1, 2, 3], 2).is_err());
    }
}
