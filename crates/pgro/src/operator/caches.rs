//! The watch caches reconciles read from, so that a reconcile of a replica or restore that has nothing to do
//! makes no API request (issue 18: 1,000 mostly idle replicas must not poll the API server).
//!
//! A cache is trusted for what it holds, never for an absence: an object created a moment ago may not have
//! reached it yet, so a miss is confirmed with a GET ([`lookup`]). Decisions that must not be made twice (a
//! restore's creation) are checked against the API server at that moment (see the replica controller).
//!
//! Secrets are cached in two ways: pgro's own (labelled `pgro.bes.au/replica`: credentials and admin) whole,
//! and every other Secret as metadata only — the repository Secret's data is read once per `resourceVersion`
//! ([`Caches::secret_data`]) instead of on every reconcile, and no user Secret's data is held for Secrets no
//! replica refers to.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret, Service};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use pgro_api::{PostgresPhysicalReplica, PostgresPhysicalRestore};
use serde::de::DeserializeOwned;

use super::error::Result;

/// The controllers' watch caches and what this process remembers of its own writes.
#[derive(Clone)]
pub struct Caches {
    /// The reflector stores.
    pub stores: Stores,
    /// Whether every store has had its first complete listing.
    readiness: Arc<Readiness>,
    /// Data of Secrets replicas refer to, by (namespace, name), with the `resourceVersion` it was read at.
    secret_data: Arc<Mutex<HashMap<Key, CachedData>>>,
    /// Services this process applied.
    services_applied: Arc<WriteLog>,
    /// Replica statuses this process wrote.
    statuses_written: Arc<WriteLog>,
}

/// (namespace, name).
type Key = (String, String);

/// A Secret's data as read at one `resourceVersion`.
type CachedData = (String, Arc<BTreeMap<String, ByteString>>);

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches").finish_non_exhaustive()
    }
}

/// The reflector stores reconciles read (all cluster-wide; children by pgro's replica label).
#[derive(Clone)]
pub struct Stores {
    /// Every replica (the replica controller's own store).
    pub replicas: Store<PostgresPhysicalReplica>,
    /// Every restore, updated by the same watch that triggers replica reconciles (so a replica woken by a
    /// restore's change sees that change).
    pub restores: Store<PostgresPhysicalRestore>,
    /// Every replica, as the restore controller's replica watch sees it.
    pub replicas_for_restores: Store<PostgresPhysicalReplica>,
    /// Restore and schema-migration Jobs.
    pub jobs: Store<Job>,
    /// Restore Deployments.
    pub deployments: Store<Deployment>,
    /// Restore data claims.
    pub pvcs: Store<PersistentVolumeClaim>,
    /// Replica and restore Services.
    pub services: Store<Service>,
    /// pgro's own Secrets (credentials, admin).
    pub secrets: Store<Secret>,
    /// Every Secret's metadata.
    pub secret_meta: Store<PartialObjectMeta<Secret>>,
}

/// Objects this process wrote, by (namespace, name).
#[derive(Debug, Default)]
struct WriteLog(Mutex<HashMap<Key, Write>>);

/// One write: a hash of the body, the `resourceVersion` it was decided from (when it had one) and the one
/// it produced.
#[derive(Debug)]
struct Write {
    hash: u64,
    from: Option<String>,
    to: String,
}

impl WriteLog {
    fn record<T: serde::Serialize>(
        &self,
        ns: &str,
        name: &str,
        body: &T,
        from: Option<String>,
        to: String,
    ) {
        if let Ok(mut log) = self.0.lock() {
            let hash = body_hash(body);
            log.insert((ns.to_owned(), name.to_owned()), Write { hash, from, to });
        }
    }

    /// Whether `body` is what was last written as `name`, and `seen` (the cached object's version) is the
    /// one that write was decided from or the one it produced.
    fn holds<T: serde::Serialize>(&self, ns: &str, name: &str, body: &T, seen: &str) -> bool {
        self.0.lock().is_ok_and(|log| {
            log.get(&(ns.to_owned(), name.to_owned())).is_some_and(|w| {
                w.hash == body_hash(body) && (w.to == seen || w.from.as_deref() == Some(seen))
            })
        })
    }
}

/// Whether every registered watch has delivered its first complete listing.
///
/// `Store::wait_until_ready` remembers one waiting task only (a oneshot receiver's single waker): with many
/// reconciles waiting at once, all but the last would never wake. A watch channel wakes them all.
#[derive(Debug)]
pub struct Readiness {
    remaining: AtomicUsize,
    ready: tokio::sync::watch::Sender<bool>,
}

impl Readiness {
    /// Nothing registered yet (and so not ready).
    #[must_use]
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            remaining: AtomicUsize::new(0),
            ready: tokio::sync::watch::Sender::new(false),
        })
    }

    /// One more watch to wait for; call [`Readiness::listed`] once it has listed. All registrations come
    /// before any watch runs.
    pub fn register(&self) {
        self.remaining.fetch_add(1, Ordering::SeqCst);
    }

    /// A registered watch delivered its first complete listing.
    pub fn listed(&self) {
        if self.remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.ready.send_replace(true);
        }
    }

    /// Logs an error every `every` while some watch has not listed yet: reconciles wait for the caches, so
    /// a watch that cannot list (RBAC, an API the cluster does not serve) would otherwise stop them silently.
    pub async fn report_until_ready(self: Arc<Self>, every: std::time::Duration) {
        loop {
            if tokio::time::timeout(every, self.wait()).await.is_ok() {
                return;
            }
            tracing::error!(
                unlisted = self.remaining.load(Ordering::SeqCst),
                waited_s = every.as_secs(),
                "the operator's watch caches are not filled yet, so nothing is reconciled; check that its ServiceAccount may list and watch replicas, restores, Jobs, Deployments, PersistentVolumeClaims, Services and Secrets"
            );
        }
    }

    /// Waits until every registered watch has listed.
    pub async fn wait(&self) {
        let mut rx = self.ready.subscribe();
        // An error means the sender is gone: the controllers are stopping and nothing is read any more.
        let _ = rx.wait_for(|ready| *ready).await;
    }
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

impl Caches {
    /// Caches over `stores`, ready when `readiness` is (each store's watch tells it).
    #[must_use]
    pub fn new(stores: Stores, readiness: Arc<Readiness>) -> Self {
        Self {
            stores,
            readiness,
            secret_data: Arc::default(),
            services_applied: Arc::default(),
            statuses_written: Arc::default(),
        }
    }

    /// Whether `status` is what this process last wrote for the object, and the cached object is either
    /// the one that write was decided from or the one it produced. Right after a write the cache may still
    /// hold the object as it was before (the watch event is on its way); writing the same status again
    /// from it would only fail with a conflict (at 1,000 replicas, dozens per second).
    #[must_use]
    pub fn status_written<S: serde::Serialize>(
        &self,
        ns: &str,
        name: &str,
        seen: Option<&str>,
        status: &S,
    ) -> bool {
        seen.is_some_and(|seen| self.statuses_written.holds(ns, name, status, seen))
    }

    /// Records a status write: decided from `from`, producing `to`.
    pub fn record_status<S: serde::Serialize>(
        &self,
        ns: &str,
        name: &str,
        from: Option<String>,
        to: Option<String>,
        status: &S,
    ) {
        if let Some(to) = to {
            self.statuses_written.record(ns, name, status, from, to);
        }
    }

    /// Whether applying `body` as Service `name` would change nothing: this process applied the same body,
    /// and the cached Service is still at the `resourceVersion` that apply returned (anyone else's change
    /// moves it, and the Service is applied again).
    #[must_use]
    pub fn service_unchanged(&self, ns: &str, name: &str, body: &Service) -> bool {
        self.stores
            .services
            .get(&ObjectRef::new(name).within(ns))
            .and_then(|s| s.resource_version())
            .is_some_and(|live| self.services_applied.holds(ns, name, body, &live))
    }

    /// Records that `body` was applied as Service `name`, which is now at `resource_version`.
    pub fn service_applied(&self, ns: &str, name: &str, body: &Service, resource_version: String) {
        self.services_applied
            .record(ns, name, body, None, resource_version);
    }

    /// Waits until every store has had its first complete listing (before that, an empty store would read
    /// as "nothing exists").
    pub async fn ready(&self) {
        self.readiness.wait().await;
    }

    /// A Secret's data, read from the API server only when its `resourceVersion` (from the metadata cache)
    /// differs from the one last read; `None` when the Secret does not exist.
    ///
    /// # Errors
    ///
    /// API errors reading it.
    pub async fn secret_data(
        &self,
        api: &Api<Secret>,
        ns: &str,
        name: &str,
    ) -> Result<Option<Arc<BTreeMap<String, ByteString>>>> {
        let key = (ns.to_owned(), name.to_owned());
        let known = self
            .stores
            .secret_meta
            .get(&ObjectRef::new(name).within(ns))
            .and_then(|m| m.resource_version());
        if let Some(rv) = &known
            && let Ok(cache) = self.secret_data.lock()
            && let Some((at, data)) = cache.get(&key)
            && at == rv
        {
            return Ok(Some(Arc::clone(data)));
        }
        let Some(secret) = api.get_opt(name).await? else {
            if let Ok(mut cache) = self.secret_data.lock() {
                cache.remove(&key);
            }
            return Ok(None);
        };
        let data = Arc::new(secret.data.clone().unwrap_or_default());
        if let (Some(rv), Ok(mut cache)) = (secret.resource_version(), self.secret_data.lock()) {
            cache.insert(key, (rv, Arc::clone(&data)));
        }
        Ok(Some(data))
    }
}

/// A hash of an object's serialised form (what was written, not what the server made of it).
fn body_hash<T: serde::Serialize>(body: &T) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(body).unwrap_or_default().hash(&mut h);
    h.finish()
}

/// `name` in `ns` from `store` when it holds it, otherwise from the API server (a cache is not trusted for
/// an absence); always from the API server without caches (the scripted-apiserver tests).
///
/// # Errors
///
/// API errors of the confirming GET.
pub async fn lookup<K>(
    store: Option<&Store<K>>,
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<Option<Arc<K>>>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + 'static,
{
    if let Some(hit) = store.and_then(|s| s.get(&ObjectRef::new(name).within(ns))) {
        return Ok(Some(hit));
    }
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    Ok(api.get_opt(name).await?.map(Arc::new))
}

/// The restores of one replica incarnation (label and owner UID), from a cache snapshot or a list.
#[must_use]
pub fn owned_restores<'a>(
    all: impl IntoIterator<Item = &'a PostgresPhysicalRestore>,
    ns: &str,
    label: &str,
    uid: &str,
) -> BTreeMap<String, PostgresPhysicalRestore> {
    all.into_iter()
        .filter(|r| r.namespace().as_deref() == Some(ns))
        .filter(|r| r.labels().get(pgro_api::LABEL_REPLICA).map(String::as_str) == Some(label))
        // A label alone could match a hashed namesake, or an earlier incarnation of the replica.
        .filter(|r| r.owner_references().iter().any(|o| o.uid == uid))
        .map(|r| (r.name_any(), r.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use pgro_api::testutil::from_yaml;

    use super::*;

    fn restore(ns: &str, name: &str, label: &str, uid: &str) -> PostgresPhysicalRestore {
        from_yaml(&format!(
            "apiVersion: pgro.bes.au/v1alpha1\nkind: PostgresPhysicalRestore\n\
             metadata: {{name: {name}, namespace: {ns}, labels: {{pgro.bes.au/replica: {label}}},\n\
             ownerReferences: [{{apiVersion: pgro.bes.au/v1alpha1, kind: PostgresPhysicalReplica, name: {label}, uid: {uid}}}]}}\n\
             spec: {{replica: {{name: {label}}}, snapshot: k, snapshotSize: '1', storageSize: '1'}}"
        ))
        .expect("restore")
    }

    fn service(rv: &str, selector: &str) -> Service {
        from_yaml(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: s, namespace: n, resourceVersion: '{rv}'}}\n\
             spec: {{selector: {{restore: {selector}}}}}"
        ))
        .expect("service")
    }

    fn empty<K>() -> Store<K>
    where
        K: kube::runtime::reflector::Lookup + Clone + 'static,
        K::DynamicType: Eq + std::hash::Hash + Clone + Default,
    {
        kube::runtime::reflector::store().0
    }

    fn caches_with(services: Store<Service>) -> Caches {
        Caches::new(
            Stores {
                replicas: empty(),
                restores: empty(),
                replicas_for_restores: empty(),
                jobs: empty(),
                deployments: empty(),
                pvcs: empty(),
                services,
                secrets: empty(),
                secret_meta: empty(),
            },
            Readiness::new(),
        )
    }

    #[test]
    fn a_service_is_applied_again_unless_this_body_was_applied_at_the_cached_version() {
        let (reader, mut writer) = kube::runtime::reflector::store();
        let c = caches_with(reader);
        let body = service("", "a");
        // Not in the cache yet, or never applied by this process: apply.
        assert!(!c.service_unchanged("n", "s", &body));
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(service("5", "a")));
        assert!(!c.service_unchanged("n", "s", &body));
        c.service_applied("n", "s", &body, "5".into());
        assert!(c.service_unchanged("n", "s", &body));
        // Another target, or someone else's change (a new resourceVersion): apply.
        assert!(!c.service_unchanged("n", "s", &service("", "b")));
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(service("6", "a")));
        assert!(!c.service_unchanged("n", "s", &body));
    }

    #[tokio::test]
    async fn every_waiter_wakes_once_every_watch_has_listed() {
        let r = Readiness::new();
        r.register();
        r.register();
        // Many reconciles wait at once (a oneshot's single waker would wake only the last).
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let r = Arc::clone(&r);
                tokio::spawn(async move { r.wait().await })
            })
            .collect();
        tokio::task::yield_now().await;
        r.listed();
        tokio::task::yield_now().await;
        assert!(
            waiters.iter().all(|w| !w.is_finished()),
            "one of two listed"
        );
        r.listed();
        for w in waiters {
            tokio::time::timeout(std::time::Duration::from_secs(5), w)
                .await
                .expect("every waiter wakes")
                .expect("joins");
        }
    }

    #[tokio::test]
    async fn the_unfilled_cache_report_stops_once_every_watch_listed() {
        let r = Readiness::new();
        r.register();
        let report =
            tokio::spawn(Arc::clone(&r).report_until_ready(std::time::Duration::from_millis(10)));
        tokio::time::sleep(std::time::Duration::from_millis(35)).await;
        assert!(
            !report.is_finished(),
            "still reporting while a watch has not listed"
        );
        r.listed();
        tokio::time::timeout(std::time::Duration::from_secs(5), report)
            .await
            .expect("stops once ready")
            .expect("joins");
    }

    #[test]
    fn a_status_written_from_a_stale_object_is_not_written_again() {
        let c = caches_with(empty());
        let status = serde_json::json!({"queuePosition": 3});
        assert!(!c.status_written("n", "p", Some("10"), &status));
        c.record_status("n", "p", Some("10".into()), Some("11".into()), &status);
        // The cache still holds rv 10 (or already 11): the same status is not written again.
        assert!(c.status_written("n", "p", Some("10"), &status));
        assert!(c.status_written("n", "p", Some("11"), &status));
        // A different status, or an object someone else changed since: written.
        let other = serde_json::json!({"queuePosition": 2});
        assert!(!c.status_written("n", "p", Some("10"), &other));
        assert!(!c.status_written("n", "p", Some("12"), &status));
        assert!(!c.status_written("n", "q", Some("10"), &status));
    }

    #[test]
    fn owned_restores_need_namespace_label_and_owner_uid() {
        let all = [
            restore("a", "r1", "x", "u1"),
            restore("b", "r2", "x", "u1"),
            restore("a", "r3", "y", "u1"),
            restore("a", "r4", "x", "u-old"),
            restore("a", "r5", "x", "u1"),
        ];
        let names: Vec<String> = owned_restores(&all, "a", "x", "u1").into_keys().collect();
        assert_eq!(names, ["r1", "r5"]);
    }
}
