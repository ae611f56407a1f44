//! The Helm chart `deploy/helm/pgro` (issue 17):
//!
//! * `helm lint --strict` passes with the defaults and with every option set;
//! * its default render is `deploy/operator.yaml` object for object (less the Namespace, which Helm users
//!   create with `--create-namespace`, and Helm's own bookkeeping labels), and its `crds/` is
//!   `deploy/crds.yaml` byte for byte — so the two ways of installing cannot drift;
//! * values reach the objects they name (image, replicas, settings, scheduling, a release name other than
//!   `pgro`), and a ServiceMonitor without the Service it scrapes is refused with a message;
//! * every rendered object, the optional ServiceMonitor included (prometheus-operator's real CRD), passes a
//!   server-side dry run on the test control plane's kube-apiserver.
//!
//! The install itself is an e2e test (`e2e_disruptive`). Helm and the monitoring CRDs come from
//! `scripts/testinfra.sh` (components `helm`, `monitoring-crds`); outside CI a missing one skips, under
//! `CI=true` it fails.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use pgro_testkit::helm::{Helm, MONITORING_CRDS, chart_dir};
use pgro_testkit::monitoring::Outcome;
use pgro_testkit::{Components, skip_unless_ci};
use serde::Deserialize as _;
use serde_json::Value;

const OPERATOR: &str = include_str!("../../../deploy/operator.yaml");
const CRDS: &str = include_str!("../../../deploy/crds.yaml");
/// Labels Helm charts add for their own bookkeeping; everything else must match the plain manifest.
const HELM_LABELS: &[&str] = &[
    "helm.sh/chart",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
];

fn helm(test: &str) -> Option<Helm> {
    skip_unless_ci(Helm::find(&Components::load()), test)
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| {
            serde_yaml::from_value::<Value>(serde_yaml::Value::deserialize(d).unwrap()).unwrap()
        })
        .filter(|d| !d.is_null())
        .collect()
}

/// `helm template RELEASE chart -n NS ARGS…`, as it ended.
fn template(h: &Helm, release: &str, ns: &str, args: &[&str]) -> Outcome {
    let chart = chart_dir();
    let mut all = vec!["template", release, chart.to_str().unwrap(), "-n", ns];
    all.extend_from_slice(args);
    h.run(&all, None).unwrap()
}

/// The manifests of a successful `helm template`, without the warnings Helm appends on stderr.
fn rendered(h: &Helm, release: &str, ns: &str, args: &[&str]) -> String {
    let out = template(h, release, ns, args);
    out.assert_success();
    out.output.split("\nWARNING").next().unwrap().to_owned()
}

/// `helm template RELEASE chart -n NS ARGS…`, parsed.
fn render(h: &Helm, release: &str, ns: &str, args: &[&str]) -> Vec<Value> {
    docs(&rendered(h, release, ns, args))
}

fn key(d: &Value) -> (String, String) {
    (
        d["kind"].as_str().unwrap().to_owned(),
        d["metadata"]["name"].as_str().unwrap().to_owned(),
    )
}

fn by_key(objects: Vec<Value>) -> BTreeMap<(String, String), Value> {
    objects.into_iter().map(|d| (key(&d), d)).collect()
}

fn find<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects
        .iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("a {kind}"))
}

fn env_value<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| &e["value"])
        .unwrap_or_else(|| panic!("env {name}"))
}

#[test]
fn the_chart_lints_strictly_with_defaults_and_with_every_option() {
    let Some(h) = helm("the_chart_lints_strictly") else {
        return;
    };
    let chart = chart_dir();
    let chart = chart.to_str().unwrap();
    h.run(&["lint", "--strict", chart], None)
        .unwrap()
        .assert_success();
    h.run(
        &[
            "lint",
            "--strict",
            chart,
            "--set",
            "replicaCount=2,image.tag=9.9.9,image.pullPolicy=Always,metrics.serviceMonitor.enabled=true",
            "--set",
            "imagePullSecrets[0].name=regcred,nodeSelector.pool=ops,podAnnotations.team=data",
            "--set",
            "serviceAccount.name=custom,serviceAccount.annotations.role=x",
        ],
        None,
    )
    .unwrap()
    .assert_success();
}

#[test]
fn the_default_render_is_deploy_operator_yaml_and_the_crds_are_deploy_crds_yaml() {
    let Some(h) = helm("the_default_render_is_deploy_operator_yaml") else {
        return;
    };
    let mut rendered = render(&h, "pgro", "pgro-system", &[]);
    for d in &mut rendered {
        let labels = d["metadata"]["labels"].as_object_mut().unwrap();
        for l in HELM_LABELS {
            assert!(labels.remove(*l).is_some(), "{l} on {:?}", key(d));
        }
    }
    let manifest: Vec<Value> = docs(OPERATOR)
        .into_iter()
        .filter(|d| d["kind"] != "Namespace")
        .collect();
    let (rendered, manifest) = (by_key(rendered), by_key(manifest));
    assert_eq!(
        rendered.keys().collect::<Vec<_>>(),
        manifest.keys().collect::<Vec<_>>()
    );
    for (k, want) in &manifest {
        assert_eq!(
            &rendered[k], want,
            "{k:?} differs from deploy/operator.yaml"
        );
    }
    let chart_crds = std::fs::read_to_string(chart_dir().join("crds/pgro.bes.au.yaml")).unwrap();
    assert!(
        chart_crds == CRDS,
        "deploy/helm/pgro/crds/pgro.bes.au.yaml differs from deploy/crds.yaml: copy it after `pgro gen-crds`"
    );
}

#[test]
fn values_reach_the_objects_they_name() {
    let Some(h) = helm("values_reach_the_objects_they_name") else {
        return;
    };
    let objects = render(
        &h,
        "analytics",
        "tools",
        &[
            "--set",
            "replicaCount=2,image.repository=registry.example/pgro,image.tag=1.2.3,image.pullPolicy=Always",
            "--set",
            "settings.maxConcurrentRestores=5,settings.readyTimeout=20m,log.level=pgro=debug",
            "--set-json",
            r#"settings.nodeSelector={"pool":"restores"}"#,
            "--set",
            "nodeSelector.pool=ops,metrics.serviceMonitor.enabled=true,metrics.serviceMonitor.labels.release=kps",
        ],
    );
    let d = find(&objects, "Deployment");
    assert_eq!(d["metadata"]["name"], "analytics-pgro-operator");
    assert_eq!(d["metadata"]["namespace"], "tools");
    assert_eq!(d["spec"]["replicas"], 2);
    let pod = &d["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "registry.example/pgro:1.2.3");
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(env_value(d, "PGRO_IMAGE"), "registry.example/pgro:1.2.3");
    assert_eq!(env_value(d, "PGRO_LOG"), "pgro=debug");
    assert_eq!(pod["nodeSelector"]["pool"], "ops");
    let cm = find(&objects, "ConfigMap");
    assert_eq!(env_value(d, "PGRO_CONFIG_MAP"), &cm["metadata"]["name"]);
    assert_eq!(cm["data"]["maxConcurrentRestores"], "5");
    assert_eq!(cm["data"]["readyTimeout"], "20m");
    // A map in the settings is YAML text, as the operator reads it.
    let ns: serde_yaml::Value =
        serde_yaml::from_str(cm["data"]["nodeSelector"].as_str().unwrap()).unwrap();
    assert_eq!(ns["pool"], "restores");
    let sa = find(&objects, "ServiceAccount");
    assert_eq!(pod["serviceAccountName"], sa["metadata"]["name"]);
    for kind in ["ClusterRoleBinding", "RoleBinding"] {
        let b = find(&objects, kind);
        assert_eq!(b["subjects"][0]["name"], sa["metadata"]["name"], "{kind}");
        assert_eq!(b["subjects"][0]["namespace"], "tools", "{kind}");
        let role = find(&objects, b["roleRef"]["kind"].as_str().unwrap());
        assert_eq!(b["roleRef"]["name"], role["metadata"]["name"], "{kind}");
    }
    // The ServiceMonitor selects the metrics Service, by its labels and port name.
    let svc = find(&objects, "Service");
    let sm = find(&objects, "ServiceMonitor");
    assert_eq!(sm["metadata"]["labels"]["release"], "kps");
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&svc["metadata"]["labels"][k], v, "label {k}");
    }
    assert_eq!(
        sm["spec"]["endpoints"][0]["port"],
        svc["spec"]["ports"][0]["name"]
    );
    assert_eq!(sm["spec"]["namespaceSelector"]["matchNames"][0], "tools");
    // The Service selects the operator pods.
    for (k, v) in svc["spec"]["selector"].as_object().unwrap() {
        assert_eq!(
            &d["spec"]["template"]["metadata"]["labels"][k], v,
            "label {k}"
        );
    }

    let refused = template(
        &h,
        "pgro",
        "pgro-system",
        &[
            "--set",
            "metrics.service.enabled=false,metrics.serviceMonitor.enabled=true",
        ],
    );
    assert!(!refused.success, "{refused}");
    assert!(
        refused
            .output
            .contains("metrics.serviceMonitor.enabled needs metrics.service.enabled"),
        "{refused}"
    );
}

/// `kubectl ARGS…` against the shared test control plane.
fn kubectl(
    components: &Components,
    kubeconfig: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> String {
    use std::io::Write as _;
    let mut child = Command::new(components.path("PGRO_KUBECTL").unwrap())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.unwrap_or("").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kubectl {}: {text}", args.join(" "));
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rendered_object_passes_a_server_side_dry_run() {
    let Some(h) = helm("every_rendered_object_passes_a_server_side_dry_run") else {
        return;
    };
    let components = Components::load();
    let Some(crds) = skip_unless_ci(
        components
            .path(MONITORING_CRDS)
            .map_err(anyhow::Error::from),
        "every_rendered_object_passes_a_server_side_dry_run",
    ) else {
        return;
    };
    let Some(env) =
        pgro_testkit::env_or_skip("every_rendered_object_passes_a_server_side_dry_run").await
    else {
        return;
    };
    env.crds().expect("deploy/crds.yaml installs");
    let kubeconfig = env.control_plane().kubeconfig_path().to_path_buf();
    let ns = env.namespace().await.unwrap();
    // prometheus-operator's CRDs, as a cluster running it has them.
    for f in [
        "monitoring.coreos.com_servicemonitors.yaml",
        "monitoring.coreos.com_prometheusrules.yaml",
    ] {
        let path = crds.join(f);
        kubectl(
            &components,
            &kubeconfig,
            &["apply", "--server-side", "-f", path.to_str().unwrap()],
            None,
        );
    }
    kubectl(
        &components,
        &kubeconfig,
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/servicemonitors.monitoring.coreos.com",
            "crd/prometheusrules.monitoring.coreos.com",
        ],
        None,
    );
    let manifests = rendered(
        &h,
        "pgro",
        ns.name(),
        &[
            "--set",
            "metrics.serviceMonitor.enabled=true,replicaCount=2",
        ],
    );
    let applied = kubectl(
        &components,
        &kubeconfig,
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            "--field-manager=helm-test",
            "-f",
            "-",
        ],
        Some(&manifests),
    );
    for kind in [
        "serviceaccount/pgro",
        "clusterrole.rbac.authorization.k8s.io/pgro-operator",
        "configmap/pgro-config",
        "deployment.apps/pgro-operator",
        "service/pgro-metrics",
        "servicemonitor.monitoring.coreos.com/pgro-operator",
    ] {
        assert!(
            applied.contains(&format!("{kind} serverside-applied (server dry run)")),
            "{kind}: {applied}"
        );
    }
    // And the PrometheusRule of deploy/monitoring (namespaced pgro-system, as its header says to apply
    // it), against the same real CRD.
    kubectl(
        &components,
        &kubeconfig,
        &["apply", "--server-side", "-f", "-"],
        Some("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: pgro-system\n"),
    );
    let rule =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/monitoring/prometheusrule.yaml");
    let applied = kubectl(
        &components,
        &kubeconfig,
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            "-f",
            rule.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        applied.contains("serverside-applied (server dry run)"),
        "{applied}"
    );
    ns.delete().await.unwrap();
}
