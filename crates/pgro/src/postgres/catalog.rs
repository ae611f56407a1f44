//! Names from a data directory's shared catalogs, read from the files themselves, before PostgreSQL runs
//! (a restore names a missing tablespace, which only `pg_tablespace` knows). Best effort: heap pages are
//! read without commit status, so of several versions of a row the one whose `xmax` is unset wins.
//!
//! Formats (PostgreSQL `src/include/storage/bufpage.h`, `itemid.h`, `access/htup_details.h`,
//! `utils/relmapper.c`): little-endian, as every platform pgro runs on.

/// `pg_tablespace`'s OID; a shared, mapped catalog (its file name comes from `global/pg_filenode.map`).
pub const PG_TABLESPACE: u32 = 1213;

const RELMAPPER_FILEMAGIC: u32 = 0x0059_2717;
const LP_NORMAL: u32 = 1;
const HEAP_XMAX_INVALID: u16 = 0x0800;
const NAMEDATALEN: usize = 64;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The file number `global/pg_filenode.map` gives the mapped relation `oid`.
pub fn mapped_filenode(map: &[u8], oid: u32) -> Option<u32> {
    if u32_at(map, 0)? != RELMAPPER_FILEMAGIC {
        return None;
    }
    let n = usize::try_from(u32_at(map, 4)?).ok()?.min(64);
    (0..n).find_map(|i| {
        let at = 8 + i * 8;
        (u32_at(map, at)? == oid)
            .then(|| u32_at(map, at + 4))
            .flatten()
    })
}

/// `(oid, name)` of every row of a catalog whose first two columns are `oid` and a `name`
/// (`pg_tablespace`, `pg_database`, `pg_authid`), live rows first for each oid.
pub fn oid_names(heap: &[u8]) -> Vec<(u32, String)> {
    let mut rows: Vec<(u32, String, bool)> = Vec::new();
    let page_size = heap
        .get(18..20)
        .and_then(|b| u16_at(b, 0))
        .map_or(8192, |v| usize::from(v & 0xff00));
    if page_size < 1024 {
        return Vec::new();
    }
    for page in heap.chunks_exact(page_size) {
        let Some(lower) = u16_at(page, 12) else {
            continue;
        };
        for lp in (24..usize::from(lower)).step_by(4) {
            let Some(item) = u32_at(page, lp) else { break };
            let (off, flags) = ((item & 0x7fff) as usize, (item >> 15) & 3);
            if flags != LP_NORMAL {
                continue;
            }
            if let Some(row) = tuple(page, off) {
                rows.push(row);
            }
        }
    }
    rows.sort_by_key(|(oid, _, live)| (*oid, !*live));
    rows.dedup_by_key(|(oid, _, _)| *oid);
    rows.into_iter().map(|(oid, name, _)| (oid, name)).collect()
}

fn tuple(page: &[u8], off: usize) -> Option<(u32, String, bool)> {
    let xmax = u32_at(page, off + 4)?;
    let infomask = u16_at(page, off + 20)?;
    let hoff = usize::from(*page.get(off + 22)?);
    let data = off + hoff;
    let oid = u32_at(page, data)?;
    let raw = page.get(data + 4..data + 4 + NAMEDATALEN)?;
    let end = raw.iter().position(|&b| b == 0).unwrap_or(NAMEDATALEN);
    let name = String::from_utf8_lossy(&raw[..end]).into_owned();
    let live = xmax == 0 || infomask & HEAP_XMAX_INVALID != 0;
    Some((oid, name, live))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(rows: &[(u32, &str, u32)]) -> Vec<u8> {
        let mut p = vec![0u8; 8192];
        p[18..20].copy_from_slice(&(8192u16 | 4).to_le_bytes());
        let mut upper = 8192;
        for (i, (oid, name, xmax)) in rows.iter().enumerate() {
            let len = 24 + 4 + 64 + 4;
            upper -= len;
            let t = &mut p[upper..upper + len];
            t[4..8].copy_from_slice(&xmax.to_le_bytes());
            t[22] = 24;
            t[24..28].copy_from_slice(&oid.to_le_bytes());
            t[28..28 + name.len()].copy_from_slice(name.as_bytes());
            let lp = (upper as u32) | (LP_NORMAL << 15) | ((len as u32) << 17);
            p[24 + i * 4..28 + i * 4].copy_from_slice(&lp.to_le_bytes());
        }
        let lower = 24 + rows.len() * 4;
        p[12..14].copy_from_slice(&(lower as u16).to_le_bytes());
        p
    }

    #[test]
    fn names_come_from_live_rows_first() {
        let heap = page(&[
            (1663, "pg_default", 0),
            (16385, "old_name", 733),
            (16385, "ts1", 0),
        ]);
        assert_eq!(
            oid_names(&heap),
            vec![(1663, "pg_default".to_string()), (16385, "ts1".to_string())]
        );
    }

    #[test]
    fn garbage_yields_nothing() {
        assert!(oid_names(&[1, 2, 3]).is_empty());
        assert!(oid_names(&vec![0xff; 16384]).len() <= 2048);
    }

    #[test]
    fn filenode_map_lookup() {
        let mut m = vec![0u8; 512];
        m[0..4].copy_from_slice(&RELMAPPER_FILEMAGIC.to_le_bytes());
        m[4..8].copy_from_slice(&2u32.to_le_bytes());
        m[8..12].copy_from_slice(&1262u32.to_le_bytes());
        m[12..16].copy_from_slice(&1262u32.to_le_bytes());
        m[16..20].copy_from_slice(&PG_TABLESPACE.to_le_bytes());
        m[20..24].copy_from_slice(&16999u32.to_le_bytes());
        assert_eq!(mapped_filenode(&m, PG_TABLESPACE), Some(16999));
        assert_eq!(mapped_filenode(&m, 1), None);
        assert_eq!(mapped_filenode(&[0; 8], 1), None);
    }
}
