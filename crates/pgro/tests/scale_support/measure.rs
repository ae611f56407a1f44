//! Measurements: the operator's requests from the apiserver audit log, metrics text, process RSS and CPU, load.

use super::*;

// ---------------------------------------------------------------------------------------------------------
// The operator's API requests (audit log) and metrics.

#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) t: f64,
    pub(crate) what: String,
}

#[derive(Debug, Default)]
pub(crate) struct AuditTail {
    pub(crate) offset: u64,
    pub(crate) partial: String,
    pub(crate) requests: Vec<Request>,
    pub(crate) conflicts: Vec<Request>,
    pub(crate) throttled: usize,
    pub(crate) errors: BTreeMap<u16, usize>,
}

impl AuditTail {
    pub(crate) fn read(&mut self, path: &std::path::Path) {
        use std::io::{Read as _, Seek as _};
        let Ok(mut file) = std::fs::File::open(path) else {
            return;
        };
        if file.seek(std::io::SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut text = String::new();
        let Ok(n) = file.read_to_string(&mut text) else {
            return;
        };
        self.offset += n as u64;
        let text = std::mem::take(&mut self.partial) + &text;
        let mut lines: Vec<&str> = text.split('\n').collect();
        self.partial = lines.pop().unwrap_or_default().to_owned();
        for line in lines {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if v["user"]["username"].as_str() != Some(OPERATOR_USER) {
                continue;
            }
            let t = v["requestReceivedTimestamp"]
                .as_str()
                .and_then(|s| s.parse::<jiff::Timestamp>().ok())
                .map_or(0.0, ts_secs);
            let verb = v["verb"].as_str().unwrap_or("?");
            let resource = v["objectRef"]["resource"].as_str().unwrap_or_else(|| {
                v["requestURI"]
                    .as_str()
                    .unwrap_or("?")
                    .split('?')
                    .next()
                    .unwrap_or("?")
            });
            let what = match v["objectRef"]["subresource"].as_str() {
                Some(sub) => format!("{verb} {resource}/{sub}"),
                None => format!("{verb} {resource}"),
            };
            // One event per request, at completion (the policy omits the other stages); timed by arrival.
            // A watch therefore counts when it ends.
            if !matches!(v["stage"].as_str(), Some("ResponseComplete" | "Panic")) {
                continue;
            }
            let code = v["responseStatus"]["code"].as_u64().unwrap_or(0);
            let code = u16::try_from(code).unwrap_or(0);
            if code == 409 {
                self.conflicts.push(Request {
                    t,
                    what: what.clone(),
                });
            } else if code == 429 {
                self.throttled += 1;
            }
            if code >= 400 {
                *self.errors.entry(code).or_default() += 1;
            }
            self.requests.push(Request { t, what });
        }
    }
}

/// `name{labels} value` lines of a Prometheus text page, summed per metric name + label text.
pub(crate) fn metric(text: &str, name: &str, labels: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (head, value) = l.rsplit_once(' ')?;
            let (metric_name, rest) = match head.find('{') {
                Some(i) => (&head[..i], &head[i..]),
                None => (head, ""),
            };
            (metric_name == name && rest.contains(labels)).then(|| value.parse::<f64>().ok())?
        })
        .reduce(|a, b| a + b)
}

/// `apiserver_request_total` summed by (verb, resource[/subresource]), all clients.
pub(crate) fn apiserver_requests(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |k: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let (verb, resource, sub) = (label("verb"), label("resource"), label("subresource"));
        let what = if sub.is_empty() {
            format!("{verb} {resource}")
        } else {
            format!("{verb} {resource}/{sub}")
        };
        *out.entry(what).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
    }
    out
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Sample {
    pub(crate) t: f64,
    pub(crate) rss_kib: Option<u64>,
    pub(crate) cpu_seconds: Option<f64>,
    pub(crate) reconciles_replica: Option<f64>,
    pub(crate) reconciles_restore: Option<f64>,
    pub(crate) gauge_queue: Option<f64>,
    pub(crate) gauge_in_progress: Option<f64>,
    pub(crate) replicas: usize,
    pub(crate) waiting: usize,
    pub(crate) in_progress: usize,
    pub(crate) ready: usize,
    /// `None` when the list failed or timed out (the sample does not count).
    pub(crate) positions: Option<PositionCheck>,
    pub(crate) load1: f64,
}

pub(crate) fn proc_rss_cpu(pid: u32) -> Option<(u64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    Some((rss, ticks / hz))
}

pub(crate) fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// The operator pod's name, main process and metrics address.
pub(crate) struct OperatorHandle {
    pub(crate) pid: Option<u32>,
    pub(crate) metrics: Option<pgro_testkit::Forward>,
}

pub(crate) async fn operator_handle(env: &TestEnv, client: &Client) -> OperatorHandle {
    let pods = operator_pods(client).await;
    let Some(pod) = pods.first() else {
        return OperatorHandle {
            pid: None,
            metrics: None,
        };
    };
    let name = pod.name_any();
    let pid = env
        .kubelet()
        .container_pids(OPERATOR_NS, &name)
        .first()
        .copied();
    let metrics = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        .and_then(|ip| {
            env.kubelet()
                .port_forward(SocketAddr::from((ip, 8080)))
                .ok()
        });
    OperatorHandle { pid, metrics }
}

#[test]
fn metric_lines_are_summed_by_label() {
    let text = "# HELP x\npgro_reconciles_total{controller=\"replica\"} 10\npgro_reconciles_total{controller=\"restore\"} 4\npgro_restore_queue_depth 3\n";
    assert_eq!(
        metric(text, "pgro_reconciles_total", "controller=\"replica\""),
        Some(10.0)
    );
    assert_eq!(metric(text, "pgro_restore_queue_depth", ""), Some(3.0));
    let api = "apiserver_request_total{code=\"200\",component=\"apiserver\",group=\"\",resource=\"secrets\",scope=\"resource\",subresource=\"\",verb=\"GET\",version=\"v1\"} 7\n";
    assert_eq!(apiserver_requests(api).get("GET secrets"), Some(&7.0));
}
