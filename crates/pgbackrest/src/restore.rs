//! Restoring one backup into an empty directory (pgbackrest-format.md §6.2): directories, tablespace
//! directories *inside the target* with `pg_tblspc/<oid>` relinked to them, every file fetched, decoded and
//! SHA-1-verified in parallel, `pg_control` written under a temporary name and renamed last, so a restore
//! that stops half-way can never be started. Non-tablespace links of the source (`pg_wal` on PGO and CPO)
//! are restored as plain directories; `tablespace_map` is skipped (the links are made here).
//!
//! Files are written as the running user with the manifest's modes and mtimes; owners are not restored
//! (the restore runs as the user PostgreSQL runs as). Files are not fsynced one by one: PostgreSQL syncs the
//! data directory when it starts from a backup.

mod plan;
mod sink;
mod units;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt as _;
use tokio::sync::Semaphore;

use crate::error::Error;
use crate::manifest::Manifest;
use crate::repo::Repository;
use plan::Unit;

pub use plan::PG_CONTROL_TMP;

/// Progress of a running restore.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreProgress {
    /// File bytes written so far.
    pub bytes_done: u64,
    /// File bytes in the backup.
    pub bytes_total: u64,
    /// Files finished.
    pub files_done: u64,
    /// Files in the backup.
    pub files_total: u64,
}

/// Units fetched at once per decoding worker.
pub(crate) const READS_PER_WORKER: usize = 4;
/// Fetched-but-not-yet-written bytes allowed per decoding worker.
pub(crate) const BUDGET_PER_WORKER: u64 = 16 << 20;

/// A progress callback; called from worker tasks, so keep it cheap.
pub type ProgressFn = Arc<dyn Fn(RestoreProgress) + Send + Sync>;

/// Restore settings.
#[derive(Clone)]
pub struct RestoreOptions {
    /// Decoding workers for files read in one piece and bundle runs (at most one per CPU; large and
    /// block-incremental files stream through decoders of their own, limited by the budget). Four times as
    /// many units (whole files, bundle runs, block-incremental files) are fetched at once, within a buffer
    /// budget of 16 MiB per worker: object stores answer small reads at their round-trip time, so reads in
    /// flight, not CPUs, bound a restore of many small files (at least 1).
    pub parallel: usize,
    /// Progress callback.
    pub progress: Option<ProgressFn>,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        Self {
            parallel: 8,
            progress: None,
        }
    }
}

impl std::fmt::Debug for RestoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreOptions")
            .field("parallel", &self.parallel)
            .finish_non_exhaustive()
    }
}

/// A tablespace as restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredTablespace {
    /// OID.
    pub oid: u32,
    /// Name, when the manifest has it.
    pub name: Option<String>,
    /// Where it was on the source.
    pub source_path: String,
    /// Its directory now (`<tablespaces>/<oid>`).
    pub dir: PathBuf,
}

/// What a restore wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreSummary {
    /// Files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Tablespaces.
    pub tablespaces: Vec<RestoredTablespace>,
}

impl Repository {
    /// Restores the backup `m` (from [`Repository::manifest`]) into `pgdata`, its tablespaces into
    /// `tablespaces/<oid>`. Both must be empty or absent; their parents must exist.
    ///
    /// # Errors
    /// A target is not empty, storage fails, stored data does not decode or verify, or writing fails. What
    /// was written stays (the caller discards the volume); `pg_control` is then absent.
    pub async fn restore(
        &self,
        m: &Manifest,
        pgdata: &Path,
        tablespaces: &Path,
        opts: &RestoreOptions,
    ) -> Result<RestoreSummary, Error> {
        for dir in [pgdata, tablespaces] {
            ensure_empty(dir)?;
        }
        let plan = plan::plan(m, pgdata, tablespaces, self.stanza())
            .map_err(|e| Error::corrupted(format!("manifest of {}", m.label), e))?;
        // Directories, links and empty files first (quick local work, done in place).
        sink::make_dir(pgdata, 0o700)?;
        sink::make_dir(tablespaces, 0o700)?;
        for (d, mode) in &plan.dirs {
            sink::make_dir(d, *mode)?;
        }
        for (link, to) in &plan.links {
            std::os::unix::fs::symlink(to, link).map_err(|e| Error::io(link, e))?;
        }
        for job in &plan.empty {
            sink::empty(job)?;
        }

        let parallel = opts.parallel.max(1);
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let ctx = units::Ctx {
            store: self.store().clone(),
            manifest: Arc::new(m.clone()),
            stanza: self.stanza().to_owned(),
            decoders: Arc::new(Semaphore::new(parallel.min(cpus))),
        };
        let budget_mib =
            u32::try_from((BUDGET_PER_WORKER >> 20) * parallel as u64).unwrap_or(u32::MAX);
        let budget = Semaphore::new(budget_mib as usize);
        let done_bytes = AtomicU64::new(0);
        let done_files = AtomicU64::new(plan.empty.len() as u64);
        let report = |bytes: u64, files: u64| {
            let b = done_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
            let f = done_files.fetch_add(files, Ordering::Relaxed) + files;
            if let Some(p) = &opts.progress {
                p(RestoreProgress {
                    bytes_done: b,
                    bytes_total: plan.bytes,
                    files_done: f,
                    files_total: plan.files,
                });
            }
        };
        let mut results = futures::stream::iter(&plan.units)
            .map(|u| {
                let ctx = &ctx;
                let budget = &budget;
                async move {
                    // Held until the unit is written: bounds fetched bytes, not just requests.
                    let _buffers = budget
                        .acquire_many(units::buffer_mib(u).min(budget_mib))
                        .await
                        .map_err(|e| Error::io("(restore budget)", std::io::Error::other(e)))?;
                    match u {
                        Unit::Whole { key, job } => {
                            units::whole(ctx, key, job).await.map(|b| (b, 1))
                        }
                        Unit::Bundle {
                            key,
                            start,
                            end,
                            jobs,
                        } => units::bundle(ctx, key, *start, *end, jobs)
                            .await
                            .map(|b| (b, jobs.len() as u64)),
                        Unit::Block { job } => units::block(ctx, job).await.map(|b| (b, 1)),
                    }
                }
            })
            .buffer_unordered(parallel * READS_PER_WORKER);
        while let Some(r) = results.next().await {
            let (bytes, files) = r?;
            report(bytes, files);
        }
        drop(results);

        if let Some((tmp, last)) = &plan.pg_control {
            std::fs::rename(tmp, last).map_err(|e| Error::io(last, e))?;
        }
        Ok(RestoreSummary {
            files: plan.files,
            bytes: done_bytes.into_inner(),
            tablespaces: m
                .tablespaces
                .iter()
                .map(|t| RestoredTablespace {
                    oid: t.oid,
                    name: t.name.clone(),
                    source_path: t.source_path.clone(),
                    dir: tablespaces.join(t.oid.to_string()),
                })
                .collect(),
        })
    }
}

fn ensure_empty(dir: &Path) -> Result<(), Error> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::InvalidArgument(format!(
                    "{} is not empty: a restore writes only into an empty directory",
                    dir.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(dir, e)),
    }
}

/// Plans a restore of `m` into fixed paths (the fuzz target's way in).
#[cfg(feature = "fuzzing")]
pub(crate) fn plan_for_fuzzing(m: &Manifest) -> bool {
    plan::plan(m, Path::new("/t/data"), Path::new("/t/ts"), "db").is_ok()
}
