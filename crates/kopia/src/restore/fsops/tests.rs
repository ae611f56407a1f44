use std::os::unix::fs::MetadataExt;
use std::sync::atomic::AtomicBool;

use super::*;

#[test]
fn is_zero_sees_a_single_set_byte_anywhere() {
    let mut data = vec![0u8; 3 * 4096 + 13];
    assert!(is_zero(&data));
    assert!(is_zero(&[]));
    for at in [0, 7, 4095, 4096, 8200, data.len() - 1] {
        data[at] = 1;
        assert!(!is_zero(&data), "byte {at}");
        data[at] = 0;
    }
}

/// A chunk of 1 MiB: 4 KiB of data, 600 KiB of zeros, 4 KiB of data, then zeros.
fn chunk() -> Vec<u8> {
    let mut data = vec![0u8; 1 << 20];
    data[..4096].fill(0xaa);
    data[(604 << 10)..(608 << 10)].fill(0x55);
    data
}

fn restore_chunk(sparse: bool, can_allocate: bool) -> (Vec<u8>, u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let data = chunk();
    let offset = 4096 * 3;
    let size = offset + data.len() as u64;
    let f = create_file(&path, size).unwrap();
    let flag = AtomicBool::new(can_allocate);
    let zeros = Zeros {
        sparse,
        can_allocate: &flag,
    };
    write_chunk(&f, &path, offset, &data, zeros).unwrap();
    zero_range(&f, &path, 0, offset, zeros).unwrap();
    f.sync_all().unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    let mut expected = vec![0u8; usize::try_from(offset).unwrap()];
    expected.extend_from_slice(&data);
    assert_eq!(std::fs::read(&path).unwrap(), expected);
    (expected, meta.len(), meta.blocks() * 512)
}

#[test]
fn zero_runs_are_allocated_not_written_unless_sparse() {
    // Allocated (fallocate) or written, the file occupies its whole size; sparse, only its data.
    let (_, len, allocated) = restore_chunk(false, true);
    assert!(allocated >= len, "{allocated} < {len}");
    let (_, len, allocated) = restore_chunk(false, false);
    assert!(allocated >= len, "written zeros: {allocated} < {len}");
    let (_, len, allocated) = restore_chunk(true, true);
    assert!(allocated < len / 2, "sparse: {allocated} of {len}");
}
