//! A restic source's storage and password, from `source.restic` and its Secrets. Keys are restic's (and
//! KubeStash's) environment names; they arrive as `<secret name>/<KEY>` (how the pods mount the Secrets) or,
//! on the command line, as plain `<KEY>` files in `--secret-dir`. `RESTIC_PASSWORD` comes from
//! `encryptionSecret` when set (KubeStash keeps it in the Repository's encryption Secret), else from
//! `secretRef`.
//!
//! The repository URL is read as restic reads it: `s3:https://<host>/<bucket>/<path>`, `s3:<host>/…`
//! (HTTPS; `s3.amazonaws.com` is AWS itself), `gs:<bucket>:/<path>`, `azure:<container>:/<path>`, and on
//! the command line a local directory (`/path` or `local:/path`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use blobstore::{BlobStore, Bucket, FileStore, RetryPolicy, Retrying, S3Config};
use pgro_api::ResticSource;

use super::open::SourceError;

/// Where a repository URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An S3 bucket; `endpoint` is `scheme://host[:port]`, `None` for AWS.
    S3 {
        endpoint: Option<String>,
        bucket: String,
        path: String,
    },
    /// A GCS bucket.
    Gcs { bucket: String, path: String },
    /// An Azure container.
    Azure { container: String, path: String },
    /// A local directory (command line only).
    Local(PathBuf),
}

/// Parses a repository URL.
///
/// # Errors
/// A form restic has but pgro does not read, or no form at all; the message lists the forms.
pub fn location(url: &str) -> Result<Location, SourceError> {
    let forms = "s3:https://<host>/<bucket>/<path>, s3:<host>/<bucket>/<path>, gs:<bucket>:/<path>, \
                 azure:<container>:/<path> or a local directory";
    let clean = |p: &str| -> Result<String, SourceError> {
        let parts: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
        if parts.iter().any(|s| *s == "." || *s == "..") {
            return Err(SourceError(format!(
                "repository {url:?}: the path has . or .. segments"
            )));
        }
        Ok(parts.join("/"))
    };
    if let Some(rest) = url.strip_prefix("s3:") {
        let (scheme, rest) = match rest.split_once("://") {
            Some((s, r)) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {
                (Some(s.to_ascii_lowercase()), r)
            }
            Some(_) => {
                return Err(SourceError(format!(
                    "repository {url:?}: an S3 endpoint is http:// or https://"
                )));
            }
            None => (None, rest),
        };
        let (host, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let tail = clean(tail)?;
        let (bucket, path) = tail.split_once('/').unwrap_or((&tail, ""));
        if host.is_empty() || bucket.is_empty() {
            return Err(SourceError(format!(
                "repository {url:?} names no bucket: expected {forms}"
            )));
        }
        let aws = scheme.is_none() && host.eq_ignore_ascii_case("s3.amazonaws.com");
        return Ok(Location::S3 {
            endpoint: (!aws).then(|| format!("{}://{host}", scheme.as_deref().unwrap_or("https"))),
            bucket: bucket.to_owned(),
            path: path.to_owned(),
        });
    }
    for (scheme, gcs) in [("gs:", true), ("azure:", false)] {
        if let Some(rest) = url.strip_prefix(scheme) {
            let (name, path) = rest
                .split_once(':')
                .ok_or_else(|| SourceError(format!("repository {url:?}: expected {forms}")))?;
            if name.is_empty() || name.contains('/') {
                return Err(SourceError(format!("repository {url:?}: expected {forms}")));
            }
            let path = clean(path)?;
            return Ok(if gcs {
                Location::Gcs {
                    bucket: name.to_owned(),
                    path,
                }
            } else {
                Location::Azure {
                    container: name.to_owned(),
                    path,
                }
            });
        }
    }
    let local = url.strip_prefix("local:").unwrap_or(url);
    if local.starts_with('/') {
        return Ok(Location::Local(PathBuf::from(local)));
    }
    let scheme = url.split(':').next().unwrap_or_default();
    Err(SourceError(match scheme {
        "sftp" | "rest" | "b2" | "swift" | "rclone" => format!(
            "repository {url:?}: pgro does not read {scheme}: repositories; it reads {forms}"
        ),
        _ => format!("repository {url:?} is not a restic repository URL: expected {forms}"),
    }))
}

/// Looks up restic's variables in the Secrets' keys.
struct Keys<'a> {
    secrets: &'a BTreeMap<String, Vec<u8>>,
    storage: Option<&'a str>,
    encryption: Option<&'a str>,
}

impl Keys<'_> {
    /// `<secret>/<key>` of the first of `secrets` that has it, else a plain `<key>`; trimmed of a final
    /// newline unless `exact`.
    fn get(&self, key: &str, from: &[Option<&str>]) -> Result<Option<String>, SourceError> {
        let found = from
            .iter()
            .flatten()
            .find_map(|s| self.secrets.get(&format!("{s}/{key}")))
            .or_else(|| self.secrets.get(key));
        found
            .map(|v| {
                String::from_utf8(v.clone())
                    .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
                    .map_err(|_| SourceError(format!("Secret key {key} is not UTF-8 text")))
            })
            .transpose()
    }

    fn storage(&self, key: &str) -> Result<Option<String>, SourceError> {
        self.get(key, &[self.storage])
    }

    /// The password exactly as stored (the reader retries without a final newline itself).
    fn password(&self) -> Option<Vec<u8>> {
        [self.encryption, self.storage]
            .iter()
            .flatten()
            .find_map(|s| self.secrets.get(&format!("{s}/RESTIC_PASSWORD")))
            .or_else(|| self.secrets.get("RESTIC_PASSWORD"))
            .cloned()
    }
}

/// The store rooted at the repository and its password.
///
/// # Errors
/// The URL or a credential is missing or malformed; every missing key is named.
pub fn restic_store(
    r: &ResticSource,
    secrets: &BTreeMap<String, Vec<u8>>,
    policy: RetryPolicy,
) -> Result<(Arc<dyn BlobStore>, Vec<u8>), SourceError> {
    let keys = Keys {
        secrets,
        storage: r.secret_ref.name.as_deref(),
        encryption: r.encryption_secret.as_ref().and_then(|s| s.name.as_deref()),
    };
    let secret_names = r.secret_names().join(" and ");
    let password = keys.password().ok_or_else(|| {
        SourceError(format!(
            "no RESTIC_PASSWORD in Secret {secret_names}: the repository's password (KubeStash keeps it in \
             the Repository's encryptionSecret; name that Secret in source.restic.encryptionSecret)"
        ))
    })?;
    let prefix = |p: &str| {
        if p.is_empty() {
            String::new()
        } else {
            format!("{p}/")
        }
    };
    let store: Arc<dyn BlobStore> = match location(&r.repository)? {
        Location::S3 {
            endpoint,
            bucket,
            path,
        } => {
            let (id, secret) = (
                keys.storage("AWS_ACCESS_KEY_ID")?,
                keys.storage("AWS_SECRET_ACCESS_KEY")?,
            );
            if id.is_some() != secret.is_some() {
                let missing = if id.is_none() {
                    "AWS_ACCESS_KEY_ID"
                } else {
                    "AWS_SECRET_ACCESS_KEY"
                };
                return Err(SourceError(format!(
                    "Secret {secret_names} has {} but not {missing}: an S3 repository needs both",
                    if id.is_none() {
                        "AWS_SECRET_ACCESS_KEY"
                    } else {
                        "AWS_ACCESS_KEY_ID"
                    }
                )));
            }
            let cfg = S3Config {
                bucket,
                prefix: prefix(&path),
                region: keys
                    .storage("AWS_DEFAULT_REGION")?
                    .or(keys.storage("AWS_REGION")?),
                endpoint,
                access_key_id: id,
                secret_access_key: secret,
                session_token: keys.storage("AWS_SESSION_TOKEN")?,
                ca_pem: keys.storage("CA_CERT_DATA")?.map(String::into_bytes),
                max_retries: Some(0),
                ..S3Config::default()
            };
            Arc::new(Retrying::new(
                Bucket::s3(&cfg).map_err(|e| SourceError(format!("S3 settings: {e}")))?,
                policy,
            ))
        }
        Location::Gcs { bucket, path } => {
            let cfg = blobstore::GcsConfig {
                bucket,
                prefix: prefix(&path),
                service_account_key: keys.storage("GOOGLE_SERVICE_ACCOUNT_JSON_KEY")?,
                ..blobstore::GcsConfig::default()
            };
            Arc::new(Retrying::new(
                Bucket::gcs(&cfg).map_err(|e| SourceError(format!("GCS settings: {e}")))?,
                policy,
            ))
        }
        Location::Azure { container, path } => {
            let account = keys.storage("AZURE_ACCOUNT_NAME")?.ok_or_else(|| {
                SourceError(format!(
                    "an Azure repository needs AZURE_ACCOUNT_NAME in Secret {secret_names}"
                ))
            })?;
            let cfg = blobstore::AzureConfig {
                account,
                container,
                prefix: prefix(&path),
                access_key: keys.storage("AZURE_ACCOUNT_KEY")?,
                sas_token: keys.storage("AZURE_ACCOUNT_SAS")?,
                endpoint: None,
            };
            if cfg.access_key.is_none() && cfg.sas_token.is_none() {
                return Err(SourceError(format!(
                    "an Azure repository needs AZURE_ACCOUNT_KEY or AZURE_ACCOUNT_SAS in Secret {secret_names}"
                )));
            }
            Arc::new(Retrying::new(
                Bucket::azure(&cfg).map_err(|e| SourceError(format!("Azure settings: {e}")))?,
                policy,
            ))
        }
        Location::Local(dir) => Arc::new(Retrying::new(FileStore::new(dir), policy)),
    };
    Ok((store, password))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(endpoint: Option<&str>, bucket: &str, path: &str) -> Location {
        Location::S3 {
            endpoint: endpoint.map(str::to_owned),
            bucket: bucket.into(),
            path: path.into(),
        }
    }

    #[test]
    fn restic_url_forms_parse_as_restic_reads_them() {
        let kubestash = "s3:http://minio.storage:9000/kubestash/demo/postgres/repository/v1/frequent-backup/dump";
        assert_eq!(
            location(kubestash).expect("parses"),
            s3(
                Some("http://minio.storage:9000"),
                "kubestash",
                "demo/postgres/repository/v1/frequent-backup/dump"
            )
        );
        assert_eq!(
            location("s3:s3.amazonaws.com/b/p/q").expect("aws"),
            s3(None, "b", "p/q")
        );
        assert_eq!(
            location("s3:minio.example:9000/b").expect("https default"),
            s3(Some("https://minio.example:9000"), "b", "")
        );
        assert_eq!(
            location("gs:bucket:/demo/postgres").expect("gcs"),
            Location::Gcs {
                bucket: "bucket".into(),
                path: "demo/postgres".into()
            }
        );
        assert_eq!(
            location("azure:cont:/x/").expect("azure"),
            Location::Azure {
                container: "cont".into(),
                path: "x".into()
            }
        );
        assert_eq!(
            location("local:/srv/repo").expect("local"),
            Location::Local("/srv/repo".into())
        );
        for (bad, says) in [
            ("sftp:user@host:/srv", "does not read sftp"),
            ("rest:http://host/", "does not read rest"),
            ("s3:http://host", "names no bucket"),
            ("s3:ftp://host/b", "http:// or https://"),
            ("s3:http://host/b/../etc", ".."),
            ("gs:bucket", "expected"),
            ("relative/dir", "not a restic repository URL"),
        ] {
            let e = location(bad).expect_err(bad);
            assert!(e.0.contains(says), "{bad}: {}", e.0);
        }
    }

    fn source(encryption: Option<&str>) -> ResticSource {
        serde_json::from_value(serde_json::json!({
            "repository": "s3:http://127.0.0.1:9/b/p",
            "secretRef": {"name": "storage"},
            "encryptionSecret": encryption.map(|n| serde_json::json!({"name": n})),
        }))
        .expect("valid")
    }

    fn keys(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn the_password_comes_from_the_encryption_secret_first_and_missing_keys_are_named() {
        let policy = RetryPolicy::default();
        let both = keys(&[
            ("storage/AWS_ACCESS_KEY_ID", "id"),
            ("storage/AWS_SECRET_ACCESS_KEY", "s"),
            ("storage/RESTIC_PASSWORD", "wrong"),
            ("enc/RESTIC_PASSWORD", "right\n"),
        ]);
        let (_, pw) = restic_store(&source(Some("enc")), &both, policy).expect("opens");
        assert_eq!(
            pw, b"right\n",
            "as stored; the reader tries it without the newline too"
        );
        let (_, pw) = restic_store(&source(None), &both, policy).expect("opens");
        assert_eq!(pw, b"wrong");
        let flat = keys(&[("RESTIC_PASSWORD", "p")]);
        assert!(
            restic_store(&source(None), &flat, policy).is_ok(),
            "command-line layout"
        );

        let none = keys(&[("storage/AWS_ACCESS_KEY_ID", "id")]);
        let e = restic_store(&source(Some("enc")), &none, policy).expect_err("no password");
        assert!(
            e.0.contains("RESTIC_PASSWORD") && e.0.contains("encryptionSecret"),
            "{}",
            e.0
        );
        let half = keys(&[
            ("storage/AWS_ACCESS_KEY_ID", "AKIAVALUE"),
            ("storage/RESTIC_PASSWORD", "p"),
        ]);
        let e = restic_store(&source(None), &half, policy).expect_err("half the S3 keys");
        assert!(e.0.contains("AWS_SECRET_ACCESS_KEY"), "{}", e.0);
        assert!(!e.0.contains("AKIAVALUE"), "no values in messages: {}", e.0);
    }
}
