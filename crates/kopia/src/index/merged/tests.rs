use bytes::Bytes;

use super::*;
use crate::index::IndexBuilder;

const ID: &str = "m00112233445566778899aabbccddeeff";

fn entry(pack: &str, ts: i64, deleted: bool) -> ContentInfo {
    ContentInfo {
        content_id: ID.parse().unwrap(),
        pack_blob_id: BlobId::new(pack),
        timestamp_seconds: ts,
        original_length: 10,
        packed_length: 38,
        pack_offset: 0,
        compression_header_id: 0,
        deleted,
        format_version: 2,
        encryption_key_id: 0,
    }
}

fn blob(name: &str, e: ContentInfo) -> (BlobId, Arc<IndexBlob>) {
    let mut b = IndexBuilder::new();
    b.add(e);
    (
        BlobId::new(name),
        Arc::new(IndexBlob::parse(Bytes::from(b.build_v2(&[]))).unwrap()),
    )
}

fn id() -> ContentId {
    ID.parse().unwrap()
}

#[test]
fn newer_timestamp_wins_regardless_of_blob_order() {
    let idx = MergedIndex::new(
        vec![
            blob("a", entry("p2", 200, false)),
            blob("b", entry("p1", 100, false)),
        ],
        0,
    );
    assert_eq!(
        idx.lookup(&id()).unwrap().unwrap().pack_blob_id.as_str(),
        "p2"
    );
    let idx = MergedIndex::new(
        vec![
            blob("b", entry("p1", 100, false)),
            blob("a", entry("p2", 200, false)),
        ],
        0,
    );
    assert_eq!(
        idx.lookup(&id()).unwrap().unwrap().pack_blob_id.as_str(),
        "p2"
    );
}

#[test]
fn on_equal_timestamps_non_deleted_then_larger_pack_wins() {
    let idx = MergedIndex::new(
        vec![
            blob("a", entry("p9", 100, true)),
            blob("b", entry("p1", 100, false)),
        ],
        0,
    );
    let w = idx.lookup(&id()).unwrap().unwrap();
    assert!(!w.deleted);
    let idx = MergedIndex::new(
        vec![
            blob("a", entry("p1", 100, false)),
            blob("b", entry("p2", 100, false)),
        ],
        0,
    );
    assert_eq!(
        idx.lookup(&id()).unwrap().unwrap().pack_blob_id.as_str(),
        "p2"
    );
}

#[test]
fn deleted_winner_is_readable_until_the_watermark_passes_it() {
    let blobs = vec![
        blob("a", entry("p1", 100, false)),
        blob("b", entry("p1", 150, true)),
    ];
    let before = MergedIndex::new(blobs.clone(), 149);
    let w = before.lookup(&id()).unwrap().unwrap();
    assert!(w.deleted, "deleted winner stays readable");
    assert!(
        before.list_prefix(b"m").unwrap().is_empty(),
        "but is hidden from listings"
    );
    let after = MergedIndex::new(blobs, 150);
    assert!(
        after.lookup(&id()).unwrap().is_none(),
        "no fallback to the older entry"
    );
}
