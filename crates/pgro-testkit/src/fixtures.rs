//! Sample data for tests and `pgro-dev --sample`: MinIO on loopback, Kopia repositories in it written by the
//! real `kopia`, and PostgreSQL data directories with known contents (made by the real `initdb` and
//! `postgres`, run as the non-root PostgreSQL user).

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::infra::Components;
use crate::process::{Proc, ProcessSpec};

/// MinIO's root user in fixtures.
pub const MINIO_USER: &str = "pgro-sample";
/// MinIO's root password in fixtures.
pub const MINIO_SECRET: &str = "pgro-sample-secret-key";

/// A fresh test directory (mode 0755, so the PostgreSQL user can reach into it); kept after the test when
/// `PGRO_KEEP_FIXTURES` is set (its path is printed).
///
/// # Panics
/// The directory cannot be made.
#[must_use]
pub fn test_root(prefix: &str) -> tempfile::TempDir {
    let keep = std::env::var_os("PGRO_KEEP_FIXTURES").is_some();
    let tmp = tempfile::Builder::new()
        .prefix(prefix)
        .disable_cleanup(keep)
        .tempdir()
        .expect("temp dir");
    if keep {
        eprintln!("fixtures kept in {}", tmp.path().display());
    }
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    tmp
}

/// Gives `root` and everything under it (links themselves, not their targets) to `uid:gid`: a tree
/// restored as root handed to the PostgreSQL user before it starts on it.
///
/// # Panics
/// A chown or a directory read fails.
pub fn chown_tree(root: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(root, Some(uid), Some(gid)).expect("chown");
    if root.is_dir() && !root.is_symlink() {
        for e in std::fs::read_dir(root).expect("read_dir") {
            chown_tree(&e.expect("entry").path(), uid, gid);
        }
    }
}

/// A MinIO server on `127.0.0.1`, stopped (by PID) when dropped.
#[derive(Debug)]
pub struct Minio {
    /// Its S3 port on loopback.
    pub port: u16,
    /// Its data directory.
    pub dir: PathBuf,
    _proc: Proc,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(crate::ports::free_port()?)
}

impl Minio {
    /// Starts MinIO on `dir` with these buckets (a top-level directory of a fresh single-drive data
    /// directory is a bucket) and waits until it accepts connections.
    ///
    /// # Errors
    /// MinIO is not installed or does not start within 30 s.
    pub async fn start(
        components: &Components,
        dir: &Path,
        buckets: &[&str],
    ) -> anyhow::Result<Self> {
        Self::start_with(components, dir, buckets, None, None).await
    }

    /// MinIO again on the data directory of an earlier one (stopped), at its port: "the store is back".
    ///
    /// # Errors
    /// MinIO is not installed or does not start within 30 s (the port may have been taken meanwhile).
    pub async fn start_on(components: &Components, dir: &Path, port: u16) -> anyhow::Result<Self> {
        Self::start_with(components, dir, &[], None, Some(port)).await
    }

    /// As [`Minio::start`], serving HTTPS with a certificate for `127.0.0.1` signed by a fresh CA;
    /// returns the CA (PEM) a client must trust.
    ///
    /// # Errors
    /// MinIO is not installed or does not start within 30 s.
    pub async fn start_tls(
        components: &Components,
        dir: &Path,
        buckets: &[&str],
    ) -> anyhow::Result<(Self, String)> {
        let certs = dir.with_extension("certs");
        let material = crate::certs::generate(&certs.join("ca"), &[])?;
        std::fs::copy(&material.serving_cert_file, certs.join("public.crt"))?;
        std::fs::copy(&material.serving_key_file, certs.join("private.key"))?;
        let minio = Self::start_with(components, dir, buckets, Some(&certs), None).await?;
        Ok((minio, material.ca_pem))
    }

    async fn start_with(
        components: &Components,
        dir: &Path,
        buckets: &[&str],
        certs: Option<&Path>,
        port: Option<u16>,
    ) -> anyhow::Result<Self> {
        let bin = components.path("PGRO_MINIO")?;
        for b in buckets {
            std::fs::create_dir_all(dir.join(b))?;
        }
        let port = match port {
            Some(p) => p,
            None => free_port()?,
        };
        let console = free_port()?;
        let mut spec = ProcessSpec::new("minio", &bin)
            .arg("server")
            .arg(dir)
            .args([
                "--quiet",
                "--address",
                &format!("127.0.0.1:{port}"),
                "--console-address",
                &format!("127.0.0.1:{console}"),
            ]);
        if let Some(c) = certs {
            spec = spec.arg("--certs-dir").arg(c);
        }
        let proc = Proc::spawn(
            spec.env("MINIO_ROOT_USER", MINIO_USER)
                .env("MINIO_ROOT_PASSWORD", MINIO_SECRET)
                .env("MINIO_BROWSER", "off")
                .env("MINIO_UPDATE", "off")
                .log_to(dir.with_extension("log")),
        )
        .await?;
        crate::emulators::wait_listening(port, "MinIO", &proc).await?;
        Ok(Self {
            port,
            dir: dir.to_owned(),
            _proc: proc,
        })
    }

    /// `127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Runs a command to completion; its stdout, or an error with its output.
fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `kopia` CLI connected to one repository in a MinIO bucket (its own config directory).
#[derive(Debug, Clone)]
pub struct KopiaRepo {
    bin: PathBuf,
    dir: PathBuf,
    /// The repository's object prefix in the bucket (`<name>/`).
    pub prefix: String,
    /// The bucket.
    pub bucket: String,
    /// The repository password.
    pub password: String,
}

impl KopiaRepo {
    /// Creates a repository at `bucket/prefix` in `minio`; kopia's config and cache go to `dir`.
    ///
    /// # Errors
    /// kopia is not installed or `repository create` fails.
    pub fn create_s3(
        components: &Components,
        minio: &Minio,
        bucket: &str,
        prefix: &str,
        password: &str,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let repo = Self {
            bin: components.path("PGRO_KOPIA")?,
            dir: dir.to_owned(),
            prefix: prefix.to_owned(),
            bucket: bucket.to_owned(),
            password: password.to_owned(),
        };
        repo.run(&[
            "repository",
            "create",
            "s3",
            "--bucket",
            bucket,
            "--endpoint",
            &minio.endpoint(),
            "--disable-tls",
            "--access-key",
            MINIO_USER,
            "--secret-access-key",
            MINIO_SECRET,
            "--prefix",
            prefix,
        ])?;
        Ok(repo)
    }

    /// Runs `kopia <args>`; returns its stdout.
    ///
    /// # Errors
    /// kopia fails.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        output(
            Command::new(&self.bin)
                .args(args)
                .env("KOPIA_PASSWORD", &self.password)
                .env("KOPIA_CONFIG_PATH", self.dir.join("config.json"))
                .env("KOPIA_CACHE_DIRECTORY", self.dir.join("cache"))
                .env("KOPIA_LOG_DIR", self.dir.join("logs"))
                .env("KOPIA_CHECK_FOR_UPDATES", "false"),
        )
    }

    /// `kopia snapshot create <dir> <extra…>`; returns the snapshot ID.
    ///
    /// # Errors
    /// kopia fails or prints no ID.
    pub fn snapshot(&self, dir: &Path, extra: &[&str]) -> anyhow::Result<String> {
        let path = dir.to_str().context("non-UTF-8 path")?;
        let mut args = vec!["snapshot", "create", path, "--json"];
        args.extend_from_slice(extra);
        let out = self.run(&args)?;
        let v: serde_json::Value = serde_json::from_str(out.trim())?;
        Ok(v["id"].as_str().context("no snapshot id")?.to_owned())
    }
}

/// A PostgreSQL major's binaries run as the non-root PostgreSQL user of the test infrastructure.
#[derive(Debug, Clone)]
pub struct Postgres {
    /// The `bin` directory.
    pub bin: PathBuf,
    uid: u32,
    gid: u32,
}

/// (rows, md5 of the rows in a stable order) of a table, as `psql` prints them.
pub type Checksum = (i64, String);

impl Postgres {
    /// PostgreSQL `major` from the test infrastructure (it needs `initdb`, `postgres` and `psql`).
    ///
    /// # Errors
    /// That major is not installed.
    pub fn new(components: &Components, major: u32) -> anyhow::Result<Self> {
        let (uid, gid) = components.postgres_user();
        Ok(Self {
            bin: components.postgres_bin(major)?,
            uid,
            gid,
        })
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin.join(program));
        c.uid(self.uid).gid(self.gid).env("LC_ALL", "C.UTF-8");
        c
    }

    fn own(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::os::unix::fs::chown(dir, Some(self.uid), Some(self.gid))?;
        Ok(())
    }

    /// A cleanly stopped data directory at `dir` with table `items` of `rows` rows and a login role
    /// `app_owner` (password `source-password`) owning it.
    ///
    /// # Errors
    /// initdb, the server or the SQL fails.
    pub fn create_datadir(&self, dir: &Path, rows: i64) -> anyhow::Result<Checksum> {
        self.initdb(dir)?;
        self.with_server(
            dir,
            &format!(
                "CREATE ROLE app_owner LOGIN PASSWORD 'source-password';
                 CREATE TABLE items AS SELECT g AS id, md5(g::text) AS name FROM generate_series(1, {rows}) g;
                 ALTER TABLE items ADD PRIMARY KEY (id);
                 ALTER TABLE items OWNER TO app_owner;"
            ),
        )
    }

    /// Starts PostgreSQL on `dir` (Unix socket only), runs `sql`, stops it cleanly; returns the checksum of
    /// `items` afterwards.
    ///
    /// # Errors
    /// The server does not start or the SQL fails.
    pub fn with_server(&self, dir: &Path, sql: &str) -> anyhow::Result<Checksum> {
        let sock = dir.with_extension("sock");
        self.own(&sock)?;
        let port = free_port()?.to_string();
        let mut server = self
            .command("postgres")
            .arg("-D")
            .arg(dir)
            .args(["-p", &port, "-k"])
            .arg(&sock)
            .args(["-c", "listen_addresses="])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let psql = |sql: &str| {
            output(
                self.command("psql")
                    .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
                    .arg(&sock)
                    .args(["-p", &port, "-U", "postgres", "-d", "postgres", "-c", sql]),
            )
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let result = loop {
            match psql("SELECT 1") {
                Ok(_) => {
                    break psql(sql).and_then(|_| {
                        psql("SELECT count(*) || '|' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM items t")
                    });
                }
                Err(e) if Instant::now() > deadline => break Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(server.id()).unwrap_or(0)),
            nix::sys::signal::Signal::SIGINT,
        );
        let _ = server.wait();
        let _ = std::fs::remove_dir_all(&sock);
        let line = result?;
        let (n, md5) = line
            .trim()
            .split_once('|')
            .context("unexpected psql output")?;
        Ok((n.parse()?, md5.to_owned()))
    }
}

/// A PostgreSQL server that keeps running (loopback TCP and a Unix socket), as the PostgreSQL user;
/// stopped (by PID) when dropped.
#[derive(Debug)]
pub struct PostgresServer {
    /// Its TCP port on `127.0.0.1`.
    pub port: u16,
    /// Its data directory.
    pub dir: PathBuf,
    socket_dir: PathBuf,
    pg: Postgres,
    _proc: Proc,
}

/// `initdb`'s arguments before the data directory in every test cluster: superuser `postgres`, trust,
/// UTF-8, the `C.UTF-8` locale, then `-D`.
pub const INITDB_ARGS: [&str; 8] = [
    "-U",
    "postgres",
    "-A",
    "trust",
    "-E",
    "UTF8",
    "--locale=C.UTF-8",
    "-D",
];

impl Postgres {
    /// `initdb` of `dir` (owned by the PostgreSQL user; superuser `postgres`, trust, UTF-8, C.UTF-8).
    fn initdb(&self, dir: &Path) -> anyhow::Result<()> {
        self.own(dir)?;
        output(
            self.command("initdb")
                .args(INITDB_ARGS)
                .arg(dir)
                .stdout(Stdio::null()),
        )?;
        Ok(())
    }

    /// Initialises `dir` (trust authentication) and starts PostgreSQL on `127.0.0.1:<free port>` with
    /// `settings` (`-c name=value` each); waits until it answers.
    ///
    /// # Errors
    /// initdb fails or the server does not answer within 30 s.
    pub async fn serve(&self, dir: &Path, settings: &[&str]) -> anyhow::Result<PostgresServer> {
        self.initdb(dir)?;
        let socket_dir = dir.with_extension("sock");
        self.own(&socket_dir)?;
        let port = free_port()?;
        let mut spec = ProcessSpec::new("postgres", crate::tools::tool("setpriv"))
            .arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .args(["--clear-groups", "--"])
            .arg(self.bin.join("postgres"))
            .arg("-D")
            .arg(dir)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&socket_dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .env("LC_ALL", "C.UTF-8")
            .log_to(dir.with_extension("log"));
        for setting in settings {
            spec = spec.args(["-c", setting]);
        }
        let proc = Proc::spawn(spec).await?;
        let server = PostgresServer {
            port,
            dir: dir.to_owned(),
            socket_dir,
            pg: self.clone(),
            _proc: proc,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(error) = server.psql("SELECT 1") {
            if Instant::now() > deadline {
                bail!(
                    "PostgreSQL on {} did not answer within 30 s: {error:#}\n{}",
                    dir.display(),
                    server._proc.log_tail(2000)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(server)
    }
}

impl PostgresServer {
    /// Runs `sql` as `postgres` in database `postgres` (over the Unix socket); returns psql's unaligned output.
    ///
    /// # Errors
    /// psql fails.
    pub fn psql(&self, sql: &str) -> anyhow::Result<String> {
        output(
            self.pg
                .command("psql")
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
                .arg(&self.socket_dir)
                .args([
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-c",
                    sql,
                ]),
        )
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, self.port))
    }
}

/// What the operator's admin SQL needs from an instance (`crates/pgro/src/operator/admin_sql.rs`): the
/// login role `pgro_admin` (trust authentication, so any password works) and `_pgro.restore_info` with one
/// row (`fixes` = `[]`). Every `pgro-standin postgres` forwards to this one server.
pub const STANDIN_UPSTREAM_SQL: &str = "CREATE ROLE pgro_admin LOGIN;
CREATE SCHEMA _pgro AUTHORIZATION pgro_admin;
CREATE TABLE _pgro.restore_info (stage text, fixes jsonb, source_state text);
INSERT INTO _pgro.restore_info VALUES ('serving', '[]', 'consistent');
ALTER TABLE _pgro.restore_info OWNER TO pgro_admin;";

/// Starts the shared PostgreSQL that stand-in instances forward to ([`STANDIN_UPSTREAM_SQL`]), with room
/// for `max_connections`.
///
/// # Errors
/// As [`Postgres::serve`], or the SQL failing.
pub async fn standin_upstream(
    components: &Components,
    major: u32,
    dir: &Path,
    max_connections: u32,
) -> anyhow::Result<PostgresServer> {
    let pg = Postgres::new(components, major)?;
    let max = format!("max_connections={max_connections}");
    let server = pg.serve(dir, &[&max, "fsync=off"]).await?;
    server.psql(STANDIN_UPSTREAM_SQL)?;
    Ok(server)
}
