//! Starting PostgreSQL: `pg_controldata`, the I1 `pg_resetwal` fallback of a copy whose WAL cannot reach
//! consistency, and waiting until the server accepts a superuser on the private socket and has left
//! recovery.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio_postgres::Client;

use super::error::{self, Error};
use super::postmaster::Postmaster;
use super::{Config, archive, db, metadata, reaper, recovery, roles, wait_shutdown};

/// How a start ended.
pub(super) enum Started {
    /// PostgreSQL accepts the superuser `su` on the private socket and is out of recovery.
    Accepting {
        pm: Postmaster,
        client: Client,
        su: String,
    },
    /// A shutdown was requested first.
    Shutdown(Postmaster),
}

/// Starts PostgreSQL and waits until it serves. A copy whose log shows that recovery cannot reach
/// consistency is reset with `pg_resetwal` once and started again (I1), except a WAL-archive restore
/// (`--source`): a gap in its archive fails the start, naming what `restore_command` reported.
/// `archive_recovery`: this start replays an archive with `hot_standby = off`, so nobody can connect
/// before promotion and connecting is not even tried until the postmaster reports `ready`.
///
/// # Errors
/// `StartupFailed` and whatever starting or resetting met.
pub(super) async fn start(
    cfg: &Config,
    archive_recovery: bool,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Started, Error> {
    let mut reset_done = false;
    loop {
        let mut pm = Postmaster::spawn(&cfg.pgdata)?;
        reaper::POSTMASTER.store(pm.pid(), Ordering::SeqCst);
        match wait_accepting(&mut pm, cfg, archive_recovery, shutdown).await? {
            Startup::Accepting(client, su) => return Ok(Started::Accepting { pm, client, su }),
            Startup::Shutdown => return Ok(Started::Shutdown(pm)),
            Startup::Exited(status) => {
                let log = pm.log_tail();
                if cfg.archive.is_some() {
                    return Err(Error::StartupFailed {
                        status,
                        summary: archive::startup_summary(&log),
                    });
                }
                match recovery::unreachable_consistency(&log) {
                    Some(reason) if !reset_done => {
                        reset_wal(&cfg.pgdata, &reason)?;
                        reset_done = true;
                    }
                    Some(_) | None => {
                        return Err(Error::StartupFailed {
                            status,
                            summary: recovery::startup_summary(&log),
                        });
                    }
                }
            }
        }
    }
}

/// `pg_controldata`'s output, when that tool is on PATH (it is optional for a Kopia restore: the decision
/// only uses it to tell a clean shutdown from a crash, for the log).
pub(super) fn controldata(pgdata: &Path) -> Option<String> {
    let out = reaper::run_tool(
        std::process::Command::new("pg_controldata")
            .arg(pgdata)
            .env("LC_ALL", "C"),
    )
    .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// I1 fallback: recovery cannot reach consistency with the WAL in the directory. Recorded first (pending
/// file), then `backup_label` moved aside (it would send PostgreSQL back to the missing checkpoint) and
/// `pg_resetwal -f`.
fn reset_wal(pgdata: &Path, reason: &str) -> Result<(), Error> {
    tracing::warn!(
        reason,
        "WARNING: recovery cannot reach a consistent state (WAL missing); resetting WAL with pg_resetwal -f. \
         The data may be inconsistent; a full reindex follows and the fix is recorded in _pgro.restore_info.fixes"
    );
    let label = pgdata.join("backup_label");
    let had_label = label.exists();
    metadata::add_pending(
        pgdata,
        serde_json::json!({
            "fix": "pg_resetwal",
            "reason": reason,
            "backupLabelRemoved": had_label,
            "at": jiff::Timestamp::now().to_string(),
        }),
    )?;
    if had_label {
        std::fs::rename(&label, pgdata.join("backup_label.pgro-removed"))
            .map_err(error::io("renaming", &label))?;
    }
    let out = reaper::run_tool(
        std::process::Command::new("pg_resetwal")
            .arg("-f")
            .arg("-D")
            .arg(pgdata)
            .env("LC_ALL", "C"),
    )
    .map_err(|source| Error::Spawn {
        program: "pg_resetwal",
        source,
    })?;
    if !out.status.success() {
        return Err(Error::ToolFailed {
            program: "pg_resetwal",
            status: out.status,
            output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

enum Startup {
    Accepting(Client, String),
    Exited(std::process::ExitStatus),
    Shutdown,
}

/// Waits until PostgreSQL accepts a superuser connection on the private socket and has left recovery
/// (however long recovery takes), it exits, or a shutdown is requested.
async fn wait_accepting(
    pm: &mut Postmaster,
    cfg: &Config,
    archive_recovery: bool,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Startup, Error> {
    let mut in_recovery_logged = false;
    loop {
        tokio::select! {
            s = pm.wait() => return Ok(Startup::Exited(s.map_err(error::io("waiting for", "postgres"))?)),
            _ = wait_shutdown(shutdown) => return Ok(Startup::Shutdown),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        // Every refused connection is a FATAL line in the server log: during a long replay, ask the
        // postmaster's status first.
        if archive_recovery && !postmaster_ready(&cfg.pgdata) {
            continue;
        }
        if let Some((c, su)) = connect_superuser(cfg, "postgres").await? {
            // A failed check (the server going away) counts as "not yet": its exit is caught above.
            let recovering = c
                .query_one("SELECT pg_is_in_recovery()", &[])
                .await
                .map_or(true, |r| r.get::<_, bool>(0));
            if !recovering {
                return Ok(Startup::Accepting(c, su));
            }
            if !in_recovery_logged {
                tracing::info!(
                    "postgres accepts connections but is still in recovery; waiting for promotion"
                );
                in_recovery_logged = true;
            }
        }
    }
}

/// Whether `postmaster.pid` reports `ready` (its 8th line, PostgreSQL ≥ 10): accepting connections as a
/// primary. A file without that line counts as ready, so the connection attempt decides.
fn postmaster_ready(pgdata: &Path) -> bool {
    std::fs::read_to_string(pgdata.join("postmaster.pid"))
        .is_ok_and(|t| t.lines().nth(7).is_none_or(|s| s.trim() == "ready"))
}

/// Tries the superuser names a restored cluster may have: ours (from an earlier start), the conventional
/// `postgres`, and the OS user's name (initdb's default). `None` while the server is not accepting yet.
async fn connect_superuser(cfg: &Config, dbname: &str) -> Result<Option<(Client, String)>, Error> {
    let os_user = nix::unistd::User::from_uid(nix::unistd::Uid::effective())
        .ok()
        .flatten()
        .map(|u| u.name);
    // The bootstrap superuser (OID 10, read from pg_authid's file) first, so the first start does not log
    // a failed login for a role that does not exist yet.
    let mut candidates: Vec<String> = Vec::new();
    for c in [
        recovery::bootstrap_superuser(&cfg.pgdata),
        Some("postgres".to_string()),
        os_user,
        Some(roles::ADMIN_ROLE.to_string()),
    ]
    .into_iter()
    .flatten()
    {
        if !candidates.contains(&c) {
            candidates.push(c);
        }
    }
    for user in &candidates {
        for db in [dbname, "template1"] {
            match db::connect(&cfg.socket_dir, cfg.port, user, db).await {
                Ok(c) => {
                    let su = c
                        .query_one(
                            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
                            &[],
                        )
                        .await
                        .map_err(error::sql("checking the superuser"))?;
                    if su.get::<_, bool>(0) {
                        return Ok(Some((c, user.clone())));
                    }
                    break;
                }
                // 3D000: no such database → try template1; 28000/28P01: no such role → next name.
                Err(e) if db::sqlstate(&e) == Some("3D000") => continue,
                Err(e) if matches!(db::sqlstate(&e), Some("28000" | "28P01")) => break,
                // Not accepting yet (57P03), no socket yet, or any transient failure.
                Err(_) => return Ok(None),
            }
        }
    }
    Err(Error::NoSuperuser {
        tried: candidates.join(", "),
    })
}
