//! `PostgresPhysicalReplica`: the user-facing resource.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, ResourceRequirements, SecretReference, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::phase::ReplicaPhase;
use crate::source::{Recovery, Source, SourceRef};
use crate::validation;
use crate::verification::{RestoreRecord, Verification, VerificationStatus};

/// A continuously refreshed, read-only copy of a PostgreSQL database, restored from physical Kopia
/// snapshots on a schedule. Each refresh creates a [`crate::PostgresPhysicalRestore`]; when it is ready the
/// stable Service `<name>` switches to it and the previous one is deleted after a grace period.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "pgro.bes.au",
    version = "v1alpha1",
    kind = "PostgresPhysicalReplica",
    plural = "postgresphysicalreplicas",
    singular = "postgresphysicalreplica",
    shortname = "ppr",
    category = "all",
    category = "pgro",
    namespaced,
    status = "PostgresPhysicalReplicaStatus",
    derive = "PartialEq",
    doc = "A continuously refreshed, read-only PostgreSQL replica restored from physical Kopia snapshots.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Service", type_ = "string", json_path = ".status.serviceName"),
    printcolumn(
        name = "Current restore",
        type_ = "string",
        json_path = ".status.currentRestore"
    ),
    // `date` columns print an age, which kubectl shows as `<invalid>` for a time in the future.
    printcolumn(
        name = "Next restore",
        type_ = "string",
        json_path = ".status.nextScheduledRestore"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = validation::override_within_maximum(),
    validation = validation::kopia_secret_ref_or_source()
)]
#[serde(rename_all = "camelCase")]
pub struct PostgresPhysicalReplicaSpec {
    /// Secret in this namespace with the Kopia repository credentials: `bucket`, `region`,
    /// `repositoryPassword`, `accessKeyId`, `secretAccessKey`; optional `endpoint`, `disableTls`, `prefix`,
    /// and `storage` (`s3` default, `filesystem`, `gcs`, `azure`) with their keys. The same as
    /// `source.kopia.secretRef`; set this or `source`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = validation::secret_ref_name("kopiaSecretRef"))]
    pub kopia_secret_ref: Option<SecretReference>,

    /// Where the backups are, when not named by `kopiaSecretRef`: exactly one of `kopia` or `pgbackrest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,

    /// How far WAL is replayed after a backup is restored (WAL-archive sources only: `pgbackrest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Recovery>,

    /// Which Kopia snapshot to restore: the newest complete snapshot matching every given criterion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_filter: Option<SnapshotFilter>,

    /// Cron expression (5 fields) for new restores, parsed by the `cronexpr` crate: an optional trailing
    /// IANA timezone (`20 15 * * * Pacific/Auckland`, UTC by default), and `H` in any field for a value
    /// derived from the replica's identity (`H 15 * * *`). `* */6 * * *` fires every minute of every sixth
    /// hour; `0 */6 * * *` fires every six hours. Validated by the operator (condition `ScheduleValid`).
    #[schemars(length(min = 1, max = 256))]
    pub schedule: String,

    /// Random jitter around each scheduled time, uniform in [-j/2, +j/2] (`10m` → -5m…+5m). Set `0` with
    /// `H` for spread-but-stable timing.
    #[serde(default = "default_schedule_jitter")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = validation::duration("scheduleJitter"))]
    pub schedule_jitter: String,

    /// Don't restore a new snapshot within this long after the last restore completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = validation::duration("minimumTtl"))]
    pub minimum_ttl: Option<String>,

    /// How long the previous restore keeps running after a switchover before it is deleted.
    #[serde(default = "default_switchover_grace_period")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = validation::duration("switchoverGracePeriod"))]
    pub switchover_grace_period: String,

    /// PostgreSQL role created for analytics connections; its password is in Secret `<name>-creds`.
    #[serde(default = "default_analytics_username")]
    #[schemars(length(max = 63))]
    #[x_kube(
        validation = validation::role_name_pattern("analyticsUsername"),
        validation = validation::role_name_not_reserved("analyticsUsername")
    )]
    pub analytics_username: String,

    /// StorageClass for the restore PVCs (the cluster default when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,

    /// Fixed PVC size instead of dynamic sizing (snapshot size × 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = validation::quantity("storageSizeOverride"))]
    pub storage_size_override: Option<Quantity>,

    /// Maximum PVC size; a restore whose computed size exceeds it is not created
    /// (condition `StorageWithinLimit=False`).
    #[serde(default = "default_storage_size_maximum")]
    #[x_kube(validation = validation::quantity("storageSizeMaximum"))]
    pub storage_size_maximum: Quantity,

    /// CPU and memory for the PostgreSQL pods; the memory limit also sizes `shared_buffers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Annotations on the replica's Service (annotations set by others are left alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_annotations: Option<BTreeMap<String, String>>,

    /// Annotations on the PostgreSQL pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_annotations: Option<BTreeMap<String, String>>,

    /// Scheduling affinity of the PostgreSQL and restore pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// Tolerations of the PostgreSQL and restore pods.
    #[serde(default)]
    pub tolerations: Vec<Toleration>,

    /// Whether the restored database is read-only for the analytics role (enforced by privileges).
    #[serde(default = "default_true")]
    pub read_only: bool,

    /// Extra lines appended last to `postgresql.conf` (e.g. `shared_preload_libraries`), so they win.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_extra_config: Option<String>,

    /// Targets called on `RestoreCompleted` and `RestoreFailed`.
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub notifications: Vec<NotificationConfig>,

    /// Schemas copied from the active restore to the new one before each switchover; the analytics role
    /// owns them and may write there even when `readOnly` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(max = 63)))]
    #[x_kube(validation = validation::schema_names(), merge_strategy = ListMerge::Set)]
    pub persistent_schemas: Option<Vec<String>>,

    /// Checks a new restore must pass before the Service switches to it (+). A failing check fails the
    /// restore: the serving copy stays, and the failure counts toward suspending the schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,

    /// How many past restores `status.history` keeps, newest first (+).
    #[serde(default = "default_history_limit")]
    #[schemars(range(min = 1, max = 100))]
    pub history_limit: u32,

    /// Client TLS (+). PostgreSQL accepts TCP connections only over TLS. By default pgro makes a CA and a
    /// server certificate for the replica (Secrets `<replica>-ca` and `<replica>-tls`), reused by every
    /// restore; clients verify with `sslmode=verify-full` and `ca.crt` from `<replica>-ca`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}

/// Client TLS settings (+).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// A Secret in this namespace with the server certificate to use instead of pgro's own (e.g. one
    /// cert-manager keeps): `tls.crt`, `tls.key` and `ca.crt`. The certificate must be valid for
    /// `<replica>.<namespace>.svc`; pgro copies `ca.crt` to `<replica>-ca` for clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = validation::secret_ref_name("tls.certificateSecretRef"))]
    pub certificate_secret_ref: Option<LocalObjectReference>,
}

impl PostgresPhysicalReplicaSpec {
    /// The backup source, whether `kopiaSecretRef` or `source` names it; `None` when the spec names none
    /// or several (admission refuses both, so this means its rules were bypassed).
    #[must_use]
    pub fn effective_source(&self) -> Option<SourceRef<'_>> {
        match (&self.kopia_secret_ref, &self.source) {
            (Some(secret), None) => Some(SourceRef::Kopia(secret)),
            (None, Some(source)) => source.member(),
            (None, None) | (Some(_), Some(_)) => None,
        }
    }

    /// The Kopia Secret, from `kopiaSecretRef` or `source.kopia.secretRef`; `None` for other sources.
    #[must_use]
    pub fn kopia_secret(&self) -> Option<&SecretReference> {
        match self.effective_source()? {
            SourceRef::Kopia(secret) => Some(secret),
            SourceRef::Pgbackrest(_) | SourceRef::BarmanCloud(_) | SourceRef::Restic(_) => None,
        }
    }
}

fn default_schedule_jitter() -> String {
    "10m".into()
}
fn default_switchover_grace_period() -> String {
    "5m".into()
}
fn default_analytics_username() -> String {
    "analytics".into()
}
fn default_storage_size_maximum() -> Quantity {
    Quantity("2Ti".into())
}
fn default_history_limit() -> u32 {
    10
}
fn default_true() -> bool {
    true
}

/// Which snapshots qualify; every given criterion must match.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotFilter {
    /// Tags the snapshot must carry with these values (`kopia snapshot create --tags area:postgres`);
    /// keys may be written with or without Kopia's `tag:` prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// Glob for the snapshot's host (`*` matches any characters, `?` one, `[a-z]` a class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_pattern: Option<String>,
    /// Glob for the snapshot's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description_pattern: Option<String>,
    /// Glob for the snapshot's source path, where `*` also crosses `/`. Windows source paths are
    /// normalised to Unix style first (`D:\Full` → `/D/Full`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_pattern: Option<String>,
}

/// Notification target type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum NotificationTarget {
    /// An HTTP request with a JSON body.
    #[serde(rename = "webhook")]
    Webhook,
    /// A GraphQL mutation (HTTP POST of `{query, variables}`).
    #[serde(rename = "graphQL")]
    GraphQl,
}

/// HTTP method of a webhook.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum WebhookMethod {
    /// `GET` (the payload is still sent as a JSON body).
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
}

/// A notification target, tagged by `target`: `webhook` (with `method`) or `graphQL` (with `mutation` and
/// `variablesTemplate`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(
    validation = validation::graphql_fields(),
    validation = validation::webhook_only_fields(),
    validation = validation::graphql_method()
)]
#[serde(rename_all = "camelCase")]
pub struct NotificationConfig {
    /// Target type: `webhook` or `graphQL`.
    pub target: NotificationTarget,
    /// Name shown in `status.notifications[].name`; defaults to `<target>-<index>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub name: Option<String>,
    /// Where to send the notification.
    #[schemars(length(max = 2048))]
    #[x_kube(validation = validation::http_url())]
    pub url: String,
    /// HTTP headers; a value is a string or `{secretKeyRef: {name, key}}` (read from a Secret in this
    /// namespace on every attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, HeaderValue>>,
    /// Include the analytics password in the payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_password: Option<bool>,
    /// HTTP method (webhook only).
    #[serde(default = "default_method", skip_serializing_if = "Option::is_none")]
    pub method: Option<WebhookMethod>,
    /// GraphQL mutation (graphQL only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutation: Option<String>,
    /// Handlebars template rendering the GraphQL `variables` JSON (graphQL only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variables_template: Option<String>,
}

#[allow(clippy::unnecessary_wraps)] // the field is optional on the wire; the default fills it in
fn default_method() -> Option<WebhookMethod> {
    Some(WebhookMethod::Post)
}

/// A header value: a plain string or a reference to a Secret key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum HeaderValue {
    /// The value itself.
    Plain(String),
    /// The value of a key in a Secret in the replica's namespace.
    Secret {
        /// The Secret key.
        #[serde(rename = "secretKeyRef")]
        secret_key_ref: SecretKeySelector,
    },
    /// Any other shape. The apiserver cannot refuse it (see the schema), so it is kept here and the operator
    /// reports it instead of failing to read the whole replica.
    Invalid(serde_json::Value),
}

impl JsonSchema for HeaderValue {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "HeaderValue".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // A structural schema cannot say "string or object", and the apiserver refuses CEL rules on a node
        // that preserves unknown fields; the operator checks the shape (condition on the replica).
        json_schema!({
            "description": "A header value: a string, or {secretKeyRef: {name, key}}.",
            "x-kubernetes-preserve-unknown-fields": true,
        })
    }
}

/// A key in a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretKeySelector {
    /// Secret name.
    pub name: String,
    /// Key in the Secret's data.
    pub key: String,
}

/// Observed state of a [`PostgresPhysicalReplica`].
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostgresPhysicalReplicaStatus {
    /// `Pending` (no active restore yet), `Restoring`, `Ready` (an active restore serves), `Failed` (none
    /// serves and scheduling is suspended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "ReplicaPhase::optional_schema")]
    pub phase: Option<ReplicaPhase>,
    /// Name of the active `PostgresPhysicalRestore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_restore: Option<String>,
    /// Previous restore, pending deletion after the switchover grace period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_restore: Option<String>,
    /// The Service that points at the active restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// When the last restore completed (switched over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restore_completed_at: Option<Time>,
    /// When the next scheduled restore is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_scheduled_restore: Option<Time>,
    /// ID of the newest snapshot matching the filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_available_snapshot: Option<String>,
    /// How to connect to the replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_info: Option<ConnectionInfo>,
    /// 1-based position in the cluster-wide restore queue while waiting for a slot; 0 otherwise.
    #[serde(default)]
    pub queue_position: u32,
    /// Delivery state of each notification.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<NotificationStatus>,
    /// `Ready`, `KopiaSecretValid`, `SourceValid`, `ScheduleValid`, `SnapshotAvailable`,
    /// `RestoreSchedulingSuspended`, `StorageWithinLimit`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The schema migration Job while a migration runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_migration_job: Option<String>,
    /// `active`, `complete`, `partial`, `timeout-skipped` or `failed: <reason>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_migration_phase: Option<String>,
    /// Persistent schema data measured at the last successful migration; added to the next PVC size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_schema_data_size: Option<Quantity>,
    /// Consecutive failed restores, reset to 0 by a successful switchover. At 3, scheduling stops until it
    /// is reset (`kubectl patch --subresource=status ... '{"status":{"consecutiveRestoreFailures":0}}'`).
    #[serde(default)]
    pub consecutive_restore_failures: u32,
    /// When the last restore failed; the retry backoff counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restore_failed_at: Option<Time>,
    /// Since when this replica waits for a restore slot (queue order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<Time>,
    /// Hash of (`schedule`, `scheduleJitter`) that `nextScheduledRestore` was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_hash: Option<String>,
    /// The `metadata.generation` this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The last `spec.historyLimit` restores that switched over or failed, newest first (+).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub history: Vec<RestoreRecord>,
    /// When the newest passing verification finished (+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified_at: Option<Time>,
    /// The newest verification's results, passed or not (+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verification: Option<VerificationStatus>,
    /// The time of the newest data the active restore serves (its `status.dataTime`) (+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_time: Option<Time>,
}

/// How to reach the replica.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionInfo {
    /// Service DNS name, `<replica>.<namespace>.svc`.
    pub host: String,
    /// Port, 5432.
    pub port: i32,
    /// Database to connect to.
    pub database: String,
    /// The analytics role.
    pub username: String,
    /// Secret holding `username` and `password`.
    pub password_secret: String,
    /// `verify-full`: connections are TLS only, and the server certificate names `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_mode: Option<String>,
    /// Secret `<replica>-ca` whose `ca.crt` is the CA to verify the server with (`sslrootcert`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<String>,
}

/// Delivery state of one notification.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationStatus {
    /// The target's name.
    pub name: String,
    /// `RestoreCompleted` or `RestoreFailed`.
    pub event: String,
    /// When delivery was last attempted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<Time>,
    /// Attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// Whether the target accepted the notification.
    #[serde(default)]
    pub success: bool,
    /// The last error, if the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the next attempt is due, while retries remain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Time>,
    /// The restore the event is about (+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<String>,
    /// When the event happened (the payload's `timestamp`) (+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<Time>,
}

#[cfg(test)]
mod tests;
