//! `pgro backups list` and `pgro restore` of a restic source (issue 15), against repositories written by
//! the real restic 0.19.1 in MinIO (KubeStash's path and Secrets) and in a local directory:
//!
//! * `backups list --json` lists every snapshot oldest first, as the operator sees them (full IDs, the
//!   dump's size, `host` and `path` labels);
//! * `restore --stdout` streams the dump's exact bytes (equal to `restic dump`) for `latest` and an ID
//!   prefix; without `--stdout` the result is the dump's header and the major it runs on;
//! * every failure has its exit code and a message that names what to fix, never a secret: wrong password
//!   4, unknown snapshot or file 3, damaged data 5, storage down 7, not a plain dump 8.
//!
//! Outside CI a missing component skips; under `CI=true` it fails.

#![allow(clippy::unwrap_used)]

mod restic_support;

use std::process::Output;

use pgro_testkit::restic::{DUMP_FILE, KUBESTASH_HOST, ResticRepo, dumpish};
use pgro_testkit::{Components, skip_unless_ci};
use restic_support::Mounts;

fn dump(major: u32, body: usize, seed: u64) -> Vec<u8> {
    let mut d = format!(
        "--\n-- PostgreSQL database cluster dump\n--\n\nSET default_transaction_read_only = off;\n\n\\connect template1\n\n--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version {major}.3\n-- Dumped by pg_dump version {major}.3\n\n"
    )
    .into_bytes();
    d.extend(dumpish(body, seed));
    d
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_stream_and_header_of_a_kubestash_repository_in_minio() {
    let test = "list_stream_and_header_of_a_kubestash_repository_in_minio";
    let components = Components::load();
    let root = pgro_testkit::fixtures::test_root("restic-cli-");
    let Some(minio) = restic_support::minio(&components, root.path(), test).await else {
        return;
    };
    let (repo, path) = restic_support::repository(&components, &minio, "/postgres", 2);
    let first = dump(16, 3 << 20, 1);
    let second = dump(17, 5 << 20, 2);
    let id1 = repo
        .backup_bytes(&first, DUMP_FILE, KUBESTASH_HOST, "auto")
        .unwrap();
    let id2 = repo
        .backup_bytes(&second, DUMP_FILE, KUBESTASH_HOST, "auto")
        .unwrap();
    let m = Mounts::at(&root.path().join("cfg"), &minio, &path, true);

    let out = m.pgro(&["backups", "list", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for (row, (id, data)) in rows.iter().zip([(&id1, &first), (&id2, &second)]) {
        assert_eq!(row["id"], id.as_str(), "oldest first, full IDs");
        assert_eq!(row["kind"], "dump");
        // What the replay writes at its peak (1.5× the dump + 1 GiB of WAL), which sizes the volume.
        assert_eq!(row["size"], data.len() * 3 / 2 + (1 << 30));
        assert_eq!(row["labels"]["host"], KUBESTASH_HOST);
        assert_eq!(row["labels"]["path"], "/dumpfile.sql");
    }

    // The exact bytes, for `latest` and for an ID prefix.
    for (backup, want) in [("latest", &second), (&id1[..8], &first)] {
        let out = m
            .pgro(&["restore", "--backup", backup, "--stdout"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            out.stdout == *want,
            "{backup}: the stream differs from the dump"
        );
        assert!(
            out.stdout == repo.dump(backup, "/dumpfile.sql").unwrap(),
            "vs restic dump"
        );
    }
    // Without --stdout: the header and the major the copy runs (nothing restored).
    let out = m
        .pgro(&["restore", "--backup", &id1[..12]])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let res: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(res["postgresVersion"], "16");
    assert_eq!(res["snapshot"], id1.as_str());
    assert_eq!(res["bytes"], first.len());
    assert_eq!(res["dump"]["kind"], "cluster");
    assert_eq!(res["dump"]["dumpedFrom"], "16.3");

    // Unknown snapshot; another file name; a wrong password (never printed).
    let out = m
        .pgro(&["restore", "--backup", "deadbeef", "--stdout"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    std::fs::write(
        m.secrets.join("encryption/RESTIC_PASSWORD"),
        "not-the-password-xyz",
    )
    .unwrap();
    let out = m.pgro(&["backups", "list"]).output().unwrap();
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(stderr(&out).contains("RESTIC_PASSWORD"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("not-the-password-xyz"));

    // MinIO down: a storage failure, after the retries.
    std::fs::write(m.secrets.join("encryption/RESTIC_PASSWORD"), "changeit").unwrap();
    drop(minio);
    let out = m
        .pgro(&["restore", "--backup", "latest", "--stdout"])
        .env("PGRO_STORAGE_ATTEMPTS", "2")
        .output()
        .unwrap();
    assert_eq!(code(&out), 7, "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_data_and_dumps_pgro_cannot_replay_are_told_apart() {
    let test = "damaged_data_and_dumps_pgro_cannot_replay_are_told_apart";
    let components = Components::load();
    let root = pgro_testkit::fixtures::test_root("restic-cli-bad-");
    let dir = root.path().join("repo");
    let Some(repo) = skip_unless_ci(ResticRepo::local(&components, &dir), test) else {
        return;
    };
    repo.init(2).unwrap();
    // A custom-format dump (pg_dump -Fc) streams as it is, but is no plain SQL to replay.
    let custom = [b"PGDMP\x01\x10\x00".as_slice(), &dumpish(1 << 20, 3)].concat();
    let id = repo
        .backup_bytes(&custom, DUMP_FILE, KUBESTASH_HOST, "off")
        .unwrap();
    let m = Mounts::with_repository(&root.path().join("cfg"), &dir.to_string_lossy(), true);
    let out = m
        .pgro(&["restore", "--backup", &id, "--stdout"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout == custom,
        "{}",
        stderr(&out)
    );
    let out = m.pgro(&["restore", "--backup", &id]).output().unwrap();
    assert_eq!(code(&out), 8, "{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("pg_dump archive"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A file name the snapshots do not have.
    let other = Mounts::with_repository(&root.path().join("cfg2"), &dir.to_string_lossy(), true);
    let yaml = std::fs::read_to_string(&other.source).unwrap();
    std::fs::write(&other.source, format!("{yaml}  fileName: backup.sql\n")).unwrap();
    let out = other
        .pgro(&["restore", "--backup", "latest", "--stdout"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("/dumpfile.sql"),
        "names the paths it has: {}",
        stderr(&out)
    );
    // One flipped byte in a pack: exit 5, naming the pack.
    let data = dir.join("data");
    for sub in std::fs::read_dir(&data).unwrap().flatten() {
        for pack in std::fs::read_dir(sub.path()).unwrap().flatten() {
            let p = pack.path();
            let mut perms = std::fs::metadata(&p).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
            std::fs::set_permissions(&p, perms).unwrap();
            let mut b = std::fs::read(&p).unwrap();
            b[40] ^= 1;
            std::fs::write(&p, b).unwrap();
        }
    }
    let out = m
        .pgro(&["restore", "--backup", &id, "--stdout"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(stderr(&out).contains("data/"), "{}", stderr(&out));
}
