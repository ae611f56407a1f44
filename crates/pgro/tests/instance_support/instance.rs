//! A source cluster and a `pgro instance` run against real PostgreSQL binaries, shared by the instance
//! tests.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio_postgres::{Client, NoTls};

use super::{PgUser, Proc, free_port, http_status, infra, require};

pub const ANALYTICS: &str = "analytics";
pub const ANALYTICS_PW: &str = "analytics-pw";
pub const ADMIN_PW: &str = "admin-pw";

pub struct Env {
    pub bin: PathBuf,
    /// Client tools (pg_basebackup, pgbench): this major's, else PostgreSQL 18's (newer clients serve
    /// older servers).
    pub client_bin: PathBuf,
    pub kopia: PathBuf,
    pub user: PgUser,
}

impl Env {
    /// `initdb` of a UTF-8 cluster with the `C.UTF-8` locale and superuser `postgres` (trust) at `dir`.
    pub fn initdb(&self, dir: &Path) {
        super::run(
            self.user
                .command(self.bin.join("initdb"))
                .args(pgro_testkit::fixtures::INITDB_ARGS)
                .arg(dir),
        );
    }
}

pub fn env_for(major: u32) -> Option<Env> {
    let env = infra();
    let bin = PathBuf::from(require(&env, &format!("PGRO_PG{major}_BIN"))?);
    let pg18 = PathBuf::from(require(&env, "PGRO_PG18_BIN")?);
    let client_bin = if bin.join("pg_basebackup").exists() {
        bin.clone()
    } else {
        pg18
    };
    Some(Env {
        bin,
        client_bin,
        kopia: PathBuf::from(require(&env, "PGRO_KOPIA")?),
        user: PgUser::from_env(&env)?,
    })
}

/// Connects as `postgres` over the socket, waiting up to 60 s while the server still starts up (its socket
/// exists before it accepts connections, which a loaded machine makes visible).
pub async fn connect_socket(sock: &Path, port: u16, db: &str) -> Client {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host_path(sock).port(port).user("postgres").dbname(db);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match cfg.connect(NoTls).await {
            Ok((c, conn)) => {
                tokio::spawn(conn);
                return c;
            }
            Err(e) if Instant::now() < deadline && e.code().is_none_or(|c| c.code() == "57P03") => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("connect {db}: {e:?}"),
        }
    }
}

pub async fn connect_tcp(
    port: u16,
    user: &str,
    password: &str,
    db: &str,
) -> Result<Client, tokio_postgres::Error> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host("127.0.0.1")
        .port(port)
        .user(user)
        .password(password)
        .dbname(db);
    let (c, conn) = cfg.connect(NoTls).await?;
    tokio::spawn(conn);
    Ok(c)
}

/// The source cluster: a postmaster run as the test user from a directory it owns.
pub struct Source {
    pub dir: PathBuf,
    pub sock: PathBuf,
    pub port: u16,
    pub proc: Option<Proc>,
}

impl Source {
    pub fn start(&mut self, e: &Env) {
        let child = e
            .user
            .command(e.bin.join("postgres"))
            .arg("-D")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.proc = Some(Proc::new(child, Some(self.dir.clone()), Signal::SIGINT));
        wait_socket(&self.sock, self.port);
    }

    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop();
        }
    }

    pub fn pid(&self) -> i32 {
        self.proc.as_ref().map_or(0, Proc::pid)
    }
}

pub fn wait_socket(sock: &Path, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sock.join(format!(".s.PGSQL.{port}")).exists() {
        assert!(
            Instant::now() < deadline,
            "postgres did not open its socket"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
}

/// One `pgro instance` under test.
pub struct Instance {
    pub proc: Proc,
    pub port: u16,
    pub probe: u16,
    pub log: PathBuf,
}

pub fn write(path: &Path, s: &str) -> PathBuf {
    std::fs::write(path, s).unwrap();
    path.to_path_buf()
}

pub fn start_instance(
    e: &Env,
    target: &Path,
    pgdata: &Path,
    snapshot: &str,
    read_only: bool,
    run_no: u32,
    ports: Option<(u16, u16)>,
) -> Instance {
    start_instance_with(
        e,
        target,
        pgdata,
        snapshot,
        read_only,
        run_no,
        ports,
        Path::new(env!("CARGO_BIN_EXE_pgro")),
        &[],
    )
}

/// [`start_instance`] with another `pgro` executable (as the pod runs its copy) and more arguments.
#[allow(clippy::too_many_arguments)]
pub fn start_instance_with(
    e: &Env,
    target: &Path,
    pgdata: &Path,
    snapshot: &str,
    read_only: bool,
    run_no: u32,
    ports: Option<(u16, u16)>,
    exe: &Path,
    more: &[&std::ffi::OsStr],
) -> Instance {
    start_instance_on(
        e,
        target,
        pgdata,
        snapshot,
        read_only,
        run_no,
        ports,
        exe,
        more,
        "127.0.0.1",
    )
}

/// [`start_instance_with`] listening on `listen` (another loopback address lets two instances share a port).
#[allow(clippy::too_many_arguments)]
pub fn start_instance_on(
    e: &Env,
    target: &Path,
    pgdata: &Path,
    snapshot: &str,
    read_only: bool,
    run_no: u32,
    ports: Option<(u16, u16)>,
    exe: &Path,
    more: &[&std::ffi::OsStr],
    listen: &str,
) -> Instance {
    let (port, probe) = ports.unwrap_or_else(|| (free_port(), free_port()));
    let log = target.join(format!("instance-{run_no}.log"));
    let apw = write(&target.join("analytics.pw"), &format!("{ANALYTICS_PW}\n"));
    let admin = write(&target.join("admin.pw"), ADMIN_PW);
    let extra = write(&target.join("extra.conf"), "work_mem = '16MB'\n");
    let path = format!(
        "{}:{}",
        e.bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(exe);
    cmd.arg("instance")
        .arg("--pgdata")
        .arg(pgdata)
        .args(["--port", &port.to_string(), "--listen-addresses", listen])
        .arg("--socket-dir")
        .arg(target.join("sock"))
        .args(["--probe-address", &format!("127.0.0.1:{probe}")])
        .args(["--analytics-user", ANALYTICS, "--analytics-password-file"])
        .arg(&apw)
        .arg("--admin-password-file")
        .arg(&admin)
        .arg("--extra-config-file")
        .arg(&extra)
        .args([
            "--snapshot-id",
            snapshot,
            "--snapshot-time",
            "2024-05-01T12:00:00Z",
            "--user",
            &e.user.name,
        ])
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    if read_only {
        cmd.arg("--read-only");
    }
    cmd.args(more);
    let child = cmd.spawn().unwrap();
    Instance {
        proc: Proc::new(child, Some(pgdata.to_path_buf()), Signal::SIGTERM),
        port,
        probe,
        log,
    }
}

impl Instance {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Some(s) = self.proc.exited() {
                panic!("pgro instance exited ({s}) before ready:\n{}", self.log());
            }
            if http_status(self.probe, "/readyz") == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not ready in time:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub async fn analytics(&self, db: &str) -> Client {
        connect_tcp(self.port, ANALYTICS, ANALYTICS_PW, db)
            .await
            .unwrap_or_else(|e| panic!("analytics login to {db}: {e}\n{}", self.log()))
    }
}

/// The first column of the first row `sql` returns (simple protocol, as text); empty when no row.
///
/// # Panics
/// The query fails.
pub async fn first_value(c: &Client, sql: &str) -> String {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap_or_default()
}

/// A server certificate as the PostgreSQL pod gets it: `tls.crt`, `tls.key` and `ca.crt` in `dir`, each
/// readable by the PostgreSQL user's group only (fsGroup), as a Secret volume presents them.
pub struct TlsFiles {
    pub crt: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl TlsFiles {
    pub fn write(e: &Env, dir: &Path, issued: &pgro::operator::certificates::Issued) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let f = Self {
            crt: dir.join("tls.crt"),
            key: dir.join("tls.key"),
            ca: dir.join("ca.crt"),
        };
        secret_file(e, &f.crt, &issued.tls_crt);
        secret_file(e, &f.key, &issued.tls_key);
        secret_file(e, &f.ca, &issued.ca_crt);
        f
    }

    /// `pgro instance`'s TLS arguments for these files, the certificate checked under `name`.
    pub fn args<'a>(&'a self, name: &'a str) -> Vec<&'a std::ffi::OsStr> {
        vec![
            "--tls-cert-file".as_ref(),
            self.crt.as_os_str(),
            "--tls-key-file".as_ref(),
            self.key.as_os_str(),
            "--tls-ca-file".as_ref(),
            self.ca.as_os_str(),
            "--tls-server-name".as_ref(),
            name.as_ref(),
        ]
    }
}

/// Writes `text` to `path` as a Secret volume file: owned by root, group the PostgreSQL user's, mode 0640.
pub fn secret_file(e: &Env, path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::os::unix::fs::chown(path, Some(0), Some(e.user.gid)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o640)).unwrap();
}
