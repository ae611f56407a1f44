//! A repository stanza opened for reading: info files loaded with their `.copy` fallback (§2.3), decrypted
//! along the passphrase chain (§5.2).

use std::sync::Arc;

use blobstore::BlobStore;

use crate::cipher::{self, Framing};
use crate::error::Error;
use crate::info::{self, ArchiveInfo, BackupEntry, BackupInfo};
use crate::ini::Ini;
use crate::manifest::{self, Manifest};

/// Info files are small; anything far larger is not one.
const INFO_LIMIT: u64 = 1 << 30;

/// A stanza of a pgBackRest repository. The store's root is the repository path (`repo1-path`).
#[derive(Debug, Clone)]
pub struct Repository {
    store: Arc<dyn BlobStore>,
    stanza: String,
    pass: Option<String>,
    backup_info: BackupInfo,
}

/// Which passphrase level an info file is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// `backup.info`, `archive.info`: the user's `repoN-cipher-pass`.
    User,
    /// A manifest: `backup.info`'s sub-passphrase.
    Sub,
}

impl Repository {
    /// Opens `stanza`: loads and verifies `backup/<stanza>/backup.info`. `pass` is the user's
    /// `repoN-cipher-pass`; an unencrypted repository ignores it, as pgBackRest does.
    ///
    /// # Errors
    /// The stanza has no `backup.info` (or copy), it does not verify, or it is encrypted and `pass` is
    /// missing or wrong.
    pub async fn open(
        store: Arc<dyn BlobStore>,
        stanza: &str,
        pass: Option<&str>,
    ) -> Result<Self, Error> {
        if stanza.is_empty() || stanza.contains('/') || stanza.starts_with('.') {
            return Err(Error::InvalidArgument(format!(
                "{stanza:?} is not a stanza name"
            )));
        }
        let key = format!("backup/{stanza}/backup.info");
        let ini = load_info(&*store, &key, pass, Level::User).await?;
        let backup_info = info::backup_info(&ini).map_err(|e| Error::corrupted(&key, e))?;
        Ok(Self {
            store,
            stanza: stanza.to_owned(),
            pass: pass.map(str::to_owned),
            backup_info,
        })
    }

    /// Opens `stanza` for its WAL archive only: loads `archive/<stanza>/archive.info` and not `backup.info`
    /// (one GET fewer per `restore_command` call). The returned repository lists no backups.
    ///
    /// # Errors
    /// As [`Repository::open`], for `archive.info`.
    pub async fn open_archive(
        store: Arc<dyn BlobStore>,
        stanza: &str,
        pass: Option<&str>,
    ) -> Result<(Self, ArchiveInfo), Error> {
        if stanza.is_empty() || stanza.contains('/') || stanza.starts_with('.') {
            return Err(Error::InvalidArgument(format!(
                "{stanza:?} is not a stanza name"
            )));
        }
        let repo = Self {
            store,
            stanza: stanza.to_owned(),
            pass: pass.map(str::to_owned),
            backup_info: BackupInfo::default(),
        };
        let archive = repo.archive_info().await?;
        Ok((repo, archive))
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn BlobStore> {
        &self.store
    }

    /// The stanza.
    #[must_use]
    pub fn stanza(&self) -> &str {
        &self.stanza
    }

    /// `backup.info`.
    #[must_use]
    pub fn backup_info(&self) -> &BackupInfo {
        &self.backup_info
    }

    /// Backups, oldest first.
    #[must_use]
    pub fn backups(&self) -> &[BackupEntry] {
        &self.backup_info.backups
    }

    /// The newest backup of the current database (pgBackRest's default choice), or `None`.
    #[must_use]
    pub fn latest(&self) -> Option<&BackupEntry> {
        self.backups()
            .iter()
            .rev()
            .find(|b| b.db_id == self.backup_info.db.id)
    }

    /// Key of `rest` inside backup `label`'s directory.
    #[must_use]
    pub fn backup_key(&self, label: &str, rest: &str) -> String {
        format!("backup/{}/{label}/{rest}", self.stanza)
    }

    /// Loads and verifies the manifest of `label`, which must be listed in `backup.info`.
    ///
    /// # Errors
    /// The label is not a current backup, the manifest (and its copy) cannot be loaded, or it uses the 2.45
    /// beta block-incremental format.
    pub async fn manifest(&self, label: &str) -> Result<Manifest, Error> {
        if !self.backups().iter().any(|b| b.label == label) {
            return Err(Error::NotFound(format!(
                "backup {label} is not in backup/{}/backup.info (current backups: {})",
                self.stanza,
                self.backups()
                    .iter()
                    .map(|b| b.label.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let key = self.backup_key(label, "backup.manifest");
        let pass = self.backup_info.cipher_pass.as_deref();
        let ini = load_info(&*self.store, &key, pass, Level::Sub).await?;
        let m = manifest::parse(&ini).map_err(|e| Error::corrupted(&key, e))?;
        if m.label != label {
            return Err(Error::corrupted(
                &key,
                format!("it describes backup {}", m.label),
            ));
        }
        if m.has_beta_block_incremental() {
            return Err(Error::Unsupported(format!(
                "backup {label} uses block incremental as written by pgBackRest {} (a beta whose map format \
                 changed in 2.46); take a new full backup with pgBackRest 2.46 or later",
                m.writer_version
            )));
        }
        Ok(m)
    }

    /// Loads and verifies `archive/<stanza>/archive.info`.
    ///
    /// # Errors
    /// As for [`Repository::open`].
    pub async fn archive_info(&self) -> Result<ArchiveInfo, Error> {
        let key = format!("archive/{}/archive.info", self.stanza);
        let ini = load_info(&*self.store, &key, self.pass.as_deref(), Level::User).await?;
        info::archive_info(&ini).map_err(|e| Error::corrupted(&key, e))
    }
}

/// Loads an info file, falling back to `<key>.copy` on any failure of the file itself.
async fn load_info(
    store: &dyn BlobStore,
    key: &str,
    pass: Option<&str>,
    level: Level,
) -> Result<Ini, Error> {
    match load_one(store, key, pass, level).await {
        Ok(ini) => Ok(ini),
        Err(primary) => {
            let copy_key = format!("{key}.copy");
            match load_one(store, &copy_key, pass, level).await {
                Ok(ini) => {
                    tracing::warn!(key, error = %crate::error_chain(&primary), "info file unusable; its .copy is used");
                    Ok(ini)
                }
                Err(copy) => Err(Error::InfoFile {
                    key: key.to_owned(),
                    primary: Box::new(primary),
                    copy: Box::new(copy),
                }),
            }
        }
    }
}

async fn load_one(
    store: &dyn BlobStore,
    key: &str,
    pass: Option<&str>,
    level: Level,
) -> Result<Ini, Error> {
    let data = store.get(key).await.map_err(|e| Error::storage(key, e))?;
    if data.len() as u64 > INFO_LIMIT {
        return Err(Error::corrupted(key, "larger than any info file"));
    }
    let encrypted = cipher::looks_encrypted(&data);
    let wrong = |reason: String| Error::WrongPassword {
        file: key.to_owned(),
        reason,
    };
    let plain = match (encrypted, pass, level) {
        (false, None, _) | (false, Some(_), Level::User) => data.to_vec(),
        (false, Some(_), Level::Sub) => {
            return Err(Error::corrupted(
                key,
                "not encrypted in an encrypted repository",
            ));
        }
        (true, None, Level::User) => {
            return Err(wrong(
                "the repository is encrypted (aes-256-cbc): give its cipher passphrase (repoN-cipher-pass)".into(),
            ));
        }
        (true, None, Level::Sub) => {
            return Err(Error::corrupted(
                key,
                "encrypted in an unencrypted repository",
            ));
        }
        (true, Some(p), level) => match cipher::decrypt(&data, p.as_bytes(), Framing::Normal) {
            Ok(p) => p,
            Err(e) if level == Level::User => {
                return Err(wrong(format!(
                    "the cipher passphrase does not decrypt it ({e}); check repoN-cipher-pass"
                )));
            }
            Err(e) => return Err(Error::corrupted(key, e)),
        },
    };
    let text = match String::from_utf8(plain) {
        Ok(t) => t,
        Err(_) if encrypted && level == Level::User => {
            return Err(wrong("the cipher passphrase does not decrypt it".into()));
        }
        Err(_) => return Err(Error::corrupted(key, "not UTF-8 text")),
    };
    let ini = Ini::parse(&text).map_err(|e| Error::corrupted(key, e))?;
    ini.verify().map_err(|e| Error::corrupted(key, e))?;
    Ok(ini)
}

#[cfg(test)]
mod tests;
