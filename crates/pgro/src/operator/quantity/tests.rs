use proptest::prelude::*;

use super::*;

fn bytes(text: &str) -> Result<u64, QuantityError> {
    to_bytes(&Quantity(text.to_owned()))
}

#[test]
fn binary_decimal_and_exponent_forms_denote_bytes() {
    let cases: &[(&str, u64)] = &[
        ("0", 0),
        ("1610612736", 1_610_612_736),
        ("1Ki", 1024),
        ("1.5Gi", 1_610_612_736),
        ("2Ti", 2 << 40),
        ("500M", 500_000_000),
        ("1k", 1000),
        ("1e9", 1_000_000_000),
        ("1E3", 1000),
        ("+5Mi", 5 << 20),
        ("1500m", 2), // 1.5 bytes round up
        (".5Ki", 512),
    ];
    for (text, expected) in cases {
        assert_eq!(bytes(text), Ok(*expected), "{text}");
    }
}

#[test]
fn quantities_above_the_kubernetes_limit_are_too_large() {
    assert!(matches!(bytes("8Ei"), Err(QuantityError::TooLarge { .. })));
    assert!(matches!(
        bytes("99999999999999999999999999999999999999999"),
        Err(QuantityError::TooLarge { .. })
    ));
}

#[test]
fn malformed_and_negative_quantities_are_rejected() {
    for bad in ["", "Gi", "1.2.3", "1 Gi", "1Xi", "1e", "lots", "1e1.5"] {
        assert!(
            matches!(bytes(bad), Err(QuantityError::Malformed { .. })),
            "{bad:?}"
        );
    }
    assert!(matches!(bytes("-1Gi"), Err(QuantityError::Negative { .. })));
    assert_eq!(bytes("-0"), Ok(0));
}

#[test]
fn byte_counts_print_in_the_largest_exact_binary_unit() {
    assert_eq!(from_bytes(0).0, "0");
    assert_eq!(from_bytes(1024).0, "1Ki");
    assert_eq!(from_bytes(1690 << 20).0, "1690Mi");
    assert_eq!(from_bytes(3 << 40).0, "3Ti");
    assert_eq!(from_bytes(1_000_000).0, "1000000");
}

proptest! {
    #[test]
    fn printed_quantities_parse_back_to_the_same_bytes(n in 0u64..(1 << 62)) {
        prop_assert_eq!(to_bytes(&from_bytes(n)), Ok(n));
    }
}
