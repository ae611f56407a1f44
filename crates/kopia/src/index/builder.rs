//! Index blob writer (v1 and v2), used by tests and fixture builders.

use std::collections::BTreeMap;

use super::ContentInfo;

/// Builds binary index blobs from entries.
#[derive(Debug, Default)]
pub(crate) struct IndexBuilder {
    entries: BTreeMap<Vec<u8>, ContentInfo>,
}

impl IndexBuilder {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn add(&mut self, info: ContentInfo) {
        self.entries
            .insert(info.content_id.key_bytes().to_vec(), info);
    }

    fn key_size(&self) -> usize {
        self.entries.keys().next().map_or(17, Vec::len)
    }

    /// Index v2 bytes, followed by `extra` trailing bytes (kopia appends 32 random bytes).
    pub(crate) fn build_v2(&self, extra: &[u8]) -> Vec<u8> {
        let mut packs: Vec<&str> = Vec::new();
        let mut formats: Vec<(u32, u8, u8)> = Vec::new();
        for e in self.entries.values() {
            if !packs.contains(&e.pack_blob_id.as_str()) {
                packs.push(e.pack_blob_id.as_str());
            }
            let f = (
                e.compression_header_id,
                e.format_version,
                e.encryption_key_id,
            );
            if !formats.contains(&f) {
                formats.push(f);
            }
        }
        let long = self
            .entries
            .values()
            .any(|e| e.original_length >= 1 << 24 || e.packed_length >= 1 << 24);
        let entry_size = if long {
            19
        } else if packs.len() > 1 << 16 {
            18
        } else if formats.len() > 1 {
            17
        } else {
            16
        };
        let key_size = self.key_size();
        let mut out = vec![2u8, key_size as u8];
        out.extend_from_slice(&(entry_size as u16).to_be_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        out.extend_from_slice(&(packs.len() as u32).to_be_bytes());
        out.push(formats.len() as u8);
        out.extend_from_slice(&0u32.to_be_bytes());
        for (k, e) in &self.entries {
            out.extend_from_slice(k);
            let mut v = [0u8; 19];
            v[0..4].copy_from_slice(&(e.timestamp_seconds as u32).to_be_bytes());
            let off = e.pack_offset | if e.deleted { 0x8000_0000 } else { 0 };
            v[4..8].copy_from_slice(&off.to_be_bytes());
            v[8..11].copy_from_slice(&e.original_length.to_be_bytes()[1..]);
            v[11..14].copy_from_slice(&e.packed_length.to_be_bytes()[1..]);
            let pi = packs
                .iter()
                .position(|p| *p == e.pack_blob_id.as_str())
                .unwrap_or(0) as u32;
            v[14..16].copy_from_slice(&(pi as u16).to_be_bytes());
            let f = (
                e.compression_header_id,
                e.format_version,
                e.encryption_key_id,
            );
            v[16] = formats.iter().position(|x| *x == f).unwrap_or(0) as u8;
            v[17] = (pi >> 16) as u8;
            v[18] =
                (((e.original_length >> 24) as u8) << 4) | ((e.packed_length >> 24) as u8 & 0xf);
            out.extend_from_slice(&v[..entry_size]);
        }
        let names_start = out.len() + packs.len() * 5 + formats.len() * 6;
        let mut names = Vec::new();
        for p in &packs {
            out.push(p.len() as u8);
            out.extend_from_slice(&((names_start + names.len()) as u32).to_be_bytes());
            names.extend_from_slice(p.as_bytes());
        }
        for (c, fv, k) in &formats {
            out.extend_from_slice(&c.to_be_bytes());
            out.push(*fv);
            out.push(*k);
        }
        out.extend_from_slice(&names);
        out.extend_from_slice(extra);
        out
    }

    /// Index v1 bytes.
    pub(crate) fn build_v1(&self, extra: &[u8]) -> Vec<u8> {
        let key_size = self.key_size();
        let mut out = vec![1u8, key_size as u8];
        out.extend_from_slice(&20u16.to_be_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        let names_start = out.len() + self.entries.len() * (key_size + 20);
        let mut names: Vec<u8> = Vec::new();
        let mut name_offsets: BTreeMap<&str, u32> = BTreeMap::new();
        for e in self.entries.values() {
            let p = e.pack_blob_id.as_str();
            if !name_offsets.contains_key(p) {
                name_offsets.insert(p, (names_start + names.len()) as u32);
                names.extend_from_slice(p.as_bytes());
            }
        }
        for (k, e) in &self.entries {
            out.extend_from_slice(k);
            out.extend_from_slice(&(e.timestamp_seconds as u64).to_be_bytes()[2..]);
            out.push(e.format_version);
            out.push(e.pack_blob_id.as_str().len() as u8);
            out.extend_from_slice(
                &name_offsets
                    .get(e.pack_blob_id.as_str())
                    .copied()
                    .unwrap_or(0)
                    .to_be_bytes(),
            );
            let off = e.pack_offset | if e.deleted { 0x8000_0000 } else { 0 };
            out.extend_from_slice(&off.to_be_bytes());
            out.extend_from_slice(&e.packed_length.to_be_bytes());
        }
        out.extend_from_slice(&names);
        out.extend_from_slice(extra);
        out
    }
}
