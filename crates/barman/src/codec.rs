//! The compressions barman-cloud writes, by file extension (barman-restic-format.md A2, A5): tars as
//! `.gz`, `.bz2`, `.snappy`, `.lz4` or none; WAL also as `.xz` and `.zst`. Snappy is python-snappy's
//! stream (framing) format and lz4 is `lz4.frame`, so both are read as frames.

use std::io::{self, BufReader, Read};

/// A compression barman writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Stored as is.
    None,
    /// `.gz`.
    Gzip,
    /// `.bz2`.
    Bzip2,
    /// `.xz`.
    Xz,
    /// `.snappy` (framing format).
    Snappy,
    /// `.zst`.
    Zstd,
    /// `.lz4` (frame format).
    Lz4,
}

impl Compression {
    const ALL: [(&'static str, Self); 6] = [
        (".gz", Self::Gzip),
        (".bz2", Self::Bzip2),
        (".xz", Self::Xz),
        (".snappy", Self::Snappy),
        (".zst", Self::Zstd),
        (".lz4", Self::Lz4),
    ];

    /// Splits a known compression extension off `name`: `(stem, compression)`; no known extension is
    /// [`Compression::None`] with `name` whole.
    #[must_use]
    pub fn split(name: &str) -> (&str, Self) {
        for (ext, c) in Self::ALL {
            if let Some(stem) = name.strip_suffix(ext) {
                return (stem, c);
            }
        }
        (name, Self::None)
    }

    /// How many times larger PostgreSQL data is assumed to be than its stored form: 1 uncompressed, 3
    /// for the fast compressors (snappy, lz4), 5 for the others — erring large, since a volume that is
    /// too small fails the restore while one too large only costs space. Only sizes a volume; the
    /// replica's `storageSizeOverride` replaces the estimate.
    #[must_use]
    pub fn expansion(self) -> u64 {
        match self {
            Self::None => 1,
            Self::Snappy | Self::Lz4 => 3,
            Self::Gzip | Self::Bzip2 | Self::Xz | Self::Zstd => 5,
        }
    }

    /// A reader of the original bytes of `src`.
    pub fn decoder<'a, R: Read + Send + 'a>(self, src: R) -> Box<dyn Read + Send + 'a> {
        match self {
            Self::None => Box::new(src),
            Self::Gzip => Box::new(flate2::read::MultiGzDecoder::new(src)),
            Self::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(src)),
            Self::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(src)),
            Self::Snappy => Box::new(snap::read::FrameDecoder::new(src)),
            Self::Zstd => match zstd::stream::read::Decoder::with_buffer(BufReader::new(src)) {
                Ok(d) => Box::new(d),
                Err(e) => Box::new(Failing(Some(e))),
            },
            Self::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(src)),
        }
    }
}

/// A reader that fails once with a stored error (a decoder that could not be built).
struct Failing(Option<io::Error>);

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(self
            .0
            .take()
            .unwrap_or_else(|| io::Error::other("decoder unavailable")))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    /// Decodes a whole in-memory object (test-only since WAL is streamed by `wal::read_wal_into`), refusing more than `limit` bytes (a damaged stream must not make us
    /// allocate without bound).
    ///
    /// # Errors
    /// The data does not decode, or decodes to more than `limit` bytes.
    fn decode_all(data: &[u8], c: Compression, limit: u64) -> io::Result<Vec<u8>> {
        blobstore::read_bounded(c.decoder(data), limit)
    }

    fn encode(c: Compression, data: &[u8]) -> Vec<u8> {
        match c {
            Compression::None => data.to_vec(),
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).expect("gz");
                e.finish().expect("gz")
            }
            Compression::Bzip2 => {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
                e.write_all(data).expect("bz2");
                e.finish().expect("bz2")
            }
            Compression::Xz => {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
                e.write_all(data).expect("xz");
                e.finish().expect("xz")
            }
            Compression::Snappy => {
                let mut e = snap::write::FrameEncoder::new(Vec::new());
                e.write_all(data).expect("snappy");
                e.into_inner().expect("snappy")
            }
            Compression::Zstd => zstd::encode_all(data, 1).expect("zst"),
            Compression::Lz4 => {
                let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
                e.write_all(data).expect("lz4");
                e.finish().expect("lz4")
            }
        }
    }

    #[test]
    fn every_compression_round_trips_and_damage_is_an_error() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for (ext, c) in Compression::ALL {
            assert_eq!(
                Compression::split(&format!("0000000100000000000000A1{ext}")).1,
                c
            );
            let enc = encode(c, &data);
            assert_eq!(decode_all(&enc, c, 1 << 20).expect(ext), data, "{ext}");
            assert!(decode_all(&enc, c, 1000).is_err(), "{ext}: limit");
            let cut = &enc[..enc.len() / 2];
            assert!(decode_all(cut, c, 1 << 20).is_err(), "{ext}: truncated");
        }
        assert_eq!(
            Compression::split("00000002.history"),
            ("00000002.history", Compression::None)
        );
    }
}
