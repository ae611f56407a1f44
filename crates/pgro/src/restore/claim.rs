//! The restore target belongs to one snapshot. A retried Job resumes into its own target; a target that
//! holds another cluster (a previous restore of another snapshot, or anything not written by `pgro
//! restore`) is refused before anything is downloaded, so no file of another cluster is ever mixed into
//! the new PGDATA.

use std::io;
use std::path::Path;

/// The marker, at the target's root, naming the snapshot restored there.
pub const MARKER: &str = ".pgro-restore";

/// Entries a fresh volume may hold that are not data (`lost+found` of ext4/xfs volumes).
const IGNORED: &[&str] = &["lost+found", MARKER];

/// Why the target cannot take this snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// It holds another snapshot's restore.
    OtherSnapshot(String),
    /// It holds files pgro did not restore.
    NotEmpty(String),
}

impl Refusal {
    /// The message for people.
    pub fn message(&self, target: &Path, snapshot: &str) -> String {
        match self {
            Self::OtherSnapshot(other) => format!(
                "the target {} already holds a restore of snapshot {other}; restoring snapshot {snapshot} \
                 over it would mix the two clusters' files. Restore into an empty directory (or remove \
                 this one first)",
                target.display()
            ),
            Self::NotEmpty(entry) => format!(
                "the target {} is not empty ({entry:?} and maybe more) and was not written by `pgro \
                 restore`; restore into an empty directory",
                target.display()
            ),
        }
    }
}

/// Claims `target` for `snapshot`: creates it and the marker when it is empty, accepts it when the marker
/// names the same snapshot.
///
/// # Errors
/// `Ok(Err(refusal))` when it belongs to something else; `Err` when it cannot be read or written.
pub fn claim(target: &Path, snapshot: &str) -> io::Result<Result<(), Refusal>> {
    std::fs::create_dir_all(target)?;
    let marked = match std::fs::read_to_string(target.join(MARKER)) {
        Ok(s) if s.trim() == snapshot => return Ok(Ok(())),
        Ok(s) => Some(s.trim().to_string()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let mut names: Vec<String> = std::fs::read_dir(target)?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !IGNORED.contains(&n.as_str()))
        .collect();
    names.sort();
    // A marker over an otherwise empty target is a claim that restored nothing yet: it may be taken over.
    if let Some(first) = names.into_iter().next() {
        return Ok(Err(match marked {
            Some(other) => Refusal::OtherSnapshot(other),
            None => Refusal::NotEmpty(first),
        }));
    }
    std::fs::write(target.join(MARKER), format!("{snapshot}\n"))?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_target_is_claimed_and_resumed_by_the_same_snapshot_only() {
        let t = tempfile::tempdir().expect("tempdir");
        let target = t.path().join("vol");
        std::fs::create_dir_all(target.join("lost+found")).expect("mkdir");
        assert_eq!(claim(&target, "aaa").expect("claim"), Ok(()));
        std::fs::create_dir_all(target.join("snapshot")).expect("mkdir");
        assert_eq!(claim(&target, "aaa").expect("claim"), Ok(()));
        assert_eq!(
            claim(&target, "bbb").expect("claim"),
            Err(Refusal::OtherSnapshot("aaa".into()))
        );
    }

    #[test]
    fn foreign_files_are_refused() {
        let t = tempfile::tempdir().expect("tempdir");
        std::fs::write(t.path().join("PG_VERSION"), "16").expect("write");
        assert_eq!(
            claim(t.path(), "aaa").expect("claim"),
            Err(Refusal::NotEmpty("PG_VERSION".into()))
        );
        assert!(!t.path().join(MARKER).exists());
    }

    #[test]
    fn a_claim_that_restored_nothing_can_be_taken_over() {
        let t = tempfile::tempdir().expect("tempdir");
        assert_eq!(claim(t.path(), "aaa").expect("claim"), Ok(()));
        assert_eq!(claim(t.path(), "bbb").expect("claim"), Ok(()));
        assert_eq!(
            std::fs::read_to_string(t.path().join(MARKER)).expect("marker"),
            "bbb\n"
        );
    }
}
