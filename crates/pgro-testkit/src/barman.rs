//! Real barman-cloud object stores, written the way CloudNativePG writes them (barman-restic-format.md
//! A1.1, A7): a PostgreSQL cluster whose `archive_command` is `barman-cloud-wal-archive` into MinIO, base
//! backups by `barman-cloud-backup --user postgres --name … --immediate-checkpoint` with `PGHOST` the
//! socket directory, and the oracle restore: `barman-cloud-restore`, then replay with
//! `barman-cloud-wal-restore` as `restore_command` ([`BarmanCluster::restore_with_barman`]).
//!
//! Everything runs as the PostgreSQL user of the test infrastructure; the object-store credentials reach
//! barman through the server's environment (which `archive_command` and `restore_command` inherit), never
//! through a command line. Layout under the directory given to [`BarmanCluster::start`]:
//!
//! ```text
//! <dir>/pgdata/        PGDATA (initdb --data-checksums; 16 MiB WAL segments, as CNPG)
//! <dir>/ts1/           tablespace ts1's location when BarmanOptions::tablespace
//! <dir>/sock/          the server's Unix socket (no TCP)
//! <dir>/spool/         TMPDIR of barman-cloud-backup
//! <dir>/postgres.log   the server's output
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context as _, ensure};

use crate::fixtures::{INITDB_ARGS, MINIO_SECRET, MINIO_USER, Minio};
use crate::infra::Components;
pub use crate::pgrun::dump_difference;
use crate::pgrun::{PgUser, Server, free_port};

/// How the source cluster archives and backs up.
#[derive(Debug, Clone, Default)]
pub struct BarmanOptions {
    /// PostgreSQL major.
    pub major: u32,
    /// `barman-cloud-wal-archive` compression flag (`--gzip`, `--bzip2`, `--snappy`, …), none by default
    /// (CNPG's default).
    pub wal_compression: Option<String>,
    /// A tablespace `ts1` with a table `ts_t`.
    pub tablespace: bool,
}

/// A running cluster archiving into, and backed up into, a barman-cloud object store in MinIO. Stopped
/// (fast shutdown, by PID) when dropped or by [`BarmanCluster::stop`].
#[derive(Debug)]
pub struct BarmanCluster {
    dir: PathBuf,
    pg: PgUser,
    bin: PathBuf,
    endpoint: String,
    destination: String,
    server_name: String,
    server: Server,
}

/// The credentials and quirks boto3 needs for MinIO: the two `*_CHECKSUM_*` settings keep new boto3 from
/// sending checksum headers older S3 servers refuse.
fn s3_env() -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", MINIO_USER),
        ("AWS_SECRET_ACCESS_KEY", MINIO_SECRET),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required"),
        ("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

impl BarmanCluster {
    /// `initdb` of `<dir>/pgdata`, then PostgreSQL with `archive_command` = `barman-cloud-wal-archive` into
    /// `s3://<bucket>/<prefix>` under `server_name`, and a small data set (table `t`, 1000 rows; `ts_t` in
    /// `ts1` with a tablespace). `dir` must not contain spaces or quotes.
    ///
    /// # Errors
    /// [`crate::Unavailable`] when barman or the PostgreSQL major is not installed; any step failing.
    pub async fn start(
        components: &Components,
        dir: &Path,
        minio: &Minio,
        (bucket, prefix, server_name): (&str, &str, &str),
        options: &BarmanOptions,
    ) -> anyhow::Result<Self> {
        let bin = components.path("PGRO_BARMAN_BIN")?;
        let pg_bin = components.postgres_bin(options.major)?;
        let psql = match pg_bin.join("psql") {
            p if p.exists() => p,
            _ => components.path("PGRO_PSQL")?,
        };
        std::fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        ensure!(
            !dir.to_string_lossy().contains([' ', '\'', '"']),
            "{} contains a space or quote (it goes into archive_command)",
            dir.display()
        );
        let (uid, gid) = components.postgres_user();
        let pg = PgUser {
            uid,
            gid,
            pg_bin,
            psql,
        };
        let data = dir.join("pgdata");
        for (sub, mode) in [("pgdata", 0o700), ("sock", 0o700), ("spool", 0o700)] {
            pg.own_dir(&dir.join(sub), mode)?;
        }
        if options.tablespace {
            pg.own_dir(&dir.join("ts1"), 0o700)?;
        }
        let initdb = pg
            .spec("initdb", pg.pg_bin.join("initdb"))
            .arg("--data-checksums")
            .args(INITDB_ARGS)
            .arg(&data);
        pg.run(initdb).await?;

        let endpoint = format!("http://{}", minio.endpoint());
        let destination = format!("s3://{bucket}/{}", prefix.trim_matches('/'));
        let mut archive = format!(
            "archive_command={} --endpoint-url {endpoint} --cloud-provider aws-s3",
            bin.join("barman-cloud-wal-archive").display()
        );
        if let Some(c) = &options.wal_compression {
            archive.push(' ');
            archive.push_str(c);
        }
        archive.push_str(&format!(" {destination} {server_name} %p"));
        let settings = [
            "archive_mode=on".to_owned(),
            archive,
            "wal_level=replica".to_owned(),
            "fsync=off".to_owned(),
        ];
        let port = free_port()?;
        let server = Server::start_with_env(
            &pg,
            &data,
            &dir.join("sock"),
            &dir.join("postgres.log"),
            port,
            &settings,
            &s3_env(),
        )
        .await?;
        let cluster = Self {
            dir,
            pg,
            bin,
            endpoint,
            destination,
            server_name: server_name.to_owned(),
            server,
        };
        cluster.psql(
            "CREATE TABLE t (id int PRIMARY KEY, v text);
             INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g;",
        )?;
        if options.tablespace {
            cluster.psql(&format!(
                "CREATE TABLESPACE ts1 LOCATION '{}'",
                cluster.dir.join("ts1").display()
            ))?;
            cluster.psql(
                "CREATE TABLE ts_t (id int, v text) TABLESPACE ts1;
                 INSERT INTO ts_t SELECT g, md5((-g)::text) FROM generate_series(1, 5000) g;",
            )?;
        }
        Ok(cluster)
    }

    /// A barman-cloud tool as the PostgreSQL user, with the store's credentials, `PGHOST`/`PGPORT` of the
    /// cluster and `TMPDIR` in the fixture's spool.
    async fn tool(&self, tool: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut spec = self
            .pg
            .spec(&format!("{tool} {}", args.join(" ")), self.bin.join(tool))
            .args([
                "--endpoint-url",
                &self.endpoint,
                "--cloud-provider",
                "aws-s3",
            ])
            .args(args)
            .env("PGHOST", &self.server.socket)
            .env("PGPORT", self.server.port.to_string())
            .env("TMPDIR", self.dir.join("spool"));
        for (k, v) in s3_env() {
            spec = spec.env(k, v);
        }
        self.pg.run(spec).await
    }

    /// `barman-cloud-backup` as CNPG runs it, named `name`, with extra flags (`--gzip`, `--lz4`,
    /// `--max-archive-size 8MB`, …).
    ///
    /// # Errors
    /// The backup fails.
    pub async fn backup(&self, name: &str, extra: &[&str]) -> anyhow::Result<()> {
        let mut args = vec![
            "--user",
            "postgres",
            "--name",
            name,
            "--immediate-checkpoint",
        ];
        args.extend_from_slice(extra);
        args.extend([self.destination.as_str(), self.server_name.as_str()]);
        self.tool("barman-cloud-backup", &args).await.map(drop)
    }

    /// `barman-cloud-backup-list --format json`: the store's backups as barman reports them.
    ///
    /// # Errors
    /// The listing fails or is not JSON.
    pub async fn list(&self) -> anyhow::Result<serde_json::Value> {
        let out = self
            .tool(
                "barman-cloud-backup-list",
                &["--format", "json", &self.destination, &self.server_name],
            )
            .await?;
        serde_json::from_str(&out).with_context(|| format!("backup list is not JSON: {out}"))
    }

    /// `barman-cloud-wal-restore` of WAL file `name` into `dest` (its directory must be writable by the
    /// PostgreSQL user): the reference bytes of a WAL fetch.
    ///
    /// # Errors
    /// The tool fails (also when the archive lacks `name`).
    pub async fn wal_restore(&self, name: &str, dest: &Path) -> anyhow::Result<()> {
        let dest = dest.to_string_lossy().into_owned();
        self.tool(
            "barman-cloud-wal-restore",
            &[&self.destination, &self.server_name, name, &dest],
        )
        .await
        .map(drop)
    }

    /// A directory owned by the PostgreSQL user.
    ///
    /// # Errors
    /// Creating or chowning it fails.
    pub fn own_dir(&self, dir: &Path) -> anyhow::Result<()> {
        self.pg.own_dir(dir, 0o700)
    }

    /// `pg_switch_wal()` and a wait until the switched-from segment is archived; returns its name.
    ///
    /// # Errors
    /// SQL fails or archiving does not catch up within 60 s.
    pub async fn switch_wal(&self) -> anyhow::Result<String> {
        let seg = self.psql("SELECT pg_walfile_name(pg_switch_wal())")?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let last = self.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")?;
            if last.as_str() >= seg.as_str() {
                return Ok(seg);
            }
            ensure!(
                std::time::Instant::now() < deadline,
                "{seg} not archived within 60 s (last archived {last:?}):\n{}",
                crate::process::file_tail(&self.dir.join("postgres.log"), 3000)
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// The oracle: `barman-cloud-restore` of `backup_id` into `dest` (tablespace `ts1` into `<dest>.ts1`
    /// when there is one), then PostgreSQL on it replaying with `barman-cloud-wal-restore` to the end of
    /// the archive and promoting. Returns the running copy.
    ///
    /// # Errors
    /// The restore fails or PostgreSQL does not finish recovery within 60 s.
    pub async fn restore_with_barman(
        &self,
        backup_id: &str,
        dest: &Path,
        tablespace: bool,
    ) -> anyhow::Result<RestoredCopy> {
        self.barman_cloud_restore(backup_id, dest, tablespace)
            .await?;
        self.start_copy(dest).await
    }

    /// `barman-cloud-restore` of `backup_id` into `dest` only (tablespace `ts1` into `<dest>.ts1` when
    /// `tablespace`), nothing started: the reference tree. Returns the tablespace's directory.
    ///
    /// # Errors
    /// The restore fails.
    pub async fn barman_cloud_restore(
        &self,
        backup_id: &str,
        dest: &Path,
        tablespace: bool,
    ) -> anyhow::Result<PathBuf> {
        self.pg.own_dir(dest, 0o700)?;
        let ts = dest.with_extension("ts1");
        let ts_arg = format!("ts1:{}", ts.display());
        let mut args = Vec::new();
        if tablespace {
            self.pg.own_dir(&ts, 0o700)?;
            args.extend(["--tablespace", ts_arg.as_str()]);
        }
        let dest_s = dest.to_string_lossy().into_owned();
        args.extend([
            self.destination.as_str(),
            self.server_name.as_str(),
            backup_id,
            dest_s.as_str(),
        ]);
        self.tool("barman-cloud-restore", &args).await?;
        Ok(ts)
    }

    /// PostgreSQL on a restored data directory `dest` (owned by the PostgreSQL user): `recovery.signal`,
    /// `restore_command` = `barman-cloud-wal-restore`, archiving off; waits until it has replayed the
    /// archive and promoted. Its socket directory and log are `dest` with extensions `sock` and `log`.
    ///
    /// # Errors
    /// PostgreSQL does not start or does not finish recovery within 60 s.
    pub async fn start_copy(&self, dest: &Path) -> anyhow::Result<RestoredCopy> {
        self.start_recovery(dest, true).await
    }

    /// PostgreSQL on a data directory restored *with its own recovery settings* (what `pgro restore
    /// --source` writes: `recovery.signal`, `restore_command` = `pgro wal-fetch`, archiving off; owned by
    /// the PostgreSQL user); waits until it has replayed and promoted, as [`Self::start_copy`].
    ///
    /// # Errors
    /// PostgreSQL does not start or does not finish recovery within 60 s.
    pub async fn start_restored(&self, dest: &Path) -> anyhow::Result<RestoredCopy> {
        self.start_recovery(dest, false).await
    }

    async fn start_recovery(&self, dest: &Path, with_barman: bool) -> anyhow::Result<RestoredCopy> {
        let sock = dest.with_extension("sock");
        self.pg.own_dir(&sock, 0o700)?;
        if !with_barman {
            return self
                .wait_promoted(dest, &sock, &["fsync=off".to_owned()])
                .await;
        }
        std::fs::write(dest.join("recovery.signal"), b"")?;
        std::os::unix::fs::chown(
            dest.join("recovery.signal"),
            Some(self.pg.uid),
            Some(self.pg.gid),
        )?;
        let restore = format!(
            "restore_command={} --endpoint-url {} --cloud-provider aws-s3 {} {} %f %p",
            self.bin.join("barman-cloud-wal-restore").display(),
            self.endpoint,
            self.destination,
            self.server_name
        );
        let settings = [
            restore,
            "archive_mode=off".to_owned(),
            "recovery_target_action=promote".to_owned(),
            "fsync=off".to_owned(),
        ];
        self.wait_promoted(dest, &sock, &settings).await
    }

    async fn wait_promoted(
        &self,
        dest: &Path,
        sock: &Path,
        settings: &[String],
    ) -> anyhow::Result<RestoredCopy> {
        let log = dest.with_extension("log");
        let server = Server::start_with_env(
            &self.pg,
            dest,
            sock,
            &log,
            free_port()?,
            settings,
            &s3_env(),
        )
        .await?;
        let copy = RestoredCopy {
            pg: self.pg.clone(),
            server,
            log,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while copy.psql("SELECT pg_is_in_recovery()")? == "t" {
            ensure!(
                std::time::Instant::now() < deadline,
                "the copy did not finish recovery within 60 s:\n{}",
                crate::process::file_tail(&copy.log, 3000)
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        Ok(copy)
    }

    /// `psql -c sql` on the cluster (unaligned, tuples only).
    ///
    /// # Errors
    /// The SQL fails.
    pub fn psql(&self, sql: &str) -> anyhow::Result<String> {
        self.pg.psql(&self.server.socket, self.server.port, sql)
    }

    /// `pg_dumpall` of the cluster, tablespace locations masked.
    ///
    /// # Errors
    /// The dump fails.
    pub async fn dumpall(&self) -> anyhow::Result<String> {
        self.pg.dumpall(&self.server.socket, self.server.port).await
    }

    /// The system identifier (`pg_control_system()`).
    ///
    /// # Errors
    /// The SQL fails.
    pub fn system_id(&self) -> anyhow::Result<u64> {
        Ok(self
            .psql("SELECT system_identifier FROM pg_control_system()")?
            .trim()
            .parse()?)
    }

    /// `s3://<bucket>/<prefix>`, CNPG's `destinationPath`.
    #[must_use]
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// Stops PostgreSQL (fast shutdown).
    pub async fn stop(mut self) {
        self.server.stop().await;
    }
}

/// PostgreSQL running on a copy restored by barman-cloud; stopped when dropped.
#[derive(Debug)]
pub struct RestoredCopy {
    pg: PgUser,
    server: Server,
    log: PathBuf,
}

impl RestoredCopy {
    /// `pg_dumpall` of the copy, tablespace locations masked.
    ///
    /// # Errors
    /// The dump fails.
    pub async fn dumpall(&self) -> anyhow::Result<String> {
        self.pg.dumpall(&self.server.socket, self.server.port).await
    }

    /// The copy's server log so far.
    #[must_use]
    pub fn log(&self) -> String {
        crate::process::file_tail(&self.log, 20_000)
    }

    /// `psql -c sql` on the copy.
    ///
    /// # Errors
    /// The SQL fails.
    pub fn psql(&self, sql: &str) -> anyhow::Result<String> {
        self.pg.psql(&self.server.socket, self.server.port, sql)
    }

    /// Stops PostgreSQL (fast shutdown).
    pub async fn stop(mut self) {
        self.server.stop().await;
    }
}

/// What every barman-cloud test starts from: a test root, MinIO with bucket `backups`, and a source
/// cluster archiving into `s3://backups/<prefix>` as `server_name`. Fields drop in order: the cluster
/// stops before MinIO, and the directory goes last.
#[derive(Debug)]
pub struct BarmanWorld {
    /// The source cluster.
    pub cluster: BarmanCluster,
    /// The object store.
    pub minio: Minio,
    /// The test's directory (MinIO's data in `minio/`, the cluster in `src/`).
    pub root: tempfile::TempDir,
}

impl BarmanWorld {
    /// The bucket every world uses.
    pub const BUCKET: &'static str = "backups";

    /// Starts the world for `test`; `None` (the test returns) when a component is missing outside CI,
    /// a panic under `CI=true` (see [`crate::skip_unless_ci`]).
    ///
    /// # Panics
    /// A component fails to start for another reason.
    pub async fn start(
        test: &str,
        (prefix, server_name): (&str, &str),
        options: &BarmanOptions,
    ) -> Option<Self> {
        let root = crate::fixtures::test_root("barman-");
        let components = Components::load();
        let minio = crate::skip_unless_ci(
            Minio::start(&components, &root.path().join("minio"), &[Self::BUCKET]).await,
            test,
        )?;
        let cluster = crate::skip_unless_ci(
            BarmanCluster::start(
                &components,
                &root.path().join("src"),
                &minio,
                (Self::BUCKET, prefix, server_name),
                options,
            )
            .await,
            test,
        )?;
        Some(Self {
            cluster,
            minio,
            root,
        })
    }
}
