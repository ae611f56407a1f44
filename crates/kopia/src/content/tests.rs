//! Batch decoding: every content of a batch is checked on its own.

use bytes::Bytes;

use super::*;
use crate::crypto::{ContentCipher, EncryptionAlgorithm, HashAlgorithm};
use crate::ids::BlobId;

fn sealed(cipher: &ContentCipher, hasher: &Hasher, plain: &[u8]) -> (ContentInfo, Bytes) {
    let id = ContentId::from_parts(None, hasher.hash(plain).as_bytes()).unwrap();
    let stored = cipher.encrypt(id.iv(), plain, [1; 12]);
    let info = ContentInfo {
        content_id: id,
        pack_blob_id: BlobId::new("p0123"),
        timestamp_seconds: 0,
        original_length: plain.len() as u32,
        packed_length: stored.len() as u32,
        pack_offset: 0,
        compression_header_id: 0,
        deleted: false,
        format_version: 2,
        encryption_key_id: 0,
    };
    (info, Bytes::from(stored))
}

#[test]
fn decode_contents_checks_each_content_of_a_batch() {
    let cipher = ContentCipher::new(EncryptionAlgorithm::Aes256GcmHmacSha256, &[7; 32]);
    let crypter = Crypter::new(cipher.clone(), None);
    for alg in [HashAlgorithm::Blake2b256_128, HashAlgorithm::HmacSha256_128] {
        let hasher = Hasher::new(alg, &[9; 32]).unwrap();
        let plains: Vec<Vec<u8>> = (0..6).map(|i| vec![i as u8; 1000 * i + 1]).collect();
        let mut items: Vec<(ContentInfo, Bytes)> =
            plains.iter().map(|p| sealed(&cipher, &hasher, p)).collect();
        // 1: a flipped ciphertext byte fails authentication.
        let mut bad = items[1].1.to_vec();
        bad[20] ^= 1;
        items[1].1 = Bytes::from(bad);
        // 4: sealed under the right IV but holding other data: decrypts, then fails the hash.
        let iv = items[4].0.content_id.iv().to_vec();
        items[4].1 = Bytes::from(cipher.encrypt(&iv, b"something else", [2; 12]));
        let out = decode_contents(&crypter, &hasher, items);
        assert_eq!(out.len(), 6);
        for (i, r) in out.iter().enumerate() {
            match i {
                1 => assert!(matches!(
                    r,
                    Err(Error::CorruptContent {
                        cause: Corruption::Decrypt,
                        ..
                    })
                )),
                4 => assert!(matches!(
                    r,
                    Err(Error::CorruptContent {
                        cause: Corruption::HashMismatch,
                        ..
                    })
                )),
                _ => assert_eq!(r.as_ref().unwrap(), &plains[i], "{alg} content {i}"),
            }
        }
    }
}
