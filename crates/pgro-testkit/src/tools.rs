//! Host tools the harness drives (util-linux, iproute2, coreutils), found once by absolute path.

use std::path::{Path, PathBuf};

/// `PATH` for processes started with a cleared environment, and the default inside containers.
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The tools the process kubelet needs (all from Debian's util-linux, iproute2 and coreutils).
pub(crate) const KUBELET_TOOLS: &[&str] = &[
    "setpriv", "nsenter", "unshare", "ip", "mount", "chroot", "env", "sleep",
];

/// The absolute path of a host tool, or the bare name (so the spawn error names it) when absent.
pub(crate) fn tool(name: &str) -> PathBuf {
    find(name).unwrap_or_else(|| PathBuf::from(name))
}

/// Searches [`DEFAULT_PATH`] for an executable called `name`.
pub(crate) fn find(name: &str) -> Option<PathBuf> {
    DEFAULT_PATH
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| candidate.is_file())
}
