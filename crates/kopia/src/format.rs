//! The format blob `kopia.repository` and the repository configuration it encrypts
//! (kopia `repo/format`).

use std::time::Duration;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
#[cfg(test)]
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::crypto::{
    ContentCipher, EccParams, EncryptionAlgorithm, HashAlgorithm, Hasher, KeyDerivation,
    derive_format_key, hkdf_sha256,
};
use crate::error::{Corruption, Error, Unsupported};
use crate::ids::BlobId;
use crate::time::Timestamp;

/// Blob ID of the format blob.
pub const FORMAT_BLOB_ID: &str = "kopia.repository";

/// Features kopia v0.23.1 understands (`repo/open.go supportedFeatures`); so do we.
const SUPPORTED_FEATURES: [&str; 2] = ["index-v1", "index-v2"];

mod serde_b64 {
    use super::B64;
    use base64::Engine as _;

    pub(super) fn de<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s: Option<String> = serde::Deserialize::deserialize(d)?;
        match s {
            None => Ok(Vec::new()),
            Some(s) => B64.decode(s.as_bytes()).map_err(serde::de::Error::custom),
        }
    }
}

/// The unencrypted outer JSON of `kopia.repository`.
#[derive(Debug, Clone, serde::Deserialize)]
struct FormatBlobJson {
    #[serde(rename = "uniqueID", deserialize_with = "serde_b64::de", default)]
    unique_id: Vec<u8>,
    #[serde(rename = "keyAlgo", default)]
    key_algo: String,
    #[serde(default)]
    encryption: String,
    #[serde(
        rename = "encryptedBlockFormat",
        deserialize_with = "serde_b64::de",
        default
    )]
    encrypted_block_format: Vec<u8>,
    #[serde(rename = "buildVersion", default)]
    build_version: String,
}

/// A parsed (still encrypted) format blob.
#[derive(Debug, Clone)]
pub struct FormatBlob {
    unique_id: Vec<u8>,
    key_derivation: KeyDerivation,
    encrypted: Vec<u8>,
    build_version: String,
}

impl FormatBlob {
    /// Parses the outer JSON.
    ///
    /// # Errors
    ///
    /// [`Error::CorruptBlob`] for invalid JSON, [`Error::Unsupported`] for an unknown key
    /// derivation or format-blob encryption.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let corrupt = |cause| Error::CorruptBlob {
            blob_id: BlobId::new(FORMAT_BLOB_ID),
            cause,
        };
        let j: FormatBlobJson =
            serde_json::from_slice(bytes).map_err(|e| corrupt(Corruption::Json(e)))?;
        if j.encryption != "AES256_GCM" {
            return Err(Unsupported::FormatEncryption(j.encryption).into());
        }
        if j.encrypted_block_format.is_empty() {
            return Err(corrupt(Corruption::Malformed {
                what: "format blob without encryptedBlockFormat",
            }));
        }
        Ok(Self {
            unique_id: j.unique_id,
            key_derivation: j.key_algo.parse()?,
            encrypted: j.encrypted_block_format,
            build_version: j.build_version,
        })
    }

    /// The repository's unique ID (KDF salt).
    pub fn unique_id(&self) -> &[u8] {
        &self.unique_id
    }

    /// The password key-derivation algorithm.
    pub fn key_derivation(&self) -> KeyDerivation {
        self.key_derivation
    }

    /// The kopia version that wrote the blob (informational).
    pub fn build_version(&self) -> &str {
        &self.build_version
    }

    /// Derives the format key from `password` (scrypt or PBKDF2: deliberately slow, run it off the
    /// async executor) and decrypts the repository configuration.
    ///
    /// # Errors
    ///
    /// [`Error::WrongPassword`] when authentication fails; [`Error::CorruptBlob`] for bad inner JSON.
    pub fn decrypt(&self, password: &str) -> Result<RepositoryConfig, Error> {
        let key = derive_format_key(self.key_derivation, password, &self.unique_id)?;
        let plain = decrypt_format_bytes(&key, &self.unique_id, &self.encrypted)
            .ok_or(Error::WrongPassword)?;
        RepositoryConfig::from_decrypted(&plain)
    }
}

/// AES-256-GCM with keys derived from the format key and `uniqueID` (kopia
/// `decryptRepositoryBlobBytesAes256Gcm`; also used for `kopia.blobcfg`).
pub(crate) fn decrypt_format_bytes(
    format_key: &[u8],
    unique_id: &[u8],
    blob: &[u8],
) -> Option<Vec<u8>> {
    let aes_key = hkdf_sha256(format_key, unique_id, b"AES");
    let auth = hkdf_sha256(format_key, unique_id, b"CHECKSUM");
    if blob.len() < 12 + 16 {
        return None;
    }
    let (nonce, ct) = blob.split_at(12);
    Aes256Gcm::new(&aes_key.into())
        .decrypt(
            nonce.into(),
            Payload {
                msg: ct,
                aad: &auth,
            },
        )
        .ok()
}

/// The inverse of [`decrypt_format_bytes`] (writers and tests).
#[cfg(test)]
pub(crate) fn encrypt_format_bytes(
    format_key: &[u8],
    unique_id: &[u8],
    plain: &[u8],
    nonce: [u8; 12],
) -> Vec<u8> {
    let aes_key = hkdf_sha256(format_key, unique_id, b"AES");
    let auth = hkdf_sha256(format_key, unique_id, b"CHECKSUM");
    let ct = Aes256Gcm::new(&aes_key.into()).encrypt(
        &nonce.into(),
        Payload {
            msg: plain,
            aad: &auth,
        },
    );
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct.unwrap_or_default());
    out
}

/// Epoch manager parameters (PascalCase keys in JSON; durations in nanoseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EpochParameters {
    /// Whether the epoch manager is in use (format v2/v3).
    pub enabled: bool,
    /// How long a computed index set stays valid, in ns.
    pub epoch_refresh_frequency: i64,
    /// How often full checkpoints are written.
    pub full_checkpoint_frequency: i64,
    /// Cleanup safety margin, in ns.
    pub cleanup_safety_margin: i64,
    /// Minimum epoch duration, in ns.
    pub min_epoch_duration: i64,
    /// Blob count that triggers epoch advance.
    pub epoch_advance_on_count_threshold: i64,
    /// Total size that triggers epoch advance.
    pub epoch_advance_on_total_size_bytes_threshold: i64,
    /// Parallelism of deletions.
    pub delete_parallelism: i64,
}

/// A feature the repository requires of its clients.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct RequiredFeature {
    /// Feature name.
    pub feature: String,
    /// What to do when not understood.
    #[serde(rename = "ifNotUnderstood", default)]
    pub if_not_understood: IfNotUnderstood,
}

/// Behaviour for clients that do not understand a required feature.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct IfNotUnderstood {
    /// Warn instead of failing.
    #[serde(default)]
    pub warn: bool,
    /// Message for users.
    #[serde(default)]
    pub message: String,
}

/// An upgrade-lock intent (kopia `format.UpgradeLockIntent`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct UpgradeLock {
    /// Who holds the lock.
    #[serde(rename = "ownerID", default)]
    pub owner_id: String,
    /// When the intent was placed.
    #[serde(rename = "creationTime")]
    pub creation_time: Timestamp,
    /// Advance notice, ns.
    #[serde(rename = "advanceNoticeDuration", default)]
    pub advance_notice: i64,
    /// I/O drain timeout, ns.
    #[serde(rename = "ioDrainTimeout", default)]
    pub io_drain_timeout: i64,
    /// Maximum permitted clock drift, ns.
    #[serde(rename = "maxPermittedClockDrift", default)]
    pub max_permitted_clock_drift: i64,
    /// Message.
    #[serde(default)]
    pub message: String,
}

impl UpgradeLock {
    /// Kopia `UpgradeLockIntent.IsLocked`: locked with insufficient notice, or once `now` reaches
    /// `creationTime + advanceNotice − (drift + 2·drain)`.
    pub fn is_locked(&self, now: Timestamp) -> bool {
        let drain = self
            .max_permitted_clock_drift
            .saturating_add(self.io_drain_timeout.saturating_mul(2));
        self.advance_notice < drain
            || now.as_nanos()
                >= self
                    .creation_time
                    .as_nanos()
                    .saturating_add(self.advance_notice.saturating_sub(drain))
    }
}

#[derive(Debug, serde::Deserialize)]
struct EncryptedRepositoryConfig {
    format: RepositoryConfigJson,
}

#[derive(Debug, serde::Deserialize)]
struct RepositoryConfigJson {
    #[serde(default)]
    hash: String,
    #[serde(default)]
    encryption: String,
    #[serde(default)]
    ecc: String,
    #[serde(rename = "eccOverheadPercent", default)]
    ecc_overhead_percent: i64,
    #[serde(deserialize_with = "serde_b64::de", default)]
    secret: Vec<u8>,
    #[serde(rename = "masterKey", deserialize_with = "serde_b64::de", default)]
    master_key: Vec<u8>,
    #[serde(default)]
    version: i64,
    #[serde(rename = "maxPackSize", default)]
    max_pack_size: i64,
    #[serde(rename = "indexVersion", default)]
    index_version: i64,
    #[serde(rename = "epochParameters", default)]
    epoch_parameters: EpochParameters,
    #[serde(rename = "enablePasswordChange", default)]
    enable_password_change: bool,
    #[serde(default)]
    splitter: String,
    #[serde(rename = "upgradeLock", default)]
    upgrade_lock: Option<UpgradeLock>,
    #[serde(rename = "requiredFeatures", default)]
    required_features: Vec<RequiredFeature>,
}

/// The decrypted repository configuration with parsed algorithms.
#[derive(Debug, Clone)]
pub struct RepositoryConfig {
    /// Content hash algorithm.
    pub hash: HashAlgorithm,
    /// Content encryption algorithm.
    pub encryption: EncryptionAlgorithm,
    /// ECC geometry, when ECC is enabled.
    pub ecc: Option<EccParams>,
    /// HMAC / keyed-hash secret.
    pub secret: Vec<u8>,
    /// Master key for content and index encryption.
    pub master_key: Vec<u8>,
    /// Format version (1..=3).
    pub version: i64,
    /// Maximum pack size.
    pub max_pack_size: i64,
    /// Index version written by kopia (readers dispatch per blob anyway).
    pub index_version: i64,
    /// Epoch manager parameters.
    pub epoch: EpochParameters,
    /// Whether the format blob is replicated into packs (false for v1).
    pub enable_password_change: bool,
    /// Object splitter name.
    pub splitter: String,
    /// Upgrade lock, if any.
    pub upgrade_lock: Option<UpgradeLock>,
    /// Required features.
    pub required_features: Vec<RequiredFeature>,
    hasher: Hasher,
}

impl RepositoryConfig {
    /// Parses the decrypted `{"format": …}` JSON and validates algorithms and version.
    ///
    /// # Errors
    ///
    /// [`Error::CorruptBlob`] for malformed JSON; [`Error::Unsupported`] for unknown algorithms,
    /// versions or unsupported required features.
    pub fn from_decrypted(plain: &[u8]) -> Result<Self, Error> {
        let j: EncryptedRepositoryConfig =
            serde_json::from_slice(plain).map_err(|e| Error::CorruptBlob {
                blob_id: BlobId::new(FORMAT_BLOB_ID),
                cause: Corruption::Json(e),
            })?;
        let f = j.format;
        if !(1..=3).contains(&f.version) {
            return Err(Unsupported::FormatVersion(f.version).into());
        }
        let hash: HashAlgorithm = if f.hash.is_empty() {
            HashAlgorithm::Blake2b256_128
        } else {
            f.hash.parse()?
        };
        let encryption: EncryptionAlgorithm = f.encryption.parse()?;
        let ecc = if !f.ecc.is_empty() && f.ecc_overhead_percent > 0 {
            if f.ecc != "REED-SOLOMON-CRC32" {
                return Err(Unsupported::Ecc(f.ecc).into());
            }
            Some(EccParams::new(
                u32::try_from(f.ecc_overhead_percent).unwrap_or(u32::MAX),
            ))
        } else {
            None
        };
        for rf in &f.required_features {
            if !SUPPORTED_FEATURES.contains(&rf.feature.as_str()) {
                if rf.if_not_understood.warn {
                    tracing::warn!(feature = %rf.feature, "repository requires a feature this reader does not know");
                } else {
                    return Err(Unsupported::RequiredFeature {
                        feature: rf.feature.clone(),
                        message: rf.if_not_understood.message.clone(),
                    }
                    .into());
                }
            }
        }
        let hasher = Hasher::new(hash, &f.secret)?;
        Ok(Self {
            hasher,
            hash,
            encryption,
            ecc,
            secret: f.secret,
            master_key: f.master_key,
            version: f.version,
            max_pack_size: if f.max_pack_size == 0 {
                20 << 20
            } else {
                f.max_pack_size
            },
            index_version: if f.index_version == 0 {
                1
            } else {
                f.index_version
            },
            epoch: f.epoch_parameters,
            enable_password_change: f.enable_password_change,
            splitter: f.splitter,
            upgrade_lock: f.upgrade_lock,
            required_features: f.required_features,
        })
    }

    /// Fails when an upgrade lock is in force at `now`.
    ///
    /// # Errors
    ///
    /// [`Error::UpgradeLocked`].
    pub fn check_upgrade_lock(&self, now: Timestamp) -> Result<(), Error> {
        match &self.upgrade_lock {
            Some(l) if l.is_locked(now) => Err(Error::UpgradeLocked {
                owner_id: l.owner_id.clone(),
            }),
            Some(_) | None => Ok(()),
        }
    }

    /// The content hasher.
    pub fn hasher(&self) -> &Hasher {
        &self.hasher
    }

    /// The content cipher.
    pub fn cipher(&self) -> ContentCipher {
        ContentCipher::new(self.encryption, &self.master_key)
    }

    /// How long a computed index set stays valid.
    pub fn epoch_refresh(&self) -> Duration {
        Duration::from_nanos(u64::try_from(self.epoch.epoch_refresh_frequency).unwrap_or(0))
    }
}

/// Encodes base64 (standard alphabet with padding) as Go's `[]byte` JSON encoding.
#[cfg(test)]
pub(crate) fn b64_encode(b: &[u8]) -> String {
    B64.encode(b)
}

#[cfg(test)]
mod tests;
