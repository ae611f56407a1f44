//! What a notification carries (behaviour N1, N2): the webhook's JSON payload, and the GraphQL request with
//! `variables` rendered from the target's Handlebars template.

use handlebars::{Handlebars, handlebars_helper};
use jiff::Timestamp;
use kube::api::Api;
use pgro_api::{
    ConnectionInfo, NotificationConfig, NotificationTarget, PostgresPhysicalReplica,
    PostgresPhysicalRestore,
};
use serde_json::{Value, json};

use super::plan::Due;

/// Everything a notification may say.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    /// `RestoreCompleted` or `RestoreFailed`.
    pub event: String,
    /// When it happened.
    pub timestamp: Timestamp,
    /// Replica name.
    pub replica: String,
    /// Namespace.
    pub namespace: String,
    /// Restore name.
    pub restore: String,
    /// Snapshot ID.
    pub snapshot: String,
    /// Snapshot time.
    pub snapshot_time: Option<Timestamp>,
    /// PostgreSQL major.
    pub postgres_version: Option<String>,
    /// For failures: why.
    pub error: Option<String>,
    /// How to connect.
    pub connection: ConnectionInfo,
    /// The analytics password, when the target asked for it (`includePassword`).
    pub password: Option<String>,
    /// The restore's verification results, when checks ran (+).
    pub verification: Option<pgro_api::VerificationStatus>,
    /// The time of the newest data the restore serves (+).
    pub data_time: Option<Timestamp>,
}

/// Reads the restore the event is about (it may be gone; then its name is all the payload says of it).
pub async fn context(
    replica: &PostgresPhysicalReplica,
    d: &Due,
    client: &kube::Client,
    password: Option<String>,
) -> Context {
    let ns = replica.metadata.namespace.clone().unwrap_or_default();
    let restores: Api<PostgresPhysicalRestore> = Api::namespaced(client.clone(), &ns);
    let restore = restores.get_opt(&d.restore).await.ok().flatten();
    let status = restore
        .as_ref()
        .and_then(|r| r.status.clone())
        .unwrap_or_default();
    let error = (d.event == pgro_api::event_reasons::RESTORE_FAILED).then(|| {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == pgro_api::condition_types::FAILED)
            .map_or_else(
                || format!("restore {} failed", d.restore),
                |c| format!("{}: {}", c.reason, c.message),
            )
    });
    Context {
        event: d.event.clone(),
        timestamp: d.occurred_at,
        replica: replica.metadata.name.clone().unwrap_or_default(),
        namespace: ns,
        restore: d.restore.clone(),
        snapshot: restore
            .as_ref()
            .map(|r| r.spec.snapshot.clone())
            .unwrap_or_default(),
        snapshot_time: restore
            .as_ref()
            .and_then(|r| r.spec.snapshot_time.as_ref())
            .map(|t| t.0),
        postgres_version: status.postgres_version,
        verification: status.verification,
        data_time: status.data_time.map(|t| t.0),
        error,
        connection: replica
            .status
            .as_ref()
            .and_then(|s| s.connection_info.clone())
            .unwrap_or_default(),
        password,
    }
}

/// The webhook body (behaviour N1): camelCase JSON; `password` only when asked for, `error` only for
/// failures.
#[must_use]
pub fn webhook_payload(c: &Context) -> Value {
    let mut connection = json!({
        "host": c.connection.host,
        "port": c.connection.port,
        "database": c.connection.database,
        "username": c.connection.username,
        "passwordSecret": c.connection.password_secret,
    });
    if let Some(m) = &c.connection.ssl_mode {
        connection["sslMode"] = json!(m);
    }
    if let Some(s) = &c.connection.ca_secret {
        connection["caSecret"] = json!(s);
    }
    if let Some(p) = &c.password {
        connection["password"] = json!(p);
    }
    let mut v = json!({
        "event": c.event,
        "timestamp": c.timestamp.to_string(),
        "replica": {"name": c.replica, "namespace": c.namespace},
        "restore": {
            "name": c.restore,
            "snapshot": c.snapshot,
            "snapshotTime": c.snapshot_time.map(|t| t.to_string()),
            "postgresVersion": c.postgres_version,
            "dataTime": c.data_time.map(|t| t.to_string()),
        },
        "connectionInfo": connection,
    });
    if let Some(e) = &c.error {
        v["error"] = json!(e);
    }
    if let Some(ver) = &c.verification {
        v["verification"] = json!(ver);
    }
    v
}

/// The Handlebars context of a GraphQL `variablesTemplate` (behaviour N2).
#[must_use]
pub fn template_context(c: &Context) -> Value {
    json!({
        "Replica": c.replica,
        "Namespace": c.namespace,
        "Event": c.event,
        "Timestamp": c.timestamp.to_string(),
        "Snapshot": c.snapshot,
        "SnapshotTime": c.snapshot_time.map(|t| t.to_string()),
        "Restore": c.restore,
        "PostgresVersion": c.postgres_version,
        "Error": c.error,
        "DataTime": c.data_time.map(|t| t.to_string()),
        "Verification": c.verification,
        "ConnectionInfo": {
            "Host": c.connection.host,
            "Port": c.connection.port,
            "Database": c.connection.database,
            "Username": c.connection.username,
            "PasswordSecret": c.connection.password_secret,
            "Password": c.password,
            "SslMode": c.connection.ssl_mode,
            "CaSecret": c.connection.ca_secret,
        },
    })
}

handlebars_helper!(json_helper: |v: Json| serde_json::to_string(v).unwrap_or_default());

/// Renders `variablesTemplate` and parses the result as JSON. The output is not HTML-escaped; `{{json X}}`
/// writes X as a JSON value (strings quoted and escaped). Unknown variables are errors (strict mode), so a
/// typo does not silently send an empty value.
///
/// # Errors
///
/// The template does not render, or does not render JSON.
pub fn render_variables(template: &str, c: &Context) -> Result<Value, String> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    hb.register_helper("json", Box::new(json_helper));
    let text = hb
        .render_template(template, &template_context(c))
        .map_err(|e| format!("variablesTemplate does not render: {e}"))?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "variablesTemplate rendered invalid JSON ({e}): {}",
            super::snippet(&text)
        )
    })
}

/// The request body for a target.
///
/// # Errors
///
/// A GraphQL target whose template fails ([`render_variables`]).
pub fn body(t: &NotificationConfig, c: &Context) -> Result<Value, String> {
    match t.target {
        NotificationTarget::Webhook => Ok(webhook_payload(c)),
        NotificationTarget::GraphQl => Ok(json!({
            "query": t.mutation.clone().unwrap_or_default(),
            "variables": render_variables(t.variables_template.as_deref().unwrap_or("{}"), c)?,
        })),
    }
}

/// A GraphQL response with a non-empty `errors` array is a failure, whatever its HTTP status.
///
/// # Errors
///
/// The errors' messages.
pub fn graphql_errors(response: &str) -> Result<(), String> {
    let Ok(v) = serde_json::from_str::<Value>(response) else {
        return Ok(());
    };
    match v.get("errors").and_then(Value::as_array) {
        Some(errs) if !errs.is_empty() => {
            let msgs: Vec<String> = errs
                .iter()
                .map(|e| {
                    e.get("message")
                        .and_then(Value::as_str)
                        .map_or_else(|| e.to_string(), str::to_owned)
                })
                .collect();
            Err(format!("GraphQL errors: {}", msgs.join("; ")))
        }
        Some(_) | None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(password: Option<&str>, error: Option<&str>) -> Context {
        Context {
            event: "RestoreCompleted".into(),
            timestamp: "2026-11-21T06:00:00Z".parse().expect("ts"),
            replica: "test".into(),
            namespace: "pgro-example".into(),
            restore: "test-20261121-060000".into(),
            snapshot: "k1".into(),
            snapshot_time: Some("2026-11-21T05:00:00Z".parse().expect("ts")),
            postgres_version: Some("16".into()),
            error: error.map(str::to_owned),
            connection: ConnectionInfo {
                host: "test.pgro-example.svc".into(),
                port: 5432,
                database: "postgres".into(),
                username: "analytics".into(),
                password_secret: "test-creds".into(),
                ssl_mode: Some("verify-full".into()),
                ca_secret: Some("test-ca".into()),
            },
            password: password.map(str::to_owned),
            verification: None,
            data_time: None,
        }
    }

    #[test]
    fn webhook_payload_has_the_documented_shape() {
        let v = webhook_payload(&ctx(None, None));
        assert_eq!(v["event"], "RestoreCompleted");
        assert_eq!(v["timestamp"], "2026-11-21T06:00:00Z");
        assert_eq!(
            v["replica"],
            json!({"name": "test", "namespace": "pgro-example"})
        );
        assert_eq!(v["restore"]["snapshot"], "k1");
        assert_eq!(v["restore"]["postgresVersion"], "16");
        assert_eq!(v["connectionInfo"]["passwordSecret"], "test-creds");
        assert_eq!(v["connectionInfo"]["sslMode"], "verify-full");
        assert_eq!(v["connectionInfo"]["caSecret"], "test-ca");
        assert!(
            v["connectionInfo"].get("password").is_none(),
            "no password unless asked"
        );
        assert!(v.get("error").is_none());
        let v = webhook_payload(&ctx(Some("pw"), Some("NoPgdata: x")));
        assert_eq!(v["connectionInfo"]["password"], "pw");
        assert_eq!(v["error"], "NoPgdata: x");
        assert!(v.get("verification").is_none());
    }

    #[test]
    fn webhook_payload_carries_the_verification_results() {
        let mut c = ctx(
            None,
            Some("VerificationFailed: check orders: returned false"),
        );
        c.verification = Some(pgro_api::VerificationStatus {
            passed: Some(false),
            checks: vec![pgro_api::CheckResult {
                name: "orders".into(),
                passed: false,
                value: Some("false".into()),
                seconds: 0.25,
                ..pgro_api::CheckResult::default()
            }],
            ..pgro_api::VerificationStatus::default()
        });
        let v = webhook_payload(&c);
        assert_eq!(v["verification"]["passed"], false);
        assert_eq!(
            v["verification"]["checks"][0],
            json!({"name": "orders", "passed": false, "value": "false", "seconds": 0.25})
        );
        let t = render_variables(r#"{"check": {{json Verification.checks.[0].name}}}"#, &c)
            .expect("renders");
        assert_eq!(t["check"], "orders");
    }

    #[test]
    fn graphql_variables_render_with_json_escaping() {
        let mut c = ctx(Some("p\"w\\"), Some("line1\nline2 \"quoted\""));
        c.replica = "r<&>".into();
        let tpl = r#"{"replica": {{json Replica}}, "pw": {{json ConnectionInfo.Password}}, "error": {{json Error}}, "port": {{ConnectionInfo.Port}}}"#;
        let v = render_variables(tpl, &c).expect("renders JSON");
        assert_eq!(v["replica"], "r<&>", "no HTML escaping");
        assert_eq!(v["pw"], "p\"w\\");
        assert_eq!(v["error"], "line1\nline2 \"quoted\"");
        assert_eq!(v["port"], 5432);
    }

    #[test]
    fn graphql_template_errors_are_reported() {
        let c = ctx(None, None);
        let e = render_variables(r#"{"x": "{{Replica}}""#, &c).expect_err("not JSON");
        assert!(e.contains("invalid JSON"), "{e}");
        let e = render_variables(r#"{"x": {{json Nope}}}"#, &c).expect_err("unknown variable");
        assert!(e.contains("does not render"), "{e}");
    }

    #[test]
    fn graphql_errors_array_is_a_failure() {
        assert!(graphql_errors(r#"{"data": {"x": 1}}"#).is_ok());
        assert!(graphql_errors(r#"{"data": null, "errors": []}"#).is_ok());
        let e = graphql_errors(r#"{"errors": [{"message": "denied"}]}"#).expect_err("errors");
        assert_eq!(e, "GraphQL errors: denied");
    }
}
