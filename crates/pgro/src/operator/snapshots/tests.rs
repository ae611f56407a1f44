use proptest::prelude::*;

use super::*;

fn snap(id: &str, start: &str) -> SnapshotInfo {
    SnapshotInfo {
        id: id.into(),
        host: "db-1".into(),
        user_name: "postgres".into(),
        path: "/var/lib/postgresql".into(),
        description: "nightly base backup".into(),
        start_time: start.parse().expect("ts"),
        end_time: None,
        tags: BTreeMap::from([("tag:area".into(), "postgres".into())]),
        incomplete: false,
        total_size: 1 << 30,
    }
}

fn filter(f: SnapshotFilter) -> CompiledFilter {
    CompiledFilter::new(Some(&f)).expect("compiles")
}

fn tags(pairs: &[(&str, &str)]) -> SnapshotFilter {
    SnapshotFilter {
        tags: Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        ..SnapshotFilter::default()
    }
}

#[test]
fn tags_match_with_or_without_kopias_tag_prefix() {
    let s = snap("a", "2026-11-21T00:00:00Z");
    assert!(filter(tags(&[("area", "postgres")])).matches(&s));
    assert!(filter(tags(&[("tag:area", "postgres")])).matches(&s));
    let plain = SnapshotInfo {
        tags: BTreeMap::from([("area".into(), "postgres".into())]),
        ..s.clone()
    };
    assert!(filter(tags(&[("tag:area", "postgres")])).matches(&plain));
    assert!(!filter(tags(&[("area", "mysql")])).matches(&s));
    assert!(
        !filter(tags(&[("area", "postgres"), ("env", "prod")])).matches(&s),
        "all tags must match"
    );
}

#[test]
fn globs_match_host_description_and_path_with_star_crossing_slashes() {
    let s = snap("a", "2026-11-21T00:00:00Z");
    let f = |host: &str, desc: &str, path: &str| {
        filter(SnapshotFilter {
            host_pattern: Some(host.into()),
            description_pattern: Some(desc.into()),
            path_pattern: Some(path.into()),
            ..SnapshotFilter::default()
        })
    };
    assert!(f("db-*", "*nightly*", "/var/*").matches(&s));
    assert!(f("db-?", "nightly*", "/var/*sql").matches(&s));
    assert!(!f("web-*", "*", "*").matches(&s));
    assert!(!f("*", "weekly*", "*").matches(&s));
    assert!(!f("*", "*", "/srv/*").matches(&s));
}

#[test]
fn windows_source_paths_are_normalised_before_matching() {
    assert_eq!(normalise_path(r"D:\Full"), "/D/Full");
    assert_eq!(
        normalise_path(r"C:\Program Files\PostgreSQL\16\data"),
        "/C/Program Files/PostgreSQL/16/data"
    );
    assert_eq!(normalise_path(r"D:\"), "/D");
    assert_eq!(normalise_path("D:/mixed"), "/D/mixed");
    assert_eq!(normalise_path("/var/lib/postgresql"), "/var/lib/postgresql");
    let s = SnapshotInfo {
        path: r"D:\Full\pgdata".into(),
        ..snap("a", "2026-11-21T00:00:00Z")
    };
    let by_path = |p: &str| {
        filter(SnapshotFilter {
            path_pattern: Some(p.into()),
            ..SnapshotFilter::default()
        })
    };
    assert!(by_path("/D/Full*").matches(&s));
    assert!(
        by_path(r"D:\Full\*").matches(&s),
        "a pattern written Windows-style is normalised too"
    );
    assert!(!by_path("/C/*").matches(&s));
}

#[test]
fn incomplete_snapshots_are_ignored() {
    let complete = snap("old", "2026-11-20T00:00:00Z");
    let incomplete = SnapshotInfo {
        incomplete: true,
        ..snap("new", "2026-11-21T00:00:00Z")
    };
    let all = [complete, incomplete];
    assert_eq!(
        choose_newest(&all, &CompiledFilter::default()).map(|s| s.id.as_str()),
        Some("old")
    );
}

#[test]
fn newest_is_by_parsed_time_not_by_text() {
    // As text "…T10:00:00.5Z" < "…T10:00:00Z"; as time it is later. Offsets compare as instants too.
    let all = [
        snap("plain", "2026-11-21T10:00:00Z"),
        snap("fraction", "2026-11-21T10:00:00.5Z"),
        snap("offset", "2026-11-21T20:59:59+11:00"),
    ];
    assert_eq!(
        choose_newest(&all, &CompiledFilter::default()).map(|s| s.id.as_str()),
        Some("fraction")
    );
}

#[test]
fn ties_break_on_end_time_then_id() {
    let t = "2026-11-21T10:00:00Z";
    let ended = |id: &str, end: &str| SnapshotInfo {
        end_time: Some(end.parse().expect("ts")),
        ..snap(id, t)
    };
    let all = [
        ended("b", "2026-11-21T10:05:00Z"),
        ended("a", "2026-11-21T10:09:00Z"),
    ];
    assert_eq!(
        choose_newest(&all, &CompiledFilter::default()).map(|s| s.id.as_str()),
        Some("a")
    );
    let same = [snap("k1", t), snap("k3", t), snap("k2", t)];
    assert_eq!(
        choose_newest(&same, &CompiledFilter::default()).map(|s| s.id.as_str()),
        Some("k3")
    );
}

#[test]
fn nothing_matching_chooses_nothing() {
    let all = [snap("a", "2026-11-21T00:00:00Z")];
    assert_eq!(
        choose_newest(&all, &filter(tags(&[("area", "mysql")]))),
        None
    );
    assert_eq!(choose_newest(&[], &CompiledFilter::default()), None);
}

#[test]
fn invalid_glob_names_its_field() {
    let err = CompiledFilter::new(Some(&SnapshotFilter {
        host_pattern: Some("db-[".into()),
        ..SnapshotFilter::default()
    }))
    .expect_err("invalid");
    assert!(
        err.to_string()
            .starts_with("snapshotFilter.hostPattern \"db-[\" is not a valid glob"),
        "{err}"
    );
}

proptest! {
    /// The choice is independent of listing order.
    #[test]
    fn choice_does_not_depend_on_order(
        entries in prop::collection::vec((0i64..5, 0i64..3, "[a-c]{1,2}", any::<bool>()), 1..12),
        seed in any::<u64>(),
    ) {
        let all: Vec<SnapshotInfo> = entries
            .iter()
            .map(|(start, end, id, incomplete)| SnapshotInfo {
                id: id.clone(),
                start_time: Timestamp::from_second(1_800_000_000 + start).expect("ts"),
                end_time: Some(Timestamp::from_second(1_800_000_100 + end).expect("ts")),
                incomplete: *incomplete,
                ..snap("x", "2026-11-21T00:00:00Z")
            })
            .collect();
        let mut shuffled = all.clone();
        let len = shuffled.len();
        shuffled.rotate_left((seed as usize) % len);
        shuffled.reverse();
        let f = CompiledFilter::default();
        prop_assert_eq!(choose_newest(&all, &f), choose_newest(&shuffled, &f));
        if let Some(chosen) = choose_newest(&all, &f) {
            prop_assert!(!chosen.incomplete);
            prop_assert!(all.iter().filter(|s| !s.incomplete).all(|s| s.start_time <= chosen.start_time));
        }
    }
}
