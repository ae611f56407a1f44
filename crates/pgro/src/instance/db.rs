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

/// `"ident"` with embedded quotes doubled.
pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `'literal'` for values pgro builds itself (verifiers, locale names): quotes doubled, and rejected if they
/// contain a backslash, so the result means the same whatever `standard_conforming_strings` says.
pub(crate) fn quote_literal(s: &str) -> Option<String> {
    (!s.contains('\\')).then(|| format!("'{}'", s.replace('\'', "''")))
}

/// The SQLSTATE of a server error, if it is one.
pub(crate) fn sqlstate(e: &tokio_postgres::Error) -> Option<&str> {
    e.code().map(tokio_postgres::error::SqlState::code)
}
