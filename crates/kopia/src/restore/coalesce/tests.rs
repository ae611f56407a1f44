//! Which chunk reads are coalesced.

use super::*;
use crate::ids::ContentId;

fn info(n: u8, pack: &str, offset: u32, len: u32) -> ContentInfo {
    ContentInfo {
        content_id: ContentId::from_parts(None, &[n; 16]).unwrap(),
        pack_blob_id: BlobId::new(pack),
        timestamp_seconds: 0,
        original_length: len,
        packed_length: len,
        pack_offset: offset,
        compression_header_id: 0,
        deleted: false,
        format_version: 2,
        encryption_key_id: 0,
    }
}

fn shape(reads: &[PackRead<u32>]) -> Vec<(String, u64, u64, Vec<u32>)> {
    reads
        .iter()
        .map(|r| {
            (
                r.pack.to_string(),
                r.start,
                r.end,
                r.parts.iter().map(|(k, _)| *k).collect(),
            )
        })
        .collect()
}

#[test]
fn neighbouring_small_contents_of_a_pack_share_one_read() {
    let items = vec![
        (0, info(0, "p1", 100, 50)),
        (1, info(1, "p2", 0, 10)),
        (2, info(2, "p1", 0, 100)),
        // 64 KiB gap: still one read.
        (3, info(3, "p1", 150 + (64 << 10), 10)),
        // One byte more than GAP_MAX after the previous end: a new read.
        (4, info(4, "p1", 160 + (128 << 10) + 1, 10)),
    ];
    assert_eq!(
        shape(&group(items)),
        vec![
            ("p1".into(), 0, 160 + (64 << 10), vec![2, 0, 3]),
            (
                "p1".into(),
                160 + (128 << 10) + 1,
                170 + (128 << 10) + 1,
                vec![4]
            ),
            ("p2".into(), 0, 10, vec![1]),
        ]
    );
}

#[test]
fn large_contents_are_read_alone_and_reads_stay_under_the_limit() {
    let mb = 1u32 << 20;
    let items = vec![
        (0, info(0, "p", 0, mb)),
        (1, info(1, "p", mb, 10)),
        (2, info(2, "p", mb + 10, mb - 1)),
        (3, info(3, "p", 2 * mb + 9, mb - 1)),
        (4, info(4, "p", 3 * mb + 8, mb - 1)),
        (5, info(5, "p", 4 * mb + 7, mb - 1)),
        (6, info(6, "p", 5 * mb + 6, mb - 1)),
        (7, info(7, "p", 6 * mb + 5, mb - 1)),
        (8, info(8, "p", 7 * mb + 4, mb - 1)),
        (9, info(9, "p", 8 * mb + 3, mb - 1)),
    ];
    let reads = group(items);
    assert_eq!(reads[0].parts.len(), 1, "a 1 MiB content is read alone");
    for r in &reads {
        assert!(r.end - r.start <= READ_MAX, "{:?}", shape(&reads));
    }
    let keys: Vec<u32> = reads
        .iter()
        .flat_map(|r| r.parts.iter().map(|(k, _)| *k))
        .collect();
    assert_eq!(keys, (0..10).collect::<Vec<_>>());
    assert_eq!(reads.len(), 3, "{:?}", shape(&reads));
}

#[test]
fn one_content_restored_into_several_files_is_read_once() {
    let items = vec![(0, info(7, "p", 40, 20)), (1, info(7, "p", 40, 20))];
    assert_eq!(shape(&group(items)), vec![("p".into(), 40, 60, vec![0, 1])]);
}

#[test]
fn reordering_stays_within_a_window() {
    // Chunk i of a long plan lives at offset (WINDOW*2 - i) * 10: reversed order. Within a
    // window the reads are merged; across windows they are not.
    let n = WINDOW * 2;
    let items: Vec<(u32, ContentInfo)> = (0..n)
        .map(|i| (i as u32, info(i as u8, "p", ((n - i) * 10) as u32, 10)))
        .collect();
    let reads = group(items);
    assert_eq!(reads.len(), 2);
    assert!(reads[0].parts.iter().all(|(k, _)| (*k as usize) < WINDOW));
    assert!(reads[1].parts.iter().all(|(k, _)| (*k as usize) >= WINDOW));
}
