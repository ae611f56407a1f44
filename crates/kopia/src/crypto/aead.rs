//! Content encryption (kopia `repo/encryption`): per-item keys `HMAC-SHA256(K_enc, X)` and an AEAD
//! with a random 12-byte nonce prefix and the item IV `X` as associated data.

use std::fmt;
use std::str::FromStr;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::kdf::hkdf_sha256;
use crate::error::{Corruption, Unsupported};

/// Nonce length of both AEADs.
pub(crate) const NONCE_LEN: usize = 12;
/// Tag length of both AEADs.
pub(crate) const TAG_LEN: usize = 16;

/// A content encryption algorithm, named as in the repository config `encryption` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncryptionAlgorithm {
    /// `AES256-GCM-HMAC-SHA256` (kopia default).
    Aes256GcmHmacSha256,
    /// `CHACHA20-POLY1305-HMAC-SHA256`.
    ChaCha20Poly1305HmacSha256,
}

impl EncryptionAlgorithm {
    /// Kopia's name of the algorithm.
    pub fn name(self) -> &'static str {
        match self {
            Self::Aes256GcmHmacSha256 => "AES256-GCM-HMAC-SHA256",
            Self::ChaCha20Poly1305HmacSha256 => "CHACHA20-POLY1305-HMAC-SHA256",
        }
    }
}

impl FromStr for EncryptionAlgorithm {
    type Err = Unsupported;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "AES256-GCM-HMAC-SHA256" => Ok(Self::Aes256GcmHmacSha256),
            "CHACHA20-POLY1305-HMAC-SHA256" => Ok(Self::ChaCha20Poly1305HmacSha256),
            other => Err(Unsupported::Encryption(other.to_owned())),
        }
    }
}

impl fmt::Display for EncryptionAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Encrypts and decrypts contents and blob-crypto blobs.
#[derive(Clone)]
pub struct ContentCipher {
    algorithm: EncryptionAlgorithm,
    key: [u8; 32],
}

impl fmt::Debug for ContentCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContentCipher")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl ContentCipher {
    /// Derives `K_enc = HKDF-SHA256(ikm = masterKey, salt = "encryption", info = "")`.
    pub fn new(algorithm: EncryptionAlgorithm, master_key: &[u8]) -> Self {
        Self {
            algorithm,
            key: hkdf_sha256(master_key, b"encryption", b""),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> EncryptionAlgorithm {
        self.algorithm
    }

    fn item_key(&self, iv: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        if let Ok(mut m) = <Hmac<Sha256> as Mac>::new_from_slice(&self.key) {
            m.update(iv);
            out.copy_from_slice(&m.finalize().into_bytes());
        }
        out
    }

    /// Decrypts `nonce || ciphertext || tag` for the item with IV `iv`.
    ///
    /// # Errors
    ///
    /// [`Corruption::Decrypt`] when authentication fails; [`Corruption::Malformed`] when the input is
    /// shorter than nonce plus tag.
    pub fn decrypt(&self, iv: &[u8], stored: &[u8]) -> Result<Vec<u8>, Corruption> {
        self.decrypt_vec(iv, stored.to_vec())
    }

    /// Like [`ContentCipher::decrypt`] but decrypts in place, reusing `buf`'s allocation (restore
    /// keeps one buffer per in-flight chunk instead of two).
    ///
    /// Opening uses `ring`, whose AES-GCM and ChaCha20-Poly1305 are several times faster than
    /// the RustCrypto implementations still used by [`ContentCipher::encrypt`] (GHASH alone was
    /// a fifth of a restore's CPU time); `open_within` also shifts the plaintext over the nonce
    /// while decrypting, so no separate move is needed.
    ///
    /// # Errors
    ///
    /// As [`ContentCipher::decrypt`].
    pub fn decrypt_vec(&self, iv: &[u8], mut buf: Vec<u8>) -> Result<Vec<u8>, Corruption> {
        use ring::aead::{AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
        if buf.len() < NONCE_LEN + TAG_LEN {
            return Err(Corruption::Malformed {
                what: "encrypted data shorter than nonce and tag",
            });
        }
        let algorithm = match self.algorithm {
            EncryptionAlgorithm::Aes256GcmHmacSha256 => &AES_256_GCM,
            EncryptionAlgorithm::ChaCha20Poly1305HmacSha256 => &CHACHA20_POLY1305,
        };
        let key =
            UnboundKey::new(algorithm, &self.item_key(iv)).map_err(|_| Corruption::Decrypt)?;
        let nonce =
            Nonce::try_assume_unique_for_key(&buf[..NONCE_LEN]).map_err(|_| Corruption::Decrypt)?;
        let plain_len = LessSafeKey::new(key)
            .open_within(nonce, Aad::from(iv), &mut buf, NONCE_LEN..)
            .map_err(|_| Corruption::Decrypt)?
            .len();
        buf.truncate(plain_len);
        Ok(buf)
    }

    /// Encrypts `plain` with an explicit nonce (writers and tests).
    pub fn encrypt(&self, iv: &[u8], plain: &[u8], nonce: [u8; NONCE_LEN]) -> Vec<u8> {
        let key = self.item_key(iv);
        let payload = Payload {
            msg: plain,
            aad: iv,
        };
        let ct = match self.algorithm {
            EncryptionAlgorithm::Aes256GcmHmacSha256 => {
                Aes256Gcm::new(&key.into()).encrypt(&nonce.into(), payload)
            }
            EncryptionAlgorithm::ChaCha20Poly1305HmacSha256 => {
                ChaCha20Poly1305::new(&key.into()).encrypt(&nonce.into(), payload)
            }
        };
        let mut out = nonce.to_vec();
        // Encryption of in-memory data with a valid key cannot fail.
        out.extend_from_slice(&ct.unwrap_or_default());
        out
    }
}
