//! A minimal HTTP/1.1 GET over any stream: enough for etcd's `/health` and kubelet HTTP probes, without
//! pulling a full HTTP client into the harness.

use std::time::Duration;

use anyhow::{Context as _, anyhow};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A response: status code and body (lossy UTF-8).
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub status: u16,
    pub body: String,
}

/// Sends `GET path` with `Connection: close` and reads the whole response within `timeout`.
pub(crate) async fn get<S>(
    mut stream: S,
    host: &str,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> anyhow::Result<Response>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: kube-probe/1.35\r\nAccept: */*\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    let exchange = async {
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        // Read until EOF, but stop early on a huge body: probes only need the status line.
        let mut buf = [0u8; 8192];
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 || raw.len() > 1 << 20 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
        }
        anyhow::Ok(raw)
    };
    let raw = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| anyhow!("timed out after {timeout:?}"))??;
    let text = String::from_utf8_lossy(&raw);
    let status_line = text.lines().next().context("empty response")?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("malformed status line {status_line:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok(Response { status, body })
}
