//! Tests against the shared control plane and process kubelet of this test binary (one per binary).

mod common;
mod jobs;
mod pods;
mod postgres;
