//! `psql` (real libpq) to a Service's ClusterIP from the node's network namespace, the way a client in
//! the cluster connects: `host` is the Service's DNS name (what `sslmode=verify-full` checks against the
//! certificate), `hostaddr` its ClusterIP (the test cluster has no DNS).

use std::path::Path;

use anyhow::{Context, bail};

use crate::TestEnv;

/// One connection: who, where, and how TLS is checked.
#[derive(Debug, Clone, Copy)]
pub struct ServicePsql<'a> {
    /// The Service's DNS name, e.g. `<replica>.<ns>.svc`.
    pub host: &'a str,
    /// Its ClusterIP.
    pub ip: &'a str,
    /// Role.
    pub user: &'a str,
    /// Its password (passed as `PGPASSWORD`, never on the command line).
    pub password: &'a str,
    /// `verify-full`, `disable`, …
    pub sslmode: &'a str,
    /// The CA file (`sslrootcert`).
    pub ca: &'a Path,
}

impl ServicePsql<'_> {
    /// The libpq connection string (no password).
    #[must_use]
    pub fn conninfo(&self) -> String {
        format!(
            "host={} hostaddr={} port=5432 user={} dbname=postgres sslmode={} sslrootcert={}",
            self.host,
            self.ip,
            self.user,
            self.sslmode,
            self.ca.display()
        )
    }

    /// Runs `sql`; its unaligned output, or an error with psql's stderr.
    ///
    /// # Errors
    ///
    /// psql cannot run, or fails (the error text is libpq's message).
    pub fn run(&self, env: &TestEnv, sql: &str) -> anyhow::Result<String> {
        let psql = env.components().path("PGRO_PSQL")?;
        let out = std::process::Command::new("nsenter")
            .arg(format!("--net={}", env.kubelet().netns_path()))
            .arg(&psql)
            .args(["--no-psqlrc", "-At", "-c", sql])
            .arg(self.conninfo())
            .env("PGPASSWORD", self.password)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .context("running nsenter psql")?;
        if !out.status.success() {
            bail!(
                "psql failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}
