//! Command-line interface: the subcommands of the single `pgro` binary.

pub mod exit;
pub mod kopia;
pub mod progress;
pub mod repository;

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
    /// Read a Kopia repository without the kopia binary: list snapshots, restore, verify contents.
    Kopia(kopia::KopiaArgs),
    /// Restore a PostgreSQL data directory from a Kopia snapshot (the restore Job's command).
    Restore(crate::restore::RestoreArgs),
    /// Prepare a restored data directory, make it safe and supervise PostgreSQL (the instance entrypoint).
    Instance(crate::instance::InstanceArgs),
}
