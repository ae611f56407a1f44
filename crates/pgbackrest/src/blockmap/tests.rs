use super::*;

/// The worked example of pgbackrest-format.md §4.4.3 (repo3, `pg_data/base/16385/1259` of a diff): block 0
/// from this backup's bundle 1, blocks 1–13 from blocks 1–13 of a 14-block super block of the full backup.
/// Checksums are stand-ins (the map only carries them).
fn example() -> Vec<u8> {
    let mut m = vec![0x00, 0x0e, 0x01, 0xd2, 0x45, 0xe1, 0x51];
    m.extend_from_slice(&[0xc1, 0x8d, 0x69, 0x85, 0xe5, 0xee]);
    m.extend_from_slice(&[
        0x07, 0x02, 0x9d, 0x97, 0x12, 0xb7, 0xc5, 0x0a, 0x1c, 0x19, 0x01,
    ]);
    for i in 1..=13u8 {
        m.extend_from_slice(&[i; 6]);
    }
    m
}

#[test]
fn the_worked_example_decodes() {
    let items = decode(&example(), 8192, 6, 4, 114_688).expect("decode");
    assert_eq!(items.len(), 14);
    assert_eq!(
        items[0],
        BlockItem {
            reference: 1,
            bundle_id: 1,
            offset: 8914,
            size: 1308,
            super_block_size: 8192,
            block_no: 0,
            checksum: vec![0xc1, 0x8d, 0x69, 0x85, 0xe5, 0xee],
        }
    );
    for (i, item) in items.iter().enumerate().skip(1) {
        assert_eq!(
            (
                item.reference,
                item.bundle_id,
                item.offset,
                item.size,
                item.super_block_size,
                item.block_no
            ),
            (0, 2, 297_885, 12_103, 114_688, i as u64),
            "block {i}"
        );
        assert_eq!(item.checksum, vec![i as u8; 6]);
    }
}

#[test]
fn damage_is_reported_not_panicked() {
    let m = example();
    // Truncated anywhere.
    for n in 0..m.len() {
        assert!(decode(&m[..n], 8192, 6, 4, 114_688).is_err(), "prefix {n}");
    }
    // A reference outside the chain, a wrong file size, a trailing byte.
    assert!(
        decode(&m, 8192, 6, 1, 114_688)
            .expect_err("ref")
            .contains("outside a chain")
    );
    assert!(
        decode(&m, 8192, 6, 4, 8192)
            .expect_err("size")
            .contains("more blocks")
    );
    assert!(
        decode(&m, 8192, 6, 4, 200_000)
            .expect_err("size")
            .contains("blocks for a file")
    );
    let mut t = m.clone();
    t.push(0);
    assert!(
        decode(&t, 8192, 6, 4, 114_688)
            .expect_err("trailing")
            .contains("after the end")
    );
    let mut v = m;
    v[0] = 1;
    assert!(
        decode(&v, 8192, 6, 4, 114_688)
            .expect_err("version")
            .contains("version")
    );
}

/// Found by the `block_map` fuzz target: a start block near `u64::MAX` overflowed the block number.
#[test]
fn a_huge_start_block_is_an_error_not_an_overflow() {
    // The fuzz input as the target reads it: first byte = references - 1, then the map.
    let input = include_bytes!("../../fuzz/seeds/block_map/regression-start-block-overflow");
    let (refs, map) = input.split_first().expect("input");
    assert!(decode(map, 8192, 6, usize::from(refs % 8) + 1, 1 << 24).is_err());
}

proptest::proptest! {
    #[test]
    fn decode_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200), refs in 1usize..5) {
        let _ = decode(&data, 8192, 6, refs, 1 << 20);
    }
}
