//! Certificates, keys and tokens for the control plane, generated fresh for each start.
//!
//! One CA signs the apiserver's serving certificate; the certificate's SANs cover loopback, the
//! `kubernetes` Service names and the pod-network gateway address through which pods reach the
//! apiserver. Clients authenticate with static bearer tokens (`--token-auth-file`), as envtest does.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// The generated material, written to files the components read.
#[derive(Debug, Clone)]
pub(crate) struct Material {
    pub ca_pem: String,
    pub ca_file: PathBuf,
    pub serving_cert_file: PathBuf,
    pub serving_key_file: PathBuf,
    pub sa_key_file: PathBuf,
    pub sa_pub_file: PathBuf,
    pub token_file: PathBuf,
    pub admin_token: String,
    pub controller_manager_token: String,
}

/// A random token of `len` alphanumerics.
pub(crate) fn random_token(len: usize) -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(len)
        .collect()
}

/// Generates everything into `dir` (created). `extra_ips` are added to the serving certificate.
pub(crate) fn generate(dir: &Path, extra_ips: &[IpAddr]) -> anyhow::Result<Material> {
    std::fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate().context("generating the CA key")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "pgro-testkit-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).context("self-signing the CA")?;

    let serving_key = KeyPair::generate()?;
    let mut names: Vec<String> = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    names.extend(["127.0.0.1", "10.0.0.1"].iter().map(|s| (*s).to_owned()));
    let mut serving = CertificateParams::new(Vec::<String>::new())?;
    serving.subject_alt_names = names
        .iter()
        .map(|name| match name.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(name.as_str().try_into()?)),
        })
        .collect::<Result<Vec<_>, rcgen::Error>>()?;
    serving
        .subject_alt_names
        .extend(extra_ips.iter().map(|ip| SanType::IpAddress(*ip)));
    serving
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    serving.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_cert = serving
        .signed_by(&serving_key, &ca)
        .context("signing the serving certificate")?;

    let sa_key = KeyPair::generate()?;
    let admin_token = random_token(32);
    let controller_manager_token = random_token(32);

    let material = Material {
        ca_pem: ca.pem(),
        ca_file: dir.join("ca.crt"),
        serving_cert_file: dir.join("apiserver.crt"),
        serving_key_file: dir.join("apiserver.key"),
        sa_key_file: dir.join("sa.key"),
        sa_pub_file: dir.join("sa.pub"),
        token_file: dir.join("tokens.csv"),
        admin_token,
        controller_manager_token,
    };
    std::fs::write(&material.ca_file, &material.ca_pem)?;
    std::fs::write(&material.serving_cert_file, serving_cert.pem())?;
    std::fs::write(&material.serving_key_file, serving_key.serialize_pem())?;
    std::fs::write(&material.sa_key_file, sa_key.serialize_pem())?;
    std::fs::write(&material.sa_pub_file, sa_key.public_key_pem())?;
    // token,user,uid,"group1,group2". The controller-manager runs every controller with its own
    // credentials (no --use-service-account-credentials), which needs more than the bootstrap
    // system:kube-controller-manager role grants, so it is in system:masters too.
    std::fs::write(
        &material.token_file,
        format!(
            "{},pgro-testkit-admin,pgro-testkit-admin,\"system:masters\"\n{},system:kube-controller-manager,system:kube-controller-manager,\"system:masters\"\n",
            material.admin_token, material.controller_manager_token
        ),
    )?;
    Ok(material)
}
