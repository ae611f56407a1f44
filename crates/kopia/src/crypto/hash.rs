//! Content hash functions (kopia `repo/hashing`). All are keyed with the repository `secret`.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};

use crate::error::Unsupported;

/// HMAC over digest `$d`, truncated to `$n` bytes. HMAC accepts keys of any length, so the
/// `Err` arm is unreachable in practice; it yields an empty hash that never matches.
macro_rules! hmac_hash {
    ($d:ty, $key:expr, $data:expr, $n:expr) => {{
        match <Hmac<$d> as Mac>::new_from_slice($key) {
            Ok(mut m) => {
                m.update($data);
                HashValue::new(&m.finalize().into_bytes(), $n)
            }
            Err(_) => HashValue::new(&[], 0),
        }
    }};
}

/// A content hash algorithm, named as in the repository config `hash` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum HashAlgorithm {
    /// `BLAKE2B-256-128`: keyed BLAKE2b, digest length 32, truncated to 16 (kopia default).
    Blake2b256_128,
    /// `BLAKE2B-256`.
    Blake2b256,
    /// `BLAKE2S-128`: keyed BLAKE2s with digest length 16 (not a truncation).
    Blake2s128,
    /// `BLAKE2S-256`.
    Blake2s256,
    /// `BLAKE3-256`.
    Blake3_256,
    /// `BLAKE3-256-128`.
    Blake3_256_128,
    /// `HMAC-SHA256`.
    HmacSha256,
    /// `HMAC-SHA256-128`.
    HmacSha256_128,
    /// `HMAC-SHA224`.
    HmacSha224,
    /// `HMAC-SHA3-224`.
    HmacSha3_224,
    /// `HMAC-SHA3-256`.
    HmacSha3_256,
}

const NAMES: [(HashAlgorithm, &str); 11] = [
    (HashAlgorithm::Blake2b256_128, "BLAKE2B-256-128"),
    (HashAlgorithm::Blake2b256, "BLAKE2B-256"),
    (HashAlgorithm::Blake2s128, "BLAKE2S-128"),
    (HashAlgorithm::Blake2s256, "BLAKE2S-256"),
    (HashAlgorithm::Blake3_256, "BLAKE3-256"),
    (HashAlgorithm::Blake3_256_128, "BLAKE3-256-128"),
    (HashAlgorithm::HmacSha256, "HMAC-SHA256"),
    (HashAlgorithm::HmacSha256_128, "HMAC-SHA256-128"),
    (HashAlgorithm::HmacSha224, "HMAC-SHA224"),
    (HashAlgorithm::HmacSha3_224, "HMAC-SHA3-224"),
    (HashAlgorithm::HmacSha3_256, "HMAC-SHA3-256"),
];

impl HashAlgorithm {
    /// Every supported algorithm.
    pub const ALL: [Self; 11] = [
        Self::Blake2b256_128,
        Self::Blake2b256,
        Self::Blake2s128,
        Self::Blake2s256,
        Self::Blake3_256,
        Self::Blake3_256_128,
        Self::HmacSha256,
        Self::HmacSha256_128,
        Self::HmacSha224,
        Self::HmacSha3_224,
        Self::HmacSha3_256,
    ];

    /// Kopia's name of the algorithm.
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(a, _)| *a == self)
            .map_or("", |(_, n)| n)
    }

    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Self::Blake2b256_128
            | Self::Blake2s128
            | Self::Blake3_256_128
            | Self::HmacSha256_128 => 16,
            Self::HmacSha224 | Self::HmacSha3_224 => 28,
            Self::Blake2b256
            | Self::Blake2s256
            | Self::Blake3_256
            | Self::HmacSha256
            | Self::HmacSha3_256 => 32,
        }
    }
}

impl FromStr for HashAlgorithm {
    type Err = Unsupported;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NAMES
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(a, _)| *a)
            .ok_or_else(|| Unsupported::Hash(s.to_owned()))
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A hash output (up to 32 bytes) held inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HashValue {
    bytes: [u8; 32],
    len: u8,
}

impl HashValue {
    fn new(full: &[u8], len: usize) -> Self {
        let len = len.min(full.len()).min(32);
        let mut bytes = [0u8; 32];
        bytes[..len].copy_from_slice(&full[..len]);
        // len <= 32.
        Self {
            bytes,
            len: len as u8,
        }
    }

    /// The hash bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Debug for HashValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HashValue({})", crate::ids::to_hex(self.as_bytes()))
    }
}

/// A keyed content hasher.
#[derive(Clone)]
pub struct Hasher {
    algorithm: HashAlgorithm,
    secret: Vec<u8>,
    blake3_key: [u8; 32],
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Hasher {
    /// A hasher for `algorithm` keyed with `secret`.
    ///
    /// # Errors
    ///
    /// Fails when the secret does not suit the algorithm (BLAKE2 key length limits; BLAKE2S-128
    /// needs a key, as in Go's `blake2s.New128`).
    pub fn new(algorithm: HashAlgorithm, secret: &[u8]) -> Result<Self, Unsupported> {
        let bad = match algorithm {
            HashAlgorithm::Blake2b256_128 | HashAlgorithm::Blake2b256 => secret.len() > 64,
            HashAlgorithm::Blake2s256 => secret.len() > 32,
            HashAlgorithm::Blake2s128 => secret.is_empty() || secret.len() > 32,
            HashAlgorithm::Blake3_256
            | HashAlgorithm::Blake3_256_128
            | HashAlgorithm::HmacSha256
            | HashAlgorithm::HmacSha256_128
            | HashAlgorithm::HmacSha224
            | HashAlgorithm::HmacSha3_224
            | HashAlgorithm::HmacSha3_256 => false,
        };
        if bad {
            return Err(Unsupported::Hash(format!(
                "{algorithm} with a {}-byte secret",
                secret.len()
            )));
        }
        // kopia `newBlake3`: a short secret is stretched with the BLAKE3 KDF.
        let blake3_key = match secret.get(..32).and_then(|s| <[u8; 32]>::try_from(s).ok()) {
            Some(k) => k,
            None => blake3::derive_key("kopia blake3 derived key v1", secret),
        };
        Ok(Self {
            algorithm,
            secret: secret.to_vec(),
            blake3_key,
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.algorithm
    }

    /// Hashes several inputs, in order. BLAKE2b hashes them together with SIMD
    /// (`blake2b_simd::many`: up to four inputs per pass, about twice the single-input
    /// throughput with AVX2); the other algorithms hash one input at a time.
    pub fn hash_many(&self, inputs: &[&[u8]]) -> Vec<HashValue> {
        match self.algorithm {
            HashAlgorithm::Blake2b256_128 | HashAlgorithm::Blake2b256 if inputs.len() > 1 => {
                let n = self.algorithm.output_len();
                let mut params = blake2b_simd::Params::new();
                params.hash_length(32).key(&self.secret);
                let mut jobs: Vec<blake2b_simd::many::HashManyJob<'_>> = inputs
                    .iter()
                    .map(|d| blake2b_simd::many::HashManyJob::new(&params, d))
                    .collect();
                blake2b_simd::many::hash_many(jobs.iter_mut());
                jobs.iter()
                    .map(|j| HashValue::new(j.to_hash().as_bytes(), n))
                    .collect()
            }
            _ => inputs.iter().map(|d| self.hash(d)).collect(),
        }
    }

    /// Hashes `data`.
    pub fn hash(&self, data: &[u8]) -> HashValue {
        let n = self.algorithm.output_len();
        match self.algorithm {
            HashAlgorithm::Blake2b256_128 | HashAlgorithm::Blake2b256 => {
                let h = blake2b_simd::Params::new()
                    .hash_length(32)
                    .key(&self.secret)
                    .hash(data);
                HashValue::new(h.as_bytes(), n)
            }
            HashAlgorithm::Blake2s128 | HashAlgorithm::Blake2s256 => {
                let h = blake2s_simd::Params::new()
                    .hash_length(n)
                    .key(&self.secret)
                    .hash(data);
                HashValue::new(h.as_bytes(), n)
            }
            HashAlgorithm::Blake3_256 | HashAlgorithm::Blake3_256_128 => {
                HashValue::new(blake3::keyed_hash(&self.blake3_key, data).as_bytes(), n)
            }
            HashAlgorithm::HmacSha256 | HashAlgorithm::HmacSha256_128 => {
                hmac_hash!(sha2::Sha256, &self.secret, data, n)
            }
            HashAlgorithm::HmacSha224 => hmac_hash!(sha2::Sha224, &self.secret, data, n),
            HashAlgorithm::HmacSha3_224 => hmac_hash!(sha3::Sha3_224, &self.secret, data, n),
            HashAlgorithm::HmacSha3_256 => hmac_hash!(sha3::Sha3_256, &self.secret, data, n),
        }
    }
}
