//! Repository options shared by `pgro kopia …` and `pgro restore`: flags, with environment variables named
//! like kopia's where kopia has them (`KOPIA_PASSWORD`, `AWS_ACCESS_KEY_ID`, …). The restore Job gets the
//! Kopia Secret's keys as these variables ([`SECRET_KEY_ENV`]).

use std::path::PathBuf;
use std::sync::Arc;

use kopia::{
    AzureConfig, FilesystemStorage, GcsConfig, Indexed, ObjectStorage, Repository, RetryPolicy,
    RetryingStorage, S3Config, Storage,
};

/// Kopia Secret key → environment variable read by [`RepositoryArgs`] (behaviour A4).
pub const SECRET_KEY_ENV: &[(&str, &str)] = &[
    ("repositoryPassword", "KOPIA_PASSWORD"),
    ("storage", "KOPIA_STORAGE"),
    ("bucket", "KOPIA_BUCKET"),
    ("region", "KOPIA_REGION"),
    ("endpoint", "KOPIA_ENDPOINT"),
    ("disableTls", "KOPIA_DISABLE_TLS"),
    ("prefix", "KOPIA_PREFIX"),
    ("path", "KOPIA_PATH"),
    ("accessKeyId", "AWS_ACCESS_KEY_ID"),
    ("secretAccessKey", "AWS_SECRET_ACCESS_KEY"),
    ("sessionToken", "AWS_SESSION_TOKEN"),
    ("credentialsFile", "GOOGLE_APPLICATION_CREDENTIALS"),
    ("credentialsJson", "KOPIA_GCS_CREDENTIALS_JSON"),
    ("container", "KOPIA_CONTAINER"),
    ("storageAccount", "AZURE_STORAGE_ACCOUNT"),
    ("storageKey", "AZURE_STORAGE_KEY"),
    ("sasToken", "AZURE_STORAGE_SAS_TOKEN"),
    ("storageDomain", "AZURE_STORAGE_DOMAIN"),
];

/// Where the repository lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StorageKind {
    /// A directory (kopia `repository connect filesystem`).
    Filesystem,
    /// Amazon S3 or an S3-compatible server.
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage.
    Azure,
}

/// Repository location and credentials.
#[derive(Clone, clap::Args)]
pub struct RepositoryArgs {
    /// Repository password.
    #[arg(
        long,
        short = 'p',
        env = "KOPIA_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub password: Option<String>,
    /// Storage type; defaults to `filesystem` when `--path` is given, else `s3`.
    #[arg(
        long,
        env = "KOPIA_STORAGE",
        value_enum,
        ignore_case = true,
        global = true
    )]
    pub storage: Option<StorageKind>,
    /// Repository directory (filesystem storage).
    #[arg(long, env = "KOPIA_PATH", global = true)]
    pub path: Option<PathBuf>,
    /// Bucket name (S3, GCS).
    #[arg(long, env = "KOPIA_BUCKET", global = true)]
    pub bucket: Option<String>,
    /// S3 endpoint: `host[:port]` (TLS unless --disable-tls), or `http://host[:port]` /
    /// `https://host[:port]`, whose scheme decides TLS (default: AWS). For GCS, an emulator's base URL
    /// (requests unsigned); for Azure, the account's URL (e.g. Azurite's
    /// `http://127.0.0.1:10000/devstoreaccount1`).
    #[arg(long, env = "KOPIA_ENDPOINT", global = true)]
    pub endpoint: Option<String>,
    /// S3 region (default: the bucket's own, asked from the server; `us-east-1` if it names none).
    #[arg(long, env = "KOPIA_REGION", global = true)]
    pub region: Option<String>,
    /// Object key prefix of the repository inside the bucket or container.
    #[arg(long, env = "KOPIA_PREFIX", default_value = "", global = true)]
    pub prefix: String,
    /// Use plain HTTP for a `host[:port]` S3 endpoint. KOPIA_DISABLE_TLS takes true/false, 1/0, yes/no,
    /// on/off or t/f, in any case.
    #[arg(
        long,
        env = "KOPIA_DISABLE_TLS",
        global = true,
        action = clap::ArgAction::SetTrue,
        value_parser = parse_bool
    )]
    pub disable_tls: bool,
    /// S3 access key ID.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true, global = true)]
    pub access_key: Option<String>,
    /// S3 secret access key.
    #[arg(
        long,
        env = "AWS_SECRET_ACCESS_KEY",
        hide_env_values = true,
        global = true
    )]
    pub secret_access_key: Option<String>,
    /// S3 session token.
    #[arg(long, env = "AWS_SESSION_TOKEN", hide_env_values = true, global = true)]
    pub session_token: Option<String>,
    /// GCS service-account credentials file.
    #[arg(long, env = "GOOGLE_APPLICATION_CREDENTIALS", global = true)]
    pub credentials_file: Option<String>,
    /// GCS service-account key, the JSON itself (how a Secret holds it).
    #[arg(
        long,
        env = "KOPIA_GCS_CREDENTIALS_JSON",
        hide_env_values = true,
        global = true
    )]
    pub credentials_json: Option<String>,
    /// Azure container.
    #[arg(long, env = "KOPIA_CONTAINER", global = true)]
    pub container: Option<String>,
    /// Azure storage account.
    #[arg(long, env = "AZURE_STORAGE_ACCOUNT", global = true)]
    pub storage_account: Option<String>,
    /// Azure storage account key.
    #[arg(long, env = "AZURE_STORAGE_KEY", hide_env_values = true, global = true)]
    pub storage_key: Option<String>,
    /// Azure SAS token (instead of the account key).
    #[arg(
        long,
        env = "AZURE_STORAGE_SAS_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub sas_token: Option<String>,
    /// Azure storage domain, for clouds other than Azure's public one (kopia's `--storage-domain`, e.g.
    /// `blob.core.chinacloudapi.cn`; default `blob.core.windows.net`).
    #[arg(long, env = "AZURE_STORAGE_DOMAIN", global = true)]
    pub storage_domain: Option<String>,
    /// Attempts per storage request before a transient failure (timeout, refused connection, 5xx) is final.
    #[arg(long, env = "PGRO_STORAGE_ATTEMPTS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub storage_attempts: u32,
}

// Hand-written so that no secret can reach a log line through `{:?}`.
impl std::fmt::Debug for RepositoryArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepositoryArgs")
            .field("storage", &self.kind())
            .field("location", &self.location())
            .finish_non_exhaustive()
    }
}

/// A configuration error: what is missing or wrong, phrased for the user.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// A boolean setting as people write it in Secrets and environment variables: `true`/`false`, `1`/`0`,
/// `yes`/`no`, `y`/`n`, `on`/`off`, `t`/`f`, in any case and with surrounding whitespace (a value
/// written with `echo` ends in a newline); empty is false.
///
/// # Errors
///
/// Any other value, with a message listing the accepted ones.
pub fn parse_bool(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "1" | "yes" | "y" | "on" => Ok(true),
        "false" | "f" | "0" | "no" | "n" | "off" | "" => Ok(false),
        _ => Err(format!(
            "{value:?} is not a boolean (true/false, 1/0, yes/no, on/off)"
        )),
    }
}

fn required<'a>(v: &'a Option<String>, what: &str) -> Result<&'a str, ConfigError> {
    v.as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ConfigError(format!("{what} is required")))
}

impl RepositoryArgs {
    /// The storage type, explicit or inferred.
    pub fn kind(&self) -> StorageKind {
        match (self.storage, &self.path) {
            (Some(k), _) => k,
            (None, Some(_)) => StorageKind::Filesystem,
            (None, None) => StorageKind::S3,
        }
    }

    /// A credential-free description of the repository location, for logs and messages.
    pub fn location(&self) -> String {
        let prefix = &self.prefix;
        match self.kind() {
            StorageKind::Filesystem => self
                .path
                .as_ref()
                .map_or_else(|| "<no path>".to_owned(), |p| p.display().to_string()),
            StorageKind::S3 => format!(
                "s3://{}/{prefix}{}",
                self.bucket.as_deref().unwrap_or("<no bucket>"),
                self.endpoint
                    .as_deref()
                    .map(|e| format!(" at {e}"))
                    .unwrap_or_default()
            ),
            StorageKind::Gcs => format!(
                "gs://{}/{prefix}",
                self.bucket.as_deref().unwrap_or("<no bucket>")
            ),
            StorageKind::Azure => format!(
                "azure://{}/{}/{prefix}",
                self.storage_account.as_deref().unwrap_or("<no account>"),
                self.container.as_deref().unwrap_or("<no container>")
            ),
        }
    }

    /// The password, or a configuration error naming the flag and variable.
    pub fn password(&self) -> Result<&str, ConfigError> {
        required(
            &self.password,
            "the repository password (--password or KOPIA_PASSWORD)",
        )
    }

    /// Opens the blob storage (with retries on transient failures).
    pub async fn storage(&self) -> Result<Arc<dyn Storage>, RepositoryError> {
        let inner: Arc<dyn Storage> = match self.kind() {
            StorageKind::Filesystem => {
                let path = self.path.as_ref().ok_or_else(|| {
                    ConfigError("--path (KOPIA_PATH) is required for filesystem storage".into())
                })?;
                Arc::new(FilesystemStorage::open(path).await?)
            }
            StorageKind::S3 => Arc::new(ObjectStorage::s3(&S3Config {
                bucket: required(&self.bucket, "--bucket (KOPIA_BUCKET)")?.to_owned(),
                prefix: self.prefix.clone(),
                region: self.region.clone().filter(|r| !r.is_empty()),
                endpoint: self.endpoint.clone().filter(|e| !e.is_empty()),
                disable_tls: self.disable_tls,
                access_key_id: self.access_key.clone(),
                secret_access_key: self.secret_access_key.clone(),
                session_token: self.session_token.clone(),
                // One retry layer (RetryingStorage below), so attempts are what --storage-attempts says.
                max_retries: Some(0),
                ..S3Config::default()
            })?),
            StorageKind::Gcs => Arc::new(ObjectStorage::gcs(&self.gcs_config()?)?),
            StorageKind::Azure => Arc::new(ObjectStorage::azure(&self.azure_config()?)?),
        };
        let policy = RetryPolicy {
            max_attempts: self.storage_attempts,
            ..RetryPolicy::default()
        };
        Ok(Arc::new(RetryingStorage::new(inner, policy)))
    }

    /// The GCS settings: bucket, prefix, credentials (JSON or file), emulator endpoint.
    ///
    /// # Errors
    ///
    /// No bucket.
    pub fn gcs_config(&self) -> Result<GcsConfig, ConfigError> {
        Ok(GcsConfig {
            bucket: required(&self.bucket, "--bucket (KOPIA_BUCKET)")?.to_owned(),
            prefix: self.prefix.clone(),
            service_account_key: self.credentials_json.clone().filter(|v| !v.is_empty()),
            service_account_path: self.credentials_file.clone().filter(|v| !v.is_empty()),
            endpoint: self.endpoint.clone().filter(|e| !e.is_empty()),
        })
    }

    /// The Azure settings: account, container, prefix, key or SAS token, and the account URL (the
    /// endpoint as given, else `https://<account>.<storage domain>`).
    ///
    /// # Errors
    ///
    /// No account or container; an endpoint together with a storage domain.
    pub fn azure_config(&self) -> Result<AzureConfig, ConfigError> {
        let account = required(
            &self.storage_account,
            "--storage-account (AZURE_STORAGE_ACCOUNT)",
        )?;
        let domain = self.storage_domain.as_deref().filter(|d| !d.is_empty());
        let endpoint = match (self.endpoint.as_deref().filter(|e| !e.is_empty()), domain) {
            (Some(_), Some(_)) => {
                return Err(ConfigError(
                    "set either the Azure endpoint (`endpoint`, KOPIA_ENDPOINT) or the storage domain \
                     (`storageDomain`, AZURE_STORAGE_DOMAIN), not both"
                        .into(),
                ));
            }
            (Some(e), None) => Some(e.to_owned()),
            (None, Some(d)) => Some(format!("https://{account}.{d}")),
            (None, None) => None,
        };
        Ok(AzureConfig {
            account: account.to_owned(),
            container: required(&self.container, "--container (KOPIA_CONTAINER)")?.to_owned(),
            prefix: self.prefix.clone(),
            access_key: self.storage_key.clone().filter(|v| !v.is_empty()),
            sas_token: self.sas_token.clone().filter(|v| !v.is_empty()),
            endpoint,
        })
    }

    /// Opens storage, decrypts the format blob and loads the index.
    pub async fn connect(&self) -> Result<Repository<Indexed>, RepositoryError> {
        let password = self.password()?;
        let storage = self.storage().await?;
        Ok(Repository::connect(storage, password).await?)
    }
}

/// Opening a repository failed: bad configuration or a repository error.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// Flags or environment are incomplete.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The repository could not be opened.
    #[error(transparent)]
    Kopia(kopia::Error),
}

impl From<kopia::Error> for RepositoryError {
    /// Storage settings that cannot work as given (a bucket in another region, an endpoint with a
    /// scheme other than http/https) become configuration errors naming the Secret key and flag to
    /// change: retrying them fails the same way, and the operator reports them on the Secret.
    fn from(e: kopia::Error) -> Self {
        match settings_hint(&e) {
            Some(hint) => Self::Config(ConfigError(format!(
                "{hint} ({})",
                super::kopia::error_chain(&e)
            ))),
            None => Self::Kopia(e),
        }
    }
}

impl From<kopia::StorageError> for RepositoryError {
    fn from(e: kopia::StorageError) -> Self {
        kopia::Error::Storage {
            target: "repository".into(),
            source: e,
        }
        .into()
    }
}

/// What to change when a storage error is a setting that cannot work, naming the Kopia Secret key and
/// the flag / environment variable it maps to.
fn settings_hint(e: &kopia::Error) -> Option<String> {
    let kopia::Error::Storage { source, .. } = e else {
        return None;
    };
    match source {
        kopia::StorageError::WrongRegion {
            expected: Some(region),
            ..
        } => Some(format!(
            "set the Kopia Secret key `region` (flag --region, KOPIA_REGION) to {region:?}"
        )),
        kopia::StorageError::WrongRegion { expected: None, .. } => Some(
            "set the Kopia Secret key `region` (flag --region, KOPIA_REGION) to the bucket's region; \
             the server did not name it"
                .to_owned(),
        ),
        kopia::StorageError::EndpointScheme { .. } => Some(
            "set the Kopia Secret key `endpoint` (flag --endpoint, KOPIA_ENDPOINT) to host[:port], \
             http://host[:port] or https://host[:port]"
                .to_owned(),
        ),
        _ => None,
    }
}

impl RepositoryError {
    /// The exit-code class of this error.
    pub fn failure(&self) -> super::exit::Failure {
        match self {
            Self::Config(_) => super::exit::Failure::Usage,
            Self::Kopia(e) => super::exit::Failure::of_kopia(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        repo: RepositoryArgs,
    }

    #[test]
    fn storage_kind_is_inferred_from_path() {
        let t = T::parse_from(["t", "--path", "/repo", "--password", "x"]);
        assert_eq!(t.repo.kind(), StorageKind::Filesystem);
        let t = T::parse_from(["t", "--bucket", "b"]);
        assert_eq!(t.repo.kind(), StorageKind::S3);
        let t = T::parse_from(["t", "--storage", "GCS", "--bucket", "b"]);
        assert_eq!(t.repo.kind(), StorageKind::Gcs);
    }

    #[test]
    fn debug_output_has_no_secrets() {
        let t = T::parse_from([
            "t",
            "--bucket",
            "b",
            "--password",
            "hunter2-pass",
            "--secret-access-key",
            "hunter2-key",
        ]);
        let s = format!("{:?}", t.repo);
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("s3://b/"), "{s}");
    }

    #[test]
    fn secret_keys_map_to_declared_flags() {
        // Every variable the operator sets from the Secret must be read by some flag.
        let cmd = <T as clap::CommandFactory>::command();
        let envs: Vec<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
            .collect();
        for (key, var) in SECRET_KEY_ENV {
            assert!(envs.iter().any(|e| e == var), "{key} → {var} has no flag");
        }
    }

    #[test]
    fn gcs_and_azure_settings_map_credentials_endpoints_and_domains() {
        let t = T::parse_from([
            "t",
            "--storage",
            "gcs",
            "--bucket",
            "b",
            "--prefix",
            "p/",
            "--credentials-json",
            "{}",
            "--endpoint",
            "http://127.0.0.1:4443",
        ]);
        let g = t.repo.gcs_config().expect("valid");
        assert_eq!(
            (g.bucket.as_str(), g.prefix.as_str(), g.endpoint.as_deref()),
            ("b", "p/", Some("http://127.0.0.1:4443"))
        );
        assert_eq!(g.service_account_key.as_deref(), Some("{}"));
        let azure = |extra: &[&str]| {
            let mut args = vec![
                "t",
                "--storage",
                "azure",
                "--storage-account",
                "acct",
                "--container",
                "c",
            ];
            args.extend_from_slice(extra);
            T::parse_from(args).repo.azure_config()
        };
        let a = azure(&["--sas-token", "sv=1&sig=x"]).expect("valid");
        assert_eq!((a.account.as_str(), a.container.as_str()), ("acct", "c"));
        assert_eq!(
            (a.sas_token.as_deref(), a.access_key.as_deref(), a.endpoint),
            (Some("sv=1&sig=x"), None, None)
        );
        let a = azure(&["--storage-domain", "blob.core.chinacloudapi.cn"]).expect("valid");
        assert_eq!(
            a.endpoint.as_deref(),
            Some("https://acct.blob.core.chinacloudapi.cn")
        );
        let a = azure(&["--endpoint", "http://127.0.0.1:10000/acct"]).expect("valid");
        assert_eq!(a.endpoint.as_deref(), Some("http://127.0.0.1:10000/acct"));
        let e =
            azure(&["--endpoint", "http://h/acct", "--storage-domain", "d"]).expect_err("refused");
        assert!(e.to_string().contains("not both"), "{e}");
        let e = T::parse_from(["t", "--storage", "azure", "--container", "c"])
            .repo
            .azure_config()
            .expect_err("refused");
        assert!(e.to_string().contains("--storage-account"), "{e}");
    }

    #[test]
    fn disable_tls_accepts_the_usual_boolean_spellings() {
        for v in ["1", "True", "yes", "Y", "on", "t", " true\n"] {
            assert_eq!(parse_bool(v), Ok(true), "{v:?}");
        }
        for v in ["0", "False", "no", "N", "off", "f", ""] {
            assert_eq!(parse_bool(v), Ok(false), "{v:?}");
        }
        assert!(parse_bool("maybe").is_err());
        let t = T::parse_from(["t", "--bucket", "b", "--disable-tls"]);
        assert!(t.repo.disable_tls);
        let t = T::parse_from(["t", "--bucket", "b"]);
        assert!(!t.repo.disable_tls);
    }

    #[test]
    fn wrong_region_and_endpoint_scheme_are_config_errors_naming_the_secret_key() {
        let storage = |source| kopia::Error::Storage {
            target: "kopia.repository".into(),
            source,
        };
        let e = RepositoryError::from(storage(kopia::StorageError::WrongRegion {
            bucket: "b".into(),
            used: "us-east-1".into(),
            expected: Some("ap-southeast-2".into()),
        }));
        assert!(matches!(e, RepositoryError::Config(_)), "{e:?}");
        assert_eq!(e.failure(), super::super::exit::Failure::Usage);
        let msg = e.to_string();
        assert!(
            msg.contains("`region`")
                && msg.contains("KOPIA_REGION")
                && msg.contains("ap-southeast-2"),
            "{msg}"
        );
        let e = RepositoryError::from(storage(kopia::StorageError::EndpointScheme {
            endpoint: "ftp://h".into(),
            scheme: "ftp".into(),
        }));
        assert!(e.to_string().contains("`endpoint`"), "{e}");
        assert_eq!(e.failure(), super::super::exit::Failure::Usage);
        let e = RepositoryError::from(kopia::Error::WrongPassword);
        assert!(matches!(e, RepositoryError::Kopia(_)));
    }

    #[tokio::test]
    async fn missing_password_is_a_config_error() {
        let t = T::parse_from(["t", "--path", "/nonexistent"]);
        let Err(e) = t.repo.connect().await else {
            panic!("connect without a password succeeded");
        };
        assert!(matches!(e, RepositoryError::Config(_)), "{e}");
        assert!(e.to_string().contains("KOPIA_PASSWORD"), "{e}");
    }
}
