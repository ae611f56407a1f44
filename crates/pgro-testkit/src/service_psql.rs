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

/// `ca.crt` of Secret `<replica>-ca` in `ns`: what a client verifies the replica's server with.
///
/// # Errors
///
/// The Secret cannot be read or holds no `ca.crt`.
pub async fn replica_ca(client: &kube::Client, ns: &str, replica: &str) -> anyhow::Result<Vec<u8>> {
    let name = format!("{replica}-ca");
    kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), ns)
        .get(&name)
        .await
        .with_context(|| format!("reading Secret {ns}/{name}"))?
        .data
        .and_then(|d| d.get("ca.crt").map(|v| v.0.clone()))
        .with_context(|| format!("no ca.crt in Secret {ns}/{name}"))
}
