use super::*;

/// `base/20261205T231020/backup.info` as barman-cloud 3.19.1 wrote it (barman-restic-format.md A8).
const DONE: &str = include_str!("../../tests/data/backup.info.done");

#[test]
fn a_real_done_file_decodes() {
    let i = BackupInfo::parse(DONE).expect("parse");
    assert_eq!(i.status, BackupStatus::Done);
    assert!(i.restorable());
    assert_eq!(i.name.as_deref(), Some("backup-20261205232000"));
    assert_eq!(i.begin_wal.as_deref(), Some("000000010000000000000007"));
    assert_eq!(i.end_xlog.as_deref(), Some("0/7000100"));
    assert_eq!(i.timeline, Some(1));
    assert_eq!(i.system_id, Some(7_715_960_509_825_910_038));
    assert_eq!(i.major(), Some(15));
    assert_eq!(i.segment_size, Some(16 << 20));
    assert_eq!(
        i.end_time.map(|t| t.to_string()).as_deref(),
        Some("2026-12-05T23:10:21.315492Z")
    );
    assert_eq!(
        i.tablespaces,
        [Tablespace {
            name: "ts1".into(),
            oid: 16384,
            location: "<scratch>/ts1".into()
        }]
    );
    let label = i.backup_label.expect("backup_label");
    assert!(label.starts_with("START WAL LOCATION: 0/7000028 (file 000000010000000000000007)\n"));
    assert!(label.ends_with("START TIMELINE: 1\n"));
    assert!(!i.snapshot_backup);
}

#[test]
fn started_and_failed_files_are_read_but_not_restorable() {
    let failed = "backup_label=None\nbackup_name=backup-will-fail\nbegin_wal=00000001000000000000000E\n\
                  end_time=None\nend_wal=None\nend_xlog=None\n\
                  error=failure uploading data ([Errno 13] Permission denied: '/x')\nstatus=FAILED\n";
    let i = BackupInfo::parse(failed).expect("failed");
    assert_eq!(i.status, BackupStatus::Failed);
    assert!(!i.restorable());
    assert!(
        i.error
            .as_deref()
            .is_some_and(|e| e.contains("Permission denied"))
    );
    // STARTED: no backup_name line, end_* None.
    let started = DONE
        .lines()
        .filter(|l| !l.starts_with("backup_name="))
        .map(|l| match l.split_once('=') {
            Some(("status", _)) => "status=STARTED".to_owned(),
            Some((k, _)) if k.starts_with("end_") || k == "backup_label" => format!("{k}=None"),
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let i = BackupInfo::parse(&started).expect("started");
    assert_eq!(i.status, BackupStatus::Started);
    assert_eq!(i.name, None);
    assert!(!i.restorable());
}

#[test]
fn unknown_keys_are_ignored_and_missing_ones_are_null() {
    let i = BackupInfo::parse(&format!(
        "{DONE}a_key_from_barman_4=whatever\n# comment\n\n"
    ))
    .expect("unknown key");
    assert!(i.restorable());
    let i = BackupInfo::parse("status=DONE\n").expect("only a status");
    assert_eq!(i.begin_wal, None);
    assert!(i.tablespaces.is_empty());
    assert!(!i.restorable());
    // A time without fraction and one without an offset (old barman: taken as UTC).
    let i = BackupInfo::parse(
        "status=DONE\nbegin_time=2026-12-05 23:10:20+00:00\nend_time=2026-12-05 23:10:21\n",
    )
    .expect("times");
    assert_eq!(
        i.begin_time.map(|t| t.to_string()).as_deref(),
        Some("2026-12-05T23:10:20Z")
    );
    assert_eq!(
        i.end_time.map(|t| t.to_string()).as_deref(),
        Some("2026-12-05T23:10:21Z")
    );
}

#[test]
fn malformed_values_name_their_key() {
    for (text, key) in [
        (
            "status=DONE\nbegin_wal=0000000100000000000000\n",
            "begin_wal",
        ),
        ("status=DONE\ntimeline=one\n", "timeline"),
        ("status=DONE\nend_time=yesterday\n", "end_time"),
        (
            "status=DONE\ntablespaces=[('ts1', 'x', '/p')]\n",
            "tablespaces",
        ),
        ("status=DONE\ntablespaces=[('ts1', 16384\n", "tablespaces"),
        ("status=DONE\nbackup_label=42\n", "backup_label"),
    ] {
        match BackupInfo::parse(text) {
            Err(InfoError::Value { key: k, .. }) => assert_eq!(k, key, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
    assert_eq!(BackupInfo::parse("begin_wal=x\n"), Err(InfoError::NoStatus));
    assert!(matches!(
        BackupInfo::parse("status=DONE\nno equals sign\n"),
        Err(InfoError::Syntax { line: 2, .. })
    ));
}

proptest::proptest! {
    #[test]
    fn parse_never_panics(s in "\\PC{0,200}") {
        let _ = BackupInfo::parse(&s);
    }
}
