//! Which `postgres` runs: the first on PATH, as `Command::new("postgres")` finds it. A data directory of
//! another major cannot start with it, and "No such file or directory" says nothing useful, so the binary's
//! version is checked against `PG_VERSION` first.

use std::path::{Path, PathBuf};

use super::error::Error;

/// The first executable `name` on `path` (a `PATH` value).
pub(crate) fn find_on_path(name: &str, path: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path).map(|d| d.join(name)).find(|p| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The major of `postgres --version` output (`postgres (PostgreSQL) 16.14 (Debian 16.14-1)` → 16).
pub(crate) fn parse_major(version: &str) -> Option<u32> {
    let rest = version.split(')').nth(1)?.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Checks that the `postgres` PATH finds is of `major`; returns its path.
///
/// # Errors
/// `NoBinaries`, naming what was found instead.
pub(crate) fn check(major: u32) -> Result<PathBuf, Error> {
    let path = std::env::var("PATH").unwrap_or_default();
    let Some(bin) = find_on_path("postgres", &path) else {
        return Err(Error::NoBinaries {
            major,
            found: String::new(),
        });
    };
    let found = version_of(&bin);
    match found {
        Some(m) if m == major => Ok(bin),
        Some(m) => Err(Error::NoBinaries {
            major,
            found: format!(
                " (the first postgres on PATH, {}, is PostgreSQL {m})",
                bin.display()
            ),
        }),
        None => Err(Error::NoBinaries {
            major,
            found: format!(" ({} does not report its version)", bin.display()),
        }),
    }
}

fn version_of(bin: &Path) -> Option<u32> {
    let out = std::process::Command::new(bin)
        .arg("--version")
        .env("LC_ALL", "C")
        .output()
        .ok()?;
    parse_major(&String::from_utf8_lossy(&out.stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_of_every_packaging_parse() {
        assert_eq!(parse_major("postgres (PostgreSQL) 16.14\n"), Some(16));
        assert_eq!(
            parse_major("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(parse_major("postgres (PostgreSQL) 18beta1"), Some(18));
        assert_eq!(parse_major("postgres (PostgreSQL) 17rc1"), Some(17));
        assert_eq!(parse_major("garbage"), None);
    }

    #[test]
    fn path_search_skips_missing_directories() {
        let t = tempfile::tempdir().expect("tempdir");
        assert_eq!(find_on_path("postgres", "/nonexistent"), None);
        let bin = t.path().join("postgres");
        std::fs::write(&bin, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let path = format!("/nonexistent:{}", t.path().display());
        assert_eq!(find_on_path("postgres", &path), Some(bin));
    }
}
