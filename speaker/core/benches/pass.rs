//! One full speaker pass at cluster scale: 50,000 LoadBalancer Services (half layer 2 from an
//! IPv4 pool, half BGP from an IPv6 pool), 200,000 endpoints (four per Service, one slice
//! each) on 100 nodes, every member alive. The pass is what each speaker computes on every
//! change it sees (level-triggered): this is its cost per change at that size. The index
//! built from the objects and the election over it are both inside the measured pass.

use criterion::{Criterion, criterion_group};
use ferrolb_config::Config;
use ferrolb_config::manifests::Manifests;
use ferrolb_speaker_core::desired::Modes;
use ferrolb_speaker_core::pass::{View, pass};
use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, Node, NodeAddress, NodeCondition, NodeStatus, Service,
    ServiceSpec, ServiceStatus,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

/// Services in the view (`FERROLB_BENCH_SERVICES` overrides it, to see how a pass scales).
fn services() -> usize {
    std::env::var("FERROLB_BENCH_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000)
}
const ENDPOINTS_PER_SERVICE: usize = 4;
const NODES: usize = 100;

const CONFIG: &str = "\
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ferrolb-system}
spec: {addresses: [10.200.0.0/17]}
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: ferrolb-system}
spec: {ipAddressPools: [lan]}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: routed, namespace: ferrolb-system}
spec: {addresses: ['fd00:200:0:1::/64']}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: routed, namespace: ferrolb-system}
spec: {ipAddressPools: [routed]}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPPeer
metadata: {name: tor, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64500, peerAddress: 10.200.200.254}
";

fn config() -> Config {
    let mut m = Manifests::default();
    m.add("bench-config.yaml", CONFIG);
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    Config::build(&m.inputs).expect("valid configuration")
}

fn node_name(i: usize) -> String {
    format!("node-{i}")
}

fn node(i: usize) -> Arc<Node> {
    let ip = Ipv4Addr::new(
        10,
        200,
        200,
        u8::try_from(i + 1).expect("at most 253 nodes"),
    );
    Arc::new(Node {
        metadata: ObjectMeta {
            name: Some(node_name(i)),
            ..ObjectMeta::default()
        },
        status: Some(NodeStatus {
            addresses: Some(vec![NodeAddress {
                type_: "InternalIP".into(),
                address: ip.to_string(),
            }]),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..NodeCondition::default()
            }]),
            ..NodeStatus::default()
        }),
        ..Node::default()
    })
}

/// Service `i`: even ones from the layer 2 pool, odd ones from the BGP pool.
fn service(i: usize) -> Arc<Service> {
    let n = u32::try_from(i).expect("small");
    let ip: IpAddr = if i.is_multiple_of(2) {
        IpAddr::V4(Ipv4Addr::from(
            u32::from(Ipv4Addr::new(10, 200, 0, 0)) + n / 2,
        ))
    } else {
        IpAddr::V6(Ipv6Addr::from(
            u128::from("fd00:200:0:1::".parse::<Ipv6Addr>().expect("v6")) + u128::from(n),
        ))
    };
    Arc::new(Service {
        metadata: ObjectMeta {
            namespace: Some("default".into()),
            name: Some(format!("svc-{i}")),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ..ServiceSpec::default()
        }),
        status: Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![LoadBalancerIngress {
                    ip: Some(ip.to_string()),
                    ..LoadBalancerIngress::default()
                }]),
            }),
            ..ServiceStatus::default()
        }),
    })
}

fn slice(i: usize) -> Arc<EndpointSlice> {
    let endpoints = (0..ENDPOINTS_PER_SERVICE)
        .map(|e| Endpoint {
            addresses: vec![format!("10.244.{}.{}", e, i % 250 + 1)],
            node_name: Some(node_name((i + e * 7) % NODES)),
            conditions: Some(EndpointConditions {
                ready: Some(true),
                serving: Some(true),
                terminating: Some(false),
            }),
            ..Endpoint::default()
        })
        .collect();
    Arc::new(EndpointSlice {
        metadata: ObjectMeta {
            namespace: Some("default".into()),
            name: Some(format!("svc-{i}-slice")),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/service-name".to_string(),
                format!("svc-{i}"),
            )])),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        endpoints,
        ..EndpointSlice::default()
    })
}

fn bench(c: &mut Criterion) {
    let config = config();
    let nodes: Vec<Arc<Node>> = (0..NODES).map(node).collect();
    let count = services();
    let services: Vec<Arc<Service>> = (0..count).map(service).collect();
    let slices: Vec<Arc<EndpointSlice>> = (0..count).map(slice).collect();
    let alive: BTreeSet<String> = (0..NODES).map(node_name).collect();
    let owners = BTreeMap::new();
    let me = node_name(0);
    let view = View {
        node: &me,
        services: &services,
        slices: &slices,
        nodes: &nodes,
        class_policy: Default::default(),
        modes: Modes::ALL,
        ignore_exclude_lb: false,
        settling: None,
        owners: &owners,
        links: None,
    };
    let first = std::time::Instant::now();
    let plan = pass(&view, Some(&alive), Some(&config));
    let first = first.elapsed();
    let announce = plan.announce.as_ref().expect("a configuration");
    println!(
        "speaker pass: {count} Services, {} endpoints, {NODES} nodes: this node answers for {} \
         layer 2 addresses, advertises {} BGP prefixes, {} addresses unannounced; first pass \
         {first:?}",
        count * ENDPOINTS_PER_SERVICE,
        announce.desired.layer2.len(),
        announce.desired.bgp.len(),
        announce.desired.not_announced.len()
    );
    assert_eq!(announce.desired.bgp.len(), count / 2, "every BGP Service");
    assert!(announce.desired.not_announced.is_empty());
    let mut group = c.benchmark_group("speaker_pass");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function(format!("{count}_services_{NODES}_nodes"), |b| {
        b.iter(|| black_box(pass(black_box(&view), Some(&alive), Some(&config))))
    });
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
