//! The installed test infrastructure: the `KEY=VALUE` file `scripts/testinfra.sh` writes
//! (`$PGRO_TESTINFRA/env`, default `$HOME/.cache/pgro-testinfra/env`), overridden key by key by the
//! process environment. A missing component is an [`Unavailable`] error, which tests turn into a skip
//! outside CI and a failure under `CI=true`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A component the tests need is not installed or not usable here.
#[derive(Debug, Clone)]
pub struct Unavailable {
    /// What is missing, e.g. `PGRO_ETCD (etcd)`.
    pub what: String,
    /// How to get it.
    pub hint: String,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is unavailable: {}", self.what, self.hint)
    }
}

impl std::error::Error for Unavailable {}

const INSTALL_HINT: &str = "run scripts/testinfra.sh (it writes $PGRO_TESTINFRA/env)";

/// True when running in CI (`CI=true`), where a missing component must fail the test instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skips (prints the reason, returns `None`) outside CI; panics under `CI=true`. For other errors it panics.
pub fn skip_unless_ci<T>(result: anyhow::Result<T>, test: &str) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(error) => match error.downcast_ref::<Unavailable>() {
            Some(unavailable) if !in_ci() => {
                eprintln!("SKIPPED {test}: {unavailable}");
                None
            }
            _ => panic!("{test}: {error:#}"),
        },
    }
}

/// The installed components.
#[derive(Debug, Clone)]
pub struct Components {
    vars: BTreeMap<String, String>,
    source: PathBuf,
}

impl Components {
    /// Reads the env file (if any) and overlays `PGRO_*` variables of the process environment.
    pub fn load() -> Self {
        let root = std::env::var_os("PGRO_TESTINFRA")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/pgro-testinfra"))
            })
            .unwrap_or_else(|| PathBuf::from("/root/.cache/pgro-testinfra"));
        let source = root.join("env");
        let mut vars = BTreeMap::new();
        if let Ok(text) = std::fs::read_to_string(&source) {
            for line in text.lines() {
                let line = line.trim();
                if line.starts_with('#') {
                    continue;
                }
                if let Some((key, value)) = line.split_once('=') {
                    vars.insert(key.trim().to_owned(), value.trim().to_owned());
                }
            }
        }
        for (key, value) in std::env::vars() {
            if key.starts_with("PGRO_") && key != "PGRO_TESTINFRA" {
                vars.insert(key, value);
            }
        }
        Self { vars, source }
    }

    /// A raw value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// An installed file or directory named by `key`.
    ///
    /// # Errors
    /// [`Unavailable`] when the key is absent or the path does not exist.
    pub fn path(&self, key: &str) -> Result<PathBuf, Unavailable> {
        match self.get(key) {
            Some(value) if Path::new(value).exists() => Ok(PathBuf::from(value)),
            Some(value) => Err(Unavailable {
                what: key.to_owned(),
                hint: format!("{value} does not exist; {INSTALL_HINT}"),
            }),
            None => Err(Unavailable {
                what: key.to_owned(),
                hint: format!(
                    "no {key} in {} or the environment; {INSTALL_HINT}",
                    self.source.display()
                ),
            }),
        }
    }

    /// The `bin` directory of PostgreSQL `major` (15–18).
    ///
    /// # Errors
    /// [`Unavailable`] when that major is not installed.
    pub fn postgres_bin(&self, major: u32) -> Result<PathBuf, Unavailable> {
        self.path(&format!("PGRO_PG{major}_BIN"))
    }

    /// Every installed PostgreSQL major and its `bin` directory.
    pub fn postgres_majors(&self) -> BTreeMap<u32, PathBuf> {
        (10..=30)
            .filter_map(|major| Some((major, self.postgres_bin(major).ok()?)))
            .collect()
    }

    /// The non-root user PostgreSQL runs as: (uid, gid).
    pub fn postgres_user(&self) -> (u32, u32) {
        let uid = self
            .get("PGRO_PG_UID")
            .and_then(|v| v.parse().ok())
            .unwrap_or(26);
        let gid = self
            .get("PGRO_PG_GID")
            .and_then(|v| v.parse().ok())
            .unwrap_or(26);
        (uid, gid)
    }
}
