//! Helm, as `scripts/testinfra.sh` installs it (component `helm`), for the chart `deploy/helm/pgro`, and
//! prometheus-operator's CRDs (component `monitoring-crds`) so the chart's ServiceMonitor can be checked by
//! a real apiserver.
//!
//! [`Helm::find`] returns [`crate::Unavailable`] (inside the `anyhow::Error`) when Helm is not installed,
//! for [`crate::skip_unless_ci`].

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::infra::Components;
use crate::monitoring::{Outcome, run_command};

/// The env key of `helm`.
pub const HELM: &str = "PGRO_HELM";
/// The env key of the directory holding the ServiceMonitor and PrometheusRule CRDs.
pub const MONITORING_CRDS: &str = "PGRO_MONITORING_CRDS";

/// The workspace's chart.
#[must_use]
pub fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/helm/pgro")
}

/// `helm` with its cache, configuration and data in a private directory (nothing of the user's Helm
/// setup is read or written).
#[derive(Debug)]
pub struct Helm {
    bin: PathBuf,
    home: tempfile::TempDir,
}

impl Helm {
    /// The installed `helm` (`PGRO_HELM`).
    ///
    /// # Errors
    /// [`crate::Unavailable`] when it is not installed; a private directory cannot be made.
    pub fn find(components: &Components) -> anyhow::Result<Self> {
        Ok(Self {
            bin: components.path(HELM)?,
            home: tempfile::tempdir()?,
        })
    }

    /// `helm ARGS…`, with `kubeconfig` as `--kubeconfig` when given.
    ///
    /// # Errors
    /// `helm` cannot be started.
    pub fn run(&self, args: &[&str], kubeconfig: Option<&Path>) -> anyhow::Result<Outcome> {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .env("HELM_CACHE_HOME", self.home.path().join("cache"))
            .env("HELM_CONFIG_HOME", self.home.path().join("config"))
            .env("HELM_DATA_HOME", self.home.path().join("data"))
            .env_remove("KUBECONFIG");
        if let Some(k) = kubeconfig {
            cmd.arg("--kubeconfig").arg(k);
        }
        run_command(cmd)
    }
}
