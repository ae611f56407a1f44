//! `pgro`: the operator, the restore Job, the PostgreSQL instance manager and the repository CLI in one
//! binary. `main` parses the command line, sets up logging, dispatches, and maps errors to exit codes.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use pgro::cli::{Cli, Command};
use pgro::crds;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::GenCrds => {
            let mut out = std::io::stdout().lock();
            match crds::render().and_then(|yaml| out.write_all(yaml.as_bytes()).map_err(Into::into))
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("pgro gen-crds: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Operator(args) => block_on(pgro::operator::run::run(args)),
        Command::CopyBinary { dest } => match pgro::cli::copy_binary(&dest) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pgro copy-binary {}: {e}", dest.display());
                ExitCode::FAILURE
            }
        },
        Command::Kopia(args) => block_on(pgro::cli::kopia::run(args)),
        Command::MigrateSchemas(args) => block_on(pgro::migrate::run(args)),
        Command::Restore(args) => block_on(pgro::restore::run(args)),
        Command::Backups(args) => block_on(pgro::cli::backups::run(args)),
        Command::WalFetch(args) => block_on(pgro::cli::wal_fetch::run(args)),
        Command::Instance(args) => block_on(pgro::instance::run(args)),
        Command::Status(args) => block_on(pgro::cli::status::run(args)),
    }
}

fn block_on(fut: impl Future<Output = ExitCode>) -> ExitCode {
    pgro::logging::init();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(fut),
        Err(e) => {
            eprintln!("pgro: starting the async runtime failed: {e}");
            ExitCode::FAILURE
        }
    }
}
