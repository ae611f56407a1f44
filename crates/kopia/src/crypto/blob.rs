//! The full content/blob decryption pipeline: optional ECC unwrap, then AEAD open
//! (kopia `internal/blobcrypto`, `repo/format/encryptor_wrapper.go`).

use super::{ContentCipher, EccParams};
use crate::error::Corruption;
use crate::ids::BlobId;

/// Decrypts pack contents and encrypted blobs (index blobs, logs).
#[derive(Debug, Clone)]
pub struct Crypter {
    cipher: ContentCipher,
    ecc: Option<EccParams>,
}

impl Crypter {
    /// A crypter with the given cipher and optional ECC.
    pub fn new(cipher: ContentCipher, ecc: Option<EccParams>) -> Self {
        Self { cipher, ecc }
    }

    /// Unwraps ECC (if enabled) and decrypts an item with IV `iv`.
    ///
    /// # Errors
    ///
    /// [`Corruption::Ecc`] or [`Corruption::Decrypt`].
    pub fn decrypt(&self, iv: &[u8], stored: &[u8]) -> Result<Vec<u8>, Corruption> {
        match &self.ecc {
            Some(ecc) => {
                let inner = ecc.decode(stored).map_err(Corruption::Ecc)?;
                self.cipher.decrypt(iv, &inner)
            }
            None => self.cipher.decrypt(iv, stored),
        }
    }

    /// Like [`Crypter::decrypt`], taking ownership of the stored bytes so the decryption can
    /// reuse their buffer when nothing else holds it.
    ///
    /// # Errors
    ///
    /// As [`Crypter::decrypt`].
    pub fn decrypt_owned(&self, iv: &[u8], stored: bytes::Bytes) -> Result<Vec<u8>, Corruption> {
        match &self.ecc {
            Some(ecc) => {
                let inner = ecc.decode(&stored).map_err(Corruption::Ecc)?;
                drop(stored);
                self.cipher.decrypt_vec(iv, inner)
            }
            None => {
                let buf = match stored.try_into_mut() {
                    Ok(m) => Vec::from(m),
                    Err(shared) => shared.to_vec(),
                };
                self.cipher.decrypt_vec(iv, buf)
            }
        }
    }

    /// Decrypts a blob-crypto blob; the IV comes from its name.
    ///
    /// # Errors
    ///
    /// [`Corruption::Malformed`] when the name carries no IV; otherwise as [`Crypter::decrypt`].
    pub fn decrypt_blob(&self, id: &BlobId, stored: &[u8]) -> Result<Vec<u8>, Corruption> {
        let iv = id.crypto_iv().ok_or(Corruption::Malformed {
            what: "blob name without a hash IV",
        })?;
        self.decrypt(&iv, stored)
    }

    /// Encrypts (and ECC-wraps) an item; the inverse of [`Crypter::decrypt`] (writers, tests).
    pub fn encrypt(&self, iv: &[u8], plain: &[u8], nonce: [u8; 12]) -> Vec<u8> {
        let ct = self.cipher.encrypt(iv, plain, nonce);
        match &self.ecc {
            Some(ecc) => ecc.encode(&ct),
            None => ct,
        }
    }
}
