//! Running processes as the PostgreSQL user of the test infrastructure: any program (through `setpriv`),
//! psql, and a PostgreSQL server on a Unix socket. Shared by the fixtures of every WAL-archive source
//! (pgBackRest, barman-cloud).

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::sys::signal::Signal;

use crate::process::{Proc, ProcessSpec};

/// The PostgreSQL user and the PostgreSQL binaries: what runs processes as that user.
#[derive(Debug, Clone)]
pub(crate) struct PgUser {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) pg_bin: PathBuf,
    pub(crate) psql: PathBuf,
}

impl PgUser {
    /// The PostgreSQL user of the test infrastructure with the binaries of `major` (psql from
    /// `PGRO_PSQL` when that build has none).
    pub(crate) fn for_major(
        components: &crate::infra::Components,
        major: u32,
    ) -> Result<Self, crate::infra::Unavailable> {
        let pg_bin = components.postgres_bin(major)?;
        let psql = match pg_bin.join("psql") {
            p if p.exists() => p,
            _ => components.path("PGRO_PSQL")?,
        };
        let (uid, gid) = components.postgres_user();
        Ok(Self {
            uid,
            gid,
            pg_bin,
            psql,
        })
    }

    /// `setpriv --reuid --regid --clear-groups -- program`, started through [`Proc`]'s spawner (so it
    /// dies with the test binary).
    pub(crate) fn spec(&self, name: &str, program: impl AsRef<OsStr>) -> ProcessSpec {
        ProcessSpec::new(name, crate::tools::tool("setpriv"))
            .arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .args(["--clear-groups", "--"])
            .arg(program)
            .env("LC_ALL", "C.UTF-8")
    }

    /// Runs `spec` to completion; its stdout, or an error with all its output.
    pub(crate) async fn run(&self, spec: ProcessSpec) -> anyhow::Result<String> {
        let name = spec.name().to_owned();
        let started = Instant::now();
        let out = crate::process::output(spec).await?;
        if !out.status.success() {
            bail!(
                "{name} failed ({}, after {:.1}s):\n{}\n{}",
                out.status,
                started.elapsed().as_secs_f64(),
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `pg_dumpall` of the server over the Unix socket in `socket`, with every tablespace `LOCATION`
    /// replaced by `LOCATION '…'` (copies keep their tablespaces elsewhere), so two copies of the same data
    /// dump equal.
    pub(crate) async fn dumpall(&self, socket: &Path, port: u16) -> anyhow::Result<String> {
        let spec = self
            .spec("pg_dumpall", self.pg_bin.join("pg_dumpall"))
            .arg("-h")
            .arg(socket)
            .args([
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "--no-role-passwords",
            ]);
        let dump = self.run(spec).await?;
        Ok(dump
            .lines()
            .map(|l| match l.find(" LOCATION '") {
                Some(i) if l.starts_with("CREATE TABLESPACE") => {
                    format!("{} LOCATION '…';", &l[..i])
                }
                // pg_dump ≥ 17.6 fences its output with a random key per run.
                _ if l.starts_with(r"\restrict ") => r"\restrict …".to_owned(),
                _ if l.starts_with(r"\unrestrict ") => r"\unrestrict …".to_owned(),
                _ => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n"))
    }

    /// `psql` over the Unix socket in `socket`, database `postgres`, as `postgres`; unaligned output.
    pub(crate) fn psql(&self, socket: &Path, port: u16, sql: &str) -> anyhow::Result<String> {
        let out = Command::new(&self.psql)
            .uid(self.uid)
            .gid(self.gid)
            .env("LC_ALL", "C.UTF-8")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(socket)
            .args([
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                sql,
            ])
            .output()
            .with_context(|| format!("starting {}", self.psql.display()))?;
        if !out.status.success() {
            bail!(
                "psql {sql:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
    }

    /// A directory owned by the PostgreSQL user with `mode`.
    pub(crate) fn own_dir(&self, dir: &Path, mode: u32) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::os::unix::fs::chown(dir, Some(self.uid), Some(self.gid))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))?;
        Ok(())
    }
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(crate::ports::free_port()?)
}

/// A PostgreSQL server run as the PostgreSQL user on a Unix socket only; stopped with a fast shutdown
/// (SIGINT, then SIGKILL after 10 s) when dropped.
#[derive(Debug)]
pub(crate) struct Server {
    proc: Option<Proc>,
    pub(crate) port: u16,
    pub(crate) socket: PathBuf,
}

impl Server {
    /// Starts `postgres -D data` with `settings` and waits (≤ 60 s) until it answers queries.
    pub(crate) async fn start(
        runner: &PgUser,
        data: &Path,
        socket: &Path,
        log: &Path,
        port: u16,
        settings: &[String],
    ) -> anyhow::Result<Self> {
        Self::start_with_env(runner, data, socket, log, port, settings, &[]).await
    }

    /// [`Server::start`] with extra environment variables, which `archive_command` and
    /// `restore_command` inherit (credentials of a barman-cloud object store).
    pub(crate) async fn start_with_env(
        runner: &PgUser,
        data: &Path,
        socket: &Path,
        log: &Path,
        port: u16,
        settings: &[String],
        env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let mut spec = runner
            .spec("postgres", runner.pg_bin.join("postgres"))
            .arg("-D")
            .arg(data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(socket)
            .args(["-c", "listen_addresses="])
            .log_to(log);
        for setting in settings {
            spec = spec.args(["-c", setting]);
        }
        for (k, v) in env {
            spec = spec.env(k, v);
        }
        let proc = Proc::spawn(spec).await?;
        let server = Self {
            proc: Some(proc),
            port,
            socket: socket.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match runner.psql(socket, port, "SELECT 1") {
                Ok(_) => break,
                Err(error) => {
                    let exited = server.proc.as_ref().and_then(Proc::exit_status);
                    if exited.is_some() || Instant::now() > deadline {
                        bail!(
                            "PostgreSQL on {} did not answer ({exited:?}): {error:#}\n{}",
                            data.display(),
                            crate::process::file_tail(log, 3000)
                        );
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(server)
    }

    /// Fast shutdown; SIGKILL after 10 s — of the postmaster and every process under it, since a
    /// postmaster killed while its archiver waits on an unreachable store would leave that archiver (and
    /// its `archive_command`) running as orphans.
    pub(crate) async fn stop(&mut self) {
        if let Some(proc) = self.proc.take() {
            proc.signal(Signal::SIGINT);
            if tokio::time::timeout(Duration::from_secs(10), proc.wait())
                .await
                .is_err()
            {
                let below = descendants(proc.pid());
                proc.signal(Signal::SIGKILL);
                kill_all(&below);
                proc.wait().await;
            }
        }
    }
}

/// Every process below `pid`, children first found first.
fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut next = vec![pid];
    while let Some(p) = next.pop() {
        for c in crate::process::children_of(p) {
            if !out.contains(&c) {
                out.push(c);
                next.push(c);
            }
        }
    }
    out
}

fn kill_all(pids: &[u32]) {
    for &p in pids {
        if let Ok(p) = i32::try_from(p) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), Signal::SIGKILL);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(proc) = self.proc.take() {
            proc.signal(Signal::SIGINT);
            // The supervisor runs on the harness runtime, so a blocking wait here is fine.
            let deadline = Instant::now() + Duration::from_secs(10);
            while proc.exit_status().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if proc.exit_status().is_none() {
                kill_all(&descendants(proc.pid()));
            }
            // Dropping `proc` SIGKILLs it if it is still running.
        }
    }
}

/// Where two dumps first differ, with a few lines of context from each; `None` when equal. (A failed
/// comparison must not print megabytes of dump.)
#[must_use]
pub fn dump_difference(a: &str, b: &str) -> Option<String> {
    if a == b {
        return None;
    }
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let at = la
        .iter()
        .zip(&lb)
        .position(|(x, y)| x != y)
        .unwrap_or(la.len().min(lb.len()));
    let ctx = |l: &[&str]| {
        l.iter()
            .skip(at.saturating_sub(2))
            .take(5)
            .copied()
            .collect::<Vec<_>>()
            .join("\n")
    };
    Some(format!(
        "dumps differ at line {} ({} vs {} lines):\n--- first\n{}\n--- second\n{}",
        at + 1,
        la.len(),
        lb.len(),
        ctx(&la),
        ctx(&lb)
    ))
}
