use std::os::unix::fs::symlink;

use super::*;
use crate::restore::pgdata::LocalTree;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn layout(root: &Path, link: &str) {
    std::fs::create_dir_all(root.join("data/pg_tblspc")).expect("mkdir");
    std::fs::create_dir_all(root.join("ts1/PG_16_202307071/5")).expect("mkdir");
    symlink(link, root.join("data/pg_tblspc/16385")).expect("symlink");
}

#[test]
fn absolute_link_is_matched_by_its_longest_suffix_in_the_snapshot() {
    let t = tempfile::tempdir().expect("tempdir");
    layout(t.path(), "/srv/prod/ts1");
    let tree = LocalTree(t.path().to_path_buf());
    let plan = block_on(plan(&tree, Path::new("data"), "16")).expect("plan");
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0].oid, 16385);
    assert_eq!(plan[0].in_snapshot, PathBuf::from("ts1"));
    assert_eq!(plan[0].location, PathBuf::from("/srv/prod/ts1"));
}

#[test]
fn a_directory_without_the_majors_version_directory_is_not_a_match() {
    let t = tempfile::tempdir().expect("tempdir");
    layout(t.path(), "/srv/prod/ts1");
    let tree = LocalTree(t.path().to_path_buf());
    let Err(PlanError::Missing(missing)) = block_on(plan(&tree, Path::new("data"), "17")) else {
        panic!("not missing");
    };
    let msg = missing.message();
    assert!(
        msg.contains("OID 16385") && msg.contains("/srv/prod/ts1"),
        "{msg}"
    );
}

#[test]
fn tablespace_map_wins_and_is_rewritten_with_the_link() {
    let t = tempfile::tempdir().expect("tempdir");
    layout(t.path(), "/elsewhere/x");
    std::fs::write(
        t.path().join("data/tablespace_map"),
        "16385 /srv/prod/ts1\n",
    )
    .expect("write");
    let tree = LocalTree(t.path().to_path_buf());
    let plan = block_on(plan(&tree, Path::new("data"), "16")).expect("plan");
    assert_eq!(plan[0].in_snapshot, PathBuf::from("ts1"));
    relink(t.path(), Path::new("data"), &plan).expect("relink");
    let link = std::fs::read_link(t.path().join("data/pg_tblspc/16385")).expect("readlink");
    assert_eq!(link, PathBuf::from("../../ts1"));
    assert!(
        t.path()
            .join("data/pg_tblspc/16385/PG_16_202307071")
            .is_dir()
    );
    assert_eq!(
        std::fs::read_to_string(t.path().join("data/tablespace_map")).expect("read"),
        "16385 ../../ts1\n"
    );
    // Idempotent for a retried Job.
    relink(t.path(), Path::new("data"), &plan).expect("relink again");
}

#[test]
fn map_paths_unescape_backslashes() {
    assert_eq!(
        parse_map("16385 /a\\\\b c\n16386 /d\n"),
        vec![
            (16385, PathBuf::from("/a\\b c")),
            (16386, PathBuf::from("/d"))
        ]
    );
}

#[test]
fn in_place_tablespaces_need_nothing() {
    let t = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(t.path().join("pg_tblspc/16390/PG_16_1")).expect("mkdir");
    let tree = LocalTree(t.path().to_path_buf());
    assert!(
        block_on(plan(&tree, Path::new(""), "16"))
            .expect("plan")
            .is_empty()
    );
}
