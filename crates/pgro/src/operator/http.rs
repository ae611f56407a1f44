//! `/metrics`, `/livez` and `/readyz` (behaviour O1). Both probes answer 200 once the process has a working
//! client and its HTTP server; a standby (not the leader) is healthy and ready too, so neither flaps on an
//! idle cluster or during a leader change.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::metrics::Metrics;

async fn metrics(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
}

async fn ok() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

/// Serves until the process ends.
///
/// # Errors
///
/// The address cannot be bound.
pub async fn serve(addr: SocketAddr, m: Arc<Metrics>) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(ok))
        .route("/readyz", get(ok))
        .with_state(m);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(address = %addr, "serving /metrics, /livez and /readyz");
    axum::serve(listener, app).await
}
