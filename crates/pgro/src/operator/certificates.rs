//! A replica's TLS certificates (the CloudNativePG model): a CA made for the replica and a server
//! certificate it signs, valid for the replica Service's names. Both are kept in Secrets and reused by every
//! restore, so a client that trusts the CA from `<replica>-ca` and checks the host name (`verify-full`)
//! keeps working through switchovers. The server certificate is re-signed by the same CA before it expires
//! or when the names change; the CA lives ten years.
//!
//! Issuing draws keys from the operating system's generator; everything else here is pure.

use jiff::{Timestamp, ToSpan};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use x509_parser::extensions::GeneralName;

/// How long a server certificate is valid.
pub const SERVER_VALIDITY_DAYS: i64 = 365;
/// A server certificate is re-signed when it has less than this left.
pub const RENEW_BEFORE_DAYS: i64 = 30;
/// How long the CA is valid (clients keep the CA; re-signing the server certificate needs no new CA).
pub const CA_VALIDITY_DAYS: i64 = 3650;

/// A certificate or key that cannot be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// rcgen refused to build or sign.
    #[error("issuing a certificate: {0}")]
    Issue(String),
    /// Not a PEM certificate, or not one x509-parser reads.
    #[error("{what} is not a readable PEM certificate: {why}")]
    Unreadable {
        /// Which certificate.
        what: &'static str,
        /// Why.
        why: String,
    },
}

/// The names the server certificate is valid for: `<replica>`, `<replica>.<ns>`, `<replica>.<ns>.svc`
/// and `<replica>.<ns>.svc.<cluster domain>` (the Service's DNS names).
#[must_use]
pub fn server_names(replica: &str, ns: &str, cluster_domain: &str) -> Vec<String> {
    vec![
        replica.to_owned(),
        format!("{replica}.{ns}"),
        format!("{replica}.{ns}.svc"),
        format!(
            "{replica}.{ns}.svc.{}",
            cluster_domain.trim_end_matches('.')
        ),
    ]
}

/// The name pgro's own clients verify: `<replica>.<ns>.svc` (needs no cluster domain).
#[must_use]
pub fn verified_name(replica: &str, ns: &str) -> String {
    format!("{replica}.{ns}.svc")
}

/// A new CA and a server certificate signed by it, all PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// The CA certificate (what clients trust).
    pub ca_crt: String,
    /// The CA key (kept to re-sign the server certificate).
    pub ca_key: String,
    /// The server certificate.
    pub tls_crt: String,
    /// The server key.
    pub tls_key: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").finish_non_exhaustive()
    }
}

fn issue_err(e: rcgen::Error) -> CertError {
    CertError::Issue(e.to_string())
}

/// Validity from a day before `now` (clocks of clients differ) to `days` after it, at day precision (all a
/// validity period here needs; rcgen takes dates of the `time` crate, which pgro does not otherwise use).
fn validity(params: &mut CertificateParams, now: Timestamp, days: i64) {
    let ymd = |t: Timestamp| {
        let d = t.to_zoned(jiff::tz::TimeZone::UTC).date();
        rcgen::date_time_ymd(
            i32::from(d.year()),
            u8::try_from(d.month()).unwrap_or(1),
            u8::try_from(d.day()).unwrap_or(1),
        )
    };
    params.not_before = ymd(now.checked_sub(24.hours()).unwrap_or(now));
    params.not_after = ymd(now.checked_add((days * 24).hours()).unwrap_or(now));
}

fn ca_params(replica: &str, ns: &str, now: Timestamp) -> Result<CertificateParams, CertError> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(issue_err)?;
    p.distinguished_name
        .push(DnType::CommonName, format!("pgro CA for {ns}/{replica}"));
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut p, now, CA_VALIDITY_DAYS);
    Ok(p)
}

fn server_params(names: &[String], now: Timestamp) -> Result<CertificateParams, CertError> {
    let mut p = CertificateParams::new(names.to_vec()).map_err(issue_err)?;
    if let Some(cn) = names.get(2).or_else(|| names.first()) {
        p.distinguished_name.push(DnType::CommonName, cn.clone());
    }
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut p, now, SERVER_VALIDITY_DAYS);
    Ok(p)
}

/// A new CA for `ns/replica` and a server certificate for `names` signed by it.
///
/// # Errors
///
/// [`CertError::Issue`].
pub fn issue_all(
    replica: &str,
    ns: &str,
    names: &[String],
    now: Timestamp,
) -> Result<Issued, CertError> {
    let ca_key = KeyPair::generate().map_err(issue_err)?;
    let ca_crt = ca_params(replica, ns, now)?
        .self_signed(&ca_key)
        .map_err(issue_err)?
        .pem();
    let (tls_crt, tls_key) = issue_server(&ca_crt, &ca_key.serialize_pem(), names, now)?;
    Ok(Issued {
        ca_crt,
        ca_key: ca_key.serialize_pem(),
        tls_crt,
        tls_key,
    })
}

/// A new server key and certificate for `names`, signed by the CA given as PEM.
///
/// # Errors
///
/// [`CertError::Issue`], also for a CA certificate or key that does not parse.
pub fn issue_server(
    ca_crt: &str,
    ca_key: &str,
    names: &[String],
    now: Timestamp,
) -> Result<(String, String), CertError> {
    let key = KeyPair::from_pem(ca_key).map_err(issue_err)?;
    let issuer = Issuer::from_ca_cert_pem(ca_crt, key).map_err(issue_err)?;
    let server_key = KeyPair::generate().map_err(issue_err)?;
    let crt = server_params(names, now)?
        .signed_by(&server_key, &issuer)
        .map_err(issue_err)?;
    Ok((crt.pem(), server_key.serialize_pem()))
}

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// Its DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// When it stops being valid (seconds since the epoch).
    pub not_after: i64,
}

/// The first certificate of a PEM text, read.
///
/// # Errors
///
/// [`CertError::Unreadable`] naming `what`.
pub fn facts(what: &'static str, pem: &[u8]) -> Result<Facts, CertError> {
    let bad = |why: String| CertError::Unreadable { what, why };
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| bad(e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| bad(e.to_string()))?;
    let dns_names = cert
        .subject_alternative_name()
        .map_err(|e| bad(e.to_string()))?
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some((*d).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Facts {
        dns_names,
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// Why the server certificate must be re-signed, or `None` while it is good.
#[must_use]
pub fn renewal_reason(f: &Facts, names: &[String], now: Timestamp) -> Option<&'static str> {
    let left = f.not_after - now.as_second();
    if left < RENEW_BEFORE_DAYS * 86_400 {
        Some("it expires within 30 days")
    } else if names.iter().any(|n| !f.dns_names.contains(n)) {
        Some("the Service names changed")
    } else {
        None
    }
}

/// What is wrong with a certificate brought by the user for `name`, or `None`.
#[must_use]
pub fn byo_problem(f: &Facts, name: &str, now: Timestamp) -> Option<String> {
    if f.not_after <= now.as_second() {
        let at = Timestamp::from_second(f.not_after).map_or_else(|_| "?".into(), |t| t.to_string());
        Some(format!("its certificate expired at {at}"))
    } else if !f.dns_names.iter().any(|d| d == name) {
        Some(format!(
            "its certificate is not valid for {name} (it names {}); pgro's own clients connect with that name",
            if f.dns_names.is_empty() {
                "no DNS names".to_owned()
            } else {
                f.dns_names.join(", ")
            }
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
