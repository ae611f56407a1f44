//! The postmaster child: spawned with its stderr piped through us (forwarded line by line to our stderr,
//! the last lines kept to classify a failed start), stopped with SIGINT (PostgreSQL's fast shutdown).

use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::error::Error;

const KEEP_LINES: usize = 400;

/// A running postmaster, owned by one task.
#[derive(Debug)]
pub(crate) struct Postmaster {
    child: Child,
    pid: i32,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Postmaster {
    /// Starts `postgres -D pgdata` (from PATH).
    ///
    /// # Errors
    /// `Spawn` when the binary cannot be started.
    pub(crate) fn spawn(pgdata: &Path) -> Result<Self, Error> {
        let mut child = Command::new("postgres")
            .arg("-D")
            .arg(pgdata)
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Spawn {
                program: "postgres",
                source,
            })?;
        let pid = child.id().map_or(0, |p| p as i32);
        let log = Arc::new(Mutex::new(VecDeque::with_capacity(KEEP_LINES)));
        if let Some(stderr) = child.stderr.take() {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    eprintln!("{line}");
                    if let Ok(mut l) = log.lock() {
                        if l.len() == KEEP_LINES {
                            l.pop_front();
                        }
                        l.push_back(line);
                    }
                }
            });
        }
        tracing::info!(pid, "postgres started");
        Ok(Self { child, pid, log })
    }

    /// The postmaster's pid.
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// The last lines it logged.
    pub(crate) fn log_tail(&self) -> Vec<String> {
        self.log
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Waits for it to exit (also reaps it).
    ///
    /// # Errors
    /// Waiting failed.
    pub(crate) async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let status = self.child.wait().await?;
        // Let the stderr forwarder drain what the process wrote last.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        Ok(status)
    }

    /// Sends `signal` to the postmaster (SIGINT = fast shutdown, SIGHUP = reload).
    pub(crate) fn signal(&self, signal: Signal) {
        if let Err(e) = kill(Pid::from_raw(self.pid), signal) {
            tracing::warn!(pid = self.pid, error = %e, "signalling postgres failed");
        }
    }

    /// Fast shutdown, then waits for the exit.
    ///
    /// # Errors
    /// Waiting failed.
    pub(crate) async fn stop(&mut self) -> std::io::Result<ExitStatus> {
        self.signal(Signal::SIGINT);
        self.wait().await
    }
}

/// The exit code a container should report for a child's status: its code, or 128 + the signal.
pub(crate) fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(c), _) => u8::try_from(c).unwrap_or(1),
        (None, Some(s)) => u8::try_from(128 + s).unwrap_or(255),
        (None, None) => 1,
    }
}
