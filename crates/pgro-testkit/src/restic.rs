//! Real restic repositories, written the way KubeStash writes them (barman-restic-format.md B1.2, B5): a
//! dump piped into `restic backup --stdin --stdin-filename dumpfile.sql --host host-0`, one repository
//! per session and component (`<prefix>/<directory>/repository/v1/<session>/dump`), versions 1 and 2,
//! and the oracle read: `restic dump <snapshot> /dumpfile.sql`.
//!
//! Credentials reach restic through its environment only. Every restic process is waited for.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail, ensure};

use crate::fixtures::{MINIO_SECRET, MINIO_USER, Minio};
use crate::infra::Components;

mod source;
pub use source::{DumpCmd, DumpSource, SOURCE_PASSWORDS};

/// KubeStash's stdin file name (`PgDumpFile`).
pub const DUMP_FILE: &str = "dumpfile.sql";
/// The host KubeStash's wrapper passes (`--host host-0`).
pub const KUBESTASH_HOST: &str = "host-0";
/// The repository password of every fixture.
pub const PASSWORD: &str = "changeit";

/// One restic repository and how to reach it.
#[derive(Debug, Clone)]
pub struct ResticRepo {
    bin: PathBuf,
    /// The repository URL as restic takes it (`/path`, `s3:http://…/bucket/path`).
    pub url: String,
    env: Vec<(String, String)>,
}

/// KubeStash's repository path for a session's dump: `<prefix>/<directory>/repository/v1/<session>/dump`.
#[must_use]
pub fn kubestash_path(prefix: &str, directory: &str, session: &str) -> String {
    format!(
        "{}/{}/repository/v1/{session}/dump",
        prefix.trim_matches('/'),
        directory.trim_matches('/')
    )
}

impl ResticRepo {
    /// A repository in a local directory.
    ///
    /// # Errors
    /// [`crate::Unavailable`] when restic is not installed.
    pub fn local(components: &Components, dir: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            bin: components.path("PGRO_RESTIC")?,
            url: dir.to_string_lossy().into_owned(),
            env: vec![("RESTIC_PASSWORD".into(), PASSWORD.into())],
        })
    }

    /// A repository at `s3:http://127.0.0.1:<port>/<bucket>/<path>` in MinIO.
    ///
    /// # Errors
    /// [`crate::Unavailable`] when restic is not installed.
    pub fn s3(
        components: &Components,
        minio: &Minio,
        bucket: &str,
        path: &str,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            bin: components.path("PGRO_RESTIC")?,
            url: format!("s3:http://127.0.0.1:{}/{bucket}/{path}", minio.port),
            env: vec![
                ("RESTIC_PASSWORD".into(), PASSWORD.into()),
                ("AWS_ACCESS_KEY_ID".into(), MINIO_USER.into()),
                ("AWS_SECRET_ACCESS_KEY".into(), MINIO_SECRET.into()),
            ],
        })
    }

    /// The environment restic runs with (the Secret keys a source needs, by restic's names).
    #[must_use]
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("RESTIC_REPOSITORY", &self.url)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg("--no-cache")
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<Vec<u8>> {
        let out = self
            .command(args)
            .output()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        if !out.status.success() {
            bail!(
                "restic {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(out.stdout)
    }

    /// `restic init --repository-version <version>`.
    ///
    /// # Errors
    /// restic fails.
    pub fn init(&self, version: u32) -> anyhow::Result<()> {
        self.run(&["init", "--repository-version", &version.to_string()])
            .map(drop)
    }

    /// `restic backup --stdin --stdin-filename <file> --host <host> --compression <c>` of `data`; the new
    /// snapshot's ID.
    ///
    /// # Errors
    /// restic fails.
    pub fn backup_bytes(
        &self,
        data: &[u8],
        file: &str,
        host: &str,
        compression: &str,
    ) -> anyhow::Result<String> {
        let mut child = self
            .backup_command(file, host, compression)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting restic backup")?;
        let mut stdin = child.stdin.take().context("restic stdin")?;
        let writer = {
            let data = data.to_vec();
            std::thread::spawn(move || stdin.write_all(&data))
        };
        let out = child.wait_with_output()?;
        writer
            .join()
            .map_err(|_| anyhow::anyhow!("writer panicked"))??;
        snapshot_id(&out)
    }

    /// KubeStash's pipe: `producer | restic backup --stdin …`; both must succeed. The new snapshot's ID.
    ///
    /// # Errors
    /// Either side fails.
    pub fn backup_pipe(
        &self,
        mut producer: Command,
        file: &str,
        host: &str,
        compression: &str,
    ) -> anyhow::Result<String> {
        let mut prod = producer
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting the dump")?;
        let pipe = prod.stdout.take().context("dump stdout")?;
        let out = self
            .backup_command(file, host, compression)
            .stdin(Stdio::from(pipe))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .context("running restic backup")?;
        let p = prod.wait_with_output()?;
        ensure!(
            p.status.success(),
            "the dump failed ({}): {}",
            p.status,
            String::from_utf8_lossy(&p.stderr).trim()
        );
        snapshot_id(&out)
    }

    fn backup_command(&self, file: &str, host: &str, compression: &str) -> Command {
        let mut c = self.command(&[
            "backup",
            "--stdin",
            "--stdin-filename",
            file,
            "--host",
            host,
            "--json",
        ]);
        if !compression.is_empty() {
            c.args(["--compression", compression]);
        }
        c
    }

    /// `restic dump <snapshot> <path>`: the oracle's bytes.
    ///
    /// # Errors
    /// restic fails.
    pub fn dump(&self, snapshot: &str, path: &str) -> anyhow::Result<Vec<u8>> {
        self.run(&["dump", snapshot, path])
    }

    /// `restic snapshots --json`.
    ///
    /// # Errors
    /// restic fails or prints no JSON.
    pub fn snapshots(&self) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_slice(
            &self.run(&["snapshots", "--json"])?,
        )?)
    }

    /// `restic key add` with a second password (a repository with two key files).
    ///
    /// # Errors
    /// restic fails.
    pub fn add_key(&self, password: &str) -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("pw");
        std::fs::write(&file, password)?;
        self.run(&["key", "add", "--new-password-file", &file.to_string_lossy()])
            .map(drop)
    }

    /// `restic forget <id> --prune`: what KubeStash's retention policy runs.
    ///
    /// # Errors
    /// restic fails.
    pub fn forget_prune(&self, id: &str) -> anyhow::Result<()> {
        self.run(&["forget", id, "--prune"]).map(drop)
    }
}

/// The `snapshot_id` of `restic backup --json`'s summary line.
fn snapshot_id(out: &std::process::Output) -> anyhow::Result<String> {
    ensure!(
        out.status.success(),
        "restic backup failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
            && v["message_type"] == "summary"
            && let Some(id) = v["snapshot_id"].as_str()
        {
            return Ok(id.to_owned());
        }
    }
    bail!(
        "restic backup printed no summary: {}",
        String::from_utf8_lossy(&out.stdout)
    )
}

/// `n` bytes of SQL-like text (compressible like a dump, not trivially): deterministic in `seed`.
#[must_use]
pub fn dumpish(n: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 64);
    let mut x = seed | 1;
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let _ = writeln!(
            out,
            "{}\t{:x}\tcustomer-{}\t{}",
            x % 1_000_000,
            x,
            x % 977,
            x >> 40
        );
    }
    out.truncate(n);
    out
}
