//! Restore progress for people and for logs: a progress bar on a terminal, otherwise one log line at a
//! steady interval (the restore Job's logs show movement without flooding).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use kopia::{ProgressFn, RestoreProgress};

#[derive(Debug, Default)]
struct Latest {
    bytes_done: AtomicU64,
    bytes_total: AtomicU64,
    files_done: AtomicU64,
    files_total: AtomicU64,
}

impl Latest {
    fn get(&self) -> RestoreProgress {
        RestoreProgress {
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
            bytes_total: self.bytes_total.load(Ordering::Relaxed),
            files_done: self.files_done.load(Ordering::Relaxed),
            files_total: self.files_total.load(Ordering::Relaxed),
        }
    }
}

/// Reports restore progress until [`Reporter::finish`].
#[derive(Debug)]
pub struct Reporter {
    latest: Arc<Latest>,
    bar: Option<ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Reporter {
    /// Starts reporting: a bar when `terminal`, else a log line every `interval`. Returns the callback to
    /// hand to the restore.
    pub fn start(terminal: bool, interval: Duration) -> (Self, ProgressFn) {
        let latest = Arc::new(Latest::default());
        let bar = terminal.then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{wide_bar}] {binary_bytes}/{binary_total_bytes} \
                     {binary_bytes_per_sec} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        let callback: ProgressFn = {
            let latest = Arc::clone(&latest);
            let bar = bar.clone();
            Arc::new(move |p: RestoreProgress| {
                latest.bytes_done.store(p.bytes_done, Ordering::Relaxed);
                latest.bytes_total.store(p.bytes_total, Ordering::Relaxed);
                latest.files_done.store(p.files_done, Ordering::Relaxed);
                latest.files_total.store(p.files_total, Ordering::Relaxed);
                if let Some(bar) = &bar {
                    bar.set_length(p.bytes_total);
                    bar.set_position(p.bytes_done);
                    bar.set_message(format!("{}/{} files", p.files_done, p.files_total));
                }
            })
        };
        let ticker = bar.is_none().then(|| {
            let latest = Arc::clone(&latest);
            tokio::spawn(async move {
                let started = Instant::now();
                let mut tick = tokio::time::interval(interval);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    log_line(&latest.get(), started.elapsed());
                }
            })
        });
        (
            Self {
                latest,
                bar,
                ticker,
            },
            callback,
        )
    }

    /// Stops the ticker and clears the bar; returns the last progress seen.
    pub fn finish(self) -> RestoreProgress {
        if let Some(t) = &self.ticker {
            t.abort();
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        self.latest.get()
    }
}

fn log_line(p: &RestoreProgress, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(0.001);
    tracing::info!(
        bytes_done = p.bytes_done,
        bytes_total = p.bytes_total,
        files_done = p.files_done,
        files_total = p.files_total,
        percent = format_args!("{:.1}", percent(p)),
        mb_per_s = format_args!("{:.1}", p.bytes_done as f64 / 1e6 / secs),
        "restore progress"
    );
}

/// Share of bytes done, 0–100 (100 for an empty restore).
pub fn percent(p: &RestoreProgress) -> f64 {
    if p.bytes_total == 0 {
        100.0
    } else {
        p.bytes_done as f64 * 100.0 / p.bytes_total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_of_empty_restore_is_complete() {
        assert_eq!(percent(&RestoreProgress::default()), 100.0);
        let p = RestoreProgress {
            bytes_done: 1,
            bytes_total: 4,
            ..Default::default()
        };
        assert_eq!(percent(&p), 25.0);
    }

    #[tokio::test]
    async fn callback_updates_what_finish_returns() {
        let (r, cb) = Reporter::start(false, Duration::from_secs(3600));
        cb(RestoreProgress {
            bytes_done: 7,
            bytes_total: 9,
            files_done: 1,
            files_total: 2,
        });
        let last = r.finish();
        assert_eq!((last.bytes_done, last.files_total), (7, 2));
    }
}
