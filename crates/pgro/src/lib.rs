//! The library behind the `pgro` binary: the command line, the restore command, the instance manager, the
//! CRD printer and the operator. `main.rs` is a thin entry point over it; integration tests use it directly.

pub mod cli;
pub mod crds;
pub mod instance;
pub mod logging;
pub mod logical;
pub mod migrate;
pub mod operator;
pub mod postgres;
pub mod restore;
pub mod source;
