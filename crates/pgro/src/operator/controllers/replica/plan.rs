//! The replica controller's decisions (behaviour R1–R10), as a pure function of the replica, its restores,
//! what the repository holds and `now`.
//!
//! Nothing here remembers anything between calls: the restores that exist and the replica's status are the
//! whole state, so a restarted (or replaced) operator reaches the same decisions. Each step of a switchover
//! is idempotent and ordered so that a crash between any two of them leaves a state the next pass finishes:
//! the new restore is marked `Switching`, the Service moves to it (only while it is ready), the old one is
//! demoted, the new one promoted.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use pgro_api::{
    ConnectionInfo, PostgresPhysicalReplica, PostgresPhysicalReplicaStatus, RestorePhase,
    SourceRef, condition_reasons as reasons, condition_types as types, event_reasons,
};

use crate::operator::conditions::{self, Cond};
use crate::operator::queue::Admission;
use crate::operator::schedule::{self, Schedule};
use crate::operator::sizing::{self, SizingError, SizingInputs};
use crate::operator::snapshots::SnapshotInfo;
use crate::operator::trigger::{self, SUSPEND_AFTER_FAILURES, Trigger, TriggerInputs};
use crate::operator::{duration, naming, phase, quantity};

/// The analytics role's database (and the one `connectionInfo` names).
pub const ANALYTICS_DATABASE: &str = "postgres";
/// How often a replica looks at its repository when nothing else wakes it.
const HEARTBEAT: Duration = Duration::from_secs(120);
/// The queue watch wakes a waiting replica when the queue moves; this only bounds how long a lost wake
/// could delay it.
const QUEUE_POLL: Duration = Duration::from_secs(300);
/// How often a replica without an active restore polls for a matching snapshot.
const SNAPSHOT_POLL: Duration = Duration::from_secs(60);

/// A restore of this replica, as the decision needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreView {
    /// Name.
    pub name: String,
    /// `status.phase` (`Pending` when unset).
    pub phase: RestorePhase,
    /// `spec.snapshot`.
    pub snapshot: String,
    /// `metadata.creationTimestamp`.
    pub created: Timestamp,
    /// `status.activatedAt`.
    pub activated_at: Option<Timestamp>,
    /// When and why it failed (`Failed` condition).
    pub failure: Option<FailureView>,
    /// `Ready` condition is `True` (PostgreSQL serves).
    pub ready: bool,
    /// `_pgro.restore_info` was marked `outgoing`.
    pub outgoing_marked: bool,
    /// Being deleted.
    pub deleting: bool,
    /// `status.postgresVersion`.
    pub postgres_version: Option<String>,
    /// `spec.snapshotSize` in bytes.
    pub snapshot_bytes: u64,
}

/// The schema migration Job, as observed.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationView {
    /// The restore it migrates into (its `pgro.bes.au/restore` label).
    pub target: String,
    /// How far it got.
    pub state: MigrationState,
}

/// A migration Job's state.
#[derive(Debug, Clone, PartialEq)]
pub enum MigrationState {
    /// Still running (or retrying).
    Running,
    /// Ran to an end: complete, partial or out of time.
    Done(crate::migrate::MigrationResult),
    /// Failed after its retries.
    Failed(String),
}

/// The phase recorded while a migration runs.
pub const MIGRATION_ACTIVE: &str = "active";

/// The migration's time budget: 20 % of the interval between two scheduled restores (at least 30 s).
#[must_use]
pub fn migration_budget(schedule: &Schedule, now: Timestamp) -> Duration {
    let interval = schedule
        .interval_after(now)
        .ok()
        .and_then(|d| Duration::try_from(d).ok())
        .unwrap_or(Duration::from_secs(3600));
    (interval / 5).max(Duration::from_secs(30))
}

/// A restore's failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureView {
    /// When it failed.
    pub at: Timestamp,
    /// The `Failed` condition's reason.
    pub reason: String,
    /// The `Failed` condition's message.
    pub message: String,
}

/// What the repository said.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The Secret does not exist.
    SecretNotFound {
        /// Its name.
        secret: String,
    },
    /// The Secret lacks a key or has a bad value.
    SecretInvalid {
        /// What is wrong.
        message: String,
    },
    /// The repository could not be opened or read.
    Repository {
        /// `RepositoryPasswordInvalid`, `StorageUnreachable`, …
        reason: &'static str,
        /// The error.
        message: String,
    },
    /// The spec's source cannot be used at all (condition `SourceValid=False`), e.g. a kind of source this
    /// build does not read; nothing is restored.
    SourceInvalid {
        /// `UnsupportedRepository`, …
        reason: &'static str,
        /// What to change.
        message: String,
    },
    /// The snapshot filter does not compile.
    FilterInvalid {
        /// The compiler's message.
        message: String,
    },
    /// The listing.
    Snapshots {
        /// The newest matching snapshot.
        latest: Option<SnapshotInfo>,
        /// How many snapshots the repository holds.
        total: usize,
    },
}

/// Everything the decision looks at.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// The replica.
    pub replica: &'a PostgresPhysicalReplica,
    /// Its restores (any order).
    pub restores: &'a [RestoreView],
    /// The repository.
    pub source: Source,
    /// How long failed restores are kept.
    pub failed_retention: Duration,
    /// The schema migration Job, if one exists.
    pub migration: Option<MigrationView>,
    /// What is wrong with the certificate Secret named by `spec.tls.certificateSecretRef`, if anything.
    pub tls_problem: Option<String>,
}

/// A step to perform, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write a restore's phase (with `activatedAt` when promoting).
    SetRestorePhase {
        /// The restore.
        restore: String,
        /// The phase.
        phase: RestorePhase,
        /// `activatedAt` to set (promotion only).
        activated_at: Option<Timestamp>,
    },
    /// Point the stable Service at this restore (it is ready).
    SwitchService {
        /// The restore.
        restore: String,
    },
    /// Mark `_pgro.restore_info.stage = 'outgoing'` in a restore that no longer serves.
    MarkOutgoing {
        /// The restore.
        restore: String,
    },
    /// Start the schema migration into `target` (replacing a Job left from an earlier migration).
    StartMigration {
        /// The new restore.
        target: String,
        /// The serving restore.
        source: String,
        /// PostgreSQL major of the Job's image.
        major: String,
        /// Time budget.
        budget: Duration,
    },
    /// Fail a restore (its migration failed for good).
    FailRestore {
        /// The restore.
        restore: String,
        /// Condition reason.
        reason: &'static str,
        /// Condition message.
        message: String,
    },
    /// Delete a restore and, through owner references, its children first.
    DeleteRestore {
        /// The restore.
        restore: String,
        /// Why (for the log).
        why: &'static str,
    },
}

/// An event on the replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    /// `Warning` or not.
    pub warning: bool,
    /// Reason (`event_reasons`).
    pub reason: &'static str,
    /// Note.
    pub note: String,
    /// The restore the event is about (the event's `related` object), so events about different restores
    /// are not folded into one series.
    pub restore: Option<String>,
}

/// A new restore this replica wants (subject to the cluster-wide limit).
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    /// The snapshot.
    pub snapshot: SnapshotInfo,
    /// PVC size.
    pub storage_size: Quantity,
    /// The restore's name.
    pub name: String,
    /// `nextScheduledRestore` once it has started.
    pub next_scheduled: Option<Timestamp>,
}

/// The decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Steps, in order.
    pub actions: Vec<Action>,
    /// Events to record.
    pub events: Vec<EventSpec>,
    /// The status to write (only if it differs).
    pub status: PostgresPhysicalReplicaStatus,
    /// The restore the stable Service should select.
    pub service_target: Option<String>,
    /// A restore to start, if admission allows ([`admit`]).
    pub wanted: Option<Wanted>,
    /// Newly failed restores (for metrics and notifications): (name, reason).
    pub newly_failed: Vec<(String, String)>,
    /// The restore that became active since the status was last written (switchover completed).
    pub promoted: Option<String>,
    /// Look again after this long.
    pub requeue: Duration,
}

fn is_candidate(r: &RestoreView) -> bool {
    !r.deleting
        && r.activated_at.is_none()
        && match r.phase {
            RestorePhase::Ready => r.ready,
            RestorePhase::Switching => true,
            RestorePhase::Pending
            | RestorePhase::Restoring
            | RestorePhase::Active
            | RestorePhase::Failed
            | RestorePhase::Unknown(_) => false,
        }
}

fn in_progress(r: &RestoreView) -> bool {
    !r.deleting
        && match r.phase {
            RestorePhase::Pending | RestorePhase::Restoring | RestorePhase::Switching => true,
            RestorePhase::Ready => r.activated_at.is_none(),
            RestorePhase::Active | RestorePhase::Failed | RestorePhase::Unknown(_) => false,
        }
}

struct Ctx {
    now: Timestamp,
    now_t: Time,
    generation: Option<i64>,
    status: PostgresPhysicalReplicaStatus,
    plan_requeue: Duration,
    events: Vec<EventSpec>,
}

impl Ctx {
    fn cond(&mut self, type_: &str, status: bool, reason: &str, message: String) {
        conditions::set(
            &mut self.status.conditions,
            Cond {
                type_,
                status,
                reason,
                message,
            },
            self.generation,
            &self.now_t,
        );
    }

    fn requeue_at(&mut self, at: Timestamp) {
        let d = Duration::try_from(at.duration_since(self.now)).unwrap_or(Duration::ZERO);
        self.requeue_in(d.max(Duration::from_secs(1)));
    }

    fn requeue_in(&mut self, d: Duration) {
        self.plan_requeue = self.plan_requeue.min(d);
    }

    fn event(&mut self, warning: bool, reason: &'static str, note: String, restore: Option<&str>) {
        self.events.push(EventSpec {
            warning,
            reason,
            note,
            restore: restore.map(str::to_owned),
        });
    }
}

fn kubectl_resume(r: &PostgresPhysicalReplica) -> String {
    format!(
        "kubectl -n {} patch ppr {} --subresource=status --type=merge -p '{{\"status\":{{\"consecutiveRestoreFailures\":0}}}}'",
        r.metadata.namespace.as_deref().unwrap_or("default"),
        r.metadata.name.as_deref().unwrap_or("")
    )
}

/// Decides the replica's next steps. A restore to start comes back in [`Plan::wanted`]; the caller asks
/// the cluster-wide queue ([`admit`]) before creating it.
#[must_use]
#[allow(clippy::too_many_lines)] // one ordered pass; each block is commented
pub fn decide(o: &Observed<'_>, now: Timestamp) -> Plan {
    let replica = o.replica;
    let spec = &replica.spec;
    let name = replica.metadata.name.clone().unwrap_or_default();
    let namespace = replica.metadata.namespace.clone().unwrap_or_default();
    let uid = replica.metadata.uid.clone().unwrap_or_default();
    let mut c = Ctx {
        now,
        now_t: Time(now),
        generation: replica.metadata.generation,
        status: replica.status.clone().unwrap_or_default(),
        plan_requeue: HEARTBEAT,
        events: Vec::new(),
    };
    c.status.observed_generation = c.generation;
    let mut actions = Vec::new();
    let live: Vec<&RestoreView> = o.restores.iter().filter(|r| !r.deleting).collect();

    // R2: where to connect.
    let service = naming::replica_service(&name);
    c.status.service_name = Some(service.clone());
    c.status.connection_info = Some(ConnectionInfo {
        host: format!("{service}.{namespace}.svc"),
        port: 5432,
        database: ANALYTICS_DATABASE.into(),
        username: spec.analytics_username.clone(),
        password_secret: naming::credentials_secret(&name),
        ssl_mode: Some("verify-full".into()),
        ca_secret: Some(naming::ca_secret(&name)),
    });

    // R8: count each failed restore once (its failure time is after the last one counted).
    let counted_until = c.status.last_restore_failed_at.as_ref().map(|t| t.0);
    let mut newly_failed: Vec<&RestoreView> = live
        .iter()
        .copied()
        .filter(|r| {
            r.failure
                .as_ref()
                .is_some_and(|f| counted_until.is_none_or(|u| f.at > u))
        })
        .collect();
    newly_failed.sort_by_key(|r| r.failure.as_ref().map(|f| f.at));
    for r in &newly_failed {
        let f = r.failure.as_ref().map_or_else(
            || ("Unknown".to_owned(), String::new()),
            |f| (f.reason.clone(), f.message.clone()),
        );
        // A wrong password is the Secret's problem, not the backup's: the repository condition reports it
        // and holds new restores until the Secret is fixed, so it never suspends scheduling.
        if f.0 != crate::cli::exit::Failure::WrongPassword.reason() {
            c.status.consecutive_restore_failures += 1;
        }
        c.status.last_restore_failed_at = r.failure.as_ref().map(|f| Time(f.at));
        c.event(
            true,
            event_reasons::RESTORE_FAILED,
            format!(
                "restore {} of snapshot {} failed ({}): {}",
                r.name, r.snapshot, f.0, f.1
            ),
            Some(&r.name),
        );
    }
    let newly_failed: Vec<(String, String)> = newly_failed
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                r.failure
                    .as_ref()
                    .map_or_else(String::new, |f| f.reason.clone()),
            )
        })
        .collect();

    // R9: the active restore, and a switchover to a ready newer one.
    let mut actives: Vec<&RestoreView> = live
        .iter()
        .copied()
        .filter(|r| r.phase == RestorePhase::Active)
        .collect();
    actives.sort_by_key(|r| (r.activated_at, r.created));
    let mut active: Option<&RestoreView> = actives.last().copied();
    // More than one Active can only be left by a crash mid-switchover: keep the newest.
    for extra in actives.iter().rev().skip(1) {
        actions.push(Action::SetRestorePhase {
            restore: extra.name.clone(),
            phase: RestorePhase::Ready,
            activated_at: None,
        });
    }
    let candidate = live
        .iter()
        .copied()
        .filter(|r| is_candidate(r))
        .max_by_key(|r| r.created);
    let schemas = spec.persistent_schemas.clone().unwrap_or_default();
    let mut migrating = false;
    if let Some(cand) = candidate {
        if cand.phase == RestorePhase::Ready {
            actions.push(Action::SetRestorePhase {
                restore: cand.name.clone(),
                phase: RestorePhase::Switching,
                activated_at: None,
            });
        }
        // P1: persistent schemas move from the serving restore before the Service does.
        let mut go = cand.ready;
        if let (false, Some(source), true) = (schemas.is_empty(), active, cand.ready) {
            let migration = o.migration.as_ref().filter(|m| m.target == cand.name);
            let before = c.status.schema_migration_phase.clone();
            match migration.map(|m| &m.state) {
                None | Some(MigrationState::Running) => {
                    if migration.is_none() {
                        let major = [&source.postgres_version, &cand.postgres_version]
                            .into_iter()
                            .flatten()
                            .max_by_key(|v| v.parse::<u32>().unwrap_or(0))
                            .cloned()
                            .unwrap_or_else(|| "16".into());
                        let budget = Schedule::parse(&spec.schedule, &uid)
                            .map_or(Duration::from_secs(3600), |s| migration_budget(&s, now));
                        actions.push(Action::StartMigration {
                            target: cand.name.clone(),
                            source: source.name.clone(),
                            major,
                            budget,
                        });
                    }
                    c.status.schema_migration_job = Some(naming::schema_migration_job(&name));
                    c.status.schema_migration_phase = Some(MIGRATION_ACTIVE.into());
                    c.requeue_in(Duration::from_secs(5));
                    migrating = true;
                    go = false;
                }
                Some(MigrationState::Done(r)) => {
                    c.status.schema_migration_job = None;
                    c.status.schema_migration_phase = Some(r.phase.clone());
                    let grown = r.source_database_size.saturating_sub(source.snapshot_bytes);
                    c.status.persistent_schema_data_size = Some(quantity::from_bytes(grown));
                    if before.as_deref() != Some(r.phase.as_str()) {
                        let copied: Vec<String> = r
                            .migrated
                            .iter()
                            .map(|m| format!("{}.{}", m.database, m.schema))
                            .collect();
                        let detail = format!(
                            "persistent schemas from {} into {}: copied [{}]; skipped (not on the source) [{}]; {} failed statements{}",
                            source.name,
                            cand.name,
                            copied.join(", "),
                            r.skipped.join(", "),
                            r.errors,
                            r.error_messages
                                .first()
                                .map(|m| format!(", first: {m}"))
                                .unwrap_or_default()
                        );
                        match r.phase.as_str() {
                            "partial" => c.event(
                                true,
                                event_reasons::SCHEMA_MIGRATION_PARTIAL,
                                detail,
                                Some(&cand.name),
                            ),
                            "timeout-skipped" => c.event(
                                true,
                                event_reasons::SCHEMA_MIGRATION_TIMED_OUT,
                                format!(
                                    "the schema migration into {} ran out of its time budget; the partial copy was dropped and the switchover goes ahead",
                                    cand.name
                                ),
                                Some(&cand.name),
                            ),
                            _ => c.event(
                                false,
                                event_reasons::SCHEMA_MIGRATION_COMPLETED,
                                detail,
                                Some(&cand.name),
                            ),
                        }
                    }
                }
                Some(MigrationState::Failed(why)) => {
                    c.status.schema_migration_job = None;
                    c.status.schema_migration_phase = Some(format!("failed: {why}"));
                    actions.push(Action::FailRestore {
                        restore: cand.name.clone(),
                        reason: reasons::SCHEMA_MIGRATION_FAILED,
                        message: format!(
                            "the persistent schema migration from {} failed after its retries: {why}",
                            source.name
                        ),
                    });
                    go = false;
                }
            }
        }
        if go {
            actions.push(Action::SwitchService {
                restore: cand.name.clone(),
            });
            if let Some(old) = active {
                actions.push(Action::SetRestorePhase {
                    restore: old.name.clone(),
                    phase: RestorePhase::Ready,
                    activated_at: None,
                });
            }
            actions.push(Action::SetRestorePhase {
                restore: cand.name.clone(),
                phase: RestorePhase::Active,
                activated_at: Some(now),
            });
            active = Some(cand);
        }
    }
    // Transitions are derived from the status (written only after every step succeeded), so a pass that
    // fails half-way reports them on the next pass instead of losing them.
    let before = c.status.current_restore.clone();
    c.status.current_restore = active.map(|a| a.name.clone());
    let mut promoted = None;
    if let Some(a) = active
        && before.as_deref() != Some(a.name.as_str())
    {
        c.status.last_restore_completed_at = Some(Time(a.activated_at.unwrap_or(now)));
        c.status.consecutive_restore_failures = 0;
        c.event(
            false,
            event_reasons::RESTORE_COMPLETED,
            format!(
                "restore {} of snapshot {} is active{}",
                a.name,
                a.snapshot,
                before.map_or_else(String::new, |b| format!("; {b} is outgoing"))
            ),
            Some(&a.name),
        );
        promoted = Some(a.name.clone());
    }
    let active_since = active.and_then(|a| a.activated_at).unwrap_or(now);

    // Outgoing restores: marked, then deleted after the grace period (R9).
    let grace = duration::parse("switchoverGracePeriod", &spec.switchover_grace_period)
        .unwrap_or(SignedDuration::from_mins(5));
    let mut outgoing: Vec<&RestoreView> = live
        .iter()
        .copied()
        .filter(|r| {
            r.activated_at.is_some()
                && Some(r.name.as_str()) != active.map(|a| a.name.as_str())
                && r.phase != RestorePhase::Failed
        })
        .collect();
    outgoing.sort_by_key(|r| r.activated_at);
    let mut previous = None;
    for r in &outgoing {
        // Outgoing since its own successor took over (the next restore activated after it), not since the
        // newest switchover; without an active successor, since it was activated.
        let successor = outgoing
            .iter()
            .filter_map(|o| o.activated_at)
            .chain(active.map(|_| active_since))
            .filter(|t| r.activated_at.is_some_and(|mine| *t > mine))
            .min();
        let since = match (active, successor) {
            (Some(_), Some(t)) => t,
            (Some(_), None) => active_since,
            (None, _) => r.activated_at.unwrap_or(now),
        };
        let delete_at = since.saturating_add(grace).unwrap_or(since);
        // P3: never while a migration may be reading from it.
        if now >= delete_at && !migrating {
            actions.push(Action::DeleteRestore {
                restore: r.name.clone(),
                why: "switchover grace period over",
            });
        } else {
            if !r.outgoing_marked && r.phase == RestorePhase::Ready {
                actions.push(Action::MarkOutgoing {
                    restore: r.name.clone(),
                });
            }
            previous = Some(r.name.clone());
            c.requeue_at(delete_at);
        }
    }
    c.status.previous_restore = previous;

    // R8: failed restores go after the retention, but the newest attempt's failure stays until the next.
    let newest_created = live.iter().map(|r| r.created).max();
    for r in &live {
        if let Some(f) = &r.failure
            && r.phase == RestorePhase::Failed
        {
            let retention = SignedDuration::try_from(o.failed_retention).unwrap_or_default();
            let delete_at = f.at.saturating_add(retention).unwrap_or(f.at);
            let superseded = newest_created.is_some_and(|n| n > r.created);
            if superseded && now >= delete_at {
                actions.push(Action::DeleteRestore {
                    restore: r.name.clone(),
                    why: "failed restore retention over",
                });
            } else if superseded {
                c.requeue_at(delete_at);
            }
        }
    }

    // R1/R3: the repository. Kopia sources report on `KopiaSecretValid` (`SourceValid` only while the spec
    // names no usable source); every other source on `SourceValid`.
    let kopia = matches!(spec.effective_source(), Some(SourceRef::Kopia(_)));
    let opened = |c: &mut Ctx| {
        if kopia {
            c.cond(
                types::KOPIA_SECRET_VALID,
                true,
                reasons::REPOSITORY_OPENED,
                "the repository opens with these credentials".into(),
            );
        } else {
            c.status
                .conditions
                .retain(|x| x.type_ != types::KOPIA_SECRET_VALID);
            c.cond(
                types::SOURCE_VALID,
                true,
                reasons::REPOSITORY_OPENED,
                "the repository opens with these credentials".into(),
            );
        }
    };
    if kopia && !matches!(o.source, Source::SourceInvalid { .. }) {
        c.status
            .conditions
            .retain(|x| x.type_ != types::SOURCE_VALID);
    }
    let latest = match &o.source {
        Source::SourceInvalid { reason, message } => {
            // `KopiaSecretValid` would describe a Secret the spec no longer names.
            c.status
                .conditions
                .retain(|x| x.type_ != types::KOPIA_SECRET_VALID);
            c.cond(types::SOURCE_VALID, false, reason, message.clone());
            None
        }
        Source::SecretNotFound { secret } => {
            c.cond(
                types::KOPIA_SECRET_VALID,
                false,
                reasons::SECRET_NOT_FOUND,
                format!("Secret {secret} not found in namespace {namespace}"),
            );
            None
        }
        Source::SecretInvalid { message } => {
            c.cond(
                types::KOPIA_SECRET_VALID,
                false,
                reasons::SECRET_INVALID,
                message.clone(),
            );
            None
        }
        Source::Repository { reason, message } => {
            c.cond(types::KOPIA_SECRET_VALID, false, reason, message.clone());
            None
        }
        Source::FilterInvalid { message } => {
            opened(&mut c);
            c.cond(
                types::SNAPSHOT_AVAILABLE,
                false,
                reasons::NO_MATCHING_SNAPSHOTS,
                message.clone(),
            );
            None
        }
        Source::Snapshots { latest, total } => {
            opened(&mut c);
            match latest {
                Some(s) => {
                    let what = match spec.effective_source() {
                        Some(SourceRef::Pgbackrest(_)) => format!(
                            "{} backup {} of stanza {} at {}, ended {} ({} bytes)",
                            s.description, s.id, s.host, s.path, s.start_time, s.total_size
                        ),
                        Some(SourceRef::BarmanCloud(_)) => format!(
                            "backup {} of server {} at {}, ended {} ({} bytes)",
                            s.id, s.host, s.path, s.start_time, s.total_size
                        ),
                        Some(SourceRef::Restic(_)) => format!(
                            "dump snapshot {} of host {} ({}), taken {} ({} bytes)",
                            s.id, s.host, s.path, s.start_time, s.total_size
                        ),
                        _ => format!(
                            "snapshot {} of {}@{}:{} taken {} ({} bytes)",
                            s.id, s.user_name, s.host, s.path, s.start_time, s.total_size
                        ),
                    };
                    c.cond(
                        types::SNAPSHOT_AVAILABLE,
                        true,
                        reasons::SNAPSHOT_FOUND,
                        what,
                    );
                    c.status.latest_available_snapshot = Some(s.id.clone());
                }
                None => {
                    c.cond(
                        types::SNAPSHOT_AVAILABLE,
                        false,
                        reasons::NO_MATCHING_SNAPSHOTS,
                        format!(
                            "none of the {total} snapshots in the repository matches snapshotFilter"
                        ),
                    );
                    c.status.latest_available_snapshot = None;
                }
            }
            latest.clone()
        }
    };
    let source_ok = matches!(o.source, Source::Snapshots { .. });
    if !source_ok {
        // Retry with a backoff that grows with how long the problem has lasted (no state beyond the
        // condition's transition time).
        let failing = if matches!(o.source, Source::SourceInvalid { .. }) {
            types::SOURCE_VALID
        } else {
            types::KOPIA_SECRET_VALID
        };
        let since = conditions::get(&c.status.conditions, failing)
            .filter(|x| x.status == "False")
            .map_or(now, |x| x.last_transition_time.0);
        let lasted = Duration::try_from(now.duration_since(since)).unwrap_or(Duration::ZERO);
        c.requeue_in(lasted.clamp(Duration::from_secs(10), Duration::from_secs(300)));
    }
    let latest = tls_gate(&mut c, spec, o.tls_problem.as_deref(), latest);

    // R7: would the newest snapshot fit?
    let sized = latest.as_ref().map(|s| {
        let has_schemas = spec
            .persistent_schemas
            .as_ref()
            .is_some_and(|v| !v.is_empty());
        sizing::storage_size(&SizingInputs {
            snapshot_bytes: s.total_size,
            persistent_schema_data: c
                .status
                .persistent_schema_data_size
                .as_ref()
                .filter(|_| has_schemas),
            size_override: spec.storage_size_override.as_ref(),
            maximum: &spec.storage_size_maximum,
        })
    });
    let was_within = conditions::get(&c.status.conditions, types::STORAGE_WITHIN_LIMIT)
        .is_none_or(|x| x.status != "False");
    match &sized {
        Some(Ok(size)) => c.cond(
            types::STORAGE_WITHIN_LIMIT,
            true,
            reasons::STORAGE_SIZE_OK,
            format!(
                "the newest snapshot needs {} (maximum {})",
                size.0, spec.storage_size_maximum.0
            ),
        ),
        Some(Err(e)) => {
            c.cond(
                types::STORAGE_WITHIN_LIMIT,
                false,
                reasons::STORAGE_LIMIT_EXCEEDED,
                format!("no restore is created: {e}"),
            );
            if was_within {
                c.event(
                    true,
                    event_reasons::STORAGE_LIMIT_EXCEEDED,
                    format!(
                        "snapshot {}: {e}",
                        latest.as_ref().map_or("", |s| s.id.as_str())
                    ),
                    None,
                );
            }
        }
        None => {}
    }

    // R4: the schedule.
    let parsed = Schedule::parse(&spec.schedule, &uid).map_err(|e| e.to_string());
    let jitter =
        duration::parse("scheduleJitter", &spec.schedule_jitter).map_err(|e| e.to_string());
    let hash = schedule::schedule_hash(&spec.schedule, &spec.schedule_jitter);
    let sched = match (parsed, jitter) {
        (Ok(s), Ok(j)) => {
            c.cond(
                types::SCHEDULE_VALID,
                true,
                reasons::SCHEDULE_PARSED,
                format!("schedule {:?} parses", spec.schedule),
            );
            Some((s, j))
        }
        (Err(e), _) | (_, Err(e)) => {
            c.cond(types::SCHEDULE_VALID, false, reasons::INVALID_SCHEDULE, e);
            c.status.next_scheduled_restore = None;
            c.status.schedule_hash = None;
            None
        }
    };
    let next_after = |after: Timestamp, s: &Schedule, j: SignedDuration| {
        schedule::next_scheduled_restore(s, j, &uid, after).ok()
    };
    if let Some((s, j)) = &sched
        && (c.status.schedule_hash.as_deref() != Some(hash.as_str())
            || c.status.next_scheduled_restore.is_none())
    {
        c.status.next_scheduled_restore = next_after(now, s, *j).map(Time);
        c.status.schedule_hash = Some(hash.clone());
    }

    // R5/R6/R8: whether to start a restore now.
    let suspended = c.status.consecutive_restore_failures >= SUSPEND_AFTER_FAILURES;
    if suspended {
        c.cond(
            types::RESTORE_SCHEDULING_SUSPENDED,
            true,
            reasons::CONSECUTIVE_FAILURES,
            format!(
                "scheduling stopped after {SUSPEND_AFTER_FAILURES} consecutive failed restores; resume with: {}",
                kubectl_resume(replica)
            ),
        );
    } else {
        c.cond(
            types::RESTORE_SCHEDULING_SUSPENDED,
            false,
            reasons::SCHEDULING_ACTIVE,
            "restores are scheduled".into(),
        );
    }
    let restoring = live.iter().any(|r| in_progress(r));
    let mut wanted = None;
    let mut advance = false;
    let mut deferred = false;
    if let (Some((s, j)), true) = (&sched, source_ok) {
        let next = c
            .status
            .next_scheduled_restore
            .as_ref()
            .map_or(now, |t| t.0);
        let ttl = spec
            .minimum_ttl
            .as_deref()
            .and_then(|t| duration::parse("minimumTtl", t).ok());
        let inputs = TriggerInputs {
            now,
            next_scheduled: next,
            active_snapshot: active.map(|a| a.snapshot.as_str()),
            restore_in_progress: restoring,
            live_restores: live
                .iter()
                .filter(|r| r.phase != RestorePhase::Failed)
                .count(),
            last_completed_at: c.status.last_restore_completed_at.as_ref().map(|t| t.0),
            minimum_ttl: ttl,
            consecutive_failures: c.status.consecutive_restore_failures,
            last_failure_at: c.status.last_restore_failed_at.as_ref().map(|t| t.0),
            latest_snapshot: latest.as_ref().map(|l| l.id.as_str()),
        };
        match trigger::decide(&inputs) {
            Trigger::Suspended | Trigger::InProgress => {}
            // The deletion of an outgoing restore wakes the replica (restores are watched); its grace
            // deadline is already a requeue time above.
            Trigger::AtRestoreLimit => deferred = true,
            Trigger::Wait { until } => c.requeue_at(until),
            Trigger::SkipMinimumTtl { until } => {
                c.event(
                    false,
                    event_reasons::RESTORE_SKIPPED,
                    format!(
                        "scheduled restore skipped: the last restore completed less than minimumTtl ago (until {until})"
                    ),
                    None,
                );
                advance = true;
            }
            Trigger::SkipSameSnapshot => {
                c.event(
                    false,
                    event_reasons::RESTORE_SKIPPED,
                    format!(
                        "scheduled restore skipped: the active restore already holds the newest snapshot {}",
                        active.map_or("", |a| a.snapshot.as_str())
                    ),
                    None,
                );
                advance = true;
            }
            Trigger::NoSnapshot => {
                if active.is_some() {
                    advance = true;
                } else {
                    c.requeue_in(SNAPSHOT_POLL);
                }
            }
            Trigger::Restore { .. } => match (latest.clone(), sized.clone()) {
                (Some(snapshot), Some(Ok(storage_size))) => {
                    wanted = Some(Wanted {
                        name: naming::restore_name(&name, now),
                        snapshot,
                        storage_size,
                        next_scheduled: next_after(now, s, *j),
                    });
                }
                (
                    _,
                    Some(Err(
                        SizingError::ExceedsMaximum { .. } | SizingError::InvalidQuantity { .. },
                    )),
                )
                | (_, None)
                | (None, _) => {
                    if active.is_some() {
                        advance = true;
                    } else {
                        c.requeue_in(SNAPSHOT_POLL);
                    }
                }
            },
        }
        if advance {
            c.status.next_scheduled_restore = next_after(now, s, *j).map(Time);
        }
        if let Some(t) = c.status.next_scheduled_restore.clone() {
            c.requeue_at(t.0);
        }
    }
    if wanted.is_none() {
        c.status.waiting_since = None;
        c.status.queue_position = 0;
    }
    let was_deferred = conditions::is_true(&c.status.conditions, types::RESTORE_DEFERRED);
    if deferred {
        let names: Vec<&str> = live
            .iter()
            .filter(|r| r.phase != RestorePhase::Failed)
            .map(|r| r.name.as_str())
            .collect();
        let message = format!(
            "a scheduled restore is due, but the replica already has 3 restores on their own volumes ({}); \
             it starts when the outgoing one is deleted after switchoverGracePeriod",
            names.join(", ")
        );
        if !was_deferred {
            c.event(
                false,
                event_reasons::RESTORE_DEFERRED,
                message.clone(),
                None,
            );
        }
        c.cond(
            types::RESTORE_DEFERRED,
            true,
            reasons::LIVE_RESTORE_LIMIT,
            message,
        );
    } else {
        c.cond(
            types::RESTORE_DEFERRED,
            false,
            reasons::NOT_DEFERRED,
            "no due restore is held back".into(),
        );
    }

    // Notification headers are shape-checked here, not at the first delivery after a restore.
    let bad_headers = invalid_headers(spec);
    if bad_headers.is_empty() {
        c.cond(
            types::NOTIFICATIONS_VALID,
            true,
            reasons::NOTIFICATIONS_VALID,
            "every notification header is a string or a secretKeyRef".into(),
        );
    } else {
        c.cond(
            types::NOTIFICATIONS_VALID,
            false,
            reasons::INVALID_HEADER,
            format!(
                "header(s) {} must each be a string or {{secretKeyRef: {{name, key}}}}; deliveries to these \
                 targets will fail until fixed",
                bad_headers.join(", ")
            ),
        );
    }

    // R10 and the Ready condition.
    c.status.phase = Some(phase::replica_phase(active.is_some(), restoring, suspended));
    match active {
        Some(a) => c.cond(
            types::READY,
            true,
            reasons::ACTIVE_RESTORE_SERVING,
            format!(
                "restore {} (snapshot {}{}) serves through Service {service}",
                a.name,
                a.snapshot,
                a.postgres_version
                    .as_deref()
                    .map(|v| format!(", PostgreSQL {v}"))
                    .unwrap_or_default()
            ),
        ),
        None => c.cond(
            types::READY,
            false,
            reasons::NO_ACTIVE_RESTORE,
            "no restore serves yet".into(),
        ),
    }

    Plan {
        actions,
        events: c.events,
        service_target: active.map(|a| a.name.clone()),
        wanted,
        newly_failed,
        promoted,
        requeue: c.plan_requeue,
        status: c.status,
    }
}

/// Applies the cluster-wide queue's answer to a plan that wants a restore (behaviour R6).
pub fn admit(plan: &mut Plan, admission: Admission, now: Timestamp) {
    let Some(wanted) = &plan.wanted else { return };
    let next_scheduled = wanted.next_scheduled;
    match admission {
        Admission::Start => {
            plan.status.waiting_since = None;
            plan.status.queue_position = 0;
            plan.status.next_scheduled_restore = next_scheduled.map(Time);
            plan.status.phase = Some(phase::replica_phase(
                plan.status.current_restore.is_some(),
                true,
                false,
            ));
            plan.events.push(EventSpec {
                warning: false,
                reason: event_reasons::RESTORE_STARTED,
                note: format!(
                    "restore {} of snapshot {} ({} bytes, storage {}) started",
                    wanted.name,
                    wanted.snapshot.id,
                    wanted.snapshot.total_size,
                    wanted.storage_size.0
                ),
                restore: Some(wanted.name.clone()),
            });
            if let Some(n) = next_scheduled {
                let d = Duration::try_from(n.duration_since(now)).unwrap_or(Duration::ZERO);
                plan.requeue = plan.requeue.min(d.max(Duration::from_secs(1)));
            }
        }
        Admission::Wait { position } => {
            if plan.status.waiting_since.is_none() {
                plan.status.waiting_since = Some(Time(now));
            }
            plan.status.queue_position = position;
            plan.requeue = plan.requeue.min(QUEUE_POLL);
            plan.wanted = None;
        }
    }
}

/// The snapshot size as a quantity for the restore's spec.
#[must_use]
pub fn snapshot_size(s: &SnapshotInfo) -> Quantity {
    quantity::from_bytes(s.total_size)
}

/// TLS (+): a certificate brought with `spec.tls.certificateSecretRef` that cannot be used holds back new
/// restores (their pods could not start, or would serve a certificate clients refuse), reported on
/// `TlsCertificateValid`; the serving copy is left alone. Without one the condition is absent.
fn tls_gate(
    c: &mut Ctx,
    spec: &pgro_api::PostgresPhysicalReplicaSpec,
    problem: Option<&str>,
    latest: Option<SnapshotInfo>,
) -> Option<SnapshotInfo> {
    let brought = spec
        .tls
        .as_ref()
        .and_then(|t| t.certificate_secret_ref.as_ref());
    match (brought, problem) {
        (None, _) => {
            c.status
                .conditions
                .retain(|x| x.type_ != types::TLS_CERTIFICATE_VALID);
            latest
        }
        (Some(r), None) => {
            c.cond(
                types::TLS_CERTIFICATE_VALID,
                true,
                reasons::CERTIFICATE_VALID,
                format!(
                    "Secret {} holds a current certificate for the Service",
                    r.name
                ),
            );
            latest
        }
        (Some(r), Some(p)) => {
            c.cond(
                types::TLS_CERTIFICATE_VALID,
                false,
                reasons::CERTIFICATE_INVALID,
                format!(
                    "Secret {}: {p}; no new restore starts until it is fixed",
                    r.name
                ),
            );
            c.requeue_in(Duration::from_secs(60));
            None
        }
    }
}

#[cfg(test)]
mod tests;

/// `<target>.<header>` of every notification header that is neither a string nor a `secretKeyRef`.
fn invalid_headers(spec: &pgro_api::PostgresPhysicalReplicaSpec) -> Vec<String> {
    spec.notifications
        .iter()
        .enumerate()
        .flat_map(|(i, n)| {
            let target = crate::operator::notify::target_name(n, i);
            n.headers
                .iter()
                .flatten()
                .filter(|(_, v)| matches!(v, pgro_api::HeaderValue::Invalid(_)))
                .map(move |(h, _)| format!("{target}.{h}"))
                .collect::<Vec<_>>()
        })
        .collect()
}
