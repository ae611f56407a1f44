//! Restore conformance against the real kopia binary over a matrix of repository formats.
//! Set `PGRO_KOPIA_LARGE=1` to include a > 100 MiB file (indirect object with many chunks).
#![allow(clippy::unwrap_used, clippy::panic)]

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_matches_kopia_with_blake2b_256_and_s2() {
    roundtrip(
        &["--block-hash", "BLAKE2B-256"],
        &["--compression", "s2-default"],
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_matches_kopia_with_blake2s_128_and_gzip() {
    roundtrip(
        &["--block-hash", "BLAKE2S-128"],
        &["--compression", "gzip"],
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_matches_kopia_with_hmac_sha256_128_and_deflate() {
    roundtrip(
        &["--block-hash", "HMAC-SHA256-128"],
        &["--compression", "deflate-default"],
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_matches_kopia_with_hmac_sha3_256_chacha_and_pgzip() {
    roundtrip(
        &[
            "--block-hash",
            "HMAC-SHA3-256",
            "--encryption",
            "CHACHA20-POLY1305-HMAC-SHA256",
        ],
        &["--compression", "pgzip"],
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_matches_kopia_with_pbkdf2_blake3_256_ecc_and_s2_better() {
    roundtrip(
        &[
            "--format-block-key-derivation-algorithm",
            "pbkdf2-sha256-600000",
            "--block-hash",
            "BLAKE3-256",
            "--ecc-overhead-percent",
            "10",
        ],
        &["--compression", "s2-better"],
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_matches_kopia_with_remaining_hash_algorithms() {
    for h in ["BLAKE2S-256", "HMAC-SHA256", "HMAC-SHA224", "HMAC-SHA3-224"] {
        roundtrip(
            &["--block-hash", h],
            &["--compression", "zstd-fastest"],
            None,
        )
        .await;
    }
}
