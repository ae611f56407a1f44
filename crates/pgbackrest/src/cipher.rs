//! `aes-256-cbc` as pgBackRest writes it (pgbackrest-format.md §5): key and IV from OpenSSL's
//! `EVP_BytesToKey` (SHA-1, one round, 8-byte salt), PKCS#7 padding; "normal" framing starts with
//! `Salted__` + salt, "raw" framing (bundle members of block-incremental sets, super blocks, block maps) with
//! the salt alone. Decryption streams, so a large file never has to be held whole.

use std::io::{self, Read};

use aes::cipher::{BlockDecryptMut as _, KeyIvInit as _};
use sha1::{Digest as _, Sha1};

type Decryptor = cbc::Decryptor<aes::Aes256>;

const MAGIC: &[u8; 8] = b"Salted__";
const BLOCK: usize = 16;

/// How an encrypted stream is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `Salted__` + salt + ciphertext (info files, whole files, WAL, non-raw bundle members).
    Normal,
    /// salt + ciphertext.
    Raw,
}

/// `EVP_BytesToKey(aes-256-cbc, sha1, salt, pass, count = 1)`: key = D1‖D2 [0..32], IV = bytes 32..48.
fn key_iv(pass: &[u8], salt: &[u8]) -> ([u8; 32], [u8; 16]) {
    let mut out = Vec::with_capacity(60);
    let mut prev: Vec<u8> = Vec::new();
    while out.len() < 48 {
        let mut h = Sha1::new();
        h.update(&prev);
        h.update(pass);
        h.update(salt);
        prev = h.finalize().to_vec();
        out.extend_from_slice(&prev);
    }
    let mut key = [0; 32];
    let mut iv = [0; 16];
    key.copy_from_slice(&out[..32]);
    iv.copy_from_slice(&out[32..48]);
    (key, iv)
}

/// Whether `data` starts like a normally framed encrypted file.
pub(crate) fn looks_encrypted(data: &[u8]) -> bool {
    data.starts_with(MAGIC)
}

/// Decrypts a whole buffer.
pub(crate) fn decrypt(data: &[u8], pass: &[u8], framing: Framing) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    DecryptReader::new(data, pass.to_vec(), framing).read_to_end(&mut out)?;
    Ok(out)
}

/// A reader decrypting `inner`. Errors are `InvalidData` with a message naming the failure (missing header,
/// length not a multiple of the block size, bad padding — the usual sign of a wrong passphrase).
pub(crate) struct DecryptReader<R> {
    inner: R,
    pass: Vec<u8>,
    framing: Framing,
    dec: Option<Decryptor>,
    /// Ciphertext read but not yet decrypted (the last whole block is held back until the end, for padding).
    pending: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    done: bool,
}

impl<R> std::fmt::Debug for DecryptReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptReader")
            .field("framing", &self.framing)
            .finish_non_exhaustive()
    }
}

impl<R: Read> DecryptReader<R> {
    pub(crate) fn new(inner: R, pass: Vec<u8>, framing: Framing) -> Self {
        Self {
            inner,
            pass,
            framing,
            dec: None,
            pending: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            done: false,
        }
    }

    fn header(&mut self) -> io::Result<()> {
        let len = match self.framing {
            Framing::Normal => 16,
            Framing::Raw => 8,
        };
        let mut head = vec![0; len];
        self.inner
            .read_exact(&mut head)
            .map_err(|_| invalid("encrypted data is shorter than its header"))?;
        if self.framing == Framing::Normal && !head.starts_with(MAGIC) {
            return Err(invalid(
                "not encrypted (no Salted__ header) where the repository says it should be",
            ));
        }
        let (key, iv) = key_iv(&self.pass, &head[len - 8..]);
        self.dec = Some(Decryptor::new(&key.into(), &iv.into()));
        Ok(())
    }

    /// Reads more ciphertext and decrypts every whole block but the last (or, at the end, the last one too,
    /// removing the padding).
    fn fill(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 64 * 1024];
        let n = read_some(&mut self.inner, &mut buf)?;
        self.pending.extend_from_slice(&buf[..n]);
        let end = n == 0;
        let whole = self.pending.len() / BLOCK * BLOCK;
        let take = if end {
            whole
        } else {
            whole.saturating_sub(BLOCK)
        };
        if end && !self.pending.len().is_multiple_of(BLOCK) {
            return Err(invalid(
                "encrypted length is not a multiple of the AES block size",
            ));
        }
        if end && whole == 0 {
            return Err(invalid("encrypted data has no block (not even padding)"));
        }
        let dec = self.dec.as_mut().ok_or_else(|| invalid("no decryptor"))?;
        let mut blocks: Vec<aes::Block> = self.pending[..take]
            .chunks_exact(BLOCK)
            .map(|c| *aes::Block::from_slice(c))
            .collect();
        dec.decrypt_blocks_mut(&mut blocks);
        self.out.clear();
        self.out_pos = 0;
        for b in &blocks {
            self.out.extend_from_slice(b);
        }
        self.pending.drain(..take);
        if end {
            let pad = usize::from(*self.out.last().unwrap_or(&0));
            let ok = (1..=BLOCK).contains(&pad)
                && self.out.len() >= pad
                && self.out[self.out.len() - pad..]
                    .iter()
                    .all(|&b| usize::from(b) == pad);
            if !ok {
                return Err(invalid(
                    "decryption padding is wrong (a wrong cipher passphrase, or damaged data)",
                ));
            }
            self.out.truncate(self.out.len() - pad);
            self.done = true;
        }
        Ok(())
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.dec.is_none() {
            self.header()?;
        }
        while self.out_pos == self.out.len() {
            if self.done {
                return Ok(0);
            }
            self.fill()?;
        }
        let n = buf.len().min(self.out.len() - self.out_pos);
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

fn read_some(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

#[cfg(test)]
mod tests;
