//! The epoch manager's active index set (kopia `internal/epoch` `GetCompleteIndexSet(LatestEpoch)`).
//! Listing is async; the set computation is a pure function of the listings.

use std::collections::{BTreeMap, HashMap};

use crate::error::Error;
use crate::ids::BlobId;
use crate::storage::{BlobMetadata, Storage};

/// Epoch markers, plaintext `epoch-marker`.
const EPOCH_MARKER_PREFIX: &str = "xe";
/// Deletion watermarks, plaintext.
const WATERMARK_PREFIX: &str = "xw";
/// Single-epoch compaction sets.
const SINGLE_EPOCH_PREFIX: &str = "xs";
/// Range checkpoints.
const RANGE_PREFIX: &str = "xr";
/// Uncompacted index blobs.
const UNCOMPACTED_PREFIX: &str = "xn";
/// Epochs at or below `writeEpoch - 2` are settled (kopia `numUnsettledEpochs`).
const UNSETTLED_EPOCHS: i64 = 2;

/// Blob listings the computation needs.
#[derive(Debug, Clone, Default)]
pub(crate) struct EpochListing {
    pub(crate) markers: Vec<BlobMetadata>,
    pub(crate) watermarks: Vec<BlobMetadata>,
    pub(crate) single: Vec<BlobMetadata>,
    pub(crate) ranges: Vec<BlobMetadata>,
    pub(crate) uncompacted: Vec<BlobMetadata>,
}

/// The active index blobs and deletion watermark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EpochSnapshot {
    pub(crate) blobs: Vec<BlobId>,
    /// Unix seconds; 0 when there is no watermark.
    pub(crate) watermark: i64,
    pub(crate) write_epoch: i64,
}

/// Lists the epoch prefixes concurrently.
pub(crate) async fn list_epoch_blobs(storage: &dyn Storage) -> Result<EpochListing, Error> {
    let list = |p: &'static str| async move {
        storage.list(p).await.map_err(|source| Error::Storage {
            target: format!("list {p}"),
            source,
        })
    };
    let (markers, watermarks, single, ranges, uncompacted) = futures::try_join!(
        list(EPOCH_MARKER_PREFIX),
        list(WATERMARK_PREFIX),
        list(SINGLE_EPOCH_PREFIX),
        list(RANGE_PREFIX),
        list(UNCOMPACTED_PREFIX),
    )?;
    Ok(EpochListing {
        markers,
        watermarks,
        single,
        ranges,
        uncompacted,
    })
}

/// Lists and computes the active set.
pub(crate) async fn epoch_index_set(storage: &dyn Storage) -> Result<EpochSnapshot, Error> {
    Ok(compute(list_epoch_blobs(storage).await?))
}

/// Kopia `epochNumberFromBlobID`: digits after the letters, up to the first `_`.
fn epoch_number(id: &str) -> Option<i64> {
    let head = id.split('_').next().unwrap_or_default();
    let digits = head.trim_start_matches(|c: char| !c.is_ascii_digit());
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Kopia `epochRangeFromBlobID`: `xr<min>_<max>_…`.
fn epoch_range(id: &str) -> Option<(i64, i64)> {
    let mut parts = id.split('_');
    let first = parts.next()?;
    let second = parts.next()?;
    parts.next()?;
    let first = first.trim_start_matches(|c: char| !c.is_ascii_digit());
    let lo: i64 = first.parse().ok()?;
    let hi: i64 = second.parse().ok()?;
    Some((lo, hi))
}

/// Kopia `completeset.FindFirst`: the first set (in listing order) that has all its members.
fn find_first_complete(blobs: &[BlobMetadata]) -> Option<Vec<BlobId>> {
    let mut sets: HashMap<&str, Vec<BlobId>> = HashMap::new();
    for bm in blobs {
        let id = bm.id.as_str();
        let parts: Vec<&str> = id.split('-').collect();
        let count = (parts.len() >= 3 && parts[1].starts_with('s') && parts[2].starts_with('c'))
            .then(|| parts[2][1..].parse::<usize>().ok())
            .flatten();
        let Some(count) = count else {
            return Some(vec![bm.id.clone()]);
        };
        let set = sets.entry(parts[1]).or_default();
        set.push(bm.id.clone());
        if set.len() == count {
            return Some(set.clone());
        }
    }
    None
}

fn sorted(mut v: Vec<BlobMetadata>) -> Vec<BlobMetadata> {
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

#[derive(Debug, Clone)]
struct RangeSet {
    min: i64,
    max: i64,
    blobs: Vec<BlobId>,
}

/// Kopia `findLongestRangeCheckpoint`: the chain from epoch 0 reaching the highest max epoch,
/// preferring fewer pieces on ties.
fn longest_range_chain(ranges: &[RangeSet]) -> Vec<RangeSet> {
    let mut by_min: BTreeMap<i64, Vec<&RangeSet>> = BTreeMap::new();
    for r in ranges {
        by_min.entry(r.min).or_default().push(r);
    }
    fn go(
        start: i64,
        by_min: &BTreeMap<i64, Vec<&RangeSet>>,
        memo: &mut HashMap<i64, Vec<RangeSet>>,
    ) -> Vec<RangeSet> {
        if let Some(v) = memo.get(&start) {
            return v.clone();
        }
        let mut longest = 0;
        let mut best: Vec<RangeSet> = Vec::new();
        for cp in by_min.get(&start).map(Vec::as_slice).unwrap_or_default() {
            // A range whose max is below its min would loop forever; skip it.
            if cp.max < cp.min {
                continue;
            }
            let mut combined = vec![(*cp).clone()];
            combined.extend(go(cp.max + 1, by_min, memo));
            let m = combined.last().map_or(0, |r| r.max);
            if m > longest || (m == longest && combined.len() < best.len()) {
                longest = m;
                best = combined;
            }
        }
        memo.insert(start, best.clone());
        best
    }
    go(0, &by_min, &mut HashMap::new())
}

/// Computes the active index set from listings.
pub(crate) fn compute(listing: EpochListing) -> EpochSnapshot {
    let write_epoch = listing
        .markers
        .iter()
        .filter_map(|b| epoch_number(b.id.as_str()))
        .max()
        .unwrap_or(0);
    let watermark = listing
        .watermarks
        .iter()
        .filter_map(|b| {
            b.id.as_str()
                .strip_prefix(WATERMARK_PREFIX)?
                .parse::<i64>()
                .ok()
        })
        .max()
        .unwrap_or(0);

    let mut single_by_epoch: BTreeMap<i64, Vec<BlobMetadata>> = BTreeMap::new();
    for b in sorted(listing.single) {
        if let Some(e) = epoch_number(b.id.as_str()) {
            single_by_epoch.entry(e).or_default().push(b);
        }
    }
    let single: HashMap<i64, Vec<BlobId>> = single_by_epoch
        .iter()
        .filter_map(|(e, bs)| Some((*e, find_first_complete(bs)?)))
        .collect();

    let mut range_groups: BTreeMap<(i64, i64), Vec<BlobMetadata>> = BTreeMap::new();
    for b in sorted(listing.ranges) {
        if let Some(r) = epoch_range(b.id.as_str()) {
            range_groups.entry(r).or_default().push(b);
        }
    }
    let ranges: Vec<RangeSet> = range_groups
        .iter()
        .filter_map(|((min, max), bs)| {
            Some(RangeSet {
                min: *min,
                max: *max,
                blobs: find_first_complete(bs)?,
            })
        })
        .collect();

    let mut uncompacted: BTreeMap<i64, Vec<BlobId>> = BTreeMap::new();
    for b in sorted(listing.uncompacted) {
        if let Some(e) = epoch_number(b.id.as_str()) {
            uncompacted.entry(e).or_default().push(b.id);
        }
    }

    let mut blobs = Vec::new();
    let mut start = 0i64;
    for cp in longest_range_chain(&ranges) {
        if cp.max > start {
            blobs.extend(cp.blobs);
            start = cp.max + 1;
        }
    }
    let max_epoch = write_epoch + 1;
    for e in start..=max_epoch {
        let settled = e <= write_epoch - UNSETTLED_EPOCHS;
        match single.get(&e) {
            Some(set) if settled => blobs.extend(set.iter().cloned()),
            Some(_) | None => blobs.extend(uncompacted.get(&e).into_iter().flatten().cloned()),
        }
    }
    EpochSnapshot {
        blobs,
        watermark,
        write_epoch,
    }
}

#[cfg(test)]
mod tests;
