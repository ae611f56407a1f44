//! R1/R3 for a pgBackRest source: the Secret (optional), the stanza's `backup.info` read in-process through
//! the source seam (one GET, cached per repository and credentials for `snapshotCacheTtl`), and the newest
//! backup of the current database. Every failure becomes `SourceValid=False` with a reason a user can act on.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use pgro_api::condition_reasons as reasons;
use pgro_api::{PgbackrestSource, Source as SpecSource};
use sha2::{Digest as _, Sha256};

use super::super::super::context::Context;
use super::super::super::error::Result;
use super::plan::Source;
use crate::cli::kopia::error_chain;
use crate::source::open::OpenError;

/// Storage attempts per request during discovery: a reconcile must not hang on a dead endpoint (the next
/// reconcile tries again).
const DISCOVERY_ATTEMPTS: u32 = 3;

fn invalid(reason: &'static str, message: String) -> Source {
    Source::SourceInvalid { reason, message }
}

/// Cache key: the source's settings and the Secret's data, hashed (the same repository read with other
/// credentials is another entry, so a rotated passphrase is read afresh).
fn cache_key(p: &PgbackrestSource, secrets: &BTreeMap<String, Vec<u8>>) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(p).unwrap_or_default());
    for (k, v) in secrets {
        h.update([0]);
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v);
    }
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Discovers the newest backup of a pgBackRest source.
///
/// # Errors
/// Only Kubernetes API failures (reading the Secret); everything about the repository is a [`Source`].
pub async fn discover(ctx: &Context, p: &PgbackrestSource, ns: &str) -> Result<Source> {
    if p.volume.is_some() {
        return Ok(invalid(
            reasons::UNSUPPORTED_REPOSITORY,
            "a pgBackRest repository on a volume is not read by the operator yet: use the repository's S3, \
             GCS or Azure settings"
                .into(),
        ));
    }
    let mut secrets: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    if let Some(r) = &p.secret_ref {
        let name = r.name.clone().unwrap_or_default();
        if let Some(other) = r.namespace.as_deref().filter(|n| *n != ns) {
            return Ok(invalid(
                reasons::SECRET_INVALID,
                format!(
                    "the source Secret's namespace {other:?} is not the replica's namespace {ns:?}"
                ),
            ));
        }
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
        let data = match ctx.caches() {
            Some(c) => c.secret_data(&api, ns, &name).await?,
            None => api
                .get_opt(&name)
                .await?
                .map(|s| Arc::new(s.data.unwrap_or_default())),
        };
        let Some(data) = data else {
            return Ok(invalid(
                reasons::SECRET_NOT_FOUND,
                format!("Secret {name} not found in namespace {ns}"),
            ));
        };
        secrets = data.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
    }
    let spec = SpecSource {
        pgbackrest: Some(p.clone()),
        ..SpecSource::default()
    };
    let key = cache_key(p, &secrets);
    let ttl = ctx.settings().snapshot_cache_ttl;
    let listed = ctx
        .repos
        .pgbackrest_backups(&key, ttl, || async {
            crate::source::open::open(&spec, &secrets, DISCOVERY_ATTEMPTS)
                .await?
                .into_pgbackrest()
        })
        .await;
    let listing = match listed {
        Ok(l) => l,
        Err(OpenError::Config(e)) => return Ok(invalid(reasons::SECRET_INVALID, e.0)),
        Err(OpenError::Kopia(e)) => {
            return Ok(invalid(reasons::UNSUPPORTED_REPOSITORY, error_chain(&e)));
        }
        Err(OpenError::Pgbackrest(e)) => {
            use pgbackrest::ErrorKind as K;
            let reason = match e.kind() {
                K::WrongPassword => reasons::WRONG_PASSWORD,
                K::Unreachable | K::Storage | K::Io => reasons::REPOSITORY_UNREACHABLE,
                K::NotFound => reasons::NO_BACKUP,
                K::Corrupted | K::Unsupported | K::InvalidArgument => {
                    reasons::UNSUPPORTED_REPOSITORY
                }
            };
            return Ok(invalid(
                reason,
                format!(
                    "pgBackRest stanza {} at {}: {}",
                    p.stanza,
                    p.repo_path,
                    error_chain(&e)
                ),
            ));
        }
    };
    if !listing.took.is_zero() {
        ctx.metrics
            .snapshot_discovery
            .observe(listing.took.as_secs_f64());
    }
    let Some(latest) = &listing.latest else {
        return Ok(invalid(
            reasons::NO_BACKUP,
            format!(
                "stanza {} has no backup of its current database ({} in backup.info)",
                p.stanza, listing.total
            ),
        ));
    };
    Ok(Source::Snapshots {
        latest: Some(crate::source::reader::pgbackrest_backup(
            latest,
            &p.stanza,
            &p.repo_path,
        )),
        total: listing.total,
    })
}
