//! Hostile pools and Services at the allocator: sizes no real cluster has and annotations
//! written to hurt. Each gets an allocation or a short error naming the field; nothing of the
//! rest of the configuration stops working.

use ferrolb_config::{Config, Inputs, IpFamily};
use ferrolb_controller::allocator::{
    Allocator, MAX_QUOTED_LEN, Protocol, RequestError, ServicePort, ServiceRequest,
};
use ferrolb_controller::service::to_request;
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;
use std::net::IpAddr;

const MIB: usize = 1 << 20;

fn pool(name: &str, addresses: Vec<String>) -> ferrolb_api::IPAddressPool {
    ferrolb_api::IPAddressPool {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some("ferrolb-system".to_string()),
            ..ObjectMeta::default()
        },
        spec: ferrolb_api::IPAddressPoolSpec {
            addresses,
            auto_assign: true,
            ..Default::default()
        },
        status: None,
    }
}

fn allocator(pools: Vec<ferrolb_api::IPAddressPool>) -> Allocator {
    let report = Config::build_report(&Inputs {
        pools,
        ..Inputs::default()
    });
    Allocator::new(report.config.expect("valid pools"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn request(name: &str, pool: &str, families: &[IpFamily]) -> ServiceRequest {
    let mut req = ServiceRequest::new("ns", name);
    req.requested_pool = Some(ferrolb_controller::allocator::Requested {
        value: pool.to_string(),
        source: "ferrolb.io/address-pool".to_string(),
    });
    req.ip_families = families.to_vec();
    req
}

#[test]
fn all_of_ipv6_its_halves_and_all_of_ipv4_allocate_without_enumerating() {
    let mut a = allocator(vec![
        pool("v6-all", vec!["::/0".into()]),
        pool("v4-all", vec!["0.0.0.0-255.255.255.255".into()]),
    ]);
    let first = a.allocate(&request("a", "v6-all", &[IpFamily::V6]));
    assert_eq!(first.ips, vec![ip("::")], "{:?}", first.error);
    let second = a.allocate(&request("b", "v6-all", &[IpFamily::V6]));
    assert_eq!(second.ips, vec![ip("::1")], "{:?}", second.error);
    let v4 = a.allocate(&request("d", "v4-all", &[IpFamily::V4]));
    assert_eq!(v4.ips, vec![ip("0.0.0.0")], "{:?}", v4.error);

    let status: BTreeMap<String, ferrolb_api::status::PoolUsage> = a
        .usage_status()
        .into_iter()
        .map(|u| (u.name.clone(), u))
        .collect();
    assert_eq!(status["v6-all"].assigned_ipv6, 2);
    assert_eq!(status["v6-all"].available_ipv6, u64::MAX);
    assert_eq!(status["v4-all"].assigned_ipv4, 1);
    assert_eq!(status["v4-all"].available_ipv4, (1 << 32) - 1);

    let mut halves = allocator(vec![
        pool("v6-low", vec!["::/1".into()]),
        pool("v6-high", vec!["8000::/1".into()]),
    ]);
    let high = halves.allocate(&request("c", "v6-high", &[IpFamily::V6]));
    assert_eq!(high.ips, vec![ip("8000::")], "{:?}", high.error);
    let low = halves.allocate(&request("e", "v6-low", &[IpFamily::V6]));
    assert_eq!(low.ips, vec![ip("::")], "{:?}", low.error);
}

#[test]
fn a_pool_of_a_million_ranges_allocates_in_order_and_others_still_allocate() {
    let entries: Vec<String> = (0u32..1_000_000)
        .map(|i| {
            let [_, b, c, d] = i.to_be_bytes();
            format!("10.{b}.{c}.{d}/32")
        })
        .collect();
    let mut a = allocator(vec![
        pool("million", entries),
        pool("small", vec!["192.168.10.0/30".into()]),
    ]);
    for (i, want) in ["10.0.0.0", "10.0.0.1", "10.0.0.2"].iter().enumerate() {
        let out = a.allocate(&request(&format!("m{i}"), "million", &[IpFamily::V4]));
        assert_eq!(out.ips, vec![ip(want)], "{:?}", out.error);
    }
    let other = a.allocate(&request("s", "small", &[IpFamily::V4]));
    assert_eq!(other.ips, vec![ip("192.168.10.0")], "{:?}", other.error);
    let usage = a.pool_usage("million").expect("usage");
    assert_eq!(usage.v4.assigned, 3);
}

fn ports(range: std::ops::Range<u16>) -> Vec<ServicePort> {
    range
        .map(|port| ServicePort {
            port,
            protocol: Protocol::Tcp,
        })
        .collect()
}

fn sharing(name: &str, ports: Vec<ServicePort>) -> ServiceRequest {
    let mut req = request(name, "small", &[IpFamily::V4]);
    req.sharing_key = Some(ferrolb_controller::allocator::Requested {
        value: "shared".to_string(),
        source: "ferrolb.io/allow-shared-ip".to_string(),
    });
    req.requested_ips = Some(ferrolb_controller::allocator::Requested {
        value: vec![ip("192.168.10.1")],
        source: "ferrolb.io/loadBalancerIPs".to_string(),
    });
    req.ports = ports;
    req
}

#[test]
fn services_with_thousands_of_ports_share_and_collide_with_a_short_message() {
    let mut a = allocator(vec![pool("small", vec!["192.168.10.0/30".into()])]);
    let first = a.allocate(&sharing("first", ports(1..30_001)));
    assert_eq!(first.ips, vec![ip("192.168.10.1")], "{:?}", first.error);
    let second = a.allocate(&sharing("second", ports(30_001..60_001)));
    assert_eq!(second.ips, vec![ip("192.168.10.1")], "{:?}", second.error);
    let third = a.allocate(&sharing("third", ports(20_001..40_001)));
    assert!(third.ips.is_empty());
    let message = third.error.expect("ports collide").to_string();
    assert!(message.contains("TCP/20001, TCP/20002"), "{message}");
    assert!(
        message
            .starts_with("192.168.10.1 is used by ns/first and cannot be shared: ports TCP/20001,"),
        "{message}"
    );
    assert!(
        message.ends_with("TCP/20010 and 9990 more collide"),
        "{message}"
    );
    assert!(message.len() < 1024, "{} bytes", message.len());
}

fn service(annotations: &[(&str, String)], load_balancer_ip: Option<&str>) -> Service {
    Service {
        metadata: ObjectMeta {
            namespace: Some("ns".to_string()),
            name: Some("hostile".to_string()),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".to_string()),
            load_balancer_ip: load_balancer_ip.map(str::to_string),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn rejection(annotations: &[(&str, String)]) -> String {
    let err: RequestError = to_request(&service(annotations, None), &Default::default())
        .expect_err("hostile annotation rejected");
    err.to_string()
}

#[test]
fn a_mebibyte_of_load_balancer_ips_is_named_and_quoted_short() {
    for key in ["ferrolb.io/loadBalancerIPs", "metallb.io/loadBalancerIPs"] {
        let message = rejection(&[(key, "x".repeat(MIB))]);
        let quoted = format!("\"{}…\"", "x".repeat(MAX_QUOTED_LEN));
        assert_eq!(
            message,
            format!(
                "{key}: {quoted} is not an IP address; expected up to one IPv4 and one IPv6 \
                 address separated by a comma"
            )
        );
    }
    // A mebibyte of commas after a good address stops at the first empty entry.
    let message = rejection(&[(
        "metallb.io/loadBalancerIPs",
        format!("10.200.0.1{}", ",".repeat(MIB)),
    )]);
    assert!(
        message.starts_with("metallb.io/loadBalancerIPs: \"\" is not an IP address"),
        "{message}"
    );
}

#[test]
fn a_mebibyte_of_pool_name_or_sharing_key_is_refused_by_length() {
    assert_eq!(
        rejection(&[("metallb.io/address-pool", "p".repeat(MIB))]),
        format!(
            "annotation metallb.io/address-pool is {MIB} bytes long; expected the name of a pool \
             (at most 253 characters)"
        )
    );
    assert_eq!(
        rejection(&[("ferrolb.io/allow-shared-ip", "k".repeat(MIB))]),
        format!(
            "annotation ferrolb.io/allow-shared-ip is {MIB} bytes long; a sharing key has at most \
             1024 bytes"
        )
    );
}

/// Annotations, `spec.loadBalancerIP`, and the whole message expected.
type MalformedCase = (
    Vec<(&'static str, String)>,
    Option<&'static str>,
    &'static str,
);

#[test]
fn malformed_annotations_are_named_and_other_services_still_allocate() {
    let cases: Vec<MalformedCase> = vec![
        (
            vec![("metallb.io/loadBalancerIPs", "10.200.0.1,10.200.0.2".into())],
            None,
            "metallb.io/loadBalancerIPs: 10.200.0.1 and 10.200.0.2 are both IPv4; at most one \
             address per family",
        ),
        (
            vec![("metallb.io/loadBalancerIPs", "10.200.0.1/32".into())],
            None,
            "metallb.io/loadBalancerIPs: \"10.200.0.1/32\" is not an IP address; expected up to \
             one IPv4 and one IPv6 address separated by a comma",
        ),
        (
            vec![("ferrolb.io/loadBalancerIPs", "10.200.0.1".into())],
            Some("10.200.0.2"),
            "annotation ferrolb.io/loadBalancerIPs and spec.loadBalancerIP are both set; use only \
             ferrolb.io/loadBalancerIPs",
        ),
        (
            vec![("metallb.universe.tf/address-pool", "  ".into())],
            None,
            "annotation metallb.universe.tf/address-pool is empty; expected the name of a pool",
        ),
    ];
    for (annotations, spec_ip, want) in cases {
        let err = to_request(&service(&annotations, spec_ip), &Default::default())
            .expect_err("malformed annotation rejected");
        assert_eq!(err.to_string(), want);
    }
    // An empty or blank sharing key is no key, as in MetalLB.
    let req = to_request(
        &service(&[("metallb.io/allow-shared-ip", " ".into())], None),
        &Default::default(),
    )
    .expect("blank sharing key is no key");
    assert_eq!(req.sharing_key, None);

    let mut a = allocator(vec![pool("small", vec!["192.168.10.0/30".into()])]);
    let fine = to_request(
        &service(&[("metallb.io/address-pool", "small".into())], None),
        &Default::default(),
    )
    .expect("well-formed");
    assert_eq!(a.allocate(&fine).ips, vec![ip("192.168.10.0")]);
}
