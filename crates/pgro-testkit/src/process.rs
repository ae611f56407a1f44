//! Every host process the harness starts goes through here, so that none can outlive the test binary.
//!
//! Two mechanisms cooperate:
//! * each process is started as `setpriv --pdeathsig KILL -- <program>`: the kernel sends it SIGKILL when
//!   the thread that forked it dies. `PR_SET_PDEATHSIG` is tied to the *thread*, not the process
//!   (prctl(2)), so all forks happen on one spawner thread that lives as long as the process; when the
//!   test binary exits (even without running destructors, or by SIGKILL) every direct child dies.
//! * a [`Proc`] handle stops its process by PID when dropped, and [`Proc::stop`] does SIGTERM, waits the
//!   grace period, then SIGKILL.
//!
//! Each process also carries `PGRO_TESTKIT_OWNER=<pid of the test binary>` in its environment, so leak
//! checks can find strays in `/proc/*/environ`.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{LazyLock, mpsc};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{mpsc as tmpsc, oneshot, watch};

/// The environment variable that marks every process the harness started (value: the harness's PID).
pub const OWNER_ENV: &str = "PGRO_TESTKIT_OWNER";

/// The harness's own runtime. Kubelet tasks and process supervisors run here rather than on a test's
/// runtime, because `#[tokio::test]` creates one runtime per test and drops it (and its tasks) when the
/// test ends, while the control plane and kubelet are shared by every test of the binary.
static HARNESS: LazyLock<Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("pgro-testkit")
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot build the pgro-testkit runtime: {e}"))
});

/// A handle on the harness runtime, which lives until the process exits.
pub fn harness() -> &'static Handle {
    HARNESS.handle()
}

struct SpawnRequest {
    command: Command,
    reply: oneshot::Sender<std::io::Result<Child>>,
}

/// The one thread that forks every child (see the module docs for why it must be a single, immortal
/// thread). It enters the harness runtime so tokio's child reaping is driven there.
static SPAWNER: LazyLock<std::sync::Mutex<mpsc::Sender<SpawnRequest>>> = LazyLock::new(|| {
    let (tx, rx) = mpsc::channel::<SpawnRequest>();
    std::thread::Builder::new()
        .name("pgro-testkit-spawner".into())
        .spawn(move || {
            let _guard = harness().enter();
            for request in rx {
                let mut command = request.command;
                // The receiver may have given up; the child is then dropped, and kill_on_drop stops it.
                let _ = request.reply.send(command.spawn());
            }
        })
        .unwrap_or_else(|e| panic!("cannot start the pgro-testkit spawner thread: {e}"));
    std::sync::Mutex::new(tx)
});

/// What to run. The environment is explicit: `env_clear` plus `env`, with `PATH` inherited unless set.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    name: String,
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    inherit_env: bool,
    cwd: Option<PathBuf>,
    log: Option<PathBuf>,
}

impl ProcessSpec {
    /// A process named `name` (used in logs and errors) running `program`.
    pub fn new(name: impl Into<String>, program: impl AsRef<OsStr>) -> Self {
        Self {
            name: name.into(),
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            inherit_env: true,
            cwd: None,
            log: None,
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Starts from an empty environment instead of the test binary's.
    pub fn env_clear(mut self) -> Self {
        self.inherit_env = false;
        self
    }

    /// Sets the working directory.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Appends stdout and stderr to this file (default: discarded).
    pub fn log_to(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = Some(path.into());
        self
    }

    /// The name given at construction.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Wraps the spec in `prefix...` (e.g. `nsenter --net=… --`), keeping name, env and log.
    pub(crate) fn wrapped_in<I, S>(mut self, prefix: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut prefix: Vec<OsString> = prefix.into_iter().map(|a| a.as_ref().to_owned()).collect();
        if prefix.is_empty() {
            return self;
        }
        let program = prefix.remove(0);
        let mut args = prefix;
        args.push(std::mem::replace(&mut self.program, program));
        args.append(&mut self.args);
        self.args = args;
        self
    }

    fn into_command(self) -> anyhow::Result<Command> {
        let mut command = Command::new(crate::tools::tool("setpriv"));
        command
            .arg("--pdeathsig")
            .arg("KILL")
            .arg("--")
            .arg(&self.program)
            .args(&self.args);
        if !self.inherit_env {
            command.env_clear();
            if !self.env.iter().any(|(k, _)| k == "PATH") {
                command.env("PATH", crate::tools::DEFAULT_PATH);
            }
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command.env(OWNER_ENV, std::process::id().to_string());
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        command.stdin(Stdio::null());
        match &self.log {
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening log file {}", path.display()))?;
                command.stdout(file.try_clone()?).stderr(file);
            }
            None => {
                command.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        command.kill_on_drop(true);
        Ok(command)
    }
}

/// A running (or finished) host process. Dropping the handle kills the process (by PID, while it is
/// still our unreaped child, so the PID cannot have been reused).
#[derive(Debug)]
pub struct Proc {
    name: String,
    pid: u32,
    log: Option<PathBuf>,
    exit: watch::Receiver<Option<ExitStatus>>,
    signals: tmpsc::UnboundedSender<Signal>,
}

impl Proc {
    /// Starts `spec` on the spawner thread.
    ///
    /// # Errors
    /// When the program cannot be started (missing binary, unreadable log path).
    pub async fn spawn(spec: ProcessSpec) -> anyhow::Result<Proc> {
        let name = spec.name.clone();
        let log = spec.log.clone();
        let program = spec.program.clone();
        let command = spec.into_command()?;
        let (reply, response) = oneshot::channel();
        SPAWNER
            .lock()
            .map_err(|_| anyhow!("spawner lock poisoned"))?
            .send(SpawnRequest { command, reply })
            .map_err(|_| anyhow!("spawner thread is gone"))?;
        let mut child = response
            .await
            .map_err(|_| anyhow!("spawner dropped the request"))?
            .with_context(|| format!("starting {name} ({})", Path::new(&program).display()))?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow!("{name} exited before it could be tracked"))?;
        let (exit_tx, exit) = watch::channel(None);
        let (signals, mut signal_rx) = tmpsc::unbounded_channel::<Signal>();
        harness().spawn(async move {
            let mut handle_open = true;
            loop {
                tokio::select! {
                    status = child.wait() => {
                        let status = status.unwrap_or_else(|_| std::os::unix::process::ExitStatusExt::from_raw(0x100 * 255));
                        let _ = exit_tx.send(Some(status));
                        return;
                    }
                    sig = signal_rx.recv(), if handle_open => {
                        // `child.wait()` is only polled in the other branch, so the child cannot have
                        // been reaped here: the PID still names our process.
                        let sig = sig.unwrap_or_else(|| { handle_open = false; Signal::SIGKILL });
                        if let Some(pid) = child.id() {
                            let _ = kill(Pid::from_raw(pid as i32), sig);
                        }
                    }
                }
            }
        });
        Ok(Proc {
            name,
            pid,
            log,
            exit,
            signals,
        })
    }

    /// The PID of the process (of `setpriv`, which execs into the program: the same PID).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The name given in the spec.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where its output goes, if anywhere.
    pub fn log_path(&self) -> Option<&Path> {
        self.log.as_deref()
    }

    /// Sends a signal (ignored once the process has exited).
    pub fn signal(&self, signal: Signal) {
        let _ = self.signals.send(signal);
    }

    /// The exit status, once it has exited.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        *self.exit.borrow()
    }

    /// Waits for the process to exit.
    pub async fn wait(&self) -> ExitStatus {
        let mut exit = self.exit.clone();
        loop {
            if let Some(status) = *exit.borrow_and_update() {
                return status;
            }
            if exit.changed().await.is_err() {
                // The supervisor task is gone (runtime shutting down): report a kill.
                return std::os::unix::process::ExitStatusExt::from_raw(9);
            }
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; returns the exit status.
    pub async fn stop(&self, grace: Duration) -> ExitStatus {
        if let Some(status) = self.exit_status() {
            return status;
        }
        self.signal(Signal::SIGTERM);
        match tokio::time::timeout(grace, self.wait()).await {
            Ok(status) => status,
            Err(_) => {
                self.signal(Signal::SIGKILL);
                self.wait().await
            }
        }
    }

    /// The last `max` bytes of its log, for error messages.
    pub fn log_tail(&self, max: usize) -> String {
        self.log
            .as_deref()
            .map(|p| file_tail(p, max))
            .unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exit_status().is_none() {
            self.signal(Signal::SIGKILL);
        }
    }
}

/// The last `max` bytes of a file (lossy UTF-8), or an empty string.
pub(crate) fn file_tail(path: &Path, max: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let start = bytes.len().saturating_sub(max);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// Runs a short helper command to completion (on the spawner thread, so it dies with the harness too)
/// and fails with its output when it exits non-zero.
pub(crate) async fn run(spec: ProcessSpec) -> anyhow::Result<String> {
    let name = spec.name.clone();
    let mut command = spec.into_command()?;
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let (reply, response) = oneshot::channel();
    SPAWNER
        .lock()
        .map_err(|_| anyhow!("spawner lock poisoned"))?
        .send(SpawnRequest { command, reply })
        .map_err(|_| anyhow!("spawner thread is gone"))?;
    let child = response
        .await
        .map_err(|_| anyhow!("spawner dropped the request"))??;
    let output = child.wait_with_output().await?;
    if !output.status.success() {
        return Err(anyhow!(
            "{name} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            String::from_utf8_lossy(&output.stdout).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs a helper command and returns its full output whatever the exit status.
pub(crate) async fn output(spec: ProcessSpec) -> anyhow::Result<std::process::Output> {
    let mut command = spec.into_command()?;
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let (reply, response) = oneshot::channel();
    SPAWNER
        .lock()
        .map_err(|_| anyhow!("spawner lock poisoned"))?
        .send(SpawnRequest { command, reply })
        .map_err(|_| anyhow!("spawner thread is gone"))?;
    let child = response
        .await
        .map_err(|_| anyhow!("spawner dropped the request"))??;
    Ok(child.wait_with_output().await?)
}

/// Processes whose environment carries `PGRO_TESTKIT_OWNER=<owner>`: what a leak check looks for.
pub fn processes_owned_by(owner: u32) -> Vec<u32> {
    let needle = format!("{OWNER_ENV}={owner}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|b| *b == 0)
            .any(|var| var == needle.as_bytes())
        {
            found.push(pid);
        }
    }
    found
}

/// The direct children of `parent`, from `/proc/*/stat` (this kernel has no `/proc/PID/task/*/children`).
pub(crate) fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // Field 4 (ppid) follows the parenthesised command name, which may contain spaces.
            let after = &stat[stat.rfind(')')? + 2..];
            let ppid: u32 = after.split(' ').nth(1)?.parse().ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}
