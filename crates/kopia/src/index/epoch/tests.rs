use super::*;

fn bm(id: &str) -> BlobMetadata {
    BlobMetadata {
        id: BlobId::new(id),
        length: 1,
        timestamp: None,
    }
}

fn ids(v: &[BlobId]) -> Vec<&str> {
    v.iter().map(BlobId::as_str).collect()
}

#[test]
fn epoch_numbers_and_ranges_parse_like_kopia() {
    assert_eq!(epoch_number("xn12_abc-s1-c1"), Some(12));
    assert_eq!(epoch_number("xe3"), Some(3));
    assert_eq!(epoch_number("xnabc"), None);
    assert_eq!(epoch_range("xr0_5_abcd-s1-c1"), Some((0, 5)));
    assert_eq!(epoch_range("xr0_abcd"), None);
}

#[test]
fn uncompacted_blobs_of_all_epochs_up_to_write_epoch_plus_one_are_active() {
    let s = compute(EpochListing {
        markers: vec![bm("xe1")],
        uncompacted: vec![
            bm("xn0_aa-s1-c1"),
            bm("xn1_bb--c1"),
            bm("xn2_cc-s2-c1"),
            bm("xn3_dd-s3-c1"),
        ],
        ..Default::default()
    });
    assert_eq!(s.write_epoch, 1);
    assert_eq!(
        ids(&s.blobs),
        vec!["xn0_aa-s1-c1", "xn1_bb--c1", "xn2_cc-s2-c1"]
    );
}

#[test]
fn settled_epochs_use_complete_single_epoch_compactions() {
    let s = compute(EpochListing {
        markers: vec![bm("xe3")],
        single: vec![bm("xs0_a-s9-c2"), bm("xs0_b-s9-c2"), bm("xs1_c-s8-c2")],
        uncompacted: vec![bm("xn0_x"), bm("xn1_y"), bm("xn2_z"), bm("xn4_w")],
        watermarks: vec![bm("xw100"), bm("xw200"), bm("xwbad")],
        ..Default::default()
    });
    // Epoch 0 compacted (complete), epoch 1 set incomplete so uncompacted, 2..=4 uncompacted.
    assert_eq!(
        ids(&s.blobs),
        vec!["xs0_a-s9-c2", "xs0_b-s9-c2", "xn1_y", "xn2_z", "xn4_w"]
    );
    assert_eq!(s.watermark, 200);
}

#[test]
fn range_checkpoints_replace_covered_epochs() {
    let s = compute(EpochListing {
        markers: vec![bm("xe9")],
        ranges: vec![
            bm("xr0_3_a-s1-c1"),
            bm("xr4_6_b-s2-c1"),
            bm("xr0_1_c-s3-c1"),
        ],
        uncompacted: vec![bm("xn2_old"), bm("xn7_x"), bm("xn10_y")],
        ..Default::default()
    });
    assert_eq!(
        ids(&s.blobs),
        vec!["xr0_3_a-s1-c1", "xr4_6_b-s2-c1", "xn7_x", "xn10_y"]
    );
}
