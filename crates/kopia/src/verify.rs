//! Sampled content verification (`kopia content verify --percent P`): read, decrypt, decompress
//! and hash-check a deterministic sample of contents.

use futures::StreamExt;

use crate::error::Error;
use crate::ids::ContentId;
use crate::repository::{Indexed, Repository};

/// The outcome of [`Repository::verify_contents`].
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Contents in the index (non-deleted).
    pub total: u64,
    /// Contents sampled and read.
    pub checked: u64,
    /// Bytes of stored data read.
    pub bytes: u64,
    /// Failures, per content.
    pub failures: Vec<(ContentId, Error)>,
}

/// Whether `id` falls in a `percent` sample. The choice depends only on the ID, so repeated runs
/// check the same contents and nested percentages are subsets.
fn sampled(id: &ContentId, percent: f64) -> bool {
    if percent >= 100.0 {
        return true;
    }
    let h = id.hash();
    let mut v = [0u8; 4];
    v.copy_from_slice(&h[h.len().saturating_sub(4)..]);
    let bucket = f64::from(u32::from_be_bytes(v)) / f64::from(u32::MAX);
    bucket * 100.0 < percent
}

impl Repository<Indexed> {
    /// Reads a `percent` sample (0–100) of all contents with `parallel` concurrent reads; every
    /// read verifies the content hash. Failures are collected rather than returned.
    ///
    /// # Errors
    ///
    /// Only index errors; per-content failures go into [`VerifyReport::failures`].
    pub async fn verify_contents(
        &self,
        percent: f64,
        parallel: usize,
    ) -> Result<VerifyReport, Error> {
        let infos = self.list_contents(None)?;
        let mut report = VerifyReport {
            total: infos.len() as u64,
            ..Default::default()
        };
        let sample: Vec<_> = infos
            .into_iter()
            .filter(|i| sampled(&i.content_id, percent))
            .collect();
        let contents = self.contents();
        let mut results = futures::stream::iter(sample)
            .map(|info| async move {
                let r = contents.read(&info.content_id).await;
                (info, r)
            })
            .buffer_unordered(parallel.max(1));
        while let Some((info, r)) = results.next().await {
            report.checked += 1;
            report.bytes += u64::from(info.packed_length);
            if let Err(e) = r {
                report.failures.push((info.content_id, e));
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_deterministic_and_roughly_proportional() {
        let ids: Vec<ContentId> = (0u32..10_000)
            .map(|i| {
                let h = blake3::hash(&i.to_le_bytes());
                ContentId::from_parts(None, &h.as_bytes()[..16]).unwrap()
            })
            .collect();
        let n = ids.iter().filter(|id| sampled(id, 10.0)).count();
        assert!((800..1200).contains(&n), "{n}");
        assert!(ids.iter().all(|id| sampled(id, 100.0)));
        assert!(!ids.iter().any(|id| sampled(id, 0.0)));
        assert!(
            ids.iter()
                .filter(|id| sampled(id, 5.0))
                .all(|id| sampled(id, 10.0))
        );
    }
}
