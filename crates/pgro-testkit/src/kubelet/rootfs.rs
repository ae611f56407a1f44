//! A container's root filesystem: the host's top-level directories bind-mounted into a fresh root, with
//! private `/tmp`, `/run`, `/dev` (and `/dev/shm`, `/dev/termination-log`), and each volume mount bound
//! at its `mountPath`.
//!
//! Mounts are made inside the pod sandbox's private mount namespace (`nsenter --mount=… mount …`), so
//! the host never sees them. A mount point that does not exist on the host (e.g. `/var/lib/postgresql/
//! data` or `/usr/local/bin/pgro`) is never created in the host's directories: its parent directory is
//! *shadowed* instead, i.e. replaced by a staging directory holding bind mounts of the parent's
//! entries plus the new mount point. Symlinks inside the container root are resolved against the
//! container root, never the host's (Debian's `/var/run -> /run` must not escape the container).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::process::{self, ProcessSpec};
use crate::tools::tool;

/// What backs a path of the container's tree.
#[derive(Debug, Clone)]
enum Backing {
    /// A directory the harness owns: creating entries in it is fine.
    Owned(PathBuf),
    /// A bind of a host path that must not be modified (system directories).
    Host(PathBuf),
    /// A bind of a volume directory (emptyDir, PVC…): mount points may be created in it, as runc does.
    Volume(PathBuf),
}

impl Backing {
    fn path(&self) -> &Path {
        match self {
            Self::Owned(p) | Self::Host(p) | Self::Volume(p) => p,
        }
    }
}

#[derive(Debug, Clone)]
enum MountOp {
    Bind {
        src: PathBuf,
        dst: PathBuf,
        recursive: bool,
    },
    ReadOnly {
        dst: PathBuf,
    },
    Tmpfs {
        dst: PathBuf,
        mode: &'static str,
    },
}

/// Whether a mount point is a directory or a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
}

/// The plan for one container root, built on the host side, then applied in the sandbox.
#[derive(Debug)]
pub(crate) struct Rootfs {
    root: PathBuf,
    staging: PathBuf,
    backing: BTreeMap<PathBuf, Backing>,
    ops: Vec<MountOp>,
    shadows: usize,
}

/// Host top-level entries the container gets its own version of.
const PRIVATE_TOP_LEVEL: &[&str] = &["proc", "dev", "tmp", "run"];

impl Rootfs {
    /// Prepares `dir/root` with the host's top-level entries, private `/tmp` and `/run`, and `/dev`
    /// with the standard devices and `termination_log` at `/dev/termination-log`.
    pub(crate) fn new(dir: &Path, termination_log: &Path) -> anyhow::Result<Self> {
        let root = dir.join("root");
        let staging = dir.join("staging");
        for d in [&root, &staging] {
            std::fs::create_dir_all(d)?;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
        }
        let mut rootfs = Self {
            root: root.clone(),
            staging,
            backing: BTreeMap::new(),
            ops: Vec::new(),
            shadows: 0,
        };
        rootfs
            .backing
            .insert(PathBuf::from("/"), Backing::Owned(root.clone()));
        for entry in std::fs::read_dir("/")?.flatten() {
            let name = entry.file_name();
            if PRIVATE_TOP_LEVEL.iter().any(|p| name == *p) {
                continue;
            }
            let host = Path::new("/").join(&name);
            let inside = root.join(&name);
            let meta = std::fs::symlink_metadata(&host)?;
            if meta.file_type().is_symlink() {
                replace_symlink(&std::fs::read_link(&host)?, &inside)?;
            } else if meta.is_dir() {
                std::fs::create_dir_all(&inside)?;
                // /sys needs its submounts (cgroups); everything else is bound without submounts, which
                // keeps other pods' mounts and the host's special mounts out.
                rootfs.ops.push(MountOp::Bind {
                    src: host.clone(),
                    dst: inside,
                    recursive: name == "sys",
                });
                rootfs
                    .backing
                    .insert(Path::new("/").join(&name), Backing::Host(host));
            } else {
                touch(&inside)?;
                rootfs.ops.push(MountOp::Bind {
                    src: host.clone(),
                    dst: inside,
                    recursive: false,
                });
                rootfs
                    .backing
                    .insert(Path::new("/").join(&name), Backing::Host(host));
            }
        }
        for (name, mode) in [("tmp", 0o1777), ("run", 0o755), ("proc", 0o555)] {
            let d = root.join(name);
            std::fs::create_dir_all(&d)?;
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode))?;
        }
        rootfs.build_dev(termination_log)?;
        Ok(rootfs)
    }

    /// The host directory that is the container's `/`.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    fn build_dev(&mut self, termination_log: &Path) -> anyhow::Result<()> {
        let dev = self.root.join("dev");
        std::fs::create_dir_all(&dev)?;
        for device in ["null", "zero", "full", "random", "urandom", "tty"] {
            let host = Path::new("/dev").join(device);
            if host.exists() {
                touch(&dev.join(device))?;
                self.ops.push(MountOp::Bind {
                    src: host,
                    dst: dev.join(device),
                    recursive: false,
                });
            }
        }
        for (name, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("ptmx", "pts/ptmx"),
        ] {
            replace_symlink(Path::new(target), &dev.join(name))?;
        }
        for name in ["pts", "shm", "mqueue"] {
            std::fs::create_dir_all(dev.join(name))?;
        }
        self.ops.push(MountOp::Bind {
            src: "/dev/pts".into(),
            dst: dev.join("pts"),
            recursive: false,
        });
        // A private /dev/shm: PostgreSQL's POSIX shared memory must vanish with the container even
        // when it is SIGKILLed.
        self.ops.push(MountOp::Tmpfs {
            dst: dev.join("shm"),
            mode: "1777",
        });
        touch(&dev.join("termination-log"))?;
        self.ops.push(MountOp::Bind {
            src: termination_log.into(),
            dst: dev.join("termination-log"),
            recursive: false,
        });
        Ok(())
    }

    /// Creates `/run/postgresql` (mode 3777, as the postgres image does) for the sockets.
    pub(crate) fn add_postgres_run_dir(&mut self) -> anyhow::Result<()> {
        let d = self.root.join("run/postgresql");
        std::fs::create_dir_all(&d)?;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o3777))?;
        Ok(())
    }

    /// Binds `src` (a host file or directory) at `target` inside the container.
    pub(crate) fn bind(
        &mut self,
        src: &Path,
        target: &Path,
        read_only: bool,
        volume: bool,
    ) -> anyhow::Result<()> {
        let kind = if src.is_dir() { Kind::Dir } else { Kind::File };
        let resolved = self.ensure(target, kind)?;
        let dst = self
            .root
            .join(resolved.strip_prefix("/").unwrap_or(&resolved));
        self.ops.push(MountOp::Bind {
            src: src.to_owned(),
            dst: dst.clone(),
            recursive: false,
        });
        if read_only {
            self.ops.push(MountOp::ReadOnly { dst });
        }
        let backing = if volume {
            Backing::Volume(src.to_owned())
        } else {
            Backing::Host(src.to_owned())
        };
        self.backing.insert(resolved, backing);
        Ok(())
    }

    /// Makes sure the directory `path` exists in the container (e.g. its working directory).
    pub(crate) fn ensure_dir(&mut self, path: &Path) -> anyhow::Result<()> {
        self.ensure(path, Kind::Dir).map(drop)
    }

    /// The host location of a container path (no symlink resolution).
    fn locate(&self, path: &Path) -> (Backing, PathBuf) {
        let mut probe = path.to_path_buf();
        loop {
            if let Some(backing) = self.backing.get(&probe) {
                let rest = path.strip_prefix(&probe).unwrap_or(Path::new(""));
                let host = if rest.as_os_str().is_empty() {
                    backing.path().to_path_buf()
                } else {
                    backing.path().join(rest)
                };
                return (backing.clone(), host);
            }
            if !probe.pop() {
                return (
                    Backing::Owned(self.root.clone()),
                    self.root.join(path.strip_prefix("/").unwrap_or(path)),
                );
            }
        }
    }

    /// Resolves symlinks of `path` within the container root and creates what is missing (shadowing
    /// host directories as needed). Returns the resolved container path.
    fn ensure(&mut self, path: &Path, kind: Kind) -> anyhow::Result<PathBuf> {
        let mut pending: Vec<OsString> = normal_components(path)?;
        pending.reverse();
        let mut current = PathBuf::from("/");
        let mut hops = 0;
        while let Some(component) = pending.pop() {
            let next = current.join(&component);
            let last = pending.is_empty();
            let (backing, host) = self.locate(&next);
            match std::fs::symlink_metadata(&host) {
                Ok(meta) if meta.file_type().is_symlink() && !self.backing.contains_key(&next) => {
                    hops += 1;
                    if hops > 40 {
                        bail!("too many symlinks resolving {}", path.display());
                    }
                    let target = std::fs::read_link(&host)?;
                    let mut replacement = normal_components(&if target.is_absolute() {
                        target.clone()
                    } else {
                        current.join(&target)
                    })?;
                    replacement.reverse();
                    pending.extend(replacement);
                    current = PathBuf::from("/");
                    continue;
                }
                Ok(_) => {}
                Err(_) => {
                    let backing = match backing {
                        Backing::Host(_) => {
                            self.shadow(&current)?;
                            self.locate(&next).0
                        }
                        other => other,
                    };
                    let host = self.locate(&next).1;
                    debug_assert!(!matches!(backing, Backing::Host(_)));
                    if last && kind == Kind::File {
                        touch(&host)?;
                    } else {
                        std::fs::create_dir_all(&host)?;
                        std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o755))?;
                    }
                }
            }
            current = next;
        }
        Ok(current)
    }

    /// Replaces the host-backed directory `dir` (container path) by a staging directory with a
    /// placeholder + bind for each of its entries, so new entries can be created without touching the host.
    fn shadow(&mut self, dir: &Path) -> anyhow::Result<()> {
        let (_, host) = self.locate(dir);
        self.shadows += 1;
        let staging = self.staging.join(self.shadows.to_string());
        std::fs::create_dir_all(&staging)?;
        let mode = std::fs::metadata(&host)
            .map(|m| m.permissions().mode())
            .unwrap_or(0o755);
        std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(mode & 0o7777))?;
        let inside = self.root.join(dir.strip_prefix("/").unwrap_or(dir));
        self.ops.push(MountOp::Bind {
            src: staging.clone(),
            dst: inside.clone(),
            recursive: false,
        });
        // What is already bound inside `dir` (the pod's /etc/resolv.conf, /etc/hosts, an earlier volume)
        // is bound again over the staging directory: the shadow must not bring the host's files back.
        let earlier: BTreeMap<OsString, Backing> = self
            .backing
            .iter()
            .filter(|(p, _)| p.parent() == Some(dir))
            .filter_map(|(p, b)| Some((p.file_name()?.to_owned(), b.clone())))
            .collect();
        for entry in std::fs::read_dir(&host)
            .with_context(|| format!("reading {}", host.display()))?
            .flatten()
        {
            let name = entry.file_name();
            if earlier.contains_key(&name) {
                continue;
            }
            let meta = std::fs::symlink_metadata(entry.path())?;
            if meta.file_type().is_symlink() {
                replace_symlink(&std::fs::read_link(entry.path())?, &staging.join(&name))?;
                continue;
            }
            if meta.is_dir() {
                std::fs::create_dir_all(staging.join(&name))?;
            } else {
                touch(&staging.join(&name))?;
            }
            self.ops.push(MountOp::Bind {
                src: entry.path(),
                dst: inside.join(&name),
                recursive: false,
            });
            self.backing
                .insert(dir.join(&name), Backing::Host(entry.path()));
        }
        for (name, backing) in earlier {
            let src = backing.path().to_path_buf();
            if src.is_dir() {
                std::fs::create_dir_all(staging.join(&name))?;
            } else {
                touch(&staging.join(&name))?;
            }
            self.ops.push(MountOp::Bind {
                src,
                dst: inside.join(&name),
                recursive: false,
            });
        }
        self.backing
            .insert(dir.to_path_buf(), Backing::Owned(staging));
        Ok(())
    }

    /// Performs the mounts inside the mount namespace at `mount_ns` (`/proc/PID/ns/mnt`).
    pub(crate) async fn apply(&self, mount_ns: &Path) -> anyhow::Result<()> {
        for op in &self.ops {
            let args: Vec<OsString> = match op {
                MountOp::Bind {
                    src,
                    dst,
                    recursive,
                } => {
                    vec![
                        if *recursive { "--rbind" } else { "--bind" }.into(),
                        src.into(),
                        dst.into(),
                    ]
                }
                MountOp::ReadOnly { dst } => {
                    vec!["-o".into(), "remount,bind,ro".into(), dst.into()]
                }
                MountOp::Tmpfs { dst, mode } => {
                    vec![
                        "-t".into(),
                        "tmpfs".into(),
                        "-o".into(),
                        format!("mode={mode}").into(),
                        "tmpfs".into(),
                        dst.into(),
                    ]
                }
            };
            let spec = ProcessSpec::new("mount", tool("nsenter"))
                .arg(format!("--mount={}", mount_ns.display()))
                .arg("--")
                .arg(tool("mount"))
                .args(&args);
            process::run(spec).await?;
        }
        Ok(())
    }
}

fn normal_components(path: &Path) -> anyhow::Result<Vec<OsString>> {
    let mut out: Vec<OsString> = Vec::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(c) => out.push(c.to_owned()),
            Component::Prefix(_) => bail!("unexpected path prefix in {}", path.display()),
        }
    }
    Ok(out)
}

fn touch(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(drop)
}

fn replace_symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(link).is_ok() {
        std::fs::remove_file(link)?;
    }
    std::os::unix::fs::symlink(target, link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_mount_point_under_host_dir_shadows_its_parent_instead_of_writing_the_host() {
        let dir = std::env::temp_dir().join(format!("pgro-testkit-rootfs-{}", std::process::id()));
        let log = dir.join("termination-log");
        std::fs::create_dir_all(&dir).expect("temp dir");
        touch(&log).expect("log");
        let mut rootfs = Rootfs::new(&dir, &log).expect("rootfs");
        let target = Path::new("/usr/local/bin/pgro-testkit-surely-missing");
        rootfs.bind(&log, target, true, false).expect("bind");
        assert!(!target.exists(), "the host must not be modified");
        let staged = rootfs.locate(Path::new("/usr/local/bin"));
        assert!(matches!(staged.0, Backing::Owned(_)), "{staged:?}");
        assert!(staged.1.join("pgro-testkit-surely-missing").exists());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn shadowing_a_directory_keeps_what_was_bound_in_it_before() {
        let dir =
            std::env::temp_dir().join(format!("pgro-testkit-rootfs-etc-{}", std::process::id()));
        let log = dir.join("termination-log");
        std::fs::create_dir_all(&dir).expect("temp dir");
        touch(&log).expect("log");
        let resolv = dir.join("resolv.conf");
        std::fs::write(&resolv, "nameserver 10.0.0.1\n").expect("resolv");
        let mut rootfs = Rootfs::new(&dir, &log).expect("rootfs");
        rootfs
            .bind(&resolv, Path::new("/etc/resolv.conf"), true, false)
            .expect("bind resolv.conf");
        // A volume under a directory /etc lacks: /etc is shadowed.
        rootfs
            .bind(&dir, Path::new("/etc/pgro-testkit-missing/tls"), true, true)
            .expect("bind volume");
        let binds: Vec<(&PathBuf, &PathBuf)> = rootfs
            .ops
            .iter()
            .filter_map(|op| match op {
                MountOp::Bind { src, dst, .. } => Some((src, dst)),
                _ => None,
            })
            .collect();
        let inside = dir.join("rootfs").join("etc/resolv.conf");
        let last = binds
            .iter()
            .rev()
            .find(|(_, dst)| dst.ends_with("etc/resolv.conf"))
            .expect("a bind of /etc/resolv.conf");
        assert_eq!(
            last.0, &resolv,
            "the pod's resolv.conf, not the host's ({inside:?})"
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn absolute_symlinks_resolve_inside_the_container_root() {
        let dir =
            std::env::temp_dir().join(format!("pgro-testkit-rootfs-link-{}", std::process::id()));
        let log = dir.join("termination-log");
        std::fs::create_dir_all(&dir).expect("temp dir");
        touch(&log).expect("log");
        let mut rootfs = Rootfs::new(&dir, &log).expect("rootfs");
        // /bin is a symlink to usr/bin on merged-/usr systems; either way the result lies under /usr or /bin.
        let resolved = rootfs
            .ensure(Path::new("/bin/pgro-testkit-x"), Kind::File)
            .expect("ensure");
        assert!(
            resolved.starts_with("/usr/bin") || resolved.starts_with("/bin"),
            "{}",
            resolved.display()
        );
        assert!(!Path::new("/bin/pgro-testkit-x").exists());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
