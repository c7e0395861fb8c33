//! Which pool and advertisements apply to an IP, and which nodes may announce it.
//!
//! An advertisement applies to the Services of an IP it selects: its pool contains the IP and
//! its `serviceSelectors` match the Service's labels (any one selector; empty matches every
//! Service), as MetalLB speaker/layer2_controller.go l2AdsForService and
//! speaker/bgp_controller.go bgpAdsForService decide.
//!
//! A node may announce an IP (layer 2 or BGP) under an advertisement when all of these hold,
//! checked in this order so the reported reason is the most fundamental one:
//! 1. the Node is known to the index;
//! 2. its `NetworkUnavailable` condition is not `True` (MetalLB speaker: a node whose network
//!    is not set up attracts traffic it cannot deliver);
//! 3. it lacks the label `node.kubernetes.io/exclude-from-external-load-balancers` (any
//!    value: Kubernetes' own service controller tests presence only), unless the speakers run
//!    with `--ignore-exclude-lb` (MetalLB's flag of the same name);
//! 4. its `Ready` condition is `True`;
//! 5. its speaker is alive in the membership (when membership is enabled);
//! 6. it matches the advertisement's `nodeSelectors` (empty: every node);
//! 7. a Service the advertisement applies to can be served: with `externalTrafficPolicy:
//!    Cluster` it has an endpoint that can serve somewhere (MetalLB bgp_controller.go
//!    hasHealthyEndpoint, layer2_controller.go activeEndpointExists); with `Local` one on this
//!    node (MetalLB nodesWithEndpoint). An endpoint can serve when it is ready, or terminating
//!    but still serving (MetalLB internal/k8s/epslices EndpointCanServe);
//! 8. layer 2 only: one of the interfaces the advertisement selects on the node (its
//!    `interfaces`, or every interface the automatic choice uses) has carrier, as the node's
//!    speaker reports through the membership ([`crate::layer2::carrier`]): a node alive over
//!    a management network but cut off from the service LAN would black-hole the address.
//!
//! Several Services may share one IP. Their policies should agree (the controller only lets
//! Services with the same policy share), but when they do not, the IP is treated per IP as the
//! union, like MetalLB: a node passes check 7 when at least one of the Services passes it. The
//! alternative (intersection) could leave an IP announced by nobody although a Service behind
//! it is served; announcing it from a node where only some of the Services are served is the
//! lesser harm.

use crate::index::{ClusterIndex, NodeInfo, ServiceInfo};
use crate::layer2::carrier::{NoCarrier, carrier_check};
use ferrolb_api::annotations::EXCLUDE_FROM_LB_LABEL;
use ferrolb_api::service::TrafficPolicy;
use ferrolb_config::selector::{Selector, any_matches};
use ferrolb_config::{BgpAdvertisement, Config, L2Advertisement, Peer, Pool};
use std::net::IpAddr;

/// Why a node may not announce an IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ineligible {
    /// The index has no Node of that name.
    UnknownNode,
    /// The node's `NetworkUnavailable` condition is `True`.
    NetworkUnavailable,
    /// The node carries `node.kubernetes.io/exclude-from-external-load-balancers` (and the
    /// speakers do not ignore it).
    Excluded,
    /// The node's `Ready` condition is not `True`.
    NotReady,
    /// The node's speaker is not alive in the membership.
    NotAlive,
    /// The node matches none of the advertisement's node selectors.
    SelectorMismatch,
    /// No Service the advertisement applies to can be served: `Cluster` without an endpoint
    /// that can serve anywhere, `Local` without one on the node.
    NoServingEndpoint,
    /// Layer 2: none of the interfaces the advertisement selects on the node has carrier.
    NoCarrier,
}

/// The pool containing `ip`. Validated pools do not overlap, so there is at most one; should
/// there be more, the first by name is taken so the answer stays deterministic.
pub fn pool_for(config: &Config, ip: IpAddr) -> Option<&Pool> {
    config.pools.values().find(|p| p.contains(ip))
}

/// Layer 2 advertisements announcing `pool`, in configuration order.
pub fn l2_advertisements_for<'a>(
    config: &'a Config,
    pool: &'a str,
) -> impl Iterator<Item = &'a L2Advertisement> + 'a {
    config
        .l2_advertisements
        .iter()
        .filter(move |a| a.pools.iter().any(|p| p == pool))
}

/// BGP advertisements announcing `pool`, in configuration order.
pub fn bgp_advertisements_for<'a>(
    config: &'a Config,
    pool: &'a str,
) -> impl Iterator<Item = &'a BgpAdvertisement> + 'a {
    config
        .bgp_advertisements
        .iter()
        .filter(move |a| a.pools.iter().any(|p| p == pool))
}

/// The Services an advertisement with `service_selectors` applies to: those whose labels match
/// one of the selectors, or all of them when there is no selector.
pub fn services_selected<'s>(
    service_selectors: &[Selector],
    services: &[&'s ServiceInfo],
) -> Vec<&'s ServiceInfo> {
    services
        .iter()
        .copied()
        .filter(|s| any_matches(service_selectors, &s.labels))
        .collect()
}

/// Layer 2 advertisements of `ip`'s pool that apply to at least one of `services`, with the
/// Services each applies to. Empty when the IP is in no pool.
pub fn l2_advertisements_applying<'a, 's>(
    index: &'a ClusterIndex,
    ip: IpAddr,
    services: &[&'s ServiceInfo],
) -> Vec<(&'a L2Advertisement, Vec<&'s ServiceInfo>)> {
    let Some(pool) = index.pool_for(ip) else {
        return Vec::new();
    };
    l2_advertisements_for(index.config(), &pool.name)
        .map(|a| (a, services_selected(&a.service_selectors, services)))
        .filter(|(_, svcs)| !svcs.is_empty())
        .collect()
}

/// BGP advertisements of `ip`'s pool that apply to at least one of `services`, with the
/// Services each applies to. Empty when the IP is in no pool.
pub fn bgp_advertisements_applying<'a, 's>(
    index: &'a ClusterIndex,
    ip: IpAddr,
    services: &[&'s ServiceInfo],
) -> Vec<(&'a BgpAdvertisement, Vec<&'s ServiceInfo>)> {
    let Some(pool) = index.pool_for(ip) else {
        return Vec::new();
    };
    bgp_advertisements_for(index.config(), &pool.name)
        .map(|a| (a, services_selected(&a.service_selectors, services)))
        .filter(|(_, svcs)| !svcs.is_empty())
        .collect()
}

/// Whether layer 2 refuses `ip` because a Service using it carries `allow-shared-ip` while an
/// advertisement applying to that Service has service selectors: MetalLB
/// speaker/layer2_controller.go ShouldAnnounce ("sharedIPWithServiceSelector"); the
/// selectors of one Service cannot decide for another Service sharing its address.
pub fn l2_shared_ip_with_service_selectors(
    applying: &[(&L2Advertisement, Vec<&ServiceInfo>)],
) -> bool {
    applying
        .iter()
        .any(|(a, svcs)| !a.service_selectors.is_empty() && svcs.iter().any(|s| s.allow_shared_ip))
}

/// Checks 1–5: the node itself may announce anything at all.
pub fn node_health<'a>(index: &'a ClusterIndex, node: &str) -> Result<&'a NodeInfo, Ineligible> {
    let info = index.node(node).ok_or(Ineligible::UnknownNode)?;
    if info.network_unavailable {
        return Err(Ineligible::NetworkUnavailable);
    }
    if !index.ignore_exclude_lb() && info.labels.contains_key(EXCLUDE_FROM_LB_LABEL) {
        return Err(Ineligible::Excluded);
    }
    if !info.ready {
        return Err(Ineligible::NotReady);
    }
    if !index.is_member_alive(node) {
        return Err(Ineligible::NotAlive);
    }
    Ok(info)
}

/// Whether any of `services` has an endpoint that can serve, on any node.
pub fn any_serving_endpoint(index: &ClusterIndex, services: &[&ServiceInfo]) -> bool {
    services.iter().any(|s| index.has_serving_endpoint(&s.key))
}

/// Check 7 for the Services sharing one IP (per-IP union, see the module documentation).
/// With no Service at all there is nothing to serve, so it fails.
pub fn serves(index: &ClusterIndex, services: &[&ServiceInfo], node: &str) -> bool {
    services.iter().any(|s| match s.traffic_policy {
        TrafficPolicy::Cluster => index.has_serving_endpoint(&s.key),
        TrafficPolicy::Local => index.has_serving_endpoint_on(&s.key, node),
    })
}

/// All seven checks for one node against one advertisement's node selectors; `services` are
/// the Services of the IP the advertisement applies to.
pub fn check_node(
    index: &ClusterIndex,
    node: &str,
    node_selectors: &[Selector],
    services: &[&ServiceInfo],
) -> Result<(), Ineligible> {
    let info = node_health(index, node)?;
    if !any_matches(node_selectors, &info.labels) {
        return Err(Ineligible::SelectorMismatch);
    }
    if !serves(index, services, node) {
        return Err(Ineligible::NoServingEndpoint);
    }
    Ok(())
}

/// Check 8, layer 2 only: the node has carrier on an interface the advertisement selects.
pub fn l2_carrier(
    index: &ClusterIndex,
    node: &str,
    adv: &L2Advertisement,
) -> Result<(), NoCarrier> {
    carrier_check(index.node_links(node), &adv.interfaces)
}

/// All eight checks for one node against one layer 2 advertisement.
pub fn check_l2_node(
    index: &ClusterIndex,
    node: &str,
    adv: &L2Advertisement,
    services: &[&ServiceInfo],
) -> Result<(), Ineligible> {
    check_node(index, node, &adv.node_selectors, services)?;
    l2_carrier(index, node, adv).map_err(|_| Ineligible::NoCarrier)
}

/// Why `node` does not announce in layer 2 for lack of carrier: the reasons of the
/// advertisements applying to `ip` under which it passes every other check, when carrier is
/// all it lacks under each of them. Empty when it may announce, or fails for another reason.
pub fn l2_carrier_blocks(
    index: &ClusterIndex,
    ip: IpAddr,
    node: &str,
    services: &[&ServiceInfo],
) -> Vec<NoCarrier> {
    let applying = l2_advertisements_applying(index, ip, services);
    let mut blocks = Vec::new();
    for (a, svcs) in &applying {
        if check_node(index, node, &a.node_selectors, svcs).is_err() {
            continue;
        }
        match l2_carrier(index, node, a) {
            Ok(()) => return Vec::new(),
            Err(e) => blocks.push(e),
        }
    }
    blocks.sort();
    blocks.dedup();
    blocks
}

/// Layer 2 advertisements of `ip`'s pool under which `node` may announce it. Empty when the IP
/// is in no pool, no advertisement applies to its Services, or the node fails a check for each.
pub fn l2_advertisements_of_node<'a>(
    index: &'a ClusterIndex,
    ip: IpAddr,
    node: &str,
    services: &[&ServiceInfo],
) -> Vec<&'a L2Advertisement> {
    l2_advertisements_applying(index, ip, services)
        .into_iter()
        .filter(|(a, svcs)| check_l2_node(index, node, a, svcs).is_ok())
        .map(|(a, _)| a)
        .collect()
}

/// Nodes that may own `ip` in layer 2 (eligible under at least one advertisement applying to
/// its Services), sorted.
pub fn l2_eligible_nodes<'a>(
    index: &'a ClusterIndex,
    ip: IpAddr,
    services: &[&ServiceInfo],
) -> Vec<&'a str> {
    let applying = l2_advertisements_applying(index, ip, services);
    if applying.is_empty() {
        return Vec::new();
    }
    index
        .nodes()
        .map(|n| n.name.as_str())
        .filter(|n| {
            applying
                .iter()
                .any(|(a, svcs)| check_l2_node(index, n, a, svcs).is_ok())
        })
        .collect()
}

/// How strongly the advertisements applying to an IP prefer `node` for its layer 2 election:
/// for each advertisement whose `nodeSelectors` select the node, the weights of its
/// `preferredNodeSelectors` that match the node, summed over all those advertisements (MetalLB
/// internal/config/config.go preferredNodeScores, summed across advertisements by
/// speaker/layer2_controller.go preferredScoresFor). Zero without preferences.
pub fn l2_preference(advs: &[&L2Advertisement], node: &NodeInfo) -> u64 {
    advs.iter()
        .filter(|a| any_matches(&a.node_selectors, &node.labels))
        .flat_map(|a| &a.preferred_nodes)
        .filter(|p| p.selector.matches(&node.labels))
        .map(|p| u64::from(p.weight))
        .sum()
}

/// Interfaces to announce on, from the advertisements under which this node announces: the
/// sorted union, except that any advertisement without interfaces means "automatic" (every
/// suitable interface), which already covers the others, so the result is then empty.
pub fn l2_interfaces(advs: &[&L2Advertisement]) -> Vec<String> {
    if advs.iter().any(|a| a.interfaces.is_empty()) {
        return Vec::new();
    }
    let mut all: Vec<String> = advs
        .iter()
        .flat_map(|a| a.interfaces.iter().cloned())
        .collect();
    all.sort();
    all.dedup();
    all
}

/// BGP advertisements of `ip`'s pool under which `node` advertises it, with the Services of
/// the IP each applies to. In BGP mode every eligible node advertises (routers spread traffic
/// by ECMP); there is no election.
pub fn bgp_advertisements_of_node<'a, 's>(
    index: &'a ClusterIndex,
    ip: IpAddr,
    node: &str,
    services: &[&'s ServiceInfo],
) -> Vec<(&'a BgpAdvertisement, Vec<&'s ServiceInfo>)> {
    bgp_advertisements_applying(index, ip, services)
        .into_iter()
        .filter(|(a, svcs)| check_node(index, node, &a.node_selectors, svcs).is_ok())
        .collect()
}

/// Peers this node has sessions with (peer `nodeSelectors`; empty: every node).
pub fn peers_for_node<'a>(
    config: &'a Config,
    node: &'a NodeInfo,
) -> impl Iterator<Item = &'a Peer> + 'a {
    config
        .peers
        .values()
        .filter(move |p| any_matches(&p.node_selectors, &node.labels))
}

/// Peers an advertisement is sent to (`peers`; empty: every peer). Names not in the
/// configuration are skipped (validation rejects them; this keeps the function total).
pub fn peers_for_advertisement<'a>(
    config: &'a Config,
    adv: &'a BgpAdvertisement,
) -> Box<dyn Iterator<Item = &'a Peer> + 'a> {
    if adv.peers.is_empty() {
        Box::new(config.peers.values())
    } else {
        Box::new(adv.peers.iter().filter_map(|n| config.peers.get(n)))
    }
}

/// Peers that receive `adv` from `node`: the advertisement's peers this node has a session
/// with, sorted by name and deduplicated.
pub fn peers_for<'a>(
    config: &'a Config,
    adv: &'a BgpAdvertisement,
    node: &NodeInfo,
) -> Vec<&'a Peer> {
    let mut peers: Vec<&Peer> = peers_for_advertisement(config, adv)
        .filter(|p| any_matches(&p.node_selectors, &node.labels))
        .collect();
    peers.sort_by(|a, b| a.name.cmp(&b.name));
    peers.dedup_by(|a, b| a.name == b.name);
    peers
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::index::EndpointSliceInfo;
    use ferrolb_api::service::ServiceKey;
    use ferrolb_config::selector::Requirement;
    use ferrolb_config::{AddressRange, PeerAsn};
    use std::collections::{BTreeMap, BTreeSet};

    pub(crate) fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    pub(crate) fn pool(name: &str, cidrs: &[(&str, &str)]) -> Pool {
        let ranges = cidrs
            .iter()
            .map(|(first, last)| AddressRange {
                first: ip(first),
                last: ip(last),
                prefix_len: None,
                text: format!("{first}-{last}"),
            })
            .collect();
        Pool::with_ranges("ferrolb-system", name, ranges)
    }

    /// A selector requiring `key=value`.
    pub(crate) fn label_sel(key: &str, value: &str) -> Selector {
        Selector {
            requirements: vec![Requirement::In(
                key.into(),
                BTreeSet::from([value.to_string()]),
            )],
        }
    }

    pub(crate) fn l2adv(
        name: &str,
        pools: &[&str],
        sels: Vec<Selector>,
        ifaces: &[&str],
    ) -> L2Advertisement {
        L2Advertisement {
            namespace: "ferrolb-system".into(),
            name: name.into(),
            pools: pools.iter().map(|s| s.to_string()).collect(),
            node_selectors: sels,
            interfaces: ifaces.iter().map(|s| s.to_string()).collect(),
            service_selectors: vec![],
            preferred_nodes: vec![],
        }
    }

    pub(crate) fn bgpadv(
        name: &str,
        pools: &[&str],
        sels: Vec<Selector>,
        peers: &[&str],
    ) -> BgpAdvertisement {
        BgpAdvertisement {
            namespace: "ferrolb-system".into(),
            name: name.into(),
            pools: pools.iter().map(|s| s.to_string()).collect(),
            aggregation_length: 32,
            aggregation_length_v6: 128,
            local_pref: None,
            communities: vec![],
            node_selectors: sels,
            peers: peers.iter().map(|s| s.to_string()).collect(),
            service_selectors: vec![],
        }
    }

    pub(crate) fn peer(name: &str, sels: Vec<Selector>) -> Peer {
        Peer {
            node_selectors: sels,
            ..Peer::with_defaults(
                "ferrolb-system",
                name,
                64500,
                PeerAsn::Fixed(64501),
                ip("10.200.0.1"),
            )
        }
    }

    pub(crate) fn node(name: &str, labels: &[(&str, &str)], ready: bool) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ready,
            network_unavailable: false,
        }
    }

    pub(crate) fn service(
        ns: &str,
        name: &str,
        ips: &[&str],
        policy: TrafficPolicy,
    ) -> ServiceInfo {
        ServiceInfo {
            key: ServiceKey::new(ns, name),
            ips: ips.iter().map(|s| ip(s)).collect(),
            traffic_policy: policy,
            ours: true,
            labels: BTreeMap::new(),
            allow_shared_ip: false,
        }
    }

    pub(crate) fn endpoints(ns: &str, svc: &str, nodes: &[&str]) -> EndpointSliceInfo {
        EndpointSliceInfo {
            namespace: ns.into(),
            name: format!("{svc}-slice"),
            service: svc.into(),
            serving_nodes: nodes.iter().map(|n| n.to_string()).collect(),
            any_serving: !nodes.is_empty(),
        }
    }

    /// Pool `lan` = 10.200.0.0–10.200.0.255 with one L2 advertisement for nodes labelled
    /// `l2=yes`; pool `dark` = 10.201.0.0–10.201.0.255 with no advertisement.
    fn base_config() -> Config {
        let mut c = Config::default();
        for p in [
            pool("lan", &[("10.200.0.0", "10.200.0.255")]),
            pool("dark", &[("10.201.0.0", "10.201.0.255")]),
        ] {
            c.pools.insert(p.name.clone(), p);
        }
        c.l2_advertisements = vec![l2adv("l2", &["lan"], vec![label_sel("l2", "yes")], &[])];
        c
    }

    struct Case {
        what: &'static str,
        node: NodeInfo,
        /// `None`: membership disabled.
        alive: Option<bool>,
        policy: TrafficPolicy,
        endpoint_on_node: bool,
        ip: &'static str,
        expect: Result<(), Ineligible>,
    }

    #[test]
    fn eligibility_table() {
        let yes = &[("l2", "yes")][..];
        let cases = [
            Case {
                what: "all good",
                node: node("n", yes, true),
                alive: None,
                policy: TrafficPolicy::Cluster,
                endpoint_on_node: false,
                ip: "10.200.0.5",
                expect: Ok(()),
            },
            Case {
                what: "selector mismatch",
                node: node("n", &[("l2", "no")], true),
                alive: None,
                policy: TrafficPolicy::Cluster,
                endpoint_on_node: true,
                ip: "10.200.0.5",
                expect: Err(Ineligible::SelectorMismatch),
            },
            Case {
                what: "label absent",
                node: node("n", &[], true),
                alive: None,
                policy: TrafficPolicy::Cluster,
                endpoint_on_node: true,
                ip: "10.200.0.5",
                expect: Err(Ineligible::SelectorMismatch),
            },
            Case {
                what: "excluded (empty value)",
                node: node("n", &[("l2", "yes"), (EXCLUDE_FROM_LB_LABEL, "")], true),
                alive: None,
                policy: TrafficPolicy::Cluster,
                endpoint_on_node: true,
                ip: "10.200.0.5",
                expect: Err(Ineligible::Excluded),
            },
            Case {
                what: "excluded (false value still excludes)",
                node: node(
                    "n",
                    &[("l2", "yes"), (EXCLUDE_FROM_LB_LABEL, "false")],
                    true,
                ),
                alive: None,
                policy: TrafficPolicy::Cluster,
                endpoint_on_node: true,
                ip: "10.200.0.5",
                expect: Err(Ineligible::Excluded),
            },
            Case {
                what: "network unavailable (MetalLB speaker: IsNetworkUnavailable)",
                node: NodeInfo {
                    network_unavailable: true,
                    ..node("n", yes, true)
                },
                alive: Some(true),
                policy: TrafficPolicy::Cluster,
                endpoint_on_node: true,
                ip: "10.200.0.5",
                expect: Err(Ineligible::NetworkUnavailable),
            },
            Case {
                what: "network unavailable before excluded and not ready",
                node: NodeInfo {
                    network_unavailable: true,
                    ..node("n", &[("l2", "yes"), (EXCLUDE_FROM_LB_LABEL, "")], false)
                },
                alive: None,
                policy: TrafficPolicy::Cluster,
                endpoint_on_node: true,
                ip: "10.200.0.5",
                expect: Err(Ineligible::NetworkUnavailable),
            },
            Case {
                what: "not ready",
                node: node("n", yes, false),
                alive: None,
                policy: TrafficPolicy::Cluster,
                endpoint_on_node: true,
                ip: "10.200.0.5",
                expect: Err(Ineligible::NotReady),
            },
            Case {
                what: "not ready although alive",
                node: node("n", yes, false),
                alive: Some(true),
                policy: TrafficPolicy::Cluster,
                endpoint_on_node: true,
                ip: "10.200.0.5",
                expect: Err(Ineligible::NotReady),
            },
            Case {
                what: "not alive",
                node: node("n", yes, true),
                alive: Some(false),
                policy: TrafficPolicy::Cluster,
                endpoint_on_node: true,
                ip: "10.200.0.5",
                expect: Err(Ineligible::NotAlive),
            },
            Case {
                what: "alive",
                node: node("n", yes, true),
                alive: Some(true),
                policy: TrafficPolicy::Cluster,
                endpoint_on_node: false,
                ip: "10.200.0.5",
                expect: Ok(()),
            },
            Case {
                what: "local with endpoint",
                node: node("n", yes, true),
                alive: Some(true),
                policy: TrafficPolicy::Local,
                endpoint_on_node: true,
                ip: "10.200.0.5",
                expect: Ok(()),
            },
            Case {
                what: "local without endpoint",
                node: node("n", yes, true),
                alive: Some(true),
                policy: TrafficPolicy::Local,
                endpoint_on_node: false,
                ip: "10.200.0.5",
                expect: Err(Ineligible::NoServingEndpoint),
            },
        ];
        for c in cases {
            let mut idx = ClusterIndex::new(base_config());
            idx.upsert_node(c.node.clone());
            idx.upsert_node(node("other", yes, true));
            idx.set_members_alive(c.alive.map(|alive| {
                let mut m = BTreeSet::from(["other".to_string()]);
                if alive {
                    m.insert("n".into());
                }
                m
            }));
            let svc = service("web", "shop", &[c.ip], c.policy);
            let on = if c.endpoint_on_node {
                vec!["n", "other"]
            } else {
                vec!["other"]
            };
            idx.upsert_endpoint_slice(endpoints("web", "shop", &on));
            let sel = &idx.config().l2_advertisements[0].node_selectors;
            assert_eq!(check_node(&idx, "n", sel, &[&svc]), c.expect, "{}", c.what);
            let eligible = l2_eligible_nodes(&idx, ip(c.ip), &[&svc]);
            assert_eq!(
                eligible.contains(&"n"),
                c.expect.is_ok(),
                "{}: {eligible:?}",
                c.what
            );
            assert!(eligible.contains(&"other"), "{}", c.what);
            let advs = l2_advertisements_of_node(&idx, ip(c.ip), "n", &[&svc]);
            assert_eq!(advs.len(), usize::from(c.expect.is_ok()), "{}", c.what);
        }
    }

    #[test]
    fn unknown_node_is_ineligible() {
        let idx = ClusterIndex::new(base_config());
        let svc = service("web", "shop", &["10.200.0.5"], TrafficPolicy::Cluster);
        assert_eq!(
            check_node(&idx, "ghost", &[], &[&svc]),
            Err(Ineligible::UnknownNode)
        );
    }

    #[test]
    fn no_advertisement_or_no_pool_means_nobody() {
        let mut idx = ClusterIndex::new(base_config());
        idx.upsert_node(node("n", &[("l2", "yes")], true));
        let dark = service("web", "dark", &["10.201.0.5"], TrafficPolicy::Cluster);
        assert!(l2_eligible_nodes(&idx, ip("10.201.0.5"), &[&dark]).is_empty());
        assert!(l2_advertisements_of_node(&idx, ip("10.201.0.5"), "n", &[&dark]).is_empty());
        let stray = service("web", "stray", &["192.0.2.1"], TrafficPolicy::Cluster);
        assert!(pool_for(idx.config(), ip("192.0.2.1")).is_none());
        assert!(l2_eligible_nodes(&idx, ip("192.0.2.1"), &[&stray]).is_empty());
        assert!(bgp_advertisements_of_node(&idx, ip("192.0.2.1"), "n", &[&stray]).is_empty());
        assert_eq!(
            pool_for(idx.config(), ip("10.200.0.255")).map(|p| p.name.as_str()),
            Some("lan")
        );
    }

    #[test]
    fn shared_ip_with_disagreeing_policies_is_a_union() {
        let mut idx = ClusterIndex::new(base_config());
        let yes = &[("l2", "yes")][..];
        idx.upsert_node(node("a", yes, true));
        idx.upsert_node(node("b", yes, true));
        idx.upsert_endpoint_slice(endpoints("web", "local", &["a"]));
        let local = service("web", "local", &["10.200.0.5"], TrafficPolicy::Local);
        let local2 = service("web", "local2", &["10.200.0.5"], TrafficPolicy::Local);
        let cluster = service("web", "cluster", &["10.200.0.5"], TrafficPolicy::Cluster);
        assert_eq!(l2_eligible_nodes(&idx, ip("10.200.0.5"), &[&local]), ["a"]);
        // Two Local services: nodes with an endpoint of either.
        idx.upsert_endpoint_slice(endpoints("web", "local2", &["b"]));
        assert_eq!(
            l2_eligible_nodes(&idx, ip("10.200.0.5"), &[&local, &local2]),
            ["a", "b"]
        );
        idx.remove_endpoint_slice("web", "local2-slice");
        // Local + Cluster without any endpoint: the Cluster Service is served nowhere.
        assert_eq!(
            l2_eligible_nodes(&idx, ip("10.200.0.5"), &[&local, &cluster]),
            ["a"]
        );
        // Local + Cluster with an endpoint anywhere: every node, because the Cluster Service is
        // served from everywhere.
        idx.upsert_endpoint_slice(endpoints("web", "cluster", &["a"]));
        assert_eq!(
            l2_eligible_nodes(&idx, ip("10.200.0.5"), &[&local, &cluster]),
            ["a", "b"]
        );
        // No service at all: nothing to serve.
        assert!(l2_eligible_nodes(&idx, ip("10.200.0.5"), &[]).is_empty());
    }

    #[test]
    fn node_eligible_under_any_of_several_advertisements() {
        let mut c = base_config();
        c.l2_advertisements.push(l2adv(
            "l2-zone",
            &["lan"],
            vec![label_sel("zone", "b")],
            &["eth1"],
        ));
        let mut idx = ClusterIndex::new(c);
        idx.upsert_node(node("a", &[("l2", "yes")], true));
        idx.upsert_node(node("b", &[("zone", "b")], true));
        idx.upsert_node(node("c", &[("zone", "c")], true));
        idx.upsert_endpoint_slice(endpoints("web", "shop", &["c"]));
        let svc = service("web", "shop", &["10.200.0.5"], TrafficPolicy::Cluster);
        assert_eq!(
            l2_eligible_nodes(&idx, ip("10.200.0.5"), &[&svc]),
            ["a", "b"]
        );
        let of_b = l2_advertisements_of_node(&idx, ip("10.200.0.5"), "b", &[&svc]);
        assert_eq!(
            of_b.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
            ["l2-zone"]
        );
        assert_eq!(l2_interfaces(&of_b), ["eth1"]);
    }

    #[test]
    fn interfaces_union_and_automatic() {
        let a = l2adv("a", &[], vec![], &["eth2", "eth1"]);
        let b = l2adv("b", &[], vec![], &["eth1", "bond0"]);
        let auto = l2adv("auto", &[], vec![], &[]);
        assert_eq!(l2_interfaces(&[&a, &b]), ["bond0", "eth1", "eth2"]);
        assert!(l2_interfaces(&[&a, &auto]).is_empty());
        assert!(l2_interfaces(&[]).is_empty());
    }

    #[test]
    fn bgp_eligibility_and_peers() {
        let mut c = base_config();
        c.bgp_advertisements = vec![
            bgpadv("all-peers", &["lan"], vec![], &[]),
            bgpadv(
                "to-tor",
                &["lan"],
                vec![label_sel("rack", "1")],
                &["tor1", "ghost"],
            ),
            bgpadv("other-pool", &["dark"], vec![], &[]),
        ];
        for p in [
            peer("tor1", vec![label_sel("rack", "1")]),
            peer("tor2", vec![label_sel("rack", "2")]),
            peer("spine", vec![]),
        ] {
            c.peers.insert(p.name.clone(), p);
        }
        let mut idx = ClusterIndex::new(c);
        idx.upsert_node(node("r1", &[("rack", "1")], true));
        idx.upsert_node(node("r2", &[("rack", "2")], true));
        idx.upsert_node(node("down", &[("rack", "1")], false));
        idx.upsert_endpoint_slice(endpoints("web", "shop", &["r2"]));
        let svc = service("web", "shop", &["10.200.0.5"], TrafficPolicy::Cluster);
        let names = |v: Vec<(&BgpAdvertisement, Vec<&ServiceInfo>)>| {
            v.iter().map(|(a, _)| a.name.clone()).collect::<Vec<_>>()
        };
        assert_eq!(
            names(bgp_advertisements_of_node(
                &idx,
                ip("10.200.0.5"),
                "r1",
                &[&svc]
            )),
            ["all-peers", "to-tor"]
        );
        assert_eq!(
            names(bgp_advertisements_of_node(
                &idx,
                ip("10.200.0.5"),
                "r2",
                &[&svc]
            )),
            ["all-peers"]
        );
        assert!(bgp_advertisements_of_node(&idx, ip("10.200.0.5"), "down", &[&svc]).is_empty());

        let cfg = idx.config();
        let r1 = idx.node("r1").expect("known");
        let r2 = idx.node("r2").expect("known");
        let pnames = |v: Vec<&Peer>| v.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        assert_eq!(pnames(peers_for_node(cfg, r1).collect()), ["spine", "tor1"]);
        assert_eq!(pnames(peers_for_node(cfg, r2).collect()), ["spine", "tor2"]);
        let all = &cfg.bgp_advertisements[0];
        let tor = &cfg.bgp_advertisements[1];
        assert_eq!(
            pnames(peers_for_advertisement(cfg, all).collect()),
            ["spine", "tor1", "tor2"]
        );
        // Unknown peer names are skipped.
        assert_eq!(
            pnames(peers_for_advertisement(cfg, tor).collect()),
            ["tor1"]
        );
        assert_eq!(pnames(peers_for(cfg, all, r1)), ["spine", "tor1"]);
        assert_eq!(pnames(peers_for(cfg, tor, r1)), ["tor1"]);
        assert!(peers_for(cfg, tor, r2).is_empty());
    }

    #[test]
    fn bgp_local_policy_needs_endpoint_on_node() {
        let mut c = base_config();
        c.bgp_advertisements = vec![bgpadv("all", &["lan"], vec![], &[])];
        let mut idx = ClusterIndex::new(c);
        idx.upsert_node(node("a", &[], true));
        idx.upsert_node(node("b", &[], true));
        idx.upsert_endpoint_slice(endpoints("web", "shop", &["b"]));
        let svc = service("web", "shop", &["10.200.0.5"], TrafficPolicy::Local);
        assert!(bgp_advertisements_of_node(&idx, ip("10.200.0.5"), "a", &[&svc]).is_empty());
        assert_eq!(
            bgp_advertisements_of_node(&idx, ip("10.200.0.5"), "b", &[&svc]).len(),
            1
        );
    }

    /// MetalLB speaker/bgp_controller.go ShouldAnnounce ("noEndpoints") and
    /// speaker/layer2_controller.go activeEndpointExists: `Cluster` with no endpoint that can
    /// serve anywhere is announced by no node, in either mode; one endpoint anywhere (also
    /// without a node name) makes every node eligible again.
    #[test]
    fn cluster_policy_needs_a_serving_endpoint_somewhere() {
        let mut c = base_config();
        c.bgp_advertisements = vec![bgpadv("all", &["lan"], vec![], &[])];
        let mut idx = ClusterIndex::new(c);
        let yes = &[("l2", "yes")][..];
        idx.upsert_node(node("a", yes, true));
        idx.upsert_node(node("b", yes, true));
        let svc = service("web", "shop", &["10.200.0.5"], TrafficPolicy::Cluster);
        assert_eq!(
            check_node(&idx, "a", &[], &[&svc]),
            Err(Ineligible::NoServingEndpoint)
        );
        assert!(l2_eligible_nodes(&idx, ip("10.200.0.5"), &[&svc]).is_empty());
        assert!(bgp_advertisements_of_node(&idx, ip("10.200.0.5"), "a", &[&svc]).is_empty());
        assert!(!any_serving_endpoint(&idx, &[&svc]));

        // An endpoint that is not ready but serving while terminating still serves (MetalLB
        // internal/k8s/epslices EndpointCanServe; the index reduces it to `any_serving`).
        let mut nodeless = endpoints("web", "shop", &[]);
        nodeless.any_serving = true;
        idx.upsert_endpoint_slice(nodeless);
        assert!(any_serving_endpoint(&idx, &[&svc]));
        assert_eq!(
            l2_eligible_nodes(&idx, ip("10.200.0.5"), &[&svc]),
            ["a", "b"]
        );
        assert_eq!(
            bgp_advertisements_of_node(&idx, ip("10.200.0.5"), "b", &[&svc]).len(),
            1
        );
    }

    /// MetalLB speaker/main.go flag `--ignore-exclude-lb` (checked in layer2_controller.go
    /// speakersForAds and bgp_controller.go ShouldAnnounce): the exclusion label is then
    /// ignored, while NetworkUnavailable still excludes.
    #[test]
    fn ignore_exclude_lb_lets_labelled_nodes_announce() {
        let mut c = base_config();
        c.bgp_advertisements = vec![bgpadv("all", &["lan"], vec![], &[])];
        let mut idx = ClusterIndex::new(c);
        idx.upsert_node(node(
            "a",
            &[("l2", "yes"), (EXCLUDE_FROM_LB_LABEL, "")],
            true,
        ));
        idx.upsert_node(NodeInfo {
            network_unavailable: true,
            ..node("b", &[("l2", "yes"), (EXCLUDE_FROM_LB_LABEL, "")], true)
        });
        idx.upsert_endpoint_slice(endpoints("web", "shop", &["a"]));
        let svc = service("web", "shop", &["10.200.0.5"], TrafficPolicy::Cluster);
        assert!(!idx.ignore_exclude_lb());
        assert_eq!(node_health(&idx, "a").err(), Some(Ineligible::Excluded));
        assert!(l2_eligible_nodes(&idx, ip("10.200.0.5"), &[&svc]).is_empty());
        assert!(bgp_advertisements_of_node(&idx, ip("10.200.0.5"), "a", &[&svc]).is_empty());

        idx.set_ignore_exclude_lb(true);
        assert_eq!(node_health(&idx, "a").map(|n| n.name.as_str()), Ok("a"));
        assert_eq!(
            node_health(&idx, "b").err(),
            Some(Ineligible::NetworkUnavailable)
        );
        assert_eq!(l2_eligible_nodes(&idx, ip("10.200.0.5"), &[&svc]), ["a"]);
        assert_eq!(
            bgp_advertisements_of_node(&idx, ip("10.200.0.5"), "a", &[&svc]).len(),
            1
        );
    }

    fn labelled(mut svc: ServiceInfo, key: &str, value: &str) -> ServiceInfo {
        svc.labels.insert(key.into(), value.into());
        svc
    }

    /// MetalLB speaker/layer2_controller.go l2AdsForService and speaker/bgp_controller.go
    /// bgpAdsForService: an advertisement applies to a Service when one of its
    /// `serviceSelectors` matches the Service's labels; without selectors it applies to all.
    #[test]
    fn service_selectors_decide_which_advertisements_apply() {
        let mut c = base_config();
        let mut web_only = l2adv("web-only", &["lan"], vec![], &["eth1"]);
        web_only.service_selectors = vec![label_sel("tier", "web")];
        let mut db_only = l2adv("db-only", &["lan"], vec![label_sel("zone", "b")], &["eth2"]);
        db_only.service_selectors = vec![label_sel("tier", "db"), label_sel("tier", "cache")];
        c.l2_advertisements = vec![web_only, db_only];
        let mut bgp_web = bgpadv("bgp-web", &["lan"], vec![], &[]);
        bgp_web.service_selectors = vec![label_sel("tier", "web")];
        c.bgp_advertisements = vec![bgp_web, bgpadv("bgp-all", &["lan"], vec![], &[])];
        let mut idx = ClusterIndex::new(c);
        idx.upsert_node(node("a", &[("zone", "a")], true));
        idx.upsert_node(node("b", &[("zone", "b")], true));
        for svc in ["web", "cache", "other"] {
            idx.upsert_endpoint_slice(endpoints("ns", svc, &["a"]));
        }
        let web = labelled(
            service("ns", "web", &["10.200.0.5"], TrafficPolicy::Cluster),
            "tier",
            "web",
        );
        let cache = labelled(
            service("ns", "cache", &["10.200.0.6"], TrafficPolicy::Cluster),
            "tier",
            "cache",
        );
        let other = service("ns", "other", &["10.200.0.7"], TrafficPolicy::Cluster);

        let l2_names = |svc: &ServiceInfo| {
            l2_advertisements_applying(&idx, svc.ips[0], &[svc])
                .iter()
                .map(|(a, _)| a.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(l2_names(&web), ["web-only"]);
        assert_eq!(l2_names(&cache), ["db-only"]);
        assert!(l2_names(&other).is_empty());
        // `db-only` selects only zone b, so only b may announce the cache Service.
        assert_eq!(l2_eligible_nodes(&idx, ip("10.200.0.6"), &[&cache]), ["b"]);
        assert_eq!(
            l2_eligible_nodes(&idx, ip("10.200.0.5"), &[&web]),
            ["a", "b"]
        );
        assert!(l2_eligible_nodes(&idx, ip("10.200.0.7"), &[&other]).is_empty());
        let of_b = l2_advertisements_of_node(&idx, ip("10.200.0.6"), "b", &[&cache]);
        assert_eq!(l2_interfaces(&of_b), ["eth2"]);

        let bgp_names = |svc: &ServiceInfo| {
            bgp_advertisements_of_node(&idx, svc.ips[0], "a", &[svc])
                .iter()
                .map(|(a, _)| a.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(bgp_names(&web), ["bgp-web", "bgp-all"]);
        assert_eq!(bgp_names(&other), ["bgp-all"]);

        // On a shared IP, each advertisement applies to the Services it selects.
        let web2 = service("ns", "other", &["10.200.0.5"], TrafficPolicy::Cluster);
        let applying = bgp_advertisements_applying(&idx, ip("10.200.0.5"), &[&web, &web2]);
        let per_adv: Vec<(String, Vec<String>)> = applying
            .iter()
            .map(|(a, svcs)| {
                (
                    a.name.clone(),
                    svcs.iter().map(|s| s.key.to_string()).collect(),
                )
            })
            .collect();
        assert_eq!(
            per_adv,
            [
                ("bgp-web".to_string(), vec!["ns/web".to_string()]),
                (
                    "bgp-all".to_string(),
                    vec!["ns/web".to_string(), "ns/other".to_string()]
                ),
            ]
        );
    }

    /// MetalLB speaker/layer2_controller.go ShouldAnnounce ("sharedIPWithServiceSelector"): a
    /// Service with `allow-shared-ip` is refused when an advertisement applying to it has
    /// service selectors; advertisements without selectors do not refuse it.
    #[test]
    fn shared_ip_annotation_conflicts_with_service_selectors_in_layer2() {
        let mut c = base_config();
        let mut selective = l2adv("selective", &["lan"], vec![], &[]);
        selective.service_selectors = vec![label_sel("tier", "web")];
        c.l2_advertisements = vec![selective, l2adv("all", &["lan"], vec![], &[])];
        let mut web = labelled(
            service("ns", "web", &["10.200.0.5"], TrafficPolicy::Cluster),
            "tier",
            "web",
        );
        let idx = ClusterIndex::new(c.clone());
        let applying = |svc: &ServiceInfo| {
            l2_shared_ip_with_service_selectors(&l2_advertisements_applying(
                &idx,
                svc.ips[0],
                &[svc],
            ))
        };
        assert!(!applying(&web));
        web.allow_shared_ip = true;
        assert!(applying(&web));
        // Not selected by `selective`: only the selector-free advertisement applies.
        let mut plain = service("ns", "plain", &["10.200.0.6"], TrafficPolicy::Cluster);
        plain.allow_shared_ip = true;
        assert!(!applying(&plain));
    }

    /// MetalLB internal/config/preferred_node_test.go TestPreferredNodeScores: weights of the
    /// matching preferences add up; an empty preference matches every node; nodes outside the
    /// advertisement's nodeSelectors get nothing from it; scores sum across advertisements
    /// (speaker/layer2_controller.go preferredScoresFor).
    #[test]
    fn preference_scores() {
        use ferrolb_config::NodePreference;
        let pref = |weight: u32, sel: Selector| NodePreference {
            weight,
            selector: sel,
        };
        let mut cumulative = l2adv("cumulative", &["lan"], vec![], &[]);
        cumulative.preferred_nodes = vec![
            pref(60, label_sel("zone", "primary")),
            pref(50, label_sel("role", "edge")),
        ];
        let edge_a = node("edge-a", &[("role", "edge"), ("zone", "primary")], true);
        let edge_b = node("edge-b", &[("role", "edge"), ("zone", "secondary")], true);
        let worker_a = node("worker-a", &[("role", "worker"), ("zone", "primary")], true);
        let worker_b = node("worker-b", &[("role", "worker")], true);
        let scores = |advs: &[&L2Advertisement]| {
            [&edge_a, &edge_b, &worker_a, &worker_b].map(|n| l2_preference(advs, n))
        };
        assert_eq!(scores(&[&cumulative]), [110, 50, 60, 0]);
        assert_eq!(scores(&[]), [0, 0, 0, 0]);

        let mut everyone = l2adv("everyone", &["lan"], vec![], &[]);
        everyone.preferred_nodes = vec![pref(10, Selector::everything())];
        assert_eq!(scores(&[&everyone]), [10, 10, 10, 10]);
        assert_eq!(scores(&[&cumulative, &everyone]), [120, 60, 70, 10]);

        // Only nodes selected by the advertisement's nodeSelectors are scored by it.
        let mut edge_only = l2adv("edge-only", &["lan"], vec![label_sel("role", "edge")], &[]);
        edge_only.preferred_nodes = vec![pref(100, label_sel("zone", "primary"))];
        assert_eq!(scores(&[&edge_only]), [100, 0, 0, 0]);

        let mut nomatch = l2adv("nomatch", &["lan"], vec![], &[]);
        nomatch.preferred_nodes = vec![pref(50, label_sel("role", "gpu"))];
        assert_eq!(scores(&[&nomatch]), [0, 0, 0, 0]);
    }
}
