//! [`Reader`]: an opened source, whatever wrote it. Listing its backups gives the same
//! [`SnapshotInfo`] for every kind — the shape the operator's choice of a backup (R3), `pgro backups list`
//! and the restore's status read — so adding a source means adding a variant here, not a code path in
//! each command. Restoring and WAL fetch stay per kind below the variant (a Kopia snapshot restores a file
//! tree, a pgBackRest backup a data directory plus recovery settings), reached through the same value.

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
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Kopia(_) => "Reader::Kopia",
            Self::Pgbackrest(_) => "Reader::Pgbackrest",
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
}

impl OpenError {
    /// The exit class (`pgro` exit codes, restore failure reasons).
    #[must_use]
    pub fn failure(&self) -> Failure {
        match self {
            Self::Config(_) => Failure::Usage,
            Self::Kopia(e) => e.failure(),
            Self::Pgbackrest(e) => Failure::of_pgbackrest(e),
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
        }
    }

    /// The backups, oldest first: every snapshot manifest of a Kopia repository, every backup set in a
    /// pgBackRest stanza's `backup.info` (host = stanza, path = `repoPath`).
    ///
    /// # Errors
    /// Listing Kopia's manifests fails (pgBackRest's `backup.info` was read when the stanza was opened).
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
        }
    }

    /// The pgBackRest stanza behind a source that must have a WAL archive.
    ///
    /// # Errors
    /// The source is Kopia's (no WAL archive).
    pub fn into_pgbackrest(self) -> Result<Box<pgbackrest::Repository>, OpenError> {
        match self {
            Self::Pgbackrest(r) => Ok(r),
            Self::Kopia(_) => Err(OpenError::Config(SourceError(
                "a Kopia source has no WAL archive: this reads pgBackRest sources".into(),
            ))),
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
