//! Client TLS to a replica's PostgreSQL: the equivalent of libpq's `sslmode=verify-full` with
//! `sslrootcert` set to the replica's CA. Every pgro client that reaches an instance over TCP (the operator,
//! the schema migration, the instance's own readiness login) uses it, so each proves what a user's
//! `verify-full` client would see.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The CA's file name in `<replica>-ca` and in every mount of it.
pub const CA_KEY: &str = "ca.crt";

/// A CA bundle that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// No `CERTIFICATE` block in the PEM text.
    #[error("the CA file holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate,
    /// A block that does not parse, or a certificate rustls refuses as a root.
    #[error("the CA file is not usable: {0}")]
    Invalid(String),
}

/// A connector that trusts only the certificates in `ca_pem` and checks the server's name against the
/// connection's `host` (so a connection by IP sets `host` to the DNS name and `hostaddr` to the IP).
///
/// # Errors
///
/// [`TlsError`] when `ca_pem` has no usable certificate.
pub fn connector(ca_pem: &[u8]) -> Result<MakeRustlsConnect, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    let mut found = 0;
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| TlsError::Invalid(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| TlsError::Invalid(e.to_string()))?;
        found += 1;
    }
    if found == 0 {
        return Err(TlsError::NoCertificate);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// A connection configuration for `server_name` reached at `addr`: TLS required and verified by the
/// connector, the name checked against the certificate whatever address the packets go to.
#[must_use]
pub fn config(server_name: &str, addr: IpAddr, port: u16) -> tokio_postgres::Config {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(server_name)
        .hostaddr(addr)
        .port(port)
        .ssl_mode(tokio_postgres::config::SslMode::Require)
        .connect_timeout(Duration::from_secs(5));
    cfg
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_bundle_without_certificates_is_refused_with_what_was_expected() {
        assert_eq!(connector(b"not pem").err(), Some(TlsError::NoCertificate));
        let key = rcgen::KeyPair::generate().unwrap();
        assert_eq!(
            connector(key.serialize_pem().as_bytes()).err(),
            Some(TlsError::NoCertificate),
            "a private key is not a CA"
        );
    }

    #[test]
    fn a_self_signed_ca_is_accepted() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        assert!(connector(ca.pem().as_bytes()).is_ok());
    }
}
