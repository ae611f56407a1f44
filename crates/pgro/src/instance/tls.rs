//! TLS for client connections: the server certificate and key, mounted from a Secret, are copied into the
//! data directory (PostgreSQL refuses a key file that others can read or that belongs to another user, and
//! Secret volumes are root-owned and group-readable), PostgreSQL is configured to use them, and a renewed
//! certificate (the operator re-signs it before it expires; cert-manager renews its own) is picked up by
//! copying again and reloading.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{self, Error};
use super::prepare::install_if_changed;

/// The copies in the data directory (names PostgreSQL's own defaults do not use, so a source's
/// `server.crt` is never mistaken for pgro's).
pub(crate) const CERT_FILE: &str = "pgro-server.crt";
/// See [`CERT_FILE`].
pub(crate) const KEY_FILE: &str = "pgro-server.key";

/// Where the server's certificate comes from, and how the manager's own TCP login verifies it.
#[derive(Debug, Clone)]
pub(crate) struct Server {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    pub(crate) ca: PathBuf,
    /// The name the certificate must carry (`<replica>.<ns>.svc`).
    pub(crate) name: String,
    /// How often the mounted files are compared with the copies.
    pub(crate) refresh: Duration,
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(error::io("reading", path))
}

/// Copies the certificate and key into `pgdata` (mode 0600); whether either changed.
///
/// # Errors
///
/// The mounted files cannot be read or the copies written.
pub(crate) fn install(s: &Server, pgdata: &Path) -> Result<bool, Error> {
    let (cert, key) = (read(&s.cert)?, read(&s.key)?);
    let a = install_if_changed(&pgdata.join(CERT_FILE), &cert)?;
    let b = install_if_changed(&pgdata.join(KEY_FILE), &key)?;
    Ok(a || b)
}

/// The settings that turn TLS on, written after `postgresExtraConfig` so they cannot be turned off there
/// (the other `ssl_*` settings stay the user's to tune).
pub(crate) fn settings(pgdata: &Path) -> Vec<(String, String)> {
    vec![
        ("ssl".into(), "on".into()),
        (
            "ssl_cert_file".into(),
            pgdata.join(CERT_FILE).display().to_string(),
        ),
        (
            "ssl_key_file".into(),
            pgdata.join(KEY_FILE).display().to_string(),
        ),
    ]
}

/// Until the process ends: copies a renewed certificate and asks the postmaster to reload
/// (SIGHUP), so new connections get it without a restart. A failed copy keeps the one in use.
pub(crate) async fn refresh(s: Server, pgdata: PathBuf) {
    loop {
        tokio::time::sleep(s.refresh).await;
        match install(&s, &pgdata) {
            Ok(true) => {
                super::reaper::reload_postmaster();
                tracing::info!("server certificate changed; PostgreSQL reloads it");
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "reading the renewed server certificate failed; the one in use stays")
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn copies_are_private_and_follow_the_mounted_files() {
        let d = tempfile::tempdir().unwrap();
        let (mnt, pgdata) = (d.path().join("mnt"), d.path().join("data"));
        std::fs::create_dir_all(&mnt).unwrap();
        std::fs::create_dir_all(&pgdata).unwrap();
        let s = Server {
            cert: mnt.join("tls.crt"),
            key: mnt.join("tls.key"),
            ca: mnt.join("ca.crt"),
            name: "ro.team.svc".into(),
            refresh: Duration::from_secs(1),
        };
        std::fs::write(&s.cert, "CERT1").unwrap();
        std::fs::write(&s.key, "KEY1").unwrap();
        std::fs::set_permissions(&s.key, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(install(&s, &pgdata).unwrap());
        let key = pgdata.join(KEY_FILE);
        assert_eq!(std::fs::read_to_string(&key).unwrap(), "KEY1");
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(
            !install(&s, &pgdata).unwrap(),
            "unchanged: nothing to reload"
        );
        std::fs::write(&s.cert, "CERT2").unwrap();
        assert!(install(&s, &pgdata).unwrap());
        assert_eq!(
            std::fs::read_to_string(pgdata.join(CERT_FILE)).unwrap(),
            "CERT2"
        );
        let set = settings(&pgdata);
        assert_eq!(set[0], ("ssl".into(), "on".into()));
        assert!(set[2].1.ends_with(KEY_FILE));
    }
}
