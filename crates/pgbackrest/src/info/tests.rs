use super::*;

fn parse(text: &str) -> Ini {
    Ini::parse(text).expect("parse")
}

#[test]
fn backup_info_entries_are_decoded_oldest_first() {
    let ini = parse(
        "[backup:current]\n\
20261205-230558F_20261205-230616I={\"backrest-version\":\"2.45\",\"backup-prior\":\"20261205-230558F\",\"backup-timestamp-start\":10,\"backup-timestamp-stop\":12,\"backup-type\":\"incr\",\"db-id\":1,\"backup-info-size\":5,\"backup-annotation\":{\"k\":\"v\"},\"unknown\":1}\n\
20261205-230558F={\"backup-timestamp-start\":1,\"backup-timestamp-stop\":2,\"backup-type\":\"full\",\"db-id\":1,\"backup-archive-start\":\"000000010000000000000002\",\"option-online\":true}\n\n\
[cipher]\ncipher-pass=\"sub\"\n\n[db]\ndb-id=1\ndb-system-id=7715960038147903038\ndb-version=\"15\"\n\n\
[db:history]\n1={\"db-catalog-version\":202209061,\"db-control-version\":1300,\"db-system-id\":7715960038147903038,\"db-version\":\"15\"}\n",
    );
    let info = backup_info(&ini).expect("decode");
    assert_eq!(info.cipher_pass.as_deref(), Some("sub"));
    assert_eq!(info.backups.len(), 2);
    assert_eq!(info.backups[0].label, "20261205-230558F");
    assert_eq!(info.backups[0].kind, BackupType::Full);
    assert_eq!(info.backups[1].kind, BackupType::Incr);
    assert_eq!(
        info.backups[1].annotations.get("k").map(String::as_str),
        Some("v")
    );
    assert_eq!(info.history[0].system_id, 7_715_960_038_147_903_038);
}

#[test]
fn archive_history_reads_the_system_id_from_db_id() {
    let ini = parse(
        "[db]\ndb-id=2\ndb-system-id=7\ndb-version=\"16\"\n\n[db:history]\n\
1={\"db-id\":6,\"db-version\":\"15\"}\n2={\"db-id\":7,\"db-version\":\"16\"}\n3={\"db-id\":7,\"db-version\":\"16\"}\n",
    );
    let info = archive_info(&ini).expect("decode");
    assert_eq!(
        info.archive_ids_for(7, "16"),
        vec!["16-3".to_owned(), "16-2".to_owned()]
    );
    assert!(info.archive_ids_for(6, "16").is_empty());
}

#[test]
fn a_bad_label_is_refused() {
    let ini = parse("[backup:current]\n../../etc={\"backup-type\":\"full\"}\n");
    assert!(
        backup_info(&ini)
            .expect_err("bad")
            .contains("not a backup label")
    );
}
