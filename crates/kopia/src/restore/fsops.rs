//! Filesystem operations of a restore: directories, files, symlinks and attributes.

use std::fs::{self, File, FileTimes, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::Attributes;
use crate::error::Error;

/// Filesystem block size assumed when looking for zero runs: holes and allocations are made of
/// whole blocks, so runs are aligned to it in the file.
const BLOCK: u64 = 4096;

/// Zero runs at least this long are allocated instead of written (non-sparse restores). Copying a
/// zero page into the page cache and writing it back costs CPU and disk bandwidth; one
/// `fallocate` costs a journal update, which is cheaper once a run spans a few dozen pages.
const ZERO_RUN_MIN: u64 = 64 << 10;

/// What `fallocate` stands for when the filesystem cannot allocate: writes of this buffer.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// Whether every byte of `data` is zero. Checked 64 bytes at a time (eight words OR-ed, which
/// the compiler vectorises): a run of zeros is scanned at memory speed and data that is not zero
/// is rejected within its first 64 bytes, so scanning every restored block costs little.
pub(super) fn is_zero(data: &[u8]) -> bool {
    let mut lines = data.chunks_exact(64);
    let tail = lines.remainder().iter().all(|&b| b == 0);
    tail && lines.all(|line| {
        line.chunks_exact(8)
            .map(|w| u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]))
            .fold(0, |acc, w| acc | w)
            == 0
    })
}

/// How a restore target writes runs of zeros.
#[derive(Debug, Clone, Copy)]
pub(super) struct Zeros<'a> {
    /// Leave holes (kopia `--write-sparse-files`).
    pub(super) sparse: bool,
    /// Cleared once `fallocate` reports that the filesystem cannot allocate; zeros are written
    /// from then on.
    pub(super) can_allocate: &'a std::sync::atomic::AtomicBool,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Permission errors are ignored, like kopia's default `--ignore-permission-errors`.
fn ignore_eperm(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Ok(()),
        other => other,
    }
}

/// Creates a directory (mode 0700 until its attributes are applied) unless one exists.
pub(super) fn ensure_dir(path: &Path, is_root: bool) -> Result<(), Error> {
    let meta = if is_root {
        fs::metadata(path)
    } else {
        fs::symlink_metadata(path)
    };
    match meta {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::TargetConflict {
            path: path.to_path_buf(),
            reason: "a non-directory exists where a directory is restored",
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(io_err("mkdir", path)),
        Err(e) => Err(io_err("stat", path)(e)),
    }
}

/// Creates (truncating) a file of `size` bytes, replacing a symlink at the path.
pub(super) fn create_file(path: &Path, size: u64) -> Result<File, Error> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            fs::remove_file(path).map_err(io_err("remove", path))?
        }
        Ok(m) if m.is_dir() => {
            return Err(Error::TargetConflict {
                path: path.to_path_buf(),
                reason: "a directory exists where a file is restored",
            });
        }
        Ok(_) | Err(_) => {}
    }
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err("create", path))?;
    f.set_len(size).map_err(io_err("truncate", path))?;
    Ok(f)
}

/// Writes `data` at `offset` of a file made by [`create_file`], whose unwritten ranges are holes.
/// Runs of zero blocks are not copied: with `sparse` every one stays a hole; otherwise those of at
/// least [`ZERO_RUN_MIN`] are allocated with [`zero_range`] and the rest is written.
pub(super) fn write_chunk(
    file: &File,
    path: &Path,
    offset: u64,
    data: &[u8],
    zeros: Zeros<'_>,
) -> Result<(), Error> {
    let len = data.len() as u64;
    let min_run = if zeros.sparse { 1 } else { ZERO_RUN_MIN };
    // `pos` walks file-aligned blocks; `pending` is where the data not yet written starts.
    let mut pos = 0u64;
    let mut pending = 0u64;
    let block_end = |p: u64| ((offset + p) / BLOCK + 1) * BLOCK - offset;
    while pos < len {
        let end = block_end(pos).min(len);
        if !is_zero(&data[pos as usize..end as usize]) {
            pos = end;
            continue;
        }
        let mut run_end = end;
        while run_end < len {
            let next = block_end(run_end).min(len);
            if !is_zero(&data[run_end as usize..next as usize]) {
                break;
            }
            run_end = next;
        }
        if run_end - pos >= min_run {
            file.write_all_at(&data[pending as usize..pos as usize], offset + pending)
                .map_err(io_err("write", path))?;
            zero_range(file, path, offset + pos, run_end - pos, zeros)?;
            pending = run_end;
        }
        pos = run_end;
    }
    file.write_all_at(&data[pending as usize..], offset + pending)
        .map_err(io_err("write", path))
}

/// Makes `len` bytes at `offset` of a file made by [`create_file`] read as zeros. Sparse: the
/// range is already a hole. Otherwise it is allocated without being written (`fallocate` mode 0
/// gives unwritten extents that read as zeros), so space is reserved as if the zeros had been
/// written — a volume too small fails the restore, not PostgreSQL later — while no page is
/// copied into the page cache or written back. Filesystems that cannot allocate get the zeros
/// written.
pub(super) fn zero_range(
    file: &File,
    path: &Path,
    offset: u64,
    len: u64,
    zeros: Zeros<'_>,
) -> Result<(), Error> {
    use std::sync::atomic::Ordering;
    if zeros.sparse || len == 0 {
        return Ok(());
    }
    if zeros.can_allocate.load(Ordering::Relaxed) {
        match allocate(file, offset, len) {
            Ok(()) => return Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(nix::libc::EOPNOTSUPP | nix::libc::ENOSYS | nix::libc::EINVAL)
                ) =>
            {
                zeros.can_allocate.store(false, Ordering::Relaxed);
            }
            Err(e) => return Err(io_err("fallocate", path)(e)),
        }
    }
    let mut done = 0;
    while done < len {
        let n = (len - done).min(ZEROS.len() as u64);
        file.write_all_at(&ZEROS[..n as usize], offset + done)
            .map_err(io_err("write", path))?;
        done += n;
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn allocate(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let off = i64::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let len = i64::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    nix::fcntl::fallocate(file, nix::fcntl::FallocateFlags::empty(), off, len)
        .map_err(io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn allocate(_file: &File, _offset: u64, _len: u64) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(nix::libc::EOPNOTSUPP))
}

/// chown (if different and wanted) → chmod → times, on an open file.
pub(super) fn apply_file_attrs(
    file: &File,
    path: &Path,
    a: &Attributes,
    restore_owner: bool,
) -> Result<(), Error> {
    if restore_owner {
        let m = file.metadata().map_err(io_err("stat", path))?;
        if m.uid() != a.uid || m.gid() != a.gid {
            ignore_eperm(std::os::unix::fs::fchown(file, Some(a.uid), Some(a.gid)))
                .map_err(io_err("chown", path))?;
        }
    }
    ignore_eperm(file.set_permissions(Permissions::from_mode(a.mode.to_posix())))
        .map_err(io_err("chmod", path))?;
    let t = a.mtime.to_system_time();
    ignore_eperm(file.set_times(FileTimes::new().set_accessed(t).set_modified(t)))
        .map_err(io_err("utimes", path))
}

/// chown (if different and wanted) → chmod → times, on a directory path.
pub(super) fn apply_dir_attrs(
    path: &Path,
    a: &Attributes,
    restore_owner: bool,
) -> Result<(), Error> {
    if restore_owner {
        let m = fs::metadata(path).map_err(io_err("stat", path))?;
        if m.uid() != a.uid || m.gid() != a.gid {
            ignore_eperm(std::os::unix::fs::chown(path, Some(a.uid), Some(a.gid)))
                .map_err(io_err("chown", path))?;
        }
    }
    ignore_eperm(fs::set_permissions(
        path,
        Permissions::from_mode(a.mode.to_posix()),
    ))
    .map_err(io_err("chmod", path))?;
    let t = filetime::FileTime::from_system_time(a.mtime.to_system_time());
    ignore_eperm(filetime::set_file_times(path, t, t)).map_err(io_err("utimes", path))
}

/// Creates a symlink (replacing an existing symlink) and sets its owner and times.
pub(super) fn create_symlink(
    path: &Path,
    target: &[u8],
    a: &Attributes,
    restore_owner: bool,
) -> Result<(), Error> {
    use std::os::unix::ffi::OsStrExt;
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            fs::remove_file(path).map_err(io_err("remove", path))?
        }
        Ok(_) => {
            return Err(Error::TargetConflict {
                path: path.to_path_buf(),
                reason: "a non-symlink exists where a symlink is restored",
            });
        }
        Err(_) => {}
    }
    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), path)
        .map_err(io_err("symlink", path))?;
    if restore_owner {
        let m = fs::symlink_metadata(path).map_err(io_err("stat", path))?;
        if m.uid() != a.uid || m.gid() != a.gid {
            ignore_eperm(std::os::unix::fs::lchown(path, Some(a.uid), Some(a.gid)))
                .map_err(io_err("chown", path))?;
        }
    }
    // Symlink permissions are not applied on Linux (no lchmod), as in kopia. Kopia sets symlink
    // times with `unix.Lutimes`, whose `NsecToTimeval` rounds nanoseconds *up* to microseconds;
    // we reproduce that so restored trees are identical.
    let ns = a.mtime.as_nanos();
    let rounded = ns
        .div_euclid(1000)
        .saturating_add(i64::from(ns.rem_euclid(1000) != 0))
        .saturating_mul(1000);
    let t = filetime::FileTime::from_system_time(
        crate::time::Timestamp::from_nanos(rounded).to_system_time(),
    );
    ignore_eperm(filetime::set_symlink_file_times(path, t, t)).map_err(io_err("utimes", path))
}

#[cfg(test)]
mod tests;
