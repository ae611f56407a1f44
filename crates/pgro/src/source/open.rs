//! Opening a source from what the restore Job and the instance pod have: the `spec.source` object as YAML
//! and the Secret's keys as files (`--source SOURCE.yaml --secret-dir DIR`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use blobstore::{BlobStore, Bucket, FileStore, RetryPolicy, Retrying, S3Config};
use pgro_api::{PgbackrestSource, Source, UriStyle};

use super::pgbackrest_secret::{self, PgbackrestCredentials};
pub use super::reader::{OpenError, Reader};

/// `--source` / `--secret-dir`, the same for every command that reads a source.
#[derive(Debug, Clone, clap::Args)]
pub struct SourceArgs {
    /// The replica's `spec.source` object as YAML (e.g. `pgbackrest: {stanza: db, repoPath: …, s3: {…}}`).
    #[arg(long, env = "PGRO_SOURCE")]
    pub source: PathBuf,
    /// Directory holding the source Secret's keys as files (how the Job mounts it).
    #[arg(long, env = "PGRO_SECRET_DIR")]
    pub secret_dir: Option<PathBuf>,
    /// Attempts per storage request before a transient failure counts (backoff from 100 ms doubling up to
    /// 10 s: the default rides out about half a minute of outage per request).
    #[arg(long, env = "PGRO_STORAGE_ATTEMPTS", default_value_t = 10)]
    pub storage_attempts: u32,
}

/// A source that cannot be opened, with what to fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

impl SourceArgs {
    /// Reads `--source`.
    ///
    /// # Errors
    /// The file cannot be read or is not a `spec.source` object.
    pub fn load(&self) -> Result<Source, SourceError> {
        let text = std::fs::read_to_string(&self.source)
            .map_err(|e| SourceError(format!("reading {}: {e}", self.source.display())))?;
        serde_yaml::from_str(&text).map_err(|e| {
            SourceError(format!(
                "{} is not a spec.source object (e.g. `pgbackrest: {{stanza: db, repoPath: /pgbackrest/repo1, s3: {{…}}}}`): {e}",
                self.source.display()
            ))
        })
    }

    /// The Secret's keys (file name → contents), and one level of subdirectories as `<dir>/<file>` (a
    /// barman-cloud source's keys, mounted per Secret); Kubernetes' `..data` bookkeeping entries are
    /// skipped.
    ///
    /// # Errors
    /// The directory cannot be read.
    pub fn secrets(&self) -> Result<BTreeMap<String, Vec<u8>>, SourceError> {
        let mut out = BTreeMap::new();
        if let Some(dir) = &self.secret_dir {
            read_keys(dir, "", &mut out)?;
        }
        Ok(out)
    }

    /// Loads and opens the source.
    ///
    /// # Errors
    /// As [`open`].
    pub async fn open(&self) -> Result<Reader, OpenError> {
        let source = self.load().map_err(OpenError::Config)?;
        let secrets = self.secrets().map_err(OpenError::Config)?;
        open(&source, &secrets, self.storage_attempts).await
    }
}

/// The files of `dir` (following links, as Kubernetes mounts keys) into `out` as `<prefix><name>`, and at
/// the top level the files of each subdirectory as `<dir>/<name>`.
fn read_keys(
    dir: &Path,
    prefix: &str,
    out: &mut BTreeMap<String, Vec<u8>>,
) -> Result<(), SourceError> {
    let rd = std::fs::read_dir(dir).map_err(|e| {
        SourceError(format!(
            "reading the Secret directory {}: {e}",
            dir.display()
        ))
    })?;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") {
            continue;
        }
        if e.path().is_dir() && prefix.is_empty() {
            read_keys(&e.path(), &format!("{name}/"), out)?;
        } else if e.path().is_file() {
            let data = std::fs::read(e.path())
                .map_err(|err| SourceError(format!("reading Secret key {prefix}{name}: {err}")))?;
            out.insert(format!("{prefix}{name}"), data);
        }
    }
    Ok(())
}

impl SourceArgs {
    /// Loads the source and opens its WAL archive only (no `backup.info`): what `wal-fetch` needs.
    ///
    /// # Errors
    /// As [`open`]; a source without a WAL archive (Kopia) is a configuration error.
    pub async fn open_archive(
        &self,
    ) -> Result<(pgbackrest::Repository, pgbackrest::ArchiveInfo), OpenError> {
        let source = self.load().map_err(OpenError::Config)?;
        let secrets = self.secrets().map_err(OpenError::Config)?;
        let (store, stanza, pass) = pgbackrest_parts(&source, &secrets, self.storage_attempts)?;
        Ok(pgbackrest::Repository::open_archive(store, &stanza, pass.as_deref()).await?)
    }
}

/// Opens `source` with the Secret's keys, retrying each storage request up to `attempts` times.
///
/// # Errors
/// The Secret lacks what the storage needs, or the repository cannot be opened.
pub async fn open(
    source: &Source,
    secrets: &BTreeMap<String, Vec<u8>>,
    attempts: u32,
) -> Result<Reader, OpenError> {
    if let Some(args) = kopia_args(source, secrets, attempts).map_err(OpenError::Config)? {
        return Ok(Reader::Kopia(Box::new(args.connect().await?)));
    }
    if let Some(r) = &source.restic {
        let policy = RetryPolicy {
            max_attempts: attempts.max(1),
            ..RetryPolicy::default()
        };
        let (store, password) =
            super::restic_source::restic_store(r, secrets, policy).map_err(OpenError::Config)?;
        let repo = std::sync::Arc::new(restic::Repository::open(store, &password).await?);
        let snapshots = repo.snapshots().await?;
        return Ok(Reader::Restic(Box::new(super::reader::ResticDumps {
            repo,
            snapshots,
            url: r.repository.clone(),
            file_name: r.file_name.clone(),
        })));
    }
    if let Some(b) = &source.barman_cloud {
        let catalog = barman_catalog(b, secrets, attempts)?;
        let listing = catalog.backups().await?;
        return Ok(Reader::Barman(Box::new(super::reader::BarmanServer {
            catalog,
            listing,
            destination: b.destination_path.clone(),
            server: b.server_name.clone(),
        })));
    }
    let (store, stanza, pass) = pgbackrest_parts(source, secrets, attempts)?;
    let repo = pgbackrest::Repository::open(store, &stanza, pass.as_deref()).await?;
    Ok(Reader::Pgbackrest(Box::new(repo)))
}

/// The catalog of a barman-cloud source's server, with retries.
///
/// # Errors
/// A storage setting or a referenced Secret key is missing or malformed.
pub fn barman_catalog(
    b: &pgro_api::BarmanCloudSource,
    secrets: &BTreeMap<String, Vec<u8>>,
    attempts: u32,
) -> Result<barman::Catalog, OpenError> {
    let policy = RetryPolicy {
        max_attempts: attempts.max(1),
        ..RetryPolicy::default()
    };
    let store =
        super::barman_source::barman_store(b, secrets, policy).map_err(OpenError::Config)?;
    Ok(barman::Catalog::new(store, &b.server_name))
}

/// What opening a pgBackRest stanza takes: its store, the stanza and the cipher passphrase.
type StanzaParts = (Arc<dyn BlobStore>, String, Option<String>);

/// The store, stanza and cipher passphrase of a pgBackRest source.
fn pgbackrest_parts(
    source: &Source,
    secrets: &BTreeMap<String, Vec<u8>>,
    attempts: u32,
) -> Result<StanzaParts, OpenError> {
    let Some(p) = &source.pgbackrest else {
        return Err(OpenError::Config(SourceError(
            "a Kopia source has no WAL archive: `pgro wal-fetch` reads pgBackRest sources".into(),
        )));
    };
    let creds = if secrets.is_empty() {
        PgbackrestCredentials::default()
    } else {
        pgbackrest_secret::credentials(secrets, p.repo)
            .map_err(|e| OpenError::Config(SourceError(e)))?
    };
    let policy = RetryPolicy {
        max_attempts: attempts.max(1),
        ..RetryPolicy::default()
    };
    let store = pgbackrest_store(p, &creds, policy).map_err(OpenError::Config)?;
    Ok((store, p.stanza.clone(), creds.cipher_pass))
}

/// For a Kopia source (`kopia: {secretRef}`), the repository options from the Secret's keys (the same keys
/// as a `kopiaSecretRef` Secret); `None` for any other source.
///
/// # Errors
/// A key is missing or malformed, or not UTF-8 (the message names keys, never values).
pub fn kopia_args(
    source: &Source,
    secrets: &BTreeMap<String, Vec<u8>>,
    attempts: u32,
) -> Result<Option<crate::cli::repository::RepositoryArgs>, SourceError> {
    if source.kopia.is_none() {
        return Ok(None);
    }
    let mut data = BTreeMap::new();
    for (k, v) in secrets {
        let v = String::from_utf8(v.clone())
            .map_err(|_| SourceError(format!("Secret key {k} is not UTF-8 text")))?;
        data.insert(k.clone(), v);
    }
    let mut args = crate::operator::kopia_secret::repository_args("the source Secret", &data)
        .map_err(|e| SourceError(e.to_string()))?;
    args.storage_attempts = attempts.max(1);
    Ok(Some(args))
}

/// The storage of a pgBackRest repository, rooted at `repoPath`, with retries.
///
/// # Errors
/// A storage setting or credential is missing or malformed.
pub fn pgbackrest_store(
    p: &PgbackrestSource,
    creds: &PgbackrestCredentials,
    policy: RetryPolicy,
) -> Result<Arc<dyn BlobStore>, SourceError> {
    // Object keys are repoPath without its leading "/" (pgbackrest-format.md §1.1).
    let prefix = {
        let t = p.repo_path.trim_matches('/');
        if t.is_empty() {
            String::new()
        } else {
            format!("{t}/")
        }
    };
    if p.volume.is_some() {
        return Ok(Arc::new(Retrying::new(
            FileStore::new(Path::new(&p.repo_path)),
            policy,
        )));
    }
    if let Some(s3) = &p.s3 {
        let endpoint = match s3.port {
            Some(port) => format!("{}:{port}", s3.endpoint),
            None => s3.endpoint.clone(),
        };
        let aws = s3.endpoint.ends_with(".amazonaws.com") && s3.port.is_none();
        let cfg = S3Config {
            bucket: s3.bucket.clone(),
            prefix,
            region: Some(s3.region.clone()),
            endpoint: (!aws).then_some(endpoint),
            access_key_id: creds.s3_key.clone(),
            secret_access_key: creds.s3_key_secret.clone(),
            session_token: creds.s3_token.clone(),
            virtual_hosted_style: !aws && s3.uri_style == UriStyle::Host,
            skip_tls_verify: !s3.verify_tls,
            max_retries: Some(0),
            ..S3Config::default()
        };
        let bucket = Bucket::s3(&cfg).map_err(|e| SourceError(format!("S3 settings: {e}")))?;
        return Ok(Arc::new(Retrying::new(bucket, policy)));
    }
    if let Some(g) = &p.gcs {
        let cfg = blobstore::GcsConfig {
            bucket: g.bucket.clone(),
            prefix,
            service_account_key: creds.gcs_key.clone(),
            endpoint: g.endpoint.clone(),
            ..blobstore::GcsConfig::default()
        };
        let bucket = Bucket::gcs(&cfg).map_err(|e| SourceError(format!("GCS settings: {e}")))?;
        return Ok(Arc::new(Retrying::new(bucket, policy)));
    }
    if let Some(a) = &p.azure {
        let account = a.account.clone().ok_or_else(|| {
            SourceError(
                "azure.account is required (pgro does not read it from the Secret yet)".into(),
            )
        })?;
        let sas = creds.azure_key_type.as_deref() == Some("sas");
        let cfg = blobstore::AzureConfig {
            account,
            container: a.container.clone(),
            prefix,
            access_key: if sas { None } else { creds.azure_key.clone() },
            sas_token: if sas { creds.azure_key.clone() } else { None },
            endpoint: a.endpoint.clone(),
        };
        let bucket =
            Bucket::azure(&cfg).map_err(|e| SourceError(format!("Azure settings: {e}")))?;
        return Ok(Arc::new(Retrying::new(bucket, policy)));
    }
    Err(SourceError(
        "spec.source.pgbackrest needs one of s3, gcs, azure or volume".into(),
    ))
}
