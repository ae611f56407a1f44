//! `deploy/operator.yaml`: least-privilege RBAC and a locked-down operator pod (behaviour O3, O4).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use serde_json::Value;

const OPERATOR: &str = include_str!("../../../deploy/operator.yaml");

fn documents() -> Vec<Value> {
    OPERATOR
        .split("\n---\n")
        .map(|d| serde_yaml::from_str::<Value>(d).expect("YAML document"))
        .filter(|d| !d.is_null())
        .collect()
}

fn one<T: serde::de::DeserializeOwned>(kind: &str) -> T {
    let doc = documents()
        .into_iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("a {kind}"));
    serde_json::from_value(doc).unwrap_or_else(|e| panic!("{kind} is a valid object: {e}"))
}

fn grants(rules: &[PolicyRule], resource: &str, verb: &str) -> bool {
    rules.iter().any(|r| {
        r.resources
            .iter()
            .flatten()
            .any(|x| x == resource || x == "*")
            && r.verbs.iter().any(|v| v == verb || v == "*")
    })
}

#[test]
fn every_document_is_a_known_kind_in_pgro_system() {
    let kinds: Vec<String> = documents()
        .iter()
        .map(|d| d["kind"].as_str().expect("kind").to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "ConfigMap",
            "Deployment",
            "Service"
        ]
    );
    for d in documents().iter().filter(|d| {
        !["Namespace", "ClusterRole", "ClusterRoleBinding"]
            .contains(&d["kind"].as_str().unwrap_or(""))
    }) {
        assert_eq!(d["metadata"]["namespace"], "pgro-system", "{}", d["kind"]);
    }
}

#[test]
fn cluster_role_has_no_wildcards_exec_or_child_deletes() {
    let role: ClusterRole = one("ClusterRole");
    let rules = role.rules.expect("rules");
    for rule in &rules {
        for field in [
            &rule.verbs,
            rule.resources.as_ref().expect("resources"),
            rule.api_groups.as_ref().expect("groups"),
        ] {
            assert!(!field.iter().any(|x| x == "*"), "no wildcards: {rule:?}");
        }
    }
    assert!(!grants(&rules, "pods/exec", "create"), "no pods/exec");
    assert!(!grants(&rules, "pods/log", "get"), "no pods/log");
    for resource in [
        "secrets",
        "services",
        "persistentvolumeclaims",
        "deployments",
        "pods",
    ] {
        assert!(
            !grants(&rules, resource, "delete"),
            "{resource}: children go through the garbage collector"
        );
        assert!(
            !grants(&rules, resource, "update"),
            "{resource}: server-side apply patches, never replaces"
        );
    }
    assert!(
        !grants(&rules, "postgresphysicalreplicas", "patch"),
        "the operator never writes a replica spec"
    );
    assert!(grants(&rules, "postgresphysicalreplicas/status", "patch"));
    assert!(grants(&rules, "postgresphysicalrestores", "create"));
    assert!(
        !grants(&rules, "leases", "update"),
        "leases only in pgro-system"
    );
}

#[test]
fn every_rule_says_why() {
    let text = OPERATOR
        .split("kind: ClusterRole\n")
        .nth(1)
        .expect("cluster role");
    let rules = text.split("\n---\n").next().expect("document");
    let mut previous = "";
    for line in rules.lines() {
        if line.trim_start().starts_with("- apiGroups:") {
            assert!(
                previous.trim_start().starts_with('#'),
                "rule without a comment: {line}"
            );
        }
        previous = line;
    }
}

#[test]
fn leader_election_and_settings_are_namespaced() {
    let role: Role = one("Role");
    let rules = role.rules.expect("rules");
    assert!(grants(&rules, "leases", "update") && grants(&rules, "configmaps", "watch"));
    assert!(!grants(&rules, "configmaps", "patch"));
}

#[test]
fn operator_runs_non_root_read_only_without_capabilities() {
    let deployment: Deployment = one("Deployment");
    let pod = deployment
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod spec");
    let pod_sc = pod.security_context.expect("pod security context");
    assert_eq!(pod_sc.run_as_non_root, Some(true));
    assert!(pod_sc.run_as_user.is_some_and(|u| u != 0));
    let container = &pod.containers[0];
    let sc = container
        .security_context
        .as_ref()
        .expect("container security context");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_owned()])
    );
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    assert_eq!(
        probe_path(&container.liveness_probe).as_deref(),
        Some("/livez")
    );
    assert_eq!(
        probe_path(&container.readiness_probe).as_deref(),
        Some("/readyz")
    );
    assert_eq!(
        container.args.as_deref(),
        Some(&["operator".to_owned()][..])
    );
    assert_eq!(pod.service_account_name.as_deref(), Some("pgro"));
}
