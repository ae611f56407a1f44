//! [`Reader`]: an opened source, whatever wrote it. Listing its backups gives the same
//! [`SnapshotInfo`] for every kind — the shape the operator's choice of a backup (R3), `pgro backups list`
//! and the restore's status read — so adding a source means adding a variant here, not a code path in
//! each command. Restoring and WAL fetch stay per kind below the variant (a Kopia snapshot restores a file
//! tree, a pgBackRest or barman-cloud backup a data directory plus recovery settings), reached through the
//! same value; WAL goes through [`super::wal::WalArchive`].

use crate::cli::exit::Failure;
use crate::cli::repository::RepositoryError;
use crate::operator::snapshots::SnapshotInfo;

use super::open::SourceError;

/// An opened source.
pub enum Reader {
    /// A Kopia repository (`source.kopia`, or `kopiaSecretRef`).
    Kopia(Box<kopia::Repository<kopia::Indexed>>),
    /// A pgBackRest stanza.
    Pgbackrest(Box<pgbackrest::Repository>),
    /// A barman-cloud server directory, listed when opened.
    Barman(Box<BarmanServer>),
    /// A restic repository of logical dumps, its snapshots listed when opened.
    Restic(Box<ResticDumps>),
}

/// A restic repository of logical dumps: the opened repository and its snapshots.
#[derive(Debug)]
pub struct ResticDumps {
    /// The repository (shared with the streams reading it).
    pub repo: std::sync::Arc<restic::Repository>,
    /// Its snapshots, oldest first.
    pub snapshots: Vec<restic::Snapshot>,
    /// The repository URL, shown as each backup's path when a snapshot has none.
    pub url: String,
    /// The dump's path in each snapshot (`fileName`).
    pub file_name: String,
}

/// A barman-cloud server: its catalog and the listing made when it was opened.
#[derive(Debug)]
pub struct BarmanServer {
    /// Reads the server's directory.
    pub catalog: barman::Catalog,
    /// Its backups (any status) as listed.
    pub listing: barman::Listing,
    /// `destinationPath`, shown as each backup's path.
    pub destination: String,
    /// `serverName`, shown as each backup's host.
    pub server: String,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Kopia(_) => "Reader::Kopia",
            Self::Pgbackrest(_) => "Reader::Pgbackrest",
            Self::Barman(_) => "Reader::Barman",
            Self::Restic(_) => "Reader::Restic",
        })
    }
}

/// Why opening or reading a source failed: configuration (nothing to retry) or the repository itself.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The source or Secret is unusable as given.
    #[error(transparent)]
    Config(SourceError),
    /// The Kopia repository refused or could not be read.
    #[error(transparent)]
    Kopia(#[from] RepositoryError),
    /// The pgBackRest repository refused or could not be read.
    #[error(transparent)]
    Pgbackrest(#[from] pgbackrest::Error),
    /// The barman-cloud server directory could not be listed.
    #[error(transparent)]
    Barman(#[from] barman::ListError),
    /// The restic repository refused or could not be read.
    #[error(transparent)]
    Restic(#[from] restic::Error),
}

impl OpenError {
    /// The exit class (`pgro` exit codes, restore failure reasons).
    #[must_use]
    pub fn failure(&self) -> Failure {
        match self {
            Self::Config(_) => Failure::Usage,
            Self::Kopia(e) => e.failure(),
            Self::Pgbackrest(e) => Failure::of_pgbackrest(e),
            Self::Barman(e) => Failure::of_barman(e),
            Self::Restic(e) => Failure::of_restic(e),
        }
    }

    /// The message with its causes, one line.
    #[must_use]
    pub fn message(&self) -> String {
        match self {
            Self::Config(e) => e.0.clone(),
            _ => crate::cli::kopia::error_chain(self),
        }
    }
}

impl Reader {
    /// `status.source` of a restore from it.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kopia(_) => "kopia",
            Self::Pgbackrest(_) => "pgbackrest",
            Self::Barman(_) => "barmanCloud",
            Self::Restic(_) => "restic",
        }
    }

    /// The backups, oldest first: every snapshot manifest of a Kopia repository, every backup set in a
    /// pgBackRest stanza's `backup.info` (host = stanza, path = `repoPath`), every backup of a
    /// barman-cloud server (host = `serverName`, path = `destinationPath`; DONE ones with their size
    /// estimated from their tars).
    ///
    /// # Errors
    /// Listing Kopia's manifests or a barman backup's tars fails (pgBackRest's `backup.info` and
    /// barman's `backup.info` files were read when the source was opened).
    pub async fn backups(&self, repo_path: &str) -> Result<Vec<SnapshotInfo>, OpenError> {
        match self {
            Self::Kopia(r) => {
                let mut snaps = r
                    .list_snapshots()
                    .await
                    .map_err(|e| OpenError::Kopia(RepositoryError::Kopia(e)))?;
                snaps.sort_by_key(|s| s.start_time);
                Ok(snaps.iter().map(SnapshotInfo::from_manifest).collect())
            }
            Self::Pgbackrest(r) => Ok(r
                .backups()
                .iter()
                .map(|b| pgbackrest_backup(b, r.stanza(), repo_path))
                .collect()),
            Self::Barman(s) => {
                use futures::StreamExt as _;
                // Each restorable backup's size is estimated from its tars (one listing each).
                // Owned per item: a closure borrowing `s` makes the operator's futures fail `Send`'s
                // higher-ranked check.
                let (server, destination) = (s.server.clone(), s.destination.clone());
                let catalog = s.catalog.clone();
                futures::stream::iter(s.listing.backups.clone())
                    .map(move |b| {
                        let mut info = barman_backup(&b, &server, &destination);
                        let catalog = catalog.clone();
                        async move {
                            if !info.incomplete {
                                info.total_size = catalog.estimated_size(&b.id).await?;
                            }
                            Ok(info)
                        }
                    })
                    .buffered(8)
                    .collect::<Vec<Result<SnapshotInfo, barman::ListError>>>()
                    .await
                    .into_iter()
                    .collect::<Result<_, _>>()
                    .map_err(OpenError::Barman)
            }
            Self::Restic(r) => Ok(r
                .snapshots
                .iter()
                .map(|s| restic_backup(s, &r.url))
                .collect()),
        }
    }

    /// How many backups the source lists (any status).
    #[must_use]
    pub fn count(&self) -> Option<usize> {
        match self {
            Self::Kopia(_) => None,
            Self::Pgbackrest(r) => Some(r.backups().len()),
            Self::Barman(s) => Some(s.listing.backups.len()),
            Self::Restic(r) => Some(r.snapshots.len()),
        }
    }

    /// The newest backup a restore of `latest` takes: pgBackRest's newest set of the current database,
    /// barman-cloud's newest `DONE` backup (its size estimated from its tars), restic's newest snapshot
    /// (the operator applies `snapshotFilter` to [`Reader::backups`] instead); `None` for Kopia (its
    /// choice applies `snapshotFilter`).
    ///
    /// # Errors
    /// Listing the barman-cloud backup's tars fails.
    pub async fn latest(&self, repo_path: &str) -> Result<Option<SnapshotInfo>, OpenError> {
        match self {
            Self::Kopia(_) => Ok(None),
            Self::Pgbackrest(r) => Ok(r
                .latest()
                .map(|b| pgbackrest_backup(b, r.stanza(), repo_path))),
            Self::Barman(s) => {
                let Some(b) = s.listing.latest() else {
                    return Ok(None);
                };
                let mut info = barman_backup(b, &s.server, &s.destination);
                info.total_size = s.catalog.estimated_size(&b.id).await?;
                Ok(Some(info))
            }
            Self::Restic(r) => Ok(r.snapshots.last().map(|s| restic_backup(s, &r.url))),
        }
    }

    /// The pgBackRest stanza behind a source that must have a WAL archive.
    ///
    /// # Errors
    /// The source is Kopia's (no WAL archive).
    pub fn into_pgbackrest(self) -> Result<Box<pgbackrest::Repository>, OpenError> {
        match self {
            Self::Pgbackrest(r) => Ok(r),
            _ => Err(OpenError::Config(SourceError(format!(
                "a {} source is not a pgBackRest stanza",
                self.kind()
            )))),
        }
    }
}

/// A pgBackRest backup set as the operator and `pgro backups list` see it: ID = label; its time is the
/// backup's **end** (the newest data it alone makes consistent); its type in the description; its
/// annotations as tags.
#[must_use]
pub fn pgbackrest_backup(
    b: &pgbackrest::BackupEntry,
    stanza: &str,
    repo_path: &str,
) -> SnapshotInfo {
    let end = jiff::Timestamp::from_second(b.timestamp_stop).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    SnapshotInfo {
        id: b.label.clone(),
        host: stanza.to_owned(),
        user_name: String::new(),
        path: repo_path.to_owned(),
        description: b.kind.as_str().to_owned(),
        start_time: end,
        end_time: Some(end),
        tags: b.annotations.clone(),
        incomplete: false,
        total_size: b.size,
    }
}

/// A barman-cloud backup as the operator and `pgro backups list` see it: ID = backup ID; its time is
/// `end_time` (`pg_backup_stop`); host = `serverName`, path = `destinationPath`; its status is the
/// description, CNPG's `backup_name` the tag `name`; anything but `DONE` is incomplete (never chosen).
#[must_use]
pub fn barman_backup(b: &barman::Backup, server: &str, destination: &str) -> SnapshotInfo {
    let end = b.info.end_time.or(b.info.begin_time);
    let status = match &b.info.status {
        barman::BackupStatus::Done => "DONE",
        barman::BackupStatus::Started => "STARTED",
        barman::BackupStatus::Failed => "FAILED",
        barman::BackupStatus::Other(s) => s.as_str(),
    };
    SnapshotInfo {
        id: b.id.clone(),
        host: server.to_owned(),
        user_name: String::new(),
        path: destination.to_owned(),
        description: status.to_owned(),
        start_time: end.unwrap_or(jiff::Timestamp::UNIX_EPOCH),
        end_time: end,
        tags: b
            .info
            .name
            .iter()
            .map(|n| ("name".to_owned(), n.clone()))
            .collect(),
        incomplete: !b.info.restorable(),
        total_size: b.info.size.unwrap_or(0),
    }
}

/// What replaying a dump of `dump_bytes` writes at its peak: the data, measured at 1.25× the dump (a
/// 1.22 GB `pg_dumpall` became 1,454 MiB of `base/`; indexes exist only as statements in a dump), plus
/// the WAL the bulk load keeps (1,025 MiB there: PostgreSQL's default `max_wal_size`); 2,555 MiB at the
/// peak in all. Estimated as 1.5× + 1 GiB, which the PVC sizing then raises by 10%.
#[must_use]
pub fn restored_estimate(dump_bytes: u64) -> u64 {
    dump_bytes.saturating_mul(3) / 2 + (1 << 30)
}

/// A restic snapshot as the operator and `pgro backups list` see it: ID = the full snapshot ID; its time is
/// the backup's start (when the dump began, so the data's time); host = `--host` (KubeStash: `host-0`),
/// path = its first path; tags `key:value` or `key=value` as key and value, a plain tag as a key with an
/// empty value; size = what the replay writes ([`restored_estimate`] of the dump's bytes), which sizes
/// the restore's volume.
#[must_use]
pub fn restic_backup(s: &restic::Snapshot, url: &str) -> SnapshotInfo {
    SnapshotInfo {
        id: s.id.hex(),
        host: s.hostname.clone(),
        user_name: s.username.clone(),
        path: s.paths.first().cloned().unwrap_or_else(|| url.to_owned()),
        description: String::new(),
        start_time: s.time,
        end_time: Some(s.end),
        tags: s
            .tags
            .iter()
            .map(|t| match t.split_once([':', '=']) {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (t.clone(), String::new()),
            })
            .collect(),
        incomplete: false,
        total_size: restored_estimate(s.bytes.unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restic_snapshot_is_matched_by_host_path_and_tags() {
        let t: jiff::Timestamp = "2026-12-06T04:00:00Z".parse().expect("time");
        let s = restic::Snapshot {
            id: restic::Id([7; 32]),
            time: t,
            end: t,
            hostname: "host-0".into(),
            username: "root".into(),
            paths: vec!["/dumpfile.sql".into()],
            tags: vec!["env:prod".into(), "team=data".into(), "nightly".into()],
            bytes: Some(123),
            tree: restic::Id([8; 32]),
        };
        let info = restic_backup(&s, "s3:http://minio/b/p");
        assert_eq!(info.id, "07".repeat(32));
        assert_eq!(
            (info.host.as_str(), info.path.as_str()),
            ("host-0", "/dumpfile.sql")
        );
        assert_eq!(
            info.total_size,
            184 + (1 << 30),
            "1.5× the dump plus the WAL headroom"
        );
        let filter = |yaml: &str| {
            let f: pgro_api::SnapshotFilter = serde_yaml::from_str(yaml).expect("filter");
            crate::operator::snapshots::CompiledFilter::new(Some(&f))
                .expect("compiles")
                .matches(&info)
        };
        assert!(filter(
            "{hostPattern: host-0, pathPattern: /dumpfile.sql, tags: {env: prod, team: data, nightly: ''}}"
        ));
        assert!(!filter("{hostPattern: host-1}"));
        assert!(!filter("{tags: {env: staging}}"));
    }
}
