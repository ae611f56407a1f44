//! Cryptography: content hash functions, AEADs, key derivation and error correction.

mod aead;
mod blob;
mod ecc;
mod hash;
mod kdf;

pub use aead::{ContentCipher, EncryptionAlgorithm};
pub use blob::Crypter;
pub use ecc::EccParams;
pub use hash::{HashAlgorithm, HashValue, Hasher};
pub use kdf::{KeyDerivation, derive_format_key, hkdf_sha256};

#[cfg(test)]
mod tests;
