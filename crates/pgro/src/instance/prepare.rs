//! Data directory preparation, one step per function, each taking the directory so it can be tested on a
//! temp dir: permissions, a stale `postmaster.pid`, recovery files, and the managed configuration files.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::conf::{self, FlattenNote, FsConfFiles, PgroSettings, Setting};
use super::error::{Error, io};
use super::hba;

/// Names of the files pgro manages or keeps inside PGDATA.
pub(crate) const CONF: &str = "postgresql.conf";
pub(crate) const CONF_SOURCE: &str = "postgresql.conf.source";
pub(crate) const AUTO_CONF: &str = "postgresql.auto.conf";
pub(crate) const AUTO_CONF_SOURCE: &str = "postgresql.auto.conf.source";
pub(crate) const PGRO_CONF: &str = "postgresql.pgro.conf";
pub(crate) const HBA: &str = "pg_hba.conf";
/// `ident_file` defaults to this; a Debian-layout source keeps its own outside PGDATA.
pub(crate) const IDENT: &str = "pg_ident.conf";

/// Checks that `pgdata` is a data directory, makes it 0700 (PostgreSQL refuses anything looser) and
/// returns its major version from `PG_VERSION`.
///
/// # Errors
/// `NotDataDir`, or the permissions cannot be set.
pub(crate) fn check_pgdata(pgdata: &Path) -> Result<u32, Error> {
    let major = std::fs::read_to_string(pgdata.join("PG_VERSION"))
        .ok()
        .and_then(|v| {
            v.trim()
                .split('.')
                .next()
                .and_then(|m| m.parse::<u32>().ok())
        })
        .ok_or_else(|| Error::NotDataDir {
            path: pgdata.to_path_buf(),
        })?;
    let control = pgdata.join("global/pg_control");
    if !control.is_file() {
        return Err(Error::MissingControlFile { path: control });
    }
    std::fs::set_permissions(pgdata, std::fs::Permissions::from_mode(0o700))
        .map_err(io("setting permissions of", pgdata))?;
    Ok(major)
}

/// Removes a `postmaster.pid` left by a postmaster that is gone (a restarted container, a copied
/// directory). A live `postgres` process with that pid is an error: two servers on one directory.
///
/// # Errors
/// `AlreadyRunning`, or the file cannot be removed.
pub(crate) fn remove_stale_pid(
    pgdata: &Path,
    is_live_postgres: impl Fn(i32) -> bool,
) -> Result<bool, Error> {
    let path = pgdata.join("postmaster.pid");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(false);
    };
    if let Some(pid) = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok())
        && pid != std::process::id() as i32
        && is_live_postgres(pid)
    {
        return Err(Error::AlreadyRunning {
            pid,
            path: pgdata.to_path_buf(),
        });
    }
    std::fs::remove_file(&path).map_err(io("removing", &path))?;
    Ok(true)
}

/// Whether `pid` is a live process named `postgres` (from `/proc`).
pub(crate) fn is_live_postgres(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres")
}

/// What happens to `recovery.signal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecoverySignal {
    /// Moved aside with the other recovery files: a copy never follows a primary or an archive.
    Remove,
    /// Kept, and created when missing: a WAL-archive restore replays the source's archive, then promotes.
    Keep,
}

/// The name PostgreSQL looks for to start archive recovery.
pub(crate) const RECOVERY_SIGNAL: &str = "recovery.signal";

/// Renames the files that would make PostgreSQL wait for a primary or an archive
/// (`<name>.pgro-removed`), except `recovery.signal` with [`RecoverySignal::Keep`], which is created if
/// missing; returns the names it moved.
///
/// # Errors
/// A rename or the write failed.
pub(crate) fn remove_recovery_files(
    pgdata: &Path,
    signal: RecoverySignal,
) -> Result<Vec<&'static str>, Error> {
    let mut moved = Vec::new();
    for name in super::recovery::RECOVERY_FILES {
        let p = pgdata.join(name);
        match signal {
            RecoverySignal::Keep if *name == RECOVERY_SIGNAL => {
                if !p.exists() {
                    install_if_changed(&p, "")?;
                }
                continue;
            }
            RecoverySignal::Keep | RecoverySignal::Remove => {}
        }
        if p.exists() {
            let to = pgdata.join(format!("{name}.pgro-removed"));
            std::fs::rename(&p, &to).map_err(io("renaming", &p))?;
            moved.push(*name);
        }
    }
    Ok(moved)
}

/// Writes `contents` to `path` unless it already holds exactly that: a temp file, fsync, rename.
/// Returns whether it wrote.
///
/// # Errors
/// Any I/O failure.
pub(crate) fn install_if_changed(path: &Path, contents: &str) -> Result<bool, Error> {
    if std::fs::read(path).is_ok_and(|old| old == contents.as_bytes()) {
        return Ok(false);
    }
    let tmp = path.with_extension("pgro-tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(io("writing", path))?;
    Ok(true)
}

use std::os::unix::fs::OpenOptionsExt;

/// Keeps the source's `postgresql.conf` and `postgresql.auto.conf` as `*.source` the first time (an empty
/// `.source` when the source had none), so every later start derives the managed files from the same
/// input and produces the same bytes.
///
/// # Errors
/// Any I/O failure.
pub(crate) fn keep_sources(pgdata: &Path) -> Result<(), Error> {
    if pgdata.join(CONF_SOURCE).exists() {
        return Ok(());
    }
    // The auto file first: the main `.source` marks the step as done.
    for (name, source) in [(AUTO_CONF, AUTO_CONF_SOURCE), (CONF, CONF_SOURCE)] {
        let from = pgdata.join(name);
        let to = pgdata.join(source);
        if from.exists() {
            std::fs::rename(&from, &to).map_err(io("renaming", &from))?;
        } else {
            install_if_changed(&to, "")?;
        }
    }
    Ok(())
}

/// The source's settings: `postgresql.conf.source` (with its includes) then `postgresql.auto.conf.source`,
/// kept first by [`keep_sources`]; and what flattening tolerated, for the log.
///
/// # Errors
/// Any I/O failure.
pub(crate) fn read_source(pgdata: &Path) -> Result<(Vec<Setting>, Vec<FlattenNote>), Error> {
    keep_sources(pgdata)?;
    let mut notes = Vec::new();
    let mut source = Vec::new();
    for name in [CONF_SOURCE, AUTO_CONF_SOURCE] {
        let path = pgdata.join(name);
        source
            .extend(conf::flatten(&FsConfFiles, &path, &mut notes).map_err(io("reading", &path))?);
    }
    Ok((source, notes))
}

/// Renders and installs `postgresql.conf` (from `source`, [`read_source`]), `postgresql.pgro.conf`, the
/// reset `postgresql.auto.conf` and `pg_hba.conf` (manager-only access).
///
/// # Errors
/// Any I/O failure.
pub(crate) fn install_config(
    pgdata: &Path,
    source: &[Setting],
    settings: &PgroSettings,
    extra: Option<&str>,
) -> Result<(), Error> {
    install_if_changed(
        &pgdata.join(CONF),
        &conf::render_main(source, PGRO_CONF, &|p: &Path| p.exists()),
    )?;
    install_if_changed(&pgdata.join(PGRO_CONF), &conf::render_pgro(settings, extra))?;
    install_if_changed(&pgdata.join(AUTO_CONF), conf::AUTO_CONF)?;
    install_if_changed(&pgdata.join(HBA), &hba::render(hba::Access::ManagerOnly))?;
    // No user map is used (pg_hba.conf names none), but PostgreSQL reads the file at every start and logs
    // an error when it is missing.
    if !pgdata.join(IDENT).exists() {
        install_if_changed(
            &pgdata.join(IDENT),
            "# Written by pgro instance: no user name maps.\n",
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
