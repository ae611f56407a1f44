//! The checkers of `deploy/monitoring`, as `scripts/testinfra.sh` installs them (components `promtool` and
//! `dashboard-linter`): Prometheus' `promtool` (`check rules`, `test rules`) and grafana/dashboard-linter.
//!
//! [`Promtool::find`] and [`DashboardLinter::find`] return [`crate::Unavailable`] (inside the
//! `anyhow::Error`) when the tool is not installed, for [`crate::skip_unless_ci`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

use crate::infra::Components;

/// The env key of `promtool`.
pub const PROMTOOL: &str = "PGRO_PROMTOOL";
/// The env key of `dashboard-linter`.
pub const DASHBOARD_LINTER: &str = "PGRO_DASHBOARD_LINTER";

/// How one run of a checker ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The command line, for messages.
    pub command: String,
    /// Exit status 0.
    pub success: bool,
    /// Standard output, then standard error.
    pub output: String,
}

impl Outcome {
    /// Panics with the command and its output unless it succeeded.
    ///
    /// # Panics
    /// When the command failed.
    #[track_caller]
    pub fn assert_success(&self) {
        assert!(self.success, "{self}");
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = if self.success { "succeeded" } else { "failed" };
        write!(f, "`{}` {status}:\n{}", self.command, self.output)
    }
}

fn run(bin: &Path, args: &[&str], dir: &Path) -> anyhow::Result<Outcome> {
    let mut cmd = Command::new(bin);
    cmd.args(args).current_dir(dir);
    run_command(cmd)
}

/// Runs `cmd` to the end, standard input closed, and keeps what it printed.
pub(crate) fn run_command(mut cmd: Command) -> anyhow::Result<Outcome> {
    let command = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("starting `{command}`"))?;
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok(Outcome {
        command,
        success: out.status.success(),
        output,
    })
}

fn dir_and_name(file: &Path) -> anyhow::Result<(&Path, &str)> {
    let dir = file.parent().context("a file in a directory")?;
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .context("a UTF-8 file name")?;
    Ok((dir, name))
}

/// Prometheus' `promtool`.
#[derive(Debug, Clone)]
pub struct Promtool {
    bin: PathBuf,
}

impl Promtool {
    /// The installed `promtool` (`PGRO_PROMTOOL`).
    ///
    /// # Errors
    /// [`crate::Unavailable`] when it is not installed.
    pub fn find(components: &Components) -> anyhow::Result<Self> {
        Ok(Self {
            bin: components.path(PROMTOOL)?,
        })
    }

    /// `promtool check rules FILE`, run in the file's directory.
    ///
    /// # Errors
    /// `promtool` cannot be started.
    pub fn check_rules(&self, file: &Path) -> anyhow::Result<Outcome> {
        let (dir, name) = dir_and_name(file)?;
        run(&self.bin, &["check", "rules", name], dir)
    }

    /// `promtool test rules FILE`, run in the file's directory (its `rule_files` are relative to it).
    ///
    /// # Errors
    /// `promtool` cannot be started.
    pub fn test_rules(&self, file: &Path) -> anyhow::Result<Outcome> {
        let (dir, name) = dir_and_name(file)?;
        run(&self.bin, &["test", "rules", name], dir)
    }
}

/// grafana/dashboard-linter.
#[derive(Debug, Clone)]
pub struct DashboardLinter {
    bin: PathBuf,
}

impl DashboardLinter {
    /// The installed `dashboard-linter` (`PGRO_DASHBOARD_LINTER`).
    ///
    /// # Errors
    /// [`crate::Unavailable`] when it is not installed.
    pub fn find(components: &Components) -> anyhow::Result<Self> {
        Ok(Self {
            bin: components.path(DASHBOARD_LINTER)?,
        })
    }

    /// `dashboard-linter lint --strict FILE` (fails on any finding, warnings too), with the `.lint`
    /// configuration beside the file if there is one.
    ///
    /// # Errors
    /// `dashboard-linter` cannot be started.
    pub fn lint_strict(&self, file: &Path) -> anyhow::Result<Outcome> {
        let (dir, name) = dir_and_name(file)?;
        run(&self.bin, &["lint", "--strict", name], dir)
    }
}
