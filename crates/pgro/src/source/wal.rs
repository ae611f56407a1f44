//! The WAL side of the seam: a source's archive opened for one data directory (whose `pg_control` names
//! the cluster), finding WAL files by name — a batch of consecutive segments at once — and streaming one
//! into a file. What `pgro wal-fetch` and the pod's first-segment check use, whatever wrote the archive.
//!
//! pgBackRest picks the archive directory matching the cluster's system identifier and version from
//! `archive.info`, and checks each segment's SHA-1; barman-cloud has one archive per server directory, so
//! each segment's first page is checked against the cluster's system identifier instead.

use std::path::Path;

use super::open::{OpenError, SourceArgs, SourceError};

/// An opened WAL archive.
pub enum WalArchive {
    /// A pgBackRest stanza's archive.
    Pgbackrest {
        repo: Box<pgbackrest::Repository>,
        info: pgbackrest::ArchiveInfo,
        system_id: u64,
        version: String,
    },
    /// A barman-cloud server's `wals/`.
    Barman {
        catalog: barman::Catalog,
        system_id: u64,
    },
}

impl std::fmt::Debug for WalArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pgbackrest { .. } => "WalArchive::Pgbackrest",
            Self::Barman { .. } => "WalArchive::Barman",
        })
    }
}

/// Where one WAL file is stored.
#[derive(Debug, Clone)]
pub enum Stored {
    /// In a pgBackRest archive.
    Pgbackrest(pgbackrest::StoredSegment),
    /// In a barman-cloud archive.
    Barman(barman::StoredWal),
}

/// A WAL read that failed: on the source's side (with its message) or writing the destination.
#[derive(Debug)]
pub enum ReadError {
    /// Reading, decoding or verifying; the message with its causes.
    Read(String),
    /// Writing the destination.
    Write(std::io::Error),
}

/// The system identifier in `pg_control` (its first 8 bytes, native order) and `PG_VERSION`: which
/// cluster's WAL a data directory replays.
///
/// # Errors
/// Either file cannot be read, or `pg_control` is shorter than 8 bytes.
pub fn cluster_identity(pgdata: &Path) -> Result<(u64, String), String> {
    let control = std::fs::read(pgdata.join("global/pg_control"))
        .map_err(|e| format!("reading {}/global/pg_control: {e}", pgdata.display()))?;
    let id: [u8; 8] = control
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or("pg_control is shorter than 8 bytes")?;
    let version = std::fs::read_to_string(pgdata.join("PG_VERSION"))
        .map_err(|e| format!("reading PG_VERSION: {e}"))?;
    Ok((u64::from_ne_bytes(id), version.trim().to_owned()))
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    crate::cli::kopia::error_chain(e)
}

impl WalArchive {
    /// Opens the archive of `source` for the cluster `(system_id, version)` — only the archive (no
    /// `backup.info`, no backup listing).
    ///
    /// # Errors
    /// The source has no WAL archive (Kopia), or cannot be opened.
    pub async fn open(
        source: &SourceArgs,
        (system_id, version): (u64, String),
    ) -> Result<Self, OpenError> {
        let spec = source.load().map_err(OpenError::Config)?;
        let secrets = source.secrets().map_err(OpenError::Config)?;
        if let Some(b) = &spec.barman_cloud {
            let catalog = super::open::barman_catalog(b, &secrets, source.storage_attempts)?;
            return Ok(Self::Barman { catalog, system_id });
        }
        if spec.pgbackrest.is_none() {
            return Err(OpenError::Config(SourceError(
                "a Kopia source has no WAL archive: `pgro wal-fetch` reads pgBackRest and barman-cloud sources"
                    .into(),
            )));
        }
        let (repo, info) = source.open_archive().await?;
        Ok(Self::Pgbackrest {
            repo: Box::new(repo),
            info,
            system_id,
            version,
        })
    }

    /// Where each of `names` is stored (`None`: not archived). Segments of one batch share their
    /// listings.
    ///
    /// # Errors
    /// Listing fails, a name is not a WAL file name, or (pgBackRest) the archive has no entry for this
    /// cluster.
    pub async fn find(&self, names: &[String]) -> Result<Vec<Option<Stored>>, String> {
        match self {
            Self::Pgbackrest {
                repo,
                info,
                system_id,
                version,
            } => {
                let found = if names.iter().all(|n| pgbackrest::label::is_segment(n)) {
                    repo.find_segments(info, *system_id, version, names)
                        .await
                        .map_err(|e| chain(&e))?
                } else {
                    let mut out = Vec::with_capacity(names.len());
                    for n in names {
                        out.push(
                            repo.find_wal(info, *system_id, version, n)
                                .await
                                .map_err(|e| chain(&e))?,
                        );
                    }
                    out
                };
                Ok(found
                    .into_iter()
                    .map(|s| s.map(Stored::Pgbackrest))
                    .collect())
            }
            Self::Barman { catalog, .. } => Ok(catalog
                .find_wals(names)
                .await
                .map_err(|e| chain(&e))?
                .into_iter()
                .map(|s| s.map(Stored::Barman))
                .collect()),
        }
    }

    /// Streams `stored` into `file`, checked (pgBackRest: SHA-1; barman-cloud: the segment's system
    /// identifier); returns the file and the decoded size.
    ///
    /// # Errors
    /// Reading, decoding or checking fails, or writing does.
    pub async fn read_into(
        &self,
        stored: &Stored,
        file: std::fs::File,
    ) -> Result<(std::fs::File, u64), ReadError> {
        match (self, stored) {
            (Self::Pgbackrest { repo, info, .. }, Stored::Pgbackrest(s)) => repo
                .read_wal_into(info, s, file)
                .await
                .map_err(|e| ReadError::Read(chain(&e))),
            (Self::Barman { catalog, system_id }, Stored::Barman(s)) => catalog
                .read_wal_into(s, file, Some(*system_id))
                .await
                .map_err(|e| match e {
                    barman::wal::ReadIntoError::Write(e) => ReadError::Write(e),
                    barman::wal::ReadIntoError::Read(e) => ReadError::Read(chain(&e)),
                }),
            _ => Err(ReadError::Read(
                "a stored WAL file of another archive".into(),
            )),
        }
    }
}
