#![allow(clippy::unwrap_used)]

use super::*;

fn pgdata() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("PG_VERSION"), "16\n").unwrap();
    std::fs::create_dir(d.path().join("global")).unwrap();
    std::fs::write(d.path().join("global/pg_control"), [0u8; 8192]).unwrap();
    d
}

fn settings() -> PgroSettings {
    PgroSettings {
        listen_addresses: "*".into(),
        port: 5432,
        socket_dir: "/tmp/pgro".into(),
        major: 16,
        shared_buffers_bytes: None,
        recovery: Vec::new(),
        tls: Vec::new(),
    }
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn check_pgdata_reads_major_and_tightens_permissions() {
    let d = pgdata();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(check_pgdata(d.path()).unwrap(), 16);
    let mode = std::fs::metadata(d.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        check_pgdata(empty.path()),
        Err(Error::NotDataDir { .. })
    ));
    std::fs::remove_file(d.path().join("global/pg_control")).unwrap();
    let e = check_pgdata(d.path()).unwrap_err();
    assert!(matches!(e, Error::MissingControlFile { .. }));
    assert_eq!(e.exit_code(), 3);
}

#[test]
fn stale_pid_file_is_removed_and_a_live_postmaster_refused() {
    let d = pgdata();
    std::fs::write(d.path().join("postmaster.pid"), "4242\n/x\n").unwrap();
    assert!(matches!(
        remove_stale_pid(d.path(), |_| true),
        Err(Error::AlreadyRunning { pid: 4242, .. })
    ));
    assert!(remove_stale_pid(d.path(), |_| false).unwrap());
    assert!(!d.path().join("postmaster.pid").exists());
    assert!(!remove_stale_pid(d.path(), |_| false).unwrap());
}

#[test]
fn recovery_files_are_moved_aside() {
    let d = pgdata();
    std::fs::write(d.path().join("standby.signal"), "").unwrap();
    std::fs::write(d.path().join("recovery.signal"), "").unwrap();
    assert_eq!(
        remove_recovery_files(d.path(), RecoverySignal::Remove).unwrap(),
        vec!["standby.signal", "recovery.signal"]
    );
    assert!(d.path().join("standby.signal.pgro-removed").exists());
    assert!(
        remove_recovery_files(d.path(), RecoverySignal::Remove)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn an_archive_restore_keeps_or_creates_recovery_signal_but_never_follows_a_primary() {
    let d = pgdata();
    std::fs::write(d.path().join("standby.signal"), "").unwrap();
    std::fs::write(d.path().join("recovery.signal"), "kept").unwrap();
    assert_eq!(
        remove_recovery_files(d.path(), RecoverySignal::Keep).unwrap(),
        vec!["standby.signal"]
    );
    assert_eq!(
        std::fs::read(d.path().join("recovery.signal")).unwrap(),
        b"kept"
    );
    std::fs::remove_file(d.path().join("recovery.signal")).unwrap();
    assert!(
        remove_recovery_files(d.path(), RecoverySignal::Keep)
            .unwrap()
            .is_empty()
    );
    assert!(d.path().join("recovery.signal").is_file());
}

#[test]
fn config_install_is_idempotent_and_derived_from_the_source() {
    let d = pgdata();
    std::fs::write(
        d.path().join(CONF),
        "shared_preload_libraries = 'x'\nport = 5433\ninclude 'extra.conf'\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("extra.conf"),
        "work_mem = '8MB'\nprimary_conninfo = 'host=a'\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join(AUTO_CONF),
        "primary_conninfo = 'host=b'\nmax_connections = '50'\n",
    )
    .unwrap();
    let install = || {
        let (source, _) = read_source(d.path()).unwrap();
        install_config(d.path(), &source, &settings(), Some("work_mem = '1MB'\n")).unwrap();
    };
    install();
    let first = snapshot(d.path());
    install();
    assert_eq!(snapshot(d.path()), first, "a second start changes no byte");

    let main = std::fs::read_to_string(d.path().join(CONF)).unwrap();
    assert!(main.contains("shared_preload_libraries = 'x'\n"));
    assert!(main.contains("work_mem = '8MB'\n"));
    assert!(main.contains("max_connections = '50'\n"));
    assert!(!main.contains("host="));
    assert!(!main.contains("5433"));
    assert_eq!(main.lines().filter(|l| l.starts_with("include")).count(), 1);
    assert_eq!(
        std::fs::read_to_string(d.path().join(AUTO_CONF)).unwrap(),
        conf::AUTO_CONF
    );
    assert!(d.path().join(CONF_SOURCE).exists() && d.path().join(AUTO_CONF_SOURCE).exists());
}

#[test]
fn a_source_without_postgresql_conf_gets_a_minimal_one() {
    let d = pgdata();
    let (source, _) = read_source(d.path()).unwrap();
    install_config(d.path(), &source, &settings(), None).unwrap();
    let main = std::fs::read_to_string(d.path().join(CONF)).unwrap();
    assert_eq!(conf::parse(&main).unwrap().len(), 1);
    assert_eq!(std::fs::read(d.path().join(CONF_SOURCE)).unwrap(), b"");
}
