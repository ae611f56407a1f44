//! `spec.source`: where a replica's backups live, in the shape of the ecosystem the user comes from, and
//! `spec.recovery` for sources with a WAL archive.
//!
//! A one-of here is a struct of optional members with a CEL rule "exactly one is set" rather than an enum:
//! new members (`barmanCloud`, `restic`) can be added without changing the shape of the existing ones, and
//! the apiserver answers a wrong combination with a message instead of a structural-schema error.

use k8s_openapi::api::core::v1::SecretReference;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::barman_cloud::BarmanCloudSource;
use crate::restic::ResticSource;
use crate::validation;

/// Where the backups are: exactly one member is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = validation::one_source_member())]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// A Kopia repository; the same as `kopiaSecretRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kopia: Option<KopiaSource>,
    /// A pgBackRest repository (Crunchy PGO, CYBERTEC CPO, Percona, plain pgBackRest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgbackrest: Option<PgbackrestSource>,
    /// A barman-cloud object store (CloudNativePG, Cozystack), in the shape of CNPG's `barmanObjectStore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub barman_cloud: Option<BarmanCloudSource>,
    /// A restic repository of logical dumps (KubeStash / KubeDB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restic: Option<ResticSource>,
}

/// A Kopia repository.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KopiaSource {
    /// Secret in this namespace with the Kopia repository credentials (the keys of `kopiaSecretRef`).
    #[x_kube(validation = validation::secret_ref_name("source.kopia.secretRef"))]
    pub secret_ref: SecretReference,
}

/// A pgBackRest repository: one stanza in one `repoN`. The newest backup set in `backup.info` (any type) is
/// restored. Encryption needs no setting: an encrypted repository is recognised by its encrypted
/// `archive.info`/`backup.info`, and the passphrase is the Secret's `repoN-cipher-pass`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = validation::one_pgbackrest_storage())]
#[serde(rename_all = "camelCase")]
pub struct PgbackrestSource {
    /// The stanza (pgBackRest `--stanza`); PGO and CPO name theirs `db`.
    #[serde(default = "default_stanza")]
    #[schemars(length(min = 1, max = 128))]
    #[x_kube(validation = validation::stanza())]
    pub stanza: String,
    /// The repository's root (pgBackRest `repoN-path`), also inside a bucket or container. pgBackRest's
    /// default is `/var/lib/pgbackrest`; PGO uses `/pgbackrest/repo1` (`/pgbackrest/repoN`) unless its
    /// `global` section overrides it.
    #[serde(default = "default_repo_path")]
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = validation::absolute_path("source.pgbackrest.repoPath"))]
    pub repo_path: String,
    /// An S3 or S3-compatible bucket (pgBackRest `repoN-type=s3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<PgbackrestS3>,
    /// A Google Cloud Storage bucket (`repoN-type=gcs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcs: Option<PgbackrestGcs>,
    /// An Azure Blob Storage container (`repoN-type=azure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<PgbackrestAzure>,
    /// A PersistentVolumeClaim holding the repository (`repoN-type=posix`, e.g. a PGO or CPO repo-host
    /// volume): the restore Job mounts it read-only at `repoPath`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<PgbackrestVolume>,
    /// Secret in this namespace with the credentials and the cipher passphrase, as pgBackRest option names
    /// (`repo1-s3-key`, `repo1-s3-key-secret`, `repo1-s3-token`, `repo1-gcs-key`, `repo1-azure-account`,
    /// `repo1-azure-key`, `repo1-cipher-pass`, any `repoN-` prefix), or as a pgBackRest INI file under a key
    /// ending in `.conf` (what PGO's configuration Secret holds, e.g. `s3.conf`). Not needed for an
    /// unencrypted repository on a volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = validation::secret_ref_name("source.pgbackrest.secretRef"))]
    pub secret_ref: Option<SecretReference>,
    /// Which `repoN-` options of the Secret to use (1–256), for a Secret that describes several
    /// repositories. Default: the only index found, or the lowest when there are several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    pub repo: Option<u16>,
}

fn default_stanza() -> String {
    "db".into()
}
fn default_repo_path() -> String {
    "/var/lib/pgbackrest".into()
}
fn default_true() -> bool {
    true
}

/// An S3 bucket, named as pgBackRest's `repoN-s3-*` options.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PgbackrestS3 {
    /// `repoN-s3-bucket`.
    #[schemars(length(min = 1, max = 255))]
    pub bucket: String,
    /// `repoN-s3-endpoint`: a host name without scheme, e.g. `s3.amazonaws.com` or `minio.minio.svc`.
    #[schemars(length(min = 1, max = 255))]
    pub endpoint: String,
    /// `repoN-s3-region`, e.g. `us-east-1` (S3-compatible stores accept any value they were set up with).
    #[schemars(length(min = 1, max = 64))]
    pub region: String,
    /// `repoN-s3-uri-style`: `host` (virtual-hosted, `bucket.endpoint`) or `path` (`endpoint/bucket`, what
    /// most S3-compatible stores need).
    #[serde(default)]
    pub uri_style: UriStyle,
    /// `repoN-storage-verify-tls`: verify the endpoint's certificate.
    #[serde(default = "default_true")]
    pub verify_tls: bool,
    /// `repoN-storage-port` (default 443).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub port: Option<u16>,
}

/// How a bucket is addressed in S3 URLs (pgBackRest `repoN-s3-uri-style`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UriStyle {
    /// `https://<bucket>.<endpoint>/…`.
    #[default]
    Host,
    /// `https://<endpoint>/<bucket>/…`.
    Path,
}

/// A Google Cloud Storage bucket.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PgbackrestGcs {
    /// `repoN-gcs-bucket`.
    #[schemars(length(min = 1, max = 255))]
    pub bucket: String,
    /// `repoN-gcs-endpoint` (default `storage.googleapis.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub endpoint: Option<String>,
}

/// An Azure Blob Storage container.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PgbackrestAzure {
    /// `repoN-azure-account`. Optional because pgBackRest treats it as a secret option, so PGO keeps it in
    /// the Secret (`repo1-azure-account`); when absent it is read from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub account: Option<String>,
    /// `repoN-azure-container`.
    #[schemars(length(min = 1, max = 255))]
    pub container: String,
    /// `repoN-azure-endpoint` (default `blob.core.windows.net`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub endpoint: Option<String>,
}

/// A PersistentVolumeClaim in this namespace holding a pgBackRest repository.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PgbackrestVolume {
    /// The claim's name.
    #[schemars(length(min = 1, max = 253))]
    pub claim_name: String,
    /// A directory inside the volume to mount instead of its root (relative, no `..`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    #[x_kube(validation = validation::relative_path("source.pgbackrest.volume.subPath"))]
    pub sub_path: Option<String>,
}

/// How far to recover. Only sources with a WAL archive (pgBackRest, barman-cloud) replay WAL; Kopia snapshots are
/// restored as they were taken whatever this says.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recovery {
    /// `latest` (default): replay all archived WAL, then promote. `consistent`: stop as soon as the backup
    /// is consistent (PostgreSQL's `recovery_target = 'immediate'`).
    #[serde(default)]
    pub target: RecoveryTarget,
}

/// Where WAL replay stops.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecoveryTarget {
    /// The end of the archive: the newest data available.
    #[default]
    Latest,
    /// The earliest consistent point of the backup: the backup's own end time.
    Consistent,
}

/// The backup source a replica reads, whichever field names it (`kopiaSecretRef` or `source.kopia` are the
/// same source), so the operator has one thing to match on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SourceRef<'a> {
    /// A Kopia repository, described by this Secret.
    Kopia(&'a SecretReference),
    /// A pgBackRest repository.
    Pgbackrest(&'a PgbackrestSource),
    /// A barman-cloud object store.
    BarmanCloud(&'a BarmanCloudSource),
    /// A restic repository of logical dumps.
    Restic(&'a ResticSource),
}

impl<'a> SourceRef<'a> {
    /// The value of a restore's `status.source` for this source.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kopia(_) => "kopia",
            Self::Pgbackrest(_) => "pgbackrest",
            Self::BarmanCloud(_) => "barmanCloud",
            Self::Restic(_) => "restic",
        }
    }

    /// The Secrets the source's credentials come from (none, one, or for barman-cloud one per distinct
    /// name its key references use).
    #[must_use]
    pub fn secret_names(&self) -> Vec<&'a str> {
        match *self {
            Self::Kopia(s) => s.name.as_deref().into_iter().collect(),
            Self::Pgbackrest(p) => p
                .secret_ref
                .as_ref()
                .and_then(|r| r.name.as_deref())
                .into_iter()
                .collect(),
            Self::BarmanCloud(b) => b.secret_names(),
            Self::Restic(r) => r.secret_names(),
        }
    }
}

impl Source {
    /// The one member that is set, or `None` when none or several are (admission refuses both).
    #[must_use]
    pub fn member(&self) -> Option<SourceRef<'_>> {
        match (
            &self.kopia,
            &self.pgbackrest,
            &self.barman_cloud,
            &self.restic,
        ) {
            (Some(k), None, None, None) => Some(SourceRef::Kopia(&k.secret_ref)),
            (None, Some(p), None, None) => Some(SourceRef::Pgbackrest(p)),
            (None, None, Some(b), None) => Some(SourceRef::BarmanCloud(b)),
            (None, None, None, Some(r)) => Some(SourceRef::Restic(r)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
