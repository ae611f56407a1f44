//! Operator settings (behaviour O3): flags and environment set the defaults, and the settings ConfigMap
//! (`pgro-config` in the operator's namespace) overrides them live. The parsed [`Settings`] value is
//! immutable; a reload swaps the whole value, so one reconcile sees one consistent set.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::logging::LogFormat;
use k8s_openapi::api::core::v1::Toleration;

/// `pgro operator` flags; each has an environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct OperatorArgs {
    /// Restores in `Pending`/`Restoring` allowed at once, cluster-wide.
    #[arg(long, env = "PGRO_MAX_CONCURRENT_RESTORES", default_value_t = 2)]
    pub max_concurrent_restores: u32,
    /// Image of the restore Job and of the init container that copies `pgro` into PostgreSQL pods.
    #[arg(long, env = "PGRO_IMAGE", default_value = DEFAULT_PGRO_IMAGE)]
    pub pgro_image: String,
    /// PostgreSQL image; `{major}` is replaced by the restored data's major version.
    #[arg(
        long,
        env = "PGRO_POSTGRES_IMAGE_TEMPLATE",
        default_value = "postgres:{major}"
    )]
    pub postgres_image_template: String,
    /// User and group ID that PostgreSQL and the restore Job run as (999 is `postgres` in the official
    /// Debian-based images).
    #[arg(long, env = "PGRO_POSTGRES_UID", default_value_t = 999)]
    pub postgres_uid: i64,
    /// The settings ConfigMap in the operator's namespace (reloaded live); empty to disable.
    #[arg(long, env = "PGRO_CONFIG_MAP", default_value = "pgro-config")]
    pub config_map: String,
    /// The operator's namespace (Lease and settings ConfigMap).
    #[arg(long, env = "POD_NAMESPACE", default_value = "pgro-system")]
    pub namespace: String,
    /// This instance's identity in the leader-election Lease.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(long, env = "PGRO_LEASE_NAME", default_value = "pgro-operator")]
    pub lease_name: String,
    /// How long a Lease is valid without renewal.
    #[arg(long, env = "PGRO_LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: Duration,
    /// Address of `/metrics`, `/livez` and `/readyz`.
    #[arg(long, env = "PGRO_HTTP_ADDRESS", default_value = "0.0.0.0:8080")]
    pub http_address: SocketAddr,
    /// How long a snapshot listing is reused before the repository's index is read again.
    #[arg(long, env = "PGRO_SNAPSHOT_CACHE_TTL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub snapshot_cache_ttl: Duration,
    /// Base time PostgreSQL gets to become ready after the restore Job completed (plus 15 minutes per
    /// 100 GiB of snapshot).
    #[arg(long, env = "PGRO_READY_TIMEOUT", default_value = "30m", value_parser = humantime::parse_duration)]
    pub ready_timeout: Duration,
    /// Base deadline of the restore Job (plus 30 minutes per 100 GiB of snapshot).
    #[arg(long, env = "PGRO_RESTORE_DEADLINE", default_value = "1h", value_parser = humantime::parse_duration)]
    pub restore_deadline: Duration,
    /// How long a failed restore is kept before it is deleted (the newest failed one stays until the next
    /// attempt).
    #[arg(long, env = "PGRO_FAILED_RESTORE_RETENTION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub failed_restore_retention: Duration,
    /// Delays before the 2nd, 3rd, … attempt of a notification (5 attempts in all).
    #[arg(long, env = "PGRO_NOTIFICATION_BACKOFF", default_value = "30s,2m,10m,1h", value_parser = parse_backoff_arg)]
    pub notification_backoff: Backoff,
    /// Log line format.
    #[arg(long, env = "PGRO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, ignore_case = true)]
    pub log_format: LogFormat,
    /// Log filter (`info`, `pgro=debug,kube=warn`, …).
    #[arg(long, env = "PGRO_LOG", default_value = "info", value_parser = parse_level_arg)]
    pub log_level: String,
    /// The cluster's DNS domain: replica server certificates also name `<replica>.<ns>.svc.<domain>`.
    #[arg(long, env = "PGRO_CLUSTER_DOMAIN", default_value = "cluster.local", value_parser = parse_domain)]
    pub cluster_domain: String,
}

/// A DNS domain: dot-separated labels of letters, digits and hyphens (a trailing dot is dropped).
fn parse_domain(s: &str) -> Result<String, String> {
    let d = s.trim().trim_end_matches('.');
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if d.len() <= 253 && d.split('.').all(label_ok) {
        Ok(d.to_ascii_lowercase())
    } else {
        Err(format!("{s:?} is not a DNS domain (e.g. cluster.local)"))
    }
}

fn parse_level_arg(s: &str) -> Result<String, String> {
    crate::logging::parse_level(s).map(|_| s.trim().to_owned())
}

/// Notification retry delays, as one flag value (`30s,2m,10m,1h`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff(pub Vec<Duration>);

fn parse_backoff_arg(s: &str) -> Result<Backoff, String> {
    super::notify::plan::parse_backoff(s).map(Backoff)
}

/// The image used when none is configured.
pub const DEFAULT_PGRO_IMAGE: &str = concat!("ghcr.io/bes-au/pgro:", env!("CARGO_PKG_VERSION"));

/// Settings in force for one reconcile.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Cluster-wide limit of restores in `Pending`/`Restoring`.
    pub max_concurrent_restores: u32,
    /// The `pgro` image.
    pub pgro_image: String,
    /// PostgreSQL image template (`{major}`).
    pub postgres_image_template: String,
    /// uid/gid of PostgreSQL and the restore Job.
    pub postgres_uid: i64,
    /// Node selector added to every pod pgro creates.
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations added to every pod pgro creates (after the replica's own).
    pub tolerations: Vec<Toleration>,
    /// Annotations added to every pod pgro creates (the replica's `podAnnotations` win).
    pub pod_annotations: BTreeMap<String, String>,
    /// Snapshot listing reuse.
    pub snapshot_cache_ttl: Duration,
    /// Base ready timeout.
    pub ready_timeout: Duration,
    /// Base restore Job deadline.
    pub restore_deadline: Duration,
    /// Failed restore retention.
    pub failed_restore_retention: Duration,
    /// Notification retry delays.
    pub notification_backoff: Vec<Duration>,
    /// Log line format.
    pub log_format: LogFormat,
    /// Log filter directive.
    pub log_level: String,
    /// The cluster's DNS domain.
    pub cluster_domain: String,
}

impl Settings {
    /// The defaults from flags and environment.
    #[must_use]
    pub fn from_args(a: &OperatorArgs) -> Self {
        Self {
            max_concurrent_restores: a.max_concurrent_restores,
            pgro_image: a.pgro_image.clone(),
            postgres_image_template: a.postgres_image_template.clone(),
            postgres_uid: a.postgres_uid,
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            pod_annotations: BTreeMap::new(),
            snapshot_cache_ttl: a.snapshot_cache_ttl,
            ready_timeout: a.ready_timeout,
            restore_deadline: a.restore_deadline,
            failed_restore_retention: a.failed_restore_retention,
            notification_backoff: a.notification_backoff.0.clone(),
            log_format: a.log_format,
            log_level: a.log_level.clone(),
            cluster_domain: a.cluster_domain.clone(),
        }
    }

    /// The PostgreSQL image for a major version.
    #[must_use]
    pub fn postgres_image(&self, major: &str) -> String {
        self.postgres_image_template.replace("{major}", major)
    }

    /// `defaults` overridden by the ConfigMap's keys. Unknown keys are reported, not fatal, so a newer
    /// ConfigMap does not stop an older operator.
    ///
    /// # Errors
    ///
    /// A known key whose value does not parse; the previous settings stay in force.
    pub fn with_overrides(
        defaults: &Self,
        data: &BTreeMap<String, String>,
    ) -> Result<(Self, Vec<String>), SettingsError> {
        let mut s = defaults.clone();
        let mut unknown = Vec::new();
        for (key, value) in data {
            let bad = |reason: String| SettingsError {
                key: key.clone(),
                reason,
            };
            let value = value.trim();
            match key.as_str() {
                "maxConcurrentRestores" => {
                    s.max_concurrent_restores = value
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| bad("a positive integer is required".into()))?;
                }
                "pgroImage" => s.pgro_image = non_empty(value).map_err(bad)?,
                "postgresImageTemplate" => {
                    s.postgres_image_template = non_empty(value).map_err(bad)?;
                }
                "postgresUid" => {
                    s.postgres_uid = value
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| bad("a positive user ID is required".into()))?;
                }
                "nodeSelector" => {
                    s.node_selector =
                        serde_yaml::from_str(value).map_err(|e| bad(e.to_string()))?;
                }
                "tolerations" => {
                    s.tolerations = serde_yaml::from_str(value).map_err(|e| bad(e.to_string()))?;
                }
                "podAnnotations" => {
                    s.pod_annotations =
                        serde_yaml::from_str(value).map_err(|e| bad(e.to_string()))?;
                }
                "snapshotCacheTtl" => s.snapshot_cache_ttl = duration(value).map_err(bad)?,
                "readyTimeout" => s.ready_timeout = duration(value).map_err(bad)?,
                "restoreDeadline" => s.restore_deadline = duration(value).map_err(bad)?,
                "failedRestoreRetention" => {
                    s.failed_restore_retention = duration(value).map_err(bad)?;
                }
                "notificationBackoff" => {
                    s.notification_backoff =
                        super::notify::plan::parse_backoff(value).map_err(bad)?;
                }
                "logFormat" => s.log_format = LogFormat::parse(value).map_err(bad)?,
                "logLevel" => s.log_level = parse_level_arg(value).map_err(bad)?,
                "clusterDomain" => s.cluster_domain = parse_domain(value).map_err(bad)?,
                _ => unknown.push(key.clone()),
            }
        }
        Ok((s, unknown))
    }
}

fn non_empty(v: &str) -> Result<String, String> {
    if v.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(v.to_owned())
    }
}

fn duration(v: &str) -> Result<Duration, String> {
    humantime::parse_duration(v).map_err(|e| e.to_string())
}

/// A settings value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("settings key {key}: {reason}")]
pub struct SettingsError {
    /// The ConfigMap key.
    pub key: String,
    /// Why it was refused.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        a: OperatorArgs,
    }

    fn defaults() -> Settings {
        Settings::from_args(&T::parse_from(["t"]).a)
    }

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_follow_the_documented_values() {
        let d = defaults();
        assert_eq!(d.max_concurrent_restores, 2);
        assert_eq!(d.postgres_image("16"), "postgres:16");
        assert_eq!(d.postgres_uid, 999);
        assert_eq!(d.ready_timeout, Duration::from_secs(1800));
        assert_eq!(d.cluster_domain, "cluster.local");
    }

    #[test]
    fn configmap_overrides_every_live_key() {
        let (s, unknown) = Settings::with_overrides(
            &defaults(),
            &data(&[
                ("maxConcurrentRestores", "1"),
                (
                    "postgresImageTemplate",
                    "registry.local/pg:{major}-bookworm",
                ),
                ("pgroImage", "registry.local/pgro:dev"),
                ("nodeSelector", "disk: ssd"),
                (
                    "tolerations",
                    "- key: dedicated\n  operator: Equal\n  value: db\n  effect: NoSchedule",
                ),
                ("podAnnotations", "{team: data}"),
                ("readyTimeout", "5m"),
                ("logFormat", "JSON"),
                ("logLevel", "pgro=debug,kube=warn"),
                ("clusterDomain", "Corp.Internal."),
                ("fromTheFuture", "x"),
            ]),
        )
        .expect("valid");
        assert_eq!(s.max_concurrent_restores, 1);
        assert_eq!(s.postgres_image("17"), "registry.local/pg:17-bookworm");
        assert_eq!(s.pgro_image, "registry.local/pgro:dev");
        assert_eq!(s.node_selector["disk"], "ssd");
        assert_eq!(s.tolerations[0].key.as_deref(), Some("dedicated"));
        assert_eq!(s.pod_annotations["team"], "data");
        assert_eq!(s.ready_timeout, Duration::from_secs(300));
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.log_level, "pgro=debug,kube=warn");
        assert_eq!(s.cluster_domain, "corp.internal");
        assert_eq!(unknown, ["fromTheFuture"]);
        for bad in ["", "has space.local", "-x.local", "a..b"] {
            let e = Settings::with_overrides(&defaults(), &data(&[("clusterDomain", bad)]));
            assert!(e.is_err(), "{bad:?}");
        }
    }

    #[test]
    fn invalid_value_names_the_key_and_changes_nothing() {
        for (k, v) in [
            ("maxConcurrentRestores", "0"),
            ("maxConcurrentRestores", "many"),
            ("readyTimeout", "soon"),
            ("nodeSelector", "[1, 2"),
            ("pgroImage", " "),
            ("logFormat", "xml"),
            ("logLevel", "pgro=loud"),
        ] {
            let err = Settings::with_overrides(&defaults(), &data(&[(k, v)])).expect_err(k);
            assert_eq!(err.key, k);
        }
    }
}
