//! Entry points for the cargo-fuzz targets in `crates/kopia/fuzz` (feature `fuzzing`). Each
//! parses untrusted bytes through an internal parser; they must return, never panic.

use bytes::Bytes;

use crate::crypto::EccParams;
use crate::ids::{ContentId, ObjectId};
use crate::index::IndexBlob;
use crate::snapshot::Directory;

/// Parses an index blob and decodes every entry and a few lookups.
pub fn index_blob(data: &[u8]) {
    if let Ok(blob) = IndexBlob::parse(Bytes::copy_from_slice(data)) {
        for info in blob.iter_prefix(&[]).flatten() {
            let _ = blob.lookup(&info.content_id);
        }
        if let Ok(id) = ContentId::from_parts(None, &[0u8; 16]) {
            let _ = blob.lookup(&id);
        }
    }
}

/// Parses object and content IDs and round-trips them through `Display`.
pub fn object_id(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(oid) = s.parse::<ObjectId>() {
            assert_eq!(oid.to_string().parse::<ObjectId>().ok(), Some(oid));
        }
        let _ = s.parse::<ContentId>();
    }
}

/// Parses a directory listing JSON.
pub fn directory(data: &[u8]) {
    if let Ok(d) = serde_json::from_slice::<Directory>(data) {
        let _ = serde_json::to_vec(&d);
    }
}

/// ECC-decodes arbitrary bytes with an overhead taken from the first byte.
pub fn ecc_decode(data: &[u8]) {
    if let Some((&pct, rest)) = data.split_first() {
        let p = EccParams::new(u32::from(pct % 40) + 1);
        let _ = p.decode(rest);
    }
}

/// Decompresses arbitrary bytes (BE32 header + stream), including the S2 decoder.
pub fn decompress(data: &[u8]) {
    let _ = crate::compression::decompress(data, None, 1 << 20);
}
