//! Restoring mostly-zero files (PostgreSQL relation extents, preallocated WAL) from a repository
//! written by kopia: the bytes equal kopia's restore, runs of zeros are allocated rather than
//! written (the file occupies its size unless sparse), and a chunk of zeros that recurs is read
//! from storage only until it is known to be zeros.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use common::{Kopia, assert_trees_equal, kopia_binary, pseudo_random};
use kopia::{
    BlobId, BlobMetadata, FilesystemStorage, Repository, RestoreOptions, Storage, StorageError,
};

/// Counts the range reads of each (blob, range).
#[derive(Debug)]
struct Counting {
    inner: FilesystemStorage,
    reads: Mutex<HashMap<(BlobId, u64, u64), usize>>,
}

#[async_trait]
impl Storage for Counting {
    async fn list(&self, prefix: &str) -> Result<Vec<BlobMetadata>, StorageError> {
        self.inner.list(prefix).await
    }

    async fn get(&self, id: &BlobId) -> Result<Bytes, StorageError> {
        self.inner.get(id).await
    }

    async fn get_range(&self, id: &BlobId, range: Range<u64>) -> Result<Bytes, StorageError> {
        *self
            .reads
            .lock()
            .unwrap()
            .entry((id.clone(), range.start, range.end))
            .or_default() += 1;
        self.inner.get_range(id, range).await
    }
}

/// 48 MiB: 1 MiB of data, 40 MiB of zeros, 1 MiB of data, 6 MiB of zeros.
fn mostly_zero() -> Vec<u8> {
    let mut data = vec![0u8; 48 << 20];
    data[..1 << 20].copy_from_slice(&pseudo_random(1 << 20, 5));
    data[(41 << 20)..(42 << 20)].copy_from_slice(&pseudo_random(1 << 20, 6));
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mostly_zero_file_restores_like_kopia_with_zero_runs_allocated_and_read_once() {
    let Some(bin) = kopia_binary() else { return };
    let k = Kopia::new(bin);
    k.create_filesystem_repo(&[]);
    let src = k.dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("16384"), mostly_zero()).unwrap();
    let id = k.snapshot(&src, &[]);
    let theirs = k.dir.path().join("restore-kopia");
    k.restore(&id, &theirs);

    let counting = Arc::new(Counting {
        inner: FilesystemStorage::open(k.repo_path()).await.unwrap(),
        reads: Mutex::new(HashMap::new()),
    });
    let st: Arc<dyn Storage> = counting.clone();
    let repo = Repository::connect(st, &k.password).await.unwrap();
    let ours = k.dir.path().join("restore-ours");
    let opts = RestoreOptions {
        parallel: 2,
        ..Default::default()
    };
    let stats = repo.restore(&id, &ours, &opts).await.unwrap();
    assert_trees_equal(&theirs, &ours);

    // Kopia's splitter cuts the 40 MiB run of zeros into identical chunks: one object, read until
    // its first copy is decoded (at most the reads in flight by then), not once per chunk.
    let reads = counting.reads.lock().unwrap().clone();
    let most = reads.values().copied().max().unwrap_or(0);
    assert!(stats.chunks >= 20, "{stats:?}");
    assert!(most <= 6, "a zero chunk was read {most} times of {stats:?}");

    // Not sparse unless asked: the file occupies its whole size (allocated, not written).
    let meta = std::fs::metadata(ours.join("16384")).unwrap();
    assert!(meta.blocks() * 512 >= meta.len(), "{meta:?}");
    let sparse = k.dir.path().join("restore-sparse");
    let opts = RestoreOptions {
        sparse: true,
        ..opts
    };
    repo.restore(&id, &sparse, &opts).await.unwrap();
    assert_trees_equal(&theirs, &sparse);
    let meta = std::fs::metadata(sparse.join("16384")).unwrap();
    assert!(meta.blocks() * 512 < 4 << 20, "sparse: {meta:?}");
}
