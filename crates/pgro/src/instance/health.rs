//! I7 probes over HTTP: `/livez` answers while the manager runs (so a long recovery is never killed);
//! `/readyz` answers 200 only once roles, locales and reindexing are done and PostgreSQL still accepts a
//! connection on the private socket.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

/// Shared probe state.
#[derive(Debug)]
pub(crate) struct Health {
    ready: AtomicBool,
    pub(crate) socket_dir: PathBuf,
    pub(crate) port: u16,
    pub(crate) user: std::sync::Mutex<String>,
}

impl Health {
    pub(crate) fn new(socket_dir: PathBuf, port: u16) -> Arc<Self> {
        Arc::new(Self {
            ready: AtomicBool::new(false),
            socket_dir,
            port,
            user: std::sync::Mutex::new(String::new()),
        })
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

async fn livez() -> &'static str {
    "ok\n"
}

async fn readyz(State(h): State<Arc<Health>>) -> (StatusCode, &'static str) {
    if !h.is_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, "preparing\n");
    }
    let user = h.user.lock().map(|u| u.clone()).unwrap_or_default();
    let probe = async {
        let c = super::db::connect(&h.socket_dir, h.port, &user, "postgres").await?;
        c.simple_query("SELECT 1").await
    };
    match tokio::time::timeout(Duration::from_secs(3), probe).await {
        Ok(Ok(_)) => (StatusCode::OK, "ready\n"),
        Ok(Err(_)) | Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "postgres not accepting connections\n",
        ),
    }
}

/// Binds the probe listener (before anything slow, so liveness answers from the start).
///
/// # Errors
/// The address cannot be bound.
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Serves the probes until the process exits.
pub(crate) async fn serve(listener: tokio::net::TcpListener, health: Arc<Health>) {
    let app = Router::new()
        .route("/livez", get(livez))
        .route("/healthz", get(livez))
        .route("/readyz", get(readyz))
        .with_state(health);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "probe server stopped");
    }
}
