//! pgro API types.
#![deny(missing_docs)]
