use super::*;
use crate::codec::Compress;
use crate::info::BackupType;
use crate::manifest::{ManifestDb, ManifestPath, Tablespace};

const FULL: &str = "20261205-230558F";
const INCR: &str = "20261205-230558F_20261205-230616I";

fn file(
    name: &str,
    size: u64,
    reference: &str,
    bundle: Option<(u64, u64)>,
    repo_size: u64,
) -> ManifestFile {
    ManifestFile {
        name: name.into(),
        size,
        checksum: crate::manifest::EMPTY_SHA1.into(),
        reference: reference.into(),
        repo_size,
        bundle,
        block: None,
        mode: 0o600,
        timestamp: 0,
    }
}

fn manifest(files: Vec<ManifestFile>) -> Manifest {
    Manifest {
        label: INCR.into(),
        kind: BackupType::Incr,
        references: vec![FULL.into(), INCR.into()],
        timestamp_start: 0,
        timestamp_stop: 0,
        archive_start: None,
        archive_stop: None,
        online: true,
        compress: Compress::Zst,
        bundle_raw: false,
        cipher_pass: None,
        db: ManifestDb {
            id: 1,
            system_id: 1,
            version: "16".into(),
            catalog_version: 1,
        },
        tablespaces: vec![Tablespace {
            oid: 16384,
            name: Some("ts1".into()),
            source_path: "/src/ts1".into(),
        }],
        files,
        paths: vec![
            ManifestPath {
                name: "pg_data".into(),
                mode: 0o700,
            },
            ManifestPath {
                name: "pg_data/pg_tblspc".into(),
                mode: 0o700,
            },
            ManifestPath {
                name: "pg_tblspc".into(),
                mode: 0o700,
            },
            ManifestPath {
                name: "pg_tblspc/16384".into(),
                mode: 0o700,
            },
        ],
        writer_version: "2.60.0".into(),
    }
}

#[test]
fn files_are_grouped_into_units_and_pg_control_waits() {
    let m = manifest(vec![
        file("pg_data/PG_VERSION", 3, FULL, None, 23),
        file("pg_data/global/pg_control", 8192, INCR, Some((1, 0)), 100),
        file("pg_data/base/1/1", 10, INCR, Some((1, 100)), 50),
        file("pg_data/base/1/2", 10, INCR, Some((1, 150)), 50),
        file("pg_data/base/1/3", 10, INCR, Some((1, 10 << 20)), 50),
        file("pg_data/base/1/4", 0, INCR, None, 0),
        file("pg_data/tablespace_map", 20, INCR, None, 30),
        file("pg_tblspc/16384/PG_16_1/5/6", 10, FULL, None, 30),
        file(
            "pg_data/pg_wal/000000010000000000000003",
            10,
            INCR,
            None,
            30,
        ),
    ]);
    let p = plan(&m, Path::new("/t/data"), Path::new("/t/ts"), "db").expect("plan");
    assert_eq!(p.files, 8, "tablespace_map is skipped");
    assert_eq!(p.empty.len(), 1);
    assert_eq!(
        p.pg_control,
        Some((
            "/t/data/global/pg_control.pgro.tmp".into(),
            "/t/data/global/pg_control".into()
        ))
    );
    assert_eq!(
        p.links,
        vec![(
            PathBuf::from("/t/data/pg_tblspc/16384"),
            PathBuf::from("../../ts/16384")
        )]
    );
    let bundles: Vec<_> = p
        .units
        .iter()
        .filter_map(|u| match u {
            Unit::Bundle {
                key,
                start,
                end,
                jobs,
            } => Some((key.as_str(), *start, *end, jobs.len())),
            _ => None,
        })
        .collect();
    assert!(
        bundles.contains(&(
            "backup/db/20261205-230558F_20261205-230616I/bundle/1",
            0,
            200,
            3
        )),
        "{bundles:?}"
    );
    assert!(bundles.contains(&(
        "backup/db/20261205-230558F_20261205-230616I/bundle/1",
        10 << 20,
        (10 << 20) + 50,
        1
    )));
    assert!(p.units.iter().any(|u| matches!(u, Unit::Whole { key, job }
        if key == "backup/db/20261205-230558F/pg_tblspc/16384/PG_16_1/5/6.zst" && job.dest == Path::new("/t/ts/16384/PG_16_1/5/6"))));
    // A flattened link's directory (pg_wal) and every parent exist in the plan.
    for d in [
        "/t/data/pg_wal",
        "/t/data/global",
        "/t/data/base/1",
        "/t/ts/16384/PG_16_1/5",
    ] {
        assert!(p.dirs.iter().any(|(x, _)| x == Path::new(d)), "{d}");
    }
    assert!(
        p.dirs
            .iter()
            .all(|(d, _)| d != Path::new("/t/data/pg_tblspc/16384"))
    );
}

fn with_essentials(mut files: Vec<ManifestFile>) -> Vec<ManifestFile> {
    files.push(file("pg_data/PG_VERSION", 3, FULL, None, 23));
    files.push(file("pg_data/global/pg_control", 8192, FULL, None, 100));
    files
}

#[test]
fn a_backup_without_pg_control_or_pg_version_is_refused() {
    let m = manifest(vec![file("pg_data/PG_VERSION", 3, FULL, None, 23)]);
    let e = plan(&m, Path::new("/t/data"), Path::new("/t/ts"), "db").expect_err("no pg_control");
    assert!(e.contains("no pg_data/global/pg_control"), "{e}");
}

#[test]
fn writing_through_a_tablespace_link_or_outside_the_chain_is_refused() {
    let m = manifest(with_essentials(vec![file(
        "pg_data/pg_tblspc/16384/x",
        1,
        FULL,
        None,
        1,
    )]));
    assert!(
        plan(&m, Path::new("/t/data"), Path::new("/t/ts"), "db")
            .expect_err("link")
            .contains("through the link")
    );
    let m = manifest(with_essentials(vec![file(
        "pg_data/x",
        1,
        "20261205-230559F",
        None,
        1,
    )]));
    assert!(
        plan(&m, Path::new("/t/data"), Path::new("/t/ts"), "db")
            .expect_err("chain")
            .contains("not in the backup's chain")
    );
}

#[test]
fn relative_paths() {
    assert_eq!(
        relative(Path::new("/a/b/c"), Path::new("/a/d")),
        PathBuf::from("../../d")
    );
    assert_eq!(
        relative(Path::new("/a"), Path::new("/a/b")),
        PathBuf::from("b")
    );
}

#[test]
fn units_are_budgeted_by_the_buffers_they_hold() {
    use crate::restore::units::buffer_mib;
    let job = |repo_size| FileJob {
        file: file("pg_data/base/1/1", repo_size * 4, FULL, None, repo_size),
        dest: PathBuf::from("/t/base/1/1"),
    };
    let whole = |repo_size| Unit::Whole {
        key: "k".into(),
        job: job(repo_size),
    };
    // Small files count their stored size, never less than 1 MiB.
    assert_eq!(buffer_mib(&whole(0)), 1);
    assert_eq!(buffer_mib(&whole(3 << 20)), 3);
    // A file streamed in chunks holds the chunks fetched ahead (4 × 8 MiB), whatever its size.
    assert_eq!(buffer_mib(&whole(9 << 20)), 32);
    assert_eq!(buffer_mib(&whole(1 << 40)), 32);
    let bundle = Unit::Bundle {
        key: "b".into(),
        start: 100,
        end: 100 + (5 << 20) + 1,
        jobs: vec![job(1)],
    };
    assert_eq!(buffer_mib(&bundle), 6);
    assert_eq!(buffer_mib(&Unit::Block { job: job(1) }), 32);
}
