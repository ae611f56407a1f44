//! What a restore does, decided from the manifest alone (pure): the directories, the tablespace links, and
//! the files grouped into units of work — one whole stored file, one run of adjacent bundle members read
//! with one ranged GET, or one block-incremental file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::manifest::{Manifest, ManifestFile};

/// Bundle members are coalesced into one read up to this many stored bytes.
pub(crate) const RUN_LIMIT: u64 = 16 << 20;
/// A gap this small between two members of one bundle is read rather than split into two requests.
const RUN_GAP: u64 = 64 << 10;
/// `pg_control` is written under this name and renamed last, so an interrupted restore never starts.
pub const PG_CONTROL_TMP: &str = "pg_control.pgro.tmp";

/// One file to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileJob {
    pub(crate) file: ManifestFile,
    /// Where it goes (for `pg_control`, the temporary name).
    pub(crate) dest: PathBuf,
}

/// A unit of work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unit {
    /// A file stored on its own: `<reference>/<name><ext>`.
    Whole { key: String, job: FileJob },
    /// Adjacent members of one bundle, read with one ranged GET of `start..end`.
    Bundle {
        key: String,
        start: u64,
        end: u64,
        jobs: Vec<FileJob>,
    },
    /// A block-incremental file.
    Block { job: FileJob },
}

/// The whole restore.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Directories to create, parents first, with their modes.
    pub(crate) dirs: Vec<(PathBuf, u32)>,
    /// `(link, target)`: `pg_tblspc/<oid>` links, relative targets.
    pub(crate) links: Vec<(PathBuf, PathBuf)>,
    /// Zero-length files.
    pub(crate) empty: Vec<FileJob>,
    /// Everything else, largest stored units first (the long ones start early).
    pub(crate) units: Vec<Unit>,
    /// `(temporary, final)` path of `pg_control`.
    pub(crate) pg_control: Option<(PathBuf, PathBuf)>,
    /// Bytes and files to write.
    pub(crate) bytes: u64,
    pub(crate) files: u64,
}

/// Where manifest name `name` goes: `pg_data/…` under `pgdata`, `pg_tblspc/<oid>/…` under
/// `tablespaces/<oid>/…`. `None` for the bare `pg_tblspc` entry.
pub(crate) fn dest(name: &str, pgdata: &Path, tablespaces: &Path) -> Option<PathBuf> {
    if name == "pg_data" {
        return Some(pgdata.to_owned());
    }
    if let Some(rest) = name.strip_prefix("pg_data/") {
        return Some(pgdata.join(rest));
    }
    name.strip_prefix("pg_tblspc/")
        .map(|rest| tablespaces.join(rest))
}

/// Plans restoring `m` into `pgdata`, its tablespaces into `tablespaces/<oid>`.
///
/// # Errors
/// A file would be written through a tablespace link (`pg_data/pg_tblspc/<oid>/…`), or a stored reference
/// is not in the backup's chain.
pub(crate) fn plan(
    m: &Manifest,
    pgdata: &Path,
    tablespaces: &Path,
    stanza: &str,
) -> Result<Plan, String> {
    let mut p = Plan::default();
    let oids: Vec<u32> = m.tablespaces.iter().map(|t| t.oid).collect();
    let through_link = |name: &str| {
        name.strip_prefix("pg_data/pg_tblspc/")
            .and_then(|r| r.split('/').next())
            .and_then(|o| o.parse::<u32>().ok())
            .is_some_and(|o| oids.contains(&o))
    };

    let mut dirs: BTreeMap<PathBuf, u32> = BTreeMap::new();
    for path in &m.paths {
        if through_link(&path.name) {
            continue; // the link itself, created below
        }
        if let Some(d) = dest(&path.name, pgdata, tablespaces) {
            dirs.insert(d, path.mode);
        }
    }
    for t in &m.tablespaces {
        let dir = tablespaces.join(t.oid.to_string());
        dirs.entry(dir.clone()).or_insert(0o700);
        let link = pgdata.join("pg_tblspc").join(t.oid.to_string());
        p.links
            .push((link, relative(&pgdata.join("pg_tblspc"), &dir)));
    }

    let mut bundles: BTreeMap<String, Vec<FileJob>> = BTreeMap::new();
    for f in &m.files {
        if f.name == "pg_data/tablespace_map" {
            continue; // PostgreSQL would re-create links from it; the links are made here instead
        }
        if through_link(&f.name) {
            return Err(format!(
                "{} would be written through the link of tablespace; pgBackRest stores tablespace files \
                 under pg_tblspc/",
                f.name
            ));
        }
        if m.reference_index(&f.reference).is_none() {
            return Err(format!(
                "{}: reference {} is not in the backup's chain",
                f.name, f.reference
            ));
        }
        let Some(mut to) = dest(&f.name, pgdata, tablespaces) else {
            return Err(format!("{} is not a file name", f.name));
        };
        if let Some(parent) = to.parent() {
            // Parents not listed as paths (flattened links) are created with the default mode.
            for a in parent.ancestors() {
                if a == pgdata
                    || a == tablespaces
                    || !a.starts_with(pgdata) && !a.starts_with(tablespaces)
                {
                    break;
                }
                dirs.entry(a.to_owned()).or_insert(0o700);
            }
        }
        if f.name == "pg_data/global/pg_control" {
            let tmp = to.with_file_name(PG_CONTROL_TMP);
            p.pg_control = Some((tmp.clone(), to));
            to = tmp;
        }
        p.files += 1;
        p.bytes += f.size;
        let job = FileJob {
            file: f.clone(),
            dest: to,
        };
        let prefix = format!("backup/{stanza}/{}", f.reference);
        if f.size == 0 {
            p.empty.push(job);
        } else if f.block.is_some() {
            p.units.push(Unit::Block { job });
        } else if let Some((id, _)) = f.bundle {
            bundles
                .entry(format!("{prefix}/bundle/{id}"))
                .or_default()
                .push(job);
        } else {
            let key = format!("{prefix}/{}{}", f.name, m.compress.ext());
            p.units.push(Unit::Whole { key, job });
        }
    }
    for (key, mut jobs) in bundles {
        jobs.sort_by_key(|j| j.file.bundle.map_or(0, |b| b.1));
        coalesce(&key, jobs, &mut p.units);
    }
    // A backup without these is not a PostgreSQL data directory; refusing it here beats a restore that
    // cannot start.
    for needed in ["pg_data/PG_VERSION", "pg_data/global/pg_control"] {
        if !m.files.iter().any(|f| f.name == needed) {
            return Err(format!(
                "the backup has no {needed}: not a PostgreSQL data directory"
            ));
        }
    }
    p.units.sort_by_key(|u| std::cmp::Reverse(stored(u)));
    p.dirs = dirs.into_iter().collect();
    Ok(p)
}

/// Splits the members of one bundle (sorted by offset) into runs read with one request each.
fn coalesce(key: &str, jobs: Vec<FileJob>, out: &mut Vec<Unit>) {
    let mut run: Vec<FileJob> = Vec::new();
    let (mut start, mut end) = (0, 0);
    for j in jobs {
        let off = j.file.bundle.map_or(0, |b| b.1);
        let stop = off.saturating_add(j.file.repo_size);
        let joins =
            !run.is_empty() && off >= end && off - end <= RUN_GAP && stop - start <= RUN_LIMIT;
        if !joins && !run.is_empty() {
            out.push(Unit::Bundle {
                key: key.to_owned(),
                start,
                end,
                jobs: std::mem::take(&mut run),
            });
        }
        if run.is_empty() {
            start = off;
        }
        end = stop;
        run.push(j);
    }
    if !run.is_empty() {
        out.push(Unit::Bundle {
            key: key.to_owned(),
            start,
            end,
            jobs: run,
        });
    }
}

fn stored(u: &Unit) -> u64 {
    match u {
        Unit::Whole { job, .. } | Unit::Block { job } => job.file.repo_size,
        Unit::Bundle { start, end, .. } => end - start,
    }
}

/// `to` relative to the directory `from` (both absolute, sharing a prefix).
pub(crate) fn relative(from: &Path, to: &Path) -> PathBuf {
    let f: Vec<_> = from.components().collect();
    let t: Vec<_> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
