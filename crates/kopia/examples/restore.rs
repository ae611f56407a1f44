//! Minimal driver for manual runs: list snapshots or restore one from a filesystem repository.
//!
//! ```text
//! KOPIA_PASSWORD=… cargo run --release -p kopia --example restore -- <repo-dir> list
//! KOPIA_PASSWORD=… cargo run --release -p kopia --example restore -- <repo-dir> list-warm <n>
//! KOPIA_PASSWORD=… cargo run --release -p kopia --example restore -- <repo-dir> <snapshot> <target> [parallel]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use kopia::{FilesystemStorage, Repository, RestoreOptions, Storage};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let password = std::env::var("KOPIA_PASSWORD").expect("KOPIA_PASSWORD");
    let st: Arc<dyn Storage> = Arc::new(FilesystemStorage::open(&args[1]).await.unwrap());
    let t = Instant::now();
    let repo = Repository::connect(st, &password).await.unwrap();
    eprintln!(
        "opened in {:?} ({} index blobs)",
        t.elapsed(),
        repo.index_blob_count()
    );
    if args.get(2).map(String::as_str) == Some("list-warm") {
        // What the operator does between reconciles: the repository stays open, and each listing re-reads
        // the index set (new blobs only) and the manifests, then renders kopia's JSON.
        let n: usize = args.get(3).map_or(20, |n| n.parse().unwrap());
        let mut times = Vec::with_capacity(n);
        let mut count = 0;
        for _ in 0..n {
            let t = Instant::now();
            repo.refresh_index().await.unwrap();
            let snaps = repo.list_snapshots().await.unwrap();
            let json = kopia::snapshot_list_json(&snaps).unwrap();
            times.push(t.elapsed());
            count = snaps.len();
            std::hint::black_box(json);
        }
        times.sort();
        println!(
            "{count} snapshots; warm refresh + list + JSON over {n} runs: median {:?}, min {:?}, max {:?}",
            times[n / 2],
            times[0],
            times[n - 1]
        );
        return;
    }
    if args.get(2).map(String::as_str) == Some("list") {
        let t = Instant::now();
        let snaps = repo.list_snapshots().await.unwrap();
        println!("{}", kopia::snapshot_list_json(&snaps).unwrap());
        eprintln!("listed {} snapshots in {:?}", snaps.len(), t.elapsed());
        return;
    }
    let parallel = args.get(4).map_or(8, |p| p.parse().unwrap());
    let t = Instant::now();
    let stats = repo
        .restore(
            &args[2],
            std::path::Path::new(&args[3]),
            &RestoreOptions {
                parallel,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "{stats:?} in {secs:.2}s ({:.0} MB/s)",
        stats.bytes as f64 / secs / 1e6
    );
}
