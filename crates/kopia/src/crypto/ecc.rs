//! `REED-SOLOMON-CRC32` error correction (kopia `repo/ecc/ecc_rs_crc.go`).
//!
//! Every stored item is `parity shards of all blocks || data shards`, each shard prefixed with the
//! big-endian CRC-32 (IEEE) of the zero-padded shard. The data stream is `BE32(len) || data`.
//! Reading checks CRCs (fast path) and rebuilds a block with Reed–Solomon only when a shard is bad.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use reed_solomon_erasure::galois_8::ReedSolomon;

use crate::error::EccError;

const CRC_SIZE: usize = 4;
const LENGTH_SIZE: usize = 4;
const SMALL_DATA_SHARDS: usize = 6;
const SMALL_PARITY_SHARDS: usize = 2;

/// Shard geometry derived from `eccOverheadPercent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EccParams {
    data_shards: usize,
    parity_shards: usize,
    max_shard_size: usize,
    threshold_parity_input: usize,
    threshold_parity_output: usize,
    threshold_blocks_input: usize,
    threshold_blocks_output: usize,
}

#[derive(Debug, Clone, Copy)]
struct Sizes {
    blocks: usize,
    shard_size: usize,
    data_shards: usize,
    parity_shards: usize,
    store_padding: bool,
}

fn ceil_div(a: usize, b: usize) -> usize {
    a.div_ceil(b.max(1))
}

fn apply_percent(val: usize, percent: f32) -> usize {
    // Go: int(math.Floor(float64(val) * float64(percent))); percent is a float32.
    let v = (val as f64 * f64::from(percent)).floor();
    if v <= 0.0 { 0 } else { v as usize }
}

impl EccParams {
    /// Geometry for `overhead_percent` (> 0), computed with kopia's float32 arithmetic.
    pub fn new(overhead_percent: u32) -> Self {
        let max_shard_size = match overhead_percent {
            1 => 1024,
            2 => 512,
            3 => 256,
            0..=6 => 128,
            _ => 64,
        };
        let free =
            (overhead_percent as f32 - (100 * CRC_SIZE) as f32 / max_shard_size as f32).max(0.01);
        let mut data = 128usize;
        let mut parity = apply_percent(data, free / 100.0).clamp(1, 128);
        if parity == 1 {
            parity = 2;
            data = apply_percent(parity, 100.0 / free).clamp(128, 254);
        }
        let tpi = 2 * CRC_SIZE * (data + parity);
        let tpo = (SMALL_DATA_SHARDS + SMALL_PARITY_SHARDS)
            * (CRC_SIZE + ceil_div(tpi, SMALL_DATA_SHARDS));
        let tbi = data * max_shard_size;
        let tbo = (data + parity) * (CRC_SIZE + max_shard_size);
        Self {
            data_shards: data,
            parity_shards: parity,
            max_shard_size,
            threshold_parity_input: tpi,
            threshold_parity_output: tpo,
            threshold_blocks_input: tbi,
            threshold_blocks_output: tbo,
        }
    }

    /// Data and parity shards of a full block.
    pub fn shards(&self) -> (usize, usize) {
        (self.data_shards, self.parity_shards)
    }

    fn sizes_from_original(&self, len: usize) -> Sizes {
        let len = len + LENGTH_SIZE;
        if len <= self.threshold_parity_input {
            Sizes {
                blocks: 1,
                data_shards: SMALL_DATA_SHARDS,
                parity_shards: SMALL_PARITY_SHARDS,
                shard_size: ceil_div(len, SMALL_DATA_SHARDS),
                store_padding: true,
            }
        } else if len <= self.threshold_blocks_input {
            Sizes {
                blocks: 1,
                data_shards: self.data_shards,
                parity_shards: self.parity_shards,
                shard_size: ceil_div(len, self.data_shards),
                store_padding: true,
            }
        } else {
            Sizes {
                blocks: ceil_div(len, self.data_shards * self.max_shard_size),
                data_shards: self.data_shards,
                parity_shards: self.parity_shards,
                shard_size: self.max_shard_size,
                store_padding: false,
            }
        }
    }

    fn sizes_from_stored(&self, len: usize) -> Sizes {
        if len <= self.threshold_parity_output {
            let n = SMALL_DATA_SHARDS + SMALL_PARITY_SHARDS;
            Sizes {
                blocks: 1,
                data_shards: SMALL_DATA_SHARDS,
                parity_shards: SMALL_PARITY_SHARDS,
                shard_size: ceil_div(len, n).max(1 + CRC_SIZE) - CRC_SIZE,
                store_padding: true,
            }
        } else if len <= self.threshold_blocks_output {
            let n = self.data_shards + self.parity_shards;
            Sizes {
                blocks: 1,
                data_shards: self.data_shards,
                parity_shards: self.parity_shards,
                shard_size: ceil_div(len, n).max(1 + CRC_SIZE) - CRC_SIZE,
                store_padding: true,
            }
        } else {
            Sizes {
                blocks: ceil_div(
                    len,
                    (self.data_shards + self.parity_shards) * (CRC_SIZE + self.max_shard_size),
                ),
                data_shards: self.data_shards,
                parity_shards: self.parity_shards,
                shard_size: self.max_shard_size,
                store_padding: false,
            }
        }
    }

    /// Decodes a stored item, repairing damaged shards when possible.
    ///
    /// # Errors
    ///
    /// Fails when the layout does not fit the length or a block has more bad shards than parity.
    pub fn decode(&self, stored: &[u8]) -> Result<Vec<u8>, EccError> {
        let s = self.sizes_from_stored(stored.len());
        let unit = CRC_SIZE + s.shard_size;
        let parity_len = s.blocks * s.parity_shards * unit;
        let total = s.blocks * (s.data_shards + s.parity_shards) * unit;
        if stored.len() < parity_len + CRC_SIZE || stored.len() > total {
            return Err(EccError::Layout { len: stored.len() });
        }
        let (ecc_bytes, data_bytes) = stored.split_at(parity_len);
        // Positions at or beyond this offset in the data area were never stored (padding).
        let padding_start = data_bytes.len();

        let mut stream = Vec::with_capacity(s.blocks * s.data_shards * s.shard_size);
        for b in 0..s.blocks {
            let mut shards: Vec<Option<Vec<u8>>> = Vec::new();
            let mut bad = 0usize;
            let mut fast_data: Vec<&[u8]> = Vec::with_capacity(s.data_shards);
            for i in 0..s.data_shards {
                let pos = (b * s.data_shards + i) * unit;
                if pos >= padding_start {
                    fast_data.push(&[]);
                    continue;
                }
                let end = (pos + unit).min(data_bytes.len());
                let chunk = &data_bytes[pos..end];
                if chunk.len() < CRC_SIZE || !crc_ok(chunk, s.shard_size) {
                    bad += 1;
                    fast_data.push(&[]);
                } else {
                    fast_data.push(&chunk[CRC_SIZE..]);
                }
            }
            if bad == 0 {
                for (i, d) in fast_data.iter().enumerate() {
                    let _ = i;
                    stream.extend_from_slice(d);
                    stream.resize(stream.len() + (s.shard_size - d.len()), 0);
                }
                continue;
            }
            // Slow path: rebuild the block from all shards with good CRCs.
            for i in 0..s.data_shards {
                let pos = (b * s.data_shards + i) * unit;
                let shard = if pos >= padding_start {
                    Some(vec![0u8; s.shard_size])
                } else {
                    let chunk = &data_bytes[pos..(pos + unit).min(data_bytes.len())];
                    (chunk.len() >= CRC_SIZE && crc_ok(chunk, s.shard_size))
                        .then(|| padded(&chunk[CRC_SIZE..], s.shard_size))
                };
                shards.push(shard);
            }
            for i in 0..s.parity_shards {
                let pos = (b * s.parity_shards + i) * unit;
                let chunk = &ecc_bytes[pos..pos + unit];
                let good = crc_ok(chunk, s.shard_size);
                shards.push(good.then(|| chunk[CRC_SIZE..].to_vec()));
            }
            let missing = shards.iter().filter(|x| x.is_none()).count();
            if missing > s.parity_shards {
                return Err(EccError::TooManyErrors {
                    block: b,
                    bad: missing,
                    parity: s.parity_shards,
                });
            }
            let codec = codec(s.data_shards, s.parity_shards)
                .ok_or(EccError::Layout { len: stored.len() })?;
            codec
                .reconstruct_data(&mut shards)
                .map_err(|_| EccError::TooManyErrors {
                    block: b,
                    bad: missing,
                    parity: s.parity_shards,
                })?;
            for sh in shards.iter().take(s.data_shards) {
                match sh {
                    Some(v) => stream.extend_from_slice(v),
                    None => {
                        return Err(EccError::TooManyErrors {
                            block: b,
                            bad: missing,
                            parity: s.parity_shards,
                        });
                    }
                }
            }
        }
        let len_bytes: [u8; 4] = stream
            .get(..LENGTH_SIZE)
            .and_then(|b| b.try_into().ok())
            .ok_or(EccError::Layout { len: stored.len() })?;
        let n = u32::from_be_bytes(len_bytes) as usize;
        if n > stream.len() - LENGTH_SIZE {
            return Err(EccError::EmbeddedLength { len: n as u64 });
        }
        stream.truncate(LENGTH_SIZE + n);
        stream.drain(..LENGTH_SIZE);
        Ok(stream)
    }

    /// Encodes `input` exactly as kopia's writer does (used by tests and fixtures).
    pub fn encode(&self, input: &[u8]) -> Vec<u8> {
        let s = self.sizes_from_original(input.len());
        let data_in_block = s.data_shards * s.shard_size;
        let mut buf = vec![0u8; data_in_block * s.blocks];
        buf[..LENGTH_SIZE].copy_from_slice(&(input.len() as u32).to_be_bytes());
        buf[LENGTH_SIZE..LENGTH_SIZE + input.len()].copy_from_slice(input);
        let mut out = Vec::new();
        if let Some(rs) = codec(s.data_shards, s.parity_shards) {
            for b in 0..s.blocks {
                let mut shards: Vec<Vec<u8>> = (0..s.data_shards)
                    .map(|i| {
                        let p = (b * s.data_shards + i) * s.shard_size;
                        buf[p..p + s.shard_size].to_vec()
                    })
                    .collect();
                shards.extend((0..s.parity_shards).map(|_| vec![0u8; s.shard_size]));
                if rs.encode(&mut shards).is_err() {
                    return Vec::new();
                }
                for p in &shards[s.data_shards..] {
                    out.extend_from_slice(&crc32fast::hash(p).to_be_bytes());
                    out.extend_from_slice(p);
                }
            }
        }
        let to_store = if s.store_padding {
            buf.len()
        } else {
            LENGTH_SIZE + input.len()
        };
        let mut pos = 0;
        while pos < to_store {
            let left = (to_store - pos).min(s.shard_size);
            let shard = &buf[pos..pos + s.shard_size];
            out.extend_from_slice(&crc32fast::hash(shard).to_be_bytes());
            out.extend_from_slice(&shard[..left]);
            pos += s.shard_size;
        }
        out
    }
}

/// Shared codecs keyed by (data, parity) shard counts.
type CodecMap = HashMap<(usize, usize), Arc<ReedSolomon>>;

/// Reed–Solomon codecs by (data, parity) shard counts. Building one inverts a matrix of up to
/// 256×254, so they are built once per process and shared.
fn codec(data: usize, parity: usize) -> Option<Arc<ReedSolomon>> {
    static CODECS: OnceLock<Mutex<CodecMap>> = OnceLock::new();
    let map = CODECS.get_or_init(Mutex::default);
    let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(c) = map.get(&(data, parity)) {
        return Some(Arc::clone(c));
    }
    let c = Arc::new(ReedSolomon::new(data, parity).ok()?);
    map.insert((data, parity), Arc::clone(&c));
    Some(c)
}

fn padded(b: &[u8], n: usize) -> Vec<u8> {
    let mut v = b.to_vec();
    v.resize(n, 0);
    v
}

/// Checks `crc || shard` where a short shard is implicitly zero-padded to `shard_size`.
fn crc_ok(chunk: &[u8], shard_size: usize) -> bool {
    let (crc, body) = chunk.split_at(CRC_SIZE);
    let want = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let mut h = crc32fast::Hasher::new();
    h.update(body);
    let pad = shard_size.saturating_sub(body.len());
    if pad > 0 {
        const ZEROS: [u8; 1024] = [0; 1024];
        let mut left = pad;
        while left > 0 {
            let n = left.min(ZEROS.len());
            h.update(&ZEROS[..n]);
            left -= n;
        }
    }
    h.finalize() == want
}
