//! Image → local program. There is no container engine: an image name selects host binaries.
//!
//! * `…/pgro[:tag]` → the freshly built `pgro` binary, bind-mounted at [`PGRO_IN_CONTAINER`] (the
//!   image's entrypoint).
//! * `…/postgres:<major>[…]` → that major's `bin` directory prepended to `PATH`, plus the image's
//!   `PGDATA`/`PG_MAJOR` defaults; its default command is `postgres`.
//! * anything else → the container's `command` runs with the host's tools; without a command the
//!   container cannot start and its status says why.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where the `pgro` binary appears inside containers of the `pgro` image.
pub const PGRO_IN_CONTAINER: &str = "/usr/local/bin/pgro";

/// The image → program table.
#[derive(Debug, Clone, Default)]
pub struct ImageMap {
    /// The `pgro` binary (e.g. `env!("CARGO_BIN_EXE_pgro")` in `crates/pgro` tests).
    pub pgro_binary: Option<PathBuf>,
    /// PostgreSQL `bin` directories by major version.
    pub postgres: BTreeMap<u32, PathBuf>,
}

/// How to run one container.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Launch {
    /// The full argv (entrypoint/command + args), before `$(VAR)` expansion.
    pub argv: Vec<String>,
    /// Directories to prepend to `PATH`.
    pub path_prefix: Vec<PathBuf>,
    /// Image defaults for the environment (the pod's `env` overrides them).
    pub env: Vec<(String, String)>,
    /// Host files to bind at container paths.
    pub binds: Vec<(PathBuf, PathBuf)>,
}

/// A container that cannot start (the message ends up in its waiting state).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ImageError {
    pub reason: &'static str,
    pub message: String,
}

/// `registry/path/name:tag@digest` → (`name`, `tag`).
pub(crate) fn parse(image: &str) -> (&str, Option<&str>) {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    match last.split_once(':') {
        Some((name, tag)) => (name, Some(tag)),
        None => (last, None),
    }
}

impl ImageMap {
    pub(crate) fn resolve(
        &self,
        image: &str,
        command: &[String],
        args: &[String],
    ) -> Result<Launch, ImageError> {
        let (name, tag) = parse(image);
        let argv = |entrypoint: &[String], default_args: &[String]| -> Vec<String> {
            // Kubernetes: `command` replaces the entrypoint (and drops the image's CMD); `args` replace CMD.
            if !command.is_empty() {
                command.iter().chain(args).cloned().collect()
            } else if !args.is_empty() {
                entrypoint.iter().chain(args).cloned().collect()
            } else {
                entrypoint.iter().chain(default_args).cloned().collect()
            }
        };
        match name {
            "pgro" => {
                let binary = self.pgro_binary.clone().ok_or_else(|| ImageError {
                    reason: "ErrImageNeverPull",
                    message: format!(
                        "process kubelet: image {image:?} maps to the pgro binary, but none is configured \
                         (KubeletConfig::images.pgro_binary / PGRO_BINARY)"
                    ),
                })?;
                Ok(Launch {
                    argv: argv(&[PGRO_IN_CONTAINER.to_owned()], &[]),
                    path_prefix: Vec::new(),
                    env: Vec::new(),
                    binds: vec![(binary, PathBuf::from(PGRO_IN_CONTAINER))],
                })
            }
            "postgres" => {
                let major = match tag.and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next()) {
                    Some(digits) if !digits.is_empty() => digits.parse::<u32>().ok(),
                    _ => self.postgres.keys().next_back().copied(),
                };
                let bin = major.and_then(|m| self.postgres.get(&m)).ok_or_else(|| ImageError {
                    reason: "ErrImageNeverPull",
                    message: format!(
                        "process kubelet: image {image:?} needs PostgreSQL {} but only {:?} are installed \
                         (scripts/testinfra.sh)",
                        major.map(|m| m.to_string()).unwrap_or_else(|| "?".into()),
                        self.postgres.keys().collect::<Vec<_>>()
                    ),
                })?;
                let major = major.unwrap_or_default();
                // The official image's PGDATA moved to a versioned path in 18.
                let pgdata = if major >= 18 {
                    format!("/var/lib/postgresql/{major}/docker")
                } else {
                    "/var/lib/postgresql/data".to_owned()
                };
                let mut full = argv(&[], &["postgres".to_owned()]);
                if full.first().is_some_and(|a| a.starts_with('-')) {
                    full.insert(0, "postgres".to_owned());
                }
                Ok(Launch {
                    argv: full,
                    path_prefix: vec![bin.clone()],
                    env: vec![
                        ("PG_MAJOR".into(), major.to_string()),
                        ("PGDATA".into(), pgdata),
                    ],
                    binds: Vec::new(),
                })
            }
            _ if !command.is_empty() => Ok(Launch {
                argv: argv(&[], &[]),
                path_prefix: Vec::new(),
                env: Vec::new(),
                binds: Vec::new(),
            }),
            _ => Err(ImageError {
                reason: "CreateContainerError",
                message: format!(
                    "process kubelet: image {image:?} has no local program; give the container a command \
                     (it then runs with the host's tools) or use the pgro or postgres:<major> images"
                ),
            }),
        }
    }
}

/// `PATH` for a container: the image's prefixes, then the standard directories.
pub(crate) fn container_path(prefix: &[PathBuf]) -> String {
    prefix
        .iter()
        .map(|p| p.display().to_string())
        .chain(std::iter::once(crate::tools::DEFAULT_PATH.to_owned()))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> ImageMap {
        ImageMap {
            pgro_binary: Some("/build/pgro".into()),
            postgres: [
                (15, PathBuf::from("/pg15/bin")),
                (18, PathBuf::from("/pg18/bin")),
            ]
            .into(),
        }
    }

    #[test]
    fn image_names_parse_registry_tag_and_digest() {
        assert_eq!(parse("ghcr.io/bes-au/pgro:0.1.0"), ("pgro", Some("0.1.0")));
        assert_eq!(
            parse("localhost:5000/postgres:16-bookworm@sha256:ab"),
            ("postgres", Some("16-bookworm"))
        );
        assert_eq!(parse("busybox"), ("busybox", None));
    }

    #[test]
    fn postgres_image_prepends_its_major_and_defaults_to_postgres() {
        let launch = map()
            .resolve("postgres:15.4", &[], &[])
            .expect("postgres 15 maps");
        assert_eq!(launch.argv, vec!["postgres"]);
        assert_eq!(launch.path_prefix, vec![PathBuf::from("/pg15/bin")]);
        let launch = map()
            .resolve(
                "docker.io/library/postgres:18",
                &[],
                &["-c".into(), "x=1".into()],
            )
            .expect("18");
        assert_eq!(launch.argv, vec!["postgres", "-c", "x=1"]);
        assert!(
            launch
                .env
                .contains(&("PGDATA".into(), "/var/lib/postgresql/18/docker".into()))
        );
    }

    #[test]
    fn missing_postgres_major_is_a_clear_error() {
        let error = map()
            .resolve("postgres:16", &[], &[])
            .expect_err("16 is not installed");
        assert!(error.message.contains("PostgreSQL 16"), "{}", error.message);
    }

    #[test]
    fn pgro_image_runs_the_built_binary_with_args() {
        let launch = map()
            .resolve("pgro:dev", &[], &["instance".into()])
            .expect("pgro maps");
        assert_eq!(launch.argv, vec![PGRO_IN_CONTAINER, "instance"]);
        assert_eq!(
            launch.binds,
            vec![(
                PathBuf::from("/build/pgro"),
                PathBuf::from(PGRO_IN_CONTAINER)
            )]
        );
    }

    #[test]
    fn other_images_need_a_command() {
        assert!(
            map()
                .resolve("busybox", &["sh".into()], &["-c".into(), "true".into()])
                .is_ok()
        );
        assert_eq!(
            map()
                .resolve("busybox", &[], &[])
                .expect_err("no command")
                .reason,
            "CreateContainerError"
        );
    }
}
