//! Helpers shared by the end-to-end tests that deploy ferrolb on the lab.
#![allow(dead_code)]

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
            annotations: Some(annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            selector: Some(BTreeMap::from([("app".to_string(), name.to_string())])),
            ports: Some(vec![ServicePort { port: 80, ..ServicePort::default() }]),
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
        assert!(Instant::now() < deadline, "service {name} did not get {count} addresses in {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Nodes (1-based) whose speaker announces `ip`, from their status APIs.
pub fn announcing_nodes(c: &Cluster, ip: IpAddr) -> Vec<usize> {
    (1..=c.lab.nodes().len())
        .filter(|&i| {
            c.get_json(c.speaker_http(i), "/api/v1/status").is_ok_and(|s| {
                s["announcements"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x["ip"].as_str() == Some(&ip.to_string())))
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
        assert!(Instant::now() < deadline, "{ip}: owners {owners:?} after {timeout:?}");
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
