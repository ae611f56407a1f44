//! Before PostgreSQL starts: every tablespace must resolve inside the restore's volume (`pgro restore`
//! relinks them there). A link to anywhere else — the source host's path, copied verbatim — would serve
//! and write whatever lives at that path on this host, so it is refused, never followed into.

use std::path::{Component, Path, PathBuf};

use super::error::{Error, io};

/// The volume a PGDATA belongs to: the directory holding the `data` link `pgro restore` made (or holding
/// PGDATA itself).
pub(crate) fn volume_of(pgdata: &Path) -> Result<PathBuf, Error> {
    let parent = pgdata.parent().unwrap_or(Path::new("/"));
    std::fs::canonicalize(parent).map_err(io("resolving", parent))
}

/// `p` with `.` and `..` resolved lexically.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Checks `pg_tblspc/*` and `tablespace_map`; returns each tablespace's directory (resolved).
///
/// # Errors
/// `TablespaceOutsideVolume` for a link or map entry that leaves the volume (or leads nowhere).
pub(crate) fn check(pgdata: &Path, volume: &Path) -> Result<Vec<PathBuf>, Error> {
    let tblspc = pgdata.join("pg_tblspc");
    let mut dirs = Vec::new();
    let outside = |oid: &str, target: PathBuf| Error::TablespaceOutsideVolume {
        oid: oid.to_string(),
        target,
        volume: volume.to_path_buf(),
    };
    let entries = match std::fs::read_dir(&tblspc) {
        Ok(e) => e.filter_map(Result::ok).collect::<Vec<_>>(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io("listing", &tblspc)(e)),
    };
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let link = e.path();
        let Ok(target) = std::fs::read_link(&link) else {
            continue; // an in-place tablespace (a directory inside PGDATA)
        };
        match std::fs::canonicalize(&link) {
            Ok(real) if real.starts_with(volume) => dirs.push(real),
            _ => return Err(outside(&name, target)),
        }
    }
    let map = pgdata.join(crate::restore::tablespaces::TABLESPACE_MAP);
    if let Ok(text) = std::fs::read_to_string(&map) {
        let base = std::fs::canonicalize(&tblspc).unwrap_or(tblspc);
        for (oid, path) in crate::restore::tablespaces::parse_map(&text) {
            let resolved = normalize(&base.join(&path));
            if !resolved.starts_with(volume) {
                return Err(outside(&oid.to_string(), path));
            }
        }
    }
    Ok(dirs)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn links_inside_the_volume_pass_and_others_are_refused() {
        let t = tempfile::tempdir().expect("tempdir");
        let vol = std::fs::canonicalize(t.path()).expect("canonicalize");
        let pgdata = vol.join("snapshot/data");
        std::fs::create_dir_all(pgdata.join("pg_tblspc")).expect("mkdir");
        std::fs::create_dir_all(vol.join("snapshot/ts1")).expect("mkdir");
        symlink("../../ts1", pgdata.join("pg_tblspc/16385")).expect("symlink");
        assert_eq!(
            check(&pgdata, &vol).expect("ok"),
            vec![vol.join("snapshot/ts1")]
        );

        let outside = tempfile::tempdir().expect("tempdir");
        symlink(outside.path(), pgdata.join("pg_tblspc/16386")).expect("symlink");
        assert!(matches!(
            check(&pgdata, &vol),
            Err(Error::TablespaceOutsideVolume { oid, .. }) if oid == "16386"
        ));
        std::fs::remove_file(pgdata.join("pg_tblspc/16386")).expect("rm");
        symlink("/nonexistent/ts", pgdata.join("pg_tblspc/16387")).expect("symlink");
        assert!(check(&pgdata, &vol).is_err(), "a dangling link is refused");
        std::fs::remove_file(pgdata.join("pg_tblspc/16387")).expect("rm");

        std::fs::write(pgdata.join("tablespace_map"), "16385 ../../ts1\n").expect("write");
        assert!(check(&pgdata, &vol).is_ok());
        std::fs::write(pgdata.join("tablespace_map"), "16385 /srv/prod/ts1\n").expect("write");
        assert!(check(&pgdata, &vol).is_err());
    }
}
