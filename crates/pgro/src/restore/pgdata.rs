//! Where PGDATA is inside a restored snapshot (behaviour S2): the snapshot root itself, a `current`
//! symlink (Debian-style `current -> 16/main` conventions), or else the data directory of the highest
//! major version found.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// How deep below the snapshot root to look for a data directory.
const MAX_DEPTH: usize = 4;

/// A data directory candidate: path relative to the snapshot root and its `PG_VERSION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Relative to the snapshot root (empty for the root).
    pub rel: PathBuf,
    /// `PG_VERSION` contents, trimmed (`16`, `9.6`).
    pub version: String,
}

/// The major version as a sortable pair (`9.6` → (9, 6), `16` → (16, 0)).
pub fn major_key(version: &str) -> (u32, u32) {
    let mut parts = version
        .split('.')
        .map(|p| p.trim().parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Whether `dir` looks like a PostgreSQL data directory; returns its version.
pub fn data_dir_version(dir: &Path) -> Option<String> {
    let version = fs::read_to_string(dir.join("PG_VERSION")).ok()?;
    fs::metadata(dir.join("global"))
        .ok()
        .filter(fs::Metadata::is_dir)?;
    let version = version.trim().to_owned();
    (!version.is_empty()).then_some(version)
}

/// Locates PGDATA below `root`. `Ok(None)` when the snapshot holds none.
///
/// # Errors
///
/// Reading the directory tree failed.
pub fn locate(root: &Path) -> io::Result<Option<Found>> {
    if let Some(version) = data_dir_version(root) {
        return Ok(Some(Found {
            rel: PathBuf::new(),
            version,
        }));
    }
    if let Some(found) = follow_current(root) {
        return Ok(Some(found));
    }
    let mut found = Vec::new();
    search(root, Path::new(""), 0, &mut found)?;
    Ok(choose(found))
}

/// Highest major; then the shallowest path; then the lexicographically first, so the choice does not depend
/// on directory listing order.
pub fn choose(mut found: Vec<Found>) -> Option<Found> {
    found.sort_by(|a, b| {
        major_key(&b.version)
            .cmp(&major_key(&a.version))
            .then(a.rel.components().count().cmp(&b.rel.components().count()))
            .then(a.rel.cmp(&b.rel))
    });
    found.into_iter().next()
}

/// `current` at the root or one level down: a relative symlink is followed inside the snapshot; an absolute
/// one (recorded on the source host) is matched by its longest suffix that exists in the snapshot.
fn follow_current(root: &Path) -> Option<Found> {
    let mut candidates = vec![PathBuf::from("current")];
    if let Ok(entries) = fs::read_dir(root) {
        let mut subdirs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| PathBuf::from(e.file_name()).join("current"))
            .collect();
        subdirs.sort();
        candidates.extend(subdirs);
    }
    for link in candidates {
        let Ok(target) = fs::read_link(root.join(&link)) else {
            if let Some(version) = data_dir_version(&root.join(&link)) {
                return Some(Found { rel: link, version });
            }
            continue;
        };
        let base = link.parent().unwrap_or(Path::new(""));
        for rel in link_candidates(base, &target) {
            if let Some(version) = data_dir_version(&root.join(&rel)) {
                return Some(Found { rel, version });
            }
        }
    }
    None
}

/// Paths inside the snapshot a link target may mean, most specific first. Never escapes the root.
pub fn link_candidates(base: &Path, target: &Path) -> Vec<PathBuf> {
    if target.is_absolute() {
        let parts: Vec<_> = target
            .components()
            .filter_map(|c| match c {
                Component::Normal(p) => Some(p),
                _ => None,
            })
            .collect();
        (0..parts.len())
            .map(|skip| parts[skip..].iter().collect::<PathBuf>())
            .collect()
    } else {
        let mut out = PathBuf::new();
        for c in base.join(target).components() {
            match c {
                Component::Normal(p) => out.push(p),
                Component::ParentDir if !out.pop() => return Vec::new(),
                _ => {}
            }
        }
        vec![out]
    }
}

fn search(root: &Path, rel: &Path, depth: usize, found: &mut Vec<Found>) -> io::Result<()> {
    if depth >= MAX_DEPTH {
        return Ok(());
    }
    let mut entries: Vec<_> = fs::read_dir(root.join(rel))?
        .filter_map(Result::ok)
        // Symlinked directories are not descended into: they may point outside the snapshot.
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| rel.join(e.file_name()))
        .collect();
    entries.sort();
    for child in entries {
        if let Some(version) = data_dir_version(&root.join(&child)) {
            // A data directory's own subdirectories are never another data directory.
            found.push(Found {
                rel: child,
                version,
            });
        } else {
            search(root, &child, depth + 1, found)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn pgdata(root: &Path, rel: &str, version: &str) {
        let dir = root.join(rel);
        fs::create_dir_all(dir.join("global")).expect("mkdir");
        fs::write(dir.join("PG_VERSION"), format!("{version}\n")).expect("write");
    }

    #[test]
    fn root_is_pgdata() {
        let t = tempfile::tempdir().expect("tempdir");
        pgdata(t.path(), "", "16");
        let f = locate(t.path()).expect("locate").expect("found");
        assert_eq!(f.rel, PathBuf::new());
        assert_eq!(f.version, "16");
    }

    #[test]
    fn current_symlink_wins_over_higher_versions() {
        let t = tempfile::tempdir().expect("tempdir");
        pgdata(t.path(), "15/main", "15");
        pgdata(t.path(), "17/main", "17");
        symlink("15/main", t.path().join("current")).expect("symlink");
        let f = locate(t.path()).expect("locate").expect("found");
        assert_eq!(f.rel, PathBuf::from("15/main"));
    }

    #[test]
    fn absolute_current_symlink_is_matched_by_suffix() {
        let t = tempfile::tempdir().expect("tempdir");
        pgdata(t.path(), "16/main", "16");
        symlink("/var/lib/postgresql/16/main", t.path().join("current")).expect("symlink");
        let f = locate(t.path()).expect("locate").expect("found");
        assert_eq!(f.rel, PathBuf::from("16/main"));
    }

    #[test]
    fn highest_major_is_chosen() {
        let t = tempfile::tempdir().expect("tempdir");
        pgdata(t.path(), "9.6/main", "9.6");
        pgdata(t.path(), "14/main", "14");
        pgdata(t.path(), "old/13", "13");
        let f = locate(t.path()).expect("locate").expect("found");
        assert_eq!(f.rel, PathBuf::from("14/main"));
    }

    #[test]
    fn no_pgdata_is_none() {
        let t = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(t.path().join("a/b")).expect("mkdir");
        fs::write(t.path().join("a/PG_VERSION"), "16").expect("write");
        assert_eq!(locate(t.path()).expect("locate"), None);
    }

    #[test]
    fn relative_links_never_escape() {
        assert!(link_candidates(Path::new(""), Path::new("../../etc")).is_empty());
        assert_eq!(
            link_candidates(Path::new("a"), Path::new("../b/main")),
            vec![PathBuf::from("b/main")]
        );
    }

    #[test]
    fn version_keys_order_old_style_majors() {
        assert!(major_key("9.6") < major_key("10"));
        assert!(major_key("10") < major_key("16"));
    }
}
