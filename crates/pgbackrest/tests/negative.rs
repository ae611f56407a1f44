//! Damaged repositories: one source cluster backed up by the real pgBackRest into two repositories, each
//! case run on its own copy of a repository (`cp -a`) with one thing broken. Every case must end in a clear
//! error of the right [`ErrorKind`], and a failed restore must never leave `global/pg_control` (the restore
//! writes it under a temporary name and renames it last) nor write outside its target. Outside CI a missing
//! binary skips; under `CI=true` it fails.
//!
//! The repositories (pgBackRest current, PostgreSQL 16), each with a full and an incremental backup and the
//! WAL archived up to a `pg_switch_wal()`:
//! * repo1: gz whole files, no bundles, not encrypted;
//! * repo2: zst bundles (64 KiB limit) with block incremental, encrypted.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use pgbackrest::{Error, ErrorKind, Manifest, ManifestFile, Repository, RestoreOptions};
use pgro_testkit::Components;
use pgro_testkit::pgbackrest::{
    BackupType, ClusterOptions, Compress, PgbrVersion, RepoOptions, STANZA, SourceCluster,
};
use sha1::Digest as _;

const PASS: &str = "pass-x";

/// What the cases share: the pristine repositories (the stopped source's) and their backups.
struct Fixture {
    /// Scratch space: `<scratch>/<case>/…`.
    scratch: PathBuf,
    /// `repos[n - 1]` is repoN's directory.
    repos: Vec<PathBuf>,
    /// `(full, incr)` labels per repository.
    labels: Vec<(String, String)>,
    /// The segment the last `pg_switch_wal()` closed (archived in every repository).
    switched: String,
}

impl Fixture {
    fn full(&self, repo: usize) -> &str {
        &self.labels[repo - 1].0
    }

    fn incr(&self, repo: usize) -> &str {
        &self.labels[repo - 1].1
    }

    /// A fresh directory for `case`.
    fn case_dir(&self, case: &str) -> PathBuf {
        let dir = self.scratch.join(case);
        std::fs::create_dir_all(&dir).expect("mkdir case");
        dir
    }

    /// A copy of repoN for `case`, free to damage: `<scratch>/<case>/repo`.
    fn copy(&self, repo: usize, case: &str) -> PathBuf {
        let dst = self.case_dir(case).join("repo");
        let out = std::process::Command::new("cp")
            .arg("-a")
            .arg(&self.repos[repo - 1])
            .arg(&dst)
            .output()
            .expect("run cp");
        assert!(
            out.status.success(),
            "cp -a repo{repo}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dst
    }
}

async fn open(repo: &Path, pass: Option<&str>) -> Result<Repository, Error> {
    let store = Arc::new(blobstore::FileStore::new(repo));
    Repository::open(store, STANZA, pass).await
}

/// The error of `result`, which must be of `kind`; returns its chain (printed for the record).
fn expect_kind<T>(result: Result<T, Error>, kind: ErrorKind, case: &str) -> String {
    match result {
        Ok(_) => panic!("{case}: expected {kind:?}, but it succeeded"),
        Err(e) => {
            let chain = pgbackrest::error_chain(&e);
            eprintln!("{case}: {:?}: {chain}", e.kind());
            assert_eq!(e.kind(), kind, "{case}: {chain}");
            chain
        }
    }
}

/// Restores `m` into `<dir>/data` (tablespaces `<dir>/tablespaces`).
async fn restore(
    repo: &Repository,
    m: &Manifest,
    dir: &Path,
) -> Result<pgbackrest::RestoreSummary, Error> {
    repo.restore(
        m,
        &dir.join("data"),
        &dir.join("tablespaces"),
        &RestoreOptions::default(),
    )
    .await
}

/// After a failed restore into `<dir>/data`: no `pg_control`, nothing next to the target but what the
/// restore may create.
fn assert_failed_restore_left_no_pg_control(dir: &Path, case: &str) {
    assert!(
        !dir.join("data/global/pg_control").exists(),
        "{case}: a failed restore left global/pg_control"
    );
    for entry in std::fs::read_dir(dir).expect("read case dir") {
        let name = entry.expect("entry").file_name();
        assert!(
            ["data", "tablespaces", "repo"].contains(&name.to_string_lossy().as_ref()),
            "{case}: {name:?} written next to the target"
        );
    }
}

/// XORs the byte at `at` with 0xff.
fn flip(path: &Path, at: usize) {
    let mut data = std::fs::read(path).expect("read file to damage");
    assert!(
        at < data.len(),
        "{}: {at} >= {}",
        path.display(),
        data.len()
    );
    data[at] ^= 0xff;
    std::fs::write(path, data).expect("write damaged file");
}

fn file_len(path: &Path) -> usize {
    usize::try_from(std::fs::metadata(path).expect("stat").len()).expect("len")
}

/// The largest whole file under `pg_data/base/` that `incr` takes from the full backup `full`.
fn whole_file_from_full<'a>(incr: &'a Manifest, full: &str) -> &'a ManifestFile {
    incr.files
        .iter()
        .filter(|f| {
            f.reference == full
                && f.name.starts_with("pg_data/base/")
                && f.bundle.is_none()
                && f.block.is_none()
                && f.repo_size >= 64
        })
        .max_by_key(|f| f.repo_size)
        .expect("the incremental backup references a whole file of the full")
}

/// pgBackRest's `backrest-checksum` of an info file's text (pgbackrest-format.md §2.2): SHA-1 of
/// `{"<section>":{<json key>:<raw value>,…},…}` in file order, without the checksum itself.
fn info_checksum(text: &str) -> String {
    let mut h = String::from("{");
    let mut section = "";
    let mut last: Option<&str> = None;
    for line in text.split('\n').filter(|l| !l.is_empty()) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name;
            continue;
        }
        // The key may contain '=': split at the first one whose remainder is JSON.
        let (key, value) = line
            .match_indices('=')
            .map(|(i, _)| (&line[..i], &line[i + 1..]))
            .find(|(_, v)| serde_json::from_str::<serde_json::Value>(v).is_ok())
            .unwrap_or_else(|| panic!("not a key=value line: {line:?}"));
        if section == "backrest" && key == "backrest-checksum" {
            continue;
        }
        if last == Some(section) {
            h.push(',');
        } else {
            if last.is_some() {
                h.push_str("},");
            }
            h.push('"');
            h.push_str(section);
            h.push_str("\":{");
            last = Some(section);
        }
        h.push('"');
        for c in key.chars() {
            match c {
                '"' => h.push_str("\\\""),
                '\\' => h.push_str("\\\\"),
                '\n' => h.push_str("\\n"),
                '\r' => h.push_str("\\r"),
                '\t' => h.push_str("\\t"),
                '\u{8}' => h.push_str("\\b"),
                '\u{c}' => h.push_str("\\f"),
                c => h.push(c),
            }
        }
        h.push_str("\":");
        h.push_str(value);
    }
    h.push_str("}}");
    sha1::Sha1::digest(h.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The checksum an info file's text says it has.
fn stored_checksum(text: &str) -> &str {
    text.lines()
        .find_map(|l| l.strip_prefix("backrest-checksum=\""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("backrest-checksum line")
}

/// The WAL segment after `name` with 1 MiB segments (`initdb --wal-segsize=1`: 4096 per log id).
fn next_segment(name: &str) -> String {
    let log = u32::from_str_radix(&name[8..16], 16).expect("log id");
    let seg = u32::from_str_radix(&name[16..24], 16).expect("segment");
    let (log, seg) = if seg + 1 == 4096 {
        (log + 1, 0)
    } else {
        (log, seg + 1)
    };
    format!("{}{log:08X}{seg:08X}", &name[..8])
}

/// The newest segment stored under `archive/db/<archive id>/` of `repo`.
fn newest_archived(repo: &Path, archive_id: &str) -> String {
    let root = repo.join("archive").join(STANZA).join(archive_id);
    let mut newest = String::new();
    for dir in std::fs::read_dir(&root).expect("read archive id dir") {
        let dir = dir.expect("entry").path();
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir).expect("read archive dir") {
            let name = file
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            let segment = name.get(..24).unwrap_or_default();
            if name.as_bytes().get(24) == Some(&b'-')
                && segment.bytes().all(|b| b.is_ascii_hexdigit())
                && segment > newest.as_str()
            {
                newest = segment.to_owned();
            }
        }
    }
    assert!(!newest.is_empty(), "no segment in {}", root.display());
    newest
}

/// (a) A wrong cipher passphrase, or none, for the encrypted repo2.
async fn wrong_or_missing_passphrase_is_wrong_password(fx: &Fixture) {
    let repo = &fx.repos[1];
    let chain = expect_kind(
        open(repo, Some("not-pass-x")).await,
        ErrorKind::WrongPassword,
        "(a) wrong passphrase",
    );
    assert!(
        chain.contains("passphrase"),
        "(a) wrong passphrase: {chain}"
    );
    let chain = expect_kind(
        open(repo, None).await,
        ErrorKind::WrongPassword,
        "(a) no passphrase",
    );
    assert!(chain.contains("encrypted"), "(a) no passphrase: {chain}");
    open(repo, Some(PASS))
        .await
        .expect("(a) the right passphrase opens repo2");
}

/// (b) One flipped byte in a gz whole file of the full that the incremental backup references.
async fn flipped_byte_in_whole_file_is_corrupted_naming_the_file(fx: &Fixture) {
    let case = "(b) flipped byte in a whole file";
    let repo = fx.copy(1, "b");
    let r = open(&repo, None).await.expect("open repo1");
    let m = r.manifest(fx.incr(1)).await.expect("incr manifest");
    let f = whole_file_from_full(&m, fx.full(1));
    let stored = repo.join(r.backup_key(fx.full(1), &format!("{}.gz", f.name)));
    flip(&stored, file_len(&stored) / 2);
    let dir = fx.case_dir("b");
    let chain = expect_kind(restore(&r, &m, &dir).await, ErrorKind::Corrupted, case);
    assert!(chain.contains(&f.name), "{case}: names {}: {chain}", f.name);
    assert_failed_restore_left_no_pg_control(&dir, case);
}

/// (c) One flipped byte in the middle of bundle 1 of repo2's full backup.
async fn flipped_byte_in_bundle_is_corrupted(fx: &Fixture) {
    let case = "(c) flipped byte in a bundle";
    let repo = fx.copy(2, "c");
    let r = open(&repo, Some(PASS)).await.expect("open repo2");
    let m = r.manifest(fx.full(2)).await.expect("full manifest");
    let bundle = repo.join(r.backup_key(fx.full(2), "bundle/1"));
    flip(&bundle, file_len(&bundle) / 2);
    let dir = fx.case_dir("c");
    let chain = expect_kind(restore(&r, &m, &dir).await, ErrorKind::Corrupted, case);
    assert!(chain.contains("damaged"), "{case}: {chain}");
    assert_failed_restore_left_no_pg_control(&dir, case);
}

/// (d) One flipped byte in the block map at the end of a `.pgbi` file of repo2's incremental backup.
async fn flipped_byte_in_block_map_is_corrupted(fx: &Fixture) {
    let case = "(d) flipped byte in a block map";
    let repo = fx.copy(2, "d");
    let r = open(&repo, Some(PASS)).await.expect("open repo2");
    let m = r.manifest(fx.incr(2)).await.expect("incr manifest");
    let f = m
        .files
        .iter()
        .find(|f| f.reference == fx.incr(2) && f.bundle.is_none() && f.block.is_some())
        .expect("the incremental backup stored a block-incremental file outside bundles (.pgbi)");
    let map_size = f.block.map_or(0, |b| b.map_size);
    // The map is encrypted (aes-256-cbc, raw framing): XOR-ing the last byte of the next-to-last cipher
    // block flips the last plaintext byte, the padding, so the damage is always detected, not only when
    // the garbage happens not to decode.
    assert!(map_size >= 8 + 32, "{case}: a map of {map_size} bytes");
    let stored = repo.join(r.backup_key(fx.incr(2), &format!("{}.pgbi", f.name)));
    flip(&stored, file_len(&stored) - 17);
    let dir = fx.case_dir("d");
    let chain = expect_kind(restore(&r, &m, &dir).await, ErrorKind::Corrupted, case);
    assert!(chain.contains(&f.name), "{case}: names {}: {chain}", f.name);
    assert!(chain.contains("block map"), "{case}: {chain}");
    assert_failed_restore_left_no_pg_control(&dir, case);
}

/// (e) A whole file of the full that the incremental backup references is gone.
async fn missing_referenced_file_is_not_found_naming_the_key(fx: &Fixture) {
    let case = "(e) missing referenced file";
    let repo = fx.copy(1, "e");
    let r = open(&repo, None).await.expect("open repo1");
    let m = r.manifest(fx.incr(1)).await.expect("incr manifest");
    let f = whole_file_from_full(&m, fx.full(1));
    let key = r.backup_key(fx.full(1), &format!("{}.gz", f.name));
    std::fs::remove_file(repo.join(&key)).expect("delete the file");
    let dir = fx.case_dir("e");
    let chain = expect_kind(restore(&r, &m, &dir).await, ErrorKind::NotFound, case);
    assert!(chain.contains(&key), "{case}: names {key}: {chain}");
    assert_failed_restore_left_no_pg_control(&dir, case);
}

/// Changes one digit of the first `backup-timestamp-stop` in `backup.info` text: only the checksum
/// notices.
fn change_one_digit(path: &Path) {
    let mut data = std::fs::read(path).expect("read backup.info");
    let at = data
        .windows(24)
        .position(|w| w == b"\"backup-timestamp-stop\":")
        .expect("backup-timestamp-stop")
        + 24;
    assert!(data[at].is_ascii_digit(), "a digit at {at}");
    data[at] = if data[at] == b'9' { b'8' } else { data[at] + 1 };
    std::fs::write(path, data).expect("write backup.info");
}

/// (f) `backup.info` damaged but its `.copy` intact: the copy is used; both damaged: `Corrupted`, with
/// both reasons.
async fn damaged_backup_info_falls_back_to_its_copy_and_fails_only_with_both(fx: &Fixture) {
    let case = "(f) damaged backup.info, intact copy";
    let repo = fx.copy(1, "f1");
    let info = repo.join("backup").join(STANZA).join("backup.info");
    change_one_digit(&info);
    let r = open(&repo, None)
        .await
        .unwrap_or_else(|e| panic!("{case}: {}", pgbackrest::error_chain(&e)));
    let m = r.manifest(fx.incr(1)).await.expect("incr manifest");
    let dir = fx.case_dir("f1");
    restore(&r, &m, &dir)
        .await
        .unwrap_or_else(|e| panic!("{case}: restore: {}", pgbackrest::error_chain(&e)));
    assert!(dir.join("data/global/pg_control").is_file(), "{case}");

    let case = "(f) damaged backup.info and copy";
    let repo = fx.copy(1, "f2");
    let info = repo.join("backup").join(STANZA).join("backup.info");
    change_one_digit(&info);
    // The copy gets another damage, so that the message shows both reasons.
    let copy = info.with_extension("info.copy");
    flip(&copy, file_len(&copy) / 2);
    let chain = expect_kind(open(&repo, None).await, ErrorKind::Corrupted, case);
    assert!(chain.contains("backup.info.copy"), "{case}: {chain}");
    assert!(
        chain.contains("checksum"),
        "{case}: the file's reason: {chain}"
    );
    assert!(
        chain.contains("UTF-8"),
        "{case}: the copy's reason: {chain}"
    );
}

/// (g) The segment after the newest archived one is absent (`Ok(None)`); a flipped byte in a stored
/// segment is `Corrupted`.
async fn missing_wal_is_none_and_damaged_wal_is_corrupted(fx: &Fixture) {
    let case = "(g) WAL";
    let repo = fx.copy(1, "g");
    let r = open(&repo, None).await.expect("open repo1");
    let ai = r.archive_info().await.expect("archive.info");
    let (system_id, version) = (ai.db.system_id, ai.db.version.clone());
    let newest = newest_archived(&repo, &format!("{version}-{}", ai.db.id));
    assert!(newest >= fx.switched, "{case}: {newest} < {}", fx.switched);
    let next = next_segment(&newest);
    let found = r
        .find_wal(&ai, system_id, &version, &next)
        .await
        .unwrap_or_else(|e| panic!("{case}: find {next}: {}", pgbackrest::error_chain(&e)));
    assert_eq!(found, None, "{case}: {next} was never archived");

    let stored = r
        .find_wal(&ai, system_id, &version, &newest)
        .await
        .expect("find the newest segment")
        .unwrap_or_else(|| panic!("{case}: {newest} is archived"));
    let wal = r.read_wal(&ai, &stored).await.expect("read intact WAL");
    assert_eq!(wal.len(), 1 << 20, "{case}: a 1 MiB segment");
    let path = repo.join(&stored.key);
    flip(&path, file_len(&path) / 2);
    let chain = expect_kind(
        r.read_wal(&ai, &stored).await,
        ErrorKind::Corrupted,
        "(g) flipped byte in a WAL segment",
    );
    assert!(
        chain.contains(&stored.key),
        "{case}: names {}: {chain}",
        stored.key
    );
}

/// (h) A non-empty target (data directory or tablespace directory) is refused before anything is
/// written.
async fn non_empty_target_is_invalid_argument_and_untouched(fx: &Fixture) {
    let case = "(h) non-empty target";
    let r = open(&fx.repos[0], None).await.expect("open repo1");
    let m = r.manifest(fx.incr(1)).await.expect("incr manifest");
    let dir = fx.case_dir("h1");
    std::fs::create_dir(dir.join("data")).expect("mkdir data");
    std::fs::write(dir.join("data/keep"), "x").expect("write keep");
    let chain = expect_kind(
        restore(&r, &m, &dir).await,
        ErrorKind::InvalidArgument,
        case,
    );
    assert!(chain.contains("not empty"), "{case}: {chain}");
    let left: Vec<_> = std::fs::read_dir(dir.join("data"))
        .expect("read data")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, ["keep"], "{case}: the data directory is untouched");
    assert!(
        !dir.join("tablespaces").exists(),
        "{case}: tablespaces created"
    );

    let case = "(h) non-empty tablespace directory";
    let dir = fx.case_dir("h2");
    std::fs::create_dir(dir.join("tablespaces")).expect("mkdir tablespaces");
    std::fs::write(dir.join("tablespaces/keep"), "x").expect("write keep");
    expect_kind(
        restore(&r, &m, &dir).await,
        ErrorKind::InvalidArgument,
        case,
    );
    assert!(!dir.join("data").exists(), "{case}: data directory created");
}

/// (i) A manifest (checksum recomputed, so it verifies) naming a file `pg_data/../escape`.
async fn manifest_name_escaping_the_target_is_corrupted(fx: &Fixture) {
    let case = "(i) manifest name escaping the target";
    let repo = fx.copy(1, "i");
    let key = format!("backup/{STANZA}/{}/backup.manifest", fx.incr(1));
    let text = std::fs::read_to_string(repo.join(&key)).expect("read manifest");
    assert_eq!(
        info_checksum(&text),
        stored_checksum(&text),
        "{case}: the checksum as pgBackRest computes it"
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("pg_data/PG_VERSION="))
        .expect("PG_VERSION in the manifest");
    let damaged = text.replacen(
        line,
        &line.replacen("pg_data/PG_VERSION=", "pg_data/../escape=", 1),
        1,
    );
    let damaged = damaged.replacen(
        &format!("backrest-checksum=\"{}\"", stored_checksum(&text)),
        &format!("backrest-checksum=\"{}\"", info_checksum(&damaged)),
        1,
    );
    assert_eq!(info_checksum(&damaged), stored_checksum(&damaged));
    std::fs::write(repo.join(&key), &damaged).expect("write manifest");
    std::fs::write(repo.join(format!("{key}.copy")), &damaged).expect("write manifest copy");

    let r = open(&repo, None).await.expect("open repo1");
    let dir = fx.case_dir("i").join("t");
    std::fs::create_dir(&dir).expect("mkdir t");
    let result = match r.manifest(fx.incr(1)).await {
        Ok(m) => restore(&r, &m, &dir).await.map(drop),
        Err(e) => Err(e),
    };
    let chain = expect_kind(result, ErrorKind::Corrupted, case);
    assert!(chain.contains("pg_data/../escape"), "{case}: {chain}");
    assert!(
        !dir.join("escape").exists(),
        "{case}: wrote outside the target"
    );
    assert_failed_restore_left_no_pg_control(&dir, case);
}

/// Builds the cluster and the backups, stops it, then runs every case on copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_repositories_fail_with_clear_errors() {
    let started = Instant::now();
    let root = pgro_testkit::fixtures::test_root("pgbr-neg-");
    let options = ClusterOptions::new(
        16,
        PgbrVersion::Current,
        vec![
            RepoOptions::posix().compress(Compress::Gz),
            RepoOptions::posix()
                .compress(Compress::Zst)
                .block_incremental()
                .bundle_limit("64KiB")
                .encrypted(PASS),
        ],
    );
    let Some(cluster) = pgro_testkit::skip_unless_ci(
        SourceCluster::start(&Components::load(), &root.path().join("src"), options).await,
        "damaged_repositories_fail_with_clear_errors",
    ) else {
        return;
    };
    let mut fulls = Vec::new();
    for repo in 1..=2 {
        fulls.push(cluster.backup(repo, BackupType::Full).await.expect("full"));
    }
    cluster.change(1).expect("change");
    let mut labels = Vec::new();
    for (repo, full) in (1..=2).zip(fulls) {
        let incr = cluster.backup(repo, BackupType::Incr).await.expect("incr");
        labels.push((full, incr));
    }
    let switched = cluster.switch_wal().await.expect("switch WAL");
    let repos = vec![cluster.repo_path(1), cluster.repo_path(2)];
    // Nothing is archived any more: the copies and the pristine repositories stay as they are.
    cluster.stop().await;
    eprintln!(
        "repositories ready after {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let fx = Fixture {
        scratch: root.path().join("cases"),
        repos,
        labels,
        switched,
    };
    wrong_or_missing_passphrase_is_wrong_password(&fx).await;
    flipped_byte_in_whole_file_is_corrupted_naming_the_file(&fx).await;
    flipped_byte_in_bundle_is_corrupted(&fx).await;
    flipped_byte_in_block_map_is_corrupted(&fx).await;
    missing_referenced_file_is_not_found_naming_the_key(&fx).await;
    damaged_backup_info_falls_back_to_its_copy_and_fails_only_with_both(&fx).await;
    missing_wal_is_none_and_damaged_wal_is_corrupted(&fx).await;
    non_empty_target_is_invalid_argument_and_untouched(&fx).await;
    manifest_name_escaping_the_target_is_corrupted(&fx).await;
    eprintln!("all cases after {:.1}s", started.elapsed().as_secs_f64());
}
