use super::*;
use crate::index::IndexBuilder;

fn info(id: &str, pack: &str, ts: i64, off: u32, deleted: bool, comp: u32) -> ContentInfo {
    ContentInfo {
        content_id: id.parse().unwrap(),
        pack_blob_id: BlobId::new(pack),
        timestamp_seconds: ts,
        original_length: 1000 + off,
        packed_length: 500 + off,
        pack_offset: off,
        compression_header_id: comp,
        deleted,
        format_version: 2,
        encryption_key_id: 0,
    }
}

fn sample() -> Vec<ContentInfo> {
    vec![
        info("00112233445566778899aabbccddeeff", "p1", 100, 32, false, 0),
        info(
            "k00112233445566778899aabbccddeeff",
            "q1",
            101,
            64,
            false,
            0x1101,
        ),
        info(
            "m00112233445566778899aabbccddeeff",
            "q1",
            102,
            96,
            true,
            0x1101,
        ),
        info(
            "m10112233445566778899aabbccddeeff",
            "q2",
            103,
            128,
            false,
            0,
        ),
    ]
}

#[test]
fn index_v2_roundtrips_entries_and_finds_by_key() {
    let mut b = IndexBuilder::new();
    for e in sample() {
        b.add(e);
    }
    let blob = IndexBlob::parse(Bytes::from(b.build_v2(&[7u8; 32]))).unwrap();
    assert_eq!(blob.version(), 2);
    assert_eq!(blob.len(), 4);
    for e in sample() {
        assert_eq!(blob.lookup(&e.content_id).unwrap().unwrap(), e);
    }
    let missing: ContentId = "k99112233445566778899aabbccddeeff".parse().unwrap();
    assert!(blob.lookup(&missing).unwrap().is_none());
    let ms: Vec<_> = blob.iter_prefix(b"m").map(Result::unwrap).collect();
    assert_eq!(ms.len(), 2);
}

#[test]
fn index_v2_with_long_lengths_uses_high_bits() {
    let mut e = info("00112233445566778899aabbccddeeff", "p1", 5, 0, false, 0);
    e.original_length = (1 << 27) + 5;
    e.packed_length = (1 << 25) + 3;
    let mut b = IndexBuilder::new();
    b.add(e.clone());
    let blob = IndexBlob::parse(Bytes::from(b.build_v2(&[]))).unwrap();
    assert_eq!(blob.lookup(&e.content_id).unwrap().unwrap(), e);
}

#[test]
fn index_v1_roundtrips_with_derived_lengths() {
    let mut b = IndexBuilder::new();
    for e in sample() {
        b.add(ContentInfo {
            compression_header_id: 0,
            ..e
        });
    }
    let blob = IndexBlob::parse(Bytes::from(b.build_v1(&[1, 2, 3]))).unwrap();
    assert_eq!(blob.version(), 1);
    let got = blob.lookup(&sample()[2].content_id).unwrap().unwrap();
    assert!(got.deleted);
    assert_eq!(got.pack_blob_id.as_str(), "q1");
    assert_eq!(got.original_length, got.packed_length - 28);
    assert_eq!(got.timestamp_seconds, 102);
}

#[test]
fn truncated_or_garbage_index_blobs_are_errors_not_panics() {
    let mut b = IndexBuilder::new();
    for e in sample() {
        b.add(e);
    }
    let full = b.build_v2(&[]);
    for cut in 0..full.len() {
        let r = IndexBlob::parse(Bytes::copy_from_slice(&full[..cut]));
        if let Ok(blob) = r {
            for i in 0..blob.len() {
                let _ = blob.entry_at(i);
            }
        }
    }
    assert!(IndexBlob::parse(Bytes::from_static(&[9, 0, 0])).is_err());
    let v1 = b.build_v1(&[]);
    for cut in 0..v1.len() {
        if let Ok(blob) = IndexBlob::parse(Bytes::copy_from_slice(&v1[..cut])) {
            for i in 0..blob.len() {
                let _ = blob.entry_at(i);
            }
        }
    }
}

#[test]
fn index_v1_unknown_key_size_is_an_empty_index() {
    let data = vec![1u8, 255, 0, 20, 0, 0, 0, 0];
    let blob = IndexBlob::parse(Bytes::from(data)).unwrap();
    assert_eq!(blob.len(), 0);
}
