//! Condition types, condition reasons and event reasons (behaviour A5, O2). Reasons are `UpperCamelCase`
//! constants so controllers, tests and alerts share one spelling.

/// Condition `type` values.
pub mod condition_types {
    /// Replica and restore: the object is serving (replica) or ready for switchover (restore).
    pub const READY: &str = "Ready";
    /// Replica: the Kopia Secret exists, has every key, and opens the repository.
    pub const KOPIA_SECRET_VALID: &str = "KopiaSecretValid";
    /// Replica (+): the backup source named by `spec.source` is usable: its Secret exists and is complete,
    /// the repository is reachable, opens and holds a backup. `KopiaSecretValid` still reports on Kopia.
    pub const SOURCE_VALID: &str = "SourceValid";
    /// Replica: `spec.schedule` parses.
    pub const SCHEDULE_VALID: &str = "ScheduleValid";
    /// Replica (+), only with `spec.tls.certificateSecretRef`: the Secret exists, has `tls.crt`, `tls.key`
    /// and `ca.crt`, and its certificate is current and names `<replica>.<namespace>.svc`.
    pub const TLS_CERTIFICATE_VALID: &str = "TlsCertificateValid";
    /// Replica: a snapshot matches `spec.snapshotFilter`.
    pub const SNAPSHOT_AVAILABLE: &str = "SnapshotAvailable";
    /// Replica: scheduling stopped after consecutive failures.
    pub const RESTORE_SCHEDULING_SUSPENDED: &str = "RestoreSchedulingSuspended";
    /// Replica: the computed PVC size is within `spec.storageSizeMaximum`.
    pub const STORAGE_WITHIN_LIMIT: &str = "StorageWithinLimit";
    /// Replica (+): a due restore waits because the replica already has three restores outside `Failed`
    /// (each a full copy on its own volume: active, outgoing in its grace period, and a new one).
    pub const RESTORE_DEFERRED: &str = "RestoreDeferred";
    /// Replica (+): every notification header has a valid shape.
    pub const NOTIFICATIONS_VALID: &str = "NotificationsValid";
    /// Restore: the restore Job copied the snapshot.
    pub const RESTORED: &str = "Restored";
    /// Restore: the restore failed.
    pub const FAILED: &str = "Failed";
    /// Restore (+, restic sources): every statement of the logical dump ran (`False`: some failed and the
    /// copy serves anyway, `failOnErrors: false`).
    pub const DUMP_REPLAYED: &str = "DumpReplayed";
    /// Restore (+): the checks of `spec.verification` passed (`Unknown` while they run; `False`: one
    /// failed and the restore failed with it).
    pub const VERIFIED: &str = "Verified";
}

/// Condition `reason` values.
pub mod condition_reasons {
    /// `KopiaSecretValid=False`, `SourceValid=False`: the Secret does not exist.
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    /// `KopiaSecretValid=False`, `SourceValid=False`: a required key is missing or a value is malformed.
    pub const SECRET_INVALID: &str = "SecretInvalid";
    /// `TlsCertificateValid`: the brought certificate is usable.
    pub const CERTIFICATE_VALID: &str = "CertificateValid";
    /// `TlsCertificateValid`: the brought certificate is expired or does not name the Service.
    pub const CERTIFICATE_INVALID: &str = "CertificateInvalid";
    /// `SourceValid=False`: the repository's storage cannot be reached.
    pub const REPOSITORY_UNREACHABLE: &str = "RepositoryUnreachable";
    /// `SourceValid=False`: the password or cipher passphrase does not decrypt the repository.
    pub const WRONG_PASSWORD: &str = "WrongPassword";
    /// `SourceValid=False`: the repository's format (or the source kind) is not one this build reads.
    pub const UNSUPPORTED_REPOSITORY: &str = "UnsupportedRepository";
    /// `SourceValid=False`: the repository opened but holds no backup to restore.
    pub const NO_BACKUP: &str = "NoBackup";
    /// `KopiaSecretValid=False`: the repository password does not decrypt the repository.
    pub const REPOSITORY_PASSWORD_INVALID: &str = "RepositoryPasswordInvalid";
    /// `RestoreDeferred=True`: three restores of the replica exist outside `Failed`.
    pub const LIVE_RESTORE_LIMIT: &str = "LiveRestoreLimit";
    /// `RestoreDeferred=False`.
    pub const NOT_DEFERRED: &str = "NotDeferred";
    /// `NotificationsValid=True`.
    pub const NOTIFICATIONS_VALID: &str = "NotificationsValid";
    /// `NotificationsValid=False`: a header is neither a string nor a `secretKeyRef`.
    pub const INVALID_HEADER: &str = "InvalidHeader";
    /// `KopiaSecretValid=False`: the storage cannot be reached.
    pub const STORAGE_UNREACHABLE: &str = "StorageUnreachable";
    /// `KopiaSecretValid=False`: the repository opened but cannot be used (not a Kopia repository, corrupt
    /// or unsupported format, locked for an upgrade).
    pub const REPOSITORY_UNUSABLE: &str = "RepositoryUnusable";
    /// `KopiaSecretValid=True`.
    pub const REPOSITORY_OPENED: &str = "RepositoryOpened";
    /// `ScheduleValid=True`.
    pub const SCHEDULE_PARSED: &str = "ScheduleParsed";
    /// `ScheduleValid=False`.
    pub const INVALID_SCHEDULE: &str = "InvalidSchedule";
    /// `SnapshotAvailable=True`.
    pub const SNAPSHOT_FOUND: &str = "SnapshotFound";
    /// `SnapshotAvailable=False`.
    pub const NO_MATCHING_SNAPSHOTS: &str = "NoMatchingSnapshots";
    /// `RestoreSchedulingSuspended=True`.
    pub const CONSECUTIVE_FAILURES: &str = "ConsecutiveFailures";
    /// `RestoreSchedulingSuspended=False`.
    pub const SCHEDULING_ACTIVE: &str = "SchedulingActive";
    /// `StorageWithinLimit=False`.
    pub const STORAGE_LIMIT_EXCEEDED: &str = "StorageLimitExceeded";
    /// `StorageWithinLimit=True`.
    pub const STORAGE_SIZE_OK: &str = "StorageSizeOk";
    /// Replica `Ready=True`: an active restore serves.
    pub const ACTIVE_RESTORE_SERVING: &str = "ActiveRestoreServing";
    /// Replica `Ready=False`: nothing serves yet.
    pub const NO_ACTIVE_RESTORE: &str = "NoActiveRestore";
    /// Restore `Restored=True`.
    pub const RESTORE_JOB_COMPLETED: &str = "RestoreJobCompleted";
    /// Restore `Restored=False`: the restore Job is copying the snapshot.
    pub const RESTORE_JOB_RUNNING: &str = "RestoreJobRunning";
    /// Restore `Failed=True`: the restore Job failed (the message says why).
    pub const RESTORE_JOB_FAILED: &str = "RestoreJobFailed";
    /// Restore `Failed=True`: the Job ran past its deadline.
    pub const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
    /// Restore `Failed=True`: the snapshot holds no PostgreSQL data directory.
    pub const NO_PGDATA: &str = "NoPgdata";
    /// Restore `Failed=True`: the persistent schema migration into it failed after its retries.
    pub const SCHEMA_MIGRATION_FAILED: &str = "SchemaMigrationFailed";
    /// Restore `Failed=True`: PostgreSQL did not become ready in time.
    pub const READY_TIMEOUT: &str = "ReadyTimeout";
    /// Restore `Ready=True`.
    pub const POSTGRES_READY: &str = "PostgresReady";
    /// Restore `Ready=False`.
    pub const POSTGRES_NOT_READY: &str = "PostgresNotReady";
    /// Restore `DumpReplayed=True`: every statement of the dump ran.
    pub const ALL_STATEMENTS_RAN: &str = "AllStatementsRan";
    /// Restore `DumpReplayed=False`, or `Failed=True` with `failOnErrors`: statements of the dump failed.
    pub const STATEMENTS_FAILED: &str = "StatementsFailed";
    /// `Verified=Unknown`: the checks run.
    pub const CHECKS_RUNNING: &str = "ChecksRunning";
    /// `Verified=True`: every check passed.
    pub const CHECKS_PASSED: &str = "ChecksPassed";
    /// `Verified=False`, `Failed=True`: a check failed.
    pub const VERIFICATION_FAILED: &str = "VerificationFailed";
}

/// Annotation on a restore whose `_pgro.restore_info.stage` was set to `outgoing` after a switchover.
pub const ANNOTATION_OUTGOING: &str = "pgro.bes.au/outgoing";

/// Event `reason` values (behaviour O2), recorded on the replica.
pub mod event_reasons {
    /// A restore was created.
    pub const RESTORE_STARTED: &str = "RestoreStarted";
    /// A restore became active (switchover).
    pub const RESTORE_COMPLETED: &str = "RestoreCompleted";
    /// A restore failed.
    pub const RESTORE_FAILED: &str = "RestoreFailed";
    /// A scheduled restore was skipped (minimum TTL, same snapshot).
    pub const RESTORE_SKIPPED: &str = "RestoreSkipped";
    /// (+) A due restore waits for an outgoing restore to be deleted (`RestoreDeferred=True`).
    pub const RESTORE_DEFERRED: &str = "RestoreDeferred";
    /// A persistent-schema migration had statement errors.
    pub const SCHEMA_MIGRATION_PARTIAL: &str = "SchemaMigrationPartial";
    /// A persistent-schema migration copied every schema it found (the note lists them and any skipped).
    pub const SCHEMA_MIGRATION_COMPLETED: &str = "SchemaMigrationCompleted";
    /// A persistent-schema migration ran out of time.
    pub const SCHEMA_MIGRATION_TIMED_OUT: &str = "SchemaMigrationTimedOut";
    /// The computed PVC size exceeds the maximum.
    pub const STORAGE_LIMIT_EXCEEDED: &str = "StorageLimitExceeded";
    /// On a restore: recovery could not reach a consistent state, so the instance reset the WAL
    /// (`pg_resetwal -f`) and rebuilt every index; the data may be inconsistent (behaviour I1).
    pub const RECOVERY_FALLBACK: &str = "RecoveryFallback";
    /// On a restore (+): statements of its logical dump failed and it serves anyway (`failOnErrors: false`).
    pub const DUMP_STATEMENTS_FAILED: &str = "DumpStatementsFailed";
    /// On a restore: a database's locale is not available in the image and was switched (behaviour I6).
    pub const LOCALE_SWITCHED: &str = "LocaleSwitched";
    /// Warning on a restore (+): a verification check failed, so the restore failed.
    pub const VERIFICATION_FAILED: &str = "VerificationFailed";
    /// A reconcile failed (an API or PostgreSQL error, not a problem of the spec); it is retried.
    pub const RECONCILE_FAILED: &str = "ReconcileFailed";
}
