//! Block-incremental maps, version 0 (pgBackRest ≥ 2.46; pgbackrest-format.md §4.4.3): for every block of a
//! file, where its bytes are — which backup of the chain, which bundle, which stored super block, which
//! block inside it — and the block's checksum. A stateful, bit-flagged varint stream, decoded by hand
//! because nothing else reads it.

use std::collections::HashMap;

/// Where one file block is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockItem {
    /// Index into the manifest's `backup-reference` list.
    pub reference: usize,
    /// Bundle id (0: the file's own `.pgbi` object).
    pub bundle_id: u64,
    /// Offset of the stored super block in that object.
    pub offset: u64,
    /// Stored (compressed, encrypted) size of the super block.
    pub size: u64,
    /// Size of the super block once decoded.
    pub super_block_size: u64,
    /// Block number inside the super block.
    pub block_no: u64,
    /// The block's checksum (XXH3-128 prefix).
    pub checksum: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct RefState {
    super_block_size: u64,
    bundle_id: u64,
    offset: u64,
    size: u64,
    block: u64,
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self
                .data
                .get(self.pos)
                .ok_or_else(|| format!("ends inside a number at byte {}", self.pos))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("a number longer than 64 bits at byte {}", self.pos))
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.data.len());
        let end = end.ok_or_else(|| format!("ends inside a checksum at byte {}", self.pos))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
}

fn unzigzag(u: u64) -> i64 {
    // The cast reinterprets bits, as zigzag decoding requires.
    #[allow(clippy::cast_possible_wrap)]
    let v = (u >> 1) as i64 ^ -((u & 1) as i64);
    v
}

/// Decodes a map (already decrypted) of a file of `file_size` bytes stored in `block_size` blocks with
/// `checksum_size`-byte checksums; `references` is the length of the manifest's reference list. Returns one
/// item per file block, in file order.
///
/// # Errors
/// The map is malformed: an unknown version, a truncated number or checksum, a reference outside the chain,
/// sizes that overflow, or not exactly one item per block of the file.
pub fn decode(
    map: &[u8],
    block_size: u64,
    checksum_size: usize,
    references: usize,
    file_size: u64,
) -> Result<Vec<BlockItem>, String> {
    if block_size == 0 || checksum_size == 0 || checksum_size > 16 {
        return Err(format!(
            "block size {block_size} / checksum size {checksum_size}"
        ));
    }
    let expected = file_size.div_ceil(block_size);
    let mut c = Cursor { data: map, pos: 0 };
    if c.varint()? & 1 != 0 {
        return Err("map version is not 0 (written by a newer pgBackRest?)".into());
    }
    let mut state: HashMap<usize, RefState> = HashMap::new();
    let mut items: Vec<BlockItem> = Vec::new();
    let mut size_last: u64 = 0;
    loop {
        let r = c.varint()?;
        let reference = usize::try_from(r >> 3).map_err(|_| "reference out of range")?;
        if reference >= references {
            return Err(format!(
                "reference {reference} outside a chain of {references} backups"
            ));
        }
        let last_ref = r & 1 != 0;
        let mut continuing = false;
        let mut continue_last = false;
        let offset;
        if let Some(st) = state.get_mut(&reference) {
            if r & 2 != 0 {
                offset = st.offset;
                continuing = true;
                continue_last = r & 4 != 0;
            } else {
                let gap = if r & 4 != 0 { c.varint()? } else { 0 };
                offset = add(add(st.offset, st.size)?, gap)?;
                st.offset = offset;
            }
        } else {
            let bundle_id = if r & 2 != 0 { c.varint()? } else { 0 };
            offset = if r & 4 != 0 { c.varint()? } else { 0 };
            state.insert(
                reference,
                RefState {
                    super_block_size: block_size,
                    bundle_id,
                    offset,
                    size: 0,
                    block: 0,
                },
            );
        }
        let st = state.get_mut(&reference).ok_or("reference state")?;
        let mut first = true;
        loop {
            let s;
            let size;
            if continuing {
                s = u64::from(continue_last) | 4;
                size = st.size;
                continuing = false;
            } else {
                s = c.varint()?;
                let v = s >> 3;
                size = if size_last == 0 {
                    v
                } else {
                    u64::try_from(i128::from(size_last) + i128::from(unzigzag(v)))
                        .map_err(|_| "a negative super block size".to_owned())?
                };
                if s & 2 != 0 {
                    let e = c.varint()?;
                    let rem = if e & 1 != 0 { c.varint()? } else { 0 };
                    st.super_block_size =
                        add((e >> 1).checked_mul(block_size).ok_or("overflow")?, rem)?;
                }
                if first {
                    st.offset = offset;
                } else {
                    st.offset = add(st.offset, size_last)?;
                }
                st.size = size;
                st.block = 0;
            }
            size_last = size;
            first = false;
            let total = if s & 4 != 0 {
                let e = c.varint()?;
                if e & 1 != 0 {
                    st.block = add(st.block, c.varint()?)?;
                }
                (e >> 1) + 1
            } else {
                st.super_block_size.div_ceil(block_size)
            };
            if (items.len() as u64).saturating_add(total) > expected {
                return Err(format!("more blocks than the {expected} of the file"));
            }
            for i in 0..total {
                items.push(BlockItem {
                    reference,
                    bundle_id: st.bundle_id,
                    offset: st.offset,
                    size,
                    super_block_size: st.super_block_size,
                    block_no: add(st.block, i)?,
                    checksum: c.take(checksum_size)?.to_vec(),
                });
            }
            st.block = add(st.block, total)?;
            if s & 1 != 0 {
                break;
            }
        }
        if last_ref {
            break;
        }
    }
    if c.pos != map.len() {
        return Err(format!(
            "{} bytes after the end of the map",
            map.len() - c.pos
        ));
    }
    if items.len() as u64 != expected {
        return Err(format!(
            "{} blocks for a file of {expected} blocks",
            items.len()
        ));
    }
    Ok(items)
}

fn add(a: u64, b: u64) -> Result<u64, String> {
    a.checked_add(b)
        .ok_or_else(|| "an offset overflows".to_owned())
}

#[cfg(test)]
mod tests;
