//! Shared by the barman-cloud command-line tests: what the restore Job mounts for a [`BarmanWorld`] — the
//! `spec.source` object (CNPG's `barmanObjectStore` shape) and the referenced Secret keys as
//! `<secret>/<key>` — and the `pgro` binary, all readable by the PostgreSQL user (its `restore_command`
//! runs `pgro wal-fetch` with them).

#![allow(dead_code, unreachable_pub)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pgro_testkit::Components;
use pgro_testkit::barman::BarmanWorld;
use pgro_testkit::fixtures::{MINIO_SECRET, MINIO_USER};

/// The source as files, and the binary.
pub struct Cfg {
    /// `source.yaml`.
    pub source: PathBuf,
    /// The Secret directory (`minio/ACCESS_KEY_ID`, `minio/ACCESS_SECRET_KEY`).
    pub secrets: PathBuf,
    /// A copy of `pgro` the PostgreSQL user can run.
    pub bin: PathBuf,
}

fn open_up(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).expect("chmod");
}

impl Cfg {
    /// Files for the world's store at `s3://backups/cnpg`, server `cluster-example`.
    pub fn new(world: &BarmanWorld) -> Self {
        Self::with_yaml(world, &Self::source_yaml(world, "cnpg", "cluster-example"))
    }

    /// CNPG's block for the world's MinIO.
    pub fn source_yaml(world: &BarmanWorld, prefix: &str, server: &str) -> String {
        format!(
            "barmanCloud:
  destinationPath: s3://{}/{prefix}
  serverName: {server}
  endpointURL: http://{}
  s3Credentials:
    accessKeyId: {{name: minio, key: ACCESS_KEY_ID}}
    secretAccessKey: {{name: minio, key: ACCESS_SECRET_KEY}}
  wal: {{compression: gzip, maxParallel: 8}}
",
            BarmanWorld::BUCKET,
            world.minio.endpoint()
        )
    }

    /// Files for `yaml` with the MinIO credentials as the Secret `minio`, in `<root>/cfg`.
    pub fn with_yaml(world: &BarmanWorld, yaml: &str) -> Self {
        Self::at(&world.root.path().join("cfg"), yaml)
    }

    /// Files for `yaml` with the MinIO credentials as the Secret `minio`, in `dir` (a Job's or a pod's
    /// mounts).
    pub fn at(dir: &Path, yaml: &str) -> Self {
        let dir = dir.to_owned();
        let secrets = dir.join("secret");
        let minio = secrets.join("minio");
        std::fs::create_dir_all(&minio).expect("mkdir");
        let source = dir.join("source.yaml");
        std::fs::write(&source, yaml).expect("source.yaml");
        for (k, v) in [
            ("ACCESS_KEY_ID", MINIO_USER),
            ("ACCESS_SECRET_KEY", MINIO_SECRET),
        ] {
            std::fs::write(minio.join(k), format!("{v}\n")).expect("key");
            open_up(&minio.join(k), 0o644);
        }
        let bin = dir.join("pgro");
        std::fs::copy(env!("CARGO_BIN_EXE_pgro"), &bin).expect("copy pgro");
        for d in [&dir, &secrets, &minio] {
            open_up(d, 0o755);
        }
        open_up(&source, 0o644);
        Self {
            source,
            secrets,
            bin,
        }
    }

    /// `pgro <args> --source … --secret-dir …`.
    pub fn cmd(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .arg("--source")
            .arg(&self.source)
            .arg("--secret-dir")
            .arg(&self.secrets)
            .output()
            .expect("run pgro")
    }

    /// Gives `dir` (recursively) to the PostgreSQL user.
    pub fn own(&self, dir: &Path) {
        let (uid, gid) = Components::load().postgres_user();
        pgro_testkit::fixtures::chown_tree(dir, uid, gid);
    }
}

/// A read-write S3 client of the world's bucket, for tests that damage the store.
pub fn s3(world: &BarmanWorld) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_endpoint(format!("http://{}", world.minio.endpoint()))
        .with_allow_http(true)
        .with_bucket_name(BarmanWorld::BUCKET)
        .with_region("us-east-1")
        .with_access_key_id(MINIO_USER)
        .with_secret_access_key(MINIO_SECRET)
        .build()
        .expect("S3 client")
}

/// The JSON `pgro` printed, after checking it succeeded.
pub fn pgro_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "pgro failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}
