use clap::Parser;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use pgro_api::{PostgresPhysicalReplica, PostgresPhysicalRestore, testutil::from_yaml};

use super::*;
use crate::cli::{Cli, Command};
use crate::operator::settings::{OperatorArgs, Settings};

#[derive(Debug, Parser)]
struct SettingsArgs {
    #[command(flatten)]
    a: OperatorArgs,
}

fn settings() -> Settings {
    Settings::from_args(&SettingsArgs::parse_from(["t"]).a)
}

fn replica() -> PostgresPhysicalReplica {
    from_yaml(
        r"
apiVersion: pgro.bes.au/v1alpha1
kind: PostgresPhysicalReplica
metadata: {name: test, namespace: pgro-example, uid: 0a1b2c3d-0000-4000-8000-000000000001}
spec:
  kopiaSecretRef: {name: kopia-credentials}
  schedule: '0 */6 * * *'
  snapshotFilter: {tags: {area: postgres}}
  resources: {limits: {memory: 2Gi}, requests: {cpu: 500m}}
  podAnnotations: {team: data}
  serviceAnnotations: {external-dns/hostname: replica.example}
  tolerations: [{key: dedicated, operator: Equal, value: db, effect: NoSchedule}]
  postgresExtraConfig: |
    work_mem = '64MB'
",
    )
    .expect("replica")
}

fn restore() -> PostgresPhysicalRestore {
    from_yaml(
        r"
apiVersion: pgro.bes.au/v1alpha1
kind: PostgresPhysicalRestore
metadata: {name: test-20261121-101500, namespace: pgro-example, uid: 0a1b2c3d-0000-4000-8000-000000000002}
spec:
  replica: {name: test}
  snapshot: k5a4d2e0c0c6b1e9a7f3d2c1b0a998877
  snapshotSize: '1073741824'
  storageSize: 1127Mi
  snapshotTime: '2026-11-21T10:00:00Z'
status:
  postgresVersion: '16'
",
    )
    .expect("restore")
}

fn inputs<'a>(
    restore: &'a PostgresPhysicalRestore,
    replica: &'a PostgresPhysicalReplica,
    settings: &'a Settings,
) -> RestoreInputs<'a> {
    RestoreInputs {
        restore,
        replica,
        settings,
    }
}

fn pod(spec: Option<&PodSpec>) -> &PodSpec {
    spec.expect("pod spec")
}

fn container<'a>(p: &'a PodSpec, name: &str) -> &'a Container {
    p.containers
        .iter()
        .chain(p.init_containers.iter().flatten())
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("container {name}"))
}

#[test]
fn every_restore_child_is_owned_and_labelled() {
    let (r, rep, s) = (restore(), replica(), settings());
    let i = inputs(&r, &rep, &s);
    let metas = [
        data_pvc(&i).expect("pvc").metadata,
        restore_job(&i).expect("job").metadata,
        postgres_deployment(&i).expect("deployment").metadata,
        restore_service(&i).expect("service").metadata,
    ];
    for m in metas {
        let labels = m.labels.expect("labels");
        assert_eq!(labels[pgro_api::LABEL_REPLICA], "test");
        assert_eq!(labels[pgro_api::LABEL_RESTORE], "test-20261121-101500");
        let owner = &m.owner_references.expect("owner")[0];
        assert_eq!(owner.kind, "PostgresPhysicalRestore");
        assert_eq!(owner.name, "test-20261121-101500");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(m.namespace.as_deref(), Some("pgro-example"));
        assert!(m.name.expect("name").len() <= 63);
    }
}

#[test]
fn restore_job_command_line_parses_as_pgro_restore() {
    let (r, rep, s) = (restore(), replica(), settings());
    let job = restore_job(&inputs(&r, &rep, &s)).expect("job");
    let spec = job.spec.expect("spec");
    let c = container(pod(spec.template.spec.as_ref()), "restore");
    let mut argv = vec!["pgro".to_owned()];
    argv.extend(c.args.clone().expect("args"));
    // Repository options come from the environment in the pod; give the parser the minimum here.
    argv.extend(["--bucket".into(), "b".into()]);
    let cli = Cli::try_parse_from(&argv).expect("pgro restore accepts the Job's arguments");
    let Command::Restore(args) = cli.command else {
        panic!("not a restore command")
    };
    assert_eq!(args.snapshot, r.spec.snapshot);
    assert_eq!(args.target, Some(std::path::PathBuf::from(DATA_MOUNT)));
    assert_eq!(
        args.termination_log.as_deref(),
        Some(std::path::Path::new("/dev/termination-log"))
    );
}

#[test]
fn restore_job_takes_credentials_from_the_secret_never_from_arguments() {
    let (r, rep, s) = (restore(), replica(), settings());
    let job = restore_job(&inputs(&r, &rep, &s)).expect("job");
    let spec = job.spec.expect("spec");
    let c = container(pod(spec.template.spec.as_ref()), "restore");
    let env = c.env.clone().expect("env");
    for (key, var) in crate::cli::repository::SECRET_KEY_ENV {
        let e = env.iter().find(|e| e.name == *var).expect(var);
        let sel = e
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("secretKeyRef");
        assert_eq!(sel.name, "kopia-credentials");
        assert_eq!(sel.key, *key);
        assert_eq!(sel.optional, Some(true));
        assert!(e.value.is_none());
    }
    assert!(c.args.iter().flatten().all(|a| !a.contains("password")));
}

#[test]
fn restore_job_reads_the_kopia_secret_named_by_source_kopia_too() {
    let (r, s) = (restore(), settings());
    let mut rep = replica();
    rep.spec.kopia_secret_ref = None;
    rep.spec.source = Some(pgro_api::Source {
        kopia: Some(pgro_api::KopiaSource {
            secret_ref: k8s_openapi::api::core::v1::SecretReference {
                name: Some("kopia-via-source".into()),
                namespace: None,
            },
        }),
        ..pgro_api::Source::default()
    });
    let job = restore_job(&inputs(&r, &rep, &s)).expect("job");
    let spec = job.spec.expect("spec");
    let env = container(pod(spec.template.spec.as_ref()), "restore")
        .env
        .clone()
        .expect("env");
    assert!(
        env.iter()
            .filter_map(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
            .all(|sel| sel.name == "kopia-via-source")
    );
    // A replica switched to a source this build does not read gets no Job rather than one with no Secret.
    rep.spec.source = Some(pgro_api::Source {
        pgbackrest: Some(
            serde_json::from_value(serde_json::json!({"volume": {"claimName": "repo1"}}))
                .expect("pgbackrest source"),
        ),
        ..pgro_api::Source::default()
    });
    assert!(matches!(
        restore_job(&inputs(&r, &rep, &s)),
        Err(BuildError::MissingMetadata { .. })
    ));
}

#[test]
fn restore_job_fails_fast_on_unretryable_exit_codes_and_has_a_size_based_deadline() {
    let (r, rep, s) = (restore(), replica(), settings());
    let spec = restore_job(&inputs(&r, &rep, &s))
        .expect("job")
        .spec
        .expect("spec");
    let rule = &spec.pod_failure_policy.expect("policy").rules[0];
    assert_eq!(rule.action, "FailJob");
    let codes = &rule.on_exit_codes.as_ref().expect("codes").values;
    for code in [2, 4, 5, 9, 10, 11, 12] {
        assert!(codes.contains(&code), "{code}");
    }
    for retryable in [1, 7] {
        assert!(!codes.contains(&retryable), "{retryable}");
    }
    assert_eq!(spec.backoff_limit, Some(3));
    assert_eq!(spec.active_deadline_seconds, Some(3600 + 1800));
    assert_eq!(restore_deadline_seconds(&s, 0), 3600);
    assert_eq!(restore_deadline_seconds(&s, 250), 3600 + 3 * 1800);
    assert_eq!(ready_timeout(&s, 0).as_secs(), 1800);
    assert_eq!(ready_timeout(&s, 150 << 30).as_secs(), 1800 + 2 * 900);
}

#[test]
fn pods_run_non_root_without_capabilities_or_api_token() {
    let (r, rep, s) = (restore(), replica(), settings());
    let i = inputs(&r, &rep, &s);
    let job = restore_job(&i).expect("job").spec.expect("spec").template;
    let dep = postgres_deployment(&i)
        .expect("deployment")
        .spec
        .expect("spec")
        .template;
    for p in [job.spec.expect("pod"), dep.spec.expect("pod")] {
        let sc = p.security_context.as_ref().expect("pod security");
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.run_as_user, Some(999));
        assert_eq!(sc.fs_group, Some(999));
        assert_eq!(p.automount_service_account_token, Some(false));
        for c in p
            .containers
            .iter()
            .chain(p.init_containers.iter().flatten())
        {
            let csc = c.security_context.as_ref().expect("container security");
            assert_eq!(csc.allow_privilege_escalation, Some(false));
            assert_eq!(
                csc.capabilities.as_ref().and_then(|c| c.drop.clone()),
                Some(vec!["ALL".to_owned()])
            );
        }
        assert_eq!(p.tolerations.as_ref().expect("tolerations").len(), 1);
    }
}

#[test]
fn deployment_runs_pgro_instance_in_the_postgres_image_of_the_restored_major() {
    let (r, rep, s) = (restore(), replica(), settings());
    let d = postgres_deployment(&inputs(&r, &rep, &s)).expect("deployment");
    let spec = d.spec.expect("spec");
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(
        spec.strategy.and_then(|s| s.type_).as_deref(),
        Some("Recreate")
    );
    let p = spec.template.spec.as_ref().expect("pod");
    let pg = container(p, "postgres");
    assert_eq!(pg.image.as_deref(), Some("postgres:16"));
    assert_eq!(pg.command, Some(vec![PGRO_IN_POSTGRES.to_owned()]));
    let args = pg.args.clone().expect("args");
    assert_eq!(args[0], "instance");
    assert!(args.contains(&"--read-only".to_owned()));
    let extra = pg
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "PGRO_EXTRA_CONFIG")
        .and_then(|e| e.value.clone());
    assert_eq!(extra.as_deref(), Some("work_mem = '64MB'\n"));
    let mut argv = vec!["pgro".to_owned()];
    argv.extend(args);
    assert!(
        matches!(
            Cli::try_parse_from(&argv)
                .expect("pgro instance accepts them")
                .command,
            Command::Instance(_)
        ),
        "instance command"
    );
    let install = container(p, "install-pgro");
    assert_eq!(
        install.args,
        Some(vec!["copy-binary".to_owned(), PGRO_IN_POSTGRES.to_owned()])
    );
    assert_eq!(
        pg.readiness_probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.as_deref()),
        Some("/readyz")
    );
    assert_eq!(
        pg.resources
            .as_ref()
            .and_then(|r| r.limits.clone())
            .expect("limits")["memory"]
            .0,
        "2Gi"
    );
    let volumes = p.volumes.clone().expect("volumes");
    let claim = volumes
        .iter()
        .find_map(|v| v.persistent_volume_claim.as_ref())
        .expect("claim");
    assert_eq!(claim.claim_name, "test-20261121-101500-data");
    let shm = volumes.iter().find(|v| v.name == "shm").expect("shm");
    assert_eq!(
        shm.empty_dir.as_ref().and_then(|e| e.medium.as_deref()),
        Some("Memory")
    );
    let selector = spec.selector.match_labels.expect("selector");
    assert_eq!(selector, postgres_selector("test-20261121-101500"));
    assert_eq!(
        spec.template
            .metadata
            .expect("meta")
            .annotations
            .expect("annotations")["team"],
        "data"
    );
}

#[test]
fn writable_replica_has_no_read_only_flag_and_deployment_needs_a_version() {
    let (mut r, mut rep, s) = (restore(), replica(), settings());
    rep.spec.read_only = false;
    let d = postgres_deployment(&inputs(&r, &rep, &s)).expect("deployment");
    let p = d.spec.expect("spec").template.spec.expect("pod");
    assert!(
        !container(&p, "postgres")
            .args
            .iter()
            .flatten()
            .any(|a| a == "--read-only")
    );
    r.status = None;
    assert!(matches!(
        postgres_deployment(&inputs(&r, &rep, &s)),
        Err(BuildError::NoPostgresVersion { .. })
    ));
}

#[test]
fn live_fields_patch_sets_resources_and_replaces_annotations() {
    let (r, mut rep, s) = (restore(), replica(), settings());
    let d = postgres_deployment(&inputs(&r, &rep, &s)).expect("deployment");
    let current = LiveFields::of(&d);
    assert_eq!(current, live_fields(&rep, &s));
    rep.spec.pod_annotations = Some([("cost".to_owned(), "low".to_owned())].into());
    let desired = live_fields(&rep, &s);
    assert_ne!(current, desired);
    let patch = desired.patch(&current);
    let ann = &patch["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(ann["cost"], "low");
    assert!(ann["team"].is_null());
    assert_eq!(
        patch["spec"]["template"]["spec"]["containers"][0]["name"],
        "postgres"
    );
}

#[test]
fn stable_service_selects_the_active_restore_or_nothing() {
    let rep = replica();
    let none = replica_service(&rep, None).expect("service");
    let spec = none.spec.expect("spec");
    assert_eq!(
        spec.selector.expect("selector")[pgro_api::LABEL_RESTORE],
        "none"
    );
    assert_eq!(spec.ports.expect("ports")[0].port, 5432);
    let active = replica_service(&rep, Some("test-20261121-101500")).expect("service");
    assert_eq!(
        active.spec.expect("spec").selector.expect("selector")[pgro_api::LABEL_RESTORE],
        "test-20261121-101500"
    );
    assert_eq!(
        active.metadata.annotations.expect("annotations")["external-dns/hostname"],
        "replica.example"
    );
    assert_eq!(active.metadata.name.as_deref(), Some("test"));
}

#[test]
fn credentials_secret_follows_analytics_username() {
    let mut rep = replica();
    rep.spec.analytics_username = "bi_reader".into();
    let s = credentials_secret(&rep, "pw").expect("secret");
    assert_eq!(s.metadata.name.as_deref(), Some("test-creds"));
    let data = s.data.expect("data");
    assert_eq!(data[USERNAME_KEY].0, b"bi_reader");
    assert_eq!(data[PASSWORD_KEY].0, b"pw");
    let a = admin_secret(&rep, "apw").expect("secret");
    assert_eq!(a.metadata.name.as_deref(), Some("test-admin"));
    assert_eq!(a.data.expect("data")[USERNAME_KEY].0, ADMIN_USER.as_bytes());
}

#[test]
fn long_names_stay_within_63_characters() {
    let mut rep = replica();
    rep.metadata.name = Some("a".repeat(63));
    let mut r = restore();
    let name = crate::operator::naming::restore_name(
        rep.metadata.name.as_deref().expect("name"),
        "2026-11-21T10:15:00Z".parse().expect("ts"),
    );
    r.metadata.name = Some(name);
    let s = settings();
    let i = inputs(&r, &rep, &s);
    for n in [
        data_pvc(&i).expect("pvc").metadata.name,
        restore_job(&i).expect("job").metadata.name,
        postgres_deployment(&i).expect("deployment").metadata.name,
        replica_service(&rep, None).expect("svc").metadata.name,
        credentials_secret(&rep, "x").expect("secret").metadata.name,
        admin_secret(&rep, "x").expect("secret").metadata.name,
    ] {
        assert!(n.expect("name").len() <= 63);
    }
}

#[test]
fn builder_snapshots() {
    let (r, rep, s) = (restore(), replica(), settings());
    let i = inputs(&r, &rep, &s);
    insta::assert_yaml_snapshot!("data_pvc", data_pvc(&i).expect("pvc"));
    insta::assert_yaml_snapshot!("restore_job", restore_job(&i).expect("job"));
    insta::assert_yaml_snapshot!(
        "postgres_deployment",
        postgres_deployment(&i).expect("deployment")
    );
    insta::assert_yaml_snapshot!("restore_service", restore_service(&i).expect("service"));
    insta::assert_yaml_snapshot!(
        "replica_service",
        replica_service(&rep, Some("test-20261121-101500")).expect("service")
    );
    insta::assert_yaml_snapshot!(
        "credentials_secret",
        credentials_secret(&rep, "<password>").expect("secret")
    );
}

/// Regression: the Services selected pods by the restore label alone, which the schema migration Job's pods
/// carry too, so connections to a restore's Service could land on the Job's pod.
#[test]
fn services_select_only_postgres_pods_never_job_pods() {
    let (r, rep, s) = (restore(), replica(), settings());
    let i = inputs(&r, &rep, &s);
    let job_pod_labels = |j: k8s_openapi::api::batch::v1::Job| {
        j.spec
            .and_then(|s| s.template.metadata)
            .and_then(|m| m.labels)
            .expect("pod labels")
    };
    let migration = schema_migration_job(&MigrationInputs {
        replica: &rep,
        source: "old",
        target: "test-20261121-101500",
        major: "16",
        budget: std::time::Duration::from_secs(60),
        settings: &s,
        source_tls: true,
    })
    .expect("job");
    let selects = |selector: &std::collections::BTreeMap<String, String>,
                   labels: &std::collections::BTreeMap<String, String>| {
        selector.iter().all(|(k, v)| labels.get(k) == Some(v))
    };
    let restore_svc = restore_service(&i)
        .expect("svc")
        .spec
        .expect("spec")
        .selector
        .expect("selector");
    let stable = replica_service(&rep, Some("test-20261121-101500"))
        .expect("svc")
        .spec
        .expect("spec")
        .selector
        .expect("selector");
    let pg_pod = postgres_deployment(&i)
        .expect("deployment")
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.labels)
        .expect("labels");
    for selector in [&restore_svc, &stable] {
        assert!(selects(selector, &pg_pod));
        assert!(!selects(selector, &job_pod_labels(migration.clone())));
        assert!(!selects(
            selector,
            &job_pod_labels(restore_job(&i).expect("job"))
        ));
    }
}

/// The secrets a pod's `tls` volume projects, with their keys.
fn tls_sources(p: &PodSpec) -> Vec<(String, Vec<String>)> {
    let v = p
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "tls")
        .expect("tls volume");
    v.projected
        .as_ref()
        .and_then(|p| p.sources.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| s.secret)
        .map(|s| {
            let keys = s.items.unwrap_or_default().into_iter().map(|i| i.key);
            (s.name, keys.collect())
        })
        .collect()
}

#[test]
fn tls_the_pod_gets_the_certificate_and_key_never_the_ca_key_and_a_brought_secret_replaces_pgros() {
    let s = settings();
    let mut rep = replica();
    let mut rest = restore();
    rest.status = Some(pgro_api::PostgresPhysicalRestoreStatus {
        postgres_version: Some("16".into()),
        ..Default::default()
    });
    let d = postgres_deployment(&inputs(&rest, &rep, &s)).expect("deployment");
    let p = pod(d.spec.as_ref().and_then(|s| s.template.spec.as_ref()));
    let sources = tls_sources(p);
    assert_eq!(
        sources,
        [
            ("test-ca".to_owned(), vec!["ca.crt".to_owned()]),
            (
                "test-tls".to_owned(),
                vec!["tls.crt".to_owned(), "tls.key".to_owned()]
            )
        ]
    );
    let args = container(p, "postgres").args.clone().unwrap_or_default();
    let after = |flag: &str| {
        args.iter()
            .skip_while(|a| *a != flag)
            .nth(1)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(after("--tls-server-name"), "test.pgro-example.svc");
    assert_eq!(after("--tls-key-file"), "/etc/pgro/tls/tls.key");

    rep.spec.tls = Some(pgro_api::TlsSpec {
        certificate_secret_ref: Some(k8s_openapi::api::core::v1::LocalObjectReference {
            name: "from-cert-manager".into(),
        }),
    });
    let d = postgres_deployment(&inputs(&rest, &rep, &s)).expect("deployment");
    let p = pod(d.spec.as_ref().and_then(|s| s.template.spec.as_ref()));
    assert_eq!(tls_sources(p)[1].0, "from-cert-manager");

    // The migration Job's pod, and its `migrate` container's command line.
    let migration = |source_tls: bool| {
        let job = schema_migration_job(&MigrationInputs {
            replica: &rep,
            source: "old",
            target: "new",
            major: "16",
            budget: std::time::Duration::from_secs(60),
            settings: &s,
            source_tls,
        })
        .expect("job");
        let p = job.spec.and_then(|s| s.template.spec).expect("pod spec");
        let cmd = container(&p, "migrate").command.clone().unwrap_or_default();
        (p, cmd)
    };
    let (p, cmd) = migration(true);
    assert_eq!(
        tls_sources(&p),
        [("test-ca".to_owned(), vec!["ca.crt".to_owned()])],
        "the migration verifies servers; it holds no server key"
    );
    assert!(
        cmd.windows(2)
            .any(|w| w[0] == "--tls-ca-file" && w[1] == "/etc/pgro/tls/ca.crt")
    );
    assert!(!cmd.contains(&"--source-plain-text".to_owned()));

    // A source restore made before pgro had TLS is read in plain text (its Deployment has no certificate).
    assert!(serves_tls(&d));
    let mut old = d.clone();
    if let Some(c) = old
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
        .and_then(|p| p.containers.first_mut())
    {
        c.args = Some(vec!["instance".into()]);
    }
    assert!(!serves_tls(&old));
    let (_, cmd) = migration(false);
    assert!(cmd.contains(&"--source-plain-text".to_owned()));
    let args = std::iter::once("pgro").chain(cmd.iter().skip(1).map(String::as_str));
    let parsed = Cli::try_parse_from(args);
    assert!(parsed.is_ok(), "{parsed:?}");
}
