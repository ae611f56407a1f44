//! Notifications (behaviour N1–N3): which deliveries are due, what they carry, and how they are sent.
//!
//! Delivery state lives in `status.notifications[]` (one entry per target and event), so it survives
//! restarts. The replica controller plans ([`plan`]) and hands due deliveries to the [`Notifier`], which
//! sends them on its own tasks — never on the reconcile path — and reports each outcome back; the next
//! reconcile of that replica records it. Delivery is at least once: an outcome lost in a crash is retried.

pub mod payload;
pub mod plan;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use pgro_api::{HeaderValue, NotificationConfig, NotificationTarget, PostgresPhysicalReplica};
use tokio::sync::mpsc;

use super::metrics::{Metrics, NotificationLabels};
use plan::{Due, Outcome};

/// Identifies one delivery attempt: (namespace, replica, target name, event, attempt).
pub type AttemptKey = (String, String, String, String, u32);

/// Sends notifications off the reconcile path and keeps their outcomes until a reconcile records them.
pub struct Notifier {
    http: reqwest::Client,
    client: kube::Client,
    metrics: Arc<Metrics>,
    in_flight: Mutex<HashSet<AttemptKey>>,
    outcomes: Mutex<HashMap<AttemptKey, Outcome>>,
    /// Attempts made by this process. A reconcile can see a replica from before the status that recorded
    /// an attempt (the cache lags the write), and must not make that attempt again.
    made: Mutex<HashMap<AttemptKey, std::time::Instant>>,
    wake: mpsc::UnboundedSender<ObjectRef<PostgresPhysicalReplica>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").finish_non_exhaustive()
    }
}

/// How long one HTTP attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

impl Notifier {
    /// A notifier; finished attempts wake their replica through `wake`.
    ///
    /// # Errors
    ///
    /// The HTTP client cannot be built (TLS roots).
    pub fn new(
        client: kube::Client,
        metrics: Arc<Metrics>,
        wake: mpsc::UnboundedSender<ObjectRef<PostgresPhysicalReplica>>,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(ATTEMPT_TIMEOUT)
                .user_agent(concat!("pgro/", env!("CARGO_PKG_VERSION")))
                .build()?,
            client,
            metrics,
            in_flight: Mutex::new(HashSet::new()),
            outcomes: Mutex::new(HashMap::new()),
            made: Mutex::new(HashMap::new()),
            wake,
        })
    }

    /// Outcomes of this replica's attempts not yet recorded in its status.
    #[must_use]
    pub fn outcomes(&self, namespace: &str, replica: &str) -> Vec<Outcome> {
        self.outcomes.lock().map_or_else(
            |_| Vec::new(),
            |o| {
                o.iter()
                    .filter(|(k, _)| k.0 == namespace && k.1 == replica)
                    .map(|(_, v)| v.clone())
                    .collect()
            },
        )
    }

    /// Forgets outcomes once the status that records them is written.
    pub fn recorded(&self, namespace: &str, replica: &str, outcomes: &[Outcome]) {
        if let Ok(mut o) = self.outcomes.lock() {
            for x in outcomes {
                o.remove(&(
                    namespace.to_owned(),
                    replica.to_owned(),
                    x.name.clone(),
                    x.event.clone(),
                    x.attempt,
                ));
            }
        }
    }

    /// Starts the due deliveries that are not already under way.
    pub fn start(self: &Arc<Self>, replica: &PostgresPhysicalReplica, due: Vec<Due>) {
        let ns = replica.metadata.namespace.clone().unwrap_or_default();
        let name = replica.metadata.name.clone().unwrap_or_default();
        for d in due {
            let key = (
                ns.clone(),
                name.clone(),
                d.name.clone(),
                d.event.clone(),
                d.attempt,
            );
            let fresh = self
                .in_flight
                .lock()
                .map(|mut f| f.insert(key.clone()))
                .unwrap_or(false);
            let done = self
                .made
                .lock()
                .map(|m| m.contains_key(&key))
                .unwrap_or(true);
            if !fresh {
                continue;
            }
            if done {
                if let Ok(mut f) = self.in_flight.lock() {
                    f.remove(&key);
                }
                continue;
            }
            let this = Arc::clone(self);
            let replica = replica.clone();
            tokio::spawn(async move {
                let outcome = this.deliver(&replica, &d).await;
                let labels = NotificationLabels {
                    target: match d.target.target {
                        NotificationTarget::Webhook => "webhook",
                        NotificationTarget::GraphQl => "graphQL",
                    },
                    event: d.event.clone(),
                    result: if outcome.success {
                        "success"
                    } else {
                        "failure"
                    },
                };
                this.metrics.notifications.get_or_create(&labels).inc();
                tracing::info!(
                    replica = %key.1,
                    notification = %d.name,
                    event = %d.event,
                    attempt = d.attempt,
                    success = outcome.success,
                    error = outcome.error.as_deref().unwrap_or(""),
                    "notification attempt"
                );
                if let Ok(mut o) = this.outcomes.lock() {
                    o.insert(key.clone(), outcome);
                }
                if let Ok(mut m) = this.made.lock() {
                    // Long enough for any cache to catch up; the status is the record after that.
                    m.retain(|_, at| at.elapsed() < Duration::from_secs(3600));
                    m.insert(key.clone(), std::time::Instant::now());
                }
                if let Ok(mut f) = this.in_flight.lock() {
                    f.remove(&key);
                }
                let _ = this
                    .wake
                    .send(ObjectRef::<PostgresPhysicalReplica>::new(&key.1).within(&key.0));
            });
        }
    }

    async fn deliver(&self, replica: &PostgresPhysicalReplica, d: &Due) -> Outcome {
        let at = Timestamp::now();
        let result = self.attempt(replica, d).await;
        Outcome {
            name: d.name.clone(),
            event: d.event.clone(),
            attempt: d.attempt,
            at,
            finished: Timestamp::now(),
            success: result.is_ok(),
            error: result.err(),
        }
    }

    async fn attempt(&self, replica: &PostgresPhysicalReplica, d: &Due) -> Result<(), String> {
        let ns = replica.metadata.namespace.clone().unwrap_or_default();
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        let headers = resolve_headers(&secrets, d.target.headers.as_ref()).await?;
        let password = if d.target.include_password == Some(true) {
            let creds = super::naming::credentials_secret(
                &replica.metadata.name.clone().unwrap_or_default(),
            );
            Some(secret_value(&secrets, &creds, super::specs::PASSWORD_KEY).await?)
        } else {
            None
        };
        let ctx = payload::context(replica, d, &self.client, password).await;
        let body = payload::body(&d.target, &ctx)?;
        let method = match (d.target.target, d.target.method) {
            (NotificationTarget::GraphQl, _) | (_, None | Some(pgro_api::WebhookMethod::Post)) => {
                reqwest::Method::POST
            }
            (_, Some(pgro_api::WebhookMethod::Get)) => reqwest::Method::GET,
            (_, Some(pgro_api::WebhookMethod::Put)) => reqwest::Method::PUT,
            (_, Some(pgro_api::WebhookMethod::Patch)) => reqwest::Method::PATCH,
        };
        let mut req = self.http.request(method, &d.target.url).json(&body);
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.map_err(|e| describe_http_error(&e))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(format!("HTTP {}: {}", status.as_u16(), snippet(&text)));
        }
        if d.target.target == NotificationTarget::GraphQl {
            payload::graphql_errors(&text)?;
        }
        Ok(())
    }
}

/// An HTTP error without the URL (it may carry credentials in its userinfo or query).
fn describe_http_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_request() {
        "request failed"
    } else {
        "failed"
    };
    let mut cause = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(c) = cause {
        detail = c.to_string();
        cause = c.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

fn snippet(text: &str) -> String {
    let t = text.trim();
    let mut end = t.len().min(200);
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    t[..end].to_owned()
}

async fn secret_value(secrets: &Api<Secret>, name: &str, key: &str) -> Result<String, String> {
    let s = secrets
        .get_opt(name)
        .await
        .map_err(|e| format!("reading Secret {name}: {e}"))?
        .ok_or_else(|| format!("Secret {name} not found"))?;
    let v = s
        .data
        .and_then(|d| d.get(key).cloned())
        .ok_or_else(|| format!("Secret {name} has no key {key:?}"))?;
    String::from_utf8(v.0).map_err(|_| format!("Secret {name} key {key:?} is not UTF-8"))
}

/// Header values, read from their Secrets on every attempt (a rotated token is picked up).
async fn resolve_headers(
    secrets: &Api<Secret>,
    headers: Option<&BTreeMap<String, HeaderValue>>,
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (name, value) in headers.into_iter().flatten() {
        let v = match value {
            HeaderValue::Plain(v) => v.clone(),
            HeaderValue::Secret { secret_key_ref } => {
                secret_value(secrets, &secret_key_ref.name, &secret_key_ref.key).await?
            }
            HeaderValue::Invalid(_) => {
                return Err(format!(
                    "header {name:?} must be a string or {{secretKeyRef: {{name, key}}}}"
                ));
            }
        };
        out.push((name.clone(), v));
    }
    Ok(out)
}

/// The display name of the `index`-th target: its `name`, or `<target>-<index>`.
#[must_use]
pub fn target_name(t: &NotificationConfig, index: usize) -> String {
    t.name.clone().unwrap_or_else(|| {
        let kind = match t.target {
            NotificationTarget::Webhook => "webhook",
            NotificationTarget::GraphQl => "graphQL",
        };
        format!("{kind}-{index}")
    })
}
