//! Restore conformance against the real kopia binary over a matrix of repository formats.
//! Set `PGRO_KOPIA_LARGE=1` to include a > 100 MiB file (indirect object with many chunks).

mod common;

use common::roundtrip;

fn large() -> Option<usize> {
    std::env::var("PGRO_KOPIA_LARGE")
        .ok()
        .filter(|v| v == "1")
        .map(|_| 110 << 20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_matches_kopia_with_default_format() {
    roundtrip(&[], &[], large()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_matches_kopia_with_format_version_1() {
    roundtrip(&["--format-version", "1"], &[], None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_matches_kopia_with_chacha_and_blake3() {
    roundtrip(
        &[
            "--encryption",
            "CHACHA20-POLY1305-HMAC-SHA256",
            "--block-hash",
            "BLAKE3-256-128",
        ],
        &[],
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_matches_kopia_with_ecc_and_zstd() {
    roundtrip(
        &["--ecc-overhead-percent", "2"],
        &["--compression", "zstd"],
        None,
    )
    .await;
}
