//! The reader against repositories written by the real restic 0.19.1 (the oracle): versions 1 and 2,
//! compression off / auto / max, several snapshots, KubeStash's stdin shape; every stream equals
//! `restic dump`. Then what a hostile repository does to it: a wrong password, a damaged pack, a pack or
//! index pruned away, a legacy layout, nothing there at all.

use std::sync::Arc;

use blobstore::{BlobStore, FileStore};
use futures::StreamExt as _;
use pgro_testkit::restic::{DUMP_FILE, KUBESTASH_HOST, PASSWORD, ResticRepo, dumpish};
use pgro_testkit::{Components, skip_unless_ci};
use restic::{Error, ErrorClass, Repository};

async fn read_all(
    repo: &Arc<Repository>,
    snap: &restic::Snapshot,
    path: &str,
) -> Result<Vec<u8>, Error> {
    let file = repo.find_file(snap, path).await?;
    let mut s = std::pin::pin!(restic::stream_file(repo.clone(), file, 4));
    let mut out = Vec::new();
    while let Some(b) = s.next().await {
        out.extend_from_slice(&b?);
    }
    Ok(out)
}

async fn open(dir: &std::path::Path, pw: &str) -> Result<Arc<Repository>, Error> {
    let store: Arc<dyn BlobStore> = Arc::new(FileStore::new(dir));
    Repository::open(store, pw.as_bytes()).await.map(Arc::new)
}

/// Snapshot IDs with the bytes each holds.
type Backed = Vec<(String, Vec<u8>)>;

/// A fresh repository of `version` with two stdin snapshots (KubeStash's shape) of `size` bytes each.
fn two_snapshots(
    components: &Components,
    dir: &std::path::Path,
    version: u32,
    compression: &str,
    size: usize,
) -> anyhow::Result<(ResticRepo, Backed)> {
    let r = ResticRepo::local(components, dir)?;
    r.init(version)?;
    let mut snaps = Vec::new();
    for seed in [1u64, 2] {
        let data = dumpish(size, seed);
        let id = r.backup_bytes(&data, DUMP_FILE, KUBESTASH_HOST, compression)?;
        snaps.push((id, data));
    }
    Ok((r, snaps))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_equal_restic_dump_for_every_version_and_compression() {
    let components = Components::load();
    for (version, compression) in [(1, ""), (2, "off"), (2, "auto"), (2, "max")] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let Some((oracle, snaps)) = skip_unless_ci(
            two_snapshots(&components, tmp.path(), version, compression, 12 << 20),
            "streams_equal_restic_dump_for_every_version_and_compression",
        ) else {
            return;
        };
        let repo = open(tmp.path(), PASSWORD).await.expect("opens");
        assert_eq!(repo.version(), version);
        let listed = repo.snapshots().await.expect("lists");
        let theirs = oracle.snapshots().expect("restic snapshots");
        assert_eq!(listed.len(), 2);
        for (mine, (id, data)) in listed.iter().zip(&snaps) {
            assert_eq!(
                &mine.id.hex(),
                id,
                "oldest first, IDs as restic prints them"
            );
            assert_eq!(mine.hostname, KUBESTASH_HOST);
            assert_eq!(mine.paths, vec![format!("/{DUMP_FILE}")]);
            assert_eq!(mine.bytes, Some(data.len() as u64));
            let t = theirs
                .as_array()
                .and_then(|a| a.iter().find(|s| s["id"] == *id.as_str()))
                .expect("restic lists it");
            assert_eq!(
                t["time"]
                    .as_str()
                    .and_then(|s| s.parse::<jiff::Timestamp>().ok()),
                Some(mine.time)
            );
            let got = read_all(&repo, mine, DUMP_FILE).await.expect("streams");
            assert!(
                got == *data,
                "v{version}/{compression}: stream differs from the data backed up"
            );
            let dumped = oracle
                .dump(id, &format!("/{DUMP_FILE}"))
                .expect("restic dump");
            assert!(
                got == dumped,
                "v{version}/{compression}: stream differs from restic dump"
            );
        }
        // `latest`, prefixes, and a leading slash in the path
        let latest = Repository::choose(&listed, "latest").expect("latest");
        assert_eq!(latest.id.hex(), snaps[1].0);
        let by_prefix = Repository::choose(&listed, &snaps[0].0[..8]).expect("prefix");
        assert_eq!(by_prefix.id.hex(), snaps[0].0);
        assert!(matches!(
            Repository::choose(&listed, "zzzz"),
            Err(Error::SnapshotNotFound(_))
        ));
        assert!(read_all(&repo, latest, "/dumpfile.sql").await.is_ok());
        let missing = read_all(&repo, latest, "other.sql")
            .await
            .expect_err("no such file");
        assert_eq!(missing.class(), ErrorClass::SnapshotNotFound);
        assert!(missing.to_string().contains("/dumpfile.sql"), "{missing}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_a_second_key_and_a_trailing_newline() {
    let components = Components::load();
    let tmp = tempfile::tempdir().expect("tempdir");
    let Some((oracle, _)) = skip_unless_ci(
        two_snapshots(&components, tmp.path(), 2, "auto", 1 << 20),
        "a_wrong_password_a_second_key_and_a_trailing_newline",
    ) else {
        return;
    };
    let err = open(tmp.path(), "not-it")
        .await
        .expect_err("wrong password");
    assert_eq!(err.class(), ErrorClass::WrongPassword);
    assert!(err.to_string().contains("RESTIC_PASSWORD"), "{err}");
    // A Secret made from a file holds the password with a newline; restic's own env use would not.
    assert!(open(tmp.path(), &format!("{PASSWORD}\n")).await.is_ok());
    oracle.add_key("second secret").expect("key add");
    assert!(
        open(tmp.path(), "second secret").await.is_ok(),
        "any key file may open it"
    );
    assert!(open(tmp.path(), PASSWORD).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_and_pruned_data_is_an_error_never_wrong_bytes() {
    let components = Components::load();
    let tmp = tempfile::tempdir().expect("tempdir");
    let Some((oracle, snaps)) = skip_unless_ci(
        two_snapshots(&components, tmp.path(), 2, "auto", 4 << 20),
        "damaged_and_pruned_data_is_an_error_never_wrong_bytes",
    ) else {
        return;
    };
    let packs: Vec<std::path::PathBuf> = walk(&tmp.path().join("data"));
    assert!(!packs.is_empty());

    // One flipped byte in every pack: MAC failures, named.
    let copy = tempfile::tempdir().expect("tempdir");
    copy_tree(tmp.path(), copy.path());
    for p in walk(&copy.path().join("data")) {
        let mut b = std::fs::read(&p).expect("read");
        b[20] ^= 1;
        std::fs::write(&p, b).expect("write");
    }
    let repo = open(copy.path(), PASSWORD).await.expect("opens");
    let snap = repo.snapshots().await.expect("lists").pop().expect("one");
    let err = read_all(&repo, &snap, DUMP_FILE)
        .await
        .expect_err("damaged");
    assert_eq!(err.class(), ErrorClass::Corrupt, "{err}");
    assert!(err.to_string().contains("data/"), "names the pack: {err}");

    // A pack gone (a prune the index does not know of): an error, also after the index is re-read.
    let gone = tempfile::tempdir().expect("tempdir");
    copy_tree(tmp.path(), gone.path());
    for p in walk(&gone.path().join("data")) {
        std::fs::remove_file(p).expect("rm");
    }
    let repo = open(gone.path(), PASSWORD).await.expect("opens");
    let snap = repo.snapshots().await.expect("lists").pop().expect("one");
    let err = read_all(&repo, &snap, DUMP_FILE).await.expect_err("pruned");
    assert_eq!(err.class(), ErrorClass::Corrupt, "{err}");

    // A real prune of the older snapshot while the reader holds its index: the newer one still streams
    // (its blobs re-found through a re-read index when their pack was repacked).
    let repo = open(tmp.path(), PASSWORD).await.expect("opens");
    let listed = repo.snapshots().await.expect("lists");
    let newest = listed.last().expect("two").clone();
    repo.index().await.expect("index loaded before the prune");
    oracle.forget_prune(&snaps[0].0).expect("prune");
    let got = read_all(&repo, &newest, DUMP_FILE)
        .await
        .expect("still streams");
    assert!(got == snaps[1].1);

    // Nothing there, and a legacy layout.
    let empty = tempfile::tempdir().expect("tempdir");
    let err = open(empty.path(), PASSWORD).await.expect_err("empty");
    assert_eq!(err.class(), ErrorClass::NotFound);
    assert!(
        err.to_string().contains("repository/v1"),
        "says where KubeStash puts it: {err}"
    );
    std::fs::create_dir_all(empty.path().join("key")).expect("mkdir");
    std::fs::write(empty.path().join("key/abc"), "{}").expect("write");
    let err = open(empty.path(), PASSWORD).await.expect_err("legacy");
    assert_eq!(err.class(), ErrorClass::Unsupported);
    assert!(err.to_string().contains("migrate"), "{err}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            std::fs::create_dir_all(&dest).expect("mkdir");
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).expect("copy");
        }
    }
}
