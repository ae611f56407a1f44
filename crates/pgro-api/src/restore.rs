//! `PostgresPhysicalRestore`: one restore of one snapshot, managed by the operator.

use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::phase::RestorePhase;
use crate::source::{Recovery, Source};
use crate::validation;
use crate::verification::VerificationStatus;

/// One restore of one Kopia snapshot into a new PostgreSQL instance: a PVC, a restore Job, a Deployment and a
/// Service. Created and owned by a [`crate::PostgresPhysicalReplica`]; users should not create these.
/// Deleting one drops its restored database and prompts the replica to create a new restore at once.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "pgro.bes.au",
    version = "v1alpha1",
    kind = "PostgresPhysicalRestore",
    plural = "postgresphysicalrestores",
    singular = "postgresphysicalrestore",
    shortname = "pprestore",
    category = "all",
    category = "pgro",
    namespaced,
    status = "PostgresPhysicalRestoreStatus",
    derive = "PartialEq",
    doc = "One restore of a Kopia snapshot into a new PostgreSQL instance, managed by the pgro operator.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Replica", type_ = "string", json_path = ".spec.replica.name"),
    printcolumn(name = "Snapshot", type_ = "string", json_path = ".spec.snapshot"),
    printcolumn(
        name = "Snapshot size",
        type_ = "string",
        json_path = ".spec.snapshotSize"
    ),
    printcolumn(
        name = "Storage size",
        type_ = "string",
        json_path = ".spec.storageSize"
    ),
    printcolumn(
        name = "Postgres version",
        type_ = "string",
        json_path = ".status.postgresVersion"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = validation::immutable("spec"))]
#[serde(rename_all = "camelCase")]
pub struct PostgresPhysicalRestoreSpec {
    /// The parent replica.
    pub replica: LocalObjectReference,
    /// Kopia snapshot ID.
    #[schemars(length(min = 1, max = 128))]
    pub snapshot: String,
    /// Snapshot size from Kopia metadata (bytes).
    #[x_kube(validation = validation::quantity("snapshotSize"))]
    pub snapshot_size: Quantity,
    /// PVC size: snapshot size × 1.1 rounded up to whole Mi (plus persistent schema data), or the
    /// replica's `storageSizeOverride`.
    #[x_kube(validation = validation::quantity("storageSize"))]
    pub storage_size: Quantity,
    /// When the snapshot was taken (its start time in Kopia).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_time: Option<Time>,
    /// The replica's `spec.source` when this restore was created, so the restore keeps reading the backup
    /// it was created for. Absent when the replica names its source with `kopiaSecretRef`. (+)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// The replica's `spec.recovery` when this restore was created. (+)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Recovery>,
}

/// Observed state of a [`PostgresPhysicalRestore`].
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostgresPhysicalRestoreStatus {
    /// `Pending → Restoring → Ready → Switching → Active`; `Failed` from any non-terminal phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "RestorePhase::optional_schema")]
    pub phase: Option<RestorePhase>,
    /// PostgreSQL major version found in the restored data (`PG_VERSION`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_version: Option<String>,
    /// When the restore resource was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Time>,
    /// When the restore Job completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_at: Option<Time>,
    /// When the replica's Service switched to this restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<Time>,
    /// The restore Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_job: Option<RestoreJobStatus>,
    /// PVC holding the restored data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc: Option<String>,
    /// Deployment running PostgreSQL on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// Credentials Secret shared by all restores of the replica (owned by the replica).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
    /// `Restored`, `Ready`, `Failed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// What the instance had to change to serve this data (`_pgro.restore_info.fixes`, read once it is
    /// ready): a WAL reset because recovery could not reach consistency, databases switched to an available
    /// locale. Empty when nothing was needed; absent until read. (+)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_fixes: Option<Vec<String>>,
    /// How the source's files were captured, as the instance judged them (`clean-shutdown`, `base-backup`,
    /// `standby`, `crash-consistent`), read with `instanceFixes`. A crash-consistent capture is only as
    /// consistent as the snapshot was atomic. (+)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_state: Option<String>,
    /// Which kind of source the data came from: `kopia`, `pgbackrest`, `barmanCloud` or `restic`. (+)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The time of the newest data served: where recovery ended (`pg_last_xact_replay_timestamp()`), the
    /// backup's end time when no WAL was replayed, or a logical dump's time. (+)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_time: Option<Time>,
    /// How much archived WAL was replayed after the backup (WAL-archive sources only). (+)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_replayed: Option<WalReplayed>,
    /// How the logical dump was replayed (restic sources only). (+)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dump_replayed: Option<DumpReplayed>,
    /// The checks of the replica's `spec.verification`, run before this restore became `Ready` (+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationStatus>,
    /// When this restore became `Ready`: PostgreSQL serves and verification passed (+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<Time>,
}

/// A logical dump replayed into a fresh cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DumpReplayed {
    /// SQL statements sent (COPY data rows not counted).
    pub statements: u64,
    /// Statements that failed (expected conflicts not counted).
    pub failed: u64,
    /// Statements that failed as expected in a fresh cluster (a role that already exists).
    #[serde(default)]
    pub tolerated: u64,
    /// Bytes of the dump replayed.
    pub bytes: u64,
    /// How long the replay took, in seconds.
    pub seconds: f64,
    /// The first failures: `line N: message`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub first_errors: Vec<String>,
}

/// Archived WAL replayed on top of a restored backup.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalReplayed {
    /// WAL segments fetched from the archive.
    pub segments: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// How long replay took, in seconds.
    pub seconds: f64,
}

/// State of the restore Job.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreJobStatus {
    /// Job name.
    pub name: String,
    /// `Pending`, `Running`, `Succeeded` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// When the Job completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
}

#[cfg(test)]
mod tests;
