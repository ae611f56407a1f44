//! A barman-cloud source's storage, from `source.barmanCloud` and the Secret keys it references. The keys
//! arrive as `<secret name>/<key>` (how the pods mount them, and how `--secret-dir` is laid out on the
//! command line): CNPG references each credential by Secret *and* key, possibly from several Secrets.
//!
//! `destinationPath` is read as barman-cloud reads it: `s3://<bucket>/<path>`, `gs://<bucket>/<path>`,
//! and for Azure `https://<account>.blob.<suffix>/<container>/<path>`, or, for an emulator (any other
//! host), `http(s)://<host>/<account>/<container>/<path>`.

use std::collections::BTreeMap;
use std::sync::Arc;

use blobstore::{BlobStore, Bucket, RetryPolicy, Retrying, S3Config};
use pgro_api::{BarmanCloudSource, SecretKeySelector};

use super::open::SourceError;

/// Where `destinationPath` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// An S3 bucket and the path inside it (no leading or trailing `/`).
    S3 { bucket: String, path: String },
    /// A GCS bucket.
    Gcs { bucket: String, path: String },
    /// An Azure container; `endpoint` is the account URL for an emulator.
    Azure {
        account: String,
        container: String,
        path: String,
        endpoint: Option<String>,
    },
}

/// Parses `destinationPath`.
///
/// # Errors
/// Not one of the three forms.
pub fn destination(path: &str) -> Result<Destination, SourceError> {
    let bad = || {
        SourceError(format!(
            "destinationPath {path:?} is not s3://<bucket>[/<path>], gs://<bucket>[/<path>] or an Azure \
             container URL https://<account>.blob.core.windows.net/<container>[/<path>]"
        ))
    };
    let (scheme, rest) = path.split_once("://").ok_or_else(bad)?;
    let mut parts = rest.split('/').filter(|p| !p.is_empty());
    let host = parts.next().ok_or_else(bad)?.to_owned();
    let tail: Vec<&str> = parts.collect();
    if tail.iter().any(|p| *p == "." || *p == "..") {
        return Err(bad());
    }
    let join = |t: &[&str]| t.join("/");
    match scheme.to_ascii_lowercase().as_str() {
        "s3" => Ok(Destination::S3 {
            bucket: host,
            path: join(&tail),
        }),
        "gs" => Ok(Destination::Gcs {
            bucket: host,
            path: join(&tail),
        }),
        s @ ("https" | "http") => {
            let hostname = host.split(':').next().unwrap_or_default();
            let (account, endpoint, rest) = if hostname.contains(".blob.") {
                let account = hostname.split('.').next().unwrap_or_default();
                (account.to_owned(), None, &tail[..])
            } else {
                {
                    let account = tail.first().ok_or_else(bad)?;
                    (
                        (*account).to_owned(),
                        Some(format!("{s}://{host}/{account}")),
                        &tail[1..],
                    )
                }
            };
            let (container, path) = rest.split_first().ok_or_else(bad)?;
            Ok(Destination::Azure {
                account,
                container: (*container).to_owned(),
                path: join(path),
                endpoint,
            })
        }
        _ => Err(bad()),
    }
}

/// The value of a referenced Secret key (`<name>/<key>` in `secrets`), trimmed of a final newline.
///
/// # Errors
/// The key is referenced but absent or not UTF-8; the message names the Secret and the key.
fn value(
    secrets: &BTreeMap<String, Vec<u8>>,
    sel: Option<&SecretKeySelector>,
    field: &str,
) -> Result<Option<String>, SourceError> {
    let Some(sel) = sel else {
        return Ok(None);
    };
    let safe = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-._".contains(&c))
    };
    if !safe(&sel.name) || !safe(&sel.key) {
        return Err(SourceError(format!(
            "{field} references Secret {:?} key {:?}: Secret names and keys are letters, digits, - . _",
            sel.name, sel.key
        )));
    }
    let Some(bytes) = secrets.get(&format!("{}/{}", sel.name, sel.key)) else {
        return Err(SourceError(format!(
            "{field}: Secret {} has no key {} (or the Secret does not exist)",
            sel.name, sel.key
        )));
    };
    let text = String::from_utf8(bytes.clone()).map_err(|_| {
        SourceError(format!(
            "{field}: Secret {} key {} is not UTF-8 text",
            sel.name, sel.key
        ))
    })?;
    Ok(Some(text.trim_end_matches(['\n', '\r']).to_owned()))
}

/// One `Key=Value` of an Azure connection string.
fn conn_field(conn: &str, name: &str) -> Option<String> {
    conn.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// The store rooted at the destination's path (the server is a directory under it), with retries.
///
/// # Errors
/// `destinationPath` or a credential is missing or malformed; the credentials do not match the storage.
pub fn barman_store(
    b: &BarmanCloudSource,
    secrets: &BTreeMap<String, Vec<u8>>,
    policy: RetryPolicy,
) -> Result<Arc<dyn BlobStore>, SourceError> {
    let prefix = |p: &str| {
        if p.is_empty() {
            String::new()
        } else {
            format!("{p}/")
        }
    };
    let wrong = |kind: &str| {
        SourceError(format!(
            "destinationPath {} is {kind} storage, but the credentials given are for another",
            b.destination_path
        ))
    };
    let ca = value(secrets, b.endpoint_ca.as_ref(), "endpointCA")?;
    let store = match destination(&b.destination_path)? {
        Destination::S3 { bucket, path } => {
            if b.azure_credentials.is_some() || b.google_credentials.is_some() {
                return Err(wrong("S3"));
            }
            let c = b.s3_credentials.clone().unwrap_or_default();
            let cfg = S3Config {
                bucket,
                prefix: prefix(&path),
                region: value(secrets, c.region.as_ref(), "s3Credentials.region")?,
                endpoint: b.endpoint_url.clone(),
                access_key_id: value(
                    secrets,
                    c.access_key_id.as_ref(),
                    "s3Credentials.accessKeyId",
                )?,
                secret_access_key: value(
                    secrets,
                    c.secret_access_key.as_ref(),
                    "s3Credentials.secretAccessKey",
                )?,
                session_token: value(
                    secrets,
                    c.session_token.as_ref(),
                    "s3Credentials.sessionToken",
                )?,
                ca_pem: ca.map(String::into_bytes),
                max_retries: Some(0),
                ..S3Config::default()
            };
            if cfg.access_key_id.is_some() != cfg.secret_access_key.is_some() {
                return Err(SourceError(
                    "s3Credentials needs both accessKeyId and secretAccessKey (or inheritFromIAMRole)".into(),
                ));
            }
            Bucket::s3(&cfg).map_err(|e| SourceError(format!("S3 settings: {e}")))?
        }
        Destination::Gcs { bucket, path } => {
            if b.azure_credentials.is_some() || b.s3_credentials.is_some() {
                return Err(wrong("Google Cloud"));
            }
            let g = b.google_credentials.clone().unwrap_or_default();
            let cfg = blobstore::GcsConfig {
                bucket,
                prefix: prefix(&path),
                service_account_key: value(
                    secrets,
                    g.application_credentials.as_ref(),
                    "googleCredentials.applicationCredentials",
                )?,
                endpoint: b.endpoint_url.clone(),
                ..blobstore::GcsConfig::default()
            };
            Bucket::gcs(&cfg).map_err(|e| SourceError(format!("GCS settings: {e}")))?
        }
        Destination::Azure {
            account,
            container,
            path,
            endpoint,
        } => {
            if b.s3_credentials.is_some() || b.google_credentials.is_some() {
                return Err(wrong("Azure"));
            }
            let a = b.azure_credentials.clone().unwrap_or_default();
            if a.inherit_from_azure_ad || a.use_default_azure_credentials {
                return Err(SourceError(
                    "azureCredentials.inheritFromAzureAD / useDefaultAzureCredentials are not supported by pgro \
                     yet: reference a connectionString, storageKey or storageSasToken"
                        .into(),
                ));
            }
            let conn = value(
                secrets,
                a.connection_string.as_ref(),
                "azureCredentials.connectionString",
            )?;
            let from_conn = |k: &str| conn.as_deref().and_then(|c| conn_field(c, k));
            let account = value(
                secrets,
                a.storage_account.as_ref(),
                "azureCredentials.storageAccount",
            )?
            .or_else(|| from_conn("AccountName"))
            .unwrap_or(account);
            let cfg = blobstore::AzureConfig {
                account,
                container,
                prefix: prefix(&path),
                access_key: value(
                    secrets,
                    a.storage_key.as_ref(),
                    "azureCredentials.storageKey",
                )?
                .or_else(|| from_conn("AccountKey")),
                sas_token: value(
                    secrets,
                    a.storage_sas_token.as_ref(),
                    "azureCredentials.storageSasToken",
                )?
                .or_else(|| from_conn("SharedAccessSignature")),
                endpoint: endpoint.or_else(|| from_conn("BlobEndpoint")),
            };
            if cfg.access_key.is_none() && cfg.sas_token.is_none() {
                return Err(SourceError(
                    "azureCredentials needs a connectionString, storageKey or storageSasToken"
                        .into(),
                ));
            }
            Bucket::azure(&cfg).map_err(|e| SourceError(format!("Azure settings: {e}")))?
        }
    };
    Ok(Arc::new(Retrying::new(store, policy)))
}

#[cfg(test)]
mod tests;
