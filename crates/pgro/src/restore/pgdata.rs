//! Where PGDATA is inside a snapshot (behaviour S2): the snapshot root itself, a `current` symlink
//! (Debian-style `current -> 16/main` conventions), or else the data directory of the highest major version
//! found. Decided on the snapshot's directory listing ([`Tree`]) before anything is downloaded, and on a
//! local directory in the same way.

use std::path::{Component, Path, PathBuf};
#[cfg(test)]
use std::{fs, io};

/// How deep below the snapshot root to look for a data directory.
const MAX_DEPTH: usize = 4;

/// What a directory entry is (symlinks are never followed by a listing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// Anything else.
    Other,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// File name.
    pub name: String,
    /// Its type.
    pub kind: Kind,
}

/// A read-only view of a directory tree: a restored directory, or a snapshot's listing.
pub(crate) trait Tree {
    /// What a failed read returns.
    type Error;
    /// The entries of directory `rel`, sorted by name; `None` when `rel` is not a directory (symlinks are
    /// not followed).
    async fn list(&self, rel: &Path) -> Result<Option<Vec<Entry>>, Self::Error>;
    /// The target of symlink `rel`; `None` when it is not a symlink.
    async fn read_link(&self, rel: &Path) -> Result<Option<PathBuf>, Self::Error>;
    /// The contents of the regular file `rel`; `None` when it is not a file or is larger than `limit`.
    async fn read_file(&self, rel: &Path, limit: u64) -> Result<Option<Vec<u8>>, Self::Error>;
}

/// A local directory as a [`Tree`] (tests: the restore decides on the snapshot's listing).
#[cfg(test)]
#[derive(Debug, Clone)]
pub(crate) struct LocalTree(pub(crate) PathBuf);

#[cfg(test)]
impl Tree for LocalTree {
    type Error = io::Error;

    async fn list(&self, rel: &Path) -> io::Result<Option<Vec<Entry>>> {
        let dir = self.0.join(rel);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
        let mut out = Vec::new();
        for e in fs::read_dir(&dir)? {
            let e = e?;
            let t = e.file_type()?;
            let kind = if t.is_dir() {
                Kind::Dir
            } else if t.is_file() {
                Kind::File
            } else if t.is_symlink() {
                Kind::Symlink
            } else {
                Kind::Other
            };
            out.push(Entry {
                name: e.file_name().to_string_lossy().into_owned(),
                kind,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Some(out))
    }

    async fn read_link(&self, rel: &Path) -> io::Result<Option<PathBuf>> {
        match fs::read_link(self.0.join(rel)) {
            Ok(t) => Ok(Some(t)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::InvalidInput
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn read_file(&self, rel: &Path, limit: u64) -> io::Result<Option<Vec<u8>>> {
        use std::io::Read;
        let p = self.0.join(rel);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_file() && m.len() <= limit => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
        let mut out = Vec::new();
        fs::File::open(&p)?.take(limit).read_to_end(&mut out)?;
        Ok(Some(out))
    }
}

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

/// Whether `rel` looks like a PostgreSQL data directory; returns its version.
pub(crate) async fn data_dir_version<T: Tree>(
    tree: &T,
    rel: &Path,
) -> Result<Option<String>, T::Error> {
    let Some(entries) = tree.list(rel).await? else {
        return Ok(None);
    };
    let has = |name: &str, kind: Kind| entries.iter().any(|e| e.name == name && e.kind == kind);
    if !has("PG_VERSION", Kind::File) || !has("global", Kind::Dir) {
        return Ok(None);
    }
    let Some(bytes) = tree.read_file(&rel.join("PG_VERSION"), 64).await? else {
        return Ok(None);
    };
    let version = String::from_utf8_lossy(&bytes).trim().to_owned();
    Ok((!version.is_empty()).then_some(version))
}

/// Locates PGDATA in `tree`. `Ok(None)` when it holds none.
///
/// # Errors
///
/// Reading the tree failed.
pub(crate) async fn locate<T: Tree>(tree: &T) -> Result<Option<Found>, T::Error> {
    if let Some(version) = data_dir_version(tree, Path::new("")).await? {
        return Ok(Some(Found {
            rel: PathBuf::new(),
            version,
        }));
    }
    if let Some(found) = follow_current(tree).await? {
        return Ok(Some(found));
    }
    let mut found = Vec::new();
    // Breadth-first, depth-bounded; a data directory's own subdirectories are never another data directory,
    // and symlinked directories are not descended into (they may point outside the snapshot).
    let mut level = vec![PathBuf::new()];
    for _ in 0..MAX_DEPTH {
        let mut next = Vec::new();
        for dir in level {
            for e in tree.list(&dir).await?.unwrap_or_default() {
                if e.kind != Kind::Dir {
                    continue;
                }
                let child = dir.join(&e.name);
                match data_dir_version(tree, &child).await? {
                    Some(version) => found.push(Found {
                        rel: child,
                        version,
                    }),
                    None => next.push(child),
                }
            }
        }
        level = next;
    }
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
async fn follow_current<T: Tree>(tree: &T) -> Result<Option<Found>, T::Error> {
    let mut candidates = vec![PathBuf::from("current")];
    for e in tree.list(Path::new("")).await?.unwrap_or_default() {
        if e.kind == Kind::Dir {
            candidates.push(PathBuf::from(e.name).join("current"));
        }
    }
    for link in candidates {
        let Some(target) = tree.read_link(&link).await? else {
            if let Some(version) = data_dir_version(tree, &link).await? {
                return Ok(Some(Found { rel: link, version }));
            }
            continue;
        };
        let base = link.parent().unwrap_or(Path::new(""));
        for rel in link_candidates(base, &target) {
            if let Some(version) = data_dir_version(tree, &rel).await? {
                return Ok(Some(Found { rel, version }));
            }
        }
    }
    Ok(None)
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn locate_in(root: &Path) -> Option<Found> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(locate(&LocalTree(root.to_path_buf())))
            .expect("locate")
    }

    fn pgdata(root: &Path, rel: &str, version: &str) {
        let dir = root.join(rel);
        fs::create_dir_all(dir.join("global")).expect("mkdir");
        fs::write(dir.join("PG_VERSION"), format!("{version}\n")).expect("write");
    }

    #[test]
    fn root_is_pgdata() {
        let t = tempfile::tempdir().expect("tempdir");
        pgdata(t.path(), "", "16");
        let f = locate_in(t.path()).expect("found");
        assert_eq!(f.rel, PathBuf::new());
        assert_eq!(f.version, "16");
    }

    #[test]
    fn current_symlink_wins_over_higher_versions() {
        let t = tempfile::tempdir().expect("tempdir");
        pgdata(t.path(), "15/main", "15");
        pgdata(t.path(), "17/main", "17");
        symlink("15/main", t.path().join("current")).expect("symlink");
        let f = locate_in(t.path()).expect("found");
        assert_eq!(f.rel, PathBuf::from("15/main"));
    }

    #[test]
    fn absolute_current_symlink_is_matched_by_suffix() {
        let t = tempfile::tempdir().expect("tempdir");
        pgdata(t.path(), "16/main", "16");
        symlink("/var/lib/postgresql/16/main", t.path().join("current")).expect("symlink");
        let f = locate_in(t.path()).expect("found");
        assert_eq!(f.rel, PathBuf::from("16/main"));
    }

    #[test]
    fn highest_major_is_chosen() {
        let t = tempfile::tempdir().expect("tempdir");
        pgdata(t.path(), "9.6/main", "9.6");
        pgdata(t.path(), "14/main", "14");
        pgdata(t.path(), "old/13", "13");
        let f = locate_in(t.path()).expect("found");
        assert_eq!(f.rel, PathBuf::from("14/main"));
    }

    #[test]
    fn no_pgdata_is_none() {
        let t = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(t.path().join("a/b")).expect("mkdir");
        fs::write(t.path().join("a/PG_VERSION"), "16").expect("write");
        assert_eq!(locate_in(t.path()), None);
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
