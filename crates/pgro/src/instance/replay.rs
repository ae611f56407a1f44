//! A logical restore (restic source): the instance initialises a fresh cluster in the volume and replays
//! the dump into it, streamed from the repository through pgro's filter into `psql` as the superuser
//! (barman-restic-format.md B4). Only then does the instance go on as for any restore (roles,
//! privileges, `_pgro.restore_info`, TCP).
//!
//! Layout in the volume: `data/` (PGDATA, a plain directory) and `logical/` — `state.json` (replaying,
//! done with its statistics, or failed with its report) and `tablespaces/<n>`. A replay interrupted by a
//! restart, or by storage that stayed unreachable through its retries, starts over from `initdb` when the
//! container restarts; a failed one is never run again: every later start fails at once with the same
//! report, which the operator reads from the container's termination message.

mod psql;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{Error, io};
use crate::restore::RestoreFailure;
use crate::source::open::SourceArgs;

/// The directory beside PGDATA that holds the replay's state and tablespaces.
const DIR: &str = "logical";
const STATE: &str = "state.json";
const TABLESPACES: &str = "tablespaces";

/// What the instance replays.
#[derive(Debug, Clone)]
pub(crate) struct Logical {
    /// The source and its Secret keys.
    pub(crate) source: SourceArgs,
    /// The restic snapshot (the restore's `spec.snapshot`).
    pub(crate) snapshot: String,
    /// Fail when any statement fails.
    pub(crate) fail_on_errors: bool,
    /// Where a single-database dump without `CREATE DATABASE` goes (the analytics database).
    pub(crate) database: String,
    /// Also write a failure report here (the container's termination message).
    pub(crate) termination_log: Option<PathBuf>,
}

/// A restic `--source`: what its replay needs (the snapshot is the restore's `--snapshot-id`).
pub(crate) fn logical_source(
    source: &Path,
    a: &super::InstanceArgs,
) -> Result<Option<Logical>, Error> {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
    let args = crate::source::open::SourceArgs {
        source: absolute(source),
        secret_dir: a.source_secret_dir.as_deref().map(absolute),
        storage_attempts: 10,
    };
    let spec = args.load().map_err(|e| Error::Replay {
        reason: "InvalidArguments",
        message: e.0,
    })?;
    let Some(r) = spec.restic else {
        return Ok(None);
    };
    let snapshot = a.snapshot_id.clone().ok_or(Error::MissingOption {
        option: "--snapshot-id",
        with: "a restic --source",
    })?;
    Ok(Some(Logical {
        source: args,
        snapshot,
        fail_on_errors: r.fail_on_errors,
        database: a.analytics_database.clone(),
        termination_log: a.termination_log.clone(),
    }))
}

/// The replay's outcome, kept in `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
enum State {
    Replaying,
    Done { replayed: pgro_api::DumpReplayed },
    Failed { failure: RestoreFailure },
}

/// Where the replay keeps its files.
#[derive(Debug, Clone)]
pub(crate) struct Dirs {
    logical: PathBuf,
    tablespaces: PathBuf,
}

impl Dirs {
    fn state(&self) -> PathBuf {
        self.logical.join(STATE)
    }

    fn tablespaces(&self) -> PathBuf {
        self.tablespaces.clone()
    }

    /// The directories the owner switch must hand over (with PGDATA).
    pub(crate) fn owned(&self) -> [&Path; 2] {
        [&self.logical, &self.tablespaces]
    }
}

/// Before the switch to PostgreSQL's user: `data/` and `logical/tablespaces/` exist in the volume (made
/// here while the process may still be root, so the switch gives them to that user).
///
/// # Errors
/// PGDATA is a link (not a directory this replay owns), or a directory cannot be made.
pub(crate) fn prepare_dirs(pgdata: &Path) -> Result<Dirs, Error> {
    use std::os::unix::fs::DirBuilderExt as _;
    if std::fs::symlink_metadata(pgdata).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Error::Replay {
            reason: "InvalidArguments",
            message: format!(
                "{} is a link: a logical restore replays into a data directory of its own; this volume holds a physical restore",
                pgdata.display()
            ),
        });
    }
    let volume = pgdata.parent().unwrap_or(Path::new("/"));
    let dirs = Dirs {
        logical: volume.join(DIR),
        tablespaces: volume.join(DIR).join(TABLESPACES),
    };
    for d in [pgdata.to_path_buf(), dirs.tablespaces()] {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&d)
            .map_err(io("creating", &d))?;
    }
    Ok(dirs)
}

/// Whether this start replays (a fresh or interrupted volume) — then PGDATA is emptied and initialised
/// here — or serves what an earlier start replayed.
///
/// # Errors
/// An earlier replay failed (its report again), or `initdb` fails.
pub(crate) fn ensure_cluster(pgdata: &Path, dirs: &Dirs, l: &Logical) -> Result<bool, Error> {
    let state = std::fs::read(dirs.state())
        .ok()
        .and_then(|b| serde_json::from_slice::<State>(&b).ok());
    match state {
        Some(State::Done { .. }) if pgdata.join("PG_VERSION").is_file() => return Ok(false),
        Some(State::Failed { failure }) => {
            report_failure(l, &failure);
            return Err(Error::Replay {
                reason: "DumpReplayFailed",
                message: format!("an earlier start's replay failed: {}", failure.message),
            });
        }
        _ => {}
    }
    // Fresh, or interrupted part-way: nothing of an unfinished replay is trusted.
    for d in [pgdata, &dirs.tablespaces()] {
        empty_dir(d)?;
    }
    write_state(dirs, &State::Replaying)?;
    super::binaries::find_on_path("initdb", &std::env::var("PATH").unwrap_or_default())
        .ok_or_else(|| Error::Replay {
            reason: "InvalidArguments",
            message: "initdb is not on PATH: run the instance in the PostgreSQL image of the dump's major"
                .into(),
        })?;
    let nss = nss_wrapper(dirs)?;
    let out = super::reaper::run_tool(
        std::process::Command::new("initdb")
            .envs(nss.iter().map(|(k, v)| (k, v)))
            .arg("-D")
            .arg(pgdata)
            .args([
                "--username=postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--data-checksums",
            ])
            .env("LC_ALL", "C"),
    )
    .map_err(|source| Error::Spawn {
        program: "initdb",
        source,
    })?;
    if !out.status.success() {
        return Err(Error::ToolFailed {
            program: "initdb",
            status: out.status,
            output: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    tracing::info!(pgdata = %pgdata.display(), "fresh cluster initialised for the dump");
    Ok(true)
}

/// Where images keep libnss_wrapper (the official postgres images ship it for arbitrary uids).
const NSS_WRAPPER_LIBS: &[&str] = &[
    "/usr/lib/libnss_wrapper.so",
    "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so",
    "/usr/lib/aarch64-linux-gnu/libnss_wrapper.so",
    "/usr/lib64/libnss_wrapper.so",
];

/// initdb (and psql's defaults) need a user name for the effective uid. Run under a uid the image's
/// `/etc/passwd` lacks (OpenShift's arbitrary uids, a `postgresUid` not in the image), they get one
/// from libnss_wrapper, as the official image's entrypoint does: the environment for the tools, empty
/// when the uid has an entry.
///
/// # Errors
/// The uid has no entry and the image has no libnss_wrapper.
pub(crate) fn nss_wrapper(dirs: &Dirs) -> Result<Vec<(String, String)>, Error> {
    let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    if nix::unistd::User::from_uid(uid).ok().flatten().is_some() {
        return Ok(Vec::new());
    }
    let Some(lib) = NSS_WRAPPER_LIBS.iter().find(|l| Path::new(l).is_file()) else {
        return Err(Error::Replay {
            reason: "InvalidArguments",
            message: format!(
                "uid {uid} has no /etc/passwd entry and the image has no libnss_wrapper: initdb needs a user \
                 name. Run as the image's postgres user, or use an image with libnss_wrapper (the official \
                 postgres images have it)"
            ),
        });
    };
    let passwd = dirs.logical.join("passwd");
    let group = dirs.logical.join("group");
    std::fs::write(
        &passwd,
        format!("postgres:x:{uid}:{gid}:PostgreSQL:/var/lib/postgresql:/bin/false\n"),
    )
    .map_err(io("writing", &passwd))?;
    std::fs::write(&group, format!("postgres:x:{gid}:\n")).map_err(io("writing", &group))?;
    tracing::info!(%uid, lib, "no passwd entry for this uid: initdb and psql run with libnss_wrapper");
    Ok(vec![
        ("LD_PRELOAD".into(), (*lib).to_owned()),
        ("NSS_WRAPPER_PASSWD".into(), passwd.display().to_string()),
        ("NSS_WRAPPER_GROUP".into(), group.display().to_string()),
    ])
}

/// Removes everything inside `dir` (not following links out of it).
fn empty_dir(dir: &Path) -> Result<(), Error> {
    for e in std::fs::read_dir(dir).map_err(io("listing", dir))? {
        let p = e.map_err(io("listing", dir))?.path();
        let is_dir = std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir());
        if is_dir {
            std::fs::remove_dir_all(&p).map_err(io("removing", &p))?;
        } else {
            std::fs::remove_file(&p).map_err(io("removing", &p))?;
        }
    }
    Ok(())
}

fn write_state(dirs: &Dirs, state: &State) -> Result<(), Error> {
    let path = dirs.state();
    let tmp = path.with_extension("tmp");
    let json = serde_json::to_vec(state).unwrap_or_default();
    std::fs::write(&tmp, json).map_err(io("writing", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io("writing", &path))
}

/// The statistics of the replay an earlier start finished, if any.
pub(crate) fn replayed(dirs: &Dirs) -> Option<pgro_api::DumpReplayed> {
    match serde_json::from_slice(&std::fs::read(dirs.state()).ok()?).ok()? {
        State::Done { replayed } => Some(replayed),
        _ => None,
    }
}

/// The failure report on the termination log.
fn report_failure(l: &Logical, failure: &RestoreFailure) {
    if let Some(path) = &l.termination_log {
        let json = serde_json::to_string(failure).unwrap_or_default();
        if let Err(e) = std::fs::write(path, json) {
            tracing::warn!("writing the termination log {} failed: {e}", path.display());
        }
    }
}

/// Replays the dump into the running cluster (superuser `su` on the private socket) and records the
/// outcome; a failure is recorded too, so no later start replays again.
///
/// # Errors
/// The replay failed, by `failOnErrors` or because it could not run to its end.
pub(crate) async fn run(
    l: &Logical,
    dirs: &Dirs,
    conn: &psql::Conn<'_>,
    client: &tokio_postgres::Client,
) -> Result<pgro_api::DumpReplayed, Error> {
    let nss = nss_wrapper(dirs)?;
    let outcome = psql::replay(l, &dirs.tablespaces(), conn, client, &nss).await;
    let failure = match outcome {
        Ok(r) if r.failed == 0 || !l.fail_on_errors => {
            write_state(
                dirs,
                &State::Done {
                    replayed: r.clone(),
                },
            )?;
            return Ok(r);
        }
        Ok(r) => RestoreFailure {
            error: pgro_api::condition_reasons::STATEMENTS_FAILED.into(),
            message: format!(
                "{} of {} statements of the dump failed (failOnErrors; set source.restic.failOnErrors: false to serve such a copy): {}",
                r.failed,
                r.statements,
                r.first_errors.join("; ")
            ),
            exit_code: EXIT_REPLAY,
        },
        Err(f) => f,
    };
    let failure = RestoreFailure {
        message: crate::restore::truncate(&failure.message, 3800),
        ..failure
    };
    if failure.error == crate::cli::exit::Failure::Unreachable.reason() {
        // The storage failed (after its retries): nothing is recorded, so the restarted container
        // replays again from initdb; the restore's ready timeout bounds an outage that lasts.
        tracing::warn!(
            "the repository could not be read; the replay starts over when the container restarts: {}",
            failure.message
        );
        return Err(Error::Replay {
            reason: "StorageUnreachable",
            message: failure.message,
        });
    }
    write_state(
        dirs,
        &State::Failed {
            failure: failure.clone(),
        },
    )?;
    report_failure(l, &failure);
    Err(Error::Replay {
        reason: "DumpReplayFailed",
        message: failure.message,
    })
}

/// The instance's exit code for a failed replay.
pub(crate) const EXIT_REPLAY: u8 = 7;

pub(crate) use psql::Conn;
