//! Image → local program. There is no container engine: an image name selects host binaries.
//!
//! * `…/pgro[:tag]` → the freshly built `pgro` binary, bind-mounted at [`PGRO_IN_CONTAINER`] (the
//!   image's entrypoint).
//! * `…/postgres:<major>[…]` → that major's `bin` directory prepended to `PATH`, plus the image's
//!   `PGDATA`/`PG_MAJOR` defaults; its default command is `postgres`.
//! * anything else → the container's `command` runs with the host's tools; without a command the
//!   container cannot start and its status says why.
//!
//! With a [`StandIn`] (the scale harness, `scripts/scale`), two containers run something lighter:
//!
//! * a `postgres:<major>` container whose program is `pgro instance …` runs `pgro-standin postgres`
//!   instead: it answers the `instance` probes (`/readyz`, `/livez` on `--probe-address`) with 200 and
//!   forwards every connection to its `--port` to one shared, real PostgreSQL ([`StandIn::upstream`]).
//! * a `pgro` container whose arguments start with `restore` runs `pgro-standin delay <s> -- pgro restore …`:
//!   it waits [`StandIn::restore_delay`], then executes the real `pgro restore` with the same arguments
//!   (same PID, so its termination message and exit code are the container's).

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where the `pgro` binary appears inside containers of the `pgro` image.
pub const PGRO_IN_CONTAINER: &str = "/usr/local/bin/pgro";

/// Where the stand-in program appears inside containers it replaces or wraps.
pub const STANDIN_IN_CONTAINER: &str = "/usr/local/bin/pgro-standin";

/// Light stand-ins for the operator scale harness: PostgreSQL instances become a probe responder and TCP
/// proxy to one shared PostgreSQL, and restore Jobs can be held for a fixed time (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct StandIn {
    /// The `pgro-standin` program on the host (bound into the containers at [`STANDIN_IN_CONTAINER`]).
    pub binary: PathBuf,
    /// The shared PostgreSQL as pods reach it (e.g. `10.244.0.1:<port>`, a port exposed on the gateway).
    pub upstream: String,
    /// How long each `pgro restore` container waits before the real restore starts (zero: not wrapped).
    pub restore_delay: std::time::Duration,
}

impl StandIn {
    /// From `PGRO_KUBELET_POSTGRES_STANDIN=<upstream host:port>`, `PGRO_KUBELET_STANDIN_BINARY` and
    /// `PGRO_KUBELET_RESTORE_DELAY` (seconds, default 0); `None` unless the first two are set.
    pub fn from_env() -> Option<Self> {
        let upstream = std::env::var("PGRO_KUBELET_POSTGRES_STANDIN").ok()?;
        let binary = std::env::var_os("PGRO_KUBELET_STANDIN_BINARY").map(PathBuf::from)?;
        let restore_delay = std::env::var("PGRO_KUBELET_RESTORE_DELAY")
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .map(std::time::Duration::from_secs_f64)
            .unwrap_or_default();
        Some(Self {
            binary,
            upstream,
            restore_delay,
        })
    }

    fn bind(&self) -> (PathBuf, PathBuf) {
        (self.binary.clone(), PathBuf::from(STANDIN_IN_CONTAINER))
    }
}

/// The value after `flag` in `args` (`--flag value` or `--flag=value`).
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == flag {
            return iter.next().map(String::as_str);
        }
        if let Some(value) = arg.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
            return Some(value);
        }
    }
    None
}

/// Whether `argv` runs the `pgro` binary (any path ending in `/pgro`, or `pgro`) with `subcommand`.
fn runs_pgro(argv: &[String], subcommand: &str) -> bool {
    argv.first()
        .is_some_and(|p| p == "pgro" || p.ends_with("/pgro"))
        && argv.get(1).is_some_and(|a| a == subcommand)
}

/// The image → program table.
#[derive(Debug, Clone, Default)]
pub struct ImageMap {
    /// The `pgro` binary (e.g. `env!("CARGO_BIN_EXE_pgro")` in `crates/pgro` tests).
    pub pgro_binary: Option<PathBuf>,
    /// PostgreSQL `bin` directories by major version.
    pub postgres: BTreeMap<u32, PathBuf>,
    /// Stand-ins for PostgreSQL instances and restore delays (the scale harness); `None` runs everything
    /// for real.
    pub postgres_standin: Option<StandIn>,
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
                let mut launch = Launch {
                    argv: argv(&[PGRO_IN_CONTAINER.to_owned()], &[]),
                    path_prefix: Vec::new(),
                    env: Vec::new(),
                    binds: vec![(binary, PathBuf::from(PGRO_IN_CONTAINER))],
                };
                if let Some(standin) = &self.postgres_standin
                    && !standin.restore_delay.is_zero()
                    && runs_pgro(&launch.argv, "restore")
                {
                    let mut wrapped = vec![
                        STANDIN_IN_CONTAINER.to_owned(),
                        "delay".to_owned(),
                        format!("{:.3}", standin.restore_delay.as_secs_f64()),
                        "--".to_owned(),
                    ];
                    wrapped.append(&mut launch.argv);
                    launch.argv = wrapped;
                    launch.binds.push(standin.bind());
                }
                Ok(launch)
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
                let mut binds = Vec::new();
                if let Some(standin) = &self.postgres_standin
                    && runs_pgro(&full, "instance")
                {
                    let probes = flag_value(&full, "--probe-address").unwrap_or("0.0.0.0:8008");
                    let port = flag_value(&full, "--port").unwrap_or("5432");
                    full = vec![
                        STANDIN_IN_CONTAINER.to_owned(),
                        "postgres".to_owned(),
                        "--upstream".to_owned(),
                        standin.upstream.clone(),
                        "--probe-address".to_owned(),
                        probes.to_owned(),
                        "--port".to_owned(),
                        port.to_owned(),
                    ];
                    binds.push(standin.bind());
                }
                Ok(Launch {
                    argv: full,
                    path_prefix: vec![bin.clone()],
                    env: vec![
                        ("PG_MAJOR".into(), major.to_string()),
                        ("PGDATA".into(), pgdata),
                    ],
                    binds,
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
            postgres_standin: None,
        }
    }

    fn standin_map(delay: u64) -> ImageMap {
        ImageMap {
            postgres_standin: Some(StandIn {
                binary: "/build/pgro-standin".into(),
                upstream: "10.244.0.1:15432".into(),
                restore_delay: std::time::Duration::from_secs(delay),
            }),
            ..map()
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn standin_replaces_pgro_instance_in_the_postgres_image_with_the_probe_and_proxy_program() {
        let args = strings(&[
            "instance",
            "--pgdata",
            "/pgdata/data",
            "--port",
            "5432",
            "--probe-address",
            "0.0.0.0:8008",
        ]);
        let launch = standin_map(0)
            .resolve("postgres:15", &strings(&["/pgro/pgro"]), &args)
            .expect("stand-in maps");
        assert_eq!(
            launch.argv,
            strings(&[
                STANDIN_IN_CONTAINER,
                "postgres",
                "--upstream",
                "10.244.0.1:15432",
                "--probe-address",
                "0.0.0.0:8008",
                "--port",
                "5432",
            ])
        );
        assert_eq!(
            launch.binds,
            vec![(
                PathBuf::from("/build/pgro-standin"),
                PathBuf::from(STANDIN_IN_CONTAINER)
            )]
        );
        // Still the postgres image otherwise (PATH, PGDATA, the postgres passwd entry).
        assert_eq!(launch.path_prefix, vec![PathBuf::from("/pg15/bin")]);
        // Without the stand-in the same container runs pgro instance.
        let real = map()
            .resolve("postgres:15", &strings(&["/pgro/pgro"]), &args)
            .expect("real");
        assert_eq!(real.argv[0], "/pgro/pgro");
        assert!(real.binds.is_empty());
    }

    #[test]
    fn standin_leaves_other_postgres_programs_and_pgro_subcommands_alone() {
        let m = standin_map(5);
        let migrate = m
            .resolve(
                "postgres:18",
                &strings(&["/pgro/pgro"]),
                &strings(&["migrate-schemas", "--port", "5432"]),
            )
            .expect("migration");
        assert_eq!(migrate.argv[0], "/pgro/pgro");
        let plain = m.resolve("postgres:18", &[], &[]).expect("postgres");
        assert_eq!(plain.argv, vec!["postgres"]);
        let copy = m
            .resolve("pgro:dev", &[], &strings(&["copy-binary", "/pgro/pgro"]))
            .expect("copy-binary");
        assert_eq!(
            copy.argv,
            vec![PGRO_IN_CONTAINER, "copy-binary", "/pgro/pgro"]
        );
        assert_eq!(copy.binds.len(), 1);
    }

    #[test]
    fn standin_delays_pgro_restore_then_runs_the_real_one_with_the_same_args() {
        let args = strings(&[
            "restore",
            "--snapshot",
            "k123",
            "--termination-log",
            "/dev/termination-log",
        ]);
        let launch = standin_map(7)
            .resolve("ghcr.io/bes-au/pgro:0.1.0", &[], &args)
            .expect("wrapped");
        let mut expected = strings(&[
            STANDIN_IN_CONTAINER,
            "delay",
            "7.000",
            "--",
            PGRO_IN_CONTAINER,
        ]);
        expected.extend(args.iter().cloned());
        assert_eq!(launch.argv, expected);
        assert!(launch.binds.contains(&(
            PathBuf::from("/build/pgro"),
            PathBuf::from(PGRO_IN_CONTAINER)
        )));
        assert!(launch.binds.contains(&(
            PathBuf::from("/build/pgro-standin"),
            PathBuf::from(STANDIN_IN_CONTAINER)
        )));
        // A zero delay does not wrap.
        let direct = standin_map(0)
            .resolve("pgro:dev", &[], &args)
            .expect("direct");
        assert_eq!(direct.argv[0], PGRO_IN_CONTAINER);
    }

    #[test]
    fn flag_values_parse_both_spellings() {
        let args = strings(&["x", "--port=6000", "--probe-address", "0.0.0.0:1"]);
        assert_eq!(flag_value(&args, "--port"), Some("6000"));
        assert_eq!(flag_value(&args, "--probe-address"), Some("0.0.0.0:1"));
        assert_eq!(flag_value(&args, "--missing"), None);
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
