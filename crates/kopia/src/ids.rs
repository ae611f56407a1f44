//! Typed identifiers: blob IDs, content IDs, object IDs and manifest IDs.

use std::fmt;
use std::str::FromStr;

use crate::error::IdParseError;

/// Maximum hash length of a content ID in bytes.
pub(crate) const MAX_HASH_LEN: usize = 32;

/// The name of a blob in storage (`kopia.repository`, `p0123…`, `xn0_…`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobId(String);

impl BlobId {
    /// Wraps a blob name. Blob names are opaque to storage; they are never empty.
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The blob name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 16 bytes used as the blob-crypto IV: the last 32 hex characters of the name before its
    /// first `-` (kopia `internal/blobcrypto`).
    pub(crate) fn crypto_iv(&self) -> Option<[u8; 16]> {
        let base = self.0.split('-').next().unwrap_or_default();
        let tail = base.get(base.len().checked_sub(32)?..)?;
        let mut out = [0u8; 16];
        decode_hex_into(tail, &mut out).then_some(out)
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({})", self.0)
    }
}

impl From<&str> for BlobId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// A content ID: an optional prefix letter `g..=z` plus a 16–32 byte hash of the content's plaintext.
///
/// Ordering is the index key order: the key bytes are the prefix (or `0x00`) followed by the hash,
/// compared with `memcmp`, so unprefixed IDs sort before prefixed ones.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentId {
    key: [u8; MAX_HASH_LEN + 1],
    hash_len: u8,
}

impl ContentId {
    /// Builds a content ID from a prefix (`None` or `Some(b'g'..=b'z')`) and hash bytes.
    ///
    /// # Errors
    ///
    /// Fails when the prefix is out of range or the hash is empty or longer than 32 bytes.
    pub fn from_parts(prefix: Option<u8>, hash: &[u8]) -> Result<Self, IdParseError> {
        if hash.is_empty() || hash.len() > MAX_HASH_LEN {
            return Err(IdParseError::ContentIdLength { len: hash.len() });
        }
        let mut key = [0u8; MAX_HASH_LEN + 1];
        if let Some(p) = prefix {
            if !(b'g'..=b'z').contains(&p) {
                return Err(IdParseError::ContentIdPrefix {
                    prefix: char::from(p),
                });
            }
            key[0] = p;
        }
        key[1..=hash.len()].copy_from_slice(hash);
        // hash.len() <= 32, checked above.
        Ok(Self {
            key,
            hash_len: hash.len() as u8,
        })
    }

    /// Parses index key bytes (`prefix-or-0 || hash`).
    ///
    /// # Errors
    ///
    /// Fails on a bad prefix byte or length.
    pub fn from_key_bytes(key: &[u8]) -> Result<Self, IdParseError> {
        let (&p, hash) = key
            .split_first()
            .ok_or(IdParseError::ContentIdLength { len: 0 })?;
        Self::from_parts((p != 0).then_some(p), hash)
    }

    /// The prefix letter, if any.
    pub fn prefix(&self) -> Option<u8> {
        (self.key[0] != 0).then_some(self.key[0])
    }

    /// The hash bytes.
    pub fn hash(&self) -> &[u8] {
        &self.key[1..=usize::from(self.hash_len)]
    }

    /// The index key bytes: prefix (or `0x00`) followed by the hash.
    pub fn key_bytes(&self) -> &[u8] {
        &self.key[..=usize::from(self.hash_len)]
    }

    /// The AEAD IV/AAD of the content: the last 16 bytes of its hash (kopia `content.getContentIV`).
    pub(crate) fn iv(&self) -> &[u8] {
        let h = self.hash();
        &h[h.len().saturating_sub(16)..]
    }
}

impl PartialOrd for ContentId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ContentId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key_bytes().cmp(other.key_bytes())
    }
}

impl FromStr for ContentId {
    type Err = IdParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        // Content IDs are ASCII; rejecting anything else first also keeps the slicing below on
        // a character boundary (found by the object_id fuzz target).
        if !s.is_ascii() {
            return Err(IdParseError::Hex {
                input: s.to_owned(),
            });
        }
        let (prefix, hex) = if b.len() % 2 == 1 {
            (Some(b[0]), &s[1..])
        } else {
            (None, s)
        };
        if hex.is_empty() || hex.len() > 2 * MAX_HASH_LEN {
            return Err(IdParseError::ContentIdLength { len: hex.len() / 2 });
        }
        let mut buf = [0u8; MAX_HASH_LEN];
        let n = hex.len() / 2;
        if !decode_hex_into(hex, &mut buf[..n]) {
            return Err(IdParseError::Hex {
                input: s.to_owned(),
            });
        }
        Self::from_parts(prefix, &buf[..n])
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.prefix() {
            write!(f, "{}", char::from(p))?;
        }
        for b in self.hash() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({self})")
    }
}

/// An object ID: `I*` indirection levels, an optional legacy `Z` (object-level compression) and a
/// content ID. A legacy `D` marker is accepted and dropped when parsing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId {
    indirection: u8,
    compressed: bool,
    content: ContentId,
}

impl ObjectId {
    /// A direct object ID for a content.
    pub fn direct(content: ContentId) -> Self {
        Self {
            indirection: 0,
            compressed: false,
            content,
        }
    }

    /// Number of `I` levels.
    pub fn indirection(&self) -> u8 {
        self.indirection
    }

    /// Whether the object carries legacy object-level compression (`Z`).
    pub fn is_compressed(&self) -> bool {
        self.compressed
    }

    /// The content at the bottom of the ID.
    pub fn content_id(&self) -> ContentId {
        self.content
    }

    /// The same object with one fewer level of indirection, if indirect.
    pub(crate) fn unwrap_indirect(&self) -> Option<Self> {
        (self.indirection > 0).then(|| Self {
            indirection: self.indirection - 1,
            ..*self
        })
    }
}

impl FromStr for ObjectId {
    type Err = IdParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut rest = s;
        let mut indirection: u8 = 0;
        while let Some(r) = rest.strip_prefix('I') {
            indirection = indirection
                .checked_add(1)
                .ok_or_else(|| IdParseError::ObjectId {
                    input: s.to_owned(),
                })?;
            rest = r;
        }
        let mut compressed = false;
        if let Some(r) = rest.strip_prefix('Z') {
            if indirection > 0 {
                return Err(IdParseError::ObjectId {
                    input: s.to_owned(),
                });
            }
            compressed = true;
            rest = r;
        }
        if let Some(r) = rest.strip_prefix('D') {
            rest = r;
        }
        let content = rest.parse().map_err(|_| IdParseError::ObjectId {
            input: s.to_owned(),
        })?;
        Ok(Self {
            indirection,
            compressed,
            content,
        })
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for _ in 0..self.indirection {
            f.write_str("I")?;
        }
        if self.compressed {
            f.write_str("Z")?;
        }
        write!(f, "{}", self.content)
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

impl serde::Serialize for ObjectId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ObjectId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The ID of a manifest entry (16 random bytes in hex). Snapshot IDs are manifest IDs.
#[derive(
    Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct ManifestId(String);

impl ManifestId {
    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ManifestId {
    type Err = IdParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(IdParseError::ManifestId {
                input: s.to_owned(),
            });
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for ManifestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ManifestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManifestId({})", self.0)
    }
}

/// A snapshot is identified by the ID of its manifest entry.
pub type SnapshotId = ManifestId;

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes `hex` into `out` (which must be exactly half as long). Returns false on any bad input.
pub(crate) fn decode_hex_into(hex: &str, out: &mut [u8]) -> bool {
    let b = hex.as_bytes();
    if b.len() != out.len() * 2 {
        return false;
    }
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        match (hex_val(pair[0]), hex_val(pair[1])) {
            (Some(h), Some(l)) => *o = (h << 4) | l,
            _ => return false,
        }
    }
    true
}

/// Lowercase hex of `bytes`.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests;
