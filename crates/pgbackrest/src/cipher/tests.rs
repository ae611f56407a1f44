use super::*;

const PLAIN: &[u8] = b"hello pgbackrest, this is more than one block of text!\n";
const SALT: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
/// `openssl enc -aes-256-cbc -md sha1 -S 0102030405060708 -pass pass:secret` of `PLAIN` (OpenSSL 3 omits
/// the `Salted__` header when the salt is given).
const CIPHERTEXT_HEX: &str = "616f1689fc263a1ba57ff02a65cbaa099b2121911a4692f8bb44bfe41cfc8d6e637879ce2df7e13b386ce0325f44874\
68754251e1ecf1ddf27f5ddaa78a1080d";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn normal() -> Vec<u8> {
    [MAGIC.as_slice(), &SALT, &unhex(CIPHERTEXT_HEX)].concat()
}

#[test]
fn openssl_output_decrypts_in_both_framings() {
    assert_eq!(
        decrypt(&normal(), b"secret", Framing::Normal).expect("normal"),
        PLAIN
    );
    let raw = [SALT.as_slice(), &unhex(CIPHERTEXT_HEX)].concat();
    assert_eq!(decrypt(&raw, b"secret", Framing::Raw).expect("raw"), PLAIN);
}

#[test]
fn a_wrong_pass_is_a_padding_error() {
    let e = decrypt(&normal(), b"wrong", Framing::Normal).expect_err("must fail");
    assert!(e.to_string().contains("padding"), "{e}");
}

#[test]
fn truncated_or_unframed_data_is_refused() {
    let data = normal();
    let e = decrypt(&data[..data.len() - 3], b"secret", Framing::Normal).expect_err("short");
    assert!(e.to_string().contains("multiple"), "{e}");
    let e = decrypt(
        b"plain text, not encrypted at all",
        b"secret",
        Framing::Normal,
    )
    .expect_err("plain");
    assert!(e.to_string().contains("Salted__"), "{e}");
    let e = decrypt(&data[..16], b"secret", Framing::Normal).expect_err("header only");
    assert!(e.to_string().contains("no block"), "{e}");
}

#[test]
fn streaming_in_tiny_reads_gives_the_same_bytes() {
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(3).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let data = normal();
    let mut out = Vec::new();
    DecryptReader::new(Trickle(&data), b"secret".to_vec(), Framing::Normal)
        .read_to_end(&mut out)
        .expect("decrypt");
    assert_eq!(out, PLAIN);
}
