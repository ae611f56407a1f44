use proptest::prelude::*;

use super::*;

fn q(text: &str) -> Quantity {
    Quantity(text.to_owned())
}

fn inputs(snapshot_bytes: u64) -> SizingInputs<'static> {
    static TWO_TI: std::sync::LazyLock<Quantity> =
        std::sync::LazyLock::new(|| Quantity("2Ti".into()));
    SizingInputs {
        snapshot_bytes,
        persistent_schema_data: None,
        size_override: None,
        maximum: &TWO_TI,
    }
}

#[test]
fn size_is_snapshot_times_1_1_rounded_up_to_whole_mi() {
    // 1.5 GiB × 1.1 = 1689.6 Mi → 1690Mi
    assert_eq!(storage_size(&inputs(1_610_612_736)), Ok(q("1690Mi")));
    // 10 Mi × 1.1 = 11 Mi exactly: no rounding
    assert_eq!(storage_size(&inputs(10 << 20)), Ok(q("11Mi")));
    // one byte still needs a whole Mi
    assert_eq!(storage_size(&inputs(1)), Ok(q("1Mi")));
    assert_eq!(storage_size(&inputs(0)), Ok(q("0Mi")));
}

#[test]
fn persistent_schema_data_adds_to_the_size() {
    let extra = q("100Mi");
    let sized = storage_size(&SizingInputs {
        persistent_schema_data: Some(&extra),
        ..inputs(1000 << 20)
    });
    assert_eq!(sized, Ok(q("1210Mi"))); // (1000 + 100) × 1.1
}

#[test]
fn override_replaces_the_computed_size() {
    let fixed = q("50Gi");
    assert_eq!(
        storage_size(&SizingInputs {
            size_override: Some(&fixed),
            ..inputs(1 << 40)
        }),
        Ok(q("50Gi"))
    );
}

#[test]
fn size_above_maximum_is_refused_with_both_sizes_named() {
    let max = q("1Gi");
    let err = storage_size(&SizingInputs {
        maximum: &max,
        ..inputs(1 << 30)
    })
    .expect_err("too big");
    assert_eq!(
        err,
        SizingError::ExceedsMaximum {
            size: "1127Mi".into(),
            maximum: "1Gi".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "storage size 1127Mi exceeds storageSizeMaximum 1Gi"
    );
    let over = q("2Gi");
    assert!(matches!(
        storage_size(&SizingInputs {
            maximum: &max,
            size_override: Some(&over),
            ..inputs(1)
        }),
        Err(SizingError::ExceedsMaximum { .. })
    ));
}

#[test]
fn unparsable_quantity_names_its_field() {
    let bad = q("lots");
    let err = storage_size(&SizingInputs {
        size_override: Some(&bad),
        ..inputs(1)
    })
    .expect_err("bad");
    assert!(err.to_string().starts_with("storageSizeOverride:"), "{err}");
}

proptest! {
    #[test]
    fn computed_size_is_whole_mi_covering_110_percent(snapshot in 0u64..(1 << 40)) {
        let size = storage_size(&inputs(snapshot)).expect("under 2Ti");
        let bytes = u128::from(quantity::to_bytes(&size).expect("parses"));
        prop_assert_eq!(bytes % (1 << 20), 0);
        prop_assert!(bytes * 10 >= u128::from(snapshot) * 11, "covers 110%");
        prop_assert!(bytes == 0 || (bytes - (1 << 20)) * 10 < u128::from(snapshot) * 11, "smallest such Mi");
    }
}
