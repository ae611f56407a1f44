//! Names of restores and child objects (behaviour R7, "Names" in architecture.md).
//!
//! Every name built here is a DNS-1035 label of at most 63 characters (Services need that), and restore
//! names are short enough that their children's generated names stay within 63 characters too. A base that
//! is too long or not a valid label is shortened and made unique with a hash of the original.

use jiff::Timestamp;
use sha2::{Digest, Sha256};

/// Longest Kubernetes object name this module produces.
pub const MAX_NAME_LEN: usize = 63;

/// Longest restore name: its Deployment's pods are named `<restore>-<pod-template-hash ≤ 10>-<5>`, which must
/// stay within 63 characters; every other child (`-data`, `-restore` and that Job's pods) is shorter.
pub const MAX_RESTORE_NAME_LEN: usize = 46;

const HASH_LEN: usize = 8;

/// `<replica>-<yyyymmdd-hhmmss>` (UTC), shortened with a hash when needed.
#[must_use]
pub fn restore_name(replica: &str, created: Timestamp) -> String {
    let stamp = created.strftime("-%Y%m%d-%H%M%S").to_string();
    dns_label(replica, &stamp, MAX_RESTORE_NAME_LEN)
}

/// The restore's PVC.
#[must_use]
pub fn data_pvc(restore: &str) -> String {
    format!("{restore}-data")
}

/// The restore Job.
#[must_use]
pub fn restore_job(restore: &str) -> String {
    format!("{restore}-restore")
}

/// The restore's Deployment and its per-restore Service share the restore's name.
#[must_use]
pub fn restore_deployment(restore: &str) -> String {
    restore.to_owned()
}

/// The replica's stable Service.
#[must_use]
pub fn replica_service(replica: &str) -> String {
    dns_label(replica, "", MAX_NAME_LEN)
}

/// The replica's credentials Secret.
#[must_use]
pub fn credentials_secret(replica: &str) -> String {
    dns_label(replica, "-creds", MAX_NAME_LEN)
}

/// The replica's admin Secret (`pgro_admin`'s password; never given to users).
#[must_use]
pub fn admin_secret(replica: &str) -> String {
    dns_label(replica, "-admin", MAX_NAME_LEN)
}

/// The replica's CA Secret (`ca.crt`, what clients verify the server with).
#[must_use]
pub fn ca_secret(replica: &str) -> String {
    dns_label(replica, "-ca", MAX_NAME_LEN)
}

/// The replica's own server certificate Secret (`tls.crt`, `tls.key`, and the CA that signs it).
#[must_use]
pub fn tls_secret(replica: &str) -> String {
    dns_label(replica, "-tls", MAX_NAME_LEN)
}

/// The replica's schema migration Job (its pods add `-xxxxx`, hence 57).
#[must_use]
pub fn schema_migration_job(replica: &str) -> String {
    dns_label(replica, "-schema-migration", MAX_NAME_LEN - 6)
}

/// A label value for an object name: names up to 63 characters are used as they are (object names are
/// already valid label characters), longer ones are shortened with a hash.
#[must_use]
pub fn label_value(name: &str) -> String {
    if name.len() <= MAX_NAME_LEN {
        return name.to_owned();
    }
    let keep = MAX_NAME_LEN - HASH_LEN - 1;
    let head = name[..keep].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{head}-{}", short_hash(name))
}

/// `base + suffix` as a DNS-1035 label of at most `max` characters. When `base` is not already a valid label,
/// or the result would be too long, `base` is sanitised, truncated and followed by a hash of the original,
/// so distinct bases stay distinct.
fn dns_label(base: &str, suffix: &str, max: usize) -> String {
    if is_dns_label(base) && base.len() + suffix.len() <= max {
        return format!("{base}{suffix}");
    }
    let keep = max.saturating_sub(suffix.len() + HASH_LEN + 1);
    let mut head: String = base
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .skip_while(|c| !c.is_ascii_lowercase())
        .take(keep)
        .collect();
    while head.ends_with('-') {
        head.pop();
    }
    let hash = short_hash(base);
    if head.is_empty() {
        // the hash may start with a digit; a label must start with a letter
        format!("x{hash}{suffix}")
    } else {
        format!("{head}-{hash}{suffix}")
    }
}

/// RFC 1035 label: starts with a letter, lowercase alphanumerics and `-`, ends alphanumeric, ≤ 63.
#[must_use]
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest
        .iter()
        .take(HASH_LEN / 2)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests;
