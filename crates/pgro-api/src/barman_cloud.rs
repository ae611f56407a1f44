//! `spec.source.barmanCloud`: a barman-cloud object store in the shape of CloudNativePG's
//! `barmanObjectStore` (in-tree `Cluster.spec.backup.barmanObjectStore`, or the barman-cloud plugin's
//! `ObjectStore.spec.configuration`), so a user copies the block from their Cluster unchanged. Credentials
//! are CNPG's per-key `{name, key}` Secret references; the operator mounts each referenced key, and the
//! command line reads it as `<secret-dir>/<name>/<key>`.
//!
//! `wal`, `data`, `tags` and `historyTags` configure *writing* backups; they are accepted so that the
//! copied block passes strict validation, and are not used: a restore reads the compression of each file
//! from its name, and S3 server-side encryption is transparent to a reader.

use std::collections::BTreeMap;

use crate::replica::SecretKeySelector;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validation;

/// A barman-cloud object store (CloudNativePG, Cozystack). The newest backup whose `backup.info` says
/// `DONE` is restored, then the archived WAL of the same server is replayed (`spec.recovery`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = validation::one_barman_credentials())]
#[serde(rename_all = "camelCase")]
pub struct BarmanCloudSource {
    /// Where the server directories are: `s3://<bucket>[/<path>]`, `gs://<bucket>[/<path>]`, or an Azure
    /// container URL `https://<account>.<service>/<container>[/<path>]` (an emulator's
    /// `http://<host>:<port>/<account>/<container>[/<path>]`), exactly as in the Cluster.
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = validation::destination_path())]
    pub destination_path: String,
    /// The server's directory under `destinationPath` (CNPG defaults it to the Cluster's name; give it
    /// explicitly here). A copy never writes to it.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = validation::server_name())]
    pub server_name: String,
    /// An S3-compatible endpoint (`https://…` or `http://…`), e.g. MinIO's service URL.
    #[serde(
        rename = "endpointURL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = validation::endpoint_url())]
    pub endpoint_url: Option<String>,
    /// A Secret key holding the PEM CA bundle that signs the endpoint's certificate.
    #[serde(
        rename = "endpointCA",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub endpoint_ca: Option<SecretKeySelector>,
    /// S3 credentials (for `s3://`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_credentials: Option<S3Credentials>,
    /// Azure credentials (for an Azure container URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_credentials: Option<AzureCredentials>,
    /// Google Cloud Storage credentials (for `gs://`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google_credentials: Option<GoogleCredentials>,
    /// Accepted, not used (how CNPG archives WAL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal: Option<BarmanWal>,
    /// Accepted, not used (how CNPG takes base backups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<BarmanData>,
    /// Accepted, not used (tags CNPG puts on archived objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// Accepted, not used (tags CNPG puts on history files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_tags: Option<BTreeMap<String, String>>,
}

/// CNPG's `s3Credentials`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Credentials {
    /// The access key ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<SecretKeySelector>,
    /// The secret access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<SecretKeySelector>,
    /// The bucket's region (discovered from the bucket when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<SecretKeySelector>,
    /// A session token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<SecretKeySelector>,
    /// Use the pod's ambient AWS credentials (IRSA web identity or the instance role) instead of keys.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inherit_from_iam_role: bool,
}

/// CNPG's `azureCredentials`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureCredentials {
    /// A storage connection string (`AccountName=…;AccountKey=…` or `…;SharedAccessSignature=…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<SecretKeySelector>,
    /// The storage account (with `storageKey` or `storageSasToken`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_account: Option<SecretKeySelector>,
    /// The account's shared key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_key: Option<SecretKeySelector>,
    /// A SAS token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_sas_token: Option<SecretKeySelector>,
    /// Use the pod's Azure AD workload identity (not supported by pgro yet: refused with a message).
    #[serde(
        rename = "inheritFromAzureAD",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub inherit_from_azure_ad: bool,
    /// Use Azure's default credential chain (not supported by pgro yet: refused with a message).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub use_default_azure_credentials: bool,
}

/// CNPG's `googleCredentials`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GoogleCredentials {
    /// A service-account key (JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_credentials: Option<SecretKeySelector>,
    /// Use the GKE workload identity of the pod instead of a key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gke_environment: bool,
}

/// CNPG's `wal` block (accepted, not used).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BarmanWal {
    /// `gzip`, `bzip2`, `snappy`, `lz4`, `xz` or `zstd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// `AES256` or `aws:kms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    /// Parallel archive/restore processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<i32>,
    /// Extra `barman-cloud-wal-archive` arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_additional_command_args: Option<Vec<String>>,
    /// Extra `barman-cloud-wal-restore` arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_additional_command_args: Option<Vec<String>>,
}

/// CNPG's `data` block (accepted, not used).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BarmanData {
    /// `gzip`, `bzip2`, `snappy`, `lz4`, `xz` or `zstd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// `AES256` or `aws:kms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    /// Parallel upload jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<i32>,
    /// Whether the backup starts with an immediate checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immediate_checkpoint: Option<bool>,
    /// Extra `barman-cloud-backup` arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_command_args: Option<Vec<String>>,
}

impl BarmanCloudSource {
    /// Every Secret key the source references (credentials and CA), in field order.
    #[must_use]
    pub fn secret_keys(&self) -> Vec<&SecretKeySelector> {
        let mut out: Vec<&SecretKeySelector> = Vec::new();
        if let Some(s) = &self.s3_credentials {
            out.extend(
                [
                    &s.access_key_id,
                    &s.secret_access_key,
                    &s.region,
                    &s.session_token,
                ]
                .into_iter()
                .flatten(),
            );
        }
        if let Some(a) = &self.azure_credentials {
            out.extend(
                [
                    &a.connection_string,
                    &a.storage_account,
                    &a.storage_key,
                    &a.storage_sas_token,
                ]
                .into_iter()
                .flatten(),
            );
        }
        if let Some(g) = &self.google_credentials {
            out.extend(g.application_credentials.iter());
        }
        out.extend(self.endpoint_ca.iter());
        out
    }

    /// The distinct Secrets it references, sorted.
    #[must_use]
    pub fn secret_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.secret_keys().iter().map(|k| k.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}
