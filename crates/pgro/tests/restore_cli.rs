//! `pgro restore` and `pgro kopia` as a user or the restore Job sees them: exit codes, messages, the JSON
//! result and the termination log (behaviour S2), against repositories written by the real `kopia` binary.
//! The data path itself (real PostgreSQL) is covered by `instance_pg.rs`.

#![allow(clippy::unwrap_used)]

mod instance_support;
// The kopia crate's loopback MinIO (with MINIO_SITE_REGION when a test needs a region).
#[path = "../../kopia/tests/common/minio.rs"]
mod minio;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use instance_support::{Kopia, free_port, infra, require};

/// Exit codes documented in the README ("Exit codes").
const EXIT_USAGE: i32 = 2;
const EXIT_WRONG_PASSWORD: i32 = 4;
const EXIT_CORRUPTED: i32 = 5;
const EXIT_UNREACHABLE: i32 = 7;
const EXIT_UNSUPPORTED: i32 = 8;
const EXIT_DISK_FULL: i32 = 9;
const EXIT_NO_PGDATA: i32 = 10;

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    kopia: Kopia,
}

fn fixture() -> Option<Fixture> {
    let env = infra();
    let bin = PathBuf::from(require(&env, "PGRO_KOPIA")?);
    let tmp = tempfile::Builder::new()
        .prefix("pgro-restore-cli")
        .tempdir()
        .unwrap();
    let root = tmp.path().to_path_buf();
    let kopia = Kopia::create(bin, root.join("kopia"));
    Some(Fixture {
        _tmp: tmp,
        root,
        kopia,
    })
}

impl Fixture {
    fn dir(&self, name: &str, files: &[(&str, &[u8])]) -> PathBuf {
        let dir = self.root.join("src").join(name);
        for (rel, data) in files {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        }
        dir
    }

    fn pgro(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pgro"));
        c.args(args)
            .arg("--path")
            .arg(self.kopia.repo())
            .env("KOPIA_PASSWORD", &self.kopia.password)
            .env("NO_COLOR", "1");
        c
    }
}

fn restore(f: &Fixture, snapshot: &str, target: &Path, extra: &[&str]) -> Command {
    let mut c = f.pgro(&["restore", "--snapshot", snapshot]);
    c.arg("--target").arg(target).args(extra);
    c
}

fn output(c: &mut Command) -> (Output, String, String) {
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

/// A fake data directory: `PG_VERSION` plus `global/` is what PostgreSQL itself checks first.
fn fake_pgdata(prefix: &str, version: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        (format!("{prefix}PG_VERSION"), format!("{version}\n").into()),
        (format!("{prefix}global/pg_control"), vec![7; 8192]),
        (format!("{prefix}base/1/1259"), vec![1; 16384]),
        (format!("{prefix}postmaster.pid"), b"4242\n".to_vec()),
    ]
}

fn as_refs(v: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_slice())).collect()
}

#[test]
fn restore_of_snapshot_without_pgdata_fails_with_code_10_and_says_why() {
    let Some(f) = fixture() else { return };
    let src = f.dir("notpg", &[("etc/app.conf", b"x=1"), ("README", b"hello")]);
    let id = f.kopia.snapshot(&src);
    let target = f.root.join("t1");
    let log = f.root.join("termination-log");
    let (out, stdout, stderr) =
        output(restore(&f, &id, &target, &[]).args(["--termination-log", log.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(EXIT_NO_PGDATA), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json["error"], "NoPgdataInSnapshot");
    assert_eq!(json["exitCode"], EXIT_NO_PGDATA);
    let message = json["message"].as_str().unwrap();
    assert!(
        message.contains("contains no PostgreSQL data directory") && message.contains(&id),
        "{message}"
    );
    let logged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
    assert_eq!(logged, json, "the termination log carries the same result");
}

#[test]
fn restore_exposes_pgdata_of_highest_major_and_reports_json_result() {
    let Some(f) = fixture() else { return };
    let mut files = fake_pgdata("15/main/", "15");
    files.extend(fake_pgdata("16/main/", "16"));
    let src = f.dir("debian-layout", &as_refs(&files));
    let id = f.kopia.snapshot(&src);
    let target = f.root.join("t2");
    let log = f.root.join("termination-log-ok");
    let (out, stdout, stderr) = output(
        restore(&f, "latest", &target, &[]).args(["--termination-log", log.to_str().unwrap()]),
    );
    assert!(out.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json["postgresVersion"], "16");
    assert_eq!(json["snapshot"], id.as_str());
    assert_eq!(json["pgdataInSnapshot"], "16/main");
    assert_eq!(json["files"], 8);
    assert_eq!(json["bytes"], 2 * (3 + 8192 + 16384 + 5));
    assert!(json["seconds"].as_f64().unwrap() > 0.0);
    let pgdata = PathBuf::from(json["pgdata"].as_str().unwrap());
    assert_eq!(pgdata, target.join("data"));
    assert_eq!(
        std::fs::read_to_string(pgdata.join("PG_VERSION")).unwrap(),
        "16\n"
    );
    assert!(
        !pgdata.join("postmaster.pid").exists(),
        "stale postmaster.pid removed"
    );
    let mode = std::fs::metadata(&pgdata).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "PostgreSQL insists on 0700");
    let logged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
    assert_eq!(logged, json);

    // A retried Job restores into the same volume: it succeeds and keeps what is already there.
    let (again, stdout, stderr) = output(&mut restore(&f, &id, &target, &[]));
    assert!(again.status.success(), "{stderr}");
    let json2: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json2["pgdata"], json["pgdata"]);
    assert_eq!(json2["files"], json["files"]);
}

/// The one CLI shape for every source: a `kopia: {secretRef}` source with the Kopia Secret's keys as files
/// lists and restores like the Kopia flags.
#[test]
fn a_kopia_source_yaml_lists_and_restores_like_the_flags() {
    let Some(f) = fixture() else { return };
    let src = f.dir("kopia-source", &as_refs(&fake_pgdata("", "17")));
    let id = f.kopia.snapshot(&src);
    let cfg = f.root.join("kopia-source-cfg");
    let secret = cfg.join("secret");
    std::fs::create_dir_all(&secret).unwrap();
    let source = cfg.join("source.yaml");
    std::fs::write(&source, "kopia: {secretRef: {name: kopia-credentials}}\n").unwrap();
    for (k, v) in [
        ("storage", "filesystem".to_owned()),
        ("path", f.kopia.repo().display().to_string()),
        ("repositoryPassword", f.kopia.password.clone()),
    ] {
        std::fs::write(secret.join(k), v).unwrap();
    }
    let pgro = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pgro"));
        c.args(args)
            .arg("--source")
            .arg(&source)
            .arg("--secret-dir")
            .arg(&secret);
        c
    };
    let (out, stdout, stderr) = output(&mut pgro(&["backups", "list", "--json"]));
    assert!(out.status.success(), "{stderr}");
    let rows: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(rows[0]["id"], id.as_str(), "{rows}");
    let target = f.root.join("kopia-source-target");
    let (out, stdout, stderr) = output(
        pgro(&["restore", "--backup", "latest"])
            .arg("--target")
            .arg(&target),
    );
    assert!(out.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        (json["snapshot"].as_str(), json["postgresVersion"].as_str()),
        (Some(id.as_str()), Some("17"))
    );
    // A missing key is a usage error that names it.
    std::fs::remove_file(secret.join("repositoryPassword")).unwrap();
    let (out, _, stderr) = output(&mut pgro(&["backups", "list"]));
    assert_eq!(out.status.code(), Some(EXIT_USAGE), "{stderr}");
    assert!(stderr.contains("repositoryPassword"), "{stderr}");
}

#[test]
fn restore_latest_applies_the_snapshot_filter() {
    let Some(f) = fixture() else { return };
    let a = f.dir("a", &as_refs(&fake_pgdata("", "15")));
    let b = f.dir("b", &as_refs(&fake_pgdata("", "17")));
    let tagged = f.kopia.run(&[
        "snapshot",
        "create",
        a.to_str().unwrap(),
        "--tags",
        "area:postgres",
        "--json",
    ]);
    let tagged: serde_json::Value = serde_json::from_str(tagged.trim()).unwrap();
    f.kopia.snapshot(&b); // newer, but untagged
    let target = f.root.join("t3");
    let (out, stdout, stderr) = output(&mut restore(
        &f,
        "latest",
        &target,
        &["--filter", r#"{"tags":{"area":"postgres"}}"#],
    ));
    assert!(out.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json["snapshot"], tagged["id"]);
    assert_eq!(json["postgresVersion"], "15");

    let (out, _, stderr) = output(&mut restore(
        &f,
        "latest",
        &f.root.join("t4"),
        &["--filter", r#"{"tags":{"area":"nothing"}}"#],
    ));
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("matches the filter"), "{stderr}");
}

#[test]
fn restore_with_wrong_password_fails_with_code_4() {
    let Some(f) = fixture() else { return };
    let src = f.dir("pw", &as_refs(&fake_pgdata("", "16")));
    let id = f.kopia.snapshot(&src);
    let (out, stdout, stderr) =
        output(restore(&f, &id, &f.root.join("t"), &[]).env("KOPIA_PASSWORD", "not-the-password"));
    assert_eq!(out.status.code(), Some(EXIT_WRONG_PASSWORD), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json["error"], "WrongPassword");
    assert!(
        !stderr.contains("not-the-password") && !stdout.contains("not-the-password"),
        "the password must never be printed"
    );
}

/// Flips one byte in the middle of the largest pack blob; returns its blob ID.
fn corrupt_largest_pack(repo: &Path) -> String {
    let (path, id) = largest_pack(repo);
    let mut data = std::fs::read(&path).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x55;
    std::fs::write(&path, data).unwrap();
    id
}

/// The largest pack blob: its file and blob ID. Pack blobs start with `p`; the sharded layout splits the
/// ID into directories (`pab/cde/f….f`).
fn largest_pack(repo: &Path) -> (PathBuf, String) {
    let mut packs = Vec::new();
    let mut stack = vec![repo.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p
                .strip_prefix(repo)
                .unwrap()
                .to_string_lossy()
                .replace('/', "");
            if rel.starts_with('p') && rel.ends_with(".f") {
                packs.push((
                    e.metadata().unwrap().len(),
                    p,
                    rel.trim_end_matches(".f").to_owned(),
                ));
            }
        }
    }
    packs.sort();
    let (_, path, id) = packs.pop().expect("a pack blob");
    (path, id)
}

#[test]
fn restore_of_corrupted_pack_fails_with_code_5_naming_the_pack() {
    let Some(f) = fixture() else { return };
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut files = fake_pgdata("", "16");
    files.push(("base/1/16384".into(), big));
    let src = f.dir("corrupt", &as_refs(&files));
    let id = f.kopia.snapshot(&src);
    let pack = corrupt_largest_pack(&f.kopia.repo());
    let (out, stdout, stderr) = output(&mut restore(&f, &id, &f.root.join("t"), &[]));
    assert_eq!(out.status.code(), Some(EXIT_CORRUPTED), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json["error"], "CorruptedContent");
    let message = json["message"].as_str().unwrap();
    assert!(message.contains(&pack), "{pack} not named in {message}");
}

#[test]
fn restore_from_unreachable_storage_fails_with_code_7() {
    let port = free_port(); // bound and released: nothing listens there
    let (out, stdout, stderr) = output(
        Command::new(env!("CARGO_BIN_EXE_pgro"))
            .args([
                "restore",
                "--snapshot",
                "latest",
                "--target",
                "/nonexistent",
            ])
            .args(["--storage", "s3", "--bucket", "b", "--region", "us-east-1"])
            .args(["--endpoint", &format!("127.0.0.1:{port}"), "--disable-tls"])
            .args(["--storage-attempts", "2"])
            .env("KOPIA_PASSWORD", "x")
            .env("AWS_ACCESS_KEY_ID", "id")
            .env("AWS_SECRET_ACCESS_KEY", "secret-value-1234"),
    );
    assert_eq!(out.status.code(), Some(EXIT_UNREACHABLE), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json["error"], "StorageUnreachable");
    assert!(!stdout.contains("secret-value-1234") && !stderr.contains("secret-value-1234"));
}

/// A 1 MiB tmpfs, unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: PathBuf) -> Option<Self> {
        if !nix::unistd::geteuid().is_root() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "the disk-full test mounts a tmpfs and needs root; CI=true makes this a failure"
            );
            eprintln!("skipping: not root (the disk-full test mounts a tmpfs)");
            return None;
        }
        std::fs::create_dir_all(&at).unwrap();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=1m",
                "pgro-test",
                at.to_str().unwrap(),
            ])
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs");
        Some(Self(at))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn restore_into_full_disk_fails_with_code_9() {
    let Some(f) = fixture() else { return };
    let mut files = fake_pgdata("", "16");
    files.push(("base/1/big".into(), vec![42; 4 << 20]));
    let src = f.dir("big", &as_refs(&files));
    let id = f.kopia.snapshot(&src);
    let Some(disk) = SmallDisk::mount(f.root.join("small")) else {
        return;
    };
    let (out, stdout, stderr) = output(&mut restore(&f, &id, &disk.0, &[]));
    assert_eq!(out.status.code(), Some(EXIT_DISK_FULL), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json["error"], "DiskFull");
}

#[test]
fn kopia_snapshot_list_json_equals_kopias_own() {
    let Some(f) = fixture() else { return };
    let a = f.dir("la", &[("x", b"1")]);
    let b = f.dir("lb", &[("y", b"22"), ("z/w", b"333")]);
    f.kopia.snapshot(&a);
    f.kopia.run(&[
        "snapshot",
        "create",
        b.to_str().unwrap(),
        "--tags",
        "area:postgres",
        "--description",
        "nightly",
    ]);
    let theirs: serde_json::Value =
        serde_json::from_str(&f.kopia.run(&["snapshot", "list", "--json", "--all"])).unwrap();
    let (out, stdout, stderr) = output(&mut f.pgro(&["kopia", "snapshot", "list", "--json"]));
    assert!(out.status.success(), "{stderr}");
    let ours: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(ours.as_array().unwrap().len(), 2);
    assert_eq!(ours, theirs);

    let (out, text, _) = output(&mut f.pgro(&["kopia", "snapshot", "list"]));
    assert!(out.status.success());
    assert!(
        text.contains("tags:area=postgres") && text.contains("\"nightly\""),
        "{text}"
    );
}

#[test]
fn kopia_restore_and_content_verify_succeed_on_a_sound_repository() {
    let Some(f) = fixture() else { return };
    let src = f.dir("rv", &[("a/b/c", b"deep"), ("d", &[9; 100_000])]);
    let id = f.kopia.snapshot(&src);
    let target = f.root.join("rv-out");
    let (out, _, stderr) = output(
        f.pgro(&["kopia", "snapshot", "restore", &id])
            .arg(&target)
            .args(["--parallel", "3"]),
    );
    assert!(out.status.success(), "{stderr}");
    assert_eq!(std::fs::read(target.join("a/b/c")).unwrap(), b"deep");
    assert_eq!(std::fs::read(target.join("d")).unwrap(), vec![9; 100_000]);

    let (out, _, stderr) = output(&mut f.pgro(&["kopia", "content", "verify", "--percent", "100"]));
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("0 failed"), "{stderr}");
    corrupt_largest_pack(&f.kopia.repo());
    let (out, _, stderr) = output(&mut f.pgro(&["kopia", "content", "verify", "--percent", "100"]));
    assert_eq!(out.status.code(), Some(EXIT_CORRUPTED), "{stderr}");
}

/// A pack shorter than its index says is permanent damage: every command exits 5 naming the pack, never 7
/// (which the restore Job retries).
#[test]
fn truncated_pack_fails_with_code_5_in_restore_snapshot_restore_and_content_verify() {
    let Some(f) = fixture() else { return };
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let mut files = fake_pgdata("", "16");
    files.push(("base/1/16385".into(), big));
    let src = f.dir("truncated", &as_refs(&files));
    let id = f.kopia.snapshot(&src);
    let (path, pack) = largest_pack(&f.kopia.repo());
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    let (out, stdout, stderr) = output(&mut restore(&f, &id, &f.root.join("t"), &[]));
    assert_eq!(out.status.code(), Some(EXIT_CORRUPTED), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json["error"], "CorruptedContent");
    let message = json["message"].as_str().unwrap();
    assert!(message.contains(&pack), "{pack} not named in {message}");

    let (out, _, stderr) = output(
        f.pgro(&["kopia", "snapshot", "restore", &id])
            .arg(f.root.join("t2"))
            .arg("--no-progress-bar"),
    );
    assert_eq!(out.status.code(), Some(EXIT_CORRUPTED), "{stderr}");
    assert!(stderr.contains(&pack), "{stderr}");
    let (out, _, stderr) = output(&mut f.pgro(&["kopia", "content", "verify"]));
    assert_eq!(out.status.code(), Some(EXIT_CORRUPTED), "{stderr}");
}

/// A kopia repository in a MinIO bucket, created by kopia with no `--region`.
struct S3Repo {
    minio: minio::Minio,
    kopia: Kopia,
    tmp: tempfile::TempDir,
    id: String,
}

const BUCKET: &str = "pgro-cli";
const PREFIX: &str = "db1/";

fn s3_repo(region: Option<&str>) -> Option<S3Repo> {
    let env = infra();
    let bin = PathBuf::from(require(&env, "PGRO_KOPIA")?);
    let minio = minio::Minio::start(minio::minio_binary()?, &[BUCKET], region);
    let tmp = tempfile::Builder::new()
        .prefix("pgro-restore-cli-s3")
        .tempdir()
        .unwrap();
    let kopia = Kopia {
        bin,
        dir: tmp.path().join("kopia"),
        password: "s3-cli-pw".into(),
    };
    kopia.run(&[
        "repository",
        "create",
        "s3",
        "--bucket",
        BUCKET,
        "--endpoint",
        &minio.endpoint,
        "--disable-tls",
        "--access-key",
        minio::USER,
        "--secret-access-key",
        minio::SECRET,
        "--prefix",
        PREFIX,
    ]);
    let src = tmp.path().join("pgdata");
    for (rel, data) in fake_pgdata("", "16") {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    let id = kopia.snapshot(&src);
    Some(S3Repo {
        minio,
        kopia,
        tmp,
        id,
    })
}

impl S3Repo {
    /// `pgro <args> --storage s3 …` with `endpoint` as given and credentials in the environment (as the
    /// restore Job gets them from the Kopia Secret).
    fn pgro(&self, args: &[&str], endpoint: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pgro"));
        c.args(args)
            .args(["--storage", "s3", "--bucket", BUCKET, "--prefix", PREFIX])
            .args(["--endpoint", endpoint, "--storage-attempts", "3"])
            .env("KOPIA_PASSWORD", &self.kopia.password)
            .env("AWS_ACCESS_KEY_ID", minio::USER)
            .env("AWS_SECRET_ACCESS_KEY", minio::SECRET)
            .env_remove("KOPIA_REGION")
            .env_remove("KOPIA_DISABLE_TLS")
            .env("NO_COLOR", "1");
        c
    }

    fn restore(&self, target: &Path, endpoint: &str) -> Command {
        let mut c = self.pgro(&["restore", "--snapshot", &self.id], endpoint);
        c.arg("--target").arg(target);
        c
    }
}

#[test]
fn http_endpoint_url_decides_tls_and_kopia_disable_tls_takes_the_usual_booleans() {
    let Some(r) = s3_repo(None) else { return };
    let url = format!("http://{}", r.minio.endpoint);
    let (out, stdout, stderr) = output(&mut r.restore(&r.tmp.path().join("t1"), &url));
    assert!(out.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json["snapshot"], r.id.as_str());

    for spelling in ["1", "True", "yes"] {
        let (out, _, stderr) = output(
            r.pgro(&["kopia", "snapshot", "list", "--json"], &r.minio.endpoint)
                .env("KOPIA_DISABLE_TLS", spelling),
        );
        assert!(
            out.status.success(),
            "KOPIA_DISABLE_TLS={spelling}: {stderr}"
        );
    }

    let started = Instant::now();
    let ftp = format!("ftp://{}", r.minio.endpoint);
    let (out, stdout, stderr) = output(&mut r.restore(&r.tmp.path().join("t2"), &ftp));
    assert_eq!(out.status.code(), Some(EXIT_USAGE), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json["error"], "InvalidArguments");
    assert!(
        json["message"].as_str().unwrap().contains("`endpoint`"),
        "{json}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "retried?");
}

#[test]
fn bucket_outside_us_east_1_restores_without_a_region_and_a_wrong_region_is_code_2_naming_it() {
    let Some(r) = s3_repo(Some("ap-southeast-2")) else {
        return;
    };
    let (out, stdout, stderr) = output(
        r.restore(&r.tmp.path().join("t1"), &r.minio.endpoint)
            .arg("--disable-tls"),
    );
    assert!(out.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json["postgresVersion"], "16");

    let started = Instant::now();
    let (out, stdout, stderr) = output(
        r.restore(&r.tmp.path().join("t2"), &r.minio.endpoint)
            .args(["--disable-tls", "--region", "us-west-1"]),
    );
    assert_eq!(out.status.code(), Some(EXIT_USAGE), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json["error"], "InvalidArguments");
    let message = json["message"].as_str().unwrap();
    assert!(
        message.contains("`region`") && message.contains("\"ap-southeast-2\""),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a wrong region is not retried: {:?}",
        started.elapsed()
    );
}

/// The `files:`/`dirs:` counts of kopia's text listing, in order.
fn listed_counts(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let files = l.split("files:").nth(1)?.split_whitespace().next()?;
            let dirs = l.split("dirs:").nth(1)?.split_whitespace().next()?;
            Some((files.to_owned(), dirs.to_owned()))
        })
        .collect()
}

#[test]
fn kopia_snapshot_list_counts_the_snapshot_content_and_reads_a_path_argument_like_kopia() {
    let Some(f) = fixture() else { return };
    let src = f.dir(
        "counted",
        &[("a", b"1"), ("b/c", b"22"), ("b/d/e", b"333"), ("f", b"4")],
    );
    f.kopia.snapshot(&src);
    // One file changed: this upload hashes one file (stats.fileCount 1), the snapshot still holds four.
    std::fs::write(src.join("a"), b"9").unwrap();
    f.kopia.snapshot(&src);
    let theirs = f.kopia.run(&["snapshot", "list", src.to_str().unwrap()]);
    let (out, ours, stderr) = output(&mut f.pgro(&["kopia", "snapshot", "list"]));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        listed_counts(&ours),
        listed_counts(&theirs),
        "{ours}\n{theirs}"
    );
    assert_eq!(
        listed_counts(&ours),
        vec![("4".into(), "3".into()), ("4".into(), "3".into())]
    );

    // A plain path is this user's and host's source, as in kopia; a subdirectory lists the snapshots
    // of its parent source.
    for path in [src.clone(), src.join("b")] {
        let p = path.to_str().unwrap();
        let theirs: serde_json::Value =
            serde_json::from_str(&f.kopia.run(&["snapshot", "list", "--json", p])).unwrap();
        let (out, ours, stderr) = output(&mut f.pgro(&["kopia", "snapshot", "list", "--json", p]));
        assert!(out.status.success(), "{stderr}");
        let ours: serde_json::Value = serde_json::from_str(&ours).unwrap();
        assert_eq!(ours.as_array().map(Vec::len), Some(2), "{p}");
        assert_eq!(ours, theirs, "{p}");
    }
    let sub = src.join("b");
    let theirs = f.kopia.run(&["snapshot", "list", sub.to_str().unwrap()]);
    let (out, ours, _) = output(&mut f.pgro(&["kopia", "snapshot", "list", sub.to_str().unwrap()]));
    assert!(out.status.success());
    // Kopia folds the two rows (the subdirectory did not change); pgro lists each snapshot.
    assert_eq!(
        listed_counts(&ours)[0],
        listed_counts(&theirs)[0],
        "{ours}\n{theirs}"
    );
    assert_eq!(listed_counts(&ours)[0], ("2".into(), "2".into()));

    let (out, ours, _) = output(&mut f.pgro(&["kopia", "snapshot", "list", "user@"]));
    assert_eq!(out.status.code(), Some(EXIT_USAGE), "{ours}");
}

#[test]
fn repository_whose_format_blob_has_no_key_algo_is_refused_with_code_8_as_kopia_refuses_it() {
    let Some(f) = fixture() else { return };
    let src = f.dir("keyalgo", &[("x", b"1")]);
    f.kopia.snapshot(&src);
    let format = f.kopia.repo().join("kopia.repository.f");
    let mut blob: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&format).unwrap()).unwrap();
    assert!(blob.as_object_mut().unwrap().remove("keyAlgo").is_some());
    std::fs::write(&format, serde_json::to_vec_pretty(&blob).unwrap()).unwrap();

    let (out, _, stderr) = output(&mut f.pgro(&["kopia", "snapshot", "list"]));
    assert_eq!(out.status.code(), Some(EXIT_UNSUPPORTED), "{stderr}");
    assert!(stderr.contains("keyAlgo"), "{stderr}");

    let fresh = f.root.join("kopia-fresh");
    let theirs = Command::new(&f.kopia.bin)
        .args(["repository", "connect", "filesystem", "--path"])
        .arg(f.kopia.repo())
        .env("KOPIA_PASSWORD", &f.kopia.password)
        .env("KOPIA_CONFIG_PATH", fresh.join("config.json"))
        .env("KOPIA_CACHE_DIRECTORY", fresh.join("cache"))
        .env("KOPIA_LOG_DIR", fresh.join("logs"))
        .env("KOPIA_CHECK_FOR_UPDATES", "false")
        .output()
        .unwrap();
    assert!(!theirs.status.success(), "kopia accepted it");
    assert!(
        String::from_utf8_lossy(&theirs.stderr).contains("unsupported key derivation algorithm"),
        "{}",
        String::from_utf8_lossy(&theirs.stderr)
    );
}
