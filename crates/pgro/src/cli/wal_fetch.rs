//! `pgro wal-fetch --source SOURCE.yaml --secret-dir DIR %f %p`: PostgreSQL's `restore_command` for
//! WAL-archive sources. Exit 0 only once `%p` is complete (temporary file, checked, renamed); **1 only for
//! "not in the archive"**, which PostgreSQL takes as the end of the archive; every other failure (storage
//! still down after the store's retries, damaged data, bad settings) exits 126, which PostgreSQL treats as
//! fatal — so a network error can never end recovery early and promote a silently older copy.
//!
//! Prefetch: PostgreSQL asks for one segment at a time and waits, so a segment request also fetches the next
//! `--prefetch` − 1 segments of its timeline in parallel (one listing, verified like the requested one) into
//! `<pgdata>/pgro_wal_prefetch/`; the following requests are served from there by a rename, without opening
//! the repository. A request that misses the spool empties it (a jump or a timeline switch). Everything
//! stays inside the data directory's volume.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::source::open::{OpenError, SourceArgs};

/// Exit code for "not found".
const NOT_FOUND: u8 = 1;
/// Exit code PostgreSQL treats as fatal (> 125) for every other failure.
const FATAL: u8 = 126;

/// `pgro wal-fetch` arguments.
#[derive(Debug, clap::Args)]
pub struct WalFetchArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// The data directory being recovered (PostgreSQL runs `restore_command` in it): its `pg_control`
    /// names the cluster whose archive is read.
    #[arg(long, default_value = ".")]
    pub pgdata: PathBuf,
    /// The WAL file PostgreSQL asks for (`%f`).
    pub file: String,
    /// Where to put it (`%p`, relative to the data directory).
    pub dest: PathBuf,
    /// Segments fetched per request, the requested one included (1: no prefetch).
    #[arg(long, env = "PGRO_WAL_PREFETCH", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub prefetch: u16,
}

/// The prefetch spool, inside the data directory.
pub const SPOOL: &str = "pgro_wal_prefetch";

/// Runs `pgro wal-fetch`.
pub async fn run(args: WalFetchArgs) -> ExitCode {
    match fetch(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(NOT_FOUND),
        Err(msg) => {
            eprintln!("pgro wal-fetch {}: {msg}", args.file);
            ExitCode::from(FATAL)
        }
    }
}

/// The system identifier in `pg_control` (its first 8 bytes, native order) and `PG_VERSION`.
fn cluster_identity(pgdata: &Path) -> Result<(u64, String), String> {
    let control = std::fs::read(pgdata.join("global/pg_control"))
        .map_err(|e| format!("reading {}/global/pg_control: {e}", pgdata.display()))?;
    let id: [u8; 8] = control
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or("pg_control is shorter than 8 bytes")?;
    let version = std::fs::read_to_string(pgdata.join("PG_VERSION"))
        .map_err(|e| format!("reading PG_VERSION: {e}"))?;
    Ok((u64::from_ne_bytes(id), version.trim().to_owned()))
}

async fn fetch(args: &WalFetchArgs) -> Result<bool, String> {
    let chain = |e: &(dyn std::error::Error + 'static)| crate::cli::kopia::error_chain(e);
    let dest = if args.dest.is_absolute() {
        args.dest.clone()
    } else {
        args.pgdata.join(&args.dest)
    };
    let spool = args.pgdata.join(SPOOL);
    let segment = pgbackrest::label::is_segment(&args.file);
    if segment && from_spool(&spool, &args.file, &dest) {
        return Ok(true);
    }
    let (repo, archive) = match args.source.open_archive().await {
        Ok(r) => r,
        Err(OpenError::Config(e)) => return Err(e.0),
        Err(OpenError::Pgbackrest(e)) => return Err(chain(&e)),
    };
    let (system_id, version) = cluster_identity(&args.pgdata)?;
    let Some(stored) = repo
        .find_wal(&archive, system_id, &version, &args.file)
        .await
        .map_err(|e| chain(&e))?
    else {
        return Ok(false);
    };
    let data = repo
        .read_wal(&archive, &stored)
        .await
        .map_err(|e| chain(&e))?;
    write_atomically(&dest, &data).map_err(|e| format!("writing {}: {e}", dest.display()))?;
    if segment && args.prefetch > 1 {
        let next = next_segments(
            &args.file,
            data.len() as u64,
            usize::from(args.prefetch) - 1,
        );
        prefetch(&repo, &archive, (system_id, &version), &next, &spool).await;
    }
    Ok(true)
}

/// Moves a prefetched `name` to `dest`; on a miss, empties the spool (its segments belong to another
/// position or timeline) and says so.
fn from_spool(spool: &Path, name: &str, dest: &Path) -> bool {
    if std::fs::rename(spool.join(name), dest).is_ok() {
        return true;
    }
    if let Ok(entries) = std::fs::read_dir(spool) {
        for e in entries.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    false
}

/// The `n` segment names after `name` on its timeline, for segments of `size` bytes (PostgreSQL numbers
/// them `<timeline><log><seg>`, `0x1_0000_0000 / size` segments per log).
#[must_use]
pub fn next_segments(name: &str, size: u64, n: usize) -> Vec<String> {
    let hex = |s: &str| u64::from_str_radix(s, 16).ok();
    let (Some(tli), Some(log), Some(seg)) =
        (hex(&name[..8]), hex(&name[8..16]), hex(&name[16..24]))
    else {
        return Vec::new();
    };
    if !size.is_power_of_two() || !(1 << 20..=1 << 30).contains(&size) {
        return Vec::new();
    }
    let per_log = 0x1_0000_0000 / size;
    let mut at = log * per_log + seg;
    (0..n)
        .map(|_| {
            at += 1;
            format!("{tli:08X}{:08X}{:08X}", at / per_log, at % per_log)
        })
        .collect()
}

/// Fetches `names` in parallel into the spool; failures only mean those segments are fetched when asked.
async fn prefetch(
    repo: &pgbackrest::Repository,
    archive: &pgbackrest::ArchiveInfo,
    (system_id, version): (u64, &str),
    names: &[String],
    spool: &Path,
) {
    use futures::StreamExt as _;
    let Ok(found) = repo.find_segments(archive, system_id, version, names).await else {
        return;
    };
    // A spool this user cannot write (made by another user) would cost every fetch and save none.
    let probe = spool.join(".pgro-probe");
    if std::fs::create_dir_all(spool).is_err() || std::fs::write(&probe, b"").is_err() {
        eprintln!(
            "pgro wal-fetch: {} is not writable; prefetch off",
            spool.display()
        );
        return;
    }
    let _ = std::fs::remove_file(&probe);
    let wanted: Vec<(String, pgbackrest::StoredSegment)> = names
        .iter()
        .cloned()
        .zip(found)
        .filter_map(|(n, s)| s.map(|s| (n, s)))
        .collect();
    futures::stream::iter(wanted)
        .map(|(name, stored)| async move {
            if let Ok(data) = repo.read_wal(archive, &stored).await {
                let _ = write_atomically(&spool.join(name), &data);
            }
        })
        .buffer_unordered(names.len().max(1))
        .collect::<Vec<()>>()
        .await;
}

/// Writes `dest` through a temporary file in the same directory, then renamed: PostgreSQL never sees a
/// partial file. Not fsynced (as `pgbackrest archive-get`): the file is recovery's scratch copy, and after a
/// crash recovery asks for it again.
fn write_atomically(dest: &Path, data: &[u8]) -> std::io::Result<()> {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dest.with_file_name(format!(".{name}.pgro-tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    drop(f);
    std::fs::rename(&tmp, dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_segments_roll_over_the_log_number() {
        assert_eq!(
            next_segments("0000000100000000000000FE", 16 << 20, 3),
            vec![
                "0000000100000000000000FF",
                "000000010000000100000000",
                "000000010000000100000001"
            ]
        );
        assert_eq!(
            next_segments("000000020000000A00000FFF", 1 << 20, 1),
            vec!["000000020000000B00000000"]
        );
        assert!(next_segments("000000010000000000000001", 1000, 3).is_empty());
    }

    #[test]
    fn a_spool_miss_empties_the_spool_and_a_hit_moves_the_file() {
        let t = tempfile::tempdir().expect("tmp");
        let spool = t.path().join(SPOOL);
        std::fs::create_dir(&spool).expect("mkdir");
        std::fs::write(spool.join("000000010000000000000005"), "five").expect("write");
        let dest = t.path().join("RECOVERYXLOG");
        assert!(from_spool(&spool, "000000010000000000000005", &dest));
        assert_eq!(std::fs::read_to_string(&dest).expect("read"), "five");
        std::fs::write(spool.join("000000010000000000000009"), "nine").expect("write");
        assert!(!from_spool(&spool, "000000020000000000000006", &dest));
        assert_eq!(std::fs::read_dir(&spool).expect("dir").count(), 0);
    }
}
