//! Storage emulators on loopback, as `scripts/testinfra.sh` installs them (components `fake-gcs` and
//! `azurite`): fake-gcs-server for Google Cloud Storage and Azurite for Azure Blob Storage. Both die with
//! the test binary ([`Proc`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::infra::Components;
use crate::process::{Proc, ProcessSpec};

/// The env key of fake-gcs-server.
pub const FAKE_GCS: &str = "PGRO_FAKE_GCS";
/// The env key of Azurite's blob server.
pub const AZURITE: &str = "PGRO_AZURITE";
/// The env key of Azurite's `node_modules` (with `@azure/storage-blob`).
pub const AZURITE_NODE_PATH: &str = "PGRO_AZURITE_NODE_PATH";
/// Azurite's development account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's published development account key (not a secret).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Waits up to 30 s until a server started as `proc` accepts connections on loopback `port`; the error
/// carries the end of its log.
pub(crate) async fn wait_listening(port: u16, what: &str, proc: &Proc) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            bail!(
                "{what} did not listen on 127.0.0.1:{port} within 30 s: {}",
                proc.log_tail(2000)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// fake-gcs-server over plain HTTP, objects in memory.
#[derive(Debug)]
pub struct FakeGcs {
    /// Its base URL, `http://127.0.0.1:<port>` (what `STORAGE_EMULATOR_HOST` names without the scheme).
    pub url: String,
    /// `127.0.0.1:<port>`, for `STORAGE_EMULATOR_HOST`.
    pub host: String,
    _proc: Proc,
}

impl FakeGcs {
    /// Starts it, logging beside `dir`, and waits until it accepts connections.
    ///
    /// # Errors
    /// fake-gcs-server is not installed or does not start within 30 s.
    pub async fn start(components: &Components, dir: &Path) -> anyhow::Result<Self> {
        let bin = components.path(FAKE_GCS)?;
        let port = crate::ports::free_port()?;
        let host = format!("127.0.0.1:{port}");
        let url = format!("http://{host}");
        let proc = Proc::spawn(
            ProcessSpec::new("fake-gcs-server", &bin)
                .args([
                    "-scheme",
                    "http",
                    "-host",
                    "127.0.0.1",
                    "-backend",
                    "memory",
                ])
                .args(["-port", &port.to_string(), "-public-host", &host])
                .args(["-external-url", &url, "-log-level", "warn"])
                .log_to(dir.with_extension("fake-gcs.log")),
        )
        .await?;
        wait_listening(port, "fake-gcs-server", &proc).await?;
        Ok(Self {
            url,
            host,
            _proc: proc,
        })
    }

    /// Creates a bucket over the JSON API (the emulator takes unauthenticated requests).
    ///
    /// # Errors
    /// The request fails or is refused.
    pub async fn create_bucket(&self, name: &str) -> anyhow::Result<()> {
        let response = reqwest::Client::new()
            .post(format!("{}/storage/v1/b", self.url))
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(
                "creating bucket {name}: {} {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }
}

/// Azurite's blob service over plain HTTP (path-style URLs: `http://127.0.0.1:<port>/<account>`), telemetry
/// off (it reports to Microsoft otherwise).
#[derive(Debug)]
pub struct Azurite {
    /// The development account's URL, `http://127.0.0.1:<port>/devstoreaccount1`.
    pub account_url: String,
    node_path: PathBuf,
    _proc: Proc,
}

impl Azurite {
    /// Starts it on `dir` and waits until it accepts connections.
    ///
    /// # Errors
    /// Azurite is not installed or does not start within 30 s.
    pub async fn start(components: &Components, dir: &Path) -> anyhow::Result<Self> {
        let bin = components.path(AZURITE)?;
        let node_path = components.path(AZURITE_NODE_PATH)?;
        std::fs::create_dir_all(dir)?;
        let port = crate::ports::free_port()?;
        let proc = Proc::spawn(
            ProcessSpec::new("azurite", &bin)
                .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
                .arg("--location")
                .arg(dir)
                .args(["--disableTelemetry", "--skipApiVersionCheck", "--silent"])
                .log_to(dir.with_extension("azurite.log")),
        )
        .await?;
        wait_listening(port, "Azurite", &proc).await?;
        Ok(Self {
            account_url: format!("http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"),
            node_path,
            _proc: proc,
        })
    }

    /// Creates a container with the development account's key, through the official SDK
    /// (`scripts/testinfra.d/azure-container.js`): Azure has no unauthenticated "create container".
    ///
    /// # Errors
    /// `node` cannot run it or the service refuses.
    pub fn create_container(&self, name: &str) -> anyhow::Result<()> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../scripts/testinfra.d/azure-container.js");
        let out = Command::new("node")
            .arg(&script)
            .arg(&self.account_url)
            .arg(name)
            .env("NODE_PATH", &self.node_path)
            .env("AZURE_STORAGE_KEY", AZURITE_KEY)
            .output()
            .context("running node (needed for Azurite)")?;
        if !out.status.success() {
            bail!(
                "creating container {name}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}
