use super::*;
use crate::info::BackupStatus;

const DONE: &str = include_str!("../../tests/data/backup.info.done");

fn store() -> (Arc<blobstore::MemoryStore>, Catalog) {
    let s = Arc::new(blobstore::MemoryStore::new());
    let c = Catalog::new(s.clone(), "cluster-example");
    (s, c)
}

#[tokio::test]
async fn backups_are_listed_oldest_first_and_latest_skips_started_and_failed() {
    let (s, c) = store();
    s.put(
        "cluster-example/base/20261205T231020/backup.info",
        DONE.to_owned(),
    );
    s.put("cluster-example/base/20261205T231020/data.tar.lz4", "x");
    s.put(
        "cluster-example/base/20261205T230746/backup.info",
        DONE.to_owned(),
    );
    s.put(
        "cluster-example/base/20261205T231612/backup.info",
        DONE.replace("status=DONE", "status=STARTED"),
    );
    s.put(
        "cluster-example/base/20261205T231842/backup.info",
        "status=FAILED\nerror=failure uploading data (boom)\n",
    );
    // Not backups: another server, a stray object, a directory that is not an id.
    s.put(
        "cluster-restore/base/20261206T000000/backup.info",
        DONE.to_owned(),
    );
    s.put("cluster-example/base/README", "x");
    s.put("cluster-example/base/tmp/backup.info", DONE.to_owned());
    // A backup directory without a readable backup.info.
    s.put("cluster-example/base/20261205T231556/data.tar", "x");
    s.put(
        "cluster-example/base/20261205T231700/backup.info",
        "garbage\n",
    );

    let l = c.backups().await.expect("list");
    let ids: Vec<&str> = l.backups.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "20261205T230746",
            "20261205T231020",
            "20261205T231612",
            "20261205T231842"
        ]
    );
    assert_eq!(l.backups[2].info.status, BackupStatus::Started);
    assert_eq!(l.backups[3].info.status, BackupStatus::Failed);
    assert_eq!(l.latest().map(|b| b.id.as_str()), Some("20261205T231020"));
    let unreadable: Vec<&str> = l.unreadable.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(unreadable, ["20261205T231556", "20261205T231700"]);
    assert!(
        l.unreadable[1].1.contains("not key=value"),
        "{:?}",
        l.unreadable
    );
}

#[tokio::test]
async fn an_empty_store_has_no_latest() {
    let (_s, c) = store();
    let l = c.backups().await.expect("list");
    assert!(l.backups.is_empty());
    assert_eq!(l.latest(), None);
}

#[test]
fn backup_ids() {
    assert!(is_backup_id("20261205T231020"));
    for bad in [
        "20261205231020",
        "20261205t231020",
        "2026120T2310200",
        "20261205T23102",
        "",
    ] {
        assert!(!is_backup_id(bad), "{bad}");
    }
}
