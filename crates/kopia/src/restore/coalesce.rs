//! Grouping chunk reads: small contents that lie close together in the same pack are fetched
//! with one range read. A PostgreSQL data directory restores ~1,000 small files; one request
//! each cost as much object-store CPU (MinIO: about 1 ms per GET) as the bytes themselves.

use crate::ids::BlobId;
use crate::index::ContentInfo;

/// Contents at least this large are read on their own (coalescing them saves little and would
/// cost a copy: the decoder can reuse a read's buffer in place only when it holds one content).
pub(super) const PART_MAX: u32 = 1 << 20;
/// A coalesced read covers at most this many bytes.
pub(super) const READ_MAX: u64 = 8 << 20;
/// Unrequested bytes a coalesced read may span between two contents.
pub(super) const GAP_MAX: u64 = 64 << 10;
/// Chunks reordered by pack and offset at once, in plan order; bounds the files open at a time.
pub(super) const WINDOW: usize = 64;

/// One range read of a pack and the contents it yields.
#[derive(Debug)]
pub(super) struct PackRead<K> {
    pub(super) pack: BlobId,
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) parts: Vec<(K, ContentInfo)>,
}

fn range(info: &ContentInfo) -> (u64, u64) {
    let start = u64::from(info.pack_offset);
    (start, start + u64::from(info.packed_length))
}

impl<K> PackRead<K> {
    fn single(key: K, info: ContentInfo) -> Self {
        let (start, end) = range(&info);
        Self {
            pack: info.pack_blob_id.clone(),
            start,
            end,
            parts: vec![(key, info)],
        }
    }

    /// Adds `info` if it is small and lies in this read's pack, inside the range or after it
    /// within [`GAP_MAX`], keeping the read under [`READ_MAX`]. Gives the part back otherwise.
    fn try_add(&mut self, key: K, info: ContentInfo) -> Option<(K, ContentInfo)> {
        let (start, end) = range(&info);
        let all_small = self.parts.iter().all(|(_, p)| p.packed_length < PART_MAX);
        let fits = info.pack_blob_id == self.pack
            && info.packed_length < PART_MAX
            && all_small
            && start >= self.start
            && (end <= self.end
                || (start <= self.end.saturating_add(GAP_MAX) && end - self.start <= READ_MAX));
        if !fits {
            return Some((key, info));
        }
        self.end = self.end.max(end);
        self.parts.push((key, info));
        None
    }
}

/// Groups chunk reads, given in plan order with their index entries: within each window of
/// [`WINDOW`] chunks, sorted by pack and offset, neighbouring small contents share a read
/// (duplicates — one content restored into several files — share it too).
pub(super) fn group<K>(items: Vec<(K, ContentInfo)>) -> Vec<PackRead<K>> {
    let mut out = Vec::new();
    let mut items = items.into_iter();
    loop {
        let mut window: Vec<(K, ContentInfo)> = items.by_ref().take(WINDOW).collect();
        if window.is_empty() {
            return out;
        }
        window.sort_by(|(_, a), (_, b)| {
            (a.pack_blob_id.as_str(), a.pack_offset).cmp(&(b.pack_blob_id.as_str(), b.pack_offset))
        });
        let mut current: Option<PackRead<K>> = None;
        for (key, info) in window {
            let rejected = match current.as_mut() {
                Some(read) => read.try_add(key, info),
                None => Some((key, info)),
            };
            if let Some((key, info)) = rejected {
                out.extend(current.replace(PackRead::single(key, info)));
            }
        }
        out.extend(current);
    }
}

#[cfg(test)]
mod tests;
