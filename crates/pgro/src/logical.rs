//! Logical dumps (restic sources, KubeStash): what a dump's header says and how its SQL is filtered on
//! the way to psql. The replay itself is the instance's (`instance::replay`).

pub mod dump;
pub mod filter;
pub mod header;
pub mod psql_errors;
