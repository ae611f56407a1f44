//! Mock-apiserver scenario tests (style H14 b): a [`Context`] whose client talks to a scripted
//! [`ApiServerVerifier`], which asserts each request's method, path, query and body in order and answers
//! it. Scenarios live beside their controllers; the pure plans have their own unit tests and the real
//! control plane its e2e tests.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use clap::Parser;
use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower_test::mock::{Handle, SendResponse};

use super::context::Context;
use super::metrics::Metrics;
use super::notify::Notifier;
use super::settings::{OperatorArgs, Settings};

#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    a: OperatorArgs,
}

impl Context {
    /// A context with default settings whose client is served by the returned verifier.
    pub fn test() -> (Arc<Self>, ApiServerVerifier) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let metrics = Arc::new(Metrics::new());
        let settings = Settings::from_args(&Args::parse_from(["pgro"]).a);
        let (wake, _) = mpsc::unbounded_channel();
        let notifier = Arc::new(
            Notifier::new(client.clone(), Arc::clone(&metrics), wake).expect("http client"),
        );
        let ctx = Self::new(
            client,
            "test",
            metrics,
            Arc::new(RwLock::new(Arc::new(settings))),
            notifier,
        );
        (Arc::new(ctx), ApiServerVerifier(handle))
    }
}

/// One request as the apiserver received it.
#[derive(Debug)]
pub struct Call {
    /// Path without the query.
    pub path: String,
    /// The query string (empty without one).
    pub query: String,
    /// The JSON body (`Null` without one).
    pub body: Value,
}

impl Call {
    /// Whether the query has `key=value` (values compared after percent-decoding `/` and `=`).
    #[must_use]
    pub fn has_query(&self, key: &str, value: &str) -> bool {
        self.query.split('&').any(|kv| {
            kv.split_once('=').is_some_and(|(k, v)| {
                k == key && v.replace("%2F", "/").replace("%3D", "=") == value
            })
        })
    }
}

/// The scripted apiserver.
pub struct ApiServerVerifier(Handle<Request<Body>, Response<Body>>);

impl std::fmt::Debug for ApiServerVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServerVerifier").finish_non_exhaustive()
    }
}

impl ApiServerVerifier {
    /// Takes the next request, asserting its method and path, and returns it with its responder.
    pub async fn expect(
        &mut self,
        method: Method,
        path: &str,
    ) -> (Call, SendResponse<Response<Body>>) {
        let (req, send) = self
            .0
            .next_request()
            .await
            .unwrap_or_else(|| panic!("the client went away; expected {method} {path}"));
        let (parts, body) = req.into_parts();
        let got = format!("{} {}", parts.method, parts.uri.path());
        assert_eq!(got, format!("{method} {path}"), "unexpected request");
        let bytes = body.collect_bytes().await.expect("request body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("request body is JSON")
        };
        let call = Call {
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
            body,
        };
        (call, send)
    }

    /// Expects a request and answers it with `status` and `reply`.
    pub async fn answer(&mut self, method: Method, path: &str, status: u16, reply: &Value) -> Call {
        let (call, send) = self.expect(method, path).await;
        send.send_response(respond(status, reply));
        call
    }

    /// Expects a request and answers it with its own body (what a create or an apply returns).
    pub async fn echo(&mut self, method: Method, path: &str) -> Call {
        let (call, send) = self.expect(method, path).await;
        send.send_response(respond(201, &call.body));
        call
    }

    /// Expects a GET and answers 404.
    pub async fn not_found(&mut self, path: &str) -> Call {
        self.answer(Method::GET, path, 404, &status(404, "NotFound"))
            .await
    }

    /// Answers the event POSTs that end a pass and returns their reasons; any other request fails.
    pub async fn events(mut self) -> Vec<String> {
        let mut reasons = Vec::new();
        while let Ok(Some((req, send))) =
            tokio::time::timeout(Duration::from_millis(200), self.0.next_request()).await
        {
            let (parts, body) = req.into_parts();
            assert_eq!(
                format!("{} {}", parts.method, parts.uri.path()),
                "POST /apis/events.k8s.io/v1/namespaces/ns/events",
                "only events may follow"
            );
            let body: Value =
                serde_json::from_slice(&body.collect_bytes().await.expect("body")).expect("JSON");
            reasons.push(body["reason"].as_str().unwrap_or_default().to_owned());
            send.send_response(respond(201, &body));
        }
        reasons
    }

    /// Asserts that no further request arrives.
    pub async fn done(mut self) {
        if let Ok(Some((req, _))) =
            tokio::time::timeout(Duration::from_millis(200), self.0.next_request()).await
        {
            panic!("unexpected request {} {}", req.method(), req.uri());
        }
    }
}

/// A response with a JSON body.
#[must_use]
pub fn respond(code: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).expect("status code"))
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).expect("JSON")))
        .expect("response")
}

/// A `meta/v1` Status, as the apiserver answers errors.
#[must_use]
pub fn status(code: u16, reason: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{reason} (scripted)"), "reason": reason, "code": code,
    })
}

/// `object` with `patch`'s top-level fields replacing its own (what a status apply returns).
#[must_use]
pub fn merged(object: &Value, patch: &Value) -> Value {
    let mut out = object.clone();
    if let (Some(o), Some(p)) = (out.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            if k != "metadata" {
                o.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

/// A list of `kind` (e.g. `PodList`) with `items`.
#[must_use]
pub fn list(api_version: &str, kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})
}

/// Runs `reconcile` while `script` plays the apiserver, failing if either takes longer than a second, and
/// returns the reconcile's result.
pub async fn run_scenario<T, R>(
    script: impl Future<Output = ()> + Send + 'static,
    reconcile: R,
) -> T
where
    R: Future<Output = T>,
{
    let script = tokio::spawn(script);
    let result = tokio::time::timeout(Duration::from_secs(1), reconcile).await;
    match tokio::time::timeout(Duration::from_secs(1), script).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Ok(Err(e)) => panic!("scenario task: {e}"),
        Err(_) => panic!("timeout: the scenario expected a request that never came"),
    }
    result.expect("timeout: the reconcile did not finish")
}
