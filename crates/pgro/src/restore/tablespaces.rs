//! Tablespaces of a restored data directory. A `pg_tblspc/<oid>` link (or a `tablespace_map` line of a base
//! backup) names the *source's* absolute path; followed on the restore host it would serve, and write into,
//! whatever lives there — the source's own files when a restore runs beside production. So nothing outside
//! the restore's volume is ever used: each tablespace is matched to its copy inside the snapshot (the link
//! target's longest path suffix that exists there and holds a `PG_<major>_…` directory), found on the
//! snapshot's listing before the download, and relinked there afterwards with a relative link. A tablespace
//! the snapshot does not hold fails the restore.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::pgdata::{Kind, Tree, link_candidates};
use crate::postgres::catalog;

/// `tablespace_map` (written by a non-exclusive base backup); PostgreSQL recreates the links from it when it
/// starts from the backup's `backup_label`.
pub const TABLESPACE_MAP: &str = "tablespace_map";

/// One tablespace to relink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tablespace {
    /// Its OID (the `pg_tblspc` entry's name).
    pub oid: u32,
    /// Its name from `pg_tablespace`, when the catalog could be read.
    pub name: Option<String>,
    /// Where the source kept it (the link's target).
    pub location: PathBuf,
    /// Its copy, relative to the snapshot root.
    pub in_snapshot: PathBuf,
}

/// A tablespace in the restore's JSON result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mapping {
    /// OID.
    pub oid: u32,
    /// Name (`pg_tablespace.spcname`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The source's location.
    pub location: PathBuf,
    /// Where the copy is now.
    pub restored_to: PathBuf,
}

/// Why tablespaces cannot be planned.
#[derive(Debug)]
pub enum PlanError<E> {
    /// Reading the snapshot failed.
    Read(E),
    /// The snapshot does not hold a tablespace's files.
    Missing(Missing),
}

/// A tablespace the snapshot does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// OID.
    pub oid: u32,
    /// Name, when known.
    pub name: Option<String>,
    /// The source's location.
    pub location: PathBuf,
}

impl Missing {
    /// The message for people.
    pub fn message(&self) -> String {
        format!(
            "tablespace {} (OID {}) lives at {} on the source, and the snapshot does not hold that \
             directory: pgro never uses a path outside the restore's volume. Back up the tablespace with \
             the data directory (e.g. snapshot a directory holding both PGDATA and {}), or use a base \
             backup that includes it",
            self.name
                .as_deref()
                .map_or_else(|| "(name unknown)".to_string(), |n| format!("{n:?}")),
            self.oid,
            self.location.display(),
            self.location.display()
        )
    }
}

/// `tablespace_map` lines: `<oid> <path>`, the path with PostgreSQL's backslash escapes.
pub fn parse_map(text: &str) -> Vec<(u32, PathBuf)> {
    text.lines()
        .filter_map(|l| {
            let (oid, path) = l.split_once(' ')?;
            let mut out = String::new();
            let mut chars = path.chars();
            while let Some(c) = chars.next() {
                out.push(if c == '\\' { chars.next()? } else { c });
            }
            Some((oid.parse().ok()?, PathBuf::from(out)))
        })
        .collect()
}

/// The tablespaces of the data directory at `pgdata` (relative to the tree's root), each matched to its copy
/// in the tree. In-place tablespaces (directories in `pg_tblspc`) need nothing.
///
/// # Errors
/// Reading the tree failed, or a tablespace is not in it.
pub(crate) async fn plan<T: Tree>(
    tree: &T,
    pgdata: &Path,
    major: &str,
) -> Result<Vec<Tablespace>, PlanError<T::Error>> {
    let tblspc = pgdata.join("pg_tblspc");
    let mut links: Vec<(u32, PathBuf)> = Vec::new();
    for e in tree
        .list(&tblspc)
        .await
        .map_err(PlanError::Read)?
        .unwrap_or_default()
    {
        let Ok(oid) = e.name.parse::<u32>() else {
            continue;
        };
        if e.kind == Kind::Symlink
            && let Some(t) = tree
                .read_link(&tblspc.join(&e.name))
                .await
                .map_err(PlanError::Read)?
        {
            links.push((oid, t));
        }
    }
    if let Some(map) = tree
        .read_file(&pgdata.join(TABLESPACE_MAP), 1 << 20)
        .await
        .map_err(PlanError::Read)?
    {
        for (oid, path) in parse_map(&String::from_utf8_lossy(&map)) {
            links.retain(|(o, _)| *o != oid);
            links.push((oid, path));
        }
    }
    if links.is_empty() {
        return Ok(Vec::new());
    }
    let names = names(tree, pgdata).await;
    let version_prefix = format!("PG_{major}_");
    let mut out = Vec::new();
    for (oid, location) in links {
        let name = names
            .iter()
            .find(|(o, _)| *o == oid)
            .map(|(_, n)| n.clone());
        let mut found = None;
        for candidate in link_candidates(&tblspc, &location) {
            let entries = tree.list(&candidate).await.map_err(PlanError::Read)?;
            if entries.is_some_and(|es| {
                es.iter()
                    .any(|e| e.kind == Kind::Dir && e.name.starts_with(&version_prefix))
            }) {
                found = Some(candidate);
                break;
            }
        }
        let Some(in_snapshot) = found else {
            return Err(PlanError::Missing(Missing {
                oid,
                name,
                location,
            }));
        };
        out.push(Tablespace {
            oid,
            name,
            location,
            in_snapshot,
        });
    }
    out.sort_by_key(|t| t.oid);
    Ok(out)
}

/// Tablespace names from `pg_tablespace` (empty when the catalog cannot be read: names are for messages).
async fn names<T: Tree>(tree: &T, pgdata: &Path) -> Vec<(u32, String)> {
    let global = pgdata.join("global");
    let filenode = match tree.read_file(&global.join("pg_filenode.map"), 4096).await {
        Ok(Some(map)) => catalog::mapped_filenode(&map, catalog::PG_TABLESPACE),
        _ => None,
    }
    .unwrap_or(catalog::PG_TABLESPACE);
    match tree
        .read_file(&global.join(filenode.to_string()), 8 << 20)
        .await
    {
        Ok(Some(heap)) => catalog::oid_names(&heap),
        _ => Vec::new(),
    }
}

/// The link target that reaches `in_snapshot` from `<pgdata>/pg_tblspc`, both relative to the snapshot
/// root: relative, so it holds wherever the volume is mounted.
pub fn relative_target(pgdata: &Path, in_snapshot: &Path) -> PathBuf {
    let ups = pgdata.components().count() + 1;
    let mut p = PathBuf::new();
    for _ in 0..ups {
        p.push("..");
    }
    p.join(in_snapshot)
}

/// Points every `pg_tblspc/<oid>` of the restored `snapshot_dir/pgdata` at its copy and rewrites
/// `tablespace_map` the same way.
///
/// # Errors
/// A link or the map could not be written.
pub fn relink(snapshot_dir: &Path, pgdata: &Path, spaces: &[Tablespace]) -> std::io::Result<()> {
    if spaces.is_empty() {
        return Ok(());
    }
    let dir = snapshot_dir.join(pgdata);
    let tblspc = dir.join("pg_tblspc");
    std::fs::create_dir_all(&tblspc)?;
    for t in spaces {
        let link = tblspc.join(t.oid.to_string());
        match std::fs::symlink_metadata(&link) {
            Ok(m) if m.is_dir() => continue,
            Ok(_) => std::fs::remove_file(&link)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::os::unix::fs::symlink(relative_target(pgdata, &t.in_snapshot), &link)?;
    }
    let map = dir.join(TABLESPACE_MAP);
    if map.exists() {
        let text: String = spaces
            .iter()
            .map(|t| {
                let target = relative_target(pgdata, &t.in_snapshot);
                let escaped = target
                    .to_string_lossy()
                    .replace('\\', "\\\\")
                    .replace('\n', "\\\n");
                format!("{} {escaped}\n", t.oid)
            })
            .collect();
        let tmp = dir.join(format!("{TABLESPACE_MAP}.pgro-tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &map)?;
    }
    Ok(())
}

/// The JSON result's view of `spaces`, restored below `snapshot_dir`.
pub fn mappings(snapshot_dir: &Path, spaces: &[Tablespace]) -> Vec<Mapping> {
    spaces
        .iter()
        .map(|t| Mapping {
            oid: t.oid,
            name: t.name.clone(),
            location: t.location.clone(),
            restored_to: snapshot_dir.join(&t.in_snapshot),
        })
        .collect()
}

#[cfg(test)]
mod tests;
