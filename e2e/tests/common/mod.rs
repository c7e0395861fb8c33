//! Helpers shared by the end-to-end tests that deploy ferrolb on the lab.
#![allow(dead_code)]

pub mod bgp;

use ferrolb_e2e::cluster::Cluster;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use kube::api::{Api, ObjectMeta, PostParams};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A LoadBalancer Service in `default` selecting `app: NAME`, port 80.
pub fn lb_service(name: &str, annotations: &[(&str, &str)]) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            selector: Some(BTreeMap::from([("app".to_string(), name.to_string())])),
            ports: Some(vec![ServicePort {
                port: 80,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
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
            let ips: Vec<IpAddr> = svc
                .status
                .and_then(|s| s.load_balancer)
                .and_then(|l| l.ingress)
                .unwrap_or_default()
                .iter()
                .filter_map(|i| i.ip.as_deref()?.parse().ok())
                .collect();
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

/// Nodes (1-based) whose speaker announces `ip`, from their status APIs.
pub fn announcing_nodes(c: &Cluster, ip: IpAddr) -> Vec<usize> {
    (1..=c.lab.nodes().len())
        .filter(|&i| {
            c.get_json(c.speaker_http(i), "/api/v1/status")
                .is_ok_and(|s| {
                    s["announcements"].as_array().is_some_and(|a| {
                        a.iter().any(|x| x["ip"].as_str() == Some(&ip.to_string()))
                    })
                })
        })
        .collect()
}

/// Waits until exactly one node announces `ip`; returns it.
pub fn wait_single_owner(c: &Cluster, ip: IpAddr, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let owners = announcing_nodes(c, ip);
        if owners.len() == 1 {
            return owners[0];
        }
        assert!(
            Instant::now() < deadline,
            "{ip}: owners {owners:?} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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
