use super::*;
use crate::desired::L2Owner;
use crate::eligibility::tests::{l2adv, peer, pool};
use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, NodeAddress, NodeCondition, NodeStatus, ServiceSpec,
    ServiceStatus,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::time::Duration;

fn k8s_node(name: &str, ip: Option<&str>, ready: bool) -> Arc<Node> {
    Arc::new(Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        status: Some(NodeStatus {
            addresses: ip.map(|ip| {
                vec![NodeAddress {
                    type_: "InternalIP".into(),
                    address: ip.into(),
                }]
            }),
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

fn k8s_service(name: &str, ip: &str) -> Arc<Service> {
    Arc::new(Service {
        metadata: ObjectMeta {
            namespace: Some("default".into()),
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ..ServiceSpec::default()
        }),
        status: Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![LoadBalancerIngress {
                    ip: Some(ip.into()),
                    ..LoadBalancerIngress::default()
                }]),
            }),
            ..ServiceStatus::default()
        }),
    })
}

fn config() -> Config {
    let mut c = Config::default();
    let p = pool("lan", &[("10.200.9.0", "10.200.9.255")]);
    c.pools.insert(p.name.clone(), p);
    c.l2_advertisements = vec![l2adv("l2", &["lan"], vec![], &[])];
    let tor = peer("tor", vec![]);
    c.peers.insert(tor.name.clone(), tor);
    c
}

/// A slice with one ready endpoint on `node`: a Service is announced only while an endpoint
/// can serve it.
fn k8s_slice(service: &str, node: &str) -> Arc<EndpointSlice> {
    Arc::new(EndpointSlice {
        metadata: ObjectMeta {
            namespace: Some("default".into()),
            name: Some(format!("{service}-slice")),
            labels: Some(BTreeMap::from([(
                crate::index::SERVICE_NAME_LABEL.to_string(),
                service.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        endpoints: vec![Endpoint {
            addresses: vec!["10.200.50.1".into()],
            node_name: Some(node.into()),
            conditions: Some(EndpointConditions {
                ready: Some(true),
                ..EndpointConditions::default()
            }),
            ..Endpoint::default()
        }],
        ports: None,
    })
}

struct Cluster {
    nodes: Vec<Arc<Node>>,
    services: Vec<Arc<Service>>,
    slices: Vec<Arc<EndpointSlice>>,
    owners: BTreeMap<IpAddr, Option<String>>,
}

impl Cluster {
    fn three_nodes() -> Self {
        Self {
            nodes: vec![
                k8s_node("a", Some("10.200.1.1"), true),
                k8s_node("b", Some("10.200.1.2"), true),
                k8s_node("c", Some("10.200.1.3"), true),
            ],
            services: (0..8)
                .map(|i| k8s_service(&format!("s{i}"), &format!("10.200.9.{i}")))
                .collect(),
            slices: (0..8).map(|i| k8s_slice(&format!("s{i}"), "a")).collect(),
            owners: BTreeMap::new(),
        }
    }

    fn view<'a>(&'a self, node: &'a str, settling: Option<Settling>) -> View<'a> {
        View {
            node,
            services: &self.services,
            slices: &self.slices,
            nodes: &self.nodes,
            class_policy: ClassPolicy::default(),
            modes: Modes::ALL,
            ignore_exclude_lb: false,
            settling,
            owners: &self.owners,
            links: None,
        }
    }
}

fn all(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn fresh(elapsed_ms: u64) -> Settling {
    Settling {
        latched: false,
        elapsed: Duration::from_millis(elapsed_ms),
    }
}

#[test]
fn without_membership_the_gate_is_open() {
    assert!(membership_settled(
        None,
        &BTreeSet::new(),
        &all(&["a", "b"])
    ));
}

#[test]
fn a_fresh_membership_waits_for_every_expected_member() {
    let expected = all(&["a", "b", "c"]);
    assert!(!membership_settled(
        Some(&fresh(0)),
        &all(&["a"]),
        &expected
    ));
    assert!(!membership_settled(
        Some(&fresh(1999)),
        &all(&["a", "b"]),
        &expected
    ));
    assert!(membership_settled(
        Some(&fresh(10)),
        &all(&["a", "b", "c"]),
        &expected
    ));
    // Members beyond the expected ones (a node without an address yet) do not matter.
    assert!(membership_settled(
        Some(&fresh(10)),
        &all(&["a", "b", "c", "d"]),
        &expected
    ));
}

#[test]
fn a_dead_but_ready_node_holds_the_gate_only_until_the_settle_time() {
    let expected = all(&["a", "b", "c"]);
    let alive = all(&["a", "b"]);
    assert!(!membership_settled(Some(&fresh(1999)), &alive, &expected));
    assert!(membership_settled(Some(&fresh(2000)), &alive, &expected));
}

#[test]
fn once_open_the_gate_stays_open_when_a_member_dies() {
    let latched = Settling {
        latched: true,
        elapsed: Duration::from_millis(100),
    };
    assert!(membership_settled(
        Some(&latched),
        &all(&["a"]),
        &all(&["a", "b", "c"])
    ));
}

#[test]
fn expected_members_are_ready_nodes_with_an_address() {
    let nodes = vec![
        k8s_node("a", Some("10.200.1.1"), true),
        k8s_node("b", Some("10.200.1.2"), false),
        k8s_node("c", None, true),
    ];
    assert_eq!(expected_members(&nodes), all(&["a"]));
}

#[test]
fn node_addresses_take_the_first_of_each_family_of_this_node() {
    let mut two = (*k8s_node("a", Some("fd00:200::1"), true)).clone();
    if let Some(addrs) = two.status.as_mut().and_then(|s| s.addresses.as_mut()) {
        for ip in ["10.200.1.1", "10.200.1.9", "fd00:200::2"] {
            addrs.push(NodeAddress {
                type_: "InternalIP".into(),
                address: ip.into(),
            });
        }
        addrs.push(NodeAddress {
            type_: "ExternalIP".into(),
            address: "10.200.7.7".into(),
        });
    }
    let nodes = vec![Arc::new(two), k8s_node("b", Some("10.200.1.2"), true)];
    let got = node_addresses(&nodes, "a");
    assert_eq!(got.v4, Some("10.200.1.1".parse().expect("v4")));
    assert_eq!(got.v6, Some("fd00:200::1".parse().expect("v6")));
    assert_eq!(node_addresses(&nodes, "zz"), NodeAddresses::default());
    assert_eq!(
        internal_ips(&nodes[0]).first(),
        Some(&"10.200.1.1".parse().expect("ip")),
        "IPv4 first: it is the membership address"
    );
}

#[test]
fn owner_changes_record_node_assigned_only_for_addresses_newly_mine() {
    let ip = |s: &str| -> IpAddr { s.parse().expect("ip") };
    let owner = |a: &str, svcs: &[&str], o: Option<&str>| L2Owner {
        ip: ip(a),
        services: svcs.iter().map(|s| s.to_string()).collect(),
        owner: o.map(String::from),
    };
    let first = owner_changes(
        &[
            owner("10.200.9.1", &["default/x", "default/y"], Some("a")),
            owner("10.200.9.2", &["default/z"], Some("b")),
        ],
        &BTreeMap::new(),
        "a",
    );
    // A first sighting is no change, but what is mine is assigned (one event per Service).
    assert_eq!(first.changed, 0);
    assert_eq!(
        first.assigned,
        vec![
            NodeAssigned {
                ip: ip("10.200.9.1"),
                service: "default/x".into()
            },
            NodeAssigned {
                ip: ip("10.200.9.1"),
                service: "default/y".into()
            },
        ]
    );
    // Nothing moved: no event, no change.
    let same = owner_changes(
        &[
            owner("10.200.9.1", &["default/x", "default/y"], Some("a")),
            owner("10.200.9.2", &["default/z"], Some("b")),
        ],
        &first.owners,
        "a",
    );
    assert_eq!((same.changed, same.assigned.len()), (0, 0));
    // .2 moves to us, .1 moves away: two changes, events only for what we took.
    let moved = owner_changes(
        &[
            owner("10.200.9.1", &["default/x", "default/y"], Some("c")),
            owner("10.200.9.2", &["default/z"], Some("a")),
        ],
        &same.owners,
        "a",
    );
    assert_eq!(moved.changed, 2);
    assert_eq!(
        moved.assigned,
        vec![NodeAssigned {
            ip: ip("10.200.9.2"),
            service: "default/z".into()
        }]
    );
    // Losing every eligible node is a change too, and assigns nothing.
    let lost = owner_changes(
        &[owner("10.200.9.2", &["default/z"], None)],
        &moved.owners,
        "a",
    );
    assert_eq!((lost.changed, lost.assigned.len()), (1, 0));
    assert_eq!(lost.owners.get(&ip("10.200.9.2")), Some(&None));
}

#[test]
fn without_a_valid_configuration_nothing_is_planned() {
    let cluster = Cluster::three_nodes();
    let plan = pass(&cluster.view("a", None), None, None);
    assert!(plan.settled);
    assert_eq!(plan.announce, None);
    assert_eq!(
        plan.node_addresses.v4,
        Some("10.200.1.1".parse().expect("v4"))
    );
}

#[test]
fn an_unsettled_pass_plans_announcements_but_no_owner_changes() {
    let cluster = Cluster::three_nodes();
    let config = config();
    // Only this node is alive yet: it would elect itself for everything.
    let alive = all(&["a"]);
    let plan = pass(
        &cluster.view("a", Some(fresh(50))),
        Some(&alive),
        Some(&config),
    );
    assert!(!plan.settled);
    let announce = plan.announce.expect("a configuration is in force");
    assert_eq!(
        announce.desired.layer2.len(),
        8,
        "elects itself for every address"
    );
    assert_eq!(announce.owner_changes, None);
}

#[test]
fn settled_passes_of_every_node_split_the_addresses_and_assign_each_once() {
    let cluster = Cluster::three_nodes();
    let config = config();
    let alive = all(&["a", "b", "c"]);
    let mut announced = BTreeMap::new();
    let mut assigned = Vec::new();
    for me in ["a", "b", "c"] {
        let plan = pass(
            &cluster.view(me, Some(fresh(50))),
            Some(&alive),
            Some(&config),
        );
        assert!(plan.settled, "every expected member is alive");
        let announce = plan.announce.expect("configuration");
        assert_eq!(announce.peers.len(), 1, "the peer selects every node");
        for l2 in &announce.desired.layer2 {
            assert_eq!(
                announced.insert(l2.ip, me),
                None,
                "{} announced twice",
                l2.ip
            );
        }
        let changes = announce.owner_changes.expect("settled");
        for a in &changes.assigned {
            assert_eq!(
                announced.get(&a.ip),
                Some(&me),
                "only the owner records nodeAssigned"
            );
        }
        assigned.extend(changes.assigned);
    }
    assert_eq!(announced.len(), 8, "every address has exactly one owner");
    assert_eq!(assigned.len(), 8, "one nodeAssigned per Service");
}

#[test]
fn with_bgp_turned_off_no_peer_is_planned() {
    let cluster = Cluster::three_nodes();
    let config = config();
    let mut view = cluster.view("a", None);
    view.modes = Modes {
        layer2: true,
        bgp: false,
    };
    let plan = pass(&view, None, Some(&config));
    assert!(plan.announce.expect("configuration").peers.is_empty());
}

/// The links reports of the view reach the election: a node whose only interface has no
/// carrier owns nothing and says why; without reports (membership off) it is eligible.
#[test]
fn links_reports_take_a_node_without_carrier_out_of_the_election() {
    use crate::layer2::carrier::LinkReport;
    let cluster = Cluster::three_nodes();
    let config = config();
    let alive = all(&["a", "b", "c"]);
    let report = |carrier| {
        vec![LinkReport {
            name: "eth0".into(),
            carrier,
            automatic: true,
        }]
    };
    let links: BTreeMap<String, Vec<LinkReport>> = BTreeMap::from([
        ("a".to_string(), report(false)),
        ("b".to_string(), report(true)),
        ("c".to_string(), report(true)),
    ]);
    let mut view = cluster.view("a", Some(fresh(50)));
    let without = pass(&view, Some(&alive), Some(&config))
        .announce
        .expect("configuration");
    assert!(
        !without.desired.layer2.is_empty(),
        "a owns some of the 8 addresses"
    );
    view.links = Some(&links);
    let with = pass(&view, Some(&alive), Some(&config))
        .announce
        .expect("configuration");
    assert!(with.desired.layer2.is_empty());
    assert_eq!(with.desired.l2_no_carrier.len(), 8);
    assert!(
        with.desired
            .l2_owners
            .iter()
            .all(|o| matches!(o.owner.as_deref(), Some("b" | "c")))
    );
}
