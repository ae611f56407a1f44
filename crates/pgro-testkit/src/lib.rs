//! Test-only infrastructure: a local Kubernetes control plane and a process kubelet.
//!
//! The implementation arrives with the test control-plane issue.
#![deny(missing_docs)]
