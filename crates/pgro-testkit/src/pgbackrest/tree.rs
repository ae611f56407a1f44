//! Digests of directory trees, and their differences.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, ensure};
use sha2::{Digest as _, Sha256};

/// What [`tree_digest`] records for one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// A directory.
    Dir,
    /// A regular file.
    File {
        /// Its size in bytes.
        size: u64,
        /// SHA-256 of its content, lowercase hex.
        sha256: String,
    },
    /// A symbolic link, with its target after the caller's rewrite.
    Symlink(PathBuf),
}

/// One entry of a [`tree_digest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Kind and content.
    pub kind: NodeKind,
    /// Permission bits (`mode & 0o7777`; of the link itself for symlinks).
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Owner (uid, gid).
    pub owner: (u32, u32),
}

/// Every path under `root` (relative, `root` itself excluded) with its kind, mode, mtime, owner and, for
/// files, size and SHA-256. Symlinks are recorded with their target passed through `link_target` (e.g.
/// to make tablespace targets relative: two restores put them in different places), and a symlink to a
/// directory is also followed, its contents recorded under the link's path
/// (`pg_tblspc/16384/PG_15_…/5/16390`), so tablespaces and a `pg_wal` link are compared too. Entries
/// that vanish during the walk are skipped (a repository that `archive-push` is writing to).
///
/// # Errors
/// A path cannot be read.
pub fn tree_digest(
    root: &Path,
    link_target: &dyn Fn(&Path) -> PathBuf,
) -> anyhow::Result<BTreeMap<PathBuf, Node>> {
    let mut out = BTreeMap::new();
    walk(root, Path::new(""), link_target, &mut out, 0)?;
    Ok(out)
}

fn walk(
    dir: &Path,
    rel: &Path,
    link_target: &dyn Fn(&Path) -> PathBuf,
    out: &mut BTreeMap<PathBuf, Node>,
    depth: usize,
) -> anyhow::Result<()> {
    ensure!(
        depth < 64,
        "{} is nested too deep (a link loop?)",
        dir.display()
    );
    // Entries may vanish while we look (in a live repository archive-push renames its
    // `.pgbackrest.tmp` files): skip those.
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    let entries = match std::fs::read_dir(dir) {
        Err(e) if depth > 0 && gone(&e) => return Ok(()),
        entries => entries.with_context(|| format!("reading {}", dir.display()))?,
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let name = rel.join(entry.file_name());
        let meta = match std::fs::symlink_metadata(&path) {
            Err(e) if gone(&e) => continue,
            meta => meta.with_context(|| format!("stat {}", path.display()))?,
        };
        let kind = if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path)?;
            if path.is_dir() {
                walk(&path, &name, link_target, out, depth + 1)?;
            }
            NodeKind::Symlink(link_target(&target))
        } else if meta.is_dir() {
            walk(&path, &name, link_target, out, depth + 1)?;
            NodeKind::Dir
        } else {
            let mut file = match std::fs::File::open(&path) {
                Err(e) if gone(&e) => continue,
                file => file.with_context(|| format!("opening {}", path.display()))?,
            };
            let mut hasher = Sha256::new();
            std::io::copy(&mut file, &mut hasher)?;
            NodeKind::File {
                size: meta.len(),
                sha256: hex(&hasher.finalize()),
            }
        };
        out.insert(
            name,
            Node {
                kind,
                mode: meta.mode() & 0o7777,
                mtime: meta.mtime(),
                owner: (meta.uid(), meta.gid()),
            },
        );
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// What to compare in [`tree_diff`] besides presence, kind, content and link targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffOptions {
    /// Compare permission bits.
    pub mode: bool,
    /// Compare modification times (of files only; directories' change as files are created).
    pub mtime: bool,
    /// Compare owners.
    pub owner: bool,
}

/// The differences between two digests, one human-readable line each (empty: equal).
pub fn tree_diff(
    a: &BTreeMap<PathBuf, Node>,
    b: &BTreeMap<PathBuf, Node>,
    options: DiffOptions,
) -> Vec<String> {
    let mut diffs = Vec::new();
    for (path, x) in a {
        let Some(y) = b.get(path) else {
            diffs.push(format!("only in the first: {}", path.display()));
            continue;
        };
        if x.kind != y.kind {
            diffs.push(format!("{}: {:?} != {:?}", path.display(), x.kind, y.kind));
        }
        if options.mode && x.mode != y.mode {
            diffs.push(format!(
                "{}: mode {:o} != {:o}",
                path.display(),
                x.mode,
                y.mode
            ));
        }
        let file = matches!(x.kind, NodeKind::File { .. });
        if options.mtime && file && x.mtime != y.mtime {
            diffs.push(format!(
                "{}: mtime {} != {}",
                path.display(),
                x.mtime,
                y.mtime
            ));
        }
        if options.owner && x.owner != y.owner {
            diffs.push(format!(
                "{}: owner {:?} != {:?}",
                path.display(),
                x.owner,
                y.owner
            ));
        }
    }
    for path in b.keys().filter(|p| !a.contains_key(*p)) {
        diffs.push(format!("only in the second: {}", path.display()));
    }
    diffs
}
