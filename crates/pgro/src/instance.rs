//! `pgro instance`: the PostgreSQL container's entrypoint (behaviour I1–I7).
//!
//! One run: switch to the data directory's owner → prepare files (permissions, stale pid, recovery files
//! moved aside, managed configuration, manager-only `pg_hba.conf`) → start `postgres` (TCP closed by
//! `pg_hba.conf`) and let it reach consistency, falling back to `pg_resetwal -f` only when its log shows
//! the WAL needed is missing → locales, roles, privileges, `_pgro.restore_info`, reindexing over the
//! private socket → open TCP (scram-sha-256) and report ready → supervise until PostgreSQL exits or a
//! SIGTERM/SIGINT asks for a fast shutdown; PostgreSQL's exit code becomes ours.
//!
//! A WAL-archive restore (`--source`) differs ([`archive`]): `recovery.signal` stays, the recovery settings
//! are rendered for this pod (`restore_command` = this executable's `wal-fetch`), the archive is checked
//! for the backup's first WAL segment before PostgreSQL starts, recovery replays to the target and
//! promotes before anyone can connect, `pg_resetwal` is never used, and the replay is recorded.

mod archive;
mod binaries;
mod conf;
mod db;
mod error;
mod grants;
mod guard;
mod hba;
mod health;
mod locale;
mod memory;
mod metadata;
mod postmaster;
mod prepare;
mod privileges;
mod reaper;
mod recovery;
mod replay;
mod roles;
mod scram;
mod startup;
mod tablespaces;
mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio_postgres::Client;

pub use error::Error;

use crate::restore::recovery_settings::RecoveryTarget;
use metadata::Stage;
use postmaster::Postmaster;

/// `pgro instance` arguments.
#[derive(Debug, clap::Args)]
pub struct InstanceArgs {
    /// The restored data directory.
    #[arg(long, env = "PGDATA")]
    pub pgdata: PathBuf,
    /// Enforce read-only access for the analytics role by privileges.
    #[arg(long, env = "PGRO_READ_ONLY")]
    pub read_only: bool,
    /// The analytics role to create or update.
    #[arg(long, env = "PGRO_ANALYTICS_USER")]
    pub analytics_user: Option<String>,
    /// File holding the analytics role's password.
    #[arg(long, env = "PGRO_ANALYTICS_PASSWORD_FILE")]
    pub analytics_password_file: Option<PathBuf>,
    /// The analytics role's database (also gets `_pgro.restore_info`).
    #[arg(long, env = "PGRO_ANALYTICS_DATABASE", default_value = "postgres")]
    pub analytics_database: String,
    /// File holding the password of `pgro_admin`, the operator's superuser (scram over TCP).
    #[arg(long, env = "PGRO_ADMIN_PASSWORD_FILE")]
    pub admin_password_file: Option<PathBuf>,
    /// PostgreSQL settings appended last (postgresExtraConfig), in postgresql.conf syntax.
    #[arg(long, env = "PGRO_EXTRA_CONFIG_FILE", conflicts_with = "extra_config")]
    pub extra_config_file: Option<PathBuf>,
    /// The same as `--extra-config-file`, given inline (the operator passes the replica's
    /// `postgresExtraConfig` this way).
    #[arg(long, env = "PGRO_EXTRA_CONFIG")]
    pub extra_config: Option<String>,
    /// Schemas the analytics role owns and may write even with `--read-only` (created in the analytics
    /// database when missing).
    #[arg(
        long = "persistent-schema",
        env = "PGRO_PERSISTENT_SCHEMAS",
        value_delimiter = ','
    )]
    pub persistent_schemas: Vec<String>,
    /// The snapshot this data directory came from (recorded in `_pgro.restore_info`).
    #[arg(long, env = "PGRO_SNAPSHOT_ID")]
    pub snapshot_id: Option<String>,
    /// The snapshot's time (RFC 3339; recorded in `_pgro.restore_info`).
    #[arg(long, env = "PGRO_SNAPSHOT_TIME")]
    pub snapshot_time: Option<String>,
    /// PostgreSQL's TCP port.
    #[arg(long, env = "PGRO_PORT", default_value_t = 5432)]
    pub port: u16,
    /// PostgreSQL's `listen_addresses`.
    #[arg(long, default_value = "*")]
    pub listen_addresses: String,
    /// Private directory for PostgreSQL's Unix socket (created 0700; only the manager uses it).
    #[arg(long, default_value = "/tmp/pgro")]
    pub socket_dir: PathBuf,
    /// Address of the HTTP probes (`/livez`, `/readyz`).
    #[arg(long, env = "PGRO_PROBE_ADDRESS", default_value = "0.0.0.0:8008")]
    pub probe_address: SocketAddr,
    /// When started as root with a root-owned PGDATA: the account it is given to and run as.
    #[arg(long, default_value = "postgres")]
    pub user: String,
    /// Where this process's cgroup is mounted (memory limit → shared_buffers).
    #[arg(long, default_value = "/sys/fs/cgroup", hide = true)]
    pub cgroup_root: PathBuf,
    /// The replica's `spec.source` object as YAML, as mounted in the pod, for a WAL-archive source
    /// (pgBackRest): the data directory is a `pgro restore --source` restore that replays the source's
    /// archive through this executable's `wal-fetch`, then promotes.
    #[arg(long, env = "PGRO_SOURCE")]
    pub source: Option<PathBuf>,
    /// Directory holding the source Secret's keys as files, as mounted in the pod.
    #[arg(long, env = "PGRO_SOURCE_SECRET_DIR", requires = "source")]
    pub source_secret_dir: Option<PathBuf>,
    /// Where recovery from the archive stops: `latest` (all archived WAL, the default) or `consistent`
    /// (the backup's end).
    #[arg(long, env = "PGRO_RECOVERY_TARGET", value_enum, requires = "source")]
    pub recovery_target: Option<RecoveryTarget>,
    /// Also write why a logical replay failed here (the container's `terminationMessagePath`).
    #[arg(long, env = "PGRO_TERMINATION_LOG")]
    pub termination_log: Option<PathBuf>,
    /// The server certificate (PEM): TCP clients must then use TLS (`hostssl` only). Without it TCP logins
    /// are plain scram-sha-256 (the operator always passes one).
    #[arg(long, requires_all = ["tls_key_file", "tls_ca_file", "tls_server_name"])]
    pub tls_cert_file: Option<PathBuf>,
    /// The server certificate's private key (PEM).
    #[arg(long, requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// The CA that signed the certificate: the manager's own TCP login verifies the server with it.
    #[arg(long, requires = "tls_cert_file")]
    pub tls_ca_file: Option<PathBuf>,
    /// The name the certificate must carry (`<replica>.<namespace>.svc`); the manager's own TCP login
    /// checks it, so "ready" means a `verify-full` client gets in.
    #[arg(long, requires = "tls_cert_file")]
    pub tls_server_name: Option<String>,
    /// How often the mounted certificate is compared with the one in use (a renewed one is reloaded).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, hide = true)]
    pub tls_refresh: Duration,
}

/// Validated configuration: every file read and name checked before any other I/O.
#[derive(Debug, Clone)]
struct Config {
    pgdata: PathBuf,
    roles: roles::RolePlan,
    analytics_database: String,
    extra_config: Option<String>,
    snapshot_id: Option<String>,
    snapshot_time: Option<String>,
    port: u16,
    listen_addresses: String,
    socket_dir: PathBuf,
    probe_address: SocketAddr,
    user: String,
    cgroup_root: PathBuf,
    archive: Option<archive::Archive>,
    /// A restic source: the instance replays its dump into a fresh cluster.
    logical: Option<replay::Logical>,
    /// TLS for client connections.
    tls: Option<tls::Server>,
}

fn read_secret(path: &Path) -> Result<String, Error> {
    let s = std::fs::read_to_string(path).map_err(error::io("reading", path))?;
    Ok(s.trim_end_matches(['\n', '\r']).to_string())
}

impl Config {
    fn from_args(a: InstanceArgs) -> Result<Self, Error> {
        let logical = match a.source.as_deref() {
            Some(source) => replay::logical_source(source, &a)?,
            None => None,
        };
        let analytics = match (a.analytics_user, a.analytics_password_file) {
            (Some(name), Some(file)) => {
                if !roles::valid_role_name(&name) {
                    return Err(Error::InvalidIdentifier {
                        what: "analytics role",
                        value: name,
                        pattern: pgro_api::IDENTIFIER_PATTERN,
                    });
                }
                Some(roles::Analytics {
                    name,
                    password: read_secret(&file)?,
                })
            }
            (Some(_), None) => {
                return Err(Error::MissingOption {
                    option: "--analytics-password-file",
                    with: "--analytics-user",
                });
            }
            (None, Some(_)) => {
                return Err(Error::MissingOption {
                    option: "--analytics-user",
                    with: "--analytics-password-file",
                });
            }
            (None, None) => None,
        };
        if let Some(bad) = a.persistent_schemas.iter().find(|s| {
            !roles::valid_identifier(s)
                || s.starts_with("pg_")
                || pgro_api::RESERVED_SCHEMA_NAMES.contains(&s.as_str())
        }) {
            return Err(Error::InvalidIdentifier {
                what: "persistent schema",
                value: bad.clone(),
                pattern: pgro_api::IDENTIFIER_PATTERN,
            });
        }
        let admin_password = a
            .admin_password_file
            .as_deref()
            .map(read_secret)
            .transpose()?;
        let extra_config = match (a.extra_config_file.as_deref(), a.extra_config) {
            (Some(p), _) => Some(std::fs::read_to_string(p).map_err(error::io("reading", p))?),
            (None, inline) => inline.filter(|s| !s.trim().is_empty()),
        };
        let archive = match a.source.as_deref() {
            Some(_) if logical.is_some() => None,
            Some(source) => {
                let exe =
                    std::env::current_exe().map_err(error::io("finding", "this executable"))?;
                Some(archive::Archive::new(
                    source,
                    a.source_secret_dir.as_deref(),
                    a.recovery_target.unwrap_or(RecoveryTarget::Latest),
                    &exe,
                )?)
            }
            None => None,
        };
        let tls = match (
            a.tls_cert_file,
            a.tls_key_file,
            a.tls_ca_file,
            a.tls_server_name,
        ) {
            (Some(cert), Some(key), Some(ca), Some(name)) => Some(tls::Server {
                cert,
                key,
                ca,
                name,
                refresh: a.tls_refresh,
            }),
            _ => None,
        };
        Ok(Self {
            pgdata: a.pgdata,
            roles: roles::RolePlan {
                admin_password,
                analytics,
                read_only: a.read_only,
                major: 0,
                persistent_schemas: a.persistent_schemas,
            },
            analytics_database: a.analytics_database,
            extra_config,
            snapshot_id: a.snapshot_id,
            snapshot_time: a.snapshot_time,
            port: a.port,
            listen_addresses: a.listen_addresses,
            socket_dir: a.socket_dir,
            probe_address: a.probe_address,
            user: a.user,
            cgroup_root: a.cgroup_root,
            archive,
            logical,
            tls,
        })
    }
}

/// Runs the instance manager until PostgreSQL exits.
pub async fn run(args: InstanceArgs) -> ExitCode {
    let cfg = match Config::from_args(args) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    if let Err(e) = listen_for_signals(shutdown_tx) {
        tracing::error!(error = %e, "installing signal handlers failed");
        return ExitCode::FAILURE;
    }
    match run_inner(cfg, shutdown_rx).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => fail(&e),
    }
}

fn fail(e: &Error) -> ExitCode {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    tracing::error!(error = %msg, "pgro instance failed");
    ExitCode::from(e.exit_code())
}

/// SIGTERM/SIGINT → shutdown requested; SIGHUP → forwarded to the postmaster (reload).
fn listen_for_signals(tx: watch::Sender<bool>) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM received; fast shutdown"); let _ = tx.send(true); }
                _ = int.recv() => { tracing::info!("SIGINT received; fast shutdown"); let _ = tx.send(true); }
                _ = hup.recv() => reaper::reload_postmaster(),
            }
        }
    });
    Ok(())
}

async fn wait_shutdown(rx: &mut watch::Receiver<bool>) {
    // A closed channel (sender gone) never resolves: no shutdown can be requested any more.
    if rx.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn make_socket_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(error::io("creating", dir))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(error::io("setting permissions of", dir))
}

async fn run_inner(mut cfg: Config, mut shutdown: watch::Receiver<bool>) -> Result<u8, Error> {
    make_socket_dir(&cfg.socket_dir)?;
    let logical_dirs = match &cfg.logical {
        Some(_) => Some(replay::prepare_dirs(&cfg.pgdata)?),
        None => None,
    };
    // Nothing outside the restore's volume is ever opened: tablespaces are checked before anything else.
    let volume = tablespaces::volume_of(&cfg.pgdata)?;
    let spaces = tablespaces::check(&cfg.pgdata, &volume)?;
    let mut owned: Vec<&Path> = vec![&cfg.socket_dir];
    owned.extend(logical_dirs.iter().flat_map(replay::Dirs::owned));
    privileges::become_pgdata_owner(&cfg.pgdata, &cfg.user, &owned, &spaces)?;
    let replay_now = match (&cfg.logical, &logical_dirs) {
        (Some(l), Some(d)) => replay::ensure_cluster(&cfg.pgdata, d, l)?,
        _ => false,
    };

    let health = health::Health::new(cfg.socket_dir.clone(), cfg.port);
    let listener = health::bind(cfg.probe_address).await.map_err(error::io(
        "binding the probe address",
        cfg.probe_address.to_string(),
    ))?;
    tokio::spawn(health::serve(listener, Arc::clone(&health)));
    tokio::spawn(reaper::run());

    let prepared = prepare_files(&cfg)?;
    cfg.roles.major = prepared.major;
    if let (Some(a), Some(r)) = (&cfg.archive, &prepared.recovery)
        && let Some(segment) = &r.check_segment
    {
        let backup = cfg
            .snapshot_id
            .as_deref()
            .unwrap_or("(the restored backup)");
        archive::check_first_segment(a, &cfg.pgdata, segment, backup).await?;
    }

    let recovering = prepared.recovery.is_some();
    let (mut pm, client, su) = match startup::start(&cfg, recovering, &mut shutdown).await? {
        startup::Started::Accepting { pm, client, su } => (pm, client, su),
        startup::Started::Shutdown(mut pm) => return stop(&mut pm).await,
    };
    let dump_replayed = match (&cfg.logical, &logical_dirs) {
        (Some(l), Some(d)) if replay_now => {
            let conn = replay::Conn {
                socket_dir: &cfg.socket_dir,
                port: cfg.port,
                su: &su,
            };
            let r = tokio::select! {
                r = replay::run(l, d, &conn, &client) => r,
                _ = wait_shutdown(&mut shutdown) => return stop(&mut pm).await,
            };
            match r {
                Ok(r) => Some(r),
                Err(e) => {
                    let _ = pm.stop().await;
                    return Err(e);
                }
            }
        }
        (Some(_), Some(d)) => replay::replayed(d),
        _ => None,
    };
    let replayed = match &prepared.recovery {
        Some(r) => {
            let got = archive::replayed(
                &client,
                r.state.as_ref(),
                r.segment_size,
                cfg.snapshot_time.as_deref(),
            )
            .await;
            tracing::info!(data_time = ?got.data_time, wal = ?got.wal, took = ?r.began.elapsed(), "archive recovery ended: promoted");
            // Segments `wal-fetch` fetched ahead and recovery did not need.
            let spool = crate::cli::wal_fetch::Spool::new(&cfg.pgdata);
            match tokio::task::spawn_blocking(move || spool.remove()).await {
                Ok(Err(e)) => tracing::warn!("removing the WAL prefetch spool failed: {e}"),
                Err(e) => tracing::warn!("removing the WAL prefetch spool failed: {e}"),
                Ok(Ok(())) => {}
            }
            Some(got)
        }
        None => None,
    };
    if let Ok(mut u) = health.user.lock() {
        u.clone_from(&su);
    }

    let configured = tokio::select! {
        r = configure(&cfg, &client, &su, replayed.as_ref(), dump_replayed.as_ref()) => Some(r),
        _ = wait_shutdown(&mut shutdown) => None,
    };
    let fingerprint = match configured {
        None => return stop(&mut pm).await,
        Some(Err(e)) => {
            let _ = pm.stop().await;
            return Err(e);
        }
        Some(Ok(f)) => f,
    };
    if let Some(want) = fingerprint {
        // The guard's connection ends with the postmaster, and so does the task.
        tokio::spawn(guard::run(client, want, cfg.roles.clone()));
    } else {
        drop(client);
    }
    if let Some(t) = &cfg.tls {
        tokio::spawn(tls::refresh(t.clone(), cfg.pgdata.clone()));
    }
    health.set_ready(true);
    tracing::info!(port = cfg.port, tls = cfg.tls.is_some(), "instance ready");

    let status = tokio::select! {
        s = pm.wait() => s.map_err(error::io("waiting for", "postgres"))?,
        _ = wait_shutdown(&mut shutdown) => {
            health.set_ready(false);
            return stop(&mut pm).await;
        }
    };
    health.set_ready(false);
    tracing::warn!(%status, "postgres exited");
    Ok(postmaster::exit_code(status))
}

async fn stop(pm: &mut Postmaster) -> Result<u8, Error> {
    let status = pm
        .stop()
        .await
        .map_err(error::io("waiting for", "postgres"))?;
    tracing::info!(%status, "postgres stopped");
    Ok(postmaster::exit_code(status))
}

/// What preparation found.
struct Prepared {
    major: u32,
    /// The archive recovery this start performs (a WAL-archive restore not yet promoted).
    recovery: Option<archive::Recovering>,
}

/// File preparation before the first start.
fn prepare_files(cfg: &Config) -> Result<Prepared, Error> {
    let pgdata = &cfg.pgdata;
    let major = prepare::check_pgdata(pgdata)?;
    binaries::check(major)?;
    if prepare::remove_stale_pid(pgdata, prepare::is_live_postgres)? {
        tracing::info!("stale postmaster.pid removed");
    }
    let controldata = startup::controldata(pgdata);
    let mut observed = recovery::observe(pgdata);
    observed.cluster_state = controldata
        .as_deref()
        .and_then(recovery::parse_cluster_state);
    let files = archive::observe(pgdata);
    if cfg.archive.is_some() {
        // `pgro restore --source` wrote recovery.signal: it says nothing about how the source was captured.
        observed.recovery_signal = false;
    }
    // Assessed once: after the first start the recovery files are gone and the state would read differently.
    let state = match recovery::recorded_state(pgdata) {
        Some(s) => s,
        None => {
            let s = recovery::assess(&observed);
            recovery::record_state(pgdata, s)?;
            s
        }
    };
    tracing::info!(major, source_state = state.label(), cluster_state = ?observed.cluster_state, "data directory assessed");
    let (source, notes) = prepare::read_source(pgdata)?;
    for note in notes {
        tracing::warn!(note = ?note, "source configuration partly skipped");
    }
    let recovering = match &cfg.archive {
        Some(a) => archive::prepare(
            a,
            pgdata,
            files,
            controldata.as_deref(),
            &source,
            cfg.extra_config.as_deref(),
        )?,
        None => None,
    };
    let signal = match &recovering {
        Some(_) => prepare::RecoverySignal::Keep,
        None => prepare::RecoverySignal::Remove,
    };
    for name in prepare::remove_recovery_files(pgdata, signal)? {
        tracing::info!(
            file = name,
            "recovery file moved aside; this instance never follows a primary"
        );
    }
    let shared_buffers_bytes = memory::read_limit(&cfg.cgroup_root).map(memory::shared_buffers_for);
    let tls = match &cfg.tls {
        Some(t) => {
            tls::install(t, pgdata)?;
            tls::settings(pgdata)
        }
        None => Vec::new(),
    };
    let settings = conf::PgroSettings {
        listen_addresses: cfg.listen_addresses.clone(),
        port: cfg.port,
        socket_dir: cfg.socket_dir.clone(),
        major,
        shared_buffers_bytes,
        recovery: recovering
            .as_ref()
            .map(|r| r.settings.clone())
            .unwrap_or_default(),
        tls,
    };
    prepare::install_config(pgdata, &source, &settings, cfg.extra_config.as_deref())?;
    Ok(Prepared {
        major,
        recovery: recovering,
    })
}

/// Everything between "accepting on the private socket" and "ready": locales, roles, per-database
/// privileges, restore metadata, reindexing, then TCP opened.
async fn configure(
    cfg: &Config,
    client: &Client,
    su: &str,
    replayed: Option<&archive::Replayed>,
    dump_replayed: Option<&pgro_api::DumpReplayed>,
) -> Result<Option<roles::Fingerprint>, Error> {
    let major = cfg.roles.major;
    let switched = locale::switch_unavailable(client).await?;
    let fingerprint = roles::apply_cluster(client, &cfg.roles).await?;
    let mismatched = locale::version_mismatches(client, major).await?;
    let databases: Vec<String> = client
        .query(
            "SELECT datname::text FROM pg_database WHERE datallowconn ORDER BY 1",
            &[],
        )
        .await
        .map_err(error::sql("listing databases"))?
        .iter()
        .map(|r| r.get(0))
        .collect();

    let pending = metadata::read_pending(&cfg.pgdata)?;
    let mut new_fixes = pending.clone();
    for s in &switched {
        new_fixes.push(serde_json::json!({
            "fix": "locale", "database": s.database, "from": s.from, "to": s.to,
            "at": jiff::Timestamp::now().to_string(),
        }));
    }
    let interrupted_reindex =
        metadata::current_stage(client).await.as_deref() == Some(Stage::Reindexing.as_str());
    let full_reindex = pending.iter().any(|f| f["fix"] == "pg_resetwal") || interrupted_reindex;
    let needs_reindex = full_reindex || !switched.is_empty() || !mismatched.is_empty();

    let mut targets = vec!["postgres".to_string()];
    if cfg.analytics_database != "postgres" {
        targets.push(cfg.analytics_database.clone());
    }
    let reader = cfg.roles.analytics.as_ref().map(|a| a.name.as_str());
    let stage = if needs_reindex {
        Stage::Reindexing
    } else {
        Stage::Restored
    };
    for db in databases.iter().filter(|d| targets.contains(d)) {
        let c = connect_db(cfg, su, db).await?;
        let info = metadata::Info {
            source_state: recovery::recorded_state(&cfg.pgdata).map(recovery::SourceState::label),
            snapshot_id: cfg.snapshot_id.as_deref(),
            snapshot_time: cfg.snapshot_time.as_deref(),
            stage,
            new_fixes: &new_fixes,
            reader,
            data_time: replayed.and_then(|r| r.data_time.as_deref()),
            wal_replayed: replayed.and_then(|r| r.wal.as_ref()),
            dump_replayed: dump_replayed.and_then(|d| serde_json::to_value(d).ok()),
        };
        metadata::record(&c, &info).await?;
    }
    if !pending.is_empty() {
        let p = cfg.pgdata.join(metadata::PENDING);
        std::fs::remove_file(&p).map_err(error::io("removing", &p))?;
    }

    for db in &databases {
        let c = connect_db(cfg, su, db).await?;
        grants::apply(&c, db, &cfg.roles, *db == cfg.analytics_database).await?;
        let db_switched = switched.iter().any(|s| &s.database == db);
        if full_reindex {
            reindex_database(&c, db, major).await;
        } else if db_switched || mismatched.contains(db) {
            let n = locale::reindex_collation_dependent(&c).await?;
            tracing::info!(database = %db, indexes = n, "collation-dependent indexes rebuilt");
        }
        if db_switched || mismatched.contains(db) {
            locale::refresh_versions(&c, db, major).await?;
        }
    }
    for db in databases.iter().filter(|d| targets.contains(d)) {
        metadata::set_stage(&connect_db(cfg, su, db).await?, Stage::Ready).await?;
    }
    open_tcp(cfg, client).await?;
    Ok(fingerprint)
}

async fn connect_db(cfg: &Config, su: &str, db: &str) -> Result<Client, Error> {
    db::connect(&cfg.socket_dir, cfg.port, su, db)
        .await
        .map_err(error::sql("connecting to a database"))
}

/// Full reindex after `pg_resetwal` (indexes may disagree with the heap). A failure is logged, not fatal:
/// the fix is already recorded, and refusing to serve would hide the data rather than flag it.
async fn reindex_database(c: &Client, db: &str, major: u32) {
    let name = db::quote_ident(db);
    let mut stmts = vec![format!("REINDEX DATABASE {name}")];
    // Since PostgreSQL 16, REINDEX DATABASE leaves the system catalogs alone.
    if major >= 16 {
        stmts.push(format!("REINDEX SYSTEM {name}"));
    }
    for s in stmts {
        match c.batch_execute(&s).await {
            Ok(()) => tracing::info!(database = %db, statement = %s, "reindexed"),
            Err(e) => {
                tracing::warn!(database = %db, error = %e, "WARNING: reindex after pg_resetwal failed")
            }
        }
    }
}

/// Rewrites `pg_hba.conf` to admit scram logins over TCP and reloads, then logs in over TCP as
/// `pgro_admin` and as the analytics role, so that "ready" means the shared credential really works.
async fn open_tcp(cfg: &Config, client: &Client) -> Result<(), Error> {
    prepare::install_if_changed(
        &cfg.pgdata.join(prepare::HBA),
        &hba::render(hba::Access::Serving {
            tls: cfg.tls.is_some(),
        }),
    )?;
    client
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .map_err(error::sql("reloading the configuration"))?;
    let host = match cfg.listen_addresses.split(',').map(str::trim).next() {
        Some("*" | "0.0.0.0" | "") | None => "127.0.0.1".to_string(),
        Some("::") => "::1".to_string(),
        Some(h) => h.to_string(),
    };
    let mut logins: Vec<(&str, &str, &str)> = Vec::new();
    if let Some(p) = &cfg.roles.admin_password {
        logins.push((roles::ADMIN_ROLE, p, "postgres"));
    }
    if let Some(a) = &cfg.roles.analytics {
        logins.push((&a.name, &a.password, &cfg.analytics_database));
    }
    if logins.is_empty() {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let tls = match &cfg.tls {
        Some(t) => {
            let ca = std::fs::read(&t.ca).map_err(error::io("reading", &t.ca))?;
            let connector = crate::postgres::tls::connector(&ca).map_err(|e| Error::TlsCa {
                path: t.ca.clone(),
                reason: e.to_string(),
            })?;
            Some((t.name.as_str(), connector))
        }
        None => None,
    };
    for (user, password, dbname) in logins {
        tcp_login(&host, cfg.port, tls.as_ref(), user, password, dbname).await?;
    }
    Ok(())
}

/// One scram login over TCP, retried for up to 10 s while the reload takes effect. With TLS it verifies
/// the server as a `verify-full` client of `<name>` would (connecting to `host`).
async fn tcp_login(
    host: &str,
    port: u16,
    tls: Option<&(&str, tokio_postgres_rustls::MakeRustlsConnect)>,
    user: &str,
    password: &str,
    dbname: &str,
) -> Result<(), Error> {
    let mut attempt = 0;
    loop {
        let mut c = match (tls, host.parse()) {
            (Some((name, _)), Ok(addr)) => crate::postgres::tls::config(name, addr, port),
            _ => {
                let mut c = tokio_postgres::Config::new();
                c.host(host)
                    .port(port)
                    .connect_timeout(Duration::from_secs(5));
                c
            }
        };
        c.user(user).password(password).dbname(dbname);
        // The client and connection are dropped at once: only whether the login works matters.
        let connected = match tls {
            Some((_, connector)) => c.connect(connector.clone()).await.map(drop),
            None => c.connect(tokio_postgres::NoTls).await.map(drop),
        };
        match connected {
            Ok(()) => return Ok(()),
            Err(source) if attempt >= 100 => {
                return Err(Error::LoginFailed {
                    role: user.to_string(),
                    database: dbname.to_string(),
                    source,
                });
            }
            Err(_) => {}
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
