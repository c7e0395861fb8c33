//! Helpers shared by the end-to-end tests that deploy ferrolb on the lab.
#![allow(dead_code)]

pub mod bgp;

use ferrolb_e2e::cluster::Cluster;
use ferrolb_e2e::fixtures::ingress_ips;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A LoadBalancer Service in `default` selecting `app: NAME`, port 80.
pub fn lb_service(name: &str, annotations: &[(&str, &str)]) -> Service {
    ferrolb_e2e::fixtures::lb_service(name, 80, annotations)
}

/// Creates a Service.
pub fn create_service(c: &Cluster, svc: &Service) {
    let api: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let svc = svc.clone();
    c.run(async move { api.create(&PostParams::default(), &svc).await })
        .expect("runtime")
        .expect("create service");
}

/// Waits until `name` has `count` ingress addresses; returns them.
pub fn wait_ips(c: &Cluster, name: &str, count: usize, timeout: Duration) -> Vec<IpAddr> {
    let api: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let deadline = Instant::now() + timeout;
    loop {
        let (api2, n) = (api.clone(), name.to_string());
        if let Ok(Ok(svc)) = c.run(async move { api2.get(&n).await }) {
            let ips = ingress_ips(&svc);
            if ips.len() == count {
                return ips;
            }
        }
        assert!(
            Instant::now() < deadline,
            "service {name} did not get {count} addresses in {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until exactly one node announces `ip`; returns it.
pub fn wait_single_owner(c: &Cluster, ip: IpAddr, timeout: Duration) -> usize {
    c.wait_single_announcer(ip, None, timeout)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Distinct MAC addresses in arping output (`… from MAC (IP) …`).
pub fn arping_macs(out: &str) -> Vec<String> {
    let mut macs: Vec<String> = out
        .lines()
        .filter_map(|l| {
            let rest = l.split(" from ").nth(1)?;
            Some(rest.split_whitespace().next()?.to_lowercase())
        })
        .collect();
    macs.sort();
    macs.dedup();
    macs
}

/// Creates or replaces the EndpointSlice of Service `svc` (`default` namespace) with one
/// endpoint per `(node name, ready)`; there is no kube-controller-manager in the lab.
pub fn set_endpoints(c: &Cluster, svc: &str, endpoints: &[(&str, bool)]) {
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use kube::api::{Patch, PatchParams};
    let eps: Vec<serde_json::Value> = endpoints
        .iter()
        .enumerate()
        .map(|(i, (node, ready))| {
            serde_json::json!({
                "addresses": [format!("10.244.{}.{}", i + 1, 10)],
                "nodeName": node,
                "conditions": {"ready": ready, "serving": ready, "terminating": false},
            })
        })
        .collect();
    let name = format!("{svc}-slice");
    let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": svc},
        },
        "addressType": "IPv4",
        "endpoints": eps,
        "ports": [{"port": 80, "protocol": "TCP"}],
    }))
    .expect("endpointslice");
    let api: Api<EndpointSlice> = Api::namespaced(c.client.clone(), "default");
    c.run(async move {
        api.patch(
            &name,
            &PatchParams::apply("l2-e2e").force(),
            &Patch::Apply(&slice),
        )
        .await
    })
    .expect("runtime")
    .expect("apply endpointslice");
}

/// Sets (Some) or removes (None) a label on Node `node`.
pub fn label_node(c: &Cluster, node: &str, key: &str, value: Option<&str>) {
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Patch, PatchParams};
    let api: Api<Node> = Api::all(c.client.clone());
    let patch = serde_json::json!({"metadata": {"labels": {key: value}}});
    let node = node.to_string();
    c.run(async move {
        api.patch(&node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
    })
    .expect("runtime")
    .expect("label node");
}

/// Creates `count` IPv4 LoadBalancer Services `PREFIX-0…`, 50 at a time.
pub fn create_services(c: &Cluster, prefix: &str, count: usize) {
    let api: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    for chunk in names.chunks(50) {
        let svcs: Vec<Service> = chunk.iter().map(|n| lb_service(n, &[])).collect();
        let api = api.clone();
        c.run(async move {
            futures::future::try_join_all(svcs.iter().map(|s| {
                let api = api.clone();
                async move { api.create(&PostParams::default(), s).await }
            }))
            .await
        })
        .expect("runtime")
        .expect("create services");
    }
}

/// The MAC of node `i`'s LAN interface, lower case.
pub fn node_mac(c: &Cluster, i: usize) -> String {
    let h = c.lab.node(i);
    h.mac(h.iface()).expect("mac").to_lowercase()
}

/// MACs answering ARP for `ip` from the LAN client (`count` requests).
pub fn arp_answerers(c: &Cluster, ip: std::net::Ipv4Addr, count: u32) -> Vec<String> {
    let client = c.lab.lan_client();
    let out = client
        .ns()
        .arping(client.iface(), ip, count)
        .expect("arping");
    arping_macs(&out.stdout)
}

/// `curl http://IP/` from the LAN client: the echo server's answer `<node> <client ip>`.
pub fn curl_echo(c: &Cluster, ip: IpAddr) -> Option<String> {
    let out = c
        .lab
        .lan_client()
        .ns()
        .curl(ip, 80, "/", Duration::from_secs(2))
        .expect("curl");
    out.success().then(|| out.stdout.trim().to_string())
}

/// Polls `f` every 50 ms until it returns Some, panicking with `what` after `timeout`.
pub fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
