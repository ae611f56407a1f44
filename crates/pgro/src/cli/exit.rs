//! Process exit codes. Each failure a caller (the operator, a script) must tell apart has its own code;
//! the table is documented in the README ("Exit codes").

use std::process::ExitCode;

use kopia::ErrorKind;

/// Why a command failed, as far as its exit code is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Anything not listed below.
    Other,
    /// Invalid flags, environment or arguments.
    Usage,
    /// No snapshot matched the request.
    SnapshotNotFound,
    /// The repository password is wrong.
    WrongPassword,
    /// Stored data failed its hash or authentication check.
    Corrupted,
    /// A blob the repository refers to is missing.
    MissingBlob,
    /// Storage could not be reached or refused the request.
    Unreachable,
    /// The repository needs a feature this reader lacks, or is locked for an upgrade.
    Unsupported,
    /// The target file system is full.
    DiskFull,
    /// The snapshot holds no PostgreSQL data directory.
    NoPgdata,
    /// The target holds another snapshot's restore or files pgro did not write.
    TargetNotEmpty,
    /// A tablespace of the data directory is not in the snapshot.
    TablespaceNotInSnapshot,
}

impl Failure {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Other => 1,
            Self::Usage => 2,
            Self::SnapshotNotFound => 3,
            Self::WrongPassword => 4,
            Self::Corrupted => 5,
            Self::MissingBlob => 6,
            Self::Unreachable => 7,
            Self::Unsupported => 8,
            Self::DiskFull => 9,
            Self::NoPgdata => 10,
            Self::TargetNotEmpty => 11,
            Self::TablespaceNotInSnapshot => 12,
        }
    }

    /// A stable machine-readable name (used in the restore result JSON and in conditions).
    pub fn reason(self) -> &'static str {
        match self {
            Self::Other => "Error",
            Self::Usage => "InvalidArguments",
            Self::SnapshotNotFound => "SnapshotNotFound",
            Self::WrongPassword => "WrongPassword",
            Self::Corrupted => "CorruptedContent",
            Self::MissingBlob => "MissingBlob",
            Self::Unreachable => "StorageUnreachable",
            Self::Unsupported => "UnsupportedRepository",
            Self::DiskFull => "DiskFull",
            Self::NoPgdata => "NoPgdataInSnapshot",
            Self::TargetNotEmpty => "TargetNotEmpty",
            Self::TablespaceNotInSnapshot => "TablespaceNotInSnapshot",
        }
    }

    /// Classifies a repository error; disk-full is recognised through the OS error in the chain.
    pub fn of_kopia(e: &kopia::Error) -> Self {
        if is_disk_full(e) {
            return Self::DiskFull;
        }
        match (e.kind(), e) {
            (_, kopia::Error::SnapshotNotFound { .. }) => Self::SnapshotNotFound,
            (ErrorKind::WrongPassword, _) => Self::WrongPassword,
            (ErrorKind::Corrupted, _) => Self::Corrupted,
            (ErrorKind::NotFound, _) => Self::MissingBlob,
            (ErrorKind::Unreachable | ErrorKind::Storage, _) => Self::Unreachable,
            (ErrorKind::Unsupported | ErrorKind::Locked, _) => Self::Unsupported,
            (ErrorKind::InvalidArgument, _) => Self::Usage,
            (ErrorKind::Io, _) => Self::Other,
        }
    }
}

impl Failure {
    /// Classifies a pgBackRest reader error, with the same classes as Kopia's.
    pub fn of_pgbackrest(e: &pgbackrest::Error) -> Self {
        use pgbackrest::ErrorKind as K;
        if is_disk_full(e) {
            return Self::DiskFull;
        }
        match e.kind() {
            K::WrongPassword => Self::WrongPassword,
            K::Corrupted => Self::Corrupted,
            K::NotFound => Self::MissingBlob,
            K::Unreachable | K::Storage => Self::Unreachable,
            K::Unsupported => Self::Unsupported,
            K::InvalidArgument => Self::Usage,
            K::Io => Self::Other,
        }
    }
}

impl Failure {
    /// The exit class of a barman-cloud failure: the first storage error in its chain decides (a denied
    /// request is unreachable storage to the user, as for pgBackRest); a damaged or foreign file is
    /// corruption; a backup without its tars is a missing blob.
    pub fn of_restic(e: &restic::Error) -> Self {
        use restic::ErrorClass as C;
        match e.class() {
            C::Unreachable | C::Denied => Self::Unreachable,
            C::NotFound => Self::Usage,
            C::WrongPassword => Self::WrongPassword,
            C::Corrupt if matches!(e, restic::Error::MissingBlob(_)) => Self::MissingBlob,
            C::Corrupt => Self::Corrupted,
            C::Unsupported => Self::Unsupported,
            C::SnapshotNotFound => Self::SnapshotNotFound,
        }
    }

    /// The class of a barman-cloud failure (a storage error anywhere in its chain decides).
    pub fn of_barman(e: &(dyn std::error::Error + 'static)) -> Self {
        use blobstore::ErrorClass as C;
        if is_disk_full(e) {
            return Self::DiskFull;
        }
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = cur {
            if let Some(b) = err.downcast_ref::<blobstore::Error>() {
                return match b.class() {
                    C::NotFound | C::InvalidRange => Self::MissingBlob,
                    C::Transient | C::Denied | C::Other => Self::Unreachable,
                    C::Misconfigured => Self::Usage,
                    C::Io => Self::Other,
                };
            }
            match err.downcast_ref::<barman::WalError>() {
                Some(barman::WalError::InvalidName(_)) => return Self::Usage,
                Some(barman::WalError::Foreign { .. } | barman::WalError::Corrupted { .. }) => {
                    return Self::Corrupted;
                }
                _ => {}
            }
            match err.downcast_ref::<barman::RestoreError>() {
                Some(barman::RestoreError::Incomplete { .. }) => return Self::MissingBlob,
                Some(barman::RestoreError::Tar { .. }) => return Self::Corrupted,
                _ => {}
            }
            cur = err.source();
        }
        Self::Other
    }
}

impl From<Failure> for ExitCode {
    fn from(f: Failure) -> Self {
        ExitCode::from(f.code())
    }
}

/// Whether an error chain ends in ENOSPC (or EDQUOT, a full quota looks the same to the user).
pub fn is_disk_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && (io.kind() == std::io::ErrorKind::StorageFull
                || io.kind() == std::io::ErrorKind::QuotaExceeded)
        {
            return true;
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct() {
        let all = [
            Failure::Other,
            Failure::Usage,
            Failure::SnapshotNotFound,
            Failure::WrongPassword,
            Failure::Corrupted,
            Failure::MissingBlob,
            Failure::Unreachable,
            Failure::Unsupported,
            Failure::DiskFull,
            Failure::NoPgdata,
            Failure::TargetNotEmpty,
            Failure::TablespaceNotInSnapshot,
        ];
        let mut codes: Vec<u8> = all.iter().map(|f| f.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert!(codes.iter().all(|&c| c != 0));
    }

    #[test]
    fn classifies_kopia_errors() {
        assert_eq!(
            Failure::of_kopia(&kopia::Error::WrongPassword),
            Failure::WrongPassword
        );
        assert_eq!(
            Failure::of_kopia(&kopia::Error::SnapshotNotFound { query: "x".into() }),
            Failure::SnapshotNotFound
        );
        let full = kopia::Error::Io {
            op: "write",
            path: "/x".into(),
            source: std::io::Error::from_raw_os_error(28),
        };
        assert_eq!(Failure::of_kopia(&full), Failure::DiskFull);
        let other = kopia::Error::Io {
            op: "write",
            path: "/x".into(),
            source: std::io::Error::from_raw_os_error(13),
        };
        assert_eq!(Failure::of_kopia(&other), Failure::Other);
    }
}
