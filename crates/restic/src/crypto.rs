//! restic's repository crypto (barman-restic-format.md B2 "Crypto"; restic `doc/design.rst`): every
//! encrypted object is `IV(16) ‖ AES-256-CTR ciphertext ‖ Poly1305-AES MAC(16)`, the MAC over the
//! ciphertext only and checked before anything is decrypted. Key files derive a user key with scrypt and
//! hold the master key encrypted with it.

use aes::cipher::{BlockEncrypt as _, KeyInit as _, KeyIvInit as _, StreamCipher as _};
use base64::Engine as _;
use serde::Deserialize;

const IV_LEN: usize = 16;
const MAC_LEN: usize = 16;
/// The largest scrypt work a key file may ask for (128·N·r bytes of memory): restic writes N=32768, r=8
/// (32 MiB); this allows 8× that and refuses a key file that would exhaust the pod's memory.
const MAX_SCRYPT_MEMORY: u64 = 256 << 20;

/// Why an object could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Shorter than an IV plus a MAC.
    #[error("{0} bytes is too short for an encrypted object (IV and MAC are 32)")]
    TooShort(usize),
    /// The MAC does not match: a different key, or damaged bytes.
    #[error("the MAC does not match (wrong key or damaged data)")]
    Mac,
}

/// A key for encrypted objects: AES-256 for the contents, Poly1305-AES (`k`, `r`) for the MAC.
#[derive(Clone)]
pub struct Key {
    encrypt: [u8; 32],
    mac_k: [u8; 16],
    mac_r: [u8; 16],
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A key from its three parts.
    #[must_use]
    pub fn new(encrypt: [u8; 32], mac_k: [u8; 16], mac_r: [u8; 16]) -> Self {
        Self {
            encrypt,
            mac_k,
            mac_r,
        }
    }

    /// The 64 bytes scrypt derives: AES key (32) ‖ MAC k (16) ‖ MAC r (16).
    fn from_derived(b: &[u8; 64]) -> Self {
        let mut k = Self::new([0; 32], [0; 16], [0; 16]);
        k.encrypt.copy_from_slice(&b[..32]);
        k.mac_k.copy_from_slice(&b[32..48]);
        k.mac_r.copy_from_slice(&b[48..]);
        k
    }

    /// Poly1305-AES: the one-time key is `r ‖ AES-128_k(IV)` (Poly1305 clamps `r` itself).
    fn mac(&self, iv: &[u8], ciphertext: &[u8]) -> [u8; MAC_LEN] {
        let aes = aes::Aes128::new(&self.mac_k.into());
        let mut s = aes::Block::clone_from_slice(iv);
        aes.encrypt_block(&mut s);
        let mut one_time = [0u8; 32];
        one_time[..16].copy_from_slice(&self.mac_r);
        one_time[16..].copy_from_slice(&s);
        poly1305::Poly1305::new(&one_time.into())
            .compute_unpadded(ciphertext)
            .into()
    }

    /// Checks the MAC of `IV ‖ ciphertext ‖ MAC`, then decrypts.
    ///
    /// # Errors
    /// Too short, or the MAC does not match.
    pub fn open(&self, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if data.len() < IV_LEN + MAC_LEN {
            return Err(CryptoError::TooShort(data.len()));
        }
        let (iv, rest) = data.split_at(IV_LEN);
        let (ciphertext, mac) = rest.split_at(rest.len() - MAC_LEN);
        // A plain comparison: a reader offers no oracle to time (it only ever checks stored bytes).
        if self.mac(iv, ciphertext) != mac {
            return Err(CryptoError::Mac);
        }
        let mut out = ciphertext.to_vec();
        ctr::Ctr128BE::<aes::Aes256>::new(&self.encrypt.into(), iv.into())
            .apply_keystream(&mut out);
        Ok(out)
    }

    /// Encrypts with `iv` (tests build repositories of their own with it; pgro never writes one).
    #[must_use]
    pub fn seal(&self, iv: [u8; IV_LEN], plaintext: &[u8]) -> Vec<u8> {
        let mut ct = plaintext.to_vec();
        ctr::Ctr128BE::<aes::Aes256>::new(&self.encrypt.into(), &iv.into())
            .apply_keystream(&mut ct);
        let mac = self.mac(&iv, &ct);
        let mut out = Vec::with_capacity(IV_LEN + ct.len() + MAC_LEN);
        out.extend_from_slice(&iv);
        out.extend_from_slice(&ct);
        out.extend_from_slice(&mac);
        out
    }
}

/// A file in `keys/` (stored as plain JSON): scrypt parameters and the master key, encrypted.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyFile {
    /// Always `scrypt` so far.
    pub kdf: String,
    /// scrypt N (a power of two).
    #[serde(rename = "N")]
    pub n: u64,
    /// scrypt r.
    pub r: u32,
    /// scrypt p.
    pub p: u32,
    /// Base64 salt.
    pub salt: String,
    /// Base64 `IV ‖ ciphertext ‖ MAC` of the master key JSON.
    pub data: String,
    /// Who created the key (shown in messages).
    #[serde(default)]
    pub username: String,
    /// Where the key was created.
    #[serde(default)]
    pub hostname: String,
}

#[derive(Deserialize)]
struct MasterJson {
    mac: MacJson,
    encrypt: String,
}

#[derive(Deserialize)]
struct MacJson {
    k: String,
    r: String,
}

/// Why a key file could not give the master key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    /// Not the key file format.
    #[error("not a restic key file: {0}")]
    Malformed(String),
    /// Parameters pgro refuses (unknown KDF, absurd work).
    #[error("unsupported key file: {0}")]
    Unsupported(String),
    /// The password does not open this key.
    #[error("the password does not open this key")]
    WrongPassword,
}

impl KeyFile {
    /// Parses a key file.
    ///
    /// # Errors
    /// Not JSON of a key file.
    pub fn parse(bytes: &[u8]) -> Result<Self, KeyFileError> {
        serde_json::from_slice(bytes).map_err(|e| KeyFileError::Malformed(e.to_string()))
    }

    /// The master key, when `password` opens this key file. CPU- and memory-heavy (scrypt): call it off
    /// the async executor.
    ///
    /// # Errors
    /// The password does not open it, or its parameters are unusable.
    pub fn master_key(&self, password: &[u8]) -> Result<Key, KeyFileError> {
        if self.kdf != "scrypt" {
            return Err(KeyFileError::Unsupported(format!("kdf {:?}", self.kdf)));
        }
        if !self.n.is_power_of_two() || self.n < 2 {
            return Err(KeyFileError::Malformed(format!(
                "scrypt N={} is not a power of two",
                self.n
            )));
        }
        let memory = 128u64
            .saturating_mul(self.n)
            .saturating_mul(u64::from(self.r));
        if memory > MAX_SCRYPT_MEMORY || self.p > 64 {
            return Err(KeyFileError::Unsupported(format!(
                "scrypt N={} r={} p={} needs more than {} MiB",
                self.n,
                self.r,
                self.p,
                MAX_SCRYPT_MEMORY >> 20
            )));
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let salt = b64
            .decode(&self.salt)
            .map_err(|e| KeyFileError::Malformed(format!("salt: {e}")))?;
        let data = b64
            .decode(&self.data)
            .map_err(|e| KeyFileError::Malformed(format!("data: {e}")))?;
        let log_n = u8::try_from(self.n.trailing_zeros()).unwrap_or(u8::MAX);
        let params = scrypt::Params::new(log_n, self.r, self.p, 64)
            .map_err(|e| KeyFileError::Unsupported(format!("scrypt parameters: {e}")))?;
        let mut derived = [0u8; 64];
        scrypt::scrypt(password, &salt, &params, &mut derived)
            .map_err(|e| KeyFileError::Unsupported(format!("scrypt: {e}")))?;
        let plain = Key::from_derived(&derived)
            .open(&data)
            .map_err(|_| KeyFileError::WrongPassword)?;
        let m: MasterJson = serde_json::from_slice(&plain)
            .map_err(|e| KeyFileError::Malformed(format!("master key: {e}")))?;
        let part = |s: &str, what: &str| {
            b64.decode(s)
                .map_err(|e| KeyFileError::Malformed(format!("master key {what}: {e}")))
        };
        let (encrypt, k, r) = (
            part(&m.encrypt, "encrypt")?,
            part(&m.mac.k, "mac.k")?,
            part(&m.mac.r, "mac.r")?,
        );
        Ok(Key::new(
            encrypt.try_into().map_err(|_| {
                KeyFileError::Malformed("master key encrypt is not 32 bytes".into())
            })?,
            k.try_into()
                .map_err(|_| KeyFileError::Malformed("master key mac.k is not 16 bytes".into()))?,
            r.try_into()
                .map_err(|_| KeyFileError::Malformed("master key mac.r is not 16 bytes".into()))?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::new([7; 32], [9; 16], [3; 16])
    }

    #[test]
    fn seal_then_open_round_trips_and_any_flipped_bit_fails_the_mac() {
        let k = key();
        let sealed = k.seal([1; 16], b"hello restic");
        assert_eq!(k.open(&sealed).expect("opens"), b"hello restic");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x10;
            assert_eq!(k.open(&bad), Err(CryptoError::Mac), "byte {i}");
        }
        assert_eq!(k.open(&sealed[..31]), Err(CryptoError::TooShort(31)));
        let other = Key::new([7; 32], [9; 16], [4; 16]);
        assert_eq!(other.open(&sealed), Err(CryptoError::Mac));
    }

    #[test]
    fn a_key_file_opens_with_its_password_only() {
        // Built the way restic builds one (scrypt → user key → sealed master key JSON), small N for speed.
        let b64 = base64::engine::general_purpose::STANDARD;
        let salt = [5u8; 64];
        let params = scrypt::Params::new(10, 8, 1, 64).expect("params");
        let mut derived = [0u8; 64];
        scrypt::scrypt(b"pw", &salt, &params, &mut derived).expect("scrypt");
        let user = Key::from_derived(&derived);
        let master = format!(
            r#"{{"mac":{{"k":"{}","r":"{}"}},"encrypt":"{}"}}"#,
            b64.encode([9u8; 16]),
            b64.encode([3u8; 16]),
            b64.encode([7u8; 32])
        );
        let file = format!(
            r#"{{"created":"x","username":"u","hostname":"h","kdf":"scrypt","N":1024,"r":8,"p":1,"salt":"{}","data":"{}"}}"#,
            b64.encode(salt),
            b64.encode(user.seal([2; 16], master.as_bytes()))
        );
        let kf = KeyFile::parse(file.as_bytes()).expect("parses");
        let m = kf.master_key(b"pw").expect("opens");
        assert_eq!(m.open(&key().seal([8; 16], b"x")).expect("same key"), b"x");
        assert_eq!(
            kf.master_key(b"nope").err(),
            Some(KeyFileError::WrongPassword)
        );
        let greedy = KeyFile {
            n: 1 << 24,
            ..kf.clone()
        };
        assert!(matches!(
            greedy.master_key(b"pw"),
            Err(KeyFileError::Unsupported(_))
        ));
        let odd = KeyFile { n: 1000, ..kf };
        assert!(matches!(
            odd.master_key(b"pw"),
            Err(KeyFileError::Malformed(_))
        ));
    }
}
