//! `pgro-standin`: the light programs the process kubelet runs in place of real ones when the scale
//! harness asks for it ([`crate::StandIn`]). The operator is under test there, not PostgreSQL, and a
//! thousand real instances do not fit the development machine.
//!
//! * `pgro-standin postgres --upstream HOST:PORT --probe-address ADDR:PORT --port PORT`: answers every HTTP
//!   request on the probe address with `200 ok` (what `pgro instance` serves at `/readyz` and `/livez` once
//!   PostgreSQL is ready) and forwards every TCP connection to `--port` to the upstream — one real,
//!   shared PostgreSQL that has the `pgro_admin` role and `_pgro.restore_info` the operator reads.
//! * `pgro-standin delay SECONDS -- PROGRAM ARGS…`: waits, then replaces itself with the program (same
//!   PID, environment and files, so its exit code and termination message are the container's).
//!
//! Both exit on SIGTERM (they run as PID 1 of a container, where the default action is ignored).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const USAGE: &str = "usage: pgro-standin postgres --upstream HOST:PORT [--probe-address ADDR:PORT] [--port PORT]\n       pgro-standin delay SECONDS -- PROGRAM [ARGS...]";

/// Runs the stand-in with the process's arguments (without the program name).
pub fn main_with_args(args: Vec<String>) -> ExitCode {
    match args.first().map(String::as_str) {
        Some("postgres") => postgres_main(&args[1..]),
        Some("delay") => delay_main(&args[1..]),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn value(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

fn postgres_main(args: &[String]) -> ExitCode {
    let Some(upstream) = value(args, "--upstream") else {
        eprintln!("pgro-standin postgres: --upstream is required\n{USAGE}");
        return ExitCode::from(2);
    };
    let probes = value(args, "--probe-address").unwrap_or_else(|| "0.0.0.0:8008".into());
    let port = value(args, "--port").unwrap_or_else(|| "5432".into());
    let (Ok(probes), Ok(port)) = (probes.parse::<SocketAddr>(), port.parse::<u16>()) else {
        eprintln!("pgro-standin postgres: bad --probe-address or --port\n{USAGE}");
        return ExitCode::from(2);
    };
    let result = runtime().and_then(|rt| {
        rt.block_on(async {
            let serve = serve_postgres(upstream, probes, SocketAddr::from(([0, 0, 0, 0], port)));
            tokio::select! {
                r = serve => r,
                () = terminated() => Ok(()),
            }
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgro-standin postgres: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

/// Serves the probes on `probes` and proxies connections on `listen` to `upstream` until an I/O error
/// on a listener.
///
/// # Errors
/// When a listener cannot be bound or fails.
pub async fn serve_postgres(
    upstream: String,
    probes: SocketAddr,
    listen: SocketAddr,
) -> std::io::Result<()> {
    let probe_listener = TcpListener::bind(probes).await?;
    let listener = TcpListener::bind(listen).await?;
    eprintln!(
        "pgro-standin postgres: probes on {probes}, forwarding {listen} to {upstream} (a stand-in for pgro instance)"
    );
    let probe_task = async {
        loop {
            let (stream, _) = probe_listener.accept().await?;
            tokio::spawn(answer_probe(stream));
        }
        #[allow(unreachable_code)]
        std::io::Result::Ok(())
    };
    let proxy_task = async {
        loop {
            let (inbound, _) = listener.accept().await?;
            let upstream = upstream.clone();
            tokio::spawn(async move {
                match TcpStream::connect(&upstream).await {
                    Ok(outbound) => forward(inbound, outbound).await,
                    Err(e) => eprintln!("pgro-standin postgres: connecting to {upstream}: {e}"),
                }
            });
        }
        #[allow(unreachable_code)]
        std::io::Result::Ok(())
    };
    tokio::try_join!(probe_task, proxy_task).map(|_| ())
}

async fn forward(mut inbound: TcpStream, mut outbound: TcpStream) {
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
}

/// Reads one HTTP request head (any path) and answers `200 ok`.
async fn answer_probe(mut stream: TcpStream) {
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    if read.is_err() {
        return;
    }
    let _ = stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        .await;
    let _ = stream.shutdown().await;
}

fn delay_main(args: &[String]) -> ExitCode {
    use std::os::unix::process::CommandExt as _;
    let seconds = args.first().and_then(|s| s.parse::<f64>().ok());
    let program = match args.get(1).map(String::as_str) {
        Some("--") => args.get(2..),
        _ => None,
    };
    let (Some(seconds), Some([program, rest @ ..])) = (seconds, program) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if seconds.is_finite() && seconds > 0.0 {
        let waited = runtime().map(|rt| {
            rt.block_on(async {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs_f64(seconds)) => true,
                    () = terminated() => false,
                }
            })
        });
        match waited {
            Ok(true) => {}
            Ok(false) => return ExitCode::from(143),
            Err(e) => {
                eprintln!("pgro-standin delay: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let error = std::process::Command::new(program).args(rest).exec();
    eprintln!("pgro-standin delay: cannot execute {program}: {error}");
    ExitCode::from(127)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn probes_answer_200_and_connections_reach_the_upstream() {
        // An upstream that echoes what it gets, prefixed.
        let upstream = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let upstream_addr = upstream.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = upstream.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let _ = s.write_all(b"echo:").await;
                    let _ = s.write_all(&buf[..n]).await;
                });
            }
        });
        let free = || {
            let port = crate::ports::free_port().expect("free port");
            std::net::SocketAddr::from(([127, 0, 0, 1], port))
        };
        let (probes, listen) = (free(), free());
        tokio::spawn(serve_postgres(upstream_addr.to_string(), probes, listen));
        let mut probe = None;
        for _ in 0..100 {
            if let Ok(s) = TcpStream::connect(probes).await {
                probe = Some(s);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut probe = probe.expect("probe listener");
        probe
            .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut answer = String::new();
        probe.read_to_string(&mut answer).await.expect("read");
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        let mut client = TcpStream::connect(listen).await.expect("proxy");
        client.write_all(b"hello").await.expect("write");
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, b"echo:hello");
    }

    #[test]
    fn bad_arguments_are_a_usage_error() {
        assert_eq!(main_with_args(vec![]), ExitCode::from(2));
        assert_eq!(
            main_with_args(vec!["delay".into(), "x".into()]),
            ExitCode::from(2)
        );
        assert_eq!(main_with_args(vec!["postgres".into()]), ExitCode::from(2));
    }
}
