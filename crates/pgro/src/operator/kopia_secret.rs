//! The Kopia credentials Secret (behaviour A4, R1): which keys it needs, and the repository options it
//! describes. The same mapping feeds the operator's in-process snapshot discovery and, as environment
//! variables, the restore Job ([`crate::cli::repository::SECRET_KEY_ENV`]).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::cli::repository::{RepositoryArgs, SECRET_KEY_ENV, StorageKind};

/// Why a Secret does not describe a repository.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretProblem {
    /// Required keys are absent or empty (every one of them is named, so one edit fixes the Secret).
    #[error(
        "Secret {secret} lacks the key(s) {} (needed for {storage} storage)",
        quoted(keys)
    )]
    MissingKeys {
        /// Secret name.
        secret: String,
        /// The keys, in the documented order.
        keys: Vec<&'static str>,
        /// Storage type that needs them.
        storage: &'static str,
    },
    /// A value is not valid.
    #[error("Secret {secret} key {key:?}: {reason}")]
    InvalidValue {
        /// Secret name.
        secret: String,
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
}

fn quoted(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("{k:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Keys every storage type needs.
fn required_keys(kind: StorageKind) -> (&'static str, &'static [&'static str]) {
    match kind {
        StorageKind::S3 => (
            "s3",
            &[
                "bucket",
                "region",
                "repositoryPassword",
                "accessKeyId",
                "secretAccessKey",
            ],
        ),
        StorageKind::Filesystem => ("filesystem", &["path", "repositoryPassword"]),
        StorageKind::Gcs => ("gcs", &["bucket", "repositoryPassword"]),
        StorageKind::Azure => (
            "azure",
            &["container", "storageAccount", "repositoryPassword"],
        ),
    }
}

/// Repository options from a Secret's decoded data.
///
/// # Errors
///
/// A missing required key (named) or an unknown `storage` / malformed `disableTls` value.
pub fn repository_args(
    secret: &str,
    data: &BTreeMap<String, String>,
) -> Result<RepositoryArgs, SecretProblem> {
    let get = |k: &str| {
        data.get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let kind = match get("storage").as_deref() {
        None | Some("s3") => StorageKind::S3,
        Some("filesystem") => StorageKind::Filesystem,
        Some("gcs") => StorageKind::Gcs,
        Some("azure") => StorageKind::Azure,
        Some(other) => {
            return Err(SecretProblem::InvalidValue {
                secret: secret.to_owned(),
                key: "storage".into(),
                reason: format!("{other:?} is not one of s3, filesystem, gcs, azure"),
            });
        }
    };
    let (storage, required) = required_keys(kind);
    let missing: Vec<&'static str> = required
        .iter()
        .copied()
        .filter(|k| get(k).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(SecretProblem::MissingKeys {
            secret: secret.to_owned(),
            keys: missing,
            storage,
        });
    }
    // The usual boolean spellings, one definition with the CLI's KOPIA_DISABLE_TLS.
    let disable_tls = match get("disableTls") {
        None => false,
        Some(v) => crate::cli::repository::parse_bool(&v).map_err(|reason| {
            SecretProblem::InvalidValue {
                secret: secret.to_owned(),
                key: "disableTls".into(),
                reason,
            }
        })?,
    };
    Ok(RepositoryArgs {
        password: get("repositoryPassword"),
        storage: Some(kind),
        path: get("path").map(Into::into),
        bucket: get("bucket"),
        endpoint: get("endpoint"),
        region: get("region"),
        prefix: data.get("prefix").cloned().unwrap_or_default(),
        disable_tls,
        access_key: get("accessKeyId"),
        secret_access_key: get("secretAccessKey"),
        session_token: get("sessionToken"),
        credentials_file: get("credentialsFile"),
        credentials_json: get("credentialsJson"),
        container: get("container"),
        storage_account: get("storageAccount"),
        storage_key: get("storageKey"),
        sas_token: get("sasToken"),
        storage_domain: get("storageDomain"),
        storage_attempts: 3,
    })
}

/// A stable identity of the repository *and* the credentials, for sharing a cache between replicas that
/// use the same repository. It is a hash, so no credential appears in it.
#[must_use]
pub fn cache_key(data: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (key, _) in SECRET_KEY_ENV {
        h.update(key.as_bytes());
        h.update([0]);
        h.update(data.get(*key).map_or("", |v| v.trim()).as_bytes());
        h.update([0]);
    }
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Decodes a Secret's `data` (bytes) into strings; non-UTF-8 values are reported by key.
///
/// # Errors
///
/// [`SecretProblem::InvalidValue`] for a value that is not UTF-8.
pub fn decode(
    secret: &str,
    data: &BTreeMap<String, k8s_openapi::ByteString>,
) -> Result<BTreeMap<String, String>, SecretProblem> {
    data.iter()
        .map(|(k, v)| {
            String::from_utf8(v.0.clone())
                .map(|s| (k.clone(), s))
                .map_err(|_| SecretProblem::InvalidValue {
                    secret: secret.to_owned(),
                    key: k.clone(),
                    reason: "not UTF-8 text".into(),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> BTreeMap<String, String> {
        [
            ("bucket", "example-bucket"),
            ("region", "ap-southeast-2"),
            ("repositoryPassword", "super-secret-repo-password-123"),
            ("accessKeyId", "AKIAIOSFODNN7EXAMPLE"),
            (
                "secretAccessKey",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            ),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    #[test]
    fn seed_secret_describes_an_s3_repository() {
        let a = repository_args("kopia-credentials", &seed()).expect("valid");
        assert_eq!(a.kind(), StorageKind::S3);
        assert_eq!(a.bucket.as_deref(), Some("example-bucket"));
        assert_eq!(a.location(), "s3://example-bucket/");
        assert!(!a.disable_tls);
    }

    #[test]
    fn each_missing_seed_key_is_named() {
        for key in [
            "bucket",
            "region",
            "repositoryPassword",
            "accessKeyId",
            "secretAccessKey",
        ] {
            let mut d = seed();
            d.remove(key);
            let err = repository_args("kc", &d).expect_err(key);
            assert_eq!(
                err,
                SecretProblem::MissingKeys {
                    secret: "kc".into(),
                    keys: vec![key],
                    storage: "s3"
                }
            );
            assert!(err.to_string().contains(key));
        }
    }

    #[test]
    fn every_missing_key_is_named_at_once() {
        let mut d = seed();
        d.remove("bucket");
        d.remove("secretAccessKey");
        let err = repository_args("kc", &d).expect_err("two missing");
        assert_eq!(
            err.to_string(),
            "Secret kc lacks the key(s) \"bucket\", \"secretAccessKey\" (needed for s3 storage)"
        );
    }

    #[test]
    fn disable_tls_accepts_the_usual_boolean_spellings() {
        for (v, want) in [
            ("1", true),
            ("True", true),
            ("yes", true),
            ("0", false),
            ("FALSE", false),
        ] {
            let mut d = seed();
            d.insert("disableTls".into(), v.into());
            assert_eq!(repository_args("kc", &d).expect(v).disable_tls, want, "{v}");
        }
    }

    #[test]
    fn optional_keys_and_other_storages() {
        let mut d = seed();
        d.insert("endpoint".into(), "minio.local:9000".into());
        d.insert("disableTls".into(), "true".into());
        d.insert("prefix".into(), "pg/".into());
        let a = repository_args("kc", &d).expect("valid");
        assert!(a.disable_tls);
        assert_eq!(a.endpoint.as_deref(), Some("minio.local:9000"));
        assert_eq!(a.prefix, "pg/");

        let fs: BTreeMap<String, String> =
            [("storage", "filesystem"), ("repositoryPassword", "pw")]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
        let err = repository_args("kc", &fs).expect_err("no path");
        assert!(matches!(err, SecretProblem::MissingKeys { ref keys, .. } if keys == &["path"]));

        d.insert("disableTls".into(), "maybe".into());
        assert!(repository_args("kc", &d).is_err());
        d.insert("storage".into(), "ftp".into());
        assert!(repository_args("kc", &d).is_err());
    }

    #[test]
    fn cache_key_changes_with_credentials_and_hides_them() {
        let a = cache_key(&seed());
        let mut d = seed();
        d.insert("repositoryPassword".into(), "other".into());
        assert_ne!(a, cache_key(&d));
        assert!(!a.contains("super-secret"));
        assert_eq!(a.len(), 32);
    }
}
