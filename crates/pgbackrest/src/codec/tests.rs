use std::io::Write as _;

use super::*;

const DATA: &[u8] = b"PostgreSQL relation bytes, repeated. PostgreSQL relation bytes, repeated.";

fn plain(compress: Compress, raw: bool) -> Encoding<'static> {
    Encoding {
        pass: None,
        compress,
        raw,
    }
}

#[test]
fn every_compression_round_trips_in_its_framing() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(DATA).expect("gz");
    let gz = gz.finish().expect("gz");
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zlib.write_all(DATA).expect("zlib");
    let zlib = zlib.finish().expect("zlib");
    let mut lz4 = lz4_flex::frame::FrameEncoder::new(Vec::new());
    lz4.write_all(DATA).expect("lz4");
    let lz4 = lz4.finish().expect("lz4");
    let zst = zstd::encode_all(DATA, 3).expect("zst");
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
    bz.write_all(DATA).expect("bz2");
    let bz = bz.finish().expect("bz2");
    for (bytes, enc) in [
        (DATA.to_vec(), plain(Compress::None, false)),
        (gz, plain(Compress::Gz, false)),
        (zlib.clone(), plain(Compress::Gz, true)),
        (lz4, plain(Compress::Lz4, true)),
        (zst, plain(Compress::Zst, false)),
        (bz, plain(Compress::Bz2, false)),
    ] {
        assert_eq!(
            decode_all(&bytes, enc, 1 << 20).expect("decode"),
            DATA,
            "{enc:?}"
        );
    }
    // Raw gzip is zlib: a gzip decoder must not accept it.
    assert!(decode_all(&zlib, plain(Compress::Gz, false), 1 << 20).is_err());
}

#[test]
fn more_than_the_limit_is_refused() {
    let zst = zstd::encode_all(&[0u8; 4096][..], 3).expect("zst");
    let e = decode_all(&zst, plain(Compress::Zst, false), 100).expect_err("limit");
    assert!(e.to_string().contains("more than the 100 bytes"), "{e}");
}

#[test]
fn extensions_split() {
    assert_eq!(Compress::split_ext("a.gz"), Some(("a", Compress::Gz)));
    assert_eq!(Compress::split_ext("a"), Some(("a", Compress::None)));
    assert_eq!(Compress::from_type("zst"), Some(Compress::Zst));
    assert_eq!(Compress::from_type("xz"), None);
}
