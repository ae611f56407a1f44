//! Parsing of one decrypted index blob (v1 or v2), with binary search and prefix iteration.
//! All offsets are bounds-checked; malformed input yields errors, never panics.

use bytes::Bytes;

use super::ContentInfo;
use crate::error::{Corruption, Unsupported};
use crate::ids::{BlobId, ContentId};

const V1_HEADER: usize = 8;
const V1_VALUE: usize = 20;
const V2_HEADER: usize = 17;
const V2_PACK_INFO: usize = 5;
const V2_FORMAT_INFO: usize = 6;
const UNKNOWN_KEY_SIZE: usize = 255;
/// AEAD overhead of a content in a v1 index (nonce + tag), used to derive `original_length`.
const V1_PER_CONTENT_OVERHEAD: u32 = 28;
const INVALID_BLOB_ID: &str = "---invalid---";

#[derive(Debug, Clone, Copy)]
struct FormatInfo {
    compression_header_id: u32,
    format_version: u8,
    encryption_key_id: u8,
}

/// A parsed index blob. Entries stay in the original bytes and are decoded on access.
#[derive(Debug)]
pub(crate) struct IndexBlob {
    data: Bytes,
    version: u8,
    key_size: usize,
    value_size: usize,
    entry_count: usize,
    entries_offset: usize,
    base_timestamp: u32,
    packs: Vec<BlobId>,
    formats: Vec<FormatInfo>,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn be24(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 3)?;
    Some((u32::from(s[0]) << 16) | (u32::from(s[1]) << 8) | u32::from(s[2]))
}
fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn be48(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at + 6)?;
    Some(s.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
}

fn malformed(what: &'static str) -> Corruption {
    Corruption::Malformed { what }
}

/// Errors from parsing an index blob.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IndexParseError {
    #[error(transparent)]
    Corrupt(#[from] Corruption),
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
}

impl IndexBlob {
    /// Parses decrypted index bytes, dispatching on the version byte.
    pub(crate) fn parse(data: Bytes) -> Result<Self, IndexParseError> {
        match data.first() {
            Some(1) => Ok(Self::parse_v1(data)?),
            Some(2) => Ok(Self::parse_v2(data)?),
            Some(&v) => Err(Unsupported::IndexVersion(v).into()),
            None => Err(malformed("empty index blob").into()),
        }
    }

    fn parse_v1(data: Bytes) -> Result<Self, Corruption> {
        let h = data.get(..V1_HEADER).ok_or(malformed("index v1 header"))?;
        let key_size = usize::from(h[1]);
        let value_size = usize::from(be16(h, 2).ok_or(malformed("index v1 header"))?);
        let entry_count = be32(h, 4).ok_or(malformed("index v1 header"))? as usize;
        let mut blob = Self {
            data: data.clone(),
            version: 1,
            key_size,
            value_size,
            entry_count,
            entries_offset: V1_HEADER,
            base_timestamp: 0,
            packs: Vec::new(),
            formats: Vec::new(),
        };
        if key_size == UNKNOWN_KEY_SIZE {
            blob.entry_count = 0;
            return Ok(blob);
        }
        if key_size <= 1 || value_size != V1_VALUE || key_size + value_size > 256 {
            return Err(malformed("index v1 key or value size"));
        }
        let end = entry_count
            .checked_mul(key_size + value_size)
            .and_then(|n| n.checked_add(V1_HEADER))
            .ok_or(malformed("index v1 entry count"))?;
        if end > data.len() {
            return Err(malformed("index v1 entries beyond end of blob"));
        }
        Ok(blob)
    }

    fn parse_v2(data: Bytes) -> Result<Self, Corruption> {
        let h = data.get(..V2_HEADER).ok_or(malformed("index v2 header"))?;
        let key_size = usize::from(h[1]);
        let value_size = usize::from(be16(h, 2).ok_or(malformed("index v2 header"))?);
        let entry_count = be32(h, 4).ok_or(malformed("index v2 header"))? as usize;
        let pack_count = be32(h, 8).ok_or(malformed("index v2 header"))? as usize;
        let format_count = usize::from(h[12]);
        let base_timestamp = be32(h, 13).ok_or(malformed("index v2 header"))?;
        if key_size <= 1
            || !(16..=19).contains(&value_size)
            || key_size + value_size > 256
            || format_count > 255
        {
            return Err(malformed("index v2 header sizes"));
        }
        let packs_offset = entry_count
            .checked_mul(key_size + value_size)
            .and_then(|n| n.checked_add(V2_HEADER))
            .ok_or(malformed("index v2 entry count"))?;
        let formats_offset = pack_count
            .checked_mul(V2_PACK_INFO)
            .and_then(|n| n.checked_add(packs_offset))
            .ok_or(malformed("index v2 pack count"))?;
        let formats_end = formats_offset + format_count * V2_FORMAT_INFO;
        if formats_end > data.len() {
            return Err(malformed("index v2 sections beyond end of blob"));
        }
        let mut packs = Vec::with_capacity(pack_count);
        for i in 0..pack_count {
            let at = packs_offset + i * V2_PACK_INFO;
            let len = usize::from(data[at]);
            let off = be32(&data, at + 1).ok_or(malformed("index v2 pack info"))? as usize;
            let name = data
                .get(off..off.saturating_add(len))
                .ok_or(malformed("index v2 pack name"))?;
            let name = std::str::from_utf8(name).map_err(|_| malformed("index v2 pack name"))?;
            packs.push(BlobId::new(name));
        }
        let formats = (0..format_count)
            .map(|i| {
                let at = formats_offset + i * V2_FORMAT_INFO;
                FormatInfo {
                    compression_header_id: be32(&data, at).unwrap_or(0),
                    format_version: data[at + 4],
                    encryption_key_id: data[at + 5],
                }
            })
            .collect();
        Ok(Self {
            data,
            version: 2,
            key_size,
            value_size,
            entry_count,
            entries_offset: V2_HEADER,
            base_timestamp,
            packs,
            formats,
        })
    }

    /// Index format version (1 or 2).
    #[cfg(test)]
    pub(crate) fn version(&self) -> u8 {
        self.version
    }

    /// Number of entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entry_count
    }

    fn key_at(&self, i: usize) -> &[u8] {
        let at = self.entries_offset + i * (self.key_size + self.value_size);
        // In range: checked against the blob length at parse time.
        self.data.get(at..at + self.key_size).unwrap_or_default()
    }

    fn value_at(&self, i: usize) -> &[u8] {
        let at = self.entries_offset + i * (self.key_size + self.value_size) + self.key_size;
        self.data.get(at..at + self.value_size).unwrap_or_default()
    }

    /// First position whose key is `>= key`.
    fn lower_bound(&self, key: &[u8]) -> usize {
        let (mut lo, mut hi) = (0, self.entry_count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.key_at(mid) < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Looks up a content ID.
    pub(crate) fn lookup(&self, id: &ContentId) -> Result<Option<ContentInfo>, Corruption> {
        let key = id.key_bytes();
        if key.len() != self.key_size || self.entry_count == 0 {
            return Ok(None);
        }
        let pos = self.lower_bound(key);
        if pos < self.entry_count && self.key_at(pos) == key {
            return self.entry_at(pos).map(Some);
        }
        Ok(None)
    }

    /// Decodes entry `i`.
    pub(crate) fn entry_at(&self, i: usize) -> Result<ContentInfo, Corruption> {
        let content_id =
            ContentId::from_key_bytes(self.key_at(i)).map_err(|_| malformed("index entry key"))?;
        let v = self.value_at(i);
        if self.version == 1 {
            self.decode_v1(content_id, v)
        } else {
            Ok(self.decode_v2(content_id, v))
        }
    }

    fn decode_v1(&self, content_id: ContentId, v: &[u8]) -> Result<ContentInfo, Corruption> {
        let bad = || malformed("index v1 entry");
        let ts = be48(v, 0).ok_or_else(bad)?;
        let name_len = usize::from(*v.get(7).ok_or_else(bad)?);
        let name_off = be32(v, 8).ok_or_else(bad)? as usize;
        let off_flags = be32(v, 12).ok_or_else(bad)?;
        let packed = be32(v, 16).ok_or_else(bad)?;
        let name = self
            .data
            .get(name_off..name_off.saturating_add(name_len))
            .ok_or(malformed("index v1 pack name"))?;
        let name = std::str::from_utf8(name).map_err(|_| malformed("index v1 pack name"))?;
        Ok(ContentInfo {
            content_id,
            pack_blob_id: BlobId::new(name),
            // 48-bit value always fits in i64.
            timestamp_seconds: ts as i64,
            original_length: packed.saturating_sub(V1_PER_CONTENT_OVERHEAD),
            packed_length: packed,
            pack_offset: off_flags & 0x7fff_ffff,
            compression_header_id: 0,
            deleted: off_flags & 0x8000_0000 != 0,
            format_version: v[6],
            encryption_key_id: 0,
        })
    }

    fn decode_v2(&self, content_id: ContentId, v: &[u8]) -> ContentInfo {
        // v.len() == value_size >= 16, validated at parse time.
        let ts = be32(v, 0).unwrap_or(0);
        let off_flags = be32(v, 4).unwrap_or(0);
        let mut original = be24(v, 8).unwrap_or(0);
        let mut packed = be24(v, 11).unwrap_or(0);
        let mut pack_index = u32::from(be16(v, 14).unwrap_or(0));
        let format_index = v.get(16).map_or(0, |&b| usize::from(b));
        if let Some(&hi) = v.get(17) {
            pack_index |= u32::from(hi) << 16;
        }
        if let Some(&hi) = v.get(18) {
            original |= u32::from(hi >> 4) << 24;
            packed |= u32::from(hi & 0xf) << 24;
        }
        let (compression_header_id, format_version, encryption_key_id) =
            match self.formats.get(format_index) {
                Some(f) => (
                    f.compression_header_id,
                    f.format_version,
                    f.encryption_key_id,
                ),
                None => (0xFFFF, 0xFF, 0xFF),
            };
        let pack_blob_id = self
            .packs
            .get(pack_index as usize)
            .cloned()
            .unwrap_or_else(|| BlobId::new(INVALID_BLOB_ID));
        ContentInfo {
            content_id,
            pack_blob_id,
            timestamp_seconds: i64::from(ts) + i64::from(self.base_timestamp),
            original_length: original,
            packed_length: packed,
            pack_offset: off_flags & 0x7fff_ffff,
            compression_header_id,
            deleted: off_flags & 0x8000_0000 != 0,
            format_version,
            encryption_key_id,
        }
    }

    /// Entries whose key starts with `prefix` (key bytes), in key order.
    pub(crate) fn iter_prefix<'a>(
        &'a self,
        prefix: &'a [u8],
    ) -> impl Iterator<Item = Result<ContentInfo, Corruption>> + 'a {
        let start = self.lower_bound(prefix);
        (start..self.entry_count)
            .take_while(move |&i| self.key_at(i).starts_with(prefix))
            .map(move |i| self.entry_at(i))
    }
}

#[cfg(test)]
mod tests;
