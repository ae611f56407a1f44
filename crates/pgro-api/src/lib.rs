//! The `pgro.bes.au/v1alpha1` API: the custom resources pgro serves.
//!
//! * [`PostgresPhysicalReplica`] — the user-facing resource: a continuously refreshed, read-only copy of a
//!   PostgreSQL database restored from physical Kopia snapshots ([`PostgresPhysicalReplicaSpec`],
//!   [`PostgresPhysicalReplicaStatus`]).
//! * [`Source`] — where the backups are (`spec.source`: Kopia or pgBackRest), and [`SourceRef`], the one
//!   source a replica names whichever field it uses ([`PostgresPhysicalReplicaSpec::effective_source`]).
//! * [`PostgresPhysicalRestore`] — one restore of one snapshot, created and owned by the operator
//!   ([`PostgresPhysicalRestoreSpec`], [`PostgresPhysicalRestoreStatus`]).
//!
//! The types carry their serde defaults, OpenAPI schema and CEL admission rules (`x-kubernetes-validations`),
//! so the CRDs printed by `pgro gen-crds` reject invalid specs at `kubectl apply` time. Decision logic does
//! not live here: this crate knows no controller and no client.
#![deny(missing_docs)]

mod conditions;
mod phase;
// KubeSchema derives through a generated private twin of each struct, which trips `unreachable_pub`; kube's
// `#[kube(...)]` takes repeated keys (`printcolumn`, `category`) by design.
#[allow(unreachable_pub)]
mod barman_cloud;
#[allow(unreachable_pub, clippy::duplicated_attributes)]
mod replica;
#[allow(unreachable_pub)]
mod restic;
#[allow(unreachable_pub, clippy::duplicated_attributes)]
mod restore;
#[allow(unreachable_pub)]
mod source;
mod validation;
#[allow(unreachable_pub)]
mod verification;

#[cfg(feature = "testutil")]
pub mod testutil;

pub use barman_cloud::{
    AzureCredentials, BarmanCloudSource, BarmanData, BarmanWal, GoogleCredentials, S3Credentials,
};
pub use conditions::{ANNOTATION_OUTGOING, condition_reasons, condition_types, event_reasons};
pub use phase::{ReplicaPhase, RestorePhase};
pub use replica::{
    ConnectionInfo, HeaderValue, NotificationConfig, NotificationStatus, NotificationTarget,
    PostgresPhysicalReplica, PostgresPhysicalReplicaSpec, PostgresPhysicalReplicaStatus,
    SecretKeySelector, SnapshotFilter, TlsSpec, WebhookMethod,
};
pub use restic::ResticSource;
pub use restore::{
    DumpReplayed, PostgresPhysicalRestore, PostgresPhysicalRestoreSpec,
    PostgresPhysicalRestoreStatus, RestoreJobStatus, WalReplayed,
};
pub use source::{
    KopiaSource, PgbackrestAzure, PgbackrestGcs, PgbackrestS3, PgbackrestSource, PgbackrestVolume,
    Recovery, RecoveryTarget, Source, SourceRef, UriStyle,
};
pub use validation::{
    DURATION_PATTERN, IDENTIFIER_PATTERN, RESERVED_ROLE_NAMES, RESERVED_SCHEMA_NAMES,
    STANZA_PATTERN,
};
pub use verification::{
    Amcheck, CHECK_AMCHECK, CHECK_APPLICATION_DATABASE, CheckResult, PhaseDurations, RestoreRecord,
    Verification, VerificationCheck, VerificationStatus,
};

/// API group of both kinds.
pub const GROUP: &str = "pgro.bes.au";
/// API version of both kinds.
pub const VERSION: &str = "v1alpha1";

/// Label on every child object: the name of the owning replica.
pub const LABEL_REPLICA: &str = "pgro.bes.au/replica";
/// Label on every child object of a restore (and on the restore's pods): the restore's name.
pub const LABEL_RESTORE: &str = "pgro.bes.au/restore";
/// Label naming the component a child object plays (`restore-job`, `postgres`, `schema-migration`, …).
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
/// `app.kubernetes.io/managed-by` value on every object pgro creates.
pub const MANAGED_BY: &str = "pgro";
