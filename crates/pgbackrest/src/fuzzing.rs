//! Entry points for the cargo-fuzz targets in `fuzz/`: each takes arbitrary bytes and must never panic or
//! allocate without bound.

fn ini(data: &[u8]) -> Option<crate::ini::Ini> {
    let text = std::str::from_utf8(data).ok()?;
    let ini = crate::ini::Ini::parse(text).ok()?;
    let _ = ini.verify();
    Some(ini)
}

/// `backup.info` / `archive.info` text: parse, verify, decode as both.
pub fn info_file(data: &[u8]) {
    if let Some(ini) = ini(data) {
        let _ = crate::info::backup_info(&ini);
        let _ = crate::info::archive_info(&ini);
    }
}

/// A manifest: parse, verify, decode, plan a restore of it.
pub fn manifest(data: &[u8]) {
    if let Some(m) = ini(data).and_then(|i| crate::manifest::parse(&i).ok()) {
        let _ = crate::restore::plan_for_fuzzing(&m);
    }
}

/// A block map: the first byte picks the number of references, the rest is the map.
pub fn block_map(data: &[u8]) {
    if let Some((&refs, map)) = data.split_first() {
        let _ = crate::blockmap::decode(map, 8192, 6, usize::from(refs % 8) + 1, 1 << 24);
    }
}
