//! A restore's children (behaviour S1, S2, S4): the data PVC, the restore Job, the PostgreSQL Deployment
//! and the per-restore Service.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SecretKeySelector, SecretVolumeSource, Service,
    ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use pgro_api::{PostgresPhysicalReplica, PostgresPhysicalRestore};

use super::{
    ADMIN_MOUNT, BuildError, CREDS_MOUNT, DATA_MOUNT, PASSWORD_KEY, PGDATA, PGRO_BIN_DIR,
    PGRO_IN_POSTGRES, POSTGRES_PORT, POSTGRES_PORT_NAME, PROBE_PORT, TLS_CRT, TLS_KEY, TLS_MOUNT,
    container_security, controller_ref, merged_tolerations, pod_security, restore_labels,
};
use super::{source_mounts, tls_mounts};
use crate::cli::exit::Failure;
use crate::cli::repository::SECRET_KEY_ENV;
use crate::operator::naming;
use crate::operator::quantity;
use crate::operator::settings::Settings;

/// Everything a restore's children are built from.
#[derive(Debug, Clone, Copy)]
pub struct RestoreInputs<'a> {
    /// The restore.
    pub restore: &'a PostgresPhysicalRestore,
    /// Its replica.
    pub replica: &'a PostgresPhysicalReplica,
    /// Operator settings in force.
    pub settings: &'a Settings,
}

impl RestoreInputs<'_> {
    fn restore_name(&self) -> Result<&str, BuildError> {
        self.restore
            .metadata
            .name
            .as_deref()
            .ok_or(BuildError::MissingMetadata {
                kind: "PostgresPhysicalRestore",
                field: "metadata.name",
            })
    }

    fn replica_name(&self) -> Result<&str, BuildError> {
        super::replica_name(self.replica)
    }

    fn meta(&self, name: String, component: &str) -> Result<ObjectMeta, BuildError> {
        Ok(ObjectMeta {
            name: Some(name),
            namespace: self.restore.metadata.namespace.clone(),
            labels: Some(restore_labels(
                self.replica_name()?,
                self.restore_name()?,
                component,
            )),
            owner_references: Some(vec![controller_ref(self.restore)?]),
            ..ObjectMeta::default()
        })
    }

    fn snapshot_gib(&self) -> u64 {
        quantity::to_bytes(&self.restore.spec.snapshot_size).unwrap_or(0) >> 30
    }
}

/// Extra time per started 100 GiB of snapshot.
fn per_100_gib(gib: u64, each: u64) -> u64 {
    gib.div_ceil(100) * each
}

/// The restore Job's deadline in seconds: the base plus 30 minutes per 100 GiB.
#[must_use]
pub fn restore_deadline_seconds(settings: &Settings, snapshot_gib: u64) -> i64 {
    let secs = settings.restore_deadline.as_secs() + per_100_gib(snapshot_gib, 1800);
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// How long PostgreSQL may take to become ready after the restore Job: the base plus 15 minutes per
/// 100 GiB (behaviour S5).
#[must_use]
pub fn ready_timeout(settings: &Settings, snapshot_bytes: u64) -> std::time::Duration {
    settings.ready_timeout + std::time::Duration::from_secs(per_100_gib(snapshot_bytes >> 30, 900))
}

/// PVC `<restore>-data` (behaviour S1).
///
/// # Errors
///
/// [`BuildError::MissingMetadata`].
pub fn data_pvc(i: &RestoreInputs<'_>) -> Result<PersistentVolumeClaim, BuildError> {
    let name = naming::data_pvc(i.restore_name()?);
    Ok(PersistentVolumeClaim {
        metadata: i.meta(name, "data")?,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: i.replica.spec.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    i.restore.spec.storage_size.clone(),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    })
}

fn data_volume(restore: &str) -> Volume {
    Volume {
        name: "data".into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: naming::data_pvc(restore),
            read_only: None,
        }),
        ..Volume::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

/// The `pgro restore` command line of the Job (parsed by the same `clap` types; see the tests).
#[must_use]
pub fn restore_args(snapshot: &str) -> Vec<String> {
    [
        "restore",
        "--snapshot",
        snapshot,
        "--target",
        DATA_MOUNT,
        "--termination-log",
        "/dev/termination-log",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// Exit codes after which retrying the Job cannot help (README "Exit codes"): the pod failure policy
/// fails the Job at once instead of burning its back-off.
fn unretryable_exit_codes() -> Vec<i32> {
    [
        Failure::Usage,
        Failure::SnapshotNotFound,
        Failure::WrongPassword,
        Failure::Corrupted,
        Failure::MissingBlob,
        Failure::Unsupported,
        Failure::DiskFull,
        Failure::NoPgdata,
        Failure::TargetNotEmpty,
        Failure::TablespaceNotInSnapshot,
    ]
    .iter()
    .map(|f| i32::from(f.code()))
    .collect()
}

/// Job `<restore>-restore` running `pgro restore` (behaviour S2). The Kopia Secret's keys reach it as
/// environment variables (never on the command line).
///
/// # Errors
///
/// [`BuildError::MissingMetadata`], also when the replica names no Kopia source.
pub fn restore_job(i: &RestoreInputs<'_>) -> Result<Job, BuildError> {
    let restore = i.restore_name()?;
    let log_format = EnvVar {
        name: "PGRO_LOG_FORMAT".into(),
        value: Some("json".into()),
        ..EnvVar::default()
    };
    // The restore keeps the source it was created for; a WAL-archive source is mounted as files.
    let archive = source_mounts::archive_source_mounts(i.restore.spec.source.as_ref())?;
    let (args, env, source) = if let Some(m) = archive {
        let recovery = source_mounts::recovery_target(i.restore.spec.recovery.as_ref());
        let args = source_mounts::restore_args(&i.restore.spec.snapshot, &m, recovery);
        (args, vec![log_format], Some(m))
    } else {
        // The replica controller creates restores only for a Kopia source; a replica switched to another
        // source since has no Kopia Secret to give the Job.
        let secret = i
            .replica
            .spec
            .kopia_secret()
            .ok_or(BuildError::MissingMetadata {
                kind: "PostgresPhysicalReplica",
                field: "spec.kopiaSecretRef or spec.source.kopia",
            })?
            .name
            .clone()
            .unwrap_or_default();
        let env = SECRET_KEY_ENV
            .iter()
            .map(|(key, var)| EnvVar {
                name: (*var).to_owned(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: secret.clone(),
                        key: (*key).to_owned(),
                        optional: Some(true),
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            })
            .chain([log_format])
            .collect();
        (restore_args(&i.restore.spec.snapshot), env, None)
    };
    let mut pod_annotations = i.settings.pod_annotations.clone();
    let mut mounts = vec![
        mount("data", DATA_MOUNT, false),
        mount("tmp", "/tmp", false),
    ];
    let mut volumes = vec![data_volume(restore), empty_dir("tmp", None)];
    if let Some(m) = source {
        pod_annotations.extend(m.annotations);
        mounts.extend(m.mounts);
        volumes.extend(m.volumes);
    }
    let meta = i.meta(naming::restore_job(restore), "restore-job")?;
    let pod_labels = meta.labels.clone();
    Ok(Job {
        metadata: meta,
        spec: Some(JobSpec {
            backoff_limit: Some(3),
            active_deadline_seconds: Some(restore_deadline_seconds(i.settings, i.snapshot_gib())),
            pod_failure_policy: Some(PodFailurePolicy {
                rules: vec![
                    PodFailurePolicyRule {
                        action: "FailJob".into(),
                        on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                            container_name: Some("restore".into()),
                            operator: "In".into(),
                            values: unretryable_exit_codes(),
                        }),
                        on_pod_conditions: None,
                    },
                    PodFailurePolicyRule {
                        action: "Ignore".into(),
                        on_exit_codes: None,
                        on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                            type_: "DisruptionTarget".into(),
                            status: Some("True".into()),
                        }]),
                    },
                ],
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: pod_labels,
                    annotations: non_empty(pod_annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(pod_security(i.settings.postgres_uid)),
                    affinity: i.replica.spec.affinity.clone(),
                    tolerations: non_empty_vec(merged_tolerations(
                        &i.replica.spec.tolerations,
                        &i.settings.tolerations,
                    )),
                    node_selector: non_empty(i.settings.node_selector.clone()),
                    containers: vec![Container {
                        name: "restore".into(),
                        image: Some(i.settings.pgro_image.clone()),
                        args: Some(args),
                        env: Some(env),
                        termination_message_policy: Some("FallbackToLogsOnError".into()),
                        volume_mounts: Some(mounts),
                        resources: Some(ResourceRequirements {
                            requests: Some(BTreeMap::from([
                                ("cpu".to_owned(), Quantity("250m".into())),
                                ("memory".to_owned(), Quantity("256Mi".into())),
                            ])),
                            limits: Some(BTreeMap::from([(
                                "memory".to_owned(),
                                Quantity("1Gi".into()),
                            )])),
                            ..ResourceRequirements::default()
                        }),
                        security_context: Some(container_security()),
                        ..Container::default()
                    }],
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    })
}

fn empty_dir(name: &str, medium: Option<&str>) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: medium.map(Into::into),
            size_limit: None,
        }),
        ..Volume::default()
    }
}

fn secret_volume(name: &str, secret: String) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret),
            default_mode: Some(0o440),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn non_empty(m: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!m.is_empty()).then_some(m)
}

fn non_empty_vec<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

/// The init container that puts `pgro` into a PostgreSQL image (which has no `cp` we could rely on being
/// allowed to run: the binary copies itself).
fn install_pgro(settings: &Settings) -> Container {
    Container {
        name: "install-pgro".into(),
        image: Some(settings.pgro_image.clone()),
        args: Some(vec!["copy-binary".into(), PGRO_IN_POSTGRES.into()]),
        volume_mounts: Some(vec![mount("pgro", PGRO_BIN_DIR, false)]),
        security_context: Some(container_security()),
        ..Container::default()
    }
}

/// What of a running PostgreSQL Deployment follows the replica's spec at once (behaviour S6): the
/// resources and the pod annotations. Everything else waits for the next restore.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveFields {
    /// The PostgreSQL container's resources.
    pub resources: Option<ResourceRequirements>,
    /// The pod template's annotations.
    pub pod_annotations: Option<BTreeMap<String, String>>,
}

/// The live fields the replica asks for now.
#[must_use]
pub fn live_fields(replica: &PostgresPhysicalReplica, settings: &Settings) -> LiveFields {
    let mut annotations = settings.pod_annotations.clone();
    annotations.extend(replica.spec.pod_annotations.clone().unwrap_or_default());
    LiveFields {
        resources: replica.spec.resources.clone(),
        pod_annotations: non_empty(annotations),
    }
}

impl LiveFields {
    /// The live fields of an existing Deployment.
    #[must_use]
    pub fn of(d: &Deployment) -> Self {
        let template = d.spec.as_ref().map(|s| &s.template);
        let resources = template
            .and_then(|t| t.spec.as_ref())
            .and_then(|s| s.containers.iter().find(|c| c.name == "postgres"))
            .and_then(|c| c.resources.clone())
            .filter(|r| *r != ResourceRequirements::default());
        // pgro's own annotations (the source object) are not the user's to change: never patched away.
        let pod_annotations = template
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.annotations.clone())
            .map(|a| {
                a.into_iter()
                    .filter(|(k, _)| !k.starts_with("pgro.bes.au/"))
                    .collect()
            })
            .and_then(non_empty);
        Self {
            resources,
            pod_annotations,
        }
    }

    /// A strategic-merge patch that sets these fields on the Deployment (annotations replaced wholesale
    /// so removed ones go too).
    #[must_use]
    pub fn patch(&self, current: &Self) -> serde_json::Value {
        let mut annotations = serde_json::Map::new();
        for k in current.pod_annotations.iter().flatten().map(|(k, _)| k) {
            annotations.insert(k.clone(), serde_json::Value::Null);
        }
        for (k, v) in self.pod_annotations.iter().flatten() {
            annotations.insert(k.clone(), serde_json::Value::String(v.clone()));
        }
        serde_json::json!({
            "spec": {"template": {
                "metadata": {"annotations": annotations},
                "spec": {"containers": [{
                    "name": "postgres",
                    "resources": self.resources.clone().unwrap_or_default(),
                }]},
            }}
        })
    }
}

/// Deployment `<restore>` running `pgro instance` in the `postgres:<major>` image (behaviour S4).
///
/// # Errors
///
/// [`BuildError::MissingMetadata`], or [`BuildError::NoPostgresVersion`] before the restore Job reported
/// the major version.
pub fn postgres_deployment(i: &RestoreInputs<'_>) -> Result<Deployment, BuildError> {
    let restore = i.restore_name()?;
    let replica = i.replica_name()?;
    let major = i
        .restore
        .status
        .as_ref()
        .and_then(|s| s.postgres_version.as_deref())
        .ok_or_else(|| BuildError::NoPostgresVersion {
            restore: restore.to_owned(),
        })?;
    let meta = i.meta(naming::restore_deployment(restore), "postgres")?;
    let labels = meta.labels.clone().unwrap_or_default();
    let selector = super::postgres_selector(restore);
    let live = live_fields(i.replica, i.settings);
    let spec = &i.replica.spec;
    let mut args = vec![
        "instance".to_owned(),
        "--pgdata".into(),
        PGDATA.into(),
        "--analytics-user".into(),
        spec.analytics_username.clone(),
        "--analytics-password-file".into(),
        format!("{CREDS_MOUNT}/{PASSWORD_KEY}"),
        "--admin-password-file".into(),
        format!("{ADMIN_MOUNT}/{PASSWORD_KEY}"),
        "--snapshot-id".into(),
        i.restore.spec.snapshot.clone(),
        "--port".into(),
        POSTGRES_PORT.to_string(),
        "--probe-address".into(),
        format!("0.0.0.0:{PROBE_PORT}"),
    ];
    if let Some(t) = &i.restore.spec.snapshot_time {
        args.extend(["--snapshot-time".into(), t.0.to_string()]);
    }
    args.extend([
        "--tls-cert-file".into(),
        format!("{TLS_MOUNT}/{TLS_CRT}"),
        "--tls-key-file".into(),
        format!("{TLS_MOUNT}/{TLS_KEY}"),
    ]);
    args.extend(tls_mounts::client_args(i.replica)?);
    if spec.read_only {
        args.push("--read-only".into());
    }
    if let Some(schemas) = spec.persistent_schemas.as_ref().filter(|s| !s.is_empty()) {
        args.extend(["--persistent-schema".into(), schemas.join(",")]);
    }
    // A WAL-archive restore replays from its source: `pgro wal-fetch` in this pod reads it.
    let source = match source_mounts::archive_source_mounts(i.restore.spec.source.as_ref())? {
        Some(m) => {
            args.extend(["--source".into(), source_mounts::SOURCE_FILE.into()]);
            if let Some(d) = m.secret_dir {
                args.extend(["--source-secret-dir".into(), d.into()]);
            }
            let target = source_mounts::recovery_target(i.restore.spec.recovery.as_ref());
            args.extend(["--recovery-target".into(), target.into()]);
            // A logical replay that fails says why here (read by the restore controller).
            args.extend(["--termination-log".into(), "/dev/termination-log".into()]);
            Some(m)
        }
        None => None,
    };
    let mut mounts = vec![
        mount("data", DATA_MOUNT, false),
        mount("pgro", PGRO_BIN_DIR, true),
        mount("credentials", CREDS_MOUNT, true),
        mount("admin", ADMIN_MOUNT, true),
        mount("tls", TLS_MOUNT, true),
        mount("shm", "/dev/shm", false),
        mount("tmp", "/tmp", false),
    ];
    let mut pod_annotations = live.pod_annotations.clone().unwrap_or_default();
    let source_volumes = match source {
        Some(m) => {
            mounts.extend(m.mounts);
            pod_annotations.extend(m.annotations);
            m.volumes
        }
        None => Vec::new(),
    };
    let mut env = Vec::new();
    if let Some(extra) = spec
        .postgres_extra_config
        .as_ref()
        .filter(|e| !e.trim().is_empty())
    {
        env.push(EnvVar {
            name: "PGRO_EXTRA_CONFIG".into(),
            value: Some(extra.clone()),
            ..EnvVar::default()
        });
    }
    let http_probe = |path: &str, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("probes".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(3),
        ..Probe::default()
    };
    let postgres = Container {
        name: "postgres".into(),
        image: Some(i.settings.postgres_image(major)),
        command: Some(vec![PGRO_IN_POSTGRES.into()]),
        args: Some(args),
        env: non_empty_vec(env),
        ports: Some(vec![
            ContainerPort {
                name: Some(POSTGRES_PORT_NAME.into()),
                container_port: POSTGRES_PORT,
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("probes".into()),
                container_port: PROBE_PORT,
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            },
        ]),
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        // Recovery can take long; /livez answers from the start, so this only catches a hung manager.
        liveness_probe: Some(http_probe("/livez", 10, 6)),
        resources: live.resources.clone(),
        volume_mounts: Some(mounts),
        security_context: Some(container_security()),
        ..Container::default()
    };
    let install = install_pgro(i.settings);
    Ok(Deployment {
        metadata: meta,
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            revision_history_limit: Some(1),
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                rolling_update: None,
            }),
            selector: LabelSelector {
                match_labels: Some(selector),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: non_empty(pod_annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    termination_grace_period_seconds: Some(60),
                    security_context: Some(pod_security(i.settings.postgres_uid)),
                    affinity: spec.affinity.clone(),
                    tolerations: non_empty_vec(merged_tolerations(
                        &spec.tolerations,
                        &i.settings.tolerations,
                    )),
                    node_selector: non_empty(i.settings.node_selector.clone()),
                    init_containers: Some(vec![install]),
                    containers: vec![postgres],
                    volumes: Some(
                        [
                            data_volume(restore),
                            empty_dir("pgro", None),
                            secret_volume("credentials", naming::credentials_secret(replica)),
                            secret_volume("admin", naming::admin_secret(replica)),
                            tls_mounts::volume(i.replica, true)?,
                            empty_dir("shm", Some("Memory")),
                            empty_dir("tmp", None),
                        ]
                        .into_iter()
                        .chain(source_volumes)
                        .collect(),
                    ),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    })
}

/// Service `<restore>` selecting this restore's pod (used by migrations and the operator).
///
/// # Errors
///
/// [`BuildError::MissingMetadata`].
pub fn restore_service(i: &RestoreInputs<'_>) -> Result<Service, BuildError> {
    let restore = i.restore_name()?;
    Ok(Service {
        metadata: i.meta(naming::restore_deployment(restore), "postgres")?,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(super::postgres_selector(restore)),
            ports: Some(vec![super::postgres_service_port()]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

/// Everything the schema migration Job is built from.
#[derive(Debug, Clone, Copy)]
pub struct MigrationInputs<'a> {
    /// The replica.
    pub replica: &'a PostgresPhysicalReplica,
    /// The serving restore (the source).
    pub source: &'a str,
    /// The new restore (the target).
    pub target: &'a str,
    /// PostgreSQL major of the image (the newer of the two, so its `pg_dump` reads both).
    pub major: &'a str,
    /// Time budget of the copy.
    pub budget: std::time::Duration,
    /// Operator settings in force.
    pub settings: &'a Settings,
    /// Whether the source serves TLS (false only for a restore made before pgro had TLS).
    pub source_tls: bool,
}

/// Job `<replica>-schema-migration` running `pgro migrate-schemas` in the PostgreSQL image (behaviour P1):
/// `pg_dump` and `psql` come from the image, `pgro` from the init container. Owned by the replica; labelled
/// with the restore it migrates into.
///
/// # Errors
///
/// [`BuildError::MissingMetadata`].
pub fn schema_migration_job(i: &MigrationInputs<'_>) -> Result<Job, BuildError> {
    let replica = super::replica_name(i.replica)?;
    let ns = i.replica.metadata.namespace.clone().unwrap_or_default();
    let labels = restore_labels(replica, i.target, "schema-migration");
    let svc = |restore: &str| format!("{}.{ns}.svc", naming::restore_deployment(restore));
    let schemas = i
        .replica
        .spec
        .persistent_schemas
        .clone()
        .unwrap_or_default();
    let budget_secs = i.budget.as_secs().max(1);
    let mut args = vec![
        "migrate-schemas".to_owned(),
        "--source-host".into(),
        svc(i.source),
        "--target-host".into(),
        svc(i.target),
        "--schema".into(),
        schemas.join(","),
        "--owner".into(),
        i.replica.spec.analytics_username.clone(),
        "--budget".into(),
        format!("{budget_secs}s"),
        "--termination-log".into(),
        "/dev/termination-log".into(),
    ];
    args.extend(tls_mounts::client_args(i.replica)?);
    if !i.source_tls {
        args.push("--source-plain-text".into());
    }
    let mut command = vec![PGRO_IN_POSTGRES.to_owned()];
    command.extend(args);
    let password = EnvVar {
        name: "PGPASSWORD".into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: naming::admin_secret(replica),
                key: PASSWORD_KEY.into(),
                optional: None,
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    };
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(naming::schema_migration_job(replica)),
            namespace: i.replica.metadata.namespace.clone(),
            labels: Some(labels.clone()),
            owner_references: Some(vec![super::controller_ref(i.replica)?]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            // At most three retries of a failed run, then the restore fails (P1).
            backoff_limit: Some(3),
            // The copy gives up by itself at the budget; this only catches a hung process.
            active_deadline_seconds: i64::try_from(budget_secs * 2 + 300).ok(),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: non_empty(i.settings.pod_annotations.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(pod_security(i.settings.postgres_uid)),
                    tolerations: non_empty_vec(merged_tolerations(
                        &i.replica.spec.tolerations,
                        &i.settings.tolerations,
                    )),
                    node_selector: non_empty(i.settings.node_selector.clone()),
                    init_containers: Some(vec![install_pgro(i.settings)]),
                    containers: vec![Container {
                        name: "migrate".into(),
                        image: Some(i.settings.postgres_image(i.major)),
                        command: Some(command),
                        env: Some(vec![
                            password,
                            EnvVar {
                                name: "PGRO_LOG_FORMAT".into(),
                                value: Some("json".into()),
                                ..EnvVar::default()
                            },
                        ]),
                        termination_message_policy: Some("FallbackToLogsOnError".into()),
                        volume_mounts: Some(vec![
                            mount("pgro", PGRO_BIN_DIR, true),
                            mount("tmp", "/tmp", false),
                            mount("tls", TLS_MOUNT, true),
                        ]),
                        security_context: Some(container_security()),
                        ..Container::default()
                    }],
                    volumes: Some(vec![
                        empty_dir("pgro", None),
                        empty_dir("tmp", None),
                        tls_mounts::volume(i.replica, false)?,
                    ]),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    })
}
