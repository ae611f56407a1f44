//! A MinIO server on loopback for tests that need S3: found through `PGRO_MINIO` or the
//! test-infrastructure cache, stopped by PID when dropped. Shared by the kopia crate's S3 tests and
//! (through `#[path]`) by `crates/pgro/tests/restore_cli.rs`, so it uses only std, tempfile and
//! pgro-testkit's port allocator.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// MinIO's root user in these tests.
pub const USER: &str = "pgro-test";
/// MinIO's root password in these tests.
pub const SECRET: &str = "pgro-test-secret";

/// Locates MinIO; when absent, fails under `CI=true` and otherwise returns `None` after printing why.
pub fn minio_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("PGRO_MINIO") {
        return Some(PathBuf::from(p));
    }
    let root = std::env::var("PGRO_TESTINFRA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/pgro-testinfra")
        });
    let found = std::fs::read_dir(&root).ok().and_then(|rd| {
        rd.flatten()
            .map(|e| e.path().join("bin/minio"))
            .filter(|p| p.is_file())
            .max()
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "minio binary not found; CI=true makes this a failure"
        );
        eprintln!(
            "skipping: minio binary not found (set PGRO_MINIO or run the test-infrastructure install)"
        );
    }
    found
}

/// A MinIO server on a free loopback port, killed (by PID) on drop.
pub struct Minio {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub endpoint: String,
    /// Its data directory (a top-level directory of a fresh one is a bucket).
    pub data: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Minio {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    pgro_testkit::ports::free_port().unwrap()
}

impl Minio {
    /// Starts MinIO with `buckets`; `region` sets `MINIO_SITE_REGION` (MinIO then refuses requests
    /// signed for any other region, as S3 does for a bucket outside `us-east-1`).
    pub fn start(bin: PathBuf, buckets: &[&str], region: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        for b in buckets {
            std::fs::create_dir_all(data.join(b)).unwrap();
        }
        let (port, console) = (free_port(), free_port());
        let mut cmd = Command::new(bin);
        cmd.arg("server")
            .arg(&data)
            .args([
                "--address",
                &format!("127.0.0.1:{port}"),
                "--console-address",
                &format!("127.0.0.1:{console}"),
            ])
            .env("MINIO_ROOT_USER", USER)
            .env("MINIO_ROOT_PASSWORD", SECRET)
            .env("MINIO_BROWSER", "off")
            .env("MINIO_UPDATE", "off")
            .env_remove("MINIO_SITE_REGION")
            .env_remove("MINIO_REGION")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(r) = region {
            cmd.env("MINIO_SITE_REGION", r);
        }
        let child = cmd.spawn().unwrap();
        let endpoint = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&endpoint).is_err() {
            assert!(Instant::now() < deadline, "minio did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(500));
        Self {
            child,
            endpoint,
            data,
            _dir: dir,
        }
    }
}
