//! Logging setup: structured lines on stderr, text or JSON (`PGRO_LOG_FORMAT=json`), filtered by
//! `PGRO_LOG` (an `EnvFilter` directive; default `info`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call is a no-op.
pub fn init() {
    let filter = EnvFilter::try_from_env("PGRO_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("PGRO_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
