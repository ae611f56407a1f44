//! Issue 17 (TLS): a certificate brought with `spec.tls.certificateSecretRef` (as cert-manager keeps one)
//! is what the replica serves, and its CA is what `<replica>-ca` hands to clients; one that cannot be used
//! holds back every restore and says why on `TlsCertificateValid`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;

use crate::e2e_support::*;
use crate::{READY_TIMEOUT, quick_start};

#[tokio::test(flavor = "multi_thread")]
async fn a_brought_certificate_is_served_and_an_unusable_one_holds_back_restores() {
    let Some(w) = world("a_brought_certificate_is_served").await else {
        return;
    };
    let ns = w.env.namespace().await.unwrap();
    let repo = w.repo(ns.name());
    w.kopia_secret(&ns, "kopia-credentials", &repo).await;
    repo.snap(&w.template, &["--tags", "area:postgres"]);
    let name = format!("byo.{}.svc", ns.name());
    let issued = pgro::operator::certificates::issue_all(
        "byo",
        ns.name(),
        std::slice::from_ref(&name),
        jiff::Timestamp::now(),
    )
    .unwrap();
    let mut data = BTreeMap::from([
        ("tls.crt".to_owned(), issued.tls_crt.clone()),
        ("tls.key".to_owned(), issued.tls_key.clone()),
    ]);
    put_secret(&ns, "byo-cert", data.clone()).await;
    let spec = quick_start("tls:\n  certificateSecretRef: {name: byo-cert}");
    create_replica(&ns, &replica_yaml("byo", &spec)).await;
    let r = wait_replica(
        w,
        &ns,
        "byo",
        "TlsCertificateValid=False",
        Duration::from_secs(60),
        |r, _| cond_is(r, "TlsCertificateValid", "False", "CertificateInvalid"),
    )
    .await;
    let conds = r.status.clone().unwrap_or_default().conditions;
    let message = condition(&conds, "TlsCertificateValid")
        .unwrap()
        .message
        .clone();
    assert!(message.contains("lacks ca.crt"), "{message}");
    assert!(current(&r).is_none());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        ns.api::<pgro_api::PostgresPhysicalRestore>()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .len(),
        0,
        "no restore while the certificate cannot be used"
    );

    data.insert("ca.crt".to_owned(), issued.ca_crt.clone());
    put_secret(&ns, "byo-cert", data).await;
    let r = wait_replica(w, &ns, "byo", "Ready", READY_TIMEOUT, |r, _| {
        phase_is(r, "Ready")
    })
    .await;
    assert!(cond_is(
        &r,
        "TlsCertificateValid",
        "True",
        "CertificateValid"
    ));
    assert_eq!(
        replica_ca(&ns, "byo").await,
        issued.ca_crt.as_bytes(),
        "byo-ca hands out the brought CA"
    );
    assert!(
        ns.api::<Secret>()
            .get_opt("byo-tls")
            .await
            .unwrap()
            .is_none(),
        "pgro issues no certificate of its own"
    );
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, &issued.ca_crt).unwrap();
    let rows = libpq_service(
        w,
        &ns,
        "byo",
        "verify-full",
        &ca,
        "SELECT count(*) FROM items",
    )
    .await
    .expect("verify-full with the brought CA");
    assert_eq!(rows, w.items.0.to_string());
    ns.delete().await.unwrap();
}
