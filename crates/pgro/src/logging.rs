//! Logging setup: structured lines on stderr, text or JSON (`PGRO_LOG_FORMAT=json`), filtered by
//! `PGRO_LOG` (an `EnvFilter` directive; default `info`). Both can be changed while running (the operator's
//! settings ConfigMap, behaviour O3).

use std::sync::OnceLock;

use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (ANSI colours on a terminal).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// Parses `text` or `json` (any case).
    ///
    /// # Errors
    ///
    /// Any other value.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("{other:?} is not a log format (text or json)")),
        }
    }
}

type Filtered = Layered<reload::Layer<EnvFilter, Registry>, Registry>;
type Output = Box<dyn Layer<Filtered> + Send + Sync>;

struct Handles {
    filter: reload::Handle<EnvFilter, Registry>,
    output: reload::Handle<Output, Filtered>,
}

static HANDLES: OnceLock<Handles> = OnceLock::new();

fn output(format: LogFormat) -> Output {
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    match format {
        LogFormat::Text => Box::new(layer),
        LogFormat::Json => Box::new(layer.json()),
    }
}

/// Parses a level directive (`info`, `pgro=debug,kube=warn`, …).
///
/// # Errors
///
/// A directive `EnvFilter` refuses.
pub fn parse_level(directive: &str) -> Result<EnvFilter, String> {
    EnvFilter::try_new(directive.trim()).map_err(|e| format!("{directive:?}: {e}"))
}

/// Installs the global subscriber from the environment; a second call is a no-op.
pub fn init() {
    let filter = EnvFilter::try_from_env("PGRO_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let format = std::env::var("PGRO_LOG_FORMAT")
        .ok()
        .and_then(|f| LogFormat::parse(&f).ok())
        .unwrap_or_default();
    let (filter, filter_handle) = reload::Layer::new(filter);
    let (out, output_handle) = reload::Layer::new(output(format));
    let subscriber = tracing_subscriber::registry().with(filter).with(out);
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        let _ = HANDLES.set(Handles {
            filter: filter_handle,
            output: output_handle,
        });
    }
}

/// Switches the format and level of the subscriber [`init`] installed (nothing happens without one).
///
/// # Errors
///
/// An invalid level directive, or a subscriber that is gone.
pub fn reconfigure(format: LogFormat, level: &str) -> Result<(), String> {
    let Some(h) = HANDLES.get() else {
        return Ok(());
    };
    let filter = parse_level(level)?;
    h.filter.reload(filter).map_err(|e| e.to_string())?;
    h.output.reload(output(format)).map_err(|e| e.to_string())
}
