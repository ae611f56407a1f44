//! The prefetch spool `<pgdata>/pgro_wal_prefetch/`: segments read ahead of PostgreSQL's requests by a
//! background `pgro wal-fetch --background` process, so that reading the next segments overlaps with
//! replay and with PostgreSQL's next requests instead of running between them.
//!
//! One prefetcher at a time, one request at a time (PostgreSQL runs one `restore_command` at once): a
//! prefetcher holds an exclusive lock on `.prefetching` for its whole life and names the segments it has
//! promised (queued or being read) in `.plan`, written before it tells its parent it has started; each
//! segment appears by a rename once complete and checked, before it leaves the plan. A request whose
//! segment is planned waits for it. A prefetcher that reached the end of the archive leaves `.end`: no
//! new one starts until a request misses and lists the archive itself. `.stop` asks a prefetcher to finish
//! the reads it has begun and exit.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The spool directory, inside the data directory.
const DIR: &str = "pgro_wal_prefetch";
const LOCK: &str = ".prefetching";
const PLAN: &str = ".plan";
const END: &str = ".end";
const STOP: &str = ".stop";
/// How long a request waits for a planned segment before reading it itself: far longer than a read
/// with all of the store's retries takes, so only a prefetcher that hangs ever reaches it.
const WAIT_LIMIT: Duration = Duration::from_secs(600);

/// A data directory's spool.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// The spool of the data directory `pgdata` (not created).
    #[must_use]
    pub fn new(pgdata: &Path) -> Self {
        Self {
            dir: pgdata.join(DIR),
        }
    }

    /// Where a spooled `name` lives.
    #[must_use]
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Moves a spooled `name` to `dest`.
    #[must_use]
    pub fn take(&self, name: &str, dest: &Path) -> bool {
        std::fs::rename(self.path(name), dest).is_ok()
    }

    /// Whether a prefetcher runs: its lock is held. (The probe takes a shared lock, which a starting
    /// prefetcher's exclusive one waits out for the instant it is held.)
    #[must_use]
    pub fn busy(&self) -> bool {
        File::open(self.dir.join(LOCK))
            .is_ok_and(|f| matches!(f.try_lock_shared(), Err(TryLockError::WouldBlock)))
    }

    /// Whether the running prefetcher reads `name`.
    #[must_use]
    pub fn planned(&self, name: &str) -> bool {
        std::fs::read_to_string(self.dir.join(PLAN)).is_ok_and(|p| p.lines().any(|l| l == name))
    }

    /// Moves a spooled `name` to `dest`, waiting for it while the running prefetcher has it planned (it
    /// renames a segment into the spool before the segment leaves the plan, so one no longer planned is
    /// either there or was not read). False when it is not there: not planned, not archived, or its read
    /// failed — the request then reads it itself, and reports what fails.
    #[must_use]
    pub fn wait_take(&self, name: &str, dest: &Path) -> bool {
        let began = Instant::now();
        loop {
            if self.take(name, dest) {
                return true;
            }
            if !self.busy() || !self.planned(name) || began.elapsed() > WAIT_LIMIT {
                return self.take(name, dest);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The spooled segments (not the bookkeeping files or a segment still being written), sorted.
    #[must_use]
    pub fn segments(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(&self.dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Whether a prefetcher found the end of the archive since the last miss.
    #[must_use]
    pub fn ended(&self) -> bool {
        self.dir.join(END).exists()
    }

    /// Empties the spool (a miss: its segments belong to another position or timeline), after stopping a
    /// prefetcher that reads elsewhere.
    pub fn clear(&self) {
        self.stop();
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                if e.file_name() != LOCK {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    /// Whether this user can keep segments here: a spool made by another user would cost every fetch and
    /// save none.
    #[must_use]
    pub fn writable(&self) -> bool {
        let probe = self.dir.join(".pgro-probe");
        if std::fs::create_dir_all(&self.dir).is_err() || std::fs::write(&probe, b"").is_err() {
            eprintln!(
                "pgro wal-fetch: {} is not writable; prefetch off",
                self.dir.display()
            );
            return false;
        }
        let _ = std::fs::remove_file(&probe);
        true
    }

    /// Becomes the prefetcher promising `plan`: waits for the lock (held until the returned file is
    /// dropped), then writes the plan and forgets an earlier end of the archive or request to stop.
    ///
    /// # Errors
    /// The spool cannot be created or locked, or the plan cannot be written.
    pub fn start<'a>(&self, plan: impl IntoIterator<Item = &'a String>) -> io::Result<File> {
        std::fs::create_dir_all(&self.dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(LOCK))?;
        lock.lock()?;
        let _ = std::fs::remove_file(self.dir.join(END));
        let _ = std::fs::remove_file(self.dir.join(STOP));
        self.write_plan(plan)?;
        Ok(lock)
    }

    /// Replaces the plan (atomically: a request reads the old one or the new one).
    ///
    /// # Errors
    /// Writing fails.
    pub fn write_plan<'a>(&self, plan: impl IntoIterator<Item = &'a String>) -> io::Result<()> {
        let text: Vec<&str> = plan.into_iter().map(String::as_str).collect();
        let tmp = self.dir.join(".plan.tmp");
        std::fs::write(&tmp, text.join("\n"))?;
        std::fs::rename(&tmp, self.dir.join(PLAN))
    }

    /// Records that the archive does not (yet) hold the next segment.
    pub fn mark_end(&self) {
        let _ = std::fs::write(self.dir.join(END), b"");
    }

    /// Whether the prefetcher has been asked to stop.
    #[must_use]
    pub fn stopping(&self) -> bool {
        self.dir.join(STOP).exists()
    }

    /// Asks a running prefetcher to stop and waits until it has (it finishes the reads it has begun, so
    /// nothing writes into the spool afterwards).
    pub fn stop(&self) {
        if !self.busy() {
            return;
        }
        let _ = std::fs::write(self.dir.join(STOP), b"");
        if let Ok(lock) = File::open(self.dir.join(LOCK)) {
            let _ = lock.lock_shared();
        }
    }

    /// Removes the spool once recovery has ended, after stopping a prefetcher still running.
    ///
    /// # Errors
    /// Removing fails for another reason than the spool being absent.
    pub fn remove(&self) -> io::Result<()> {
        self.stop();
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefetcher_is_busy_while_it_holds_the_lock_and_its_plan_is_waited_for() {
        let root = tempfile::tempdir().expect("tempdir");
        let spool = Spool::new(root.path());
        assert!(!spool.busy(), "no spool yet");
        let names = ["000000010000000000000002".to_owned()];
        let lock = spool.start(&names).expect("start");
        assert!(!spool.stopping());
        assert!(spool.busy());
        assert!(spool.planned(&names[0]));
        assert!(!spool.planned("000000010000000000000003"));
        assert!(
            spool.segments().is_empty(),
            "bookkeeping files are not segments"
        );
        // A request waits for the planned segment while the prefetcher runs ...
        let dest = root.path().join("RECOVERYXLOG");
        let writer = {
            let spool = spool.clone();
            let name = names[0].clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                std::fs::write(spool.path(&name), b"segment").expect("write");
                spool.write_plan(&[]).expect("plan");
                // Asked to stop, it finishes and lets go.
                while !spool.stopping() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                drop(lock);
            })
        };
        assert!(spool.wait_take(&names[0], &dest));
        assert_eq!(std::fs::read(&dest).expect("dest"), b"segment");
        // ... and not for one it no longer plans (read or failed), even while it runs.
        assert!(spool.busy());
        assert!(!spool.wait_take(&names[0], &dest));
        // Stopping waits for it to let go.
        spool.stop();
        assert!(!spool.busy());
        writer.join().expect("writer");
        // A miss empties the spool, the end mark included; removal leaves nothing.
        spool.mark_end();
        std::fs::write(spool.path("000000010000000000000009"), b"x").expect("write");
        assert!(spool.ended());
        spool.clear();
        assert!(!spool.ended());
        assert!(spool.segments().is_empty());
        spool.remove().expect("remove");
        assert!(!root.path().join(DIR).exists());
    }

    #[test]
    fn a_killed_prefetcher_leaves_nothing_a_request_waits_for() {
        let root = tempfile::tempdir().expect("tempdir");
        let spool = Spool::new(root.path());
        let name = "000000010000000000000007".to_owned();
        // Killed mid-read: its plan still names the segment and a partial file is left, but the kernel has
        // released its lock.
        drop(spool.start([&name]).expect("start"));
        std::fs::write(spool.path(&format!(".{name}.pgro-tmp")), b"partial").expect("tmp");
        assert!(spool.planned(&name) && !spool.busy());
        let began = Instant::now();
        assert!(!spool.wait_take(&name, &root.path().join("RECOVERYXLOG")));
        assert!(
            began.elapsed() < Duration::from_secs(1),
            "waited for a dead prefetcher"
        );
        assert!(
            spool.segments().is_empty(),
            "a partial file is not a segment"
        );
        spool.clear();
        assert!(!spool.path(&format!(".{name}.pgro-tmp")).exists());
    }
}
