//! Known-answer tests from kopia's own test suite (kopia-format.md §4.6) and round trips.

use super::*;
use crate::ids::to_hex;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn hkdf_matches_kopia_key_derivation_vector() {
    // internal/crypto/key_derivation_test.go TestDeriveKeyFromMasterKey
    let k = hkdf_sha256(
        b"ABCDEFGHIJKLMNOP",
        b"0123456789012345",
        b"the-test-purpose",
    );
    assert_eq!(
        to_hex(&k),
        "828769ee8969bc37f11dbaa32838f8db6c19daa6e3ae5f5eed2da2d94d8faddb"
    );
}

#[test]
fn content_ciphers_decrypt_kopia_ciphertext_samples() {
    // repo/encryption/encryption_test.go TestCiphertextSamples
    let mk = b"01234567890123456789012345678901";
    let cases: [(&[u8], &[u8], &str, &str); 2] = [
        (
            b"aabbccddeeffgghhiijjkkllmmnnoopp",
            b"foo",
            "e43ba07f85a6d70c5f1102ca06cf19c597e5f91e527b21f00fb76e8bec3fd1",
            "118359f3d4d589d939efbbc3168ae4c77c51bcebce6845fe6ef5d11342faa6",
        ),
        (
            b"00000000000000000000000000000000",
            b"quick brown fox jumps over the lazy dog",
            "eaad755a238f1daa4052db2e5ccddd934790b6cca415b3ccfd46ac5746af33d9d30f4400ffa9eb3a64fb1ce21b888c12c043bf6787d4a5c15ad10f21f6a6027ee3afe0",
            "836d2ba87892711077adbdbe1452d3b2c590bbfdf6fd3387dc6810220a32ec19de862e1a4f865575e328424b5f178afac1b7eeff11494f719d119b7ebb924d1d0846a3",
        ),
    ];
    for (iv, plain, aes, chacha) in cases {
        let c = ContentCipher::new(EncryptionAlgorithm::Aes256GcmHmacSha256, mk);
        assert_eq!(c.decrypt(iv, &unhex(aes)).unwrap(), plain);
        assert_eq!(c.decrypt_vec(iv, unhex(aes)).unwrap(), plain);
        let c = ContentCipher::new(EncryptionAlgorithm::ChaCha20Poly1305HmacSha256, mk);
        assert_eq!(c.decrypt(iv, &unhex(chacha)).unwrap(), plain);
        assert_eq!(c.decrypt_vec(iv, unhex(chacha)).unwrap(), plain);
    }
}

#[test]
fn content_cipher_rejects_wrong_iv_and_flipped_byte() {
    let c = ContentCipher::new(
        EncryptionAlgorithm::Aes256GcmHmacSha256,
        b"01234567890123456789012345678901",
    );
    let ct = c.encrypt(b"iv-one", b"payload", [7; 12]);
    assert_eq!(c.decrypt(b"iv-one", &ct).unwrap(), b"payload");
    assert!(matches!(
        c.decrypt(b"iv-two", &ct),
        Err(crate::Corruption::Decrypt)
    ));
    let mut bad = ct.clone();
    bad[14] ^= 1;
    assert!(c.decrypt(b"iv-one", &bad).is_err());
    assert!(c.decrypt(b"iv-one", &ct[..20]).is_err());
}

#[test]
fn hmac_hashes_match_kopia_object_id_vectors() {
    // repo/repository_test.go TestFormats
    let h = Hasher::new(
        HashAlgorithm::HmacSha256,
        b"a-repository-testing-hmac-secret",
    )
    .unwrap();
    assert_eq!(
        to_hex(h.hash(b"").as_bytes()),
        "0c2d44dc80de21b71d4219623082f5dc253fe9bb54e48b0fc90e118f8e6cf419"
    );
    assert_eq!(
        to_hex(
            h.hash(b"The quick brown fox jumps over the lazy dog")
                .as_bytes()
        ),
        "6bbb74fef0699e516fb96252d8280c1c7f3492e12de9ec6d79c3c9c39b7b0063"
    );
    let h = Hasher::new(HashAlgorithm::HmacSha256_128, b"key").unwrap();
    assert_eq!(
        to_hex(
            h.hash(b"The quick brown fox jumps over the lazy dog")
                .as_bytes()
        ),
        "f7bc83f430538424b13298e6aa6fb143"
    );
}

#[test]
fn blake2_digest_length_parameter_differs_from_truncation() {
    let secret = [1u8; 32];
    let b128 = Hasher::new(HashAlgorithm::Blake2b256_128, &secret)
        .unwrap()
        .hash(b"x");
    let b256 = Hasher::new(HashAlgorithm::Blake2b256, &secret)
        .unwrap()
        .hash(b"x");
    assert_eq!(b128.as_bytes(), &b256.as_bytes()[..16]);
    let s128 = Hasher::new(HashAlgorithm::Blake2s128, &secret)
        .unwrap()
        .hash(b"x");
    let s256 = Hasher::new(HashAlgorithm::Blake2s256, &secret)
        .unwrap()
        .hash(b"x");
    assert_ne!(s128.as_bytes(), &s256.as_bytes()[..16]);
    assert!(Hasher::new(HashAlgorithm::Blake2s128, b"").is_err());
}

#[test]
fn blake3_short_secret_is_stretched_with_derive_key() {
    let short = Hasher::new(HashAlgorithm::Blake3_256, b"short")
        .unwrap()
        .hash(b"data");
    let key = blake3::derive_key("kopia blake3 derived key v1", b"short");
    assert_eq!(
        short.as_bytes(),
        blake3::keyed_hash(&key, b"data").as_bytes()
    );
    let long = Hasher::new(HashAlgorithm::Blake3_256_128, &[9u8; 40])
        .unwrap()
        .hash(b"data");
    assert_eq!(
        long.as_bytes(),
        &blake3::keyed_hash(&[9u8; 32], b"data").as_bytes()[..16]
    );
}

#[test]
fn every_hash_algorithm_roundtrips_its_name_and_length() {
    for a in HashAlgorithm::ALL {
        assert_eq!(a.name().parse::<HashAlgorithm>().unwrap(), a);
        let h = Hasher::new(a, &[3u8; 32]).unwrap();
        assert_eq!(h.hash(b"abc").as_bytes().len(), a.output_len());
    }
    assert!("MD5".parse::<HashAlgorithm>().is_err());
}

#[test]
fn pbkdf2_and_testing_key_derivations_are_deterministic() {
    let salt = [5u8; 32];
    let a = derive_format_key(KeyDerivation::TestingOnlyInsecure, "pw", &salt).unwrap();
    assert_eq!(
        to_hex(&a),
        "30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4"
    );
    assert!(derive_format_key(KeyDerivation::Scrypt65536_8_1, "pw", &[0u8; 8]).is_err());
}

#[test]
fn ecc_parameters_match_kopia_float32_rules() {
    assert_eq!(EccParams::new(1).shards(), (254, 2));
    assert_eq!(EccParams::new(2).shards(), (164, 2));
    assert_eq!(EccParams::new(10).shards(), (128, 4));
}

#[test]
fn ecc_roundtrips_all_size_classes_and_repairs_damaged_shards() {
    for pct in [1u32, 2, 10] {
        let p = EccParams::new(pct);
        for len in [0usize, 1, 3, 10, 100, 1000, 5000, 70_003] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let enc = p.encode(&data);
            assert_eq!(p.decode(&enc).unwrap(), data, "pct {pct} len {len}");
            if !enc.is_empty() {
                // Damage one byte of a data shard near the end and one near the start of the data area.
                let mut bad = enc.clone();
                let last = bad.len() - 1;
                bad[last] ^= 0x55;
                assert_eq!(p.decode(&bad).unwrap(), data, "repair pct {pct} len {len}");
            }
        }
    }
}

#[test]
fn ecc_reports_unrepairable_damage() {
    let p = EccParams::new(2);
    let data = vec![42u8; 1000];
    let mut enc = p.encode(&data);
    for b in enc.iter_mut() {
        *b ^= 0xff;
    }
    assert!(p.decode(&enc).is_err());
    assert!(p.decode(&[1, 2]).is_err());
}

#[test]
fn hash_many_equals_hashing_one_by_one() {
    let inputs: Vec<Vec<u8>> = [0usize, 1, 127, 128, 129, 1000, 5 << 20, 64, 3]
        .iter()
        .enumerate()
        .map(|(i, &n)| (0..n).map(|j| (i * 31 + j * 7) as u8).collect())
        .collect();
    let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
    for a in HashAlgorithm::ALL {
        for secret in [&[3u8; 32][..], &[9u8; 64][..]] {
            let Ok(h) = Hasher::new(a, secret) else {
                continue;
            };
            for n in [0, 1, 2, 4, refs.len()] {
                let many = h.hash_many(&refs[..n]);
                let one: Vec<HashValue> = refs[..n].iter().map(|d| h.hash(d)).collect();
                assert_eq!(many, one, "{a} with {n} inputs");
            }
        }
    }
}

#[test]
fn ring_opens_what_rustcrypto_sealed_for_large_items() {
    // Opening uses ring; sealing (writers, tests) uses RustCrypto: cross-check both AEADs on a
    // multi-megabyte item, the size of a restore chunk.
    let plain: Vec<u8> = (0..(4 << 20) + 13).map(|i: usize| (i * 13) as u8).collect();
    for alg in [
        EncryptionAlgorithm::Aes256GcmHmacSha256,
        EncryptionAlgorithm::ChaCha20Poly1305HmacSha256,
    ] {
        let c = ContentCipher::new(alg, b"01234567890123456789012345678901");
        let ct = c.encrypt(b"some-iv", &plain, [5; 12]);
        assert_eq!(c.decrypt_vec(b"some-iv", ct.clone()).unwrap(), plain);
        let mut bad = ct;
        let last = bad.len() - 1;
        bad[last] ^= 0x80;
        assert!(matches!(
            c.decrypt_vec(b"some-iv", bad),
            Err(crate::Corruption::Decrypt)
        ));
    }
}
