//! Connections to the local server over the private Unix socket.

use std::path::Path;
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

/// Connects as `user` to `dbname` over the socket in `socket_dir`; the connection runs on its own task.
///
/// # Errors
/// The connection or authentication failed.
pub(crate) async fn connect(
    socket_dir: &Path,
    port: u16,
    user: &str,
    dbname: &str,
) -> Result<Client, tokio_postgres::Error> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host_path(socket_dir)
        .port(port)
        .user(user)
        .dbname(dbname)
        .application_name("pgro-instance")
        .connect_timeout(Duration::from_secs(5));
    let (client, conn) = cfg.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "manager connection closed");
        }
    });
    Ok(client)
}

pub(crate) use crate::postgres::{quote_ident, quote_literal};

/// The SQLSTATE of a server error, if it is one.
pub(crate) fn sqlstate(e: &tokio_postgres::Error) -> Option<&str> {
    e.code().map(tokio_postgres::error::SqlState::code)
}
