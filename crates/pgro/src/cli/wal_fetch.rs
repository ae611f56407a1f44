//! `pgro wal-fetch --source SOURCE.yaml --secret-dir DIR %f %p`: PostgreSQL's `restore_command` for
//! WAL-archive sources (pgBackRest, barman-cloud). Exit 0 only once `%p` is complete (temporary file, checked, renamed); **1 only for
//! "not in the archive"**, which PostgreSQL takes as the end of the archive; every other failure (storage
//! still down after the store's retries, damaged data, bad settings) exits 126, which PostgreSQL treats as
//! fatal — so a network error can never end recovery early and promote a silently older copy.
//!
//! Prefetch: PostgreSQL asks for one segment at a time and waits, so a segment request that misses the
//! spool lists the archive once and reads the requested segment and the next `--prefetch` − 1 of its
//! timeline at the same time (each streamed, decoded and checked) into
//! `<pgdata>/pgro_wal_prefetch/`; the following requests are served from there by a rename, without opening
//! the repository. A request that misses the spool empties it (a jump or a timeline switch). Everything
//! stays inside the data directory's volume.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::source::open::SourceArgs;
use crate::source::wal::{ReadError, Stored, WalArchive, cluster_identity};

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
    #[arg(long, env = "PGRO_WAL_PREFETCH", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=64))]
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

async fn fetch(args: &WalFetchArgs) -> Result<bool, String> {
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
    let identity = cluster_identity(&args.pgdata)?;
    let archive = WalArchive::open(&args.source, identity)
        .await
        .map_err(|e| e.message())?;
    let read_error = |e: ReadError, dest: &Path| match e {
        ReadError::Read(m) => m,
        ReadError::Write(e) => format!("writing {}: {e}", dest.display()),
    };
    if !segment || args.prefetch <= 1 {
        let Some(Some(stored)) = archive.find(std::slice::from_ref(&args.file)).await?.pop() else {
            return Ok(false);
        };
        fetch_to(&archive, &stored, &dest)
            .await
            .map_err(|e| read_error(e, &dest))?;
        return Ok(true);
    }
    // The requested segment and its successors: one listing, then every read at once (the requested one
    // decides the exit code). Successor names assume PostgreSQL's default 16 MiB segments (the size is
    // only known once the requested one is read); a guessed name that is not archived is not read.
    let mut names = vec![args.file.clone()];
    names.extend(next_segments(
        &args.file,
        DEFAULT_SEGMENT,
        usize::from(args.prefetch) - 1,
    ));
    let mut found = archive.find(&names).await?.into_iter();
    let Some(Some(stored)) = found.next() else {
        return Ok(false);
    };
    let ahead: Vec<(String, Stored)> = if spool_writable(&spool) {
        names[1..]
            .iter()
            .cloned()
            .zip(found)
            .filter_map(|(n, s)| s.map(|s| (n, s)))
            .collect()
    } else {
        Vec::new()
    };
    let prefetching = !ahead.is_empty();
    let (requested, ()) = tokio::join!(
        fetch_to(&archive, &stored, &dest),
        prefetch(&archive, ahead, &spool)
    );
    let size = requested.map_err(|e| read_error(e, &dest))?;
    if prefetching && size != DEFAULT_SEGMENT {
        // Another segment size: where its log file wraps earlier, the guessed successors were the wrong
        // names; read the right ones now (a second round only for such clusters, only near a wrap).
        let missing = missed_successors(&args.file, size, &names[1..]);
        if !missing.is_empty()
            && let Ok(found) = archive.find(&missing).await
        {
            let more = missing
                .into_iter()
                .zip(found)
                .filter_map(|(n, s)| s.map(|s| (n, s)))
                .collect();
            prefetch(&archive, more, &spool).await;
        }
    }
    Ok(true)
}

/// The successors of `file` for segments of `size` bytes that `guessed` (as many names, guessed for 16 MiB
/// segments) does not hold.
#[must_use]
pub fn missed_successors(file: &str, size: u64, guessed: &[String]) -> Vec<String> {
    next_segments(file, size, guessed.len())
        .into_iter()
        .filter(|n| !guessed.contains(n))
        .collect()
}

/// PostgreSQL's default WAL segment size.
const DEFAULT_SEGMENT: u64 = 16 << 20;

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

/// Whether prefetched segments can be kept: a spool this user cannot write (made by another user) would
/// cost every fetch and save none.
fn spool_writable(spool: &Path) -> bool {
    let probe = spool.join(".pgro-probe");
    if std::fs::create_dir_all(spool).is_err() || std::fs::write(&probe, b"").is_err() {
        eprintln!(
            "pgro wal-fetch: {} is not writable; prefetch off",
            spool.display()
        );
        return false;
    }
    let _ = std::fs::remove_file(&probe);
    true
}

/// Fetches `wanted` in parallel into the spool; failures only mean those segments are fetched when asked.
async fn prefetch(archive: &WalArchive, wanted: Vec<(String, Stored)>, spool: &Path) {
    use futures::StreamExt as _;
    let n = wanted.len().max(1);
    futures::stream::iter(wanted)
        .map(|(name, stored)| async move {
            let _ = fetch_to(archive, &stored, &spool.join(name)).await;
        })
        .buffer_unordered(n)
        .collect::<Vec<()>>()
        .await;
}

/// Streams a stored WAL file into `dest` through a temporary file in the same directory, renamed once
/// complete and verified: PostgreSQL never sees a partial file. Not fsynced (as `pgbackrest archive-get`):
/// the file is recovery's scratch copy, and after a crash recovery asks for it again. Returns its size.
async fn fetch_to(archive: &WalArchive, stored: &Stored, dest: &Path) -> Result<u64, ReadError> {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dest.with_file_name(format!(".{name}.pgro-tmp"));
    // Unbuffered: the decoders hand over chunks of up to 1 MiB, and a buffer would only copy them again.
    let file = std::fs::File::create(&tmp).map_err(ReadError::Write)?;
    let done = match archive.read_into(stored, file).await {
        Ok((file, size)) => {
            drop(file);
            std::fs::rename(&tmp, dest)
                .map_err(ReadError::Write)
                .map(|()| size)
        }
        Err(e) => Err(e),
    };
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successors_wrap_at_the_end_of_a_log_file_by_segment_size() {
        // 16 MiB: 256 segments per log file.
        assert_eq!(
            next_segments("0000000100000000000000FE", 16 << 20, 3),
            [
                "0000000100000000000000FF",
                "000000010000000100000000",
                "000000010000000100000001"
            ]
        );
        // 1 MiB: 4096 per log file, so 0xFF is followed by 0x100; 1 GiB: 4.
        assert_eq!(
            next_segments("0000000200000000000000FF", 1 << 20, 1),
            ["000000020000000000000100"]
        );
        assert_eq!(
            next_segments("000000010000000700000003", 1 << 30, 1),
            ["000000010000000800000000"]
        );
        // Not a power of two, or out of PostgreSQL's range: nothing guessed.
        assert!(next_segments("000000010000000000000001", 3 << 20, 2).is_empty());
        assert!(next_segments("000000010000000000000001", 1 << 31, 2).is_empty());
    }

    #[test]
    fn names_guessed_for_16_mib_segments_are_corrected_near_a_wrap() {
        let file = "0000000100000000000000FC";
        let guessed = next_segments(file, DEFAULT_SEGMENT, 6);
        // The default size needs no correction.
        assert!(missed_successors(file, DEFAULT_SEGMENT, &guessed).is_empty());
        // 1 MiB segments continue at 0x100 where 16 MiB ones wrapped to the next log file.
        assert_eq!(
            missed_successors(file, 1 << 20, &guessed),
            [
                "000000010000000000000100",
                "000000010000000000000101",
                "000000010000000000000102"
            ]
        );
        // Away from a wrap the guess is right whatever the size.
        let mid = "000000010000000000000010";
        assert!(
            missed_successors(mid, 1 << 20, &next_segments(mid, DEFAULT_SEGMENT, 15)).is_empty()
        );
    }
}
