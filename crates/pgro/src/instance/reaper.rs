//! As PID 1 of a container, orphaned processes are re-parented to us and must be reaped. Only zombies that
//! are not the postmaster (owned and waited by its task) and only while no tool is being waited for are
//! reaped, so no other waiter loses its child's status.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::time::Duration;

use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

/// The postmaster's pid (0 when none runs).
pub(crate) static POSTMASTER: AtomicI32 = AtomicI32::new(0);
/// Asks the running postmaster, if any, to reload its configuration and certificate files (SIGHUP).
pub(crate) fn reload_postmaster() {
    let pid = POSTMASTER.load(Ordering::SeqCst);
    if pid > 0 {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGHUP);
    }
}

/// Tools currently being waited for synchronously.
pub(crate) static TOOLS: AtomicUsize = AtomicUsize::new(0);

/// The pids of our zombie children, from `/proc/<pid>/stat` (`pid (comm) state ppid ...`).
fn zombie_children(me: i32) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
                let mut f = rest.split_whitespace();
                f.next() == Some("Z") && f.next().and_then(|p| p.parse::<i32>().ok()) == Some(me)
            })
        })
        .collect()
}

/// Runs forever when this process is PID 1; returns at once otherwise.
pub(crate) async fn run() {
    if std::process::id() != 1 {
        return;
    }
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        if TOOLS.load(Ordering::SeqCst) > 0 {
            continue;
        }
        let pm = POSTMASTER.load(Ordering::SeqCst);
        for pid in zombie_children(1).into_iter().filter(|p| *p != pm) {
            let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
        }
    }
}

/// Runs a tool to completion with the reaper held off; returns its status and combined output.
///
/// # Errors
/// The tool could not be started.
pub(crate) fn run_tool(cmd: &mut std::process::Command) -> std::io::Result<std::process::Output> {
    TOOLS.fetch_add(1, Ordering::SeqCst);
    let out = cmd.output();
    TOOLS.fetch_sub(1, Ordering::SeqCst);
    out
}
