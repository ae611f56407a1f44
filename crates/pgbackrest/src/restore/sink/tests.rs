use std::io::{self, Read};
use std::path::Path;

use sha1::{Digest as _, Sha1};

use super::*;
use crate::manifest::ManifestFile;

fn job(dir: &Path, data: &[u8], size: u64) -> FileJob {
    FileJob {
        file: ManifestFile {
            name: "pg_data/base/1/16397".into(),
            size,
            checksum: hex(&Sha1::digest(data)),
            reference: "20261206-000000F".into(),
            repo_size: 1,
            bundle: None,
            block: None,
            mode: 0o640,
            timestamp: 1_700_000_000,
        },
        dest: dir.join("16397"),
    }
}

/// 40 MiB of varied bytes: above the pipelining threshold, several buffers long.
fn data() -> Vec<u8> {
    (0..40u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// A reader that fails after `ok` bytes.
struct FailsAfter<'a>(&'a [u8], usize);

impl Read for FailsAfter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.1 == 0 {
            return Err(io::Error::other("storage went away"));
        }
        let n = buf.len().min(self.1).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        self.1 -= n;
        Ok(n)
    }
}

#[test]
fn a_large_file_is_written_and_verified_through_the_pipeline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = data();
    let j = job(dir.path(), &d, d.len() as u64);
    let mut sink = Sink::create(&j).expect("create");
    sink.copy_from(&mut &d[..], &|e| Error::corrupted("x", e))
        .expect("copy");
    assert_eq!(sink.finish().expect("finish"), d.len() as u64);
    assert_eq!(std::fs::read(&j.dest).expect("read back"), d);
}

#[test]
fn pipeline_failures_are_reported_not_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = data();
    // More bytes than the manifest says: the writer thread's error comes back.
    let j = job(dir.path(), &d, (d.len() - 1) as u64);
    let mut sink = Sink::create(&j).expect("create");
    let e = sink
        .copy_from(&mut &d[..], &|e| Error::corrupted("x", e))
        .expect_err("too long");
    assert!(e.to_string().contains("16397"), "{e}");
    assert!(
        crate::error_chain(&e).contains("more than its"),
        "{}",
        crate::error_chain(&e)
    );

    // A read failure half-way is classified by the caller.
    let j = job(&dir.path().join(""), &d, d.len() as u64);
    std::fs::remove_file(&j.dest).expect("remove");
    let mut sink = Sink::create(&j).expect("create");
    let e = sink
        .copy_from(&mut FailsAfter(&d, 5 << 20), &|e| Error::io("(storage)", e))
        .expect_err("read fails");
    assert!(
        crate::error_chain(&e).contains("storage went away"),
        "{}",
        crate::error_chain(&e)
    );

    // Different bytes of the right length fail the SHA-1 at the end.
    std::fs::remove_file(&j.dest).expect("remove");
    let mut other = d.clone();
    other[7 << 20] ^= 1;
    let mut sink = Sink::create(&j).expect("create");
    sink.copy_from(&mut &other[..], &|e| Error::corrupted("x", e))
        .expect("copy");
    let e = sink.finish().expect_err("checksum");
    assert!(
        crate::error_chain(&e).contains("SHA-1"),
        "{}",
        crate::error_chain(&e)
    );
}
