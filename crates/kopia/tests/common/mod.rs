//! Shared helpers for tests that drive the real `kopia` binary.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::panic)]

pub mod minio;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use kopia::{FilesystemStorage, Repository, RestoreOptions, Storage};

/// Locates the kopia binary: `$PGRO_KOPIA`, else the test-infrastructure cache. When absent,
/// fails under `CI=true` and otherwise returns `None` after printing why.
pub fn kopia_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("PGRO_KOPIA") {
        return Some(PathBuf::from(p));
    }
    let root = std::env::var("PGRO_TESTINFRA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/pgro-testinfra")
        });
    let mut candidates = vec![root.join("bin/kopia")];
    if let Ok(rd) = std::fs::read_dir(&root) {
        let mut dirs: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("kopia-"))
            })
            .collect();
        dirs.sort();
        candidates.extend(dirs.into_iter().rev().map(|d| d.join("bin/kopia")));
    }
    if let Some(p) = candidates.into_iter().find(|p| p.is_file()) {
        return Some(p);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "kopia binary not found (set PGRO_KOPIA or install test infrastructure); CI=true makes this a failure"
    );
    eprintln!(
        "skipping: kopia binary not found (set PGRO_KOPIA or run the test-infrastructure install)"
    );
    None
}

/// A kopia CLI bound to one repository, config and cache in a temp dir.
pub struct Kopia {
    pub bin: PathBuf,
    pub dir: tempfile::TempDir,
    pub password: String,
    /// More environment for every run (e.g. `STORAGE_EMULATOR_HOST`).
    pub env: Vec<(String, String)>,
}

impl Kopia {
    pub fn new(bin: PathBuf) -> Self {
        Self {
            bin,
            dir: tempfile::tempdir().unwrap(),
            password: "conformance-pw".into(),
            env: Vec::new(),
        }
    }

    pub fn repo_path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.env("KOPIA_PASSWORD", &self.password)
            .env("KOPIA_CONFIG_PATH", self.dir.path().join("config.json"))
            .env("KOPIA_CACHE_DIRECTORY", self.dir.path().join("cache"))
            .env("KOPIA_LOG_DIR", self.dir.path().join("logs"))
            .env("KOPIA_CHECK_FOR_UPDATES", "false")
            .env("KOPIA_PERSIST_CREDENTIALS_ON_CONNECT", "false")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Runs kopia with `args`, panicking with its output on failure; returns stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "kopia {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `kopia repository create s3` in `minio`'s bucket `bucket` under `prefix`, plus `extra` flags.
    pub fn create_s3_repo(&self, minio: &minio::Minio, bucket: &str, prefix: &str, extra: &[&str]) {
        let mut args = vec![
            "repository",
            "create",
            "s3",
            "--bucket",
            bucket,
            "--endpoint",
            &minio.endpoint,
            "--disable-tls",
            "--access-key",
            minio::USER,
            "--secret-access-key",
            minio::SECRET,
            "--prefix",
            prefix,
        ];
        args.extend_from_slice(extra);
        self.run(&args);
    }

    /// Two zstd snapshots of a fresh tree (one 12 MiB file among small ones); the first's ID.
    pub fn snapshot_tree(&self, description: &str) -> String {
        self.run(&["policy", "set", "--global", "--compression", "zstd"]);
        let src = self.dir.path().join("src");
        make_tree(&src, Some(12 << 20));
        let id = self.snapshot(&src, &["--description", description]);
        self.snapshot(&src, &[]);
        id
    }

    pub fn create_filesystem_repo(&self, extra: &[&str]) {
        let path = self.repo_path();
        let mut args = vec![
            "repository",
            "create",
            "filesystem",
            "--path",
            path.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.run(&args);
    }

    pub fn snapshot(&self, dir: &Path, extra: &[&str]) -> String {
        let mut args = vec!["snapshot", "create", dir.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        v["id"].as_str().unwrap().to_owned()
    }

    /// `kopia snapshot list --json`, parsed.
    pub fn snapshot_list(&self) -> Vec<serde_json::Value> {
        let out = self.run(&["snapshot", "list", "--json"]);
        normalise(serde_json::from_str(&out).unwrap())
    }

    pub fn restore(&self, id: &str, target: &Path) {
        self.run(&["snapshot", "restore", id, target.to_str().unwrap()]);
    }

    pub async fn open_ours(&self) -> Repository {
        let st: Arc<dyn Storage> =
            Arc::new(FilesystemStorage::open(self.repo_path()).await.unwrap());
        Repository::connect(st, &self.password).await.unwrap()
    }
}

pub fn normalise(v: serde_json::Value) -> Vec<serde_json::Value> {
    let serde_json::Value::Array(items) = v else {
        panic!("not an array")
    };
    items.into_iter().collect()
}

/// Our snapshot list in kopia's JSON framing, parsed back.
pub async fn our_snapshot_list(repo: &Repository) -> Vec<serde_json::Value> {
    let snaps = repo.list_snapshots().await.unwrap();
    let text = kopia::snapshot_list_json(&snaps).unwrap();
    normalise(serde_json::from_str(&text).unwrap())
}

/// Deterministic pseudo-random bytes.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Builds a source tree: nested dirs, empty file, symlinks, unicode names, special modes,
/// compressible and incompressible files, plus an optional large file.
pub fn make_tree(root: &Path, large: Option<usize>) {
    use std::fs;
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    fs::create_dir_all(root.join("ünïcødé 目录")).unwrap();
    fs::write(root.join("a/hello.txt"), b"hello world\n").unwrap();
    fs::write(root.join("a/b/empty"), b"").unwrap();
    fs::write(root.join("a/b/c/text.log"), "line of text\n".repeat(20_000)).unwrap();
    fs::write(root.join("a/b/c/random.bin"), pseudo_random(3 << 20, 1)).unwrap();
    fs::write(root.join("ünïcødé 目录/файл.txt"), "привет".repeat(100)).unwrap();
    for i in 0..50 {
        fs::write(
            root.join(format!("a/small-{i:03}")),
            pseudo_random(i * 37, i as u64),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink("a/hello.txt", root.join("link-to-hello")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("a/dangling")).unwrap();
    let exec = root.join("a/script.sh");
    fs::write(&exec, b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(&exec, fs::Permissions::from_mode(0o750)).unwrap();
    fs::set_permissions(root.join("a/hello.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    let sticky = root.join("sticky");
    fs::create_dir_all(&sticky).unwrap();
    fs::set_permissions(&sticky, fs::Permissions::from_mode(0o1777)).unwrap();
    let setgid = root.join("setgid");
    fs::create_dir_all(&setgid).unwrap();
    fs::set_permissions(&setgid, fs::Permissions::from_mode(0o2755)).unwrap();
    if let Some(n) = large {
        fs::write(root.join("a/large.bin"), pseudo_random(n, 99)).unwrap();
    }
}

/// A comparable description of a restored tree: path → (kind, mode, mtime ns, content hash or target).
pub fn describe_tree(root: &Path) -> Vec<(String, String, u32, i64, String)> {
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn walk(root: &Path, p: &Path, out: &mut Vec<(String, String, u32, i64, String)>) {
    let mut ents: Vec<_> = std::fs::read_dir(p).unwrap().flatten().collect();
    ents.sort_by_key(|e| e.file_name());
    for e in ents {
        let path = e.path();
        let md = std::fs::symlink_metadata(&path).unwrap();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mtime = md.mtime() * 1_000_000_000 + md.mtime_nsec();
        let mode = md.mode() & 0o7777;
        if md.file_type().is_symlink() {
            let t = std::fs::read_link(&path)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            // Symlink permissions are not restored on Linux; compare target and mtime only.
            out.push((rel, "symlink".into(), 0, mtime, t));
        } else if md.is_dir() {
            out.push((rel.clone(), "dir".into(), mode, mtime, String::new()));
            walk(root, &path, out);
        } else {
            let data = std::fs::read(&path).unwrap();
            let h = blake3::hash(&data).to_hex().to_string();
            out.push((rel, format!("file:{}", data.len()), mode, mtime, h));
        }
    }
}

/// Creates a repository with `create_flags`, applies `policy_flags` to the global policy,
/// snapshots a standard tree, and checks our listing and restore against kopia's.
pub async fn roundtrip(create_flags: &[&str], policy_flags: &[&str], large: Option<usize>) {
    let Some(bin) = kopia_binary() else { return };
    let k = Kopia::new(bin);
    k.create_filesystem_repo(create_flags);
    if !policy_flags.is_empty() {
        let mut args = vec!["policy", "set", "--global"];
        args.extend_from_slice(policy_flags);
        k.run(&args);
    }
    let src = k.dir.path().join("src");
    make_tree(&src, large);
    let id = k.snapshot(&src, &["--description", "conformance"]);
    std::fs::write(src.join("a/hello.txt"), b"changed").unwrap();
    k.snapshot(&src, &[]);

    let repo = k.open_ours().await;
    assert_eq!(
        our_snapshot_list(&repo).await,
        k.snapshot_list(),
        "snapshot list differs"
    );

    let theirs = k.dir.path().join("restore-kopia");
    let ours = k.dir.path().join("restore-ours");
    k.restore(&id, &theirs);
    let opts = kopia::RestoreOptions {
        parallel: 4,
        ..Default::default()
    };
    repo.restore(&id, &ours, &opts).await.unwrap();
    assert_trees_equal(&theirs, &ours);
}

/// Compares two restored trees including the root directory's mode and mtime.
pub fn assert_trees_equal(theirs: &Path, ours: &Path) {
    let a = describe_tree(theirs);
    let b = describe_tree(ours);
    assert_eq!(a.len(), b.len(), "entry counts differ");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }
    let (ma, mb) = (
        std::fs::metadata(theirs).unwrap(),
        std::fs::metadata(ours).unwrap(),
    );
    assert_eq!(ma.mode() & 0o7777, mb.mode() & 0o7777, "root mode");
    assert_eq!(
        (ma.mtime(), ma.mtime_nsec()),
        (mb.mtime(), mb.mtime_nsec()),
        "root mtime"
    );
}

/// Through `st`: a prefixed listing stays in its prefix, the snapshot list is kopia's, and snapshot `id`
/// restores to a tree equal to kopia's own restore of it.
pub async fn read_like_kopia(st: Arc<dyn Storage>, k: &Kopia, id: &str) {
    assert!(
        st.list("xn0_")
            .await
            .unwrap()
            .iter()
            .all(|b| b.id.as_str().starts_with("xn0_"))
    );
    let repo = Repository::connect(Arc::clone(&st), &k.password)
        .await
        .unwrap();
    assert_eq!(our_snapshot_list(&repo).await, k.snapshot_list());
    let theirs = k.dir.path().join("restore-kopia");
    let ours = k.dir.path().join("restore-ours");
    k.restore(id, &theirs);
    repo.restore(
        id,
        &ours,
        &RestoreOptions {
            parallel: 8,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_trees_equal(&theirs, &ours);
}
