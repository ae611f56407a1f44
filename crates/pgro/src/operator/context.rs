//! What every reconcile shares (style H13): the client, the event recorder, metrics, the live settings, the
//! repository cache and the admission lock.

use std::sync::{Arc, RwLock};

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use super::caches::Caches;
use super::metrics::Metrics;
use super::notify::Notifier;
use super::repos::RepositoryCache;
use super::settings::Settings;

/// Shared state of the controllers.
pub struct Context {
    /// The API client (the operator's ServiceAccount in a cluster).
    pub client: Client,
    /// Events (`events.k8s.io/v1`).
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Settings in force; swapped whole when the ConfigMap changes.
    pub settings: Arc<RwLock<Arc<Settings>>>,
    /// Opened repositories and their snapshot listings, shared by replicas.
    pub repos: RepositoryCache,
    /// Serialises restore creation: the in-progress count is re-read from the API server and the restore
    /// created under one lock, so two replicas cannot take the same slot (behaviour R6). Only the leader
    /// reconciles, so a process-wide lock suffices.
    pub admission: tokio::sync::Mutex<()>,
    /// Notification delivery, off the reconcile path.
    pub notifier: Arc<Notifier>,
    /// The controllers' watch caches, once they run; absent in the scripted-apiserver tests, where every
    /// read goes to the API server.
    pub caches: std::sync::OnceLock<Caches>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings())
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context for `client` with the given settings handle.
    #[must_use]
    pub fn new(
        client: Client,
        identity: &str,
        metrics: Arc<Metrics>,
        settings: Arc<RwLock<Arc<Settings>>>,
        notifier: Arc<Notifier>,
    ) -> Self {
        let reporter = Reporter {
            controller: "pgro-operator".into(),
            instance: Some(identity.to_owned()),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            settings,
            repos: RepositoryCache::default(),
            admission: tokio::sync::Mutex::new(()),
            notifier,
            caches: std::sync::OnceLock::new(),
        }
    }

    /// The watch caches, once the controllers run.
    #[must_use]
    pub fn caches(&self) -> Option<&Caches> {
        self.caches.get()
    }

    /// The settings in force now.
    #[must_use]
    pub fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .map_or_else(|p| Arc::clone(&p.into_inner()), |s| Arc::clone(&s))
    }
}
