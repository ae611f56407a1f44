//! Reading stored bytes back: decrypt, then decompress (pgbackrest-format.md §4.1). Each stored unit (a whole
//! file, a bundle member, a super block, a WAL segment) is framed "normal" or "raw"; raw gzip is zlib, raw
//! lz4 has no content checksum, raw encryption has no `Salted__` header.

use std::io::{self, BufReader, Read};

use crate::cipher::{DecryptReader, Framing};

/// Compression of stored files (`option-compress-type`, WAL file extensions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compress {
    /// Stored as is.
    None,
    /// gzip (zlib when raw).
    Gz,
    /// LZ4 frames.
    Lz4,
    /// Zstandard frames.
    Zst,
    /// bzip2.
    Bz2,
}

impl Compress {
    /// From `option-compress-type` (`gz`, `lz4`, `zst`, `bz2`, `none`).
    #[must_use]
    pub fn from_type(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Self::None,
            "gz" => Self::Gz,
            "lz4" => Self::Lz4,
            "zst" => Self::Zst,
            "bz2" => Self::Bz2,
            _ => return None,
        })
    }

    /// The file name extension pgBackRest appends (`.gz`, …; empty for none).
    #[must_use]
    pub fn ext(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Gz => ".gz",
            Self::Lz4 => ".lz4",
            Self::Zst => ".zst",
            Self::Bz2 => ".bz2",
        }
    }

    /// Splits a known compression extension off `name`: `(stem, compression)`. `.xz` (in pgBackRest's
    /// pattern but never written) and unknown extensions are `None`.
    #[must_use]
    pub fn split_ext(name: &str) -> Option<(&str, Self)> {
        for c in [Self::Gz, Self::Lz4, Self::Zst, Self::Bz2] {
            if let Some(stem) = name.strip_suffix(c.ext()) {
                return Some((stem, c));
            }
        }
        Some((name, Self::None))
    }
}

/// How one stored unit is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Encoding<'p> {
    /// The passphrase, when the repository is encrypted.
    pub(crate) pass: Option<&'p str>,
    pub(crate) compress: Compress,
    /// Raw framing (bundle members of raw sets, block-incremental super blocks).
    pub(crate) raw: bool,
}

/// A reader of the original bytes of `src`.
pub(crate) fn decoder<'a, R: Read + Send + 'a>(
    src: R,
    enc: Encoding<'_>,
) -> Box<dyn Read + Send + 'a> {
    let framing = if enc.raw {
        Framing::Raw
    } else {
        Framing::Normal
    };
    let plain: Box<dyn Read + Send + 'a> = match enc.pass {
        Some(p) => Box::new(DecryptReader::new(src, p.as_bytes().to_vec(), framing)),
        None => Box::new(src),
    };
    match (enc.compress, enc.raw) {
        (Compress::None, _) => plain,
        (Compress::Gz, false) => Box::new(flate2::read::MultiGzDecoder::new(plain)),
        (Compress::Gz, true) => Box::new(flate2::read::ZlibDecoder::new(plain)),
        (Compress::Lz4, _) => Box::new(lz4_flex::frame::FrameDecoder::new(plain)),
        (Compress::Zst, _) => match zstd::stream::read::Decoder::with_buffer(BufReader::new(plain))
        {
            Ok(d) => Box::new(d),
            Err(e) => Box::new(Failing(Some(e))),
        },
        (Compress::Bz2, _) => Box::new(bzip2::read::MultiBzDecoder::new(plain)),
    }
}

/// Decodes a whole in-memory unit, expecting at most `limit` bytes (a damaged length field must not make
/// us allocate without bound).
pub(crate) fn decode_all(data: &[u8], enc: Encoding<'_>, limit: u64) -> io::Result<Vec<u8>> {
    blobstore::read_bounded(decoder(data, enc), limit)
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
mod tests;
