//! Container environment: service variables, `envFrom`, then `env` in order, with `$(VAR)` expansion as
//! the kubelet does it (`k8s.io/kubernetes/third_party/forked/golang/expansion`): a defined `$(VAR)` is
//! replaced, an undefined one is left as written, and `$$` escapes a `$`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::{Api, Client};

/// Why the environment could not be built: the container waits with `CreateContainerConfigError`.
#[derive(Debug)]
pub(crate) struct ConfigError(pub String);

/// Reads ConfigMaps and Secrets once per pod start.
pub(crate) struct Lookups<'a> {
    pub client: &'a Client,
    pub namespace: &'a str,
    pub secrets: BTreeMap<String, Option<Secret>>,
    pub config_maps: BTreeMap<String, Option<ConfigMap>>,
}

impl<'a> Lookups<'a> {
    pub(crate) fn new(client: &'a Client, namespace: &'a str) -> Self {
        Self {
            client,
            namespace,
            secrets: BTreeMap::new(),
            config_maps: BTreeMap::new(),
        }
    }

    pub(crate) async fn secret(&mut self, name: &str) -> Result<Option<&Secret>, ConfigError> {
        if !self.secrets.contains_key(name) {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), self.namespace);
            let found = api
                .get_opt(name)
                .await
                .map_err(|e| ConfigError(format!("reading secret {name:?}: {e}")))?;
            self.secrets.insert(name.to_owned(), found);
        }
        Ok(self.secrets.get(name).and_then(Option::as_ref))
    }

    pub(crate) async fn config_map(
        &mut self,
        name: &str,
    ) -> Result<Option<&ConfigMap>, ConfigError> {
        if !self.config_maps.contains_key(name) {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), self.namespace);
            let found = api
                .get_opt(name)
                .await
                .map_err(|e| ConfigError(format!("reading configmap {name:?}: {e}")))?;
            self.config_maps.insert(name.to_owned(), found);
        }
        Ok(self.config_maps.get(name).and_then(Option::as_ref))
    }

    /// All keys of a secret as UTF-8 strings (lossy).
    pub(crate) async fn secret_data(
        &mut self,
        name: &str,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, ConfigError> {
        Ok(self.secret(name).await?.map(|secret| {
            let mut data: BTreeMap<String, Vec<u8>> = secret
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect();
            for (k, v) in secret.string_data.iter().flatten() {
                data.insert(k.clone(), v.clone().into_bytes());
            }
            data
        }))
    }

    /// All keys of a configmap (`data` and `binaryData`).
    pub(crate) async fn config_map_data(
        &mut self,
        name: &str,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, ConfigError> {
        Ok(self.config_map(name).await?.map(|cm| {
            let mut data: BTreeMap<String, Vec<u8>> = cm
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                .collect();
            for (k, v) in cm.binary_data.iter().flatten() {
                data.insert(k.clone(), v.0.clone());
            }
            data
        }))
    }
}

/// Values the downward API exposes.
#[derive(Debug, Clone)]
pub(crate) struct PodFacts {
    pub pod_ip: String,
    pub host_ip: String,
    pub node_name: String,
}

/// Resolves a `fieldRef` path (`metadata.name`, `status.podIP`, `metadata.labels['x']`, …).
pub(crate) fn field_ref(pod: &Pod, facts: &PodFacts, path: &str) -> Result<String, ConfigError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let keyed = |prefix: &str, map: Option<&BTreeMap<String, String>>| -> Option<String> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.and_then(|m| m.get(key)).cloned().unwrap_or_default())
    };
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => facts.node_name.clone(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => facts.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.clone(),
        _ => keyed("metadata.labels['", meta.labels.as_ref())
            .or_else(|| keyed("metadata.annotations['", meta.annotations.as_ref()))
            .ok_or_else(|| ConfigError(format!("unsupported fieldRef {path:?}")))?,
    };
    Ok(value)
}

/// Expands `$(VAR)` references in `input` from `vars`.
pub(crate) fn expand(input: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match vars.get(name) {
                Some(value) => out.push_str(value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The container's environment, in the kubelet's precedence order (later entries win).
pub(crate) async fn resolve(
    lookups: &mut Lookups<'_>,
    pod: &Pod,
    container: &Container,
    facts: &PodFacts,
    base: &[(String, String)],
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut vars: BTreeMap<String, String> = base.iter().cloned().collect();
    let mut order: Vec<String> = base.iter().map(|(k, _)| k.clone()).collect();
    let mut set = |vars: &mut BTreeMap<String, String>, key: String, value: String| {
        if !vars.contains_key(&key) {
            order.push(key.clone());
        }
        vars.insert(key, value);
    };
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        let data = if let Some(cm) = &source.config_map_ref {
            let data = lookups.config_map_data(&cm.name).await?;
            match (data, cm.optional.unwrap_or(false)) {
                (Some(data), _) => data,
                (None, true) => BTreeMap::new(),
                (None, false) => {
                    return Err(ConfigError(format!("configmap {:?} not found", cm.name)));
                }
            }
        } else if let Some(secret) = &source.secret_ref {
            let data = lookups.secret_data(&secret.name).await?;
            match (data, secret.optional.unwrap_or(false)) {
                (Some(data), _) => data,
                (None, true) => BTreeMap::new(),
                (None, false) => {
                    return Err(ConfigError(format!("secret {:?} not found", secret.name)));
                }
            }
        } else {
            BTreeMap::new()
        };
        for (key, value) in data {
            set(
                &mut vars,
                format!("{prefix}{key}"),
                String::from_utf8_lossy(&value).into_owned(),
            );
        }
    }
    for env in container.env.iter().flatten() {
        let value = if let Some(value) = &env.value {
            expand(value, &vars)
        } else if let Some(from) = &env.value_from {
            if let Some(field) = &from.field_ref {
                field_ref(pod, facts, &field.field_path)?
            } else if let Some(key_ref) = &from.secret_key_ref {
                let data = lookups.secret_data(&key_ref.name).await?;
                match key_value(
                    "secret",
                    data,
                    &key_ref.name,
                    &key_ref.key,
                    key_ref.optional,
                )? {
                    Some(value) => value,
                    None => continue,
                }
            } else if let Some(key_ref) = &from.config_map_key_ref {
                let data = lookups.config_map_data(&key_ref.name).await?;
                match key_value(
                    "configmap",
                    data,
                    &key_ref.name,
                    &key_ref.key,
                    key_ref.optional,
                )? {
                    Some(value) => value,
                    None => continue,
                }
            } else if let Some(resource) = &from.resource_field_ref {
                resource_value(container, &resource.resource)
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        set(&mut vars, env.name.clone(), value);
    }
    Ok(order
        .into_iter()
        .filter_map(|k| vars.get(&k).map(|v| (k.clone(), v.clone())))
        .collect())
}

/// The value of `key` in a Secret's or ConfigMap's data; `None` when it is missing and the reference is
/// optional (the variable is then left unset, as the kubelet does).
fn key_value(
    kind: &str,
    data: Option<BTreeMap<String, Vec<u8>>>,
    name: &str,
    key: &str,
    optional: Option<bool>,
) -> Result<Option<String>, ConfigError> {
    match (
        data.and_then(|d| d.get(key).cloned()),
        optional.unwrap_or(false),
    ) {
        (Some(value), _) => Ok(Some(String::from_utf8_lossy(&value).into_owned())),
        (None, true) => Ok(None),
        (None, false) => Err(ConfigError(format!(
            "{kind} {name:?} or its key {key:?} not found"
        ))),
    }
}

/// `resourceFieldRef` (divisor 1): the limit, else the request, else 0. Memory in bytes, CPU rounded up
/// to whole cores, as the kubelet reports them.
fn resource_value(container: &Container, resource: &str) -> String {
    let (kind, name) = resource.split_once('.').unwrap_or(("limits", resource));
    let resources = container.resources.as_ref();
    let pick = |map: Option<
        &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >| { map.and_then(|m| m.get(name)).map(|q| q.0.clone()) };
    let raw = match kind {
        "requests" => pick(resources.and_then(|r| r.requests.as_ref())),
        _ => pick(resources.and_then(|r| r.limits.as_ref()))
            .or_else(|| pick(resources.and_then(|r| r.requests.as_ref()))),
    };
    let Some(raw) = raw else { return "0".into() };
    let value = parse_quantity(&raw).unwrap_or(0.0);
    if name == "cpu" {
        value.ceil().to_string()
    } else {
        (value as u64).to_string()
    }
}

fn parse_quantity(raw: &str) -> Option<f64> {
    let split = raw
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(raw.len());
    let (number, suffix) = raw.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        _ => return None,
    };
    Some(number * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expand_replaces_defined_keeps_undefined_and_unescapes() {
        let vars: BTreeMap<String, String> = [("A".to_owned(), "1".to_owned())].into();
        assert_eq!(expand("x$(A)y$(B)z$$(A)$", &vars), "x1y$(B)z$(A)$");
    }

    #[test]
    fn quantities_parse_binary_and_decimal_suffixes() {
        assert_eq!(parse_quantity("512Mi"), Some(512.0 * 1024.0 * 1024.0));
        assert_eq!(parse_quantity("250m"), Some(0.25));
    }
}
