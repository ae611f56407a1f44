use blobstore::MemoryStore;

use super::*;
use crate::error::ErrorKind;

fn signed(body: &str) -> String {
    let sum = Ini::parse(body).expect("ini").checksum();
    format!("{body}\n[backrest]\nbackrest-checksum=\"{sum}\"\n")
}

fn backup_info() -> String {
    signed(
        "[backrest]\nbackrest-format=5\nbackrest-version=\"2.60.0\"\n\n[backup:current]\n\
20261205-230558F={\"backup-timestamp-start\":1,\"backup-timestamp-stop\":2,\"backup-type\":\"full\",\"db-id\":1}\n\n\
[db]\ndb-id=1\ndb-system-id=7\ndb-version=\"16\"\n\n[db:history]\n1={\"db-system-id\":7,\"db-version\":\"16\"}\n",
    )
}

fn store() -> Arc<MemoryStore> {
    Arc::new(MemoryStore::new())
}

#[tokio::test]
async fn a_damaged_info_file_falls_back_to_its_copy() {
    let s = store();
    s.put(
        "backup/db/backup.info",
        backup_info().replace("\"db-id\":1}", "\"db-id\":2}"),
    );
    s.put("backup/db/backup.info.copy", backup_info());
    let repo = Repository::open(s.clone(), "db", None).await.expect("open");
    assert_eq!(
        repo.latest().map(|b| b.label.as_str()),
        Some("20261205-230558F")
    );
    s.remove("backup/db/backup.info.copy");
    let e = Repository::open(s, "db", None).await.expect_err("both bad");
    assert_eq!(e.kind(), ErrorKind::Corrupted);
    let msg = crate::error_chain(&e);
    assert!(
        msg.contains("checksum mismatch") && msg.contains("not found"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_missing_stanza_is_not_found() {
    let e = Repository::open(store(), "db", None)
        .await
        .expect_err("missing");
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn an_unknown_label_names_the_current_ones() {
    let s = store();
    s.put("backup/db/backup.info", backup_info());
    let repo = Repository::open(s, "db", None).await.expect("open");
    let e = repo
        .manifest("20261205-230559F")
        .await
        .expect_err("unknown");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("20261205-230558F"), "{e}");
}
