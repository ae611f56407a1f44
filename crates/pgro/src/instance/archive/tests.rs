#![allow(clippy::unwrap_used)]

use super::*;

const CMD: &str = "/pgro/pgro wal-fetch --source /etc/pgro/source/source.yaml --secret-dir /etc/pgro/source-secret %f \"%p\"";

/// `pg_controldata` output of a PostgreSQL 16 source run with max_connections=150,
/// max_prepared_transactions=3 and 1 MiB segments (only the lines the parser reads, plus neighbours).
const CONTROLDATA: &str = "pg_control version number:            1300\n\
Database cluster state:               in production\n\
Bytes per WAL segment:                1048576\n\
wal_level setting:                    replica\n\
max_connections setting:              150\n\
max_worker_processes setting:         8\n\
max_wal_senders setting:              2\n\
max_prepared_xacts setting:           3\n\
max_locks_per_xact setting:           64\n\
track_commit_timestamp setting:       off\n";

fn s(name: &str, value: &str) -> Setting {
    Setting {
        name: name.into(),
        value: value.into(),
    }
}

fn pending() -> Files {
    Files {
        recovery_signal: true,
        backup_label: true,
    }
}

fn plan_for(target: RecoveryTarget, files: Files, configured: &[Setting]) -> Plan {
    let control = parse_controldata(CONTROLDATA);
    plan(&PlanInputs {
        target,
        restore_command: CMD,
        files,
        control: &control,
        configured,
    })
}

fn settings(p: &Plan) -> Vec<(&str, &str)> {
    match p {
        Plan::Recover { settings, .. } => settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect(),
        Plan::Recovered => panic!("expected recovery, got {p:?}"),
    }
}

fn get<'a>(set: &[(&'a str, &'a str)], name: &str) -> Option<&'a str> {
    set.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
}

#[test]
fn latest_replays_everything_with_this_executable_then_promotes_with_nobody_connected() {
    let p = plan_for(RecoveryTarget::Latest, pending(), &[]);
    let set = settings(&p);
    assert_eq!(get(&set, "restore_command"), Some(CMD));
    assert_eq!(get(&set, "recovery_target_action"), Some("promote"));
    assert_eq!(get(&set, "recovery_target_timeline"), Some("latest"));
    assert_eq!(get(&set, "recovery_target"), None);
    assert_eq!(get(&set, "archive_mode"), Some("off"));
    assert_eq!(get(&set, "hot_standby"), Some("off"));
    assert!(matches!(
        p,
        Plan::Recover {
            first_start: true,
            ..
        }
    ));
}

#[test]
fn consistent_stops_at_the_end_of_the_backup_on_its_timeline() {
    let set_plan = plan_for(RecoveryTarget::Consistent, pending(), &[]);
    let set = settings(&set_plan);
    assert_eq!(get(&set, "recovery_target"), Some("immediate"));
    assert_eq!(get(&set, "recovery_target_timeline"), Some("current"));
    assert_eq!(get(&set, "recovery_target_action"), Some("promote"));
    assert_eq!(get(&set, "restore_command"), Some(CMD));
}

#[test]
fn hot_standby_settings_are_raised_to_pg_control_only_where_lower() {
    // Defaults (nothing configured): 100 < 150 and 0 < 3 are raised; 10 ≥ 2 wal senders, 8 and 64 equal.
    let p = plan_for(RecoveryTarget::Latest, pending(), &[]);
    let set = settings(&p);
    assert_eq!(get(&set, "max_connections"), Some("150"));
    assert_eq!(get(&set, "max_prepared_transactions"), Some("3"));
    for untouched in [
        "max_wal_senders",
        "max_worker_processes",
        "max_locks_per_transaction",
    ] {
        assert_eq!(get(&set, untouched), None, "{untouched}");
    }
    // The last configured value counts (source, then postgresExtraConfig): higher ones are left alone.
    let configured = [
        s("max_connections", "500"),
        s("max_worker_processes", "4"),
        s("max_connections", "200"),
        s("max_prepared_transactions", "10"),
        s("max_locks_per_transaction", "not a number"),
    ];
    let p = plan_for(RecoveryTarget::Latest, pending(), &configured);
    let set = settings(&p);
    assert_eq!(get(&set, "max_connections"), None);
    assert_eq!(get(&set, "max_prepared_transactions"), None);
    assert_eq!(get(&set, "max_worker_processes"), Some("8"));
    assert_eq!(get(&set, "max_locks_per_transaction"), Some("64"));
    // Without pg_controldata nothing is raised.
    let p = plan(&PlanInputs {
        target: RecoveryTarget::Latest,
        restore_command: CMD,
        files: pending(),
        control: &Control::default(),
        configured: &[],
    });
    assert_eq!(get(&settings(&p), "max_connections"), None);
}

#[test]
fn recovery_is_pending_while_recovery_signal_or_backup_label_is_there() {
    // A restart in the middle of recovery: PostgreSQL renamed backup_label, recovery.signal stays.
    let resumed = Files {
        recovery_signal: true,
        backup_label: false,
    };
    assert!(matches!(
        plan_for(RecoveryTarget::Latest, resumed, &[]),
        Plan::Recover {
            first_start: false,
            ..
        }
    ));
    // recovery.signal lost but the backup never started: recovery.signal is recreated (kept by prepare).
    let label_only = Files {
        recovery_signal: false,
        backup_label: true,
    };
    assert!(matches!(
        plan_for(RecoveryTarget::Latest, label_only, &[]),
        Plan::Recover {
            first_start: true,
            ..
        }
    ));
    // Promoted earlier, or an offline backup: a normal start.
    assert_eq!(
        plan_for(RecoveryTarget::Latest, Files::default(), &[]),
        Plan::Recovered
    );
    assert_eq!(
        plan_for(RecoveryTarget::None, pending(), &[]),
        Plan::Recovered
    );
}

#[test]
fn controldata_and_backup_label_parse() {
    let c = parse_controldata(CONTROLDATA);
    assert_eq!(c.segment_size, Some(1 << 20));
    assert_eq!(
        c.recorded,
        vec![
            ("max_connections", 150),
            ("max_worker_processes", 8),
            ("max_wal_senders", 2),
            ("max_prepared_transactions", 3),
            ("max_locks_per_transaction", 64),
        ]
    );
    let label = "START WAL LOCATION: 0/5000028 (file 000000010000000000000005)\n\
                 CHECKPOINT LOCATION: 0/5000060\n\
                 BACKUP METHOD: streamed\n\
                 BACKUP FROM: primary\n\
                 START TIME: 2024-05-01 12:00:00 UTC\n\
                 LABEL: pgBackRest backup started at 2024-05-01 12:00:00\n\
                 START TIMELINE: 1\n";
    assert_eq!(
        parse_backup_label(label),
        Some(BackupLabel {
            start_lsn: "0/5000028".into(),
            start_segment: "000000010000000000000005".into(),
            start_time: Some("2024-05-01 12:00:00 UTC".into()),
        })
    );
    assert_eq!(parse_backup_label("START TIME: x\n"), None);
    assert_eq!(
        parse_backup_label("START WAL LOCATION: 0/5000028 (file ../../etc)\n"),
        None
    );
    assert_eq!(parse_lsn("1/0"), Some(1 << 32));
    assert_eq!(parse_lsn("0/5000028"), Some(0x500_0028));
    assert_eq!(parse_lsn("x/1"), None);
}

#[test]
fn replay_figures_count_whole_segments_from_the_backup_start() {
    let w = wal_replayed(0x500_0028, 0x780_0000, 1 << 20, 12.3456);
    assert_eq!(w.bytes, 0x780_0000 - 0x500_0028);
    assert_eq!(w.segments, 40);
    assert!((w.seconds - 12.346).abs() < 1e-9);
    let none = wal_replayed(10, 5, 1 << 20, -1.0);
    assert_eq!((none.bytes, none.segments, none.seconds), (0, 0, 0.0));
    let v = serde_json::to_value(w).unwrap();
    assert_eq!(v["segments"], 40);
}

#[test]
fn a_failed_start_names_what_wal_fetch_reported_and_the_missing_wal() {
    let log = vec![
        "LOG:  starting archive recovery".to_string(),
        "pgro wal-fetch 000000010000000000000007: storage unreachable after 10 attempts".to_string(),
        "FATAL:  could not restore file \"000000010000000000000007\" from archive: command not executable"
            .to_string(),
    ];
    let s = startup_summary(&log);
    assert!(
        s.starts_with(
            "restore_command failed: pgro wal-fetch 000000010000000000000007: storage unreachable"
        ),
        "{s}"
    );
    assert!(s.contains("command not executable"), "{s}");
    let gap = vec!["FATAL:  WAL ends before end of online backup".to_string()];
    let s = startup_summary(&gap);
    assert!(
        s.contains("lacks WAL this backup needs") && s.contains("pg_resetwal"),
        "{s}"
    );
}

#[test]
fn restore_command_paths_are_made_absolute_and_checked() {
    let a = Archive::new(
        Path::new("/etc/pgro/source/source.yaml"),
        Some(Path::new("/etc/pgro/source-secret")),
        RecoveryTarget::Latest,
        Path::new("/pgro/pgro"),
    )
    .unwrap();
    assert_eq!(a.restore_command, CMD);
    let rel = Archive::new(
        Path::new("source.yaml"),
        None,
        RecoveryTarget::Latest,
        Path::new("/pgro/pgro"),
    )
    .unwrap();
    assert!(rel.source.source.is_absolute());
    let bad = Archive::new(
        Path::new("/etc/my source.yaml"),
        None,
        RecoveryTarget::Latest,
        Path::new("/pgro/pgro"),
    );
    assert!(matches!(bad, Err(Error::RestoreCommand { .. })));
}

#[test]
fn state_survives_a_restart_and_prepare_plans_from_the_files() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("backup_label"),
        "START WAL LOCATION: 0/3000028 (file 000000010000000000000003)\nSTART TIME: 2024-05-01 12:00:00 UTC\n",
    )
    .unwrap();
    let a = Archive::new(
        Path::new("/etc/pgro/source/source.yaml"),
        Some(Path::new("/etc/pgro/source-secret")),
        RecoveryTarget::Latest,
        Path::new("/pgro/pgro"),
    )
    .unwrap();
    let first = prepare(
        &a,
        d.path(),
        pending(),
        Some(CONTROLDATA),
        &[],
        Some("max_connections = 50\n"),
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        first.check_segment.as_deref(),
        Some("000000010000000000000003")
    );
    assert_eq!(first.segment_size, Some(1 << 20));
    assert!(
        first
            .settings
            .contains(&("max_connections".into(), "150".into()))
    );
    let saved = load_state(d.path()).unwrap();
    assert_eq!(saved.start_lsn, "0/3000028");
    // PostgreSQL renamed backup_label; the restart resumes without a check and keeps the first start time.
    std::fs::remove_file(d.path().join("backup_label")).unwrap();
    let resumed = Files {
        recovery_signal: true,
        backup_label: false,
    };
    let again = prepare(&a, d.path(), resumed, Some(CONTROLDATA), &[], None)
        .unwrap()
        .unwrap();
    assert_eq!(again.check_segment, None);
    assert_eq!(again.state, Some(saved));
    assert!(
        prepare(&a, d.path(), Files::default(), None, &[], None)
            .unwrap()
            .is_none()
    );
    // A label without its first segment is an unusable data directory.
    std::fs::write(d.path().join("backup_label"), "LABEL: x\n").unwrap();
    let e = prepare(&a, d.path(), pending(), None, &[], None).unwrap_err();
    assert!(matches!(e, Error::BackupLabel { .. }));
    assert_eq!(e.exit_code(), 3);
}
