#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::*;

fn now() -> Timestamp {
    "2026-12-07T00:00:00Z".parse().unwrap()
}

/// Whether rustls (what pgro's clients use) accepts `crt` for `name` when trusting only `ca`.
fn verifies(ca: &str, crt: &str, name: &str, at: Timestamp) -> bool {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .unwrap();
    let leaf = CertificateDer::from_pem_slice(crt.as_bytes()).unwrap();
    let when = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(at.as_second()).unwrap(),
    ));
    verifier
        .verify_server_cert(
            &leaf,
            &[],
            &ServerName::try_from(name.to_owned()).unwrap(),
            &[],
            when,
        )
        .is_ok()
}

#[test]
fn names_cover_every_service_name_and_the_cluster_domain() {
    assert_eq!(
        server_names("ro", "team", "cluster.local."),
        ["ro", "ro.team", "ro.team.svc", "ro.team.svc.cluster.local"]
    );
    assert_eq!(verified_name("ro", "team"), "ro.team.svc");
}

#[test]
fn the_issued_server_certificate_verifies_for_each_name_and_no_other() {
    let names = server_names("ro", "team", "example.org");
    let i = issue_all("ro", "team", &names, now()).unwrap();
    for n in &names {
        assert!(verifies(&i.ca_crt, &i.tls_crt, n, now()), "{n}");
    }
    assert!(!verifies(&i.ca_crt, &i.tls_crt, "ro.other.svc", now()));
    let other = issue_all("ro", "team", &names, now()).unwrap();
    assert!(
        !verifies(&other.ca_crt, &i.tls_crt, "ro.team.svc", now()),
        "another replica's CA must not vouch for this certificate"
    );
    let f = facts("tls.crt", i.tls_crt.as_bytes()).unwrap();
    assert_eq!(f.dns_names, names);
    let days_left = (f.not_after - now().as_second()) / 86_400;
    assert!((364..=366).contains(&days_left), "{days_left}");
}

#[test]
fn a_re_signed_certificate_verifies_against_the_unchanged_ca() {
    let names = server_names("ro", "team", "cluster.local");
    let first = issue_all("ro", "team", &names, now()).unwrap();
    let later: Timestamp = "2027-11-20T00:00:00Z".parse().unwrap();
    let f = facts("tls.crt", first.tls_crt.as_bytes()).unwrap();
    assert_eq!(renewal_reason(&f, &names, now()), None);
    assert_eq!(
        renewal_reason(&f, &names, later),
        Some("it expires within 30 days")
    );
    let (crt, key) = issue_server(&first.ca_crt, &first.ca_key, &names, later).unwrap();
    assert_ne!(key, first.tls_key, "a new key with each certificate");
    assert!(verifies(&first.ca_crt, &crt, "ro.team.svc", later));
    let moved = server_names("ro", "team", "corp.internal");
    assert_eq!(
        renewal_reason(&f, &moved, now()),
        Some("the Service names changed")
    );
}

#[test]
fn a_brought_certificate_must_be_current_and_name_the_service() {
    let names = vec!["ro.team.svc".to_owned()];
    let i = issue_all("ro", "team", &names, now()).unwrap();
    let f = facts("tls.crt", i.tls_crt.as_bytes()).unwrap();
    assert_eq!(byo_problem(&f, "ro.team.svc", now()), None);
    let p = byo_problem(&f, "other.team.svc", now()).unwrap();
    assert!(
        p.contains("not valid for other.team.svc") && p.contains("ro.team.svc"),
        "{p}"
    );
    let p = byo_problem(&f, "ro.team.svc", "2030-01-01T00:00:00Z".parse().unwrap()).unwrap();
    assert!(p.contains("expired"), "{p}");
    assert!(matches!(
        facts("tls.crt", b"garbage"),
        Err(CertError::Unreadable {
            what: "tls.crt",
            ..
        })
    ));
}
