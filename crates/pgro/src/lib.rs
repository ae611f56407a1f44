//! The library behind the `pgro` binary: the command line, the CRD printer and the operator's pure decision
//! modules. `main.rs` is a thin entry point over it; integration tests use it directly.

pub mod cli;
pub mod crds;
pub mod operator;
