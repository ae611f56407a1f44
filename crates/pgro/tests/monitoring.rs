//! `deploy/monitoring`: the Prometheus alerting rules, their `PrometheusRule`, their unit tests and the
//! Grafana dashboard (docs/monitoring.md).
//!
//! * `promtool check rules` and `promtool test rules` pass (every alert fires in one case and stays silent
//!   in another, with scrape labels on every series);
//! * the `PrometheusRule`'s `spec.groups` are the plain rule file's `groups`;
//! * every alert has a severity, and a summary and description that name the replica and what to check;
//! * the dashboard is structurally sound (ids, grid, datasource variable, targets), its queries are valid
//!   `PromQL` (`promtool check rules` of them as recording rules), and it passes
//!   `dashboard-linter lint --strict` (with `deploy/monitoring/.lint`);
//! * every `pgro_*` metric the rules, their tests and the dashboard name is one the operator exports.
//!
//! promtool and dashboard-linter come from `scripts/testinfra.sh` (components `promtool`,
//! `dashboard-linter`). Outside CI a missing one skips; under `CI=true` it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use pgro_testkit::monitoring::{DashboardLinter, Promtool};
use pgro_testkit::{Components, skip_unless_ci};
use regex::Regex;
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

/// The kind of a metric family, for the names its samples take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    /// Listed by its sample name (`…_total`).
    Counter,
    /// Samples `…_bucket`, `…_sum`, `…_count`.
    Histogram,
}

/// Every metric family the operator exports, with its labels; `the_list_is_the_real_exposition` holds it
/// to `crates/pgro/src/operator/metrics.rs`.
const METRICS: &[(&str, Kind, &[&str])] = &[
    // Per replica.
    (
        "pgro_replica_data_timestamp_seconds",
        Kind::Gauge,
        &["namespace", "replica"],
    ),
    (
        "pgro_replica_last_restore_success_timestamp_seconds",
        Kind::Gauge,
        &["namespace", "replica"],
    ),
    (
        "pgro_replica_last_verification_success_timestamp_seconds",
        Kind::Gauge,
        &["namespace", "replica"],
    ),
    (
        "pgro_replica_created_timestamp_seconds",
        Kind::Gauge,
        &["namespace", "replica"],
    ),
    (
        "pgro_replica_schedule_interval_seconds",
        Kind::Gauge,
        &["namespace", "replica"],
    ),
    (
        "pgro_replica_consecutive_restore_failures",
        Kind::Gauge,
        &["namespace", "replica"],
    ),
    (
        "pgro_replica_scheduling_suspended",
        Kind::Gauge,
        &["namespace", "replica"],
    ),
    (
        "pgro_replica_queue_position",
        Kind::Gauge,
        &["namespace", "replica"],
    ),
    (
        "pgro_restore_phase_duration_seconds",
        Kind::Histogram,
        &["namespace", "replica", "phase"],
    ),
    (
        "pgro_verification_check_passed",
        Kind::Gauge,
        &["namespace", "replica", "check"],
    ),
    (
        "pgro_verification_checks_total",
        Kind::Counter,
        &["namespace", "replica", "check", "result"],
    ),
    // Global.
    ("pgro_reconciles_total", Kind::Counter, &["controller"]),
    (
        "pgro_reconcile_errors_total",
        Kind::Counter,
        &["controller", "error"],
    ),
    (
        "pgro_reconcile_duration_seconds",
        Kind::Histogram,
        &["controller"],
    ),
    ("pgro_restores_started_total", Kind::Counter, &[]),
    ("pgro_restores_completed_total", Kind::Counter, &[]),
    ("pgro_restores_failed_total", Kind::Counter, &["reason"]),
    ("pgro_restore_duration_seconds", Kind::Histogram, &[]),
    ("pgro_restore_bytes_total", Kind::Counter, &[]),
    ("pgro_switchovers_total", Kind::Counter, &[]),
    ("pgro_restore_queue_depth", Kind::Gauge, &[]),
    ("pgro_restores_in_progress", Kind::Gauge, &[]),
    ("pgro_snapshot_discovery_seconds", Kind::Histogram, &[]),
    (
        "pgro_notifications_total",
        Kind::Counter,
        &["target", "event", "result"],
    ),
];

/// The alerts the rules must define.
const ALERTS: &[&str] = &[
    "PgroReplicaDataStale",
    "PgroReplicaNoSuccessfulRestore",
    "PgroVerificationFailing",
    "PgroRestoreSchedulingSuspended",
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/monitoring")
}

fn read(name: &str) -> String {
    let path = dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(name: &str) -> Yaml {
    serde_yaml::from_str(&read(name)).unwrap_or_else(|e| panic!("{name} is YAML: {e}"))
}

fn dashboard() -> Json {
    serde_json::from_str(&read("grafana-dashboard.json"))
        .unwrap_or_else(|e| panic!("grafana-dashboard.json is JSON: {e}"))
}

fn str_of<'a>(v: &'a Yaml, key: &str, what: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: `{key}` is a string"))
}

/// Every rule of the plain rule file.
fn rules() -> Vec<Yaml> {
    let file = yaml("pgro.rules.yaml");
    let groups = file["groups"].as_sequence().expect("groups");
    assert!(!groups.is_empty(), "at least one group");
    groups
        .iter()
        .flat_map(|g| g["rules"].as_sequence().expect("a group's rules").clone())
        .collect()
}

/// Every panel: rows, and panels nested in collapsed rows, included.
fn panels(dashboard: &Json) -> Vec<&Json> {
    fn walk<'a>(list: &'a Json, out: &mut Vec<&'a Json>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            if let Some(nested) = p.get("panels") {
                walk(nested, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

fn is_query_panel(panel: &Json) -> bool {
    !matches!(panel["type"].as_str(), Some("row" | "text"))
}

/// The `PromQL` expressions of the dashboard's targets: (panel title, `refId`, `expr`).
fn dashboard_queries(dashboard: &Json) -> Vec<(String, String, String)> {
    panels(dashboard)
        .into_iter()
        .filter(|p| is_query_panel(p))
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or("?").to_owned();
            p["targets"].as_array().into_iter().flatten().map(move |t| {
                (
                    title.clone(),
                    t["refId"].as_str().unwrap_or("?").to_owned(),
                    t["expr"].as_str().unwrap_or("").to_owned(),
                )
            })
        })
        .collect()
}

/// A dashboard query with its template variables replaced by values Prometheus accepts.
fn expand_variables(expr: &str) -> String {
    expr.replace("$namespace", ".*")
        .replace("$replica", ".*")
        .replace("$window", "1d")
        .replace("$__rate_interval", "5m")
}

fn metric_names(text: &str) -> BTreeSet<String> {
    let re = Regex::new(r"\bpgro_[a-z0-9_]*[a-z0-9]").expect("regex");
    re.find_iter(text).map(|m| m.as_str().to_owned()).collect()
}

/// The family a sample name belongs to, if the operator exports it.
fn family(name: &str) -> Option<&'static (&'static str, Kind, &'static [&'static str])> {
    METRICS.iter().find(|(family, kind, _)| {
        name == *family
            || (*kind == Kind::Histogram
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| name.strip_suffix(suffix) == Some(family)))
    })
}

#[test]
fn promtool_checks_and_unit_tests_the_rules() {
    let test = "promtool_checks_and_unit_tests_the_rules";
    let Some(promtool) = skip_unless_ci(Promtool::find(&Components::load()), test) else {
        return;
    };
    let check = promtool
        .check_rules(&dir().join("pgro.rules.yaml"))
        .expect("promtool check rules");
    check.assert_success();
    assert!(
        check
            .output
            .contains(&format!("SUCCESS: {} rules found", ALERTS.len())),
        "{check}"
    );
    promtool
        .test_rules(&dir().join("pgro.rules.test.yaml"))
        .expect("promtool test rules")
        .assert_success();
}

#[test]
fn rule_tests_cover_every_alert_firing_and_silent() {
    let tests = yaml("pgro.rules.test.yaml");
    assert_eq!(
        tests["rule_files"],
        serde_yaml::from_str::<Yaml>("[pgro.rules.yaml]").expect("YAML")
    );
    let mut firing = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for case in tests["tests"].as_sequence().expect("tests") {
        let name = case["name"].as_str().unwrap_or("?");
        for series in case["input_series"].as_sequence().expect("input_series") {
            let s = str_of(series, "series", name);
            assert!(
                s.contains("job=") && s.contains("instance="),
                "{name}: every input series carries scrape labels: {s}"
            );
        }
        for t in case["alert_rule_test"]
            .as_sequence()
            .expect("alert_rule_test")
        {
            let alert = str_of(t, "alertname", name).to_owned();
            let expected = t["exp_alerts"].as_sequence().expect("exp_alerts");
            for e in expected {
                assert!(
                    e["exp_labels"]["severity"].is_string()
                        && e["exp_annotations"]["summary"].is_string()
                        && e["exp_annotations"]["description"].is_string(),
                    "{name}: {alert} expects labels and annotations"
                );
            }
            if expected.is_empty() {
                silent.insert(alert);
            } else {
                firing.insert(alert);
            }
        }
    }
    for alert in ALERTS {
        assert!(firing.contains(*alert), "a case where {alert} fires");
        assert!(
            silent.contains(*alert),
            "a case where {alert} does not fire"
        );
    }
}

#[test]
fn prometheus_rule_holds_the_same_groups() {
    let plain = yaml("pgro.rules.yaml");
    let crd = yaml("prometheusrule.yaml");
    assert_eq!(crd["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(crd["kind"], "PrometheusRule");
    assert_eq!(crd["metadata"]["name"], "pgro");
    assert!(plain["groups"].is_sequence(), "groups");
    assert_eq!(
        crd["spec"]["groups"], plain["groups"],
        "prometheusrule.yaml's spec.groups must equal pgro.rules.yaml's groups"
    );
}

#[test]
fn every_alert_has_severity_and_annotations_naming_the_replica() {
    let rules = rules();
    let names: Vec<&str> = rules
        .iter()
        .map(|r| str_of(r, "alert", "every rule is an alert"))
        .collect();
    assert_eq!(names, ALERTS);
    for rule in &rules {
        let name = str_of(rule, "alert", "rule");
        let expr = str_of(rule, "expr", name);
        assert!(
            ["critical", "warning", "info"].contains(&str_of(&rule["labels"], "severity", name)),
            "{name}: severity"
        );
        for key in ["summary", "description"] {
            let text = str_of(&rule["annotations"], key, name);
            for label in ["{{ $labels.namespace }}", "{{ $labels.replica }}"] {
                assert!(text.contains(label), "{name}: {key} names {label}");
            }
        }
        let description = str_of(&rule["annotations"], "description", name);
        assert!(
            description
                .contains("kubectl describe ppr -n {{ $labels.namespace }} {{ $labels.replica }}")
                && description
                    .contains("pgro status -n {{ $labels.namespace }} {{ $labels.replica }}"),
            "{name}: the description says what to check"
        );
        // Scrape labels never reach a match: every selector is aggregated by the replica's labels.
        assert!(
            expr.contains("by (namespace, replica"),
            "{name}: aggregates by (namespace, replica): {expr}"
        );
    }
}

#[test]
fn dashboard_is_structurally_sound() {
    let dash = dashboard();
    assert_eq!(dash["uid"], "pgro");
    assert!(
        dash["title"].as_str().is_some_and(|t| !t.is_empty()),
        "title"
    );
    assert!(
        dash["schemaVersion"].as_u64().is_some_and(|v| v >= 39),
        "schemaVersion 39+"
    );

    let vars: BTreeMap<&str, &Json> = dash["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .map(|v| (v["name"].as_str().expect("variable name"), v))
        .collect();
    let ds = vars.get("datasource").expect("variable datasource");
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["query"], "prometheus");
    for name in ["namespace", "replica"] {
        let v = vars.get(name).unwrap_or_else(|| panic!("variable {name}"));
        assert_eq!(v["type"], "query", "{name}");
        assert_eq!(v["multi"], true, "{name} multi");
        assert_eq!(v["includeAll"], true, "{name} include all");
        assert_eq!(v["datasource"]["uid"], "${datasource}", "{name}");
        let query = v["definition"].as_str().unwrap_or("");
        assert!(
            query.starts_with("label_values(") && query.ends_with(&format!(", {name})")),
            "{name}: label_values query: {query}"
        );
    }

    let all = panels(&dash);
    assert!(!all.is_empty(), "panels");
    let mut ids = BTreeSet::new();
    let mut cells = BTreeMap::new();
    for panel in &all {
        let title = panel["title"].as_str().unwrap_or("");
        assert!(!title.is_empty(), "every panel has a title: {panel}");
        assert!(panel["type"].is_string(), "{title}: type");
        let id = panel["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("{title}: id"));
        assert!(ids.insert(id), "{title}: panel id {id} is unique");
        let grid = &panel["gridPos"];
        let [height, width, left, top] = ["h", "w", "x", "y"].map(|k| {
            grid[k]
                .as_u64()
                .unwrap_or_else(|| panic!("{title}: gridPos.{k}"))
        });
        assert!(
            height > 0 && width > 0 && left + width <= 24,
            "{title}: gridPos {grid}"
        );
        for cx in left..left + width {
            for cy in top..top + height {
                if let Some(other) = cells.insert((cx, cy), title) {
                    panic!("{title} overlaps {other} at ({cx}, {cy})");
                }
            }
        }
        if !is_query_panel(panel) {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{title}: datasource"
        );
        let targets = panel["targets"]
            .as_array()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| panic!("{title}: targets"));
        let mut refs = BTreeSet::new();
        for target in targets {
            let ref_id = target["refId"]
                .as_str()
                .unwrap_or_else(|| panic!("{title}: refId"));
            assert!(refs.insert(ref_id), "{title}: refId {ref_id} is unique");
            assert!(
                target["expr"]
                    .as_str()
                    .is_some_and(|e| !e.trim().is_empty()),
                "{title} {ref_id}: expr"
            );
            assert_eq!(
                target["datasource"]["uid"], "${datasource}",
                "{title} {ref_id}: datasource"
            );
        }
    }
}

#[test]
fn dashboard_queries_are_promql_and_filter_by_replica() {
    let d = dashboard();
    let queries = dashboard_queries(&d);
    let selector = Regex::new(r"\b(pgro_[a-z0-9_]*[a-z0-9])(\{[^}]*\})?").expect("regex");
    for (title, r, expr) in &queries {
        for m in selector.captures_iter(expr) {
            let Some((_, _, labels)) = family(&m[1]) else {
                continue; // every_referenced_metric_is_exported names it
            };
            if labels.contains(&"replica") {
                let matchers = m.get(2).map_or("", |x| x.as_str());
                assert!(
                    matchers.contains(r#"namespace=~"$namespace""#)
                        && matchers.contains(r#"replica=~"$replica""#),
                    "{title} {r}: {} is filtered by $namespace and $replica",
                    &m[1]
                );
            }
        }
    }

    let test = "dashboard_queries_are_promql_and_filter_by_replica";
    let Some(promtool) = skip_unless_ci(Promtool::find(&Components::load()), test) else {
        return;
    };
    // Every query, its variables expanded, as a recording rule: `promtool check rules` parses them.
    let rules: Vec<Yaml> = queries
        .iter()
        .enumerate()
        .map(|(i, (_, _, expr))| {
            let mut rule = serde_yaml::Mapping::new();
            rule.insert("record".into(), format!("pgro_dashboard:query{i}").into());
            rule.insert("expr".into(), expand_variables(expr).into());
            Yaml::Mapping(rule)
        })
        .collect();
    let file: Yaml = serde_yaml::from_str::<Yaml>("groups: [{name: dashboard, rules: []}]")
        .map(|mut f| {
            f["groups"][0]["rules"] = Yaml::Sequence(rules);
            f
        })
        .expect("YAML");
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("dashboard.rules.yaml");
    std::fs::write(&path, serde_yaml::to_string(&file).expect("YAML")).expect("write");
    promtool
        .check_rules(&path)
        .expect("promtool check rules")
        .assert_success();
}

#[test]
fn dashboard_linter_passes() {
    let test = "dashboard_linter_passes";
    let Some(linter) = skip_unless_ci(DashboardLinter::find(&Components::load()), test) else {
        return;
    };
    linter
        .lint_strict(&dir().join("grafana-dashboard.json"))
        .expect("dashboard-linter")
        .assert_success();
}

#[test]
fn every_referenced_metric_is_exported() {
    let d = dashboard();
    let mut texts: Vec<(String, String)> = [
        "pgro.rules.yaml",
        "prometheusrule.yaml",
        "pgro.rules.test.yaml",
    ]
    .iter()
    .map(|f| ((*f).to_owned(), read(f)))
    .collect();
    texts.push((
        "grafana-dashboard.json".to_owned(),
        serde_json::to_string(&d).expect("JSON"),
    ));
    for (file, text) in &texts {
        for name in metric_names(text) {
            assert!(
                family(&name).is_some(),
                "{file}: {name} is not exported by pgro"
            );
        }
    }
    // The dashboard shows every per-replica family.
    let shown: BTreeSet<&str> = metric_names(&serde_json::to_string(&d).expect("JSON"))
        .iter()
        .filter_map(|n| family(n).map(|f| f.0))
        .collect();
    for (name, _, labels) in METRICS {
        if labels.contains(&"replica") {
            assert!(shown.contains(name), "the dashboard shows {name}");
        }
    }
}

/// The families and kinds above are exactly those the operator's registry exposes.
#[test]
fn the_list_is_the_real_exposition() {
    use pgro::operator::metrics as m;
    // A family without series prints nothing, so each gets one.
    let metrics = m::Metrics::new();
    let replica = m::ReplicaLabels {
        namespace: "n".into(),
        replica: "r".into(),
    };
    let check = m::CheckLabels {
        namespace: "n".into(),
        replica: "r".into(),
        check: "c".into(),
    };
    let controller = m::ControllerLabels {
        controller: "replica",
    };
    metrics.reconciles.get_or_create(&controller).inc();
    metrics
        .reconcile_duration
        .get_or_create(&controller)
        .observe(1.0);
    metrics
        .reconcile_errors
        .get_or_create(&m::ErrorLabels {
            controller: "replica",
            error: "kube",
        })
        .inc();
    metrics
        .restores_failed
        .get_or_create(&m::ReasonLabels { reason: "x".into() })
        .inc();
    metrics
        .notifications
        .get_or_create(&m::NotificationLabels {
            target: "webhook",
            event: "RestoreFailed".into(),
            result: "success",
        })
        .inc();
    let g = &metrics.replica;
    for f in [
        &g.data_timestamp,
        &g.last_restore_success,
        &g.last_verification_success,
        &g.created,
        &g.schedule_interval,
    ] {
        f.get_or_create(&replica).set(1.0);
    }
    for f in [&g.consecutive_failures, &g.suspended, &g.queue_position] {
        f.get_or_create(&replica).set(1);
    }
    g.check_passed.get_or_create(&check).set(1);
    metrics
        .phase_duration
        .get_or_create(&m::PhaseLabels {
            namespace: "n".into(),
            replica: "r".into(),
            phase: "download",
        })
        .observe(1.0);
    metrics
        .verification_checks
        .get_or_create(&m::CheckResultLabels {
            namespace: "n".into(),
            replica: "r".into(),
            check: "c".into(),
            result: "passed",
        })
        .inc();
    let text = metrics.encode();
    let exposed: BTreeSet<(String, String)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').expect("# TYPE name kind");
            (name.to_owned(), kind.to_owned())
        })
        .collect();
    let listed: BTreeSet<(String, String)> = METRICS
        .iter()
        .map(|(name, kind, _)| {
            let (family, kind) = match kind {
                Kind::Gauge => (*name, "gauge"),
                Kind::Counter => (name.strip_suffix("_total").unwrap_or(name), "counter"),
                Kind::Histogram => (*name, "histogram"),
            };
            (family.to_owned(), kind.to_owned())
        })
        .collect();
    assert_eq!(
        listed, exposed,
        "METRICS differs from the operator's exposition"
    );
}
