//! `spec.verification` (checks a new restore must pass before it serves), the restore's
//! `status.verification`, and the replica's `status.history` of past restores. (+)

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validation;

/// Name of the built-in check `requireApplicationDatabase` in results and metrics (a user check's name is
/// a DNS label and cannot contain a dot).
pub const CHECK_APPLICATION_DATABASE: &str = "pgro.applicationDatabase";
/// Name of the built-in `amcheck` check in results and metrics.
pub const CHECK_AMCHECK: &str = "pgro.amcheck";

/// Checks a new restore must pass, as `pgro_admin` on the new instance, before the Service switches to it.
/// A failing check fails the restore: the serving copy stays.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// SQL checks, run in order; each must return one row whose first column is `true`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub checks: Vec<VerificationCheck>,
    /// Fail a restore whose only databases are PostgreSQL's own (`postgres`, `template0`, `template1`):
    /// an empty backup restores and boots as well as a full one.
    #[serde(default)]
    pub require_application_database: bool,
    /// Check every table and B-tree index of every database with the `amcheck` extension (what
    /// `pg_amcheck` runs). Enabled when present (`amcheck: {}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amcheck: Option<Amcheck>,
}

/// One SQL check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerificationCheck {
    /// The check's name (a DNS label), shown in status, events, notifications and metrics.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = validation::dns_label("name"))]
    pub name: String,
    /// The database to run it in.
    #[schemars(length(min = 1, max = 63))]
    pub database: String,
    /// One SQL statement, run in a read-only transaction, e.g. `SELECT count(*) > 1000 FROM orders`. The
    /// first column of its one row must be `true`; further columns are recorded as the check's `detail`.
    #[schemars(length(min = 1, max = 4096))]
    pub sql: String,
    /// How long the statement may run (`statement_timeout`).
    #[serde(default = "default_check_timeout")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = validation::duration("timeout"))]
    pub timeout: String,
}

fn default_check_timeout() -> String {
    "1m".into()
}

/// Options of the `amcheck` verification.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Amcheck {
    /// Also check that every heap tuple has its index entries (`heapallindexed`; reads each table once
    /// more per index).
    #[serde(default)]
    pub heapallindexed: bool,
    /// Time budget for all databases; running out fails the check.
    #[serde(default = "default_amcheck_timeout")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = validation::duration("amcheck.timeout"))]
    pub timeout: String,
}

fn default_amcheck_timeout() -> String {
    "30m".into()
}

/// The outcome of a restore's verification.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerificationStatus {
    /// When the checks started (the instance was ready).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the last check finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// Every check passed; absent while they run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed: Option<bool>,
    /// Each check's result, in the order they ran (checks after a failed one are not run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckResult>,
}

/// One check's result.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    /// The check's name (`pgro.amcheck` and `pgro.applicationDatabase` for the built-in ones).
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// The first column of its row (`true`, `false`, `NULL`), or the built-in check's finding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The row's further columns, `name=value` separated by `, `.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Why it failed, when it did not return a row with `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How long it took, in seconds.
    pub seconds: f64,
}

/// One past restore of a replica, kept in `status.history` (newest first) after the restore is gone.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreRecord {
    /// The restore's name.
    pub restore: String,
    /// `Active` (it switched over), `Failed`.
    pub outcome: String,
    /// The backup (snapshot) ID.
    pub backup: String,
    /// When the backup was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_time: Option<Time>,
    /// The time of the newest data it served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_time: Option<Time>,
    /// Which kind of source it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// PostgreSQL major version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_version: Option<String>,
    /// When the restore was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When its data was in place (the restore Job completed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_at: Option<Time>,
    /// When it was ready to serve (PostgreSQL ready and verification passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<Time>,
    /// When the Service switched to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<Time>,
    /// When it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<Time>,
    /// Seconds spent in each phase.
    pub durations: PhaseDurations,
    /// Bytes of the backup.
    #[serde(default)]
    pub bytes: u64,
    /// `passed`, `failed`, or absent when no verification ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<String>,
    /// The failed checks: `name: value or message` (at most a few, each shortened).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_checks: Vec<String>,
    /// Why it failed: the `Failed` condition's reason and message (shortened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// Seconds per phase of one restore (a phase not reached is absent).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhaseDurations {
    /// Creation to the data in place (queueing for the Job's pod included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<f64>,
    /// WAL replay (WAL-archive sources) or dump replay (logical sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<f64>,
    /// PostgreSQL start-up to ready, replay excluded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<f64>,
    /// The verification checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<f64>,
    /// Ready to switched over (schema migration included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switchover: Option<f64>,
}
