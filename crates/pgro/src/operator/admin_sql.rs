//! SQL as `pgro_admin` over a restore's own Service: how the operator reads and marks a running instance
//! without `pods/exec` or pod logs. Every use is best effort: the instance serves whether or not this works.

use k8s_openapi::api::core::v1::{Secret, Service};

use super::caches;
use super::certificates;
use super::context::Context;
use super::error::{Error, Result};
use super::naming;
use super::specs::{ADMIN_USER, PASSWORD_KEY};
use crate::postgres::tls::{self, CA_KEY, connector};

/// The database `_pgro.restore_info` is read from (the instance records it in every database it targets).
const DATABASE: &str = "postgres";

/// A session with the restore's instance, or `None` while its Service has no cluster IP.
///
/// # Errors
///
/// API errors reading the Service or the `<replica>-admin` Secret; connection errors.
pub async fn connect(
    ctx: &Context,
    ns: &str,
    replica: &str,
    restore: &str,
) -> Result<Option<tokio_postgres::Client>> {
    connect_to(ctx, ns, replica, restore, DATABASE).await
}

/// As [`connect`], to `database`.
///
/// # Errors
///
/// As [`connect`].
pub async fn connect_to(
    ctx: &Context,
    ns: &str,
    replica: &str,
    restore: &str,
    database: &str,
) -> Result<Option<tokio_postgres::Client>> {
    let cached = ctx.caches();
    let Some(ip) =
        caches::lookup::<Service>(cached.map(|c| &c.stores.services), &ctx.client, ns, restore)
            .await?
            .and_then(|s| s.spec.as_ref()?.cluster_ip.clone())
            .filter(|ip| ip != "None")
    else {
        return Ok(None);
    };
    let key = |s: Option<std::sync::Arc<Secret>>, k: &str| {
        s.and_then(|s| s.data.as_ref()?.get(k).map(|v| v.0.clone()))
            .unwrap_or_default()
    };
    let (admin_name, ca_name) = (naming::admin_secret(replica), naming::ca_secret(replica));
    let store = cached.map(|c| &c.stores.secrets);
    let password = key(
        caches::lookup::<Secret>(store, &ctx.client, ns, &admin_name).await?,
        PASSWORD_KEY,
    );
    let ca = key(
        caches::lookup::<Secret>(store, &ctx.client, ns, &ca_name).await?,
        CA_KEY,
    );
    let tls = connector(&ca).map_err(|e| Error::Tls {
        restore: restore.to_owned(),
        message: format!("Secret {ca_name}: {e}"),
    })?;
    let Ok(addr) = ip.parse() else {
        return Ok(None);
    };
    // TLS verified as a user's verify-full client would: the CA from `<replica>-ca`, the Service's name.
    let mut cfg = tls::config(&certificates::verified_name(replica, ns), addr, 5432);
    cfg.user(ADMIN_USER)
        .password(String::from_utf8_lossy(&password).into_owned())
        .dbname(database)
        .application_name("pgro-operator");
    let (client, conn) = cfg.connect(tls).await.map_err(pg_error(restore))?;
    // The connection ends when the client is dropped.
    tokio::spawn(conn);
    Ok(Some(client))
}

/// Maps a driver error to [`Error::Postgres`] naming the restore.
pub fn pg_error(restore: &str) -> impl Fn(tokio_postgres::Error) -> Error + '_ {
    move |source| Error::Postgres {
        restore: restore.to_owned(),
        source,
    }
}

/// `_pgro.restore_info.stage = 'outgoing'`: people still connected to the old copy can see it is going.
///
/// # Errors
///
/// As [`connect`], and the update failing.
pub async fn mark_outgoing(ctx: &Context, ns: &str, replica: &str, restore: &str) -> Result<bool> {
    let Some(client) = connect(ctx, ns, replica, restore).await? else {
        return Ok(false);
    };
    client
        .execute("UPDATE _pgro.restore_info SET stage = 'outgoing'", &[])
        .await
        .map_err(pg_error(restore))?;
    Ok(true)
}

/// What the instance recorded in `_pgro.restore_info`.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceReport {
    /// `fixes` (a JSON array).
    pub fixes: Option<serde_json::Value>,
    /// `source_state` (absent in tables written by older instances).
    pub source_state: Option<String>,
    /// `data_time`: the newest replayed commit of a WAL-archive restore (RFC 3339).
    pub data_time: Option<String>,
    /// `wal_replayed` (`{segments, bytes, seconds}`) of a WAL-archive restore.
    pub wal_replayed: Option<serde_json::Value>,
    /// `dump_replayed` of a logical restore.
    pub dump_replayed: Option<serde_json::Value>,
}

/// `_pgro.restore_info`'s fixes and source state, or `None` while the instance cannot be reached.
///
/// # Errors
///
/// As [`connect`], and the query failing.
pub async fn read_fixes(
    ctx: &Context,
    ns: &str,
    replica: &str,
    restore: &str,
) -> Result<Option<InstanceReport>> {
    let Some(client) = connect(ctx, ns, replica, restore).await? else {
        return Ok(None);
    };
    // to_jsonb(r) tolerates a table without the newer columns (written by an older instance).
    let row = client
        .query_one(
            "SELECT fixes::text, to_jsonb(r) ->> 'source_state', to_jsonb(r) ->> 'data_time', \
             (to_jsonb(r) -> 'wal_replayed')::text, (to_jsonb(r) -> 'dump_replayed')::text \
             FROM _pgro.restore_info r",
            &[],
        )
        .await
        .map_err(pg_error(restore))?;
    let text: String = row.get(0);
    let wal: Option<String> = row.get(3);
    let dump: Option<String> = row.get(4);
    Ok(Some(InstanceReport {
        fixes: serde_json::from_str(&text).ok(),
        source_state: row.get(1),
        data_time: row.get(2),
        wal_replayed: wal
            .and_then(|w| serde_json::from_str(&w).ok())
            .filter(|v: &serde_json::Value| !v.is_null()),
        dump_replayed: dump
            .and_then(|d| serde_json::from_str(&d).ok())
            .filter(|v: &serde_json::Value| !v.is_null()),
    }))
}
