//! The source cluster (PostgreSQL archiving to and backed up into real repositories) and a cluster started
//! on a restored copy.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};

use super::STANZA;
use super::options::{BackupType, ClusterOptions, PgbrVersion, RepoOptions, Storage};
use super::runner::{Runner, Server, free_port};
use crate::fixtures::{INITDB_ARGS, MINIO_SECRET, MINIO_USER};
use crate::infra::Components;
use crate::pgrun::PgUser;

/// A running PostgreSQL cluster archiving to, and backed up into, real pgBackRest repositories.
/// Stopped (fast shutdown, by PID) when dropped or by [`SourceCluster::stop`].
#[derive(Debug)]
pub struct SourceCluster {
    dir: PathBuf,
    options: ClusterOptions,
    runner: Runner,
    server: Server,
}

impl SourceCluster {
    /// `initdb` (1 MiB WAL segments, data checksums) of `<dir>/pgdata`, writes `<dir>/pgbackrest.conf`,
    /// starts PostgreSQL with `archive_mode=on` and `archive_command` = `pgbackrest archive-push` (to every
    /// repository), runs `stanza-create`, then creates the data set (see the module docs). `dir` is
    /// created if needed and set to mode 0755; its path must not contain spaces or quotes (it goes into
    /// `archive_command`), and every parent must be traversable by the PostgreSQL user.
    ///
    /// # Errors
    /// [`crate::Unavailable`] when pgBackRest or the PostgreSQL major is not installed; invalid options
    /// (block incremental or S3 with 2.45); any step failing.
    pub async fn start(
        components: &Components,
        dir: &Path,
        options: ClusterOptions,
    ) -> anyhow::Result<Self> {
        let pgbackrest = components.path(options.version.key())?;
        let pg = PgUser::for_major(components, options.major)?;
        ensure!(
            !options.repos.is_empty(),
            "at least one repository is needed"
        );
        for (i, repo) in options.repos.iter().enumerate() {
            let n = i + 1;
            ensure!(
                !repo.block || repo.bundle,
                "repo{n}: block incremental needs bundles"
            );
            ensure!(
                repo.bundle || (repo.bundle_limit.is_none() && repo.bundle_size.is_none()),
                "repo{n}: bundle limit/size without bundles"
            );
            if options.version == PgbrVersion::V245 {
                ensure!(
                    !repo.block,
                    "repo{n}: block incremental needs pgBackRest >= 2.46 (use PgbrVersion::Current)"
                );
                ensure!(
                    repo.storage == Storage::Posix,
                    "repo{n}: pgBackRest 2.45 speaks only HTTPS to S3 and the MinIO fixture is plain HTTP"
                );
            }
        }
        std::fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        ensure!(
            !dir.to_string_lossy().contains([' ', '\'', '"']),
            "{} contains a space or quote (it goes into archive_command)",
            dir.display()
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        let (uid, gid) = (pg.uid, pg.gid);
        let runner = Runner {
            pg,
            pgbackrest,
            conf: dir.join("pgbackrest.conf"),
        };
        let data = dir.join("pgdata");
        runner.own_dir(&data, 0o700)?;
        runner.own_dir(&dir.join("sock"), 0o700)?;
        for sub in ["log", "lock", "spool"] {
            runner.own_dir(&dir.join("pgbackrest").join(sub), 0o750)?;
        }
        for (i, repo) in options.repos.iter().enumerate() {
            if repo.storage == Storage::Posix {
                runner.own_dir(&dir.join(format!("repo{}", i + 1)), 0o750)?;
            }
        }
        if options.tablespace {
            runner.own_dir(&dir.join("ts1"), 0o700)?;
        }

        let mut initdb = runner
            .spec("initdb", runner.pg_bin.join("initdb"))
            .args(["--wal-segsize=1", "--data-checksums"]);
        if options.pg_wal_link {
            let wal = dir.join("pgwal");
            runner.own_dir(&wal, 0o700)?;
            initdb = initdb.arg(format!("--waldir={}", wal.display()));
        }
        runner.run(initdb.args(INITDB_ARGS).arg(&data)).await?;

        let port = free_port()?;
        let conf = Self::conf_text(&dir, &options, port);
        std::fs::write(&runner.conf, conf)?;
        std::os::unix::fs::chown(&runner.conf, Some(uid), Some(gid))?;
        std::fs::set_permissions(&runner.conf, std::fs::Permissions::from_mode(0o640))?;

        let archive_command = format!(
            "archive_command={} --config={} --stanza={STANZA} archive-push %p",
            runner.pgbackrest.display(),
            runner.conf.display()
        );
        let settings = [
            "archive_mode=on".to_owned(),
            archive_command,
            "wal_level=replica".to_owned(),
            "fsync=off".to_owned(),
            "max_wal_senders=2".to_owned(),
        ];
        let server = Server::start(
            &runner,
            &data,
            &dir.join("sock"),
            &dir.join("postgres.log"),
            port,
            &settings,
        )
        .await?;
        // From here on, dropping `cluster` (on any error) stops the server.
        let cluster = Self {
            dir,
            options,
            runner,
            server,
        };
        cluster.pgbackrest(&["stanza-create"]).await?;
        cluster.create_data()?;
        Ok(cluster)
    }

    fn conf_text(dir: &Path, options: &ClusterOptions, port: u16) -> String {
        let d = dir.display();
        let mut c = String::new();
        let _ = writeln!(c, "[global]");
        let _ = writeln!(c, "log-path={d}/pgbackrest/log");
        let _ = writeln!(c, "lock-path={d}/pgbackrest/lock");
        let _ = writeln!(c, "spool-path={d}/pgbackrest/spool");
        let _ = writeln!(c, "log-level-console=warn");
        let _ = writeln!(c, "log-level-file=detail");
        let _ = writeln!(c, "start-fast=y");
        let _ = writeln!(c, "process-max=2");
        let _ = writeln!(c, "archive-async=n");
        let _ = writeln!(c, "archive-timeout=30");
        let _ = writeln!(
            c,
            "compress-type={}",
            options.repos.first().map_or("gz", |r| r.compress.as_str())
        );
        for (i, repo) in options.repos.iter().enumerate() {
            let n = i + 1;
            let _ = writeln!(c);
            match &repo.storage {
                Storage::Posix => {
                    let _ = writeln!(c, "repo{n}-path={d}/repo{n}");
                }
                Storage::S3 { port, bucket } => {
                    let _ = writeln!(c, "repo{n}-type=s3");
                    let path = repo
                        .s3_path
                        .clone()
                        .unwrap_or_else(|| format!("/pgbackrest/repo{n}"));
                    let _ = writeln!(c, "repo{n}-path={path}");
                    let _ = writeln!(c, "repo{n}-s3-bucket={bucket}");
                    let _ = writeln!(c, "repo{n}-s3-endpoint=http://127.0.0.1");
                    let _ = writeln!(c, "repo{n}-storage-port={port}");
                    let _ = writeln!(c, "repo{n}-s3-uri-style=path");
                    let _ = writeln!(c, "repo{n}-s3-region=us-east-1");
                    let _ = writeln!(c, "repo{n}-s3-key={MINIO_USER}");
                    let _ = writeln!(c, "repo{n}-s3-key-secret={MINIO_SECRET}");
                }
            }
            let _ = writeln!(c, "repo{n}-retention-full=99");
            let _ = writeln!(c, "repo{n}-bundle={}", yn(repo.bundle));
            if options.version == PgbrVersion::Current {
                let _ = writeln!(c, "repo{n}-block={}", yn(repo.block));
            }
            if let Some(limit) = &repo.bundle_limit {
                let _ = writeln!(c, "repo{n}-bundle-limit={limit}");
            }
            if let Some(size) = &repo.bundle_size {
                let _ = writeln!(c, "repo{n}-bundle-size={size}");
            }
            if let Some(pass) = &repo.cipher_pass {
                let _ = writeln!(c, "repo{n}-cipher-type=aes-256-cbc");
                let _ = writeln!(c, "repo{n}-cipher-pass={pass}");
            }
        }
        let _ = writeln!(c);
        let _ = writeln!(c, "[{STANZA}]");
        let _ = writeln!(c, "pg1-path={d}/pgdata");
        let _ = writeln!(c, "pg1-port={port}");
        let _ = writeln!(c, "pg1-socket-path={d}/sock");
        let _ = writeln!(c, "pg1-user=postgres");
        c
    }

    /// Creates the data set (one psql call per statement group: `CREATE TABLESPACE` cannot run in the
    /// implicit transaction of a multi-statement `psql -c`).
    fn create_data(&self) -> anyhow::Result<()> {
        self.psql(
            "CREATE TABLE t (id int PRIMARY KEY, v text);
             INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g;
             CREATE TABLE big (id int, pad text);
             INSERT INTO big SELECT g, repeat(md5(g::text), 2) FROM generate_series(1, 35000) g;",
        )?;
        if self.options.tablespace {
            self.psql(&format!(
                "CREATE TABLESPACE ts1 LOCATION '{}'",
                self.dir.join("ts1").display()
            ))?;
            self.psql(
                "CREATE TABLE ts_t (id int, v text) TABLESPACE ts1;
                 INSERT INTO ts_t SELECT g, md5((-g)::text) FROM generate_series(1, 5000) g;",
            )?;
        }
        self.psql("CHECKPOINT").map(drop)
    }

    /// Changes every table (round `round` ≥ 1 updates a tenth of `t`, rows spread over all of `big`'s
    /// pages, a seventh of `ts_t`, inserts a row into `t`), then `CHECKPOINT`. Call it between backups.
    ///
    /// # Errors
    /// The SQL fails.
    pub fn change(&self, round: u32) -> anyhow::Result<()> {
        let mut sql = format!(
            "UPDATE t SET v = md5(v || '{round}') WHERE id % 10 = {r10};
             INSERT INTO t VALUES ({id}, 'round {round}');
             UPDATE big SET pad = upper(pad) || '{round}' WHERE id % 500 = {r500};",
            r10 = round % 10,
            id = 100_000 + round,
            r500 = round % 500,
        );
        if self.options.tablespace {
            let _ = write!(
                sql,
                "UPDATE ts_t SET v = v || '{round}' WHERE id % 7 = {};",
                round % 7
            );
        }
        sql.push_str("CHECKPOINT;");
        self.psql(&sql).map(drop)
    }

    /// SQL returning one line per table, `name|rows|sum(id)|md5 of all rows`; run it on a restored copy
    /// ([`RestoredCluster::psql`]) and compare with [`SourceCluster::summary`] taken at backup time.
    pub fn summary_sql(&self) -> String {
        let mut tables = vec!["t", "big"];
        if self.options.tablespace {
            tables.push("ts_t");
        }
        tables
            .iter()
            .map(|t| {
                format!(
                    "SELECT '{t}', count(*), sum(id), md5(string_agg(x::text, ',' ORDER BY id, x::text)) FROM {t} x"
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ")
            + " ORDER BY 1"
    }

    /// [`SourceCluster::summary_sql`] on this cluster now.
    ///
    /// # Errors
    /// The SQL fails.
    pub fn summary(&self) -> anyhow::Result<String> {
        self.psql(&self.summary_sql())
    }

    /// Runs `sql` as `postgres` in database `postgres`; psql's unaligned, tuples-only output.
    ///
    /// # Errors
    /// psql fails.
    pub fn psql(&self, sql: &str) -> anyhow::Result<String> {
        self.runner.psql(&self.server.socket, self.server.port, sql)
    }

    /// Runs `pgbench <args…>` against database `postgres` as the PostgreSQL user (`-i …` to initialise,
    /// `-T <s> -c <n>` for load); its output. A child of the test (`Command`), waited for.
    ///
    /// # Errors
    /// pgbench fails (the error carries its output).
    pub fn pgbench(&self, args: &[&str]) -> anyhow::Result<String> {
        use std::os::unix::process::CommandExt as _;
        let out = std::process::Command::new(self.runner.pg_bin.join("pgbench"))
            .uid(self.runner.uid)
            .gid(self.runner.gid)
            .arg("-h")
            .arg(&self.server.socket)
            .args(["-p", &self.server.port.to_string(), "-U", "postgres"])
            .args(args)
            .arg("postgres")
            .output()?;
        if !out.status.success() {
            anyhow::bail!(
                "pgbench {args:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `pgbackrest --config=<conf> --stanza=db <args…>` as the PostgreSQL user; its stdout.
    ///
    /// # Errors
    /// pgBackRest fails (the error carries its output).
    pub async fn pgbackrest(&self, args: &[&str]) -> anyhow::Result<String> {
        self.runner.pgbackrest(args).await
    }

    /// `pgbackrest info --output=json --repo=<repo>`.
    ///
    /// # Errors
    /// pgBackRest fails or prints no JSON.
    pub async fn info(&self, repo: usize) -> anyhow::Result<serde_json::Value> {
        let out = self
            .pgbackrest(&["--output=json", &format!("--repo={repo}"), "info"])
            .await?;
        serde_json::from_str(&out).with_context(|| format!("pgbackrest info printed {out:?}"))
    }

    /// The labels of the backups in `repo`, oldest first.
    ///
    /// # Errors
    /// As [`SourceCluster::info`].
    pub async fn labels(&self, repo: usize) -> anyhow::Result<Vec<String>> {
        let info = self.info(repo).await?;
        let mut labels: Vec<String> = info
            .as_array()
            .and_then(|stanzas| stanzas.first())
            .and_then(|stanza| stanza["backup"].as_array())
            .map(|backups| {
                backups
                    .iter()
                    .filter_map(|b| Some(b["label"].as_str()?.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        labels.sort();
        Ok(labels)
    }

    /// `pgbackrest --repo=<repo> --type=<kind> --compress-type=<repo's> backup`; returns the new label.
    ///
    /// # Errors
    /// The backup fails or no single new label appears.
    pub async fn backup(&self, repo: usize, kind: BackupType) -> anyhow::Result<String> {
        let options = self.repo(repo)?;
        let before: BTreeSet<String> = self.labels(repo).await?.into_iter().collect();
        self.pgbackrest(&[
            &format!("--repo={repo}"),
            &format!("--type={}", kind.as_str()),
            &format!("--compress-type={}", options.compress.as_str()),
            "backup",
        ])
        .await?;
        let new: Vec<String> = self
            .labels(repo)
            .await?
            .into_iter()
            .filter(|l| !before.contains(l))
            .collect();
        match new.as_slice() {
            [label] => Ok(label.clone()),
            _ => bail!("expected one new backup in repo{repo}, found {new:?}"),
        }
    }

    /// `pgbackrest restore --repo=<repo> --set=<label> --pg1-path=<target>` as the PostgreSQL user into
    /// `target` (created, mode 0700; it must be empty). Unless `extra` sets them, it adds
    /// `--type=immediate --target-action=promote` and `--tablespace-map-all=<target>-tblspc` (so
    /// tablespace `ts1` lands in `<target>-tblspc/ts1`); `--target-action` is only added when `extra`
    /// has no `--type`. Other links (`pg_wal`) become plain directories, as pgBackRest does without
    /// `--link-all`. `extra` options go before the command. The restored `postgresql.auto.conf` gets
    /// pgBackRest's `restore_command` (`archive-get` from this fixture's repositories).
    ///
    /// # Errors
    /// pgBackRest fails.
    pub async fn restore_with_pgbackrest(
        &self,
        repo: usize,
        label: &str,
        target: &Path,
        extra: &[&str],
    ) -> anyhow::Result<()> {
        self.repo(repo)?;
        self.runner.own_dir(target, 0o700)?;
        let target = target.canonicalize()?;
        let has = |name: &str| extra.iter().any(|a| a.starts_with(name));
        let mut args = vec![
            format!("--repo={repo}"),
            format!("--set={label}"),
            format!("--pg1-path={}", target.display()),
        ];
        if !has("--type") {
            args.push("--type=immediate".into());
        }
        if !has("--target-action") && !has("--type") {
            args.push("--target-action=promote".into());
        }
        if !has("--tablespace-map") {
            let ts = PathBuf::from(format!("{}-tblspc", target.display()));
            self.runner.own_dir(&ts, 0o700)?;
            args.push(format!("--tablespace-map-all={}", ts.display()));
        }
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args.push("restore".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.pgbackrest(&args).await.map(drop)
    }

    /// Starts PostgreSQL (this cluster's major, as the PostgreSQL user) on a restored data directory,
    /// on its own Unix socket (`<data>.sock`) with `archive_mode=off` (so a promoted copy never pushes
    /// into the source's repositories) and `settings` (`name=value`), and waits until it answers
    /// queries — and, if `until_primary`, until recovery has ended (`pg_is_in_recovery()` false).
    /// Its output goes to `<data>.log`.
    ///
    /// # Errors
    /// The server does not start or recovery does not end within 60 s.
    pub async fn start_restored(
        &self,
        data: &Path,
        settings: &[&str],
        until_primary: bool,
    ) -> anyhow::Result<RestoredCluster> {
        let socket = data.with_extension("sock");
        self.runner.own_dir(&socket, 0o700)?;
        let log = data.with_extension("log");
        let mut all = vec!["archive_mode=off".to_owned()];
        all.extend(settings.iter().map(|s| (*s).to_owned()));
        let server = Server::start(&self.runner, data, &socket, &log, free_port()?, &all).await?;
        let copy = RestoredCluster {
            runner: self.runner.clone(),
            server,
            data: data.to_owned(),
            log,
        };
        if until_primary {
            let deadline = Instant::now() + Duration::from_secs(60);
            while copy.psql("SELECT pg_is_in_recovery()")? != "f" {
                if Instant::now() > deadline {
                    bail!(
                        "{} still in recovery after 60 s:\n{}",
                        data.display(),
                        crate::process::file_tail(&copy.log, 3000)
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(copy)
    }

    /// `pg_switch_wal()`, then waits (≤ 30 s) until that segment is archived; returns its name.
    ///
    /// # Errors
    /// The SQL fails or archiving does not catch up.
    pub async fn switch_wal(&self) -> anyhow::Result<String> {
        // Make sure the segment is not empty, or pg_switch_wal() does nothing.
        self.psql("SELECT txid_current()")?;
        let segment = self.psql("SELECT pg_walfile_name(pg_switch_wal())")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let archived =
                self.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")?;
            if archived.len() >= 24 && archived[..24] >= *segment.as_str() {
                return Ok(segment);
            }
            if Instant::now() > deadline {
                bail!("{segment} not archived within 30 s (last archived: {archived:?})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The options of repository `repo` (1-based).
    ///
    /// # Errors
    /// No such repository.
    pub fn repo(&self, repo: usize) -> anyhow::Result<&RepoOptions> {
        repo.checked_sub(1)
            .and_then(|i| self.options.repos.get(i))
            .with_context(|| format!("no repo{repo} (there are {})", self.options.repos.len()))
    }

    /// `repoN-path`: `<dir>/repoN` for posix repositories; for S3 ones the path inside the bucket,
    /// [`RepoOptions::s3_path`] or `/pgbackrest/repoN` (object keys `pgbackrest/repoN/…`).
    pub fn repo_path(&self, repo: usize) -> PathBuf {
        match self.repo(repo) {
            Ok(r) if matches!(r.storage, Storage::S3 { .. }) => PathBuf::from(
                r.s3_path
                    .clone()
                    .unwrap_or_else(|| format!("/pgbackrest/repo{repo}")),
            ),
            _ => self.dir.join(format!("repo{repo}")),
        }
    }

    /// `<dir>/pgbackrest.conf`.
    pub fn conf_path(&self) -> PathBuf {
        self.runner.conf.clone()
    }

    /// The pgBackRest binary.
    pub fn bin(&self) -> PathBuf {
        self.runner.pgbackrest.clone()
    }

    /// The PostgreSQL `bin` directory.
    pub fn pg_bin(&self) -> PathBuf {
        self.runner.pg_bin.clone()
    }

    /// PGDATA, `<dir>/pgdata`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("pgdata")
    }

    /// The fixture directory (canonical).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options it was created with.
    pub fn options(&self) -> &ClusterOptions {
        &self.options
    }

    /// The PostgreSQL user's (uid, gid).
    pub fn user(&self) -> (u32, u32) {
        (self.runner.uid, self.runner.gid)
    }

    /// Creates `dir` owned by the PostgreSQL user with mode 0700 (e.g. a target for pgro's restore).
    ///
    /// # Errors
    /// It cannot be created.
    pub fn own_dir(&self, dir: &Path) -> anyhow::Result<()> {
        self.runner.own_dir(dir, 0o700)
    }

    /// Stops PostgreSQL (fast shutdown); the repositories stay.
    pub async fn stop(mut self) {
        self.server.stop().await;
    }
}

/// PostgreSQL running on a restored data directory ([`SourceCluster::start_restored`]); stopped (fast
/// shutdown, by PID) when dropped or by [`RestoredCluster::stop`].
#[derive(Debug)]
pub struct RestoredCluster {
    runner: Runner,
    server: Server,
    data: PathBuf,
    log: PathBuf,
}

impl RestoredCluster {
    /// Runs `sql` as `postgres` in database `postgres`; psql's unaligned, tuples-only output.
    ///
    /// # Errors
    /// psql fails.
    pub fn psql(&self, sql: &str) -> anyhow::Result<String> {
        self.runner.psql(&self.server.socket, self.server.port, sql)
    }

    /// Its data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The server's output (`<data>.log`).
    pub fn log(&self) -> String {
        crate::process::file_tail(&self.log, 1 << 20)
    }

    /// Stops it (fast shutdown).
    pub async fn stop(mut self) {
        self.server.stop().await;
    }
}

fn yn(b: bool) -> &'static str {
    if b { "y" } else { "n" }
}
