//! Password and key derivation (kopia `repo/format`, `internal/crypto`).

use std::str::FromStr;

use hkdf::Hkdf;
use sha2::{Digest, Sha256};

use crate::error::Unsupported;

/// The password key-derivation algorithm of the format blob (`keyAlgo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDerivation {
    /// `scrypt-65536-8-1` (what kopia writes by default).
    Scrypt65536_8_1,
    /// `pbkdf2-sha256-600000`.
    Pbkdf2Sha256_600000,
    /// `testing-only-insecure`: SHA-256 of the password (kopia test builds only).
    TestingOnlyInsecure,
}

impl FromStr for KeyDerivation {
    type Err = Unsupported;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // No default for a missing `keyAlgo`: kopia looks the name up in its registry of
        // derivers and refuses one it does not know, the empty name included
        // (`internal/crypto.DeriveKeyFromPassword`).
        match s {
            "scrypt-65536-8-1" => Ok(Self::Scrypt65536_8_1),
            "pbkdf2-sha256-600000" => Ok(Self::Pbkdf2Sha256_600000),
            "testing-only-insecure" => Ok(Self::TestingOnlyInsecure),
            "" => Err(Unsupported::NoKeyDerivation),
            other => Err(Unsupported::KeyDerivation(other.to_owned())),
        }
    }
}

impl KeyDerivation {
    /// Kopia's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Scrypt65536_8_1 => "scrypt-65536-8-1",
            Self::Pbkdf2Sha256_600000 => "pbkdf2-sha256-600000",
            Self::TestingOnlyInsecure => "testing-only-insecure",
        }
    }
}

/// Derives the 32-byte format encryption key from the password and `uniqueID`.
///
/// # Errors
///
/// Fails when the salt is shorter than 16 bytes (kopia refuses it too).
pub fn derive_format_key(
    algo: KeyDerivation,
    password: &str,
    salt: &[u8],
) -> Result<[u8; 32], Unsupported> {
    if salt.len() < 16 {
        return Err(Unsupported::KeyDerivation(format!(
            "{} with a {}-byte salt",
            algo.name(),
            salt.len()
        )));
    }
    let mut out = [0u8; 32];
    match algo {
        KeyDerivation::Scrypt65536_8_1 => {
            // log2(65536) = 16.
            let params = scrypt::Params::new(16, 8, 1, 32)
                .map_err(|_| Unsupported::KeyDerivation(algo.name().to_owned()))?;
            scrypt::scrypt(password.as_bytes(), salt, &params, &mut out)
                .map_err(|_| Unsupported::KeyDerivation(algo.name().to_owned()))?;
        }
        KeyDerivation::Pbkdf2Sha256_600000 => {
            pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, 600_000, &mut out);
        }
        KeyDerivation::TestingOnlyInsecure => {
            out.copy_from_slice(&Sha256::digest(password.as_bytes()));
        }
    }
    Ok(out)
}

/// HKDF-SHA256 with a 32-byte output.
pub fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
    let _ = Hkdf::<Sha256>::new(Some(salt), ikm).expand(info, &mut out);
    out
}
