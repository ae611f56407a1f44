//! Entry points for the cargo-fuzz targets in `fuzz/`: each takes arbitrary bytes and must never panic,
//! allocate without bound, or write outside the directory it is given.

use std::path::Path;

use crate::codec::Compression;

/// `backup.info` text: parse, then what a listing and a restore ask of it.
pub fn backup_info(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(info) = crate::info::BackupInfo::parse(text) {
        let _ = (info.restorable(), info.major());
    }
}

/// A tar stream as a backup's part holds it: the first byte picks the compression (none, gzip, bzip2,
/// xz, snappy, zstd, lz4), the rest is the stored object, decoded and unpacked into `dest` (an empty
/// directory the caller owns and empties).
pub fn tar_stream(data: &[u8], dest: &Path) {
    const KINDS: [Compression; 7] = [
        Compression::None,
        Compression::Gzip,
        Compression::Bzip2,
        Compression::Xz,
        Compression::Snappy,
        Compression::Zstd,
        Compression::Lz4,
    ];
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let c = KINDS[usize::from(kind) % KINDS.len()];
    let _ = crate::restore::untar(c.decoder(body), dest);
}
