//! A decoder for the S2 stream format (klauspost/compress `s2`), which kopia's `s2-*` compressors
//! write. S2 extends Snappy framing and blocks; a Snappy decoder cannot read S2 blocks because of
//! S2's repeat-offset copies. Written from the format description in klauspost/compress
//! (`s2/README.md`, "Format Extensions" and the framing section).

use std::io;

const CHUNK_COMPRESSED: u8 = 0x00;
const CHUNK_UNCOMPRESSED: u8 = 0x01;
const CHUNK_STREAM_ID: u8 = 0xff;
const CHUNK_PADDING: u8 = 0xfe;
/// S2 allows blocks up to 4 MiB.
const MAX_BLOCK: usize = 4 << 20;

fn err(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Snappy/S2 masked CRC-32C.
fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Decodes a whole S2 (or Snappy-framed) stream.
pub(super) fn decode_stream(mut src: &[u8], limit: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut seen_id = false;
    while !src.is_empty() {
        if src.len() < 4 {
            return Err(err("s2: truncated chunk header"));
        }
        let typ = src[0];
        let len = usize::from(src[1]) | (usize::from(src[2]) << 8) | (usize::from(src[3]) << 16);
        let body = src
            .get(4..4 + len)
            .ok_or_else(|| err("s2: truncated chunk"))?;
        src = &src[4 + len..];
        match typ {
            CHUNK_STREAM_ID => {
                if body != b"S2sTwO" && body != b"sNaPpY" {
                    return Err(err("s2: bad stream identifier"));
                }
                seen_id = true;
            }
            CHUNK_COMPRESSED | CHUNK_UNCOMPRESSED => {
                if !seen_id {
                    return Err(err("s2: data before stream identifier"));
                }
                let (crc, payload) = body
                    .split_at_checked(4)
                    .ok_or_else(|| err("s2: chunk without checksum"))?;
                let want = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
                let start = out.len();
                if typ == CHUNK_COMPRESSED {
                    decode_block(payload, &mut out, limit)?;
                } else {
                    if payload.len() > MAX_BLOCK || out.len() + payload.len() > limit {
                        return Err(err("s2: uncompressed chunk too large"));
                    }
                    out.extend_from_slice(payload);
                }
                if masked_crc(&out[start..]) != want {
                    return Err(err("s2: chunk checksum mismatch"));
                }
            }
            0x02..=0x7f => return Err(err("s2: reserved unskippable chunk")),
            // 0x80..=0xfd are skippable (e.g. the S2 index chunk 0x99); 0xfe is padding.
            CHUNK_PADDING | 0x80..=0xfd => {}
        }
    }
    Ok(out)
}

fn read_uvarint(src: &[u8]) -> io::Result<(u64, usize)> {
    let mut x = 0u64;
    for (i, &b) in src.iter().enumerate().take(10) {
        x |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok((x, i + 1));
        }
    }
    Err(err("s2: bad varint"))
}

/// Decodes one S2 block, appending to `out`.
pub(super) fn decode_block(src: &[u8], out: &mut Vec<u8>, limit: usize) -> io::Result<()> {
    let (dlen, n) = read_uvarint(src)?;
    let dlen = usize::try_from(dlen).map_err(|_| err("s2: block too large"))?;
    if dlen > MAX_BLOCK || out.len() + dlen > limit {
        return Err(err("s2: block too large"));
    }
    let base = out.len();
    let end = base + dlen;
    out.reserve(dlen);
    let mut s = n;
    let mut offset = 0usize;
    while s < src.len() {
        let tag = src[s];
        match tag & 3 {
            0 => {
                let x = usize::from(tag >> 2);
                let (len, hdr) = if x < 60 {
                    (x + 1, 1)
                } else {
                    let nb = x - 59;
                    let b = src
                        .get(s + 1..s + 1 + nb)
                        .ok_or_else(|| err("s2: truncated literal length"))?;
                    let v = b
                        .iter()
                        .rev()
                        .fold(0usize, |acc, &c| (acc << 8) | usize::from(c));
                    (v + 1, 1 + nb)
                };
                s += hdr;
                let lit = src
                    .get(s..s.saturating_add(len))
                    .ok_or_else(|| err("s2: truncated literal"))?;
                if out.len() + len > end {
                    return Err(err("s2: literal overflows block"));
                }
                out.extend_from_slice(lit);
                s += len;
            }
            1 => {
                // Copy with an 11-bit offset; offset 0 means "repeat the last offset" in S2.
                let b1 = *src.get(s + 1).ok_or_else(|| err("s2: truncated copy1"))?;
                s += 2;
                let toffset = (usize::from(tag & 0xe0) << 3) | usize::from(b1);
                let mut length = usize::from((tag >> 2) & 7);
                if toffset == 0 {
                    match length {
                        5 => {
                            length = usize::from(
                                *src.get(s).ok_or_else(|| err("s2: truncated repeat"))?,
                            ) + 4;
                            s += 1;
                        }
                        6 => {
                            let b = src
                                .get(s..s + 2)
                                .ok_or_else(|| err("s2: truncated repeat"))?;
                            length = (usize::from(b[0]) | (usize::from(b[1]) << 8)) + (1 << 8);
                            s += 2;
                        }
                        7 => {
                            let b = src
                                .get(s..s + 3)
                                .ok_or_else(|| err("s2: truncated repeat"))?;
                            length = (usize::from(b[0])
                                | (usize::from(b[1]) << 8)
                                | (usize::from(b[2]) << 16))
                                + (1 << 16);
                            s += 3;
                        }
                        _ => {}
                    }
                } else {
                    offset = toffset;
                }
                copy_back(out, base, end, offset, length + 4)?;
            }
            2 => {
                let b = src
                    .get(s + 1..s + 3)
                    .ok_or_else(|| err("s2: truncated copy2"))?;
                s += 3;
                offset = usize::from(b[0]) | (usize::from(b[1]) << 8);
                copy_back(out, base, end, offset, 1 + usize::from(tag >> 2))?;
            }
            _ => {
                let b = src
                    .get(s + 1..s + 5)
                    .ok_or_else(|| err("s2: truncated copy4"))?;
                s += 5;
                offset = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
                copy_back(out, base, end, offset, 1 + usize::from(tag >> 2))?;
            }
        }
    }
    if out.len() != end {
        return Err(err("s2: block length mismatch"));
    }
    Ok(())
}

fn copy_back(
    out: &mut Vec<u8>,
    base: usize,
    end: usize,
    offset: usize,
    length: usize,
) -> io::Result<()> {
    let pos = out.len();
    if offset == 0 || offset > pos - base || pos + length > end {
        return Err(err("s2: bad copy"));
    }
    let from = pos - offset;
    if offset >= length {
        out.extend_from_within(from..from + length);
    } else {
        for i in 0..length {
            let b = out[from + i];
            out.push(b);
        }
    }
    Ok(())
}
