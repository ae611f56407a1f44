//! A PostgreSQL cluster shaped like a KubeDB database KubeStash backs up: roles with passwords (and a
//! membership), a tablespace, an extension when the major's build has one, large objects, two application
//! databases with a view, a function whose body holds `;` and a COPY row that looks like SQL — the odd
//! but legal content a replay must carry through unchanged. [`DumpSource::backup`] pipes `pg_dumpall` (or
//! `pg_dump <db>`) into `restic backup --stdin` as KubeStash does.
//!
//! Layout under the directory given to [`DumpSource::start`]: `pgdata/`, `ts1/`, `sock/`, `postgres.log`.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{DUMP_FILE, KUBESTASH_HOST, ResticRepo};
use crate::fixtures::INITDB_ARGS;
use crate::infra::Components;
use crate::pgrun::{PgUser, Server, free_port};

/// The role passwords the source holds (none may reach a copy).
pub const SOURCE_PASSWORDS: [&str; 2] = ["app-secret-1", "reporter-secret-2"];

/// Which dump KubeStash takes (`backupCmd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpCmd {
    /// `pg_dumpall` (KubeStash's default).
    All,
    /// `pg_dump demo` (a single database, no `CREATE DATABASE`).
    Demo,
}

/// A running source cluster.
#[derive(Debug)]
pub struct DumpSource {
    dir: PathBuf,
    pg: PgUser,
    server: Server,
}

impl DumpSource {
    /// `initdb`, start and fill a cluster of `major` in `dir`.
    ///
    /// # Errors
    /// [`crate::Unavailable`] when the major is not installed; any step failing.
    pub async fn start(components: &Components, dir: &Path, major: u32) -> anyhow::Result<Self> {
        let pg = PgUser::for_major(components, major)?;
        std::fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        for sub in ["pgdata", "sock", "ts1"] {
            pg.own_dir(&dir.join(sub), 0o700)?;
        }
        let data = dir.join("pgdata");
        pg.run(
            pg.spec("initdb", pg.pg_bin.join("initdb"))
                .args(INITDB_ARGS)
                .arg(&data),
        )
        .await?;
        let server = Server::start(
            &pg,
            &data,
            &dir.join("sock"),
            &dir.join("postgres.log"),
            free_port()?,
            &["fsync=off".to_owned()],
        )
        .await?;
        let s = Self { dir, pg, server };
        s.fill()?;
        Ok(s)
    }

    fn fill(&self) -> anyhow::Result<()> {
        let [app, rep] = SOURCE_PASSWORDS;
        self.psql(&format!(
            "CREATE ROLE app LOGIN PASSWORD '{app}'; CREATE ROLE reporter LOGIN PASSWORD '{rep}' IN ROLE app; \
             CREATE ROLE \"Odd Role\" NOLOGIN"
        ))?;
        // Its own statement: CREATE TABLESPACE cannot run in psql -c's transaction.
        self.psql(&format!(
            "CREATE TABLESPACE ts1 LOCATION '{}'",
            self.dir.join("ts1").display()
        ))?;
        self.psql("CREATE DATABASE demo OWNER app")?;
        self.psql("CREATE DATABASE inventory")?;
        let ext = self.psql_db(
            "demo",
            "SELECT name FROM pg_available_extensions WHERE name IN ('pgcrypto', 'hstore', 'vector') ORDER BY 1 LIMIT 1",
        )?;
        if !ext.is_empty() {
            self.psql_db("demo", &format!("CREATE EXTENSION \"{ext}\""))?;
        }
        self.psql_db(
            "demo",
            "CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, total numeric(12,2), note text); \
             INSERT INTO orders SELECT g, 'customer-' || g % 97, g * 1.25, CASE WHEN g % 10 = 0 THEN E'tab\\there\\\\back' END FROM generate_series(1, 20000) g; \
             INSERT INTO orders VALUES (0, 'sql-looking', 0, 'ALTER ROLE app WITH PASSWORD ''not-a-statement'';'); \
             CREATE INDEX orders_customer ON orders (customer); \
             CREATE TABLE archived (id int, body text) TABLESPACE ts1; \
             INSERT INTO archived SELECT g, repeat('x', 50) FROM generate_series(1, 3000) g; \
             CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 1000; \
             CREATE FUNCTION order_count() RETURNS bigint LANGUAGE plpgsql AS $body$ BEGIN RETURN (SELECT count(*) FROM orders); END; $body$; \
             COMMENT ON TABLE orders IS 'it''s the orders; all of them'; \
             SELECT lo_from_bytea(0, 'large object bytes'); \
             ALTER TABLE orders OWNER TO app; GRANT SELECT ON orders TO reporter",
        )?;
        self.psql_db(
            "inventory",
            "CREATE TABLE items (sku text PRIMARY KEY, qty int); INSERT INTO items SELECT 'sku-' || g, g FROM generate_series(1, 500) g",
        )?;
        Ok(())
    }

    /// psql as `postgres` in `postgres`.
    ///
    /// # Errors
    /// The statement fails.
    pub fn psql(&self, sql: &str) -> anyhow::Result<String> {
        self.pg.psql(&self.server.socket, self.server.port, sql)
    }

    /// psql as `postgres` in `db` (unaligned, tuples only).
    ///
    /// # Errors
    /// The statement fails.
    pub fn psql_db(&self, db: &str, sql: &str) -> anyhow::Result<String> {
        let out = Command::new(&self.pg.psql)
            .uid(self.pg.uid)
            .gid(self.pg.gid)
            .env("LC_ALL", "C.UTF-8")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.server.socket)
            .args([
                "-p",
                &self.server.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
    }

    /// KubeStash's backup: the dump piped into `restic backup --stdin --stdin-filename dumpfile.sql
    /// --host host-0`; the snapshot ID.
    ///
    /// # Errors
    /// The dump or restic fails.
    pub fn backup(
        &self,
        repo: &ResticRepo,
        cmd: DumpCmd,
        compression: &str,
    ) -> anyhow::Result<String> {
        let mut dump = self.dump_command(cmd);
        dump.env_clear().env("LC_ALL", "C.UTF-8");
        repo.backup_pipe(dump, DUMP_FILE, KUBESTASH_HOST, compression)
    }

    fn dump_command(&self, cmd: DumpCmd) -> Command {
        let tool = match cmd {
            DumpCmd::All => "pg_dumpall",
            DumpCmd::Demo => "pg_dump",
        };
        let mut c = Command::new(self.pg.pg_bin.join(tool));
        c.uid(self.pg.uid)
            .gid(self.pg.gid)
            .arg("-h")
            .arg(&self.server.socket)
            .args(["-p", &self.server.port.to_string(), "-U", "postgres"]);
        if cmd == DumpCmd::Demo {
            c.arg("demo");
        }
        c
    }

    /// `pg_dumpall --no-role-passwords`, tablespace locations and `\restrict` keys masked.
    ///
    /// # Errors
    /// pg_dumpall fails.
    pub async fn dumpall(&self) -> anyhow::Result<String> {
        self.pg.dumpall(&self.server.socket, self.server.port).await
    }

    /// The binaries of this cluster's major.
    #[must_use]
    pub fn bin(&self) -> &Path {
        &self.pg.pg_bin
    }

    /// Stops the server (fast shutdown).
    pub async fn stop(mut self) {
        self.server.stop().await;
    }
}
