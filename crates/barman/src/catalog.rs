//! The backups of one server in a store (barman-restic-format.md A2, "Listing algorithm"): every
//! `<server>/base/<backup_id>/` prefix is a backup, described by its `backup.info`. Keys are relative to
//! the store's root, which is `destinationPath`'s path.

use std::sync::Arc;

use blobstore::BlobStore;
use futures::StreamExt as _;

use crate::info::BackupInfo;

/// `backup.info` files read at once while listing.
const PARALLEL_INFO_READS: usize = 8;

/// One server's catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    store: Arc<dyn BlobStore>,
    server: String,
}

/// A backup and its `backup.info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// `YYYYMMDDThhmmss` (the directory name; sorts chronologically).
    pub id: String,
    /// Its `backup.info`.
    pub info: BackupInfo,
}

/// What listing found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Backups with a readable `backup.info`, oldest first (any status).
    pub backups: Vec<Backup>,
    /// Backup directories whose `backup.info` is missing or unreadable, with why (barman skips them too).
    pub unreadable: Vec<(String, String)>,
}

impl Listing {
    /// The newest backup a restore may use ([`BackupInfo::restorable`]: `DONE`; STARTED and FAILED are
    /// passed over).
    #[must_use]
    pub fn latest(&self) -> Option<&Backup> {
        self.backups.iter().rev().find(|b| b.info.restorable())
    }
}

/// Listing failed.
#[derive(Debug, thiserror::Error)]
#[error("listing {prefix} failed")]
pub struct ListError {
    /// The prefix listed.
    pub prefix: String,
    /// The store's error.
    #[source]
    pub source: blobstore::Error,
}

/// `^\d{8}T\d{6}$` (`barman.utils.is_backup_id`).
#[must_use]
pub fn is_backup_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 15 && b[8] == b'T' && b[..8].iter().chain(&b[9..]).all(u8::is_ascii_digit)
}

impl Catalog {
    /// The catalog of `server` (CNPG's `serverName`) in `store`.
    #[must_use]
    pub fn new(store: Arc<dyn BlobStore>, server: &str) -> Self {
        Self {
            store,
            server: server.trim_matches('/').to_owned(),
        }
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn BlobStore> {
        &self.store
    }

    /// The key of `rest` under the server.
    #[must_use]
    pub fn key(&self, rest: &str) -> String {
        format!("{}/{rest}", self.server)
    }

    /// Lists the backups: one listing of `base/`, then every `backup.info` (a few at a time).
    ///
    /// # Errors
    /// The listing itself fails (a `backup.info` that cannot be read only lands in
    /// [`Listing::unreadable`]).
    pub async fn backups(&self) -> Result<Listing, ListError> {
        let prefix = self.key("base/");
        let dirs = self
            .store
            .list_dir(&prefix)
            .await
            .map_err(|source| ListError {
                prefix: prefix.clone(),
                source,
            })?;
        let mut ids: Vec<String> = dirs
            .prefixes
            .iter()
            .filter_map(|p| p.strip_prefix(&prefix)?.strip_suffix('/'))
            .filter(|id| is_backup_id(id))
            .map(str::to_owned)
            .collect();
        ids.sort();
        let read = futures::stream::iter(ids)
            .map(|id| async move {
                let key = self.key(&format!("base/{id}/backup.info"));
                let info = match self.store.get(&key).await {
                    Ok(bytes) => match std::str::from_utf8(&bytes) {
                        Ok(text) => BackupInfo::parse(text).map_err(|e| e.to_string()),
                        Err(_) => Err("backup.info is not UTF-8".to_owned()),
                    },
                    Err(e) => Err(blobstore::error_chain(&e)),
                };
                (id, info)
            })
            .buffered(PARALLEL_INFO_READS)
            .collect::<Vec<_>>()
            .await;
        let mut out = Listing::default();
        for (id, info) in read {
            match info {
                Ok(info) => out.backups.push(Backup { id, info }),
                Err(why) => out.unreadable.push((id, why)),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
