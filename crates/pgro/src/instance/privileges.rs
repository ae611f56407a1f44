//! Running as the data directory's owner. PostgreSQL refuses to run as root. Started as root (the
//! official image's default), `pgro instance` does what that image's entrypoint does: a root-owned PGDATA is
//! given to the `--user` account (default `postgres`), then the process switches to PGDATA's owner for
//! good (setgroups, setgid, setuid) before anything else touches the directory. Started as another user,
//! it runs as that user and PostgreSQL checks the ownership itself.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::unistd::{Gid, Uid, User, setgid, setgroups, setuid};

use super::error::{Error, io};

/// Gives every entry under `root` (not following symlinks inside it) that `uid` does not own to `uid:gid`.
fn chown_tree(root: &Path, uid: u32, gid: u32) -> Result<(), Error> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).map_err(io("inspecting", &p))?;
        if meta.uid() != uid || meta.gid() != gid {
            std::os::unix::fs::lchown(&p, Some(uid), Some(gid))
                .map_err(io("changing the owner of", &p))?;
        }
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).map_err(io("listing", &p))? {
                stack.push(e.map_err(io("listing", &p))?.path());
            }
        }
    }
    Ok(())
}

/// When running as root, makes PGDATA, its `tablespaces` (and `extra_dirs`) belong to the PostgreSQL user and switches to it.
/// Returns the uid it switched to.
///
/// # Errors
/// The user does not exist, ownership cannot be changed, or the switch failed.
pub(crate) fn become_pgdata_owner(
    pgdata: &Path,
    user: &str,
    extra_dirs: &[&Path],
    tablespaces: &[std::path::PathBuf],
) -> Result<Option<u32>, Error> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    // PGDATA itself may be a symlink into the restored snapshot: follow it.
    let target = std::fs::canonicalize(pgdata).map_err(io("resolving", pgdata))?;
    let meta = std::fs::metadata(&target).map_err(io("inspecting", &target))?;
    let (uid, gid) = if meta.uid() == 0 {
        let u = User::from_name(user)
            .ok()
            .flatten()
            .ok_or_else(|| Error::UnknownUser {
                name: user.to_string(),
            })?;
        tracing::info!(
            user,
            uid = u.uid.as_raw(),
            "giving the root-owned data directory to the postgres user"
        );
        chown_tree(&target, u.uid.as_raw(), u.gid.as_raw())?;
        // Tablespaces live beside PGDATA in the volume (checked to be inside it).
        for t in tablespaces {
            chown_tree(t, u.uid.as_raw(), u.gid.as_raw())?;
        }
        (u.uid.as_raw(), u.gid.as_raw())
    } else {
        (meta.uid(), meta.gid())
    };
    for d in extra_dirs {
        std::os::unix::fs::lchown(d, Some(uid), Some(gid))
            .map_err(io("changing the owner of", *d))?;
    }
    let fail = |source| Error::Privileges { uid, source };
    setgroups(&[Gid::from_raw(gid)]).map_err(fail)?;
    setgid(Gid::from_raw(gid)).map_err(fail)?;
    setuid(Uid::from_raw(uid)).map_err(fail)?;
    tracing::info!(uid, gid, "running as the data directory's owner");
    Ok(Some(uid))
}
