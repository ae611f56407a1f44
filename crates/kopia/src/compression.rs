//! Decompression by kopia compression header ID (kopia `repo/compression`).

use std::io::{self, Read};

use crate::error::{Corruption, Unsupported};

mod s2;

/// Upper bound on a decompressed content; kopia contents are at most 2^28 bytes (index v2 limit).
pub(crate) const MAX_CONTENT_LEN: usize = 1 << 28;

/// Compression algorithm families by header ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// `gzip*` (0x1000..=0x1002) and `pgzip*` (0x1300..=0x1302).
    Gzip,
    /// `zstd*` (0x1100..=0x1103).
    Zstd,
    /// `s2-*` (0x1200..=0x1203): S2 stream format.
    S2,
    /// `lz4` (0x1400): LZ4 frame format (legacy; removed from kopia v0.23).
    Lz4,
    /// `deflate-*` (0x1500..=0x1502): raw DEFLATE.
    Deflate,
}

impl Compression {
    /// The family of a header ID.
    ///
    /// # Errors
    ///
    /// [`Unsupported::Compression`] for unknown IDs.
    pub fn from_header_id(id: u32) -> Result<Self, Unsupported> {
        match id {
            0x1000..=0x1002 | 0x1300..=0x1302 => Ok(Self::Gzip),
            0x1100..=0x1103 => Ok(Self::Zstd),
            0x1200..=0x1203 => Ok(Self::S2),
            0x1400 => Ok(Self::Lz4),
            0x1500..=0x1502 => Ok(Self::Deflate),
            other => Err(Unsupported::Compression(other)),
        }
    }
}

/// Errors from [`decompress`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecompressError {
    #[error(transparent)]
    Corrupt(#[from] Corruption),
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
}

/// Decompresses `data` = `BE32 header || stream`, checking the header against `expected`
/// (`None` for legacy `Z` objects, which carry only the in-band header).
pub(crate) fn decompress(
    data: &[u8],
    expected: Option<u32>,
    size_hint: usize,
) -> Result<Vec<u8>, DecompressError> {
    let header: [u8; 4] =
        data.get(..4)
            .and_then(|h| h.try_into().ok())
            .ok_or(Corruption::Malformed {
                what: "compressed data shorter than its header",
            })?;
    let id = u32::from_be_bytes(header);
    if let Some(exp) = expected.filter(|&e| e != id) {
        return Err(Corruption::CompressionHeader {
            expected: exp,
            actual: id,
        }
        .into());
    }
    let stream = &data[4..];
    let cap = size_hint.min(MAX_CONTENT_LEN);
    let out = match Compression::from_header_id(id)? {
        Compression::Gzip => read_limited(flate2::read::MultiGzDecoder::new(stream), cap),
        Compression::Deflate => read_limited(flate2::read::DeflateDecoder::new(stream), cap),
        Compression::Zstd => {
            zstd::stream::read::Decoder::new(stream).and_then(|d| read_limited(d, cap))
        }
        Compression::Lz4 => read_limited(lz4_flex::frame::FrameDecoder::new(stream), cap),
        Compression::S2 => s2::decode_stream(stream, MAX_CONTENT_LEN),
    };
    out.map_err(|e| Corruption::Decompress(e).into())
}

fn read_limited(r: impl Read, cap: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(cap);
    let n = r.take(MAX_CONTENT_LEN as u64 + 1).read_to_end(&mut out)?;
    if n > MAX_CONTENT_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "decompressed data exceeds the content size limit",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
