//! The restore controller's decisions (behaviour S1–S5, R10), as a pure function of the restore, its
//! children's observed state and `now`.
//!
//! This controller owns the data path: `Pending → Restoring → Ready`, or `Failed`. `Switching` and `Active`
//! are the replica controller's (the switchover needs the replica's view); here they only keep their
//! children in shape and their `Ready` condition current.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use pgro_api::{
    PostgresPhysicalRestore, PostgresPhysicalRestoreStatus, RestoreJobStatus, RestorePhase,
    Verification, VerificationStatus, condition_reasons as reasons, condition_types as types,
    event_reasons,
};

use crate::operator::conditions::{self, Cond};
use crate::operator::controllers::replica::plan::EventSpec;
use crate::operator::naming;
use crate::operator::specs::LiveFields;
use crate::restore::{RestoreFailure, RestoreResult};

/// What the restore Job reported in its termination message.
#[derive(Debug, Clone, PartialEq)]
pub enum JobReport {
    /// Success: where the data is, which major.
    Done(RestoreResult),
    /// A classified failure.
    Failed(RestoreFailure),
}

impl JobReport {
    /// Parses a termination message (`None` when it is neither JSON result nor JSON failure, e.g. a log
    /// tail after a crash).
    #[must_use]
    pub fn parse(message: &str) -> Option<Self> {
        let m = message.trim();
        serde_json::from_str::<RestoreResult>(m)
            .map(Self::Done)
            .or_else(|_| serde_json::from_str::<RestoreFailure>(m).map(Self::Failed))
            .ok()
    }
}

/// A change `pgro instance` made to serve the data, as recorded in `_pgro.restore_info.fixes`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(tag = "fix")]
pub enum Fix {
    /// Recovery could not reach consistency: `pg_resetwal -f`, then a full reindex (I1).
    #[serde(rename = "pg_resetwal")]
    ResetWal {
        /// The server's message that showed consistency was out of reach.
        #[serde(default)]
        reason: String,
    },
    /// A database's locale was missing in the image and was switched (I6).
    #[serde(rename = "locale")]
    Locale {
        /// The database.
        database: String,
        /// Its locale in the snapshot.
        from: String,
        /// Its locale now.
        to: String,
    },
    /// A kind this operator does not know (a newer instance manager).
    #[serde(other)]
    Other,
}

impl Fix {
    /// The entries of a `fixes` array (entries of unknown shape count as [`Fix::Other`]).
    #[must_use]
    pub fn parse_all(fixes: &serde_json::Value) -> Vec<Self> {
        fixes
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|f| serde_json::from_value(f.clone()).unwrap_or(Self::Other))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The line in `status.instanceFixes`, and the Warning event that announces it.
    fn report(&self) -> Option<(String, &'static str)> {
        match self {
            Self::ResetWal { reason } => Some((
                format!(
                    "pg_resetwal: recovery could not reach a consistent state ({reason}); the WAL was reset and every index rebuilt, so the data may be inconsistent"
                ),
                event_reasons::RECOVERY_FALLBACK,
            )),
            Self::Locale { database, from, to } => Some((
                format!(
                    "locale: database {database} switched from {from} (not in the image) to {to}; its collation-dependent indexes were rebuilt"
                ),
                event_reasons::LOCALE_SWITCHED,
            )),
            Self::Other => None,
        }
    }
}

/// The restore Job as observed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobView {
    /// `Complete=True`, with its time.
    pub complete_at: Option<Timestamp>,
    /// `Failed=True`: (reason, message).
    pub failed: Option<(String, String)>,
    /// A pod is running.
    pub active: bool,
    /// The newest termination report among its pods.
    pub report: Option<JobReport>,
}

/// The PostgreSQL Deployment as observed.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentView {
    /// A pod passes its readiness probe.
    pub ready: bool,
    /// The fields that follow the replica at once.
    pub live: LiveFields,
}

/// Everything the decision looks at.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// The restore.
    pub restore: &'a PostgresPhysicalRestore,
    /// The PVC exists.
    pub pvc: bool,
    /// The Job, if it exists.
    pub job: Option<JobView>,
    /// The Deployment, if it exists.
    pub deployment: Option<DeploymentView>,
    /// The per-restore Service exists.
    pub service: bool,
    /// The live fields the replica asks for now.
    pub desired_live: LiveFields,
    /// How long PostgreSQL may take to become ready after the Job (S5).
    pub ready_timeout: Duration,
    /// `_pgro.restore_info.fixes`, when it was read this pass (only while `status.instanceFixes` is unset
    /// and the instance is ready).
    pub fixes: Option<Vec<Fix>>,
    /// `_pgro.restore_info.source_state`, read with the fixes.
    pub source_state: Option<String>,
    /// `_pgro.restore_info.data_time` (WAL-archive restores), read with the fixes.
    pub data_time: Option<Timestamp>,
    /// `_pgro.restore_info.wal_replayed` (WAL-archive restores), read with the fixes.
    pub wal_replayed: Option<pgro_api::WalReplayed>,
    /// `_pgro.restore_info.dump_replayed` (logical restores), read with the fixes.
    pub dump_replayed: Option<pgro_api::DumpReplayed>,
    /// Why the instance of a logical restore stopped before serving (its termination message), read
    /// while it is not ready.
    pub instance_failure: Option<RestoreFailure>,
    /// The replica's `spec.verification`, when it asks for any check.
    pub verification: Option<&'a Verification>,
    /// The checks' outcome, when they ran this pass (see [`Plan::verify`]).
    pub verified: Option<VerificationStatus>,
}

/// `status.source`: the kind of source the restore was created from (`kopia` when it names none, as a
/// restore of a `kopiaSecretRef` replica does).
fn source_kind(r: &PostgresPhysicalRestore) -> &'static str {
    match r.spec.source.as_ref() {
        Some(s) => s.member().map_or("kopia", |m| m.kind()),
        None => "kopia",
    }
}

/// A child to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Child {
    /// `<restore>-data`.
    DataPvc,
    /// `<restore>-restore`.
    RestoreJob,
    /// `<restore>` Deployment.
    Deployment,
    /// `<restore>` Service.
    Service,
}

/// The decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Children to create (in this order).
    pub create: Vec<Child>,
    /// Patch the Deployment's live fields to these.
    pub patch_live: Option<LiveFields>,
    /// The status to write (written only when it differs).
    pub status: PostgresPhysicalRestoreStatus,
    /// Look again after this long even if nothing changes.
    pub requeue: Option<Duration>,
    /// Events about this restore (recorded after the status that holds their cause).
    pub events: Vec<EventSpec>,
    /// Run the verification checks now (the status says they run), then decide again with their outcome.
    pub verify: bool,
}

/// `status.dumpReplayed`, the `DumpReplayed` condition, and a Warning when statements failed (the copy
/// serves anyway: `failOnErrors: false`).
fn dump_replayed(
    status: &mut PostgresPhysicalRestoreStatus,
    d: &pgro_api::DumpReplayed,
    events: &mut Vec<EventSpec>,
    generation: Option<i64>,
    now: &Time,
) {
    status.dump_replayed = Some(d.clone());
    let clean = d.failed == 0;
    let message = if clean {
        format!("all {} statements of the dump ran", d.statements)
    } else {
        format!(
            "{} of {} statements of the dump failed; the copy serves without them (failOnErrors: false): {}",
            d.failed,
            d.statements,
            d.first_errors.join("; ")
        )
    };
    if !clean {
        events.push(EventSpec {
            warning: true,
            reason: event_reasons::DUMP_STATEMENTS_FAILED,
            note: crate::restore::truncate(&message, 1000),
            restore: None,
        });
    }
    conditions::set(
        &mut status.conditions,
        Cond {
            type_: types::DUMP_REPLAYED,
            status: clean,
            reason: if clean {
                reasons::ALL_STATEMENTS_RAN
            } else {
                reasons::STATEMENTS_FAILED
            },
            message,
        },
        generation,
        now,
    );
}

fn failed_reason(
    report: Option<&JobReport>,
    job_failed: Option<&(String, String)>,
) -> (String, String) {
    match (report, job_failed) {
        (Some(JobReport::Failed(f)), _) => {
            let reason = if f.error == crate::cli::exit::Failure::NoPgdata.reason() {
                reasons::NO_PGDATA.to_owned()
            } else {
                f.error.clone()
            };
            (reason, f.message.clone())
        }
        (_, Some((reason, message))) if reason == "DeadlineExceeded" => (
            reasons::DEADLINE_EXCEEDED.to_owned(),
            format!("the restore Job ran past its deadline: {message}"),
        ),
        (_, Some((reason, message))) => (
            reasons::RESTORE_JOB_FAILED.to_owned(),
            format!("the restore Job failed ({reason}): {message}"),
        ),
        (_, None) => (
            reasons::RESTORE_JOB_FAILED.to_owned(),
            "the restore Job failed".to_owned(),
        ),
    }
}

fn ts(t: Timestamp) -> Time {
    Time(t)
}

/// Decides the restore's next steps.
#[must_use]
pub fn decide(o: &Observed<'_>, now: Timestamp) -> Plan {
    let r = o.restore;
    let name = r.metadata.name.clone().unwrap_or_default();
    let generation = r.metadata.generation;
    let now_t = ts(now);
    let mut status = r.status.clone().unwrap_or_default();
    let phase = status.phase.clone().unwrap_or(RestorePhase::Pending);
    status.observed_generation = generation;
    if status.created_at.is_none() {
        status.created_at = r
            .metadata
            .creation_timestamp
            .clone()
            .or(Some(now_t.clone()));
    }
    status.pvc = Some(naming::data_pvc(&name));
    status.credentials_secret = Some(naming::credentials_secret(&r.spec.replica.name));

    let mut plan = Plan {
        create: Vec::new(),
        patch_live: None,
        status: PostgresPhysicalRestoreStatus::default(),
        requeue: None,
        events: Vec::new(),
        verify: false,
    };
    if phase == RestorePhase::Failed {
        plan.status = status;
        return plan;
    }

    // S1/S2: the claim and the Job. They are never recreated once the Job finished (a deleted Job of a
    // finished restore is not a reason to copy the snapshot again).
    let job_done = status.restored_at.is_some();
    if !o.pvc {
        plan.create.push(Child::DataPvc);
    }
    if o.job.is_none() && !job_done {
        plan.create.push(Child::RestoreJob);
    }
    let job_name = naming::restore_job(&name);
    let job = o.job.clone().unwrap_or_default();
    let job_phase = if job.complete_at.is_some() || job_done {
        "Succeeded"
    } else if job.failed.is_some() {
        "Failed"
    } else if job.active {
        "Running"
    } else {
        "Pending"
    };
    status.restore_job = Some(RestoreJobStatus {
        name: job_name,
        phase: Some(job_phase.to_owned()),
        completed_at: status
            .restore_job
            .as_ref()
            .and_then(|j| j.completed_at.clone())
            .or_else(|| job.complete_at.map(ts)),
    });

    let fail = |status: &mut PostgresPhysicalRestoreStatus, reason: &str, message: String| {
        status.phase = Some(RestorePhase::Failed);
        conditions::set(
            &mut status.conditions,
            Cond {
                type_: types::FAILED,
                status: true,
                reason,
                message,
            },
            generation,
            &now_t,
        );
        conditions::set(
            &mut status.conditions,
            Cond {
                type_: types::READY,
                status: false,
                reason: reasons::POSTGRES_NOT_READY,
                message: "the restore failed".into(),
            },
            generation,
            &now_t,
        );
    };

    if !job_done {
        if job.failed.is_some() {
            let (reason, message) = failed_reason(job.report.as_ref(), job.failed.as_ref());
            fail(&mut status, &reason, message);
            plan.status = status;
            return plan;
        }
        match (job.complete_at, &job.report) {
            (Some(done), Some(JobReport::Done(result))) => {
                status.restored_at = Some(ts(done));
                status.postgres_version = Some(result.postgres_version.clone());
                status.source = Some(source_kind(o.restore).to_owned());
                conditions::set(
                    &mut status.conditions,
                    Cond {
                        type_: types::RESTORED,
                        status: true,
                        reason: reasons::RESTORE_JOB_COMPLETED,
                        message: match &result.dump {
                            Some(d) => format!(
                                "found a {} dump of {} bytes; PostgreSQL {} replays it",
                                match d.kind {
                                    crate::logical::header::DumpKind::Cluster => "pg_dumpall",
                                    crate::logical::header::DumpKind::Database => "pg_dump",
                                },
                                result.bytes,
                                result.postgres_version
                            ),
                            None => format!(
                                "restored {} files ({} bytes) of PostgreSQL {} in {:.0}s",
                                result.files, result.bytes, result.postgres_version, result.seconds
                            ),
                        },
                    },
                    generation,
                    &now_t,
                );
            }
            (Some(_), _) => {
                fail(
                    &mut status,
                    reasons::RESTORE_JOB_FAILED,
                    "the restore Job completed without reporting a result in its termination message"
                        .into(),
                );
                plan.status = status;
                return plan;
            }
            (None, _) => {
                status.phase = Some(if job.active {
                    RestorePhase::Restoring
                } else {
                    phase.clone()
                });
                conditions::set(
                    &mut status.conditions,
                    Cond {
                        type_: types::RESTORED,
                        status: false,
                        reason: reasons::RESTORE_JOB_RUNNING,
                        message: "the restore Job copies the snapshot".into(),
                    },
                    generation,
                    &now_t,
                );
                plan.status = status;
                return plan;
            }
        }
    }

    // S4: PostgreSQL on the restored data.
    if o.deployment.is_none() {
        plan.create.push(Child::Deployment);
    }
    if !o.service {
        plan.create.push(Child::Service);
    }
    status.deployment = Some(naming::restore_deployment(&name));
    if let Some(d) = &o.deployment
        && d.live != o.desired_live
    {
        plan.patch_live = Some(o.desired_live.clone());
    }
    let ready = o.deployment.as_ref().is_some_and(|d| d.ready);
    // A logical replay that failed stops its instance for good: fail now, not at the ready timeout.
    if let Some(f) = o.instance_failure.as_ref().filter(|_| !ready)
        && matches!(phase, RestorePhase::Pending | RestorePhase::Restoring)
    {
        fail(&mut status, &f.error, f.message.clone());
        plan.status = status;
        return plan;
    }
    // When the instance last stopped being ready (kept across passes by the condition's transition time).
    let unready_since = conditions::get(&status.conditions, types::READY)
        .filter(|c| c.status == "False")
        .map_or(now, |c| c.last_transition_time.0);
    conditions::set(
        &mut status.conditions,
        Cond {
            type_: types::READY,
            status: ready,
            reason: if ready {
                reasons::POSTGRES_READY
            } else {
                reasons::POSTGRES_NOT_READY
            },
            message: if ready {
                "PostgreSQL accepts connections".into()
            } else {
                "waiting for PostgreSQL to become ready".into()
            },
        },
        generation,
        &now_t,
    );
    // I1/I6: what the instance changed is recorded once, with a Warning for each change.
    if status.instance_fixes.is_none()
        && let Some(fixes) = &o.fixes
    {
        let reports: Vec<(String, &'static str)> = fixes.iter().filter_map(Fix::report).collect();
        plan.events = reports
            .iter()
            .map(|(note, reason)| EventSpec {
                warning: true,
                reason,
                note: note.clone(),
                restore: None,
            })
            .collect();
        status.instance_fixes = Some(reports.into_iter().map(|(line, _)| line).collect());
        status.source_state.clone_from(&o.source_state);
        // The time of the newest data served: the last replayed commit, else the snapshot's own time.
        status.data_time = o
            .data_time
            .map(ts)
            .or_else(|| o.restore.spec.snapshot_time.clone());
        status.wal_replayed.clone_from(&o.wal_replayed);
        if let Some(d) = &o.dump_replayed {
            dump_replayed(&mut status, d, &mut plan.events, generation, &now_t);
        }
    }
    // S5: an instance that is not ready fails after the ready timeout, counted from `since`.
    let within = humantime::format_duration(o.ready_timeout);
    let unready: Option<(Timestamp, String)> = match phase {
        RestorePhase::Pending | RestorePhase::Restoring if ready => {
            match verification(o, &mut status, &mut plan, now) {
                Gate::Open => None,
                Gate::Waiting(since, message) => Some((since, message)),
                Gate::Failed(message) => {
                    fail(&mut status, reasons::VERIFICATION_FAILED, message);
                    plan.status = status;
                    return plan;
                }
            }
        }
        RestorePhase::Pending | RestorePhase::Restoring => {
            status.phase = Some(RestorePhase::Restoring);
            Some((
                status.restored_at.as_ref().map_or(now, |t| t.0),
                format!(
                    "PostgreSQL did not become ready within {within} of the restore completing"
                ),
            ))
        }
        // A restore that was ready but never served holds the replica's one restore in progress (R6): if
        // its instance stays unready (a crash loop, a crash mid-switchover), it fails after the same
        // timeout instead of blocking every later refresh. One that has served is left to the replica
        // controller, which replaces it at the next trigger.
        RestorePhase::Ready | RestorePhase::Switching
            if !ready && status.activated_at.is_none() =>
        {
            Some((
                unready_since,
                format!(
                    "PostgreSQL stopped being ready before this restore served and did not recover within {within}"
                ),
            ))
        }
        // Later phases belong to the replica controller; the condition above tracks readiness.
        RestorePhase::Ready
        | RestorePhase::Switching
        | RestorePhase::Active
        | RestorePhase::Failed
        | RestorePhase::Unknown(_) => None,
    };
    if let Some((since, message)) = unready {
        let deadline = since.checked_add(o.ready_timeout).unwrap_or(since);
        if now >= deadline {
            let reason = if plan.verify {
                plan.verify = false;
                reasons::VERIFICATION_FAILED
            } else {
                reasons::READY_TIMEOUT
            };
            fail(&mut status, reason, message);
        } else {
            plan.requeue =
                Some(Duration::try_from(deadline.duration_since(now)).unwrap_or(Duration::ZERO));
        }
    }
    plan.status = status;
    plan
}

/// What verification lets a ready instance do.
enum Gate {
    /// Become `Ready`.
    Open,
    /// Wait for the checks, failing after the deadline (since, message).
    Waiting(Timestamp, String),
    /// Fail: a check failed.
    Failed(String),
}

/// A ready instance becomes `Ready` once the replica's checks passed (at once when it asks for none). While
/// they are due, the restore stays `Restoring` with `Verified=Unknown` and [`Plan::verify`] set.
fn verification(
    o: &Observed<'_>,
    status: &mut PostgresPhysicalRestoreStatus,
    plan: &mut Plan,
    now: Timestamp,
) -> Gate {
    let generation = o.restore.metadata.generation;
    let now_t = ts(now);
    let done = status
        .verification
        .as_ref()
        .is_some_and(|v| v.passed == Some(true));
    let Some(spec) = o.verification.filter(|_| !done) else {
        status.phase = Some(RestorePhase::Ready);
        status.ready_at.get_or_insert(now_t);
        return Gate::Open;
    };
    let Some(result) = &o.verified else {
        let v = status.verification.get_or_insert_with(Default::default);
        v.passed = None;
        let started = v.started_at.get_or_insert(now_t.clone()).0;
        let mut names: Vec<&str> = Vec::new();
        if spec.require_application_database {
            names.push(pgro_api::CHECK_APPLICATION_DATABASE);
        }
        names.extend(spec.checks.iter().map(|c| c.name.as_str()));
        if spec.amcheck.is_some() {
            names.push(pgro_api::CHECK_AMCHECK);
        }
        conditions::set_unknown(
            &mut status.conditions,
            Cond {
                type_: types::VERIFIED,
                status: false,
                reason: reasons::CHECKS_RUNNING,
                message: format!("running the verification checks: {}", names.join(", ")),
            },
            generation,
            &now_t,
        );
        status.phase = Some(RestorePhase::Restoring);
        plan.verify = true;
        // The checks' own time counts on top of the ready timeout (an operator restarted during a long
        // amcheck runs them again from here).
        let since = started
            .checked_add(crate::operator::verify::budget(spec))
            .unwrap_or(started);
        return Gate::Waiting(
            since,
            format!(
                "the verification checks could not run: the operator could not reach PostgreSQL within {}",
                humantime::format_duration(o.ready_timeout)
            ),
        );
    };
    status.verification = Some(result.clone());
    let failed = result.checks.iter().find(|c| !c.passed);
    let message = match failed {
        None => format!("{} checks passed", result.checks.len()),
        Some(c) => crate::operator::verify::failure_line(c),
    };
    conditions::set(
        &mut status.conditions,
        Cond {
            type_: types::VERIFIED,
            status: failed.is_none(),
            reason: if failed.is_none() {
                reasons::CHECKS_PASSED
            } else {
                reasons::VERIFICATION_FAILED
            },
            message: message.clone(),
        },
        generation,
        &now_t,
    );
    if failed.is_some() {
        plan.events.push(EventSpec {
            warning: true,
            reason: event_reasons::VERIFICATION_FAILED,
            note: crate::restore::truncate(&message, 1000),
            restore: None,
        });
        return Gate::Failed(format!("verification failed: {message}"));
    }
    status.phase = Some(RestorePhase::Ready);
    status.ready_at.get_or_insert(now_t);
    Gate::Open
}

#[cfg(test)]
mod tests;
