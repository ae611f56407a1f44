//! The replica's Secrets (behaviour R2 and TLS (+)): `<replica>-creds` (password generated once; `username`
//! follows `analyticsUsername`), `<replica>-admin`, and the certificates — pgro's own CA and server
//! certificate in `<replica>-tls` (re-signed before expiry), or the user's Secret checked — with the CA
//! clients trust copied to `<replica>-ca`.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use pgro_api::PostgresPhysicalReplica;

use super::super::super::caches;
use super::super::super::certificates::{self, Issued};
use super::super::super::context::Context;
use super::super::super::error::{Error, Result};
use super::super::super::k8s::create_if_absent;
use super::super::super::naming;
use super::super::super::specs::{self, CA_PRIVATE_KEY, TLS_CRT, TLS_KEY, USERNAME_KEY};
use crate::postgres::tls::CA_KEY;

/// 32 random alphanumerics from the operating system's generator.
fn random_password() -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(32);
    while out.len() < 32 {
        let mut buf = [0u8; 64];
        getrandom::fill(&mut buf).map_err(|e| Error::Random(e.to_string()))?;
        // Rejection sampling keeps every character equally likely (248 = 4 × 62).
        out.extend(
            buf.iter()
                .filter(|b| **b < 248)
                .map(|b| char::from(ALPHABET[usize::from(*b % 62)])),
        );
    }
    out.truncate(32);
    Ok(out)
}

fn key<'a>(s: &'a Secret, k: &str) -> Option<&'a [u8]> {
    s.data.as_ref()?.get(k).map(|v| v.0.as_slice())
}

fn text(s: &Secret, k: &str) -> String {
    key(s, k).map_or_else(String::new, |v| String::from_utf8_lossy(v).into_owned())
}

/// Sets `keys` of Secret `name` (a merge patch of `stringData`, which the API server folds into `data`).
async fn patch_keys(api: &Api<Secret>, name: &str, keys: &[(&str, &str)]) -> Result<()> {
    let data: serde_json::Map<String, serde_json::Value> = keys
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String((*v).to_owned())))
        .collect();
    let patch = serde_json::json!({ "stringData": data });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// R2: `<replica>-creds` and `<replica>-admin`.
pub(super) async fn ensure_credentials(
    ctx: &Context,
    replica: &PostgresPhysicalReplica,
    ns: &str,
) -> Result<()> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let cache = ctx.caches().map(|c| &c.stores.secrets);
    let name = replica.name_any();
    let creds = naming::credentials_secret(&name);
    match caches::lookup(cache, &ctx.client, ns, &creds).await? {
        None => {
            let s = specs::credentials_secret(replica, &random_password()?)?;
            if create_if_absent(&secrets, &s).await? {
                tracing::info!(secret = %creds, "created the credentials Secret");
            }
        }
        Some(existing) => {
            if key(&existing, USERNAME_KEY) != Some(replica.spec.analytics_username.as_bytes()) {
                patch_keys(
                    &secrets,
                    &creds,
                    &[(USERNAME_KEY, &replica.spec.analytics_username)],
                )
                .await?;
                tracing::info!(secret = %creds, "credentials Secret username follows analyticsUsername");
            }
        }
    }
    let admin = naming::admin_secret(&name);
    if caches::lookup(cache, &ctx.client, ns, &admin)
        .await?
        .is_none()
    {
        let s = specs::admin_secret(replica, &random_password()?)?;
        if create_if_absent(&secrets, &s).await? {
            tracing::info!(secret = %admin, "created the admin Secret");
        }
    }
    Ok(())
}

/// TLS (+): the server certificate in place and `<replica>-ca` holding the CA that vouches for it.
/// Returns what is wrong with a Secret the user brought (`spec.tls.certificateSecretRef`), if anything:
/// then `<replica>-ca` is left as it was.
///
/// # Errors
///
/// API errors; a certificate pgro cannot issue.
pub(super) async fn ensure_tls(
    ctx: &Context,
    replica: &PostgresPhysicalReplica,
    ns: &str,
) -> Result<Option<String>> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let name = replica.name_any();
    let brought = replica
        .spec
        .tls
        .as_ref()
        .and_then(|t| t.certificate_secret_ref.as_ref());
    let ca = match brought {
        Some(r) => match check_brought(ctx, ns, &r.name, &name).await? {
            Ok(ca) => ca,
            Err(problem) => return Ok(Some(problem)),
        },
        None => own_certificate(ctx, replica, ns, &secrets).await?,
    };
    let ca_name = naming::ca_secret(&name);
    let cache = ctx.caches().map(|c| &c.stores.secrets);
    match caches::lookup(cache, &ctx.client, ns, &ca_name).await? {
        None => {
            if create_if_absent(&secrets, &specs::ca_secret(replica, &ca)?).await? {
                tracing::info!(secret = %ca_name, "created the CA Secret clients verify with");
            }
        }
        Some(s) if key(&s, CA_KEY) != Some(ca.as_bytes()) => {
            patch_keys(&secrets, &ca_name, &[(CA_KEY, &ca)]).await?;
            tracing::info!(secret = %ca_name, "the CA Secret follows the server certificate's CA");
        }
        Some(_) => {}
    }
    Ok(None)
}

/// The user's certificate Secret: `Ok(ca.crt)` when usable, `Err(why not)` otherwise.
async fn check_brought(
    ctx: &Context,
    ns: &str,
    secret: &str,
    replica: &str,
) -> Result<std::result::Result<String, String>> {
    // A user's Secret is not among pgro's cached ones: its data is read once per resourceVersion.
    let Some(data) = super::archive_source::secret_data(ctx, ns, secret).await? else {
        return Ok(Err(format!("it does not exist in namespace {ns}")));
    };
    let get = |k: &str| data.get(k).map(|v| v.0.as_slice()).unwrap_or_default();
    let missing: Vec<&str> = [TLS_CRT, TLS_KEY, CA_KEY]
        .into_iter()
        .filter(|k| get(k).is_empty())
        .collect();
    if !missing.is_empty() {
        return Ok(Err(format!(
            "it lacks {} (it needs tls.crt, tls.key and ca.crt, as cert-manager writes them)",
            missing.join(", ")
        )));
    }
    let facts = match certificates::facts("tls.crt", get(TLS_CRT)) {
        Ok(f) => f,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let name = certificates::verified_name(replica, ns);
    if let Some(p) = certificates::byo_problem(&facts, &name, Timestamp::now()) {
        return Ok(Err(p));
    }
    if let Err(e) = crate::postgres::tls::connector(get(CA_KEY)) {
        return Ok(Err(format!("ca.crt: {e}")));
    }
    Ok(Ok(String::from_utf8_lossy(get(CA_KEY)).into_owned()))
}

/// pgro's own certificate in `<replica>-tls`: issued once, re-signed by the same CA before it expires or
/// when the Service's names change. Returns the CA certificate.
async fn own_certificate(
    ctx: &Context,
    replica: &PostgresPhysicalReplica,
    ns: &str,
    secrets: &Api<Secret>,
) -> Result<String> {
    let name = replica.name_any();
    let tls_name = naming::tls_secret(&name);
    let names = certificates::server_names(&name, ns, &ctx.settings().cluster_domain);
    let now = Timestamp::now();
    let cache = ctx.caches().map(|c| &c.stores.secrets);
    let Some(s) = caches::lookup(cache, &ctx.client, ns, &tls_name).await? else {
        let issued = certificates::issue_all(&name, ns, &names, now)?;
        if create_if_absent(secrets, &specs::tls_secret(replica, &issued)?).await? {
            tracing::info!(secret = %tls_name, "issued the replica's CA and server certificate");
            return Ok(issued.ca_crt);
        }
        // Another writer made it first: its CA is the one.
        return Ok(text(&secrets.get(&tls_name).await?, CA_KEY));
    };
    let why = match certificates::facts("tls.crt", key(&s, TLS_CRT).unwrap_or_default()) {
        Ok(f) => certificates::renewal_reason(&f, &names, now),
        Err(_) => Some("it does not parse"),
    };
    let Some(why) = why else {
        return Ok(text(&s, CA_KEY));
    };
    let (ca_crt, ca_key) = (text(&s, CA_KEY), text(&s, CA_PRIVATE_KEY));
    match certificates::issue_server(&ca_crt, &ca_key, &names, now) {
        Ok((crt, key)) => {
            patch_keys(secrets, &tls_name, &[(TLS_CRT, &crt), (TLS_KEY, &key)]).await?;
            tracing::info!(secret = %tls_name, why, "re-signed the server certificate with the replica's CA");
            Ok(ca_crt)
        }
        Err(e) => {
            // The CA itself is gone or damaged: a new one, which clients must fetch again.
            let Issued {
                ca_crt,
                ca_key,
                tls_crt,
                tls_key,
            } = certificates::issue_all(&name, ns, &names, now)?;
            patch_keys(
                secrets,
                &tls_name,
                &[
                    (TLS_CRT, &tls_crt),
                    (TLS_KEY, &tls_key),
                    (CA_KEY, &ca_crt),
                    (CA_PRIVATE_KEY, &ca_key),
                ],
            )
            .await?;
            tracing::warn!(secret = %tls_name, error = %e, "the replica's CA could not sign; issued a new CA — clients must take ca.crt from the CA Secret again");
            Ok(ca_crt)
        }
    }
}
