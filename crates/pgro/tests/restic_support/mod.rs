//! Shared by the restic command-line and instance tests: what the restore Job and the PostgreSQL pod mount
//! for a restic source — `source.yaml`, the two Secrets KubeStash users have (the BackupStorage's
//! credentials and the Repository's encryption Secret) as `<secret>/<key>`, and `pgro` — all readable by
//! the PostgreSQL user.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::Command;

use pgro_testkit::fixtures::{MINIO_SECRET, MINIO_USER, Minio};
use pgro_testkit::restic::{PASSWORD, ResticRepo, kubestash_path};
use pgro_testkit::{Components, skip_unless_ci};

/// The bucket KubeStash's BackupStorage names in these tests.
pub const BUCKET: &str = "kubestash";

/// MinIO with KubeStash's bucket in `<root>/minio`; `None` (the test returns) when MinIO is missing
/// outside CI.
pub async fn minio(components: &Components, root: &Path, test: &str) -> Option<Minio> {
    skip_unless_ci(
        Minio::start(components, &root.join("minio"), &[BUCKET]).await,
        test,
    )
}

/// An initialised repository (`version`) at KubeStash's path for Repository `directory` and session
/// `frequent-backup` in `minio`; the repository and that path.
pub fn repository(
    components: &Components,
    minio: &Minio,
    directory: &str,
    version: u32,
) -> (ResticRepo, String) {
    let path = kubestash_path("demo", directory, "frequent-backup");
    let repo = ResticRepo::s3(components, minio, BUCKET, &path).unwrap();
    repo.init(version).unwrap();
    (repo, path)
}

pub fn open_up(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

/// What the Job and the pod mount: `source.yaml`, the two Secrets as `<secret>/<key>`, and `pgro`, all
/// readable by the PostgreSQL user.
pub struct Mounts {
    pub source: PathBuf,
    pub secrets: PathBuf,
    pub bin: PathBuf,
}

impl Mounts {
    /// A KubeStash repository at `path` in the bucket of `minio`.
    pub fn at(dir: &Path, minio: &Minio, path: &str, fail_on_errors: bool) -> Self {
        let url = format!("s3:http://{}/{BUCKET}/{path}", minio.endpoint());
        Self::with_repository(dir, &url, fail_on_errors)
    }

    /// Any repository URL (a local directory on the command line).
    pub fn with_repository(dir: &Path, url: &str, fail_on_errors: bool) -> Self {
        let secrets = dir.join("secret");
        for (secret, key, value) in [
            ("storage", "AWS_ACCESS_KEY_ID", MINIO_USER),
            ("storage", "AWS_SECRET_ACCESS_KEY", MINIO_SECRET),
            ("encryption", "RESTIC_PASSWORD", PASSWORD),
        ] {
            let d = secrets.join(secret);
            std::fs::create_dir_all(&d).unwrap();
            open_up(&d, 0o755);
            std::fs::write(d.join(key), value).unwrap();
            open_up(&d.join(key), 0o644);
        }
        open_up(&secrets, 0o755);
        let source = dir.join("source.yaml");
        std::fs::write(
            &source,
            format!(
                "restic:
  repository: {url}
  secretRef: {{name: storage}}
  encryptionSecret: {{name: encryption}}
  failOnErrors: {fail_on_errors}
"
            ),
        )
        .unwrap();
        open_up(&source, 0o644);
        let bin = dir.join("pgro");
        std::fs::copy(env!("CARGO_BIN_EXE_pgro"), &bin).unwrap();
        open_up(dir, 0o755);
        Self {
            source,
            secrets,
            bin,
        }
    }

    pub fn pgro(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .arg("--source")
            .arg(&self.source)
            .arg("--secret-dir")
            .arg(&self.secrets);
        c
    }

    pub fn instance_args(&self, termination: &Path) -> Vec<std::ffi::OsString> {
        vec![
            "--source".into(),
            self.source.clone().into(),
            "--source-secret-dir".into(),
            self.secrets.clone().into(),
            "--termination-log".into(),
            termination.into(),
        ]
    }
}
