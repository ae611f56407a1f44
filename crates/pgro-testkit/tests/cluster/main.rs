//! Tests against the shared control plane and process kubelet of this test binary (one per binary).

mod common;
mod crds;
mod incluster;
mod jobs;
mod lifecycle;
mod pods;
mod postgres;
