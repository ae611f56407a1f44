//! `pgro wal-fetch --source SOURCE.yaml --secret-dir DIR %f %p`: PostgreSQL's `restore_command` for
//! WAL-archive sources (pgBackRest, barman-cloud). Exit 0 only once `%p` is complete (temporary file, checked, renamed); **1 only for
//! "not in the archive"**, which PostgreSQL takes as the end of the archive; every other failure (storage
//! still down after the store's retries, damaged data, bad settings) exits 126, which PostgreSQL treats as
//! fatal — so a network error can never end recovery early and promote a silently older copy.
//!
//! Prefetch: PostgreSQL asks for one segment at a time and waits, so a request that misses the spool
//! lists the archive, reads the requested segment and starts a background `pgro wal-fetch --background`,
//! which keeps up to `--prefetch` − 1 of the following segments of its timeline read ahead (each streamed,
//! decoded and checked) in `<pgdata>/pgro_wal_prefetch/` as requests take them. The following requests are
//! served from there by a rename, waiting for a segment the prefetcher is still reading, so reading runs
//! ahead of replay instead of between its requests (see `spool` for the protocol). A request that finds no
//! prefetcher running starts one; a request that misses the spool stops it and empties the spool (a jump
//! or a timeline switch). Everything stays inside the data directory's volume.

mod spool;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub use spool::Spool;

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
    /// Segments read ahead of the requests, the requested one included (1: no prefetch).
    #[arg(long, env = "PGRO_WAL_PREFETCH", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub prefetch: u16,
    /// Internal: run as the background prefetcher, keeping up to `--prefetch` segments after FILE read
    /// ahead in the spool (DEST is ignored).
    #[arg(long, hide = true)]
    pub background: bool,
    /// Internal: the cluster's WAL segment size, for the prefetcher's segment names.
    #[arg(long, hide = true, default_value_t = DEFAULT_SEGMENT)]
    pub segment_size: u64,
}

/// Runs `pgro wal-fetch`.
pub async fn run(args: WalFetchArgs) -> ExitCode {
    if args.background {
        background(&args).await;
        return ExitCode::SUCCESS;
    }
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
    let spool = Spool::new(&args.pgdata);
    let segment = pgbackrest::label::is_segment(&args.file);
    if segment && args.prefetch > 1 {
        if spool.wait_take(&args.file, &dest) {
            keep_prefetching(args, &spool, &dest);
            return Ok(true);
        }
        spool.clear();
    }
    let identity = cluster_identity(&args.pgdata)?;
    let archive = WalArchive::open(&args.source, identity)
        .await
        .map_err(|e| e.message())?;
    let Some(Some(stored)) = archive.find(std::slice::from_ref(&args.file)).await?.pop() else {
        return Ok(false);
    };
    let size = fetch_to(&archive, &stored, &dest)
        .await
        .map_err(|e| match e {
            ReadError::Read(m) => m,
            ReadError::Write(e) => format!("writing {}: {e}", dest.display()),
        })?;
    if segment && args.prefetch > 1 && spool.writable() {
        spawn_prefetcher(args, &args.file, usize::from(args.prefetch) - 1, size);
    }
    Ok(true)
}

/// After a hit: starts a prefetcher after the last spooled segment if none runs (it stopped when idle, or
/// failed) and the archive's end has not been seen since the last miss.
fn keep_prefetching(args: &WalFetchArgs, spool: &Spool, served: &Path) {
    if spool.busy() || spool.ended() {
        return;
    }
    let size = std::fs::metadata(served).map_or(DEFAULT_SEGMENT, |m| m.len());
    let spooled = spool.segments();
    let after = spooled.last().unwrap_or(&args.file);
    spawn_prefetcher(args, after, usize::from(args.prefetch) - 1, size);
}

/// Starts `pgro wal-fetch --background` reading ahead from the segment after `after`, keeping up to
/// `window` segments spooled or being read, and returns once it has taken the spool (it says so on its
/// standard output), so that the next request finds it busy. A prefetcher that cannot start only costs
/// the reads it would have saved.
fn spawn_prefetcher(args: &WalFetchArgs, after: &str, window: usize, segment_size: u64) {
    use std::io::Read as _;
    use std::os::unix::process::CommandExt as _;
    use std::process::{Command, Stdio};
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut cmd = Command::new(exe);
    cmd.arg("wal-fetch")
        .arg("--source")
        .arg(&args.source.source)
        .arg("--storage-attempts")
        .arg(args.source.storage_attempts.to_string());
    if let Some(dir) = &args.source.secret_dir {
        cmd.arg("--secret-dir").arg(dir);
    }
    cmd.arg("--pgdata")
        .arg(&args.pgdata)
        .arg("--prefetch")
        .arg(window.to_string())
        .arg("--segment-size")
        .arg(segment_size.to_string())
        .args(["--background", after, "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // Its own process group: a signal meant for the request does not stop it half-way.
        .process_group(0);
    match cmd.spawn() {
        Ok(mut child) => {
            let mut started = [0u8; 1];
            if let Some(mut out) = child.stdout.take() {
                let _ = out.read(&mut started);
            }
        }
        Err(e) => eprintln!("pgro wal-fetch: starting the prefetcher failed: {e}"),
    }
}

/// The background prefetcher: takes the spool, says so, then keeps up to `--prefetch` segments after
/// `args.file` spooled or being read, in order, as requests take them, listing the archive only when it
/// runs out of listed names. It ends at the end of the archive (leaving `.end`), after a failed read or
/// listing (the request then reads, and reports, itself), when asked to stop, or when nothing has been
/// taken for `IDLE`. Failures only mean segments are read when asked for.
async fn background(args: &WalFetchArgs) {
    use std::io::Write as _;
    let spool = Spool::new(&args.pgdata);
    let window = usize::from(args.prefetch);
    let promised = next_segments(&args.file, args.segment_size, window);
    let lock = spool.start(&promised);
    // Started (or failed to): the request that spawned this one may return.
    let mut out = std::io::stdout();
    let _ = out.write_all(b"\n").and_then(|()| out.flush());
    let Ok(_lock) = lock else {
        return;
    };
    let opened = match cluster_identity(&args.pgdata) {
        Ok(identity) => WalArchive::open(&args.source, identity).await.ok(),
        Err(_) => None,
    };
    if let Some(archive) = opened {
        let ended = read_ahead(&archive, &spool, &args.file, args.segment_size, window).await;
        if ended {
            spool.mark_end();
        }
    }
    let _ = spool.write_plan(&[]);
}

/// Nothing taken from the spool for this long: recovery has stopped asking (a target reached, paused).
const IDLE: std::time::Duration = std::time::Duration::from_secs(10);

/// The prefetcher's loop; true when it stopped at the end of the archive.
async fn read_ahead(
    archive: &WalArchive,
    spool: &Spool,
    after: &str,
    size: u64,
    window: usize,
) -> bool {
    use futures::StreamExt as _;
    use futures::stream::FuturesUnordered;
    use std::collections::{BTreeSet, VecDeque};
    let mut last = after.to_owned();
    let mut listed: VecDeque<(String, Stored)> = VecDeque::new();
    let mut planned: BTreeSet<String> = BTreeSet::new();
    let mut reading = FuturesUnordered::new();
    let (mut ended, mut failed) = (false, false);
    let mut spooled = spool.segments();
    let mut moved = std::time::Instant::now();
    // The plan (written when it changed) only loses a name after the segment was renamed into the spool.
    let mut replan = true;
    loop {
        while !(ended || failed || spool.stopping()) && spooled.len() + reading.len() < window {
            if listed.is_empty() {
                // Names for a few windows at once: one listing per log directory covers them all.
                let names = next_segments(&last, size, window * 4);
                match archive.find(&names).await {
                    Ok(found) => {
                        // Up to the first gap: what follows it is not read before the gap is filled.
                        listed.extend(
                            names
                                .into_iter()
                                .zip(found)
                                .map_while(|(n, s)| s.map(|s| (n, s))),
                        );
                        ended = listed.is_empty();
                    }
                    Err(_) => failed = true,
                }
                continue;
            }
            let Some((name, stored)) = listed.pop_front() else {
                break;
            };
            last.clone_from(&name);
            planned.insert(name.clone());
            replan = true;
            reading.push(async move {
                let ok = fetch_to(archive, &stored, &spool.path(&name)).await.is_ok();
                (name, ok)
            });
        }
        if std::mem::take(&mut replan) {
            let _ = spool.write_plan(&planned);
        }
        if reading.is_empty() && (ended || failed || spool.stopping()) {
            return ended;
        }
        tokio::select! {
            Some((name, ok)) = reading.next(), if !reading.is_empty() => {
                planned.remove(&name);
                replan = true;
                failed |= !ok;
                moved = std::time::Instant::now();
            }
            () = tokio::time::sleep(std::time::Duration::from_millis(5)) => {}
        }
        let now = spool.segments();
        if now != spooled {
            moved = std::time::Instant::now();
        }
        spooled = now;
        if reading.is_empty() && moved.elapsed() > IDLE {
            return false;
        }
    }
}

/// PostgreSQL's default WAL segment size.
const DEFAULT_SEGMENT: u64 = 16 << 20;

/// The `n` segment names after `name` on its timeline, for segments of `size` bytes (PostgreSQL numbers
/// them `<timeline><log><seg>`, `0x1_0000_0000 / size` segments per log).
#[must_use]
pub fn next_segments(name: &str, size: u64, n: usize) -> Vec<String> {
    let hex = |s: &str| u64::from_str_radix(s, 16).ok();
    let (Some(tli), Some(log), Some(seg)) = (
        name.get(..8).and_then(hex),
        name.get(8..16).and_then(hex),
        name.get(16..24).and_then(hex),
    ) else {
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
}
