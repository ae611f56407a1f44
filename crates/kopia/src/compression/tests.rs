use std::io::Write;

use super::*;

fn with_header(id: u32, stream: &[u8]) -> Vec<u8> {
    let mut v = id.to_be_bytes().to_vec();
    v.extend_from_slice(stream);
    v
}

fn sample() -> Vec<u8> {
    (0..100_000u32).map(|i| ((i / 7) % 13) as u8).collect()
}

#[test]
fn gzip_zstd_deflate_and_lz4_decompress() {
    let data = sample();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&data).unwrap();
    let gz = gz.finish().unwrap();
    assert_eq!(
        decompress(&with_header(0x1000, &gz), Some(0x1000), 0).unwrap(),
        data
    );
    assert_eq!(
        decompress(&with_header(0x1301, &gz), Some(0x1301), 0).unwrap(),
        data
    );
    let z = zstd::encode_all(&data[..], 1).unwrap();
    assert_eq!(
        decompress(&with_header(0x1101, &z), Some(0x1101), data.len()).unwrap(),
        data
    );
    let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    d.write_all(&data).unwrap();
    let d = d.finish().unwrap();
    assert_eq!(
        decompress(&with_header(0x1500, &d), Some(0x1500), 0).unwrap(),
        data
    );
    let mut l = lz4_flex::frame::FrameEncoder::new(Vec::new());
    l.write_all(&data).unwrap();
    let l = l.finish().unwrap();
    assert_eq!(decompress(&with_header(0x1400, &l), None, 0).unwrap(), data);
}

#[test]
fn header_mismatch_and_unknown_ids_are_errors() {
    let z = zstd::encode_all(&b"abc"[..], 1).unwrap();
    assert!(matches!(
        decompress(&with_header(0x1101, &z), Some(0x1000), 0),
        Err(DecompressError::Corrupt(
            Corruption::CompressionHeader { .. }
        ))
    ));
    assert!(matches!(
        decompress(&with_header(0x9999, &z), None, 0),
        Err(DecompressError::Unsupported(_))
    ));
    assert!(decompress(&[0x00, 0x00], None, 0).is_err());
}

/// A hand-assembled S2 stream: literal "abcd", copy2 offset 4 len 8, repeat (copy1 offset 0) len 4.
#[test]
fn s2_stream_with_repeat_offset_decodes() {
    let expected = b"abcdabcdabcdabcd".to_vec();
    let mut block = vec![16u8]; // uvarint length
    block.push(3 << 2); // literal len 4
    block.extend_from_slice(b"abcd");
    block.push(((8 - 1) << 2) | 2); // copy2 len 8
    block.extend_from_slice(&4u16.to_le_bytes());
    block.push(1); // copy1, length code 0 -> 4, offset high bits 0
    block.push(0); // offset 0 => repeat
    let crc = {
        let c = crc32c::crc32c(&expected);
        c.rotate_right(15).wrapping_add(0xa282_ead8)
    };
    let mut stream = vec![0xff, 6, 0, 0];
    stream.extend_from_slice(b"S2sTwO");
    let body_len = 4 + block.len();
    stream.extend_from_slice(&[0x00, body_len as u8, 0, 0]);
    stream.extend_from_slice(&crc.to_le_bytes());
    stream.extend_from_slice(&block);
    assert_eq!(
        decompress(&with_header(0x1200, &stream), Some(0x1200), 0).unwrap(),
        expected
    );
    // A flipped CRC is detected.
    let mut bad = stream.clone();
    let crc_at = 10 + 4;
    bad[crc_at] ^= 1;
    assert!(decompress(&with_header(0x1200, &bad), Some(0x1200), 0).is_err());
    // Truncations never panic.
    for cut in 0..stream.len() {
        let _ = decompress(&with_header(0x1200, &stream[..cut]), Some(0x1200), 0);
    }
}
