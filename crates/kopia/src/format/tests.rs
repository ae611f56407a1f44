use super::*;

/// A format blob encrypting `config` with the insecure testing KDF (fast).
pub(crate) fn format_blob_json(password: &str, config: &serde_json::Value) -> Vec<u8> {
    let unique_id = [9u8; 32];
    let key = derive_format_key(KeyDerivation::TestingOnlyInsecure, password, &unique_id).unwrap();
    let inner = serde_json::to_vec(&serde_json::json!({ "format": config })).unwrap();
    let enc = encrypt_format_bytes(&key, &unique_id, &inner, [1u8; 12]);
    serde_json::to_vec_pretty(&serde_json::json!({
        "tool": "https://github.com/kopia/kopia",
        "buildVersion": "test",
        "buildInfo": "test",
        "uniqueID": b64_encode(&unique_id),
        "keyAlgo": "testing-only-insecure",
        "encryption": "AES256_GCM",
        "encryptedBlockFormat": b64_encode(&enc),
    }))
    .unwrap()
}

fn config() -> serde_json::Value {
    serde_json::json!({
        "hash": "BLAKE2B-256-128",
        "encryption": "AES256-GCM-HMAC-SHA256",
        "secret": b64_encode(&[1u8; 32]),
        "masterKey": b64_encode(&[2u8; 32]),
        "version": 3,
        "indexVersion": 2,
        "epochParameters": {"Enabled": true, "EpochRefreshFrequency": 1_200_000_000_000_i64},
        "enablePasswordChange": true,
    })
}

#[test]
fn format_blob_decrypts_with_the_right_password() {
    let blob = FormatBlob::parse(&format_blob_json("secret", &config())).unwrap();
    let cfg = blob.decrypt("secret").unwrap();
    assert_eq!(cfg.hash, HashAlgorithm::Blake2b256_128);
    assert_eq!(cfg.version, 3);
    assert!(cfg.epoch.enabled);
    assert_eq!(cfg.max_pack_size, 20 << 20);
    assert!(cfg.ecc.is_none());
}

#[test]
fn format_blob_with_wrong_password_is_wrong_password_error() {
    let blob = FormatBlob::parse(&format_blob_json("secret", &config())).unwrap();
    let err = blob.decrypt("nope").unwrap_err();
    assert!(matches!(err, Error::WrongPassword));
    assert_eq!(err.kind(), crate::ErrorKind::WrongPassword);
}

#[test]
fn unknown_required_feature_is_refused_unless_warn() {
    let mut c = config();
    c["requiredFeatures"] = serde_json::json!([{"feature": "index-v9", "ifNotUnderstood": {"warn": false, "message": "upgrade"}}]);
    let blob = FormatBlob::parse(&format_blob_json("p", &c)).unwrap();
    assert!(matches!(
        blob.decrypt("p"),
        Err(Error::Unsupported(Unsupported::RequiredFeature { .. }))
    ));
    c["requiredFeatures"] =
        serde_json::json!([{"feature": "index-v9", "ifNotUnderstood": {"warn": true}}]);
    let blob = FormatBlob::parse(&format_blob_json("p", &c)).unwrap();
    assert!(blob.decrypt("p").is_ok());
    c["requiredFeatures"] =
        serde_json::json!([{"feature": "index-v2", "ifNotUnderstood": {"warn": false}}]);
    let blob = FormatBlob::parse(&format_blob_json("p", &c)).unwrap();
    assert!(blob.decrypt("p").is_ok());
}

#[test]
fn unsupported_version_and_algorithms_are_refused() {
    for (k, v) in [
        ("version", serde_json::json!(4)),
        ("hash", serde_json::json!("MD5")),
        ("encryption", serde_json::json!("NONE")),
    ] {
        let mut c = config();
        c[k] = v;
        let blob = FormatBlob::parse(&format_blob_json("p", &c)).unwrap();
        assert!(
            matches!(blob.decrypt("p"), Err(Error::Unsupported(_))),
            "{k}"
        );
    }
}

#[test]
fn upgrade_lock_is_in_force_after_notice_window() {
    let lock = UpgradeLock {
        owner_id: "o".into(),
        creation_time: Timestamp::from_nanos(1_000_000_000_000),
        advance_notice: 3_600_000_000_000,
        io_drain_timeout: 60_000_000_000,
        max_permitted_clock_drift: 60_000_000_000,
        message: String::new(),
    };
    assert!(!lock.is_locked(Timestamp::from_nanos(1_000_000_000_000)));
    assert!(lock.is_locked(Timestamp::from_nanos(1_000_000_000_000 + 3_600_000_000_000)));
    let immediate = UpgradeLock {
        advance_notice: 0,
        ..lock
    };
    assert!(immediate.is_locked(Timestamp::from_nanos(0)));
}

#[test]
fn garbage_format_blob_is_corrupt_blob() {
    assert!(matches!(
        FormatBlob::parse(b"not json"),
        Err(Error::CorruptBlob { .. })
    ));
}

#[test]
fn format_blob_without_key_algo_is_refused_like_kopia_does() {
    let mut outer: serde_json::Value =
        serde_json::from_slice(&format_blob_json("p", &config())).unwrap();
    outer.as_object_mut().unwrap().remove("keyAlgo");
    let err = FormatBlob::parse(&serde_json::to_vec(&outer).unwrap()).unwrap_err();
    assert!(
        matches!(err, Error::Unsupported(Unsupported::NoKeyDerivation)),
        "{err:?}"
    );
    assert_eq!(err.kind(), crate::ErrorKind::Unsupported);
}
