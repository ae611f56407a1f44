use super::*;

#[test]
fn content_id_with_prefix_roundtrips_and_sorts_after_unprefixed() {
    let a: ContentId = "kfed1b0498dc54d07cd69f272fb347ca3".parse().unwrap();
    assert_eq!(a.prefix(), Some(b'k'));
    assert_eq!(a.hash().len(), 16);
    assert_eq!(a.to_string(), "kfed1b0498dc54d07cd69f272fb347ca3");
    let b: ContentId = "ffed1b0498dc54d07cd69f272fb347ca".parse().unwrap();
    assert_eq!(b.prefix(), None);
    assert!(b < a);
}

#[test]
fn content_id_rejects_bad_prefix_and_hex() {
    assert!(
        "afed1b0498dc54d07cd69f272fb347ca3"
            .parse::<ContentId>()
            .is_err()
    );
    assert!("zz".parse::<ContentId>().is_err());
    assert!("".parse::<ContentId>().is_err());
    assert!("x".parse::<ContentId>().is_err());
    let long = "a".repeat(66);
    assert!(long.parse::<ContentId>().is_err());
}

#[test]
fn object_id_parses_indirection_compression_and_legacy_d() {
    let o: ObjectId = "IIxac47f7ce2aa5dc1e0c3fc6c2bd7a4e4a".parse().unwrap();
    assert_eq!(o.indirection(), 2);
    assert_eq!(o.to_string(), "IIxac47f7ce2aa5dc1e0c3fc6c2bd7a4e4a");
    let z: ObjectId = "Z13ea27f5c1cd5b6b1e3cf30f4d3c4a3c".parse().unwrap();
    assert!(z.is_compressed());
    let d: ObjectId = "D13ea27f5c1cd5b6b1e3cf30f4d3c4a3c".parse().unwrap();
    assert_eq!(d.to_string(), "13ea27f5c1cd5b6b1e3cf30f4d3c4a3c");
    assert!(
        "IZ13ea27f5c1cd5b6b1e3cf30f4d3c4a3c"
            .parse::<ObjectId>()
            .is_err()
    );
    assert!("I".parse::<ObjectId>().is_err());
}

#[test]
fn blob_crypto_iv_takes_last_32_hex_before_dash() {
    let id = BlobId::new("xn0_0123456789abcdef0123456789abcdef-s0011223344556677-c1");
    let iv = id.crypto_iv().unwrap();
    assert_eq!(to_hex(&iv), "0123456789abcdef0123456789abcdef");
    assert!(BlobId::new("xe1").crypto_iv().is_none());
}

#[test]
fn non_ascii_ids_are_rejected_without_panicking() {
    // Regression: an odd-length ID starting with a multi-byte character panicked when slicing
    // off the prefix (found by fuzzing).
    assert!("I\u{308}abeIa".parse::<ObjectId>().is_err());
    assert!("\u{308}abeIa".parse::<ContentId>().is_err());
    assert!("é0011".parse::<ContentId>().is_err());
}
