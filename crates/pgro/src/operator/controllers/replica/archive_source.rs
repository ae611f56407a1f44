//! R1/R3 for a source other than Kopia (pgBackRest, barman-cloud, restic): its Secrets, the backups read
//! in-process through the source seam (cached per source and credentials for `snapshotCacheTtl`), and the
//! newest restorable one (for restic the newest matching `snapshotFilter`). Every failure becomes
//! `SourceValid=False` with a reason a user can act on.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use pgro_api::condition_reasons as reasons;
use pgro_api::{
    BarmanCloudSource, PgbackrestSource, ResticSource, SnapshotFilter, Source as SpecSource,
};
use sha2::{Digest as _, Sha256};

use super::super::super::context::Context;
use super::super::super::error::Result;
use super::plan::Source;
use crate::cli::exit::Failure;
use crate::cli::kopia::error_chain;
use crate::operator::snapshots::CompiledFilter;
use crate::source::open::OpenError;

/// Storage attempts per request during discovery: a reconcile must not hang on a dead endpoint (the next
/// reconcile tries again).
const DISCOVERY_ATTEMPTS: u32 = 3;

fn invalid(reason: &'static str, message: String) -> Source {
    Source::SourceInvalid { reason, message }
}

/// A `snapshotFilter` as written (part of the cache key) and compiled (what chooses).
type Filter<'a> = (Option<&'a SnapshotFilter>, &'a CompiledFilter);

/// Cache key: the source's settings, the Secrets' data and the filter that chooses the newest backup,
/// hashed (the same repository read with other credentials is another entry, so a rotated passphrase is
/// read afresh).
fn cache_key(
    spec: &SpecSource,
    secrets: &BTreeMap<String, Vec<u8>>,
    filter: Option<&SnapshotFilter>,
) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(spec).unwrap_or_default());
    for (k, v) in secrets {
        h.update([0]);
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v);
    }
    h.update([1]);
    h.update(serde_json::to_vec(&filter).unwrap_or_default());
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A Secret's data, through the shared cache when there is one; `None` when it does not exist.
pub(super) async fn secret_data(
    ctx: &Context,
    ns: &str,
    name: &str,
) -> Result<Option<Arc<BTreeMap<String, k8s_openapi::ByteString>>>> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    Ok(match ctx.caches() {
        Some(c) => c.secret_data(&api, ns, name).await?,
        None => api
            .get_opt(name)
            .await?
            .map(|s| Arc::new(s.data.unwrap_or_default())),
    })
}

/// Discovers the newest backup of a pgBackRest source.
///
/// # Errors
/// Only Kubernetes API failures (reading the Secret); everything about the repository is a [`Source`].
pub async fn discover_pgbackrest(ctx: &Context, p: &PgbackrestSource, ns: &str) -> Result<Source> {
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
        let Some(data) = secret_data(ctx, ns, &name).await? else {
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
    let what = format!("pgBackRest stanza {} at {}", p.stanza, p.repo_path);
    discover(ctx, &spec, &secrets, &p.repo_path, &what, None).await
}

/// Discovers the newest `DONE` backup of a barman-cloud source; its referenced keys are read as
/// `<secret>/<key>`, the layout the pods mount.
///
/// # Errors
/// Only Kubernetes API failures (reading the Secrets).
pub async fn discover_barman(ctx: &Context, b: &BarmanCloudSource, ns: &str) -> Result<Source> {
    let mut secrets: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for name in b.secret_names() {
        let Some(data) = secret_data(ctx, ns, name).await? else {
            return Ok(invalid(
                reasons::SECRET_NOT_FOUND,
                format!("Secret {name} not found in namespace {ns}"),
            ));
        };
        for sel in b.secret_keys().iter().filter(|k| k.name == name) {
            if let Some(v) = data.get(&sel.key) {
                secrets.insert(format!("{name}/{}", sel.key), v.0.clone());
            }
        }
    }
    let spec = SpecSource {
        barman_cloud: Some(b.clone()),
        ..SpecSource::default()
    };
    let what = format!(
        "barman-cloud server {} at {}",
        b.server_name, b.destination_path
    );
    discover(ctx, &spec, &secrets, &b.destination_path, &what, None).await
}

/// Discovers the newest snapshot of a restic source that matches `filter`; each Secret is read whole, as
/// `<secret>/<key>` (the layout the pods mount).
///
/// # Errors
/// Only Kubernetes API failures (reading the Secrets).
pub async fn discover_restic(
    ctx: &Context,
    r: &ResticSource,
    filter: Option<&SnapshotFilter>,
    ns: &str,
) -> Result<Source> {
    let compiled = match CompiledFilter::new(filter) {
        Ok(f) => f,
        Err(e) => {
            return Ok(Source::FilterInvalid {
                message: e.to_string(),
            });
        }
    };
    let mut secrets: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for name in r.secret_names() {
        let Some(data) = secret_data(ctx, ns, name).await? else {
            return Ok(invalid(
                reasons::SECRET_NOT_FOUND,
                format!("Secret {name} not found in namespace {ns}"),
            ));
        };
        for (k, v) in data.iter() {
            secrets.insert(format!("{name}/{k}"), v.0.clone());
        }
    }
    let spec = SpecSource {
        restic: Some(r.clone()),
        ..SpecSource::default()
    };
    let what = format!("restic repository {}", r.repository);
    discover(
        ctx,
        &spec,
        &secrets,
        &r.repository,
        &what,
        Some((filter, &compiled)),
    )
    .await
}

/// The reason of `SourceValid=False` for a failure to open or list a WAL-archive source.
fn reason_of(e: &OpenError) -> &'static str {
    match e {
        OpenError::Config(_) => reasons::SECRET_INVALID,
        OpenError::Restic(e) => match e.class() {
            restic::ErrorClass::WrongPassword => reasons::WRONG_PASSWORD,
            restic::ErrorClass::Unreachable | restic::ErrorClass::Denied => {
                reasons::REPOSITORY_UNREACHABLE
            }
            restic::ErrorClass::NotFound | restic::ErrorClass::SnapshotNotFound => {
                reasons::NO_BACKUP
            }
            restic::ErrorClass::Corrupt | restic::ErrorClass::Unsupported => {
                reasons::UNSUPPORTED_REPOSITORY
            }
        },
        OpenError::Pgbackrest(e) => {
            use pgbackrest::ErrorKind as K;
            match e.kind() {
                K::WrongPassword => reasons::WRONG_PASSWORD,
                K::Unreachable | K::Storage | K::Io => reasons::REPOSITORY_UNREACHABLE,
                K::NotFound => reasons::NO_BACKUP,
                K::Corrupted | K::Unsupported | K::InvalidArgument => {
                    reasons::UNSUPPORTED_REPOSITORY
                }
            }
        }
        e => match e.failure() {
            Failure::Unreachable | Failure::Other => reasons::REPOSITORY_UNREACHABLE,
            Failure::Usage => reasons::SECRET_INVALID,
            Failure::MissingBlob => reasons::NO_BACKUP,
            _ => reasons::UNSUPPORTED_REPOSITORY,
        },
    }
}

async fn discover(
    ctx: &Context,
    spec: &SpecSource,
    secrets: &BTreeMap<String, Vec<u8>>,
    repo_path: &str,
    what: &str,
    filter: Option<Filter<'_>>,
) -> Result<Source> {
    let key = cache_key(spec, secrets, filter.and_then(|f| f.0));
    let ttl = ctx.settings().snapshot_cache_ttl;
    let listed = ctx
        .repos
        .source_backups(&key, ttl, repo_path, filter.map(|f| f.1), || {
            crate::source::open::open(spec, secrets, DISCOVERY_ATTEMPTS)
        })
        .await;
    let listing = match listed {
        Ok(l) => l,
        Err(OpenError::Config(e)) => return Ok(invalid(reasons::SECRET_INVALID, e.0)),
        Err(e) => {
            let message = match &e {
                OpenError::Config(c) => c.0.clone(),
                e => error_chain(e),
            };
            return Ok(invalid(reason_of(&e), format!("{what}: {message}")));
        }
    };
    if !listing.took.is_zero() {
        ctx.metrics
            .snapshot_discovery
            .observe(listing.took.as_secs_f64());
    }
    let Some(latest) = listing.latest else {
        return Ok(invalid(
            reasons::NO_BACKUP,
            format!("{what} has no restorable backup ({} listed)", listing.total),
        ));
    };
    Ok(Source::Snapshots {
        latest: Some(latest),
        total: listing.total,
    })
}
