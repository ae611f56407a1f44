//! Helpers for the `pgro instance` tests: the test-infrastructure env file, PostgreSQL processes run as the
//! non-root test user, kopia, and process guards that stop what they started by PID (also on panic).

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

pub mod instance;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The KEY=VALUE file written by scripts/testinfra.sh.
pub fn infra() -> HashMap<String, String> {
    let root = std::env::var("PGRO_TESTINFRA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/pgro-testinfra")
        });
    let mut m: HashMap<String, String> = std::fs::read_to_string(root.join("env"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    for (k, v) in std::env::vars().filter(|(k, _)| k.starts_with("PGRO_")) {
        m.insert(k, v);
    }
    m
}

/// The value of `key`, or `None` after printing why the test is skipped; under `CI=true` a missing
/// component is a failure, never a silent skip.
pub fn require(env: &HashMap<String, String>, key: &str) -> Option<String> {
    match env
        .get(key)
        .filter(|v| Path::new(v).exists() || !v.starts_with('/'))
    {
        Some(v) => Some(v.clone()),
        None => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{key} missing (run scripts/testinfra.sh); CI=true makes this a failure"
            );
            eprintln!("skipping: {key} missing (run scripts/testinfra.sh)");
            None
        }
    }
}

pub fn free_port() -> u16 {
    pgro_testkit::ports::free_port().unwrap()
}

/// The non-root account PostgreSQL runs as.
#[derive(Clone, Debug)]
pub struct PgUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl PgUser {
    pub fn from_env(env: &HashMap<String, String>) -> Option<Self> {
        Some(Self {
            name: require(env, "PGRO_PG_USER")?,
            uid: require(env, "PGRO_PG_UID")?.parse().ok()?,
            gid: require(env, "PGRO_PG_GID")?.parse().ok()?,
        })
    }

    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.uid(self.uid).gid(self.gid).env("LC_ALL", "C.UTF-8");
        c
    }

    pub fn mkdir(&self, p: &Path) {
        std::fs::create_dir_all(p).unwrap();
        std::os::unix::fs::chown(p, Some(self.uid), Some(self.gid)).unwrap();
    }
}

/// Runs a command to completion, panicking with its output on failure; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A child process stopped on drop: SIGTERM (or `stop_signal`), up to 20 s, then SIGKILL; with a PGDATA,
/// a postmaster still listed in its `postmaster.pid` is stopped the same way.
pub struct Proc {
    pub child: Option<Child>,
    pub pgdata: Option<PathBuf>,
    pub stop_signal: Signal,
}

impl Proc {
    pub fn new(child: Child, pgdata: Option<PathBuf>, stop_signal: Signal) -> Self {
        Self {
            child: Some(child),
            pgdata,
            stop_signal,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Sends the stop signal and waits; returns the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = kill(Pid::from_raw(child.id() as i32), self.stop_signal);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
        if let Some(pid) = self
            .pgdata
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.join("postmaster.pid")).ok())
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
            && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        {
            let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
            for _ in 0..200 {
                if kill(Pid::from_raw(pid), None).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// `GET path` on 127.0.0.1:port; the HTTP status, or 0 when nothing answers.
pub fn http_status(port: u16, path: &str) -> u16 {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .is_err()
    {
        return 0;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// `pid` and its direct children (from /proc), the postmaster first.
pub fn process_tree(pid: i32) -> Vec<i32> {
    let mut out = vec![pid];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            if rest
                .split_whitespace()
                .nth(1)
                .and_then(|x| x.parse::<i32>().ok())
                == Some(pid)
            {
                out.push(p);
            }
        }
    }
    out
}

/// Copies `src` to `dst` while every process of the server is stopped (SIGSTOP), which yields exactly the
/// files a crash at that instant leaves behind: a crash-consistent copy without a filesystem snapshot.
pub fn frozen_copy(postmaster_pid: i32, src: &Path, dst: &Path) {
    let pids = process_tree(postmaster_pid);
    for p in &pids {
        let _ = kill(Pid::from_raw(*p), Signal::SIGSTOP);
    }
    // Processes forked between listing and stopping are caught by a second pass.
    let late: Vec<i32> = process_tree(postmaster_pid)
        .into_iter()
        .filter(|p| !pids.contains(p))
        .collect();
    for p in &late {
        let _ = kill(Pid::from_raw(*p), Signal::SIGSTOP);
    }
    let result = Command::new("cp").arg("-a").arg(src).arg(dst).output();
    for p in pids.iter().chain(&late) {
        let _ = kill(Pid::from_raw(*p), Signal::SIGCONT);
    }
    let out = result.unwrap();
    assert!(
        out.status.success(),
        "cp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn copy_dir(src: &Path, dst: &Path) {
    run(Command::new("cp").arg("-a").arg(src).arg(dst));
}

/// A kopia CLI bound to one filesystem repository.
pub struct Kopia {
    pub bin: PathBuf,
    pub dir: PathBuf,
    pub password: String,
}

impl Kopia {
    pub fn create(bin: PathBuf, dir: PathBuf) -> Self {
        let k = Self {
            bin,
            dir,
            password: "instance-test-pw".into(),
        };
        let repo = k.repo();
        k.run(&[
            "repository",
            "create",
            "filesystem",
            "--path",
            repo.to_str().unwrap(),
        ]);
        k
    }

    pub fn repo(&self) -> PathBuf {
        self.dir.join("repo")
    }

    pub fn run(&self, args: &[&str]) -> String {
        run(Command::new(&self.bin)
            .args(args)
            .env("KOPIA_PASSWORD", &self.password)
            .env("KOPIA_CONFIG_PATH", self.dir.join("config.json"))
            .env("KOPIA_CACHE_DIRECTORY", self.dir.join("cache"))
            .env("KOPIA_LOG_DIR", self.dir.join("logs"))
            .env("KOPIA_CHECK_FOR_UPDATES", "false"))
    }

    pub fn snapshot(&self, dir: &Path) -> String {
        let out = self.run(&["snapshot", "create", dir.to_str().unwrap(), "--json"]);
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        v["id"].as_str().unwrap().to_owned()
    }
}

/// Every file under `dir` (symlinks not followed) with its contents: a tree compared before and after.
pub fn file_tree(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// A temporary test root the PostgreSQL user can traverse (mode 0755).
pub fn test_root(prefix: &str) -> tempfile::TempDir {
    pgro_testkit::fixtures::test_root(prefix)
}
