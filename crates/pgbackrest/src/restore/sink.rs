//! Writing one restored file: created new (never through an existing file or link), written in order while
//! hashed, then checked against the manifest's size and SHA-1 before its mode and mtime are set.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use sha1::{Digest as _, Sha1};

use super::plan::FileJob;
use crate::error::Error;
use crate::ini::hex;

/// Files at least this large (decoded) are decoded and hashed+written on two threads.
const PIPELINE_FROM: u64 = 32 << 20;

/// A file being written.
pub(crate) struct Sink<'a> {
    job: &'a FileJob,
    out: BufWriter<File>,
    hash: Sha1,
    written: u64,
}

impl<'a> Sink<'a> {
    /// Creates the file; `create_new` (`O_EXCL`) refuses an existing file or a symlink in its place.
    pub(crate) fn create(job: &'a FileJob) -> Result<Self, Error> {
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&job.dest)
            .map_err(|e| Error::io(&job.dest, e))?;
        Ok(Self {
            job,
            out: BufWriter::with_capacity(256 << 10, f),
            hash: Sha1::new(),
            written: 0,
        })
    }

    /// Appends `data`; more than the manifest's size is damage.
    pub(crate) fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        self.written += data.len() as u64;
        if self.written > self.job.file.size {
            return Err(self.damaged(format!(
                "decodes to more than its {} bytes",
                self.job.file.size
            )));
        }
        self.hash.update(data);
        self.out
            .write_all(data)
            .map_err(|e| Error::io(&self.job.dest, e))
    }

    /// Copies everything `r` yields. Read errors are damage unless `classify` says otherwise (storage errors
    /// behind a streaming reader). A large file is decoded on this thread and hashed and written on another:
    /// one big relation segment (1 GiB) is otherwise the restore's longest serial stretch, with
    /// decompression, SHA-1 and the write each taking about a third of it.
    pub(crate) fn copy_from(
        &mut self,
        r: &mut dyn Read,
        classify: &dyn Fn(io::Error) -> Error,
    ) -> Result<(), Error> {
        if self.job.file.size >= PIPELINE_FROM {
            return self.copy_pipelined(r, classify);
        }
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(classify(e)),
            };
            self.write(&buf[..n])?;
        }
    }

    /// [`Sink::copy_from`] with the hashing and writing on a scoped thread, fed through a short queue of
    /// recycled buffers.
    fn copy_pipelined(
        &mut self,
        r: &mut dyn Read,
        classify: &dyn Fn(io::Error) -> Error,
    ) -> Result<(), Error> {
        const BUF: usize = 1 << 20;
        const QUEUE: usize = 4;
        let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(QUEUE);
        let (free_tx, free_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(QUEUE + 2);
        std::thread::scope(|scope| {
            let writer = scope.spawn(move || -> Result<(), Error> {
                for buf in full_rx {
                    self.write(&buf)?;
                    let _ = free_tx.try_send(buf);
                }
                Ok(())
            });
            let read = loop {
                let mut buf = free_rx.try_recv().unwrap_or_default();
                buf.resize(BUF, 0);
                match r.read(&mut buf) {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        buf.truncate(n);
                        if full_tx.send(buf).is_err() {
                            break Ok(()); // the writer stopped; its error is reported below
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(classify(e)),
                }
            };
            drop(full_tx);
            let written = writer.join().unwrap_or_else(|_| {
                Err(Error::io(
                    "(restore writer)",
                    io::Error::other("the writer thread panicked"),
                ))
            });
            written.and(read)
        })
    }

    /// Checks size and SHA-1, then sets mode and mtime.
    pub(crate) fn finish(mut self) -> Result<u64, Error> {
        self.out.flush().map_err(|e| Error::io(&self.job.dest, e))?;
        if self.written != self.job.file.size {
            return Err(self.damaged(format!(
                "restored {} bytes, the manifest says {}",
                self.written, self.job.file.size
            )));
        }
        let sum = hex(&self.hash.clone().finalize());
        if sum != self.job.file.checksum {
            return Err(self.damaged(format!(
                "SHA-1 {sum} differs from the manifest's {}",
                self.job.file.checksum
            )));
        }
        let f = self.out.get_ref();
        f.set_permissions(std::fs::Permissions::from_mode(self.job.file.mode))
            .map_err(|e| Error::io(&self.job.dest, e))?;
        set_mtime(f, self.job.file.timestamp).map_err(|e| Error::io(&self.job.dest, e))?;
        Ok(self.written)
    }

    pub(crate) fn damaged(&self, detail: String) -> Error {
        Error::corrupted(self.job.file.name.clone(), detail)
    }
}

/// Creates an empty file with its mode and mtime (the manifest's checksum of nothing is not re-checked).
pub(crate) fn empty(job: &FileJob) -> Result<(), Error> {
    Sink::create(job)?.finish().map(|_| ())
}

fn set_mtime(f: &File, secs: i64) -> io::Result<()> {
    let t = filetime::FileTime::from_unix_time(secs, 0);
    filetime::set_file_handle_times(f, Some(t), Some(t))
}

/// Creates `dir` (its parent must exist) with `mode`; an existing directory keeps its contents but takes
/// the mode.
pub(crate) fn make_dir(dir: &Path, mode: u32) -> Result<(), Error> {
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() && !dir.is_symlink() => {
        }
        Err(e) => return Err(Error::io(dir, e)),
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests;
