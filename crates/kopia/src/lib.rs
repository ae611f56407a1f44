//! A native, read-only client for Kopia repositories.
//!
//! The implementation arrives with the Kopia reader issue; this crate exists so the workspace layout of
//! `architecture.md` is in place from the start.
#![deny(missing_docs)]
