//! Command-line interface.

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
}
