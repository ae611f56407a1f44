//! Filesystem operations of a restore: directories, files, symlinks and attributes.

use std::fs::{self, File, FileTimes, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::Attributes;
use crate::error::Error;

/// Block size used to find zero runs worth leaving as holes.
const SPARSE_BLOCK: usize = 4096;

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

/// Writes `data` at `offset`; with `sparse`, runs of zero blocks are skipped (the file was
/// extended with `set_len`, so skipped ranges read as zeros).
pub(super) fn write_chunk(
    file: &File,
    path: &Path,
    offset: u64,
    data: &[u8],
    sparse: bool,
) -> Result<(), Error> {
    if !sparse {
        return file
            .write_all_at(data, offset)
            .map_err(io_err("write", path));
    }
    let mut pos = 0;
    while pos < data.len() {
        let end = (pos + SPARSE_BLOCK).min(data.len());
        if data[pos..end].iter().all(|&b| b == 0) {
            pos = end;
            continue;
        }
        // Extend the run over following non-zero blocks.
        let mut run_end = end;
        while run_end < data.len() {
            let next = (run_end + SPARSE_BLOCK).min(data.len());
            if data[run_end..next].iter().all(|&b| b == 0) {
                break;
            }
            run_end = next;
        }
        file.write_all_at(&data[pos..run_end], offset + pos as u64)
            .map_err(io_err("write", path))?;
        pos = run_end;
    }
    Ok(())
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
