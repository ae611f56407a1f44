//! `spec.source.restic`: a restic repository of logical dumps, as KubeStash (KubeDB) writes them —
//! `pg_dumpall` (or `pg_dump`) output stored with `restic backup --stdin --stdin-filename dumpfile.sql`,
//! one repository per Repository, session and component (`<prefix>/<directory>/repository/v1/<session>/dump`).
//! The repository URL is restic's own; credentials are Secret keys named as restic's (and KubeStash's)
//! environment variables. The restic snapshot ID is the restore's `spec.snapshot`.

use k8s_openapi::api::core::v1::SecretReference;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::validation;

/// A restic repository holding logical dumps (KubeStash / KubeDB). The newest snapshot matching
/// `snapshotFilter` (host, paths, tags) is replayed into a fresh PostgreSQL cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResticSource {
    /// The repository in restic's URL form: `s3:https://<host>[:<port>]/<bucket>/<path>`,
    /// `s3:<host>/<bucket>/<path>` (HTTPS), `gs:<bucket>:/<path>` or `azure:<container>:/<path>` — what
    /// KubeStash builds from a BackupStorage and Repository, e.g.
    /// `s3:http://minio.storage:9000/kubestash/demo/postgres/repository/v1/frequent-backup/dump`.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = validation::restic_repository())]
    pub repository: String,
    /// Secret in this namespace with the storage credentials under restic's environment names
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_DEFAULT_REGION`,
    /// `GOOGLE_SERVICE_ACCOUNT_JSON_KEY`, `AZURE_ACCOUNT_NAME`, `AZURE_ACCOUNT_KEY`, `AZURE_ACCOUNT_SAS`),
    /// `CA_CERT_DATA` (a PEM CA for the endpoint, KubeStash's key) and, unless `encryptionSecret` is set,
    /// `RESTIC_PASSWORD`: a KubeStash BackupStorage's Secret.
    #[x_kube(validation = validation::secret_ref_name("source.restic.secretRef"))]
    pub secret_ref: SecretReference,
    /// Secret in this namespace holding `RESTIC_PASSWORD`, when it is not in `secretRef` (a KubeStash
    /// Repository's `encryptionSecret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = validation::secret_ref_name("source.restic.encryptionSecret"))]
    pub encryption_secret: Option<SecretReference>,
    /// The dump's path in each snapshot (`--stdin-filename`; KubeStash's is `dumpfile.sql`).
    #[serde(default = "default_file_name")]
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = validation::restic_file_name())]
    pub file_name: String,
    /// Fail a restore when any statement of the dump fails (default `true`): the copy serving now stays,
    /// and the restore names the first failed statements. `false` serves a copy with failed statements,
    /// marked by the restore's `DumpReplayed=False` condition and a Warning event. Expected conflicts with
    /// the fresh cluster (a role that already exists) never count.
    #[serde(default = "default_true")]
    pub fail_on_errors: bool,
}

fn default_file_name() -> String {
    "dumpfile.sql".into()
}

fn default_true() -> bool {
    true
}

impl ResticSource {
    /// The Secrets the source reads (`secretRef`, and `encryptionSecret` when set and different).
    #[must_use]
    pub fn secret_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.secret_ref.name.as_deref().into_iter().collect();
        if let Some(n) = self
            .encryption_secret
            .as_ref()
            .and_then(|r| r.name.as_deref())
            && !names.contains(&n)
        {
            names.push(n);
        }
        names
    }
}
