//! Command-line interface: the subcommands of the single `pgro` binary.

pub mod backups;
pub mod exit;
pub mod kopia;
pub mod progress;
pub mod repository;
pub mod status;
pub mod wal_fetch;

use clap::{Parser, Subcommand};

/// pgro continuously restores physical PostgreSQL backups from Kopia into fresh, read-only PostgreSQL
/// instances in Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "pgro", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the CustomResourceDefinitions of both kinds as a multi-document YAML stream.
    GenCrds,
    /// Run the operator (replica and restore controllers).
    Operator(crate::operator::settings::OperatorArgs),
    /// Copy persistent schemas from the serving restore to a new one (the schema migration Job's command).
    MigrateSchemas(crate::migrate::MigrateArgs),
    /// Copy this binary to a path (the PostgreSQL pod's init container: the image has no shell or `cp`).
    CopyBinary {
        /// Destination file (made executable).
        dest: std::path::PathBuf,
    },
    /// Read a Kopia repository without the kopia binary: list snapshots, restore, verify contents.
    Kopia(kopia::KopiaArgs),
    /// List the backups of a source (`--source SOURCE.yaml --secret-dir DIR`).
    Backups(backups::BackupsArgs),
    /// Fetch one WAL file from a source's archive: PostgreSQL's `restore_command` (exit 1 only for "not
    /// found", 126 for every other failure).
    WalFetch(wal_fetch::WalFetchArgs),
    /// Restore a PostgreSQL data directory from a Kopia snapshot (the restore Job's command).
    Restore(crate::restore::RestoreArgs),
    /// Prepare a restored data directory, make it safe and supervise PostgreSQL (the instance entrypoint).
    Instance(crate::instance::InstanceArgs),
    /// Show a replica's state and restore history (`-n NAMESPACE REPLICA`, `--output table|json`).
    Status(status::StatusArgs),
}

/// Copies the running executable to `dest` (mode 0755), through a temporary file and a rename so a
/// restarted init container never leaves a half-written binary behind.
///
/// # Errors
///
/// The executable cannot be read or the destination written.
pub fn copy_binary(dest: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let me = std::env::current_exe()?;
    let tmp = dest.with_extension("tmp");
    std::fs::copy(&me, &tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, dest)
}
