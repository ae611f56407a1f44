//! A userspace kube-proxy and a cluster DNS for the pod network, both living in the node namespace.
//!
//! * Every ClusterIP Service's address is added to the node namespace's loopback, and a TCP listener per
//!   Service port forwards each connection to a ready endpoint from its EndpointSlices (chosen at
//!   random). Endpoints on 127.0.0.1 (the `kubernetes` Service: the apiserver advertises loopback) are
//!   reached in the host namespace. Pods reach ClusterIPs through their default route to the node
//!   namespace; the harness reaches them with `Kubelet::connect`.
//! * A DNS responder on `<gateway>:53` answers A queries for `<svc>.<ns>.svc[.cluster.local]` (ClusterIP,
//!   or the ready endpoint addresses of a headless Service); pods get a matching `/etc/resolv.conf`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, ResourceExt as _};
use nix::sched::CloneFlags;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::network::{NodeNetwork, in_namespace, pipe};

/// The cluster domain, as in a default cluster.
pub(crate) const CLUSTER_DOMAIN: &str = "cluster.local";

/// The Service and EndpointSlice caches shared by the proxy and the DNS responder.
#[derive(Clone)]
pub(crate) struct Catalog {
    services: Store<Service>,
    slices: Store<EndpointSlice>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").finish_non_exhaustive()
    }
}

impl Catalog {
    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Service>> {
        self.services
            .state()
            .into_iter()
            .find(|s| s.namespace().as_deref() == Some(namespace) && s.name_any() == name)
    }

    /// Ready endpoint addresses of a Service, with the port for `port_name`.
    fn endpoints(
        &self,
        namespace: &str,
        service: &str,
        port_name: Option<&str>,
    ) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for slice in self.slices.state() {
            let owned = slice.namespace().as_deref() == Some(namespace)
                && slice
                    .labels()
                    .get("kubernetes.io/service-name")
                    .map(String::as_str)
                    == Some(service);
            if !owned {
                continue;
            }
            let port = slice
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref().unwrap_or("") == port_name.unwrap_or(""))
                .and_then(|p| p.port);
            for endpoint in &slice.endpoints {
                if endpoint.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                    continue;
                }
                for address in &endpoint.addresses {
                    if let Ok(ip) = address.parse::<IpAddr>() {
                        out.push(SocketAddr::new(ip, port.unwrap_or(0) as u16));
                    }
                }
            }
        }
        out
    }
}

/// Starts watching Services and EndpointSlices; returns the catalog and a notifier for changes.
pub(crate) fn watch(client: &Client) -> (Catalog, Arc<Notify>, Vec<JoinHandle<()>>) {
    let changed = Arc::new(Notify::new());
    let (services, service_writer) = reflector::store::<Service>();
    let (slices, slice_writer) = reflector::store::<EndpointSlice>();
    let service_stream = reflector::reflector(
        service_writer,
        watcher::watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .touched_objects();
    let slice_stream = reflector::reflector(
        slice_writer,
        watcher::watcher(
            Api::<EndpointSlice>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .touched_objects();
    let notify = changed.clone();
    let a = tokio::spawn(async move {
        let mut stream = std::pin::pin!(service_stream);
        while stream.next().await.is_some() {
            notify.notify_one();
        }
    });
    let b = tokio::spawn(async move {
        let mut stream = std::pin::pin!(slice_stream);
        while stream.next().await.is_some() {}
    });
    (Catalog { services, slices }, changed, vec![a, b])
}

impl Catalog {
    /// The Service that owns `ip:port` now, with the name of that port.
    fn owner(&self, ip: Ipv4Addr, port: u16) -> Option<(String, String, Option<String>)> {
        self.services.state().into_iter().find_map(|service| {
            let spec = service.spec.as_ref()?;
            if spec.cluster_ip.as_deref()?.parse::<Ipv4Addr>().ok()? != ip {
                return None;
            }
            let p = spec.ports.iter().flatten().find(|p| {
                p.port as u16 == port && p.protocol.as_deref().unwrap_or("TCP") == "TCP"
            })?;
            Some((
                service.namespace().unwrap_or_default(),
                service.name_any(),
                p.name.clone(),
            ))
        })
    }
}

/// The ClusterIP ports every Service asks for.
fn desired(catalog: &Catalog) -> BTreeSet<(Ipv4Addr, u16)> {
    let mut out = BTreeSet::new();
    for service in catalog.services.state() {
        let spec = service.spec.clone().unwrap_or_default();
        let Some(ip) = spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        for port in spec.ports.iter().flatten() {
            if port.protocol.as_deref().unwrap_or("TCP") == "TCP" {
                out.insert((ip, port.port as u16));
            }
        }
    }
    out
}

/// Keeps one listener per ClusterIP Service port.
///
/// A listener looks up the Service owning its address on every connection rather than remembering the
/// one it was opened for: the apiserver hands a deleted Service's ClusterIP to the next Service, and
/// both events can arrive between two passes here (the address never leaves the wanted set), so a
/// remembered name would send the new Service's clients to the old one's pods.
pub(crate) async fn proxy(network: Arc<NodeNetwork>, catalog: Catalog, changed: Arc<Notify>) {
    let mut listeners: BTreeMap<(Ipv4Addr, u16), JoinHandle<()>> = BTreeMap::new();
    let mut addresses: BTreeSet<Ipv4Addr> = BTreeSet::new();
    loop {
        let desired = desired(&catalog);
        listeners.retain(|key, task| {
            let keep = desired.contains(key);
            if !keep {
                task.abort();
            }
            keep
        });
        let wanted_ips: BTreeSet<Ipv4Addr> = desired.iter().map(|(ip, _)| *ip).collect();
        for ip in wanted_ips
            .difference(&addresses)
            .copied()
            .collect::<Vec<_>>()
        {
            if network
                .ip(&["addr", "add", &format!("{ip}/32"), "dev", "lo"])
                .await
                .is_ok()
            {
                addresses.insert(ip);
            }
        }
        for ip in addresses
            .difference(&wanted_ips)
            .copied()
            .collect::<Vec<_>>()
        {
            let _ = network
                .ip(&["addr", "del", &format!("{ip}/32"), "dev", "lo"])
                .await;
            addresses.remove(&ip);
        }
        for key in desired {
            if listeners.contains_key(&key) || !addresses.contains(&key.0) {
                continue;
            }
            let Ok(listener) = network.listen_std(SocketAddr::V4(SocketAddrV4::new(key.0, key.1)))
            else {
                continue;
            };
            let (network, catalog) = (network.clone(), catalog.clone());
            listeners.insert(
                key,
                tokio::spawn(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        return;
                    };
                    while let Ok((inbound, _)) = listener.accept().await {
                        let endpoints = catalog
                            .owner(key.0, key.1)
                            .map(|(ns, name, port)| catalog.endpoints(&ns, &name, port.as_deref()))
                            .unwrap_or_default();
                        if endpoints.is_empty() {
                            continue; // dropping the connection: like a Service without endpoints
                        }
                        let target = endpoints[fastrand::usize(..endpoints.len())];
                        let network = network.clone();
                        tokio::spawn(async move {
                            let outbound = if target.ip().is_loopback() {
                                TcpStream::connect(target).await
                            } else {
                                network.connect(target).await
                            };
                            if let Ok(outbound) = outbound {
                                pipe(inbound, outbound).await;
                            }
                        });
                    }
                }),
            );
        }
        tokio::select! {
            () = changed.notified() => {}
            () = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
        }
    }
}

/// Answers DNS queries on `<gateway>:53` inside the node namespace.
pub(crate) async fn dns(network: Arc<NodeNetwork>, catalog: Catalog) {
    let addr = SocketAddr::V4(SocketAddrV4::new(network.gateway(), 53));
    let socket = match in_namespace(network.netns(), CloneFlags::CLONE_NEWNET, || {
        let socket = std::net::UdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        Ok(socket)
    }) {
        Ok(socket) => socket,
        Err(error) => {
            tracing::warn!(error = %error, "cluster DNS cannot bind");
            return;
        }
    };
    let Ok(socket) = UdpSocket::from_std(socket) else {
        return;
    };
    let mut buf = [0u8; 512];
    while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
        if let Some(reply) = answer(&buf[..n], |name| resolve(&catalog, name)) {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

/// `None`: not a cluster name (NXDOMAIN). `Some(addresses)`: known (possibly no A records).
fn resolve(catalog: &Catalog, name: &str) -> Option<Vec<Ipv4Addr>> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let short = name
        .strip_suffix(&format!(".{CLUSTER_DOMAIN}"))
        .unwrap_or(&name);
    let mut parts = short.split('.');
    let (service, namespace, svc, rest) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next());
    if svc != "svc" || rest.is_some() {
        return None;
    }
    let found = catalog.service(namespace, service)?;
    match found.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) {
        Some("None") | None => Some(
            catalog
                .endpoints(namespace, service, None)
                .into_iter()
                .filter_map(|a| match a.ip() {
                    IpAddr::V4(ip) => Some(ip),
                    IpAddr::V6(_) => None,
                })
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        ),
        Some(ip) => Some(ip.parse().ok().into_iter().collect()),
    }
}

/// Builds the reply to one DNS query (RFC 1035 §4.1): A records for known names, an empty answer for
/// other types of known names, NXDOMAIN otherwise.
fn answer(query: &[u8], lookup: impl Fn(&str) -> Option<Vec<Ipv4Addr>>) -> Option<Vec<u8>> {
    if query.len() < 12 || u16::from_be_bytes([query[4], query[5]]) != 1 {
        return None;
    }
    let mut labels = Vec::new();
    let mut pos = 12;
    loop {
        let len = *query.get(pos)? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None; // compression pointers never appear in a question we accept
        }
        labels.push(String::from_utf8_lossy(query.get(pos..pos + len)?).into_owned());
        pos += len;
    }
    let qtype = u16::from_be_bytes([*query.get(pos)?, *query.get(pos + 1)?]);
    let question_end = pos + 4;
    query.get(..question_end)?;
    let found = lookup(&labels.join("."));
    let records: Vec<Ipv4Addr> = match (&found, qtype) {
        (Some(ips), 1) => ips.clone(),
        _ => Vec::new(),
    };
    let rcode: u16 = if found.is_some() { 0 } else { 3 };
    let mut reply = Vec::with_capacity(question_end + records.len() * 16);
    reply.extend_from_slice(&query[..2]);
    let recursion_desired = u16::from_be_bytes([query[2], query[3]]) & 0x0100;
    reply.extend_from_slice(&(0x8400 | 0x0080 | recursion_desired | rcode).to_be_bytes());
    reply.extend_from_slice(&1u16.to_be_bytes());
    reply.extend_from_slice(&(records.len() as u16).to_be_bytes());
    reply.extend_from_slice(&[0, 0, 0, 0]);
    reply.extend_from_slice(&query[12..question_end]);
    for ip in records {
        reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4]);
        reply.extend_from_slice(&ip.octets());
    }
    Some(reply)
}

/// `/etc/resolv.conf` for a pod in `namespace` (dnsPolicy ClusterFirst).
pub(crate) fn resolv_conf(gateway: Ipv4Addr, namespace: &str) -> String {
    format!(
        "nameserver {gateway}\nsearch {namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}\noptions ndots:5\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    #[test]
    fn dns_answers_a_records_for_known_names_and_nxdomain_otherwise() {
        let lookup = |name: &str| {
            (name == "pg.t-1.svc.cluster.local").then(|| vec![Ipv4Addr::new(10, 0, 0, 7)])
        };
        let reply = answer(&query("pg.t-1.svc.cluster.local", 1), lookup).expect("reply");
        assert_eq!(&reply[..2], &[0x12, 0x34]);
        assert_eq!(reply[3] & 0x0f, 0, "NOERROR");
        assert_eq!(u16::from_be_bytes([reply[6], reply[7]]), 1, "one answer");
        assert_eq!(&reply[reply.len() - 4..], &[10, 0, 0, 7]);
        let aaaa = answer(&query("pg.t-1.svc.cluster.local", 28), lookup).expect("reply");
        assert_eq!(
            (aaaa[3] & 0x0f, u16::from_be_bytes([aaaa[6], aaaa[7]])),
            (0, 0)
        );
        let missing = answer(&query("example.com", 1), lookup).expect("reply");
        assert_eq!(missing[3] & 0x0f, 3, "NXDOMAIN");
    }
}
