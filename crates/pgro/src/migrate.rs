//! `pgro migrate-schemas`: the schema migration Job (behaviour P1, P2). Copies each persistent schema from
//! the restore that serves to the one about to take over, database by database, with `pg_dump | psql` —
//! two processes joined by a pipe, both exit statuses checked and every failed statement counted, no shell —
//! within a time budget, and reports a JSON result in the container's termination message.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio_postgres::{Client, NoTls};

use crate::postgres::{own_schema_statements, quote_ident, tls};

/// `pgro migrate-schemas` arguments. The password is `PGPASSWORD` (read by `pg_dump` and `psql` too).
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The serving restore's PostgreSQL (the source).
    #[arg(long)]
    pub source_host: String,
    /// The new restore's PostgreSQL (the target).
    #[arg(long)]
    pub target_host: String,
    /// PostgreSQL's port on both.
    #[arg(long, default_value_t = 5432)]
    pub port: u16,
    /// A superuser on both.
    #[arg(long, env = "PGUSER", default_value = "pgro_admin")]
    pub user: String,
    /// The schemas to copy.
    #[arg(long = "schema", required = true, value_delimiter = ',')]
    pub schemas: Vec<String>,
    /// The role that owns the copies (the analytics role).
    #[arg(long)]
    pub owner: String,
    /// Give up (dropping the partial copy) after this long.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub budget: Duration,
    /// Also write the JSON result here.
    #[arg(long)]
    pub termination_log: Option<PathBuf>,
    /// The replica's CA: both servers are verified with it (`verify-full`), under `--tls-server-name`.
    #[arg(long, requires = "tls_server_name")]
    pub tls_ca_file: Option<PathBuf>,
    /// The name both servers' certificate carries (`<replica>.<namespace>.svc`); each host is resolved
    /// and connected to by address.
    #[arg(long, requires = "tls_ca_file")]
    pub tls_server_name: Option<String>,
    /// The source serves plain text (a restore made by a pgro before TLS): connect to it without TLS.
    #[arg(long)]
    pub source_plain_text: bool,
}

/// Where one host is reached: its resolved address when TLS verifies a name other than the host's own.
struct Target {
    /// What the certificate is checked against (`host` for libpq).
    name: String,
    /// The address connected to (`hostaddr` for libpq).
    addr: Option<IpAddr>,
}

async fn target(host: &str, a: &MigrateArgs) -> Result<Target, String> {
    let plain = a.source_plain_text && host == a.source_host;
    let Some(name) = a.tls_server_name.as_ref().filter(|_| !plain) else {
        return Ok(Target {
            name: host.to_owned(),
            addr: None,
        });
    };
    let addr = tokio::net::lookup_host((host, a.port))
        .await
        .map_err(|e| format!("resolving {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))?
        .ip();
    Ok(Target {
        name: name.clone(),
        addr: Some(addr),
    })
}

/// libpq's view of [`Target`]: `--host` and the environment that makes pg_dump and psql verify the server.
fn libpq(cmd: &mut Command, t: &Target, a: &MigrateArgs) {
    cmd.args(["--host", &t.name, "--port", &a.port.to_string()]);
    if let (Some(addr), Some(ca)) = (t.addr, &a.tls_ca_file) {
        cmd.env("PGHOSTADDR", addr.to_string())
            .env("PGSSLMODE", "verify-full")
            .env("PGSSLROOTCERT", ca);
    }
}

/// One schema copied into one database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Copied {
    /// Schema.
    pub schema: String,
    /// Database.
    pub database: String,
}

/// The result of a migration that ran to an end (complete, partial or out of time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationResult {
    /// `complete`, `partial` (statement errors) or `timeout-skipped`.
    pub phase: String,
    /// What was copied.
    pub migrated: Vec<Copied>,
    /// Schemas the source does not have.
    pub skipped: Vec<String>,
    /// Statements that failed on the target.
    pub errors: u32,
    /// The first failed statements' messages.
    pub error_messages: Vec<String>,
    /// Sum of the source's database sizes (bytes), for `persistentSchemaDataSize` (P2).
    pub source_database_size: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// A migration that could not run (the Job is retried).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationFailure {
    /// What failed.
    pub error: String,
}

/// Termination messages are cut at 4096 bytes.
const MAX_MESSAGES: usize = 5;

/// Runs `pgro migrate-schemas`: 0 when it ran to an end (even partial or out of time), 1 when it could not.
pub async fn run(args: MigrateArgs) -> ExitCode {
    let started = Instant::now();
    let (json, code) = match migrate(&args, started).await {
        Ok(r) => {
            tracing::info!(phase = %r.phase, errors = r.errors, skipped = ?r.skipped, "schema migration finished");
            (serde_json::to_string(&r), ExitCode::SUCCESS)
        }
        Err(error) => {
            tracing::error!(error = %error, "schema migration failed");
            (
                serde_json::to_string(&MigrationFailure { error }),
                ExitCode::FAILURE,
            )
        }
    };
    let json = json.unwrap_or_else(|e| format!(r#"{{"error":"{e}"}}"#));
    println!("{json}");
    if let Some(p) = &args.termination_log
        && let Err(e) = std::fs::write(p, &json)
    {
        tracing::warn!(error = %e, "writing the termination log failed");
    }
    code
}

async fn connect(host: &str, a: &MigrateArgs, db: &str) -> Result<Client, String> {
    let t = target(host, a).await?;
    let mut cfg = match t.addr {
        Some(addr) => tls::config(&t.name, addr, a.port),
        None => {
            let mut c = tokio_postgres::Config::new();
            c.host(host).port(a.port);
            c
        }
    };
    cfg.user(&a.user)
        .dbname(db)
        .application_name("pgro-migrate-schemas")
        .connect_timeout(Duration::from_secs(10));
    if let Ok(pw) = std::env::var("PGPASSWORD") {
        cfg.password(pw);
    }
    let failed = |e: tokio_postgres::Error| format!("connecting to {host}/{db}: {e}");
    match a.tls_ca_file.as_ref().filter(|_| t.addr.is_some()) {
        Some(ca) => {
            let pem = std::fs::read(ca).map_err(|e| format!("reading {}: {e}", ca.display()))?;
            let connector = tls::connector(&pem).map_err(|e| format!("{}: {e}", ca.display()))?;
            let (c, conn) = cfg.connect(connector).await.map_err(failed)?;
            tokio::spawn(conn);
            Ok(c)
        }
        None => {
            let (c, conn) = cfg.connect(NoTls).await.map_err(failed)?;
            tokio::spawn(conn);
            Ok(c)
        }
    }
}

/// Which databases of the source hold each schema, and the source's total size.
async fn discover(a: &MigrateArgs) -> Result<(BTreeMap<String, Vec<String>>, u64), String> {
    let src = connect(&a.source_host, a, "postgres").await?;
    let rows = src
        .query(
            "SELECT datname::text, pg_database_size(oid) FROM pg_database \
             WHERE datallowconn AND NOT datistemplate ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| format!("listing the source's databases: {e}"))?;
    let size: i64 = rows.iter().map(|r| r.get::<_, i64>(1)).sum();
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &rows {
        let db: String = r.get(0);
        let c = connect(&a.source_host, a, &db).await?;
        let present = c
            .query(
                "SELECT nspname::text FROM pg_namespace WHERE nspname = ANY($1)",
                &[&a.schemas],
            )
            .await
            .map_err(|e| format!("listing schemas of {db}: {e}"))?;
        for p in present {
            found.entry(p.get(0)).or_default().push(db.clone());
        }
    }
    Ok((found, u64::try_from(size).unwrap_or(0)))
}

/// `pg_dump --schema` of one schema piped into `psql` on the target; returns the failed statements.
async fn copy(a: &MigrateArgs, schema: &str, db: &str) -> Result<Vec<String>, String> {
    let (source, dest) = (
        target(&a.source_host, a).await?,
        target(&a.target_host, a).await?,
    );
    let mut dump = Command::new("pg_dump");
    libpq(&mut dump, &source, a);
    let mut dump = dump
        .args([
            "--username",
            &a.user,
            "--dbname",
            db,
            "--no-owner",
            "--no-privileges",
        ])
        // A quoted pattern matches the name exactly.
        .arg(format!("--schema={}", quote_ident(schema)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting pg_dump: {e}"))?;
    let dump_out: Stdio = dump
        .stdout
        .take()
        .ok_or("pg_dump has no stdout")?
        .try_into()
        .map_err(|e| format!("piping pg_dump: {e}"))?;
    let mut restore = Command::new("psql");
    libpq(&mut restore, &dest, a);
    let mut restore = restore
        .args(["--username", &a.user, "--dbname", db])
        .args(["--no-psqlrc", "--quiet", "--set", "ON_ERROR_STOP=0"])
        .stdin(dump_out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting psql: {e}"))?;
    let mut dump_err = dump.stderr.take().ok_or("pg_dump has no stderr")?;
    let mut psql_err = restore.stderr.take().ok_or("psql has no stderr")?;
    let (mut de, mut pe) = (String::new(), String::new());
    let (ds, ps, _, _) = tokio::join!(
        dump.wait(),
        restore.wait(),
        dump_err.read_to_string(&mut de),
        psql_err.read_to_string(&mut pe)
    );
    let ds = ds.map_err(|e| format!("waiting for pg_dump: {e}"))?;
    let ps = ps.map_err(|e| format!("waiting for psql: {e}"))?;
    if !ds.success() {
        return Err(format!(
            "pg_dump of {schema} in {db} failed ({ds}): {}",
            de.trim()
        ));
    }
    if !ps.success() {
        return Err(format!("psql into {db} failed ({ps}): {}", pe.trim()));
    }
    Ok(pe
        .lines()
        .filter(|l| l.contains("ERROR:"))
        .map(|l| l.trim().to_owned())
        .collect())
}

async fn migrate(a: &MigrateArgs, started: Instant) -> Result<MigrationResult, String> {
    let (found, source_size) = discover(a).await?;
    let skipped: Vec<String> = a
        .schemas
        .iter()
        .filter(|s| !found.contains_key(*s))
        .cloned()
        .collect();
    let work: Vec<Copied> = found
        .iter()
        .flat_map(|(schema, dbs)| {
            dbs.iter().map(|db| Copied {
                schema: schema.clone(),
                database: db.clone(),
            })
        })
        .collect();
    let mut errors: Vec<String> = Vec::new();
    let mut migrated = Vec::new();
    let copying = async {
        for w in &work {
            let target = connect(&a.target_host, a, &w.database).await?;
            // A schema of the same name in the new snapshot gives way to the copy.
            target
                .batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS {} CASCADE",
                    quote_ident(&w.schema)
                ))
                .await
                .map_err(|e| {
                    format!("dropping {} in the target's {}: {e}", w.schema, w.database)
                })?;
            migrated.push(w.clone());
            errors.extend(copy(a, &w.schema, &w.database).await?);
            target
                .batch_execute(&own_schema_statements(&w.schema, &a.owner).join("; "))
                .await
                .map_err(|e| format!("giving {} to {}: {e}", w.schema, a.owner))?;
        }
        Ok::<(), String>(())
    };
    let timed_out = match tokio::time::timeout(a.budget, copying).await {
        Ok(r) => {
            r?;
            false
        }
        Err(_) => true,
    };
    let phase = if timed_out {
        // Abandoned: the partial copies go, empty schemas of the owner take their place.
        for w in &migrated {
            let target = connect(&a.target_host, a, &w.database).await?;
            let s = quote_ident(&w.schema);
            target
                .batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS {s} CASCADE; CREATE SCHEMA {s} AUTHORIZATION {}",
                    quote_ident(&a.owner)
                ))
                .await
                .map_err(|e| format!("dropping the partial copy of {}: {e}", w.schema))?;
        }
        migrated.clear();
        "timeout-skipped"
    } else if errors.is_empty() {
        "complete"
    } else {
        "partial"
    };
    Ok(MigrationResult {
        phase: phase.to_owned(),
        migrated,
        skipped,
        errors: u32::try_from(errors.len()).unwrap_or(u32::MAX),
        error_messages: errors
            .into_iter()
            .take(MAX_MESSAGES)
            .map(|m| m.chars().take(300).collect())
            .collect(),
        source_database_size: source_size,
        seconds: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    })
}
