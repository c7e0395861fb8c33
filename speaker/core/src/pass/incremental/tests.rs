//! The incremental pass against the full one: after every change of a random sequence, both
//! must give the same plan from the same view.

use super::*;
use crate::pass::pass;
use ferrolb_api::service::ClassPolicy;
use ferrolb_config::manifests::Manifests;
use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, Node, NodeAddress, NodeCondition, NodeStatus,
    ServiceSpec, ServiceStatus,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use proptest::prelude::*;

/// Layer 2 with a Service selector and a node preference, BGP aggregated to /24 with
/// communities and LOCAL_PREF next to host routes, an address range in both modes, and one
/// range in no pool at all.
const CONFIG_A: &str = "\
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ferrolb-system}
spec: {addresses: [10.200.0.0/24]}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: routed, namespace: ferrolb-system}
spec: {addresses: [10.210.0.0/23]}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: both, namespace: ferrolb-system}
spec: {addresses: [10.220.0.0/24]}
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: ferrolb-system}
spec: {ipAddressPools: [lan, both]}
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata: {name: web-only, namespace: ferrolb-system}
spec:
  ipAddressPools: [lan]
  serviceSelectors: [{matchLabels: {tier: web}}]
  nodeSelectors: [{matchLabels: {zone: a}}]
  interfaces: [eth1]
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: agg, namespace: ferrolb-system}
spec: {ipAddressPools: [routed, both], aggregationLength: 24, localPref: 100, communities: ['65000:1']}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: host, namespace: ferrolb-system}
spec:
  ipAddressPools: [routed]
  localPref: 50
  serviceSelectors: [{matchLabels: {tier: db}}]
---
apiVersion: ferrolb.io/v1beta1
kind: BGPPeer
metadata: {name: tor, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64500, peerAddress: 10.200.200.254}
";

/// Another configuration: fewer pools, layer 2 only on zone b, BGP host routes only.
const CONFIG_B: &str = "\
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ferrolb-system}
spec: {addresses: [10.200.0.0/24]}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: routed, namespace: ferrolb-system}
spec: {addresses: [10.210.0.0/23]}
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: ferrolb-system}
spec:
  ipAddressPools: [lan]
  nodeSelectors: [{matchLabels: {zone: b}}]
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: host, namespace: ferrolb-system}
spec: {ipAddressPools: [routed]}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPPeer
metadata: {name: tor, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64500, peerAddress: 10.200.200.254}
";

fn config(yaml: &str) -> Config {
    let mut m = Manifests::default();
    m.add("test-config.yaml", yaml);
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    Config::build(&m.inputs).expect("valid configuration")
}

const NODES: [&str; 4] = ["n0", "n1", "n2", "n3"];
const NAMESPACES: [&str; 2] = ["a", "b"];
/// Service names per namespace: few, so that slices often belong to a Service.
const SERVICES: usize = 4;
/// Shared, aggregated, in both modes, and in no pool.
const IPS: [&str; 7] = [
    "10.200.0.1",
    "10.200.0.2",
    "10.210.0.1",
    "10.210.0.2",
    "10.210.1.5",
    "10.220.0.1",
    "10.230.0.1",
];

#[derive(Clone, Debug)]
struct ServiceSpecs {
    ns: usize,
    name: usize,
    ips: Vec<usize>,
    local: bool,
    load_balancer: bool,
    other_class: bool,
    tier: Option<&'static str>,
    shared: bool,
}

#[derive(Clone, Debug)]
struct SliceSpecs {
    ns: usize,
    name: usize,
    service: Option<usize>,
    /// Node (index into `NODES`, or none) and readiness of each endpoint.
    endpoints: Vec<(Option<usize>, bool)>,
}

#[derive(Clone, Debug)]
enum Change {
    Service(ServiceSpecs),
    RemoveService(usize),
    Slice(SliceSpecs),
    RemoveSlice(usize),
    /// The same object again, as a new `Arc` (a resync).
    Touch(usize),
    /// The store lists its objects in another order.
    Rotate(usize),
    Node {
        node: usize,
        ready: bool,
        zone_a: bool,
    },
    Alive(Option<Vec<bool>>),
    Config(Option<bool>),
    Links(Option<Vec<bool>>),
    ClassPolicy(bool),
    Modes {
        layer2: bool,
        bgp: bool,
    },
    Me(usize),
    /// A fresh membership (not settled until every Ready node is alive), or none.
    Membership(bool),
    /// The executor starts over from no owners.
    ForgetOwners,
}

fn service_specs() -> impl Strategy<Value = ServiceSpecs> {
    (
        0..NAMESPACES.len(),
        0..SERVICES,
        prop::collection::vec(0..IPS.len(), 0..3),
        any::<bool>(),
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.1),
        prop::option::of(prop::sample::select(vec!["web", "db"])),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(ns, name, ips, local, load_balancer, other_class, tier, shared)| ServiceSpecs {
                ns,
                name,
                ips,
                local,
                load_balancer,
                other_class,
                tier,
                shared,
            },
        )
}

fn slice_specs() -> impl Strategy<Value = SliceSpecs> {
    (
        0..NAMESPACES.len(),
        0..6usize,
        prop::option::weighted(0.9, 0..SERVICES),
        prop::collection::vec(
            (
                prop::option::weighted(0.9, 0..NODES.len()),
                prop::bool::weighted(0.8),
            ),
            0..5,
        ),
    )
        .prop_map(|(ns, name, service, endpoints)| SliceSpecs {
            ns,
            name,
            service,
            endpoints,
        })
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        6 => service_specs().prop_map(Change::Service),
        2 => any::<usize>().prop_map(Change::RemoveService),
        8 => slice_specs().prop_map(Change::Slice),
        2 => any::<usize>().prop_map(Change::RemoveSlice),
        1 => any::<usize>().prop_map(Change::Touch),
        1 => any::<usize>().prop_map(Change::Rotate),
        1 => (0..NODES.len(), any::<bool>(), any::<bool>())
            .prop_map(|(node, ready, zone_a)| Change::Node { node, ready, zone_a }),
        1 => prop::option::of(prop::collection::vec(any::<bool>(), NODES.len()))
            .prop_map(Change::Alive),
        1 => prop::option::weighted(0.9, any::<bool>()).prop_map(Change::Config),
        1 => prop::option::of(prop::collection::vec(any::<bool>(), NODES.len()))
            .prop_map(Change::Links),
        1 => prop::bool::weighted(0.8).prop_map(Change::ClassPolicy),
        1 => (prop::bool::weighted(0.8), prop::bool::weighted(0.8))
            .prop_map(|(layer2, bgp)| Change::Modes { layer2, bgp }),
        1 => (0..NODES.len()).prop_map(Change::Me),
        1 => any::<bool>().prop_map(Change::Membership),
        1 => Just(Change::ForgetOwners),
    ]
}

fn k8s_service(s: &ServiceSpecs) -> Arc<Service> {
    let mut labels = BTreeMap::new();
    if let Some(tier) = s.tier {
        labels.insert("tier".to_string(), tier.to_string());
    }
    let annotations = s
        .shared
        .then(|| BTreeMap::from([("metallb.io/allow-shared-ip".to_string(), "k".to_string())]));
    Arc::new(Service {
        metadata: ObjectMeta {
            namespace: Some(NAMESPACES[s.ns].into()),
            name: Some(format!("s{}", s.name)),
            labels: Some(labels),
            annotations,
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some(
                if s.load_balancer {
                    "LoadBalancer"
                } else {
                    "ClusterIP"
                }
                .into(),
            ),
            load_balancer_class: s.other_class.then(|| "other.io/lb".to_string()),
            external_traffic_policy: Some(if s.local { "Local" } else { "Cluster" }.into()),
            ..ServiceSpec::default()
        }),
        status: Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(
                    s.ips
                        .iter()
                        .map(|i| LoadBalancerIngress {
                            ip: Some(IPS[*i].into()),
                            ..LoadBalancerIngress::default()
                        })
                        .collect(),
                ),
            }),
            ..ServiceStatus::default()
        }),
    })
}

fn k8s_slice(s: &SliceSpecs) -> Arc<EndpointSlice> {
    Arc::new(EndpointSlice {
        metadata: ObjectMeta {
            namespace: Some(NAMESPACES[s.ns].into()),
            name: Some(format!("e{}", s.name)),
            labels: s.service.map(|svc| {
                BTreeMap::from([(
                    crate::index::SERVICE_NAME_LABEL.to_string(),
                    format!("s{svc}"),
                )])
            }),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        endpoints: s
            .endpoints
            .iter()
            .map(|(node, ready)| Endpoint {
                addresses: vec!["10.244.0.1".into()],
                node_name: node.map(|n| NODES[n].to_string()),
                conditions: Some(EndpointConditions {
                    ready: Some(*ready),
                    ..EndpointConditions::default()
                }),
                ..Endpoint::default()
            })
            .collect(),
        ports: None,
    })
}

fn k8s_node(i: usize, ready: bool, zone_a: bool) -> Arc<Node> {
    Arc::new(Node {
        metadata: ObjectMeta {
            name: Some(NODES[i].into()),
            labels: Some(BTreeMap::from([(
                "zone".to_string(),
                if zone_a { "a" } else { "b" }.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        status: Some(NodeStatus {
            addresses: Some(vec![NodeAddress {
                type_: "InternalIP".into(),
                address: format!("10.200.1.{}", i + 1),
            }]),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..NodeCondition::default()
            }]),
            ..NodeStatus::default()
        }),
        ..Node::default()
    })
}

/// What a store holds: one object per key, replaced in place, new ones at the end.
fn upsert<K: k8s_openapi::Metadata<Ty = ObjectMeta>>(list: &mut Vec<Arc<K>>, obj: Arc<K>) {
    let key = |o: &K| (o.metadata().namespace.clone(), o.metadata().name.clone());
    match list.iter().position(|o| key(o) == key(&obj)) {
        Some(i) => list[i] = obj,
        None => list.push(obj),
    }
}

fn remove_at<K>(list: &mut Vec<Arc<K>>, i: usize) {
    if !list.is_empty() {
        let i = i % list.len();
        list.swap_remove(i);
    }
}

struct World {
    me: usize,
    services: Vec<Arc<Service>>,
    slices: Vec<Arc<EndpointSlice>>,
    nodes: Vec<Arc<Node>>,
    alive: Option<BTreeSet<String>>,
    config: Option<Config>,
    links: Option<BTreeMap<String, Vec<LinkReport>>>,
    class_policy: ClassPolicy,
    modes: Modes,
    owners: Arc<BTreeMap<IpAddr, Option<String>>>,
    settling: Option<crate::pass::Settling>,
}

impl World {
    fn new() -> Self {
        Self {
            me: 0,
            services: Vec::new(),
            slices: Vec::new(),
            nodes: (0..NODES.len())
                .map(|i| k8s_node(i, true, i % 2 == 0))
                .collect(),
            alive: None,
            config: Some(config(CONFIG_A)),
            links: None,
            class_policy: ClassPolicy::OursOrUnset,
            modes: Modes::ALL,
            owners: Arc::default(),
            settling: None,
        }
    }

    fn apply(&mut self, change: &Change) {
        let names = |flags: &[bool]| -> BTreeSet<String> {
            NODES
                .iter()
                .zip(flags)
                .filter(|(_, f)| **f)
                .map(|(n, _)| n.to_string())
                .collect()
        };
        match change {
            Change::Service(s) => upsert(&mut self.services, k8s_service(s)),
            Change::RemoveService(i) => remove_at(&mut self.services, *i),
            Change::Slice(s) => upsert(&mut self.slices, k8s_slice(s)),
            Change::RemoveSlice(i) => remove_at(&mut self.slices, *i),
            Change::Touch(i) => {
                if !self.services.is_empty() {
                    let i = i % self.services.len();
                    self.services[i] = Arc::new((*self.services[i]).clone());
                }
                if !self.slices.is_empty() {
                    let i = i % self.slices.len();
                    self.slices[i] = Arc::new((*self.slices[i]).clone());
                }
            }
            Change::Rotate(i) => {
                if !self.services.is_empty() {
                    let n = i % self.services.len();
                    self.services.rotate_left(n);
                }
                if !self.slices.is_empty() {
                    let n = i % self.slices.len();
                    self.slices.rotate_right(n);
                }
            }
            Change::Node {
                node,
                ready,
                zone_a,
            } => self.nodes[*node] = k8s_node(*node, *ready, *zone_a),
            Change::Alive(flags) => self.alive = flags.as_deref().map(names),
            Change::Config(which) => {
                self.config = which.map(|a| config(if a { CONFIG_A } else { CONFIG_B }));
            }
            Change::Links(carrier) => {
                self.links = carrier.as_ref().map(|c| {
                    NODES
                        .iter()
                        .zip(c)
                        .map(|(n, up)| {
                            let link = LinkReport {
                                name: "eth1".into(),
                                carrier: *up,
                                automatic: true,
                            };
                            (n.to_string(), vec![link])
                        })
                        .collect()
                });
            }
            Change::ClassPolicy(default) => {
                self.class_policy = if *default {
                    ClassPolicy::OursOrUnset
                } else {
                    ClassPolicy::OursOnly
                };
            }
            Change::Modes { layer2, bgp } => {
                self.modes = Modes {
                    layer2: *layer2,
                    bgp: *bgp,
                };
            }
            Change::Me(i) => self.me = *i,
            Change::Membership(fresh) => {
                self.settling = fresh.then_some(crate::pass::Settling {
                    latched: false,
                    elapsed: std::time::Duration::ZERO,
                });
            }
            Change::ForgetOwners => self.owners = Arc::default(),
        }
    }

    fn view(&self) -> View<'_> {
        View {
            node: NODES[self.me],
            services: &self.services,
            slices: &self.slices,
            nodes: &self.nodes,
            class_policy: self.class_policy,
            modes: self.modes,
            ignore_exclude_lb: false,
            settling: self.settling,
            owners: &self.owners,
            links: self.links.as_ref(),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn incremental_plan_equals_the_full_pass(
        services in prop::collection::vec(service_specs(), 2..12),
        slices in prop::collection::vec(slice_specs(), 4..16),
        changes in prop::collection::vec(change(), 1..40),
    ) {
        let mut world = World::new();
        for s in services {
            world.apply(&Change::Service(s));
        }
        for s in slices {
            world.apply(&Change::Slice(s));
        }
        let mut incremental = IncrementalPass::new();
        let first = world.view();
        let first_plan = incremental.pass(&first, world.alive.as_ref(), world.config.as_ref());
        prop_assert_eq!(&first_plan, &pass(&first, world.alive.as_ref(), world.config.as_ref()));
        prop_assert_eq!(incremental.take_changes(), DesiredChanges::ALL);
        let mut last = first_plan.announce.map(|a| a.desired);
        for (step, change) in changes.iter().enumerate() {
            world.apply(change);
            let view = world.view();
            let full = pass(&view, world.alive.as_ref(), world.config.as_ref());
            let kept = incremental.pass(&view, world.alive.as_ref(), world.config.as_ref());
            prop_assert_eq!(&kept, &full, "step {} ({:?})", step, change);
            // A part said unchanged is the last plan's: the executor skips handing it on.
            let changed = incremental.take_changes();
            let now = kept.announce.as_ref().map(|a| a.desired.clone());
            if let (Some(before), Some(now)) = (&last, &now) {
                let same = |flag: bool, equal: bool| flag || equal;
                prop_assert!(same(changed.layer2, before.layer2 == now.layer2), "layer2, step {}", step);
                prop_assert!(same(changed.l2_standby, before.l2_standby == now.l2_standby), "l2_standby, step {}", step);
                prop_assert!(same(changed.l2_successor_of, before.l2_successor_of == now.l2_successor_of), "l2_successor_of, step {}", step);
                prop_assert!(same(changed.l2_no_carrier, before.l2_no_carrier == now.l2_no_carrier), "l2_no_carrier, step {}", step);
                prop_assert!(same(changed.bgp, before.bgp == now.bgp), "bgp, step {}", step);
                prop_assert!(same(changed.not_announced, before.not_announced == now.not_announced), "not_announced, step {}", step);
            }
            if now.is_some() {
                last = now;
            }
            // The next pass compares owners with this one's, as the executor does.
            if let Some(changes) = kept.announce.and_then(|a| a.owner_changes) {
                world.owners = changes.owners;
            }
        }
    }
}

/// The sequences above must reach the cases the incremental path handles differently:
/// announcements in both modes, shared addresses, aggregated prefixes fed by several IPs.
#[test]
fn the_generated_world_reaches_shared_and_aggregated_announcements() {
    let mut world = World::new();
    for change in [
        Change::Service(ServiceSpecs {
            ns: 0,
            name: 0,
            ips: vec![0, 2],
            local: false,
            load_balancer: true,
            other_class: false,
            tier: Some("web"),
            shared: false,
        }),
        Change::Service(ServiceSpecs {
            ns: 1,
            name: 1,
            ips: vec![0, 3],
            local: false,
            load_balancer: true,
            other_class: false,
            tier: Some("db"),
            shared: true,
        }),
        Change::Slice(SliceSpecs {
            ns: 0,
            name: 0,
            service: Some(0),
            endpoints: vec![(Some(0), true)],
        }),
        Change::Slice(SliceSpecs {
            ns: 1,
            name: 0,
            service: Some(1),
            endpoints: vec![(Some(1), true)],
        }),
    ] {
        world.apply(&change);
    }
    let mut incremental = IncrementalPass::new();
    let view = world.view();
    let plan = incremental.pass(&view, None, world.config.as_ref());
    assert_eq!(plan, pass(&view, None, world.config.as_ref()));
    let desired = &plan.announce.expect("configured").desired;
    let shared = desired
        .l2_owners
        .iter()
        .find(|o| o.ip.to_string() == "10.200.0.1")
        .expect("10.200.0.1 decided in layer 2");
    assert_eq!(shared.services, ["a/s0", "b/s1"]);
    let agg = desired
        .bgp
        .iter()
        .find(|b| b.prefix.to_string() == "10.210.0.0/24")
        .expect("aggregated prefix");
    assert_eq!(agg.ips.len(), 2, "{agg:?}");

    // Everything is new to the first pass; a pass over the same view changes nothing, and one
    // after an endpoint left a node changes some parts only.
    assert_eq!(incremental.take_changes(), DesiredChanges::ALL);
    let owners = plan_owners(&incremental.pass(&view, None, world.config.as_ref()));
    assert_eq!(incremental.take_changes(), DesiredChanges::NONE);
    world.owners = owners;
    world.apply(&Change::Slice(SliceSpecs {
        ns: 0,
        name: 0,
        service: Some(0),
        endpoints: vec![(Some(0), false)],
    }));
    let view = world.view();
    incremental.pass(&view, None, world.config.as_ref());
    let changed = incremental.take_changes();
    assert_ne!(changed, DesiredChanges::NONE);
    assert_ne!(changed, DesiredChanges::ALL);
}

fn plan_owners(plan: &Plan) -> Arc<BTreeMap<IpAddr, Option<String>>> {
    plan.announce
        .as_ref()
        .and_then(|a| a.owner_changes.as_ref())
        .map(|c| c.owners.clone())
        .unwrap_or_default()
}
