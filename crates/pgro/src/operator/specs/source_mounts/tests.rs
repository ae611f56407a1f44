use clap::Parser;
use pgro_api::{PostgresPhysicalReplica, PostgresPhysicalRestore, testutil::from_yaml};

use super::*;
use crate::cli::{Cli, Command};
use crate::operator::settings::{OperatorArgs, Settings};
use crate::operator::specs::{RestoreInputs, restore_job};

#[derive(Debug, Parser)]
struct SettingsArgs {
    #[command(flatten)]
    a: OperatorArgs,
}

const PGO_SOURCE: &str = "pgbackrest:
      stanza: db
      repoPath: /pgbackrest/repo1
      s3: {bucket: backups, endpoint: s3.eu-west-1.amazonaws.com, region: eu-west-1}
      secretRef: {name: pgo-s3-creds}";

fn replica() -> PostgresPhysicalReplica {
    from_yaml(&format!(
        "apiVersion: pgro.bes.au/v1alpha1
kind: PostgresPhysicalReplica
metadata: {{name: test, namespace: ns, uid: 0a1b2c3d-0000-4000-8000-000000000001}}
spec:
  schedule: '0 */6 * * *'
  source:
    {PGO_SOURCE}
"
    ))
    .expect("replica")
}

fn restore(recovery: &str) -> PostgresPhysicalRestore {
    from_yaml(&format!(
        "apiVersion: pgro.bes.au/v1alpha1
kind: PostgresPhysicalRestore
metadata: {{name: test-20261206-100000, namespace: ns, uid: 0a1b2c3d-0000-4000-8000-000000000002}}
spec:
  replica: {{name: test}}
  snapshot: 20261206-090000F_20261206-093000I
  snapshotSize: '1073741824'
  storageSize: 1127Mi
  snapshotTime: '2026-12-06T09:30:00Z'
  recovery: {{target: {recovery}}}
  source:
    {PGO_SOURCE}
"
    ))
    .expect("restore")
}

#[test]
fn a_pgbackrest_restore_job_mounts_the_source_and_parses_as_pgro_restore() {
    let (rep, settings) = (
        replica(),
        Settings::from_args(&SettingsArgs::parse_from(["t"]).a),
    );
    for (target, expected) in [("latest", "latest"), ("consistent", "consistent")] {
        let r = restore(target);
        let job = restore_job(&RestoreInputs {
            restore: &r,
            replica: &rep,
            settings: &settings,
        })
        .expect("job");
        let tpl = job.spec.expect("spec").template;
        let pod = tpl.spec.expect("pod");
        let c = &pod.containers[0];
        let mut argv = vec!["pgro".to_owned()];
        argv.extend(c.args.clone().expect("args"));
        let Command::Restore(args) = Cli::try_parse_from(&argv).expect("parses").command else {
            panic!("not a restore")
        };
        assert_eq!(args.snapshot, "20261206-090000F_20261206-093000I");
        assert_eq!(
            args.source.as_deref(),
            Some(std::path::Path::new(SOURCE_FILE))
        );
        assert_eq!(
            args.secret_dir.as_deref(),
            Some(std::path::Path::new(SOURCE_SECRET_DIR))
        );
        assert_eq!(
            format!("{:?}", args.recovery_target).to_lowercase(),
            expected,
            "{argv:?}"
        );
        // The annotation the downward API turns into source.yaml holds the restore's source.
        let yaml = &tpl
            .metadata
            .expect("meta")
            .annotations
            .expect("annotations")[SOURCE_ANNOTATION];
        let back: Source = serde_yaml::from_str(yaml).expect("yaml");
        assert_eq!(back, r.spec.source.clone().expect("source"));
        let vols = pod.volumes.expect("volumes");
        let downward = vols
            .iter()
            .find(|v| v.name == "source")
            .and_then(|v| v.downward_api.as_ref())
            .expect("downward");
        let item = &downward.items.as_ref().expect("items")[0];
        assert_eq!(
            item.field_ref.as_ref().map(|f| f.field_path.as_str()),
            Some("metadata.annotations['pgro.bes.au/source']")
        );
        let secret = vols
            .iter()
            .find(|v| v.name == "source-secret")
            .and_then(|v| v.secret.as_ref())
            .expect("secret volume");
        assert_eq!(
            (secret.secret_name.as_deref(), secret.default_mode),
            (Some("pgo-s3-creds"), Some(0o440))
        );
        let mounts = c.volume_mounts.clone().expect("mounts");
        for name in ["source", "source-secret"] {
            assert!(
                mounts
                    .iter()
                    .any(|m| m.name == name && m.read_only == Some(true)),
                "{name} read-only"
            );
        }
        // No credential reaches the environment or the command line.
        let env = c.env.clone().unwrap_or_default();
        assert!(env.iter().all(|e| e.value_from.is_none()), "{env:?}");
        assert!(argv.iter().all(|a| !a.contains("key")));
    }
}

#[test]
fn a_volume_source_is_mounted_read_only_at_its_repo_path() {
    let p: PgbackrestSource = serde_yaml::from_str("{stanza: db, repoPath: /data/pgbackrest/repo1, volume: {claimName: cpo-repo, subPath: repo1}}").expect("source");
    let m = source_mounts(&p).expect("mounts");
    let repo = m
        .mounts
        .iter()
        .find(|m| m.name == "source-repository")
        .expect("mount");
    assert_eq!(
        (
            repo.mount_path.as_str(),
            repo.sub_path.as_deref(),
            repo.read_only
        ),
        ("/data/pgbackrest/repo1", Some("repo1"), Some(true))
    );
    let claim = m
        .volumes
        .iter()
        .find_map(|v| v.persistent_volume_claim.as_ref())
        .expect("claim");
    assert_eq!(
        (claim.claim_name.as_str(), claim.read_only),
        ("cpo-repo", Some(true))
    );
    assert_eq!(m.secret_dir, None);
}

#[test]
fn the_postgres_pod_of_a_pgbackrest_restore_gets_the_source_for_wal_fetch() {
    use crate::operator::specs::{LiveFields, live_fields, postgres_deployment};
    let (rep, settings) = (
        replica(),
        Settings::from_args(&SettingsArgs::parse_from(["t"]).a),
    );
    let mut r = restore("consistent");
    r.status = Some(pgro_api::PostgresPhysicalRestoreStatus {
        postgres_version: Some("16".into()),
        ..Default::default()
    });
    let d = postgres_deployment(&RestoreInputs {
        restore: &r,
        replica: &rep,
        settings: &settings,
    })
    .expect("deployment");
    let tpl = d.spec.as_ref().expect("spec").template.clone();
    let pod = tpl.spec.expect("pod");
    let c = pod
        .containers
        .iter()
        .find(|c| c.name == "postgres")
        .expect("postgres");
    let mut argv = vec!["pgro".to_owned()];
    argv.extend(c.args.clone().expect("args"));
    let Command::Instance(args) = Cli::try_parse_from(&argv)
        .expect("parses as pgro instance")
        .command
    else {
        panic!("not an instance")
    };
    assert_eq!(
        args.source.as_deref(),
        Some(std::path::Path::new(SOURCE_FILE))
    );
    assert_eq!(
        args.source_secret_dir.as_deref(),
        Some(std::path::Path::new(SOURCE_SECRET_DIR))
    );
    assert!(
        argv.windows(2)
            .any(|w| w[0] == "--recovery-target" && w[1] == "consistent"),
        "{argv:?}"
    );
    let mounts = c.volume_mounts.clone().expect("mounts");
    assert!(
        mounts
            .iter()
            .any(|m| m.name == "source-secret" && m.read_only == Some(true))
    );
    assert!(
        pod.volumes
            .expect("volumes")
            .iter()
            .any(|v| v.name == "source")
    );
    assert!(
        tpl.metadata
            .expect("meta")
            .annotations
            .expect("annotations")
            .contains_key(SOURCE_ANNOTATION)
    );
    // The live-field comparison never sees (so never patches away) pgro's own annotation.
    assert_eq!(LiveFields::of(&d), live_fields(&rep, &settings));
}

#[test]
fn a_barman_source_projects_only_its_referenced_keys_as_secret_slash_key() {
    let b: BarmanCloudSource = serde_yaml::from_str(
        "destinationPath: s3://backups/prod
serverName: cluster-example
endpointURL: https://minio.minio.svc:9000
endpointCA: {name: minio-ca, key: ca.crt}
s3Credentials:
  accessKeyId: {name: minio-creds, key: ACCESS_KEY_ID}
  secretAccessKey: {name: minio-creds, key: ACCESS_SECRET_KEY}",
    )
    .expect("source");
    let m = archive_source_mounts(Some(&Source {
        barman_cloud: Some(b.clone()),
        ..Source::default()
    }))
    .expect("mounts")
    .expect("a WAL-archive source");
    assert_eq!(m.secret_dir, Some(SOURCE_SECRET_DIR));
    let projected = m
        .volumes
        .iter()
        .find_map(|v| v.projected.as_ref())
        .expect("projected volume");
    let items: Vec<(String, String, String)> = projected
        .sources
        .iter()
        .flatten()
        .filter_map(|p| p.secret.as_ref())
        .flat_map(|s| {
            s.items
                .iter()
                .flatten()
                .map(|i| (s.name.clone(), i.key.clone(), i.path.clone()))
        })
        .collect();
    assert_eq!(
        items,
        [
            ("minio-ca".into(), "ca.crt".into(), "minio-ca/ca.crt".into()),
            (
                "minio-creds".into(),
                "ACCESS_KEY_ID".into(),
                "minio-creds/ACCESS_KEY_ID".into()
            ),
            (
                "minio-creds".into(),
                "ACCESS_SECRET_KEY".into(),
                "minio-creds/ACCESS_SECRET_KEY".into()
            ),
        ]
    );
    // The annotation round-trips to the same source (what `--source` reads in the pod).
    let yaml = &m.annotations[SOURCE_ANNOTATION];
    let back: Source = serde_yaml::from_str(yaml).expect("yaml");
    assert_eq!(back.barman_cloud, Some(b));
    // Kopia has no WAL archive: nothing to mount.
    assert_eq!(archive_source_mounts(None).expect("none"), None);
}

#[test]
fn a_restic_source_mounts_each_secret_whole_and_the_pod_reports_replay_failures() {
    let source = "restic:
      repository: s3:http://minio.storage:9000/kubestash/demo/postgres/repository/v1/frequent-backup/dump
      secretRef: {name: storage-creds}
      encryptionSecret: {name: encryption-secret}";
    let rep: PostgresPhysicalReplica = from_yaml(&format!(
        "apiVersion: pgro.bes.au/v1alpha1
kind: PostgresPhysicalReplica
metadata: {{name: test, namespace: ns, uid: 0a1b2c3d-0000-4000-8000-000000000001}}
spec:
  schedule: '0 */6 * * *'
  source:
    {source}
"
    ))
    .expect("replica");
    let mut r: PostgresPhysicalRestore = from_yaml(&format!(
        "apiVersion: pgro.bes.au/v1alpha1
kind: PostgresPhysicalRestore
metadata: {{name: test-20261206-100000, namespace: ns, uid: 0a1b2c3d-0000-4000-8000-000000000002}}
spec:
  replica: {{name: test}}
  snapshot: 5d1c0f3a9b7e4d2c8a6f1e0b3c5d7a9e2f4b6c8d0e1a3b5c7d9f0e2a4c6b8d0f
  snapshotSize: '1073741824'
  storageSize: 1127Mi
  source:
    {source}
"
    ))
    .expect("restore");
    let settings = Settings::from_args(&SettingsArgs::parse_from(["t"]).a);
    let inputs = RestoreInputs {
        restore: &r,
        replica: &rep,
        settings: &settings,
    };
    let job = restore_job(&inputs).expect("job");
    let pod = job.spec.expect("spec").template.spec.expect("pod");
    let c = &pod.containers[0];
    let mut argv = vec!["pgro".to_owned()];
    argv.extend(c.args.clone().expect("args"));
    let Command::Restore(args) = Cli::try_parse_from(&argv).expect("parses").command else {
        panic!("not a restore")
    };
    assert_eq!(
        args.secret_dir.as_deref(),
        Some(std::path::Path::new(SOURCE_SECRET_DIR))
    );
    let vols = pod.volumes.expect("volumes");
    let mounts = c.volume_mounts.clone().expect("mounts");
    for secret in ["storage-creds", "encryption-secret"] {
        let v = vols
            .iter()
            .find(|v| v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == Some(secret))
            .unwrap_or_else(|| panic!("{secret} volume"));
        assert!(
            v.secret.as_ref().is_some_and(|s| s.items.is_none()),
            "whole Secret"
        );
        let m = mounts.iter().find(|m| m.name == v.name).expect("mounted");
        assert_eq!(m.mount_path, format!("{SOURCE_SECRET_DIR}/{secret}"));
        assert_eq!(m.read_only, Some(true));
    }
    // The PostgreSQL pod replays from the same source and writes its failure report.
    r.status = Some(pgro_api::PostgresPhysicalRestoreStatus {
        postgres_version: Some("16".into()),
        ..Default::default()
    });
    let d = crate::operator::specs::postgres_deployment(&RestoreInputs {
        restore: &r,
        replica: &rep,
        settings: &settings,
    })
    .expect("deployment");
    let pod = d.spec.expect("spec").template.spec.expect("pod");
    let args = pod.containers[0].args.clone().expect("args");
    for (flag, value) in [
        ("--source", SOURCE_FILE),
        ("--source-secret-dir", SOURCE_SECRET_DIR),
        ("--termination-log", "/dev/termination-log"),
    ] {
        let at = args
            .iter()
            .position(|a| a == flag)
            .unwrap_or_else(|| panic!("{flag}: {args:?}"));
        assert_eq!(args[at + 1], value);
    }
    assert_eq!(
        args[args
            .iter()
            .position(|a| a == "--snapshot-id")
            .expect("snapshot")
            + 1],
        r.spec.snapshot
    );
}
