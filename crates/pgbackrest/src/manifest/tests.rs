use super::*;

const MANIFEST: &str = "[backup]\nbackup-label=\"20261205-230558F_20261205-230616I\"\nbackup-type=\"incr\"\n\
backup-timestamp-start=10\nbackup-timestamp-stop=12\nbackup-archive-start=\"000000010000000000000002\"\n\n\
[backup:db]\ndb-catalog-version=202209061\ndb-id=1\ndb-system-id=7715960038147903038\ndb-version=\"15\"\n\n\
[backup:option]\noption-compress=true\n\n\
[backup:target]\npg_data={\"path\":\"/src/pg\",\"type\":\"path\"}\n\
pg_data/pg_wal={\"path\":\"/pgdata/pg15_wal\",\"type\":\"link\"}\n\
pg_tblspc/16384={\"path\":\"/src/ts1\",\"tablespace-id\":\"16384\",\"tablespace-name\":\"ts1\",\"type\":\"link\"}\n\n\
[target:file]\npg_data/PG_VERSION={\"checksum\":\"587b596f04f7db9c2cad3d6b87dd2b3a05de4f35\",\"reference\":\"20261205-230558F\",\"repo-size\":23,\"size\":3,\"timestamp\":1796511941}\n\
pg_data/base/1/13394={\"size\":0,\"timestamp\":1}\n\
pg_data/global/pg_control={\"bni\":1,\"bno\":96,\"checksum\":\"38324475ab6f86b8030a2796f637418ebfb1cf1b\",\"mode\":\"0640\",\"repo-size\":208,\"size\":8192,\"timestamp\":2}\n\
pg_data/base/1/1259={\"bi\":1,\"bim\":102,\"bni\":1,\"bno\":8914,\"checksum\":\"b837adeb573209ac5b0082fe65768d63ea49c441\",\"repo-size\":1410,\"size\":114688,\"timestamp\":3}\n\n\
[target:file:default]\ngroup=\"postgres\"\nmode=\"0600\"\nuser=false\n\n\
[target:path]\npg_data={}\npg_data/base={\"mode\":\"0750\"}\npg_tblspc={}\npg_tblspc/16384={}\n\n\
[target:path:default]\nmode=\"0700\"\n";

#[test]
fn a_manifest_decodes_with_defaults_and_a_rebuilt_chain() {
    let m = parse(&Ini::parse(MANIFEST).expect("ini")).expect("manifest");
    assert_eq!(m.kind, BackupType::Incr);
    assert_eq!(m.compress, Compress::Gz);
    // No backup-reference (before 2.42): the files' references, then this backup.
    assert_eq!(
        m.references,
        vec!["20261205-230558F", "20261205-230558F_20261205-230616I"]
    );
    assert_eq!(m.tablespaces.len(), 1);
    assert_eq!(m.tablespaces[0].oid, 16384);
    let f = |n: &str| m.files.iter().find(|f| f.name == n).expect("file");
    assert_eq!(f("pg_data/PG_VERSION").mode, 0o600);
    assert_eq!(f("pg_data/global/pg_control").mode, 0o640);
    assert_eq!(f("pg_data/global/pg_control").bundle, Some((1, 96)));
    assert_eq!(f("pg_data/base/1/13394").checksum, EMPTY_SHA1);
    assert_eq!(f("pg_data/base/1/13394").reference, m.label);
    assert_eq!(
        f("pg_data/base/1/1259").block,
        Some(BlockIncr {
            block_size: 8192,
            checksum_size: 6,
            map_size: 102
        })
    );
    assert_eq!(
        m.paths
            .iter()
            .find(|p| p.name == "pg_data/base")
            .map(|p| p.mode),
        Some(0o750)
    );
    assert_eq!(
        m.paths.iter().find(|p| p.name == "pg_data").map(|p| p.mode),
        Some(0o700)
    );
}

#[test]
fn names_that_could_escape_are_refused() {
    for bad in [
        "pg_data/../x",
        "pg_data//x",
        "etc/passwd",
        "pg_tblspc/x/y",
        "pg_data/./x",
        "/pg_data/x",
    ] {
        let text = MANIFEST.replace("pg_data/base/1/13394=", &format!("{bad}="));
        let e = parse(&Ini::parse(&text).expect("ini")).expect_err(bad);
        assert!(e.contains("is not a pg_data/"), "{bad}: {e}");
    }
}

#[test]
fn a_file_without_a_checksum_is_refused() {
    let text = MANIFEST.replace(
        "\"checksum\":\"587b596f04f7db9c2cad3d6b87dd2b3a05de4f35\",",
        "",
    );
    let e = parse(&Ini::parse(&text).expect("ini")).expect_err("no checksum");
    assert!(e.contains("no checksum"), "{e}");
}
