//! What this node must announce, computed from the whole index (level-triggered).
//!
//! [`desired_announcements`] is the whole truth at one instant: the caller diffs two results
//! and applies the difference (gratuitous ARP / unsolicited NA on a gained IP, UPDATE or
//! withdraw per peer). Everything is sorted so equal inputs give equal outputs, which keeps
//! those diffs empty when nothing changed.
//!
//! Merging rules for BGP, where several IPs, Services and advertisements meet:
//! - IPs aggregate to `aggregationLength` / `aggregationLengthV6` (10.0.0.5 with 24 gives
//!   10.0.0.0/24); a prefix reached from several IPs or Services is advertised once, listing
//!   them all.
//! - When several advertisements give the same prefix to the same peer, communities are the
//!   union (as MetalLB's FRR configuration does: each advertisement adds its communities with
//!   `set community … additive`), and LOCAL_PREF is the highest one set. MetalLB applies its
//!   LOCAL_PREF route-map entries in sequence with `on-match next`, so there the winner
//!   depends on the order of advertisements; taking the highest is deterministic and favours
//!   the most preferred intent.

use crate::bgp::RouteAttributes;
use crate::election::elect_preferred;
use crate::eligibility::{
    any_serving_endpoint, bgp_advertisements_applying, bgp_advertisements_for,
    bgp_advertisements_of_node, l2_advertisements_applying, l2_advertisements_for,
    l2_advertisements_of_node, l2_carrier_blocks, l2_eligible_nodes, l2_interfaces, l2_preference,
    l2_shared_ip_with_service_selectors, peers_for,
};
use crate::index::{ClusterIndex, ServiceInfo};
use crate::layer2::carrier::NoCarrier;
use ferrolb_config::{BgpAdvertisement, CommunityValue, L2Advertisement};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// A layer 2 IP this node answers ARP / NDP for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L2Announcement {
    /// The address.
    pub ip: IpAddr,
    /// Services (`namespace/name`) using it, sorted.
    pub services: Vec<String>,
    /// Interfaces to answer on, sorted; empty means automatic.
    pub interfaces: Vec<String>,
}

/// The elected owner of one layer 2 IP, whichever node it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L2Owner {
    /// The address.
    pub ip: IpAddr,
    /// Services (`namespace/name`) using it, sorted.
    pub services: Vec<String>,
    /// The owner, or `None` when no node is eligible.
    pub owner: Option<String>,
}

/// A prefix this node advertises over BGP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgpAnnouncement {
    /// The (possibly aggregated) prefix.
    pub prefix: IpNet,
    /// Service IPs it covers on this node, sorted.
    pub ips: Vec<IpAddr>,
    /// Services (`namespace/name`) it carries, sorted.
    pub services: Vec<String>,
    /// Attributes per peer name; only peers that receive the prefix are present.
    pub peers: BTreeMap<String, RouteAttributes>,
}

/// Why an IP of one of our Services is announced by no mode at all.
///
/// Declared in the order an address moves through the decision (pool, advertisement, mode,
/// service selectors, endpoints, nodes): when layer 2 and BGP both fail for an address, the
/// reason of the mode that got further is reported, being the one closest to announcing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NotAnnouncedReason {
    /// The IP lies in no pool of the configuration in force.
    NoPool,
    /// The IP's pool is selected by no L2Advertisement and no BGPAdvertisement.
    NoAdvertisement,
    /// The IP's pool is advertised only in modes the speakers run with turned off
    /// (`--disable-layer2`, `--disable-bgp`).
    ModeDisabled,
    /// Advertisements select the IP's pool, but their `serviceSelectors` match none of the
    /// Services using it (MetalLB speaker: "noMatchingAdvertisement").
    NoMatchingAdvertisement,
    /// Layer 2 only: a Service using the IP carries `allow-shared-ip` and an L2Advertisement
    /// applying to it has `serviceSelectors` (MetalLB speaker: "sharedIPWithServiceSelector").
    SharedIpWithServiceSelectors,
    /// None of the Services using the IP has an endpoint that can serve (ready, or terminating
    /// but still serving), on any node (MetalLB speaker: "noEndpoints").
    NoServingEndpoint,
    /// The IP's pool is advertised in layer 2 only, and no node is eligible to announce it.
    NoEligibleNode,
}

impl NotAnnouncedReason {
    /// Every reason, for metrics that report zero too.
    pub const ALL: [NotAnnouncedReason; 7] = [
        NotAnnouncedReason::NoPool,
        NotAnnouncedReason::NoAdvertisement,
        NotAnnouncedReason::ModeDisabled,
        NotAnnouncedReason::NoMatchingAdvertisement,
        NotAnnouncedReason::SharedIpWithServiceSelectors,
        NotAnnouncedReason::NoServingEndpoint,
        NotAnnouncedReason::NoEligibleNode,
    ];

    /// A stable name for the status API and metrics.
    pub fn code(self) -> &'static str {
        match self {
            NotAnnouncedReason::NoPool => "NoPool",
            NotAnnouncedReason::NoAdvertisement => "NoAdvertisement",
            NotAnnouncedReason::ModeDisabled => "ModeDisabled",
            NotAnnouncedReason::NoMatchingAdvertisement => "NoMatchingAdvertisement",
            NotAnnouncedReason::SharedIpWithServiceSelectors => "SharedIPWithServiceSelectors",
            NotAnnouncedReason::NoServingEndpoint => "NoServingEndpoint",
            NotAnnouncedReason::NoEligibleNode => "NoEligibleNode",
        }
    }

    /// What a person should read: why, and where to look.
    pub fn message(self) -> &'static str {
        match self {
            NotAnnouncedReason::NoPool => {
                "the address lies in no IPAddressPool of the configuration in force"
            }
            NotAnnouncedReason::NoAdvertisement => {
                "its IPAddressPool is selected by no L2Advertisement and no BGPAdvertisement"
            }
            NotAnnouncedReason::ModeDisabled => {
                "its IPAddressPool is advertised only in a mode the speakers run with turned off \
                 (--disable-layer2 / --disable-bgp)"
            }
            NotAnnouncedReason::NoMatchingAdvertisement => {
                "the advertisements selecting its IPAddressPool have serviceSelectors matching \
                 none of the Services using it: check the selectors against the Services' labels"
            }
            NotAnnouncedReason::SharedIpWithServiceSelectors => {
                "a Service using it has the allow-shared-ip annotation and an L2Advertisement \
                 applying to it has serviceSelectors, a combination layer 2 refuses: remove the \
                 annotation or the selectors"
            }
            NotAnnouncedReason::NoServingEndpoint => {
                "none of the Services using it has a ready (or terminating but still serving) \
                 endpoint: check the Services' pods and their readiness"
            }
            NotAnnouncedReason::NoEligibleNode => {
                "no node may announce it in layer 2: check the L2Advertisements' nodeSelectors, \
                 that the nodes are Ready, without NetworkUnavailable and not labelled \
                 node.kubernetes.io/exclude-from-external-load-balancers (unless the speakers run \
                 with --ignore-exclude-lb), that their speakers are alive, that the interfaces \
                 the L2Advertisements select have carrier on them, and, with \
                 externalTrafficPolicy Local, that a node runs a ready endpoint"
            }
        }
    }
}

/// The announcement modes the speakers run. The flags that set them are DaemonSet-wide (every
/// speaker gets the same), so every node computes the same layer 2 election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Modes {
    /// Answer ARP / NDP for layer 2 addresses.
    pub layer2: bool,
    /// Advertise addresses to BGP peers.
    pub bgp: bool,
}

impl Modes {
    /// Layer 2 and BGP, the default.
    pub const ALL: Modes = Modes {
        layer2: true,
        bgp: true,
    };
}

/// An IP that is not announced anywhere, with the reason (cluster-wide, not per node).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotAnnounced {
    /// The address.
    pub ip: IpAddr,
    /// Services (`namespace/name`) using it, sorted.
    pub services: Vec<String>,
    /// Why.
    pub reason: NotAnnouncedReason,
}

/// Everything this node must announce, sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    /// Layer 2 IPs this node owns, by IP.
    pub layer2: Vec<L2Announcement>,
    /// BGP prefixes this node advertises, by prefix.
    pub bgp: Vec<BgpAnnouncement>,
    /// Owner of every layer 2 IP, by IP (for `nodeAssigned` events when it changes).
    pub l2_owners: Vec<L2Owner>,
    /// IPs no mode announces, by IP.
    pub not_announced: Vec<NotAnnounced>,
    /// Nodes owning a layer 2 IP that this node would own next (second in the election):
    /// the ones whose heartbeats to watch.
    pub l2_successor_of: BTreeSet<String>,
    /// The layer 2 IPs this node would own next, with the interfaces it would announce them
    /// on: the announcer keeps those interfaces ready so a takeover only has to answer.
    pub l2_standby: Vec<L2Announcement>,
    /// Layer 2 IPs this node would be eligible for but for carrier: every other check passes
    /// under some advertisement, and none of the interfaces those select has carrier. By IP.
    pub l2_no_carrier: Vec<L2NoCarrier>,
}

/// A layer 2 IP this node does not announce because its announcing interfaces have no
/// carrier ([`crate::layer2::carrier`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L2NoCarrier {
    /// The address.
    pub ip: IpAddr,
    /// Services (`namespace/name`) using it, sorted.
    pub services: Vec<String>,
    /// Why, per advertisement under which carrier is all the node lacks (deduplicated).
    pub reasons: Vec<NoCarrier>,
}

/// Computes what `my_node` must announce from the whole index.
pub fn desired_announcements(index: &ClusterIndex, my_node: &str) -> Desired {
    desired_announcements_in(index, my_node, Modes::ALL)
}

/// [`desired_announcements`] with only the given modes running: an address advertised only in
/// a mode that is off is reported as [`NotAnnouncedReason::ModeDisabled`].
pub fn desired_announcements_in(index: &ClusterIndex, my_node: &str, modes: Modes) -> Desired {
    assemble(
        services_by_ip(index)
            .into_iter()
            .map(|(ip, services)| decide_ip(index, my_node, modes, ip, &services)),
    )
}

/// What one IP contributes to a [`Desired`]. An IP's decisions read the configuration, the
/// nodes, the membership and the links, but of the Services only those using it (with their
/// endpoints): a [`Desired`] is its IPs' decisions merged, which lets a pass that knows which
/// Services changed decide again for their IPs only ([`crate::pass::IncrementalPass`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct IpDecision {
    /// This node's layer 2 announcement of the IP.
    pub(crate) layer2: Option<L2Announcement>,
    /// The IP as this node's standby.
    pub(crate) l2_standby: Option<L2Announcement>,
    /// The owner this node would replace.
    pub(crate) l2_successor_of: Option<String>,
    /// Why carrier keeps the IP from this node.
    pub(crate) l2_no_carrier: Option<L2NoCarrier>,
    /// The IP's layer 2 owner, when layer 2 decided on it.
    pub(crate) l2_owner: Option<L2Owner>,
    /// Why no mode announces the IP.
    pub(crate) not_announced: Option<NotAnnounced>,
    /// This node's routes for the IP, by prefix.
    pub(crate) bgp: BTreeMap<IpNet, BgpRoutes>,
}

/// Merges the decisions of IPs in ascending order into what this node announces.
pub(crate) fn assemble(decisions: impl IntoIterator<Item = IpDecision>) -> Desired {
    let mut desired = Desired::default();
    let mut bgp: BTreeMap<IpNet, BgpRoutes> = BTreeMap::new();
    for d in decisions {
        desired.layer2.extend(d.layer2);
        desired.l2_standby.extend(d.l2_standby);
        desired.l2_successor_of.extend(d.l2_successor_of);
        desired.l2_no_carrier.extend(d.l2_no_carrier);
        desired.l2_owners.extend(d.l2_owner);
        desired.not_announced.extend(d.not_announced);
        for (prefix, routes) in d.bgp {
            match bgp.entry(prefix) {
                Entry::Vacant(e) => {
                    e.insert(routes);
                }
                Entry::Occupied(mut e) => e.get_mut().merge(&routes),
            }
        }
    }
    desired.bgp = bgp
        .into_iter()
        .map(|(prefix, routes)| routes.announcement(prefix))
        .collect();
    desired
}

/// Decides one IP of our Services; `services` are the Services using it, sorted by key.
pub(crate) fn decide_ip(
    index: &ClusterIndex,
    my_node: &str,
    modes: Modes,
    ip: IpAddr,
    services: &[&ServiceInfo],
) -> IpDecision {
    let config = index.config();
    let mut decision = IpDecision::default();
    let names = service_names(services);
    let Some(pool) = index.pool_for(ip) else {
        decision.not_announced = Some(NotAnnounced {
            ip,
            services: names,
            reason: NotAnnouncedReason::NoPool,
        });
        return decision;
    };

    let l2_advertised = l2_advertisements_for(config, &pool.name).next().is_some();
    let l2 = if !l2_advertised {
        Some(NotAnnouncedReason::NoAdvertisement)
    } else if !modes.layer2 {
        Some(NotAnnouncedReason::ModeDisabled)
    } else {
        layer2_for_ip(index, my_node, ip, services, &names, &mut decision)
    };

    let bgp_advertised = bgp_advertisements_for(config, &pool.name).next().is_some();
    let bgp_reason = if !bgp_advertised {
        Some(NotAnnouncedReason::NoAdvertisement)
    } else if !modes.bgp {
        Some(NotAnnouncedReason::ModeDisabled)
    } else {
        bgp_for_ip(index, my_node, ip, services, &mut decision.bgp)
    };

    // Announced in one mode (by this node or, in BGP, possibly by others): nothing to say.
    if let (Some(l2), Some(b)) = (l2, bgp_reason) {
        decision.not_announced = Some(NotAnnounced {
            ip,
            services: names,
            reason: l2.max(b),
        });
    }
    decision
}

/// The layer 2 decision for one IP: records its owner (and this node's announcement or
/// standby), and returns why no node announces it, if none does.
fn layer2_for_ip(
    index: &ClusterIndex,
    my_node: &str,
    ip: IpAddr,
    services: &[&ServiceInfo],
    names: &[String],
    decision: &mut IpDecision,
) -> Option<NotAnnouncedReason> {
    let applying = l2_advertisements_applying(index, ip, services);
    let blocked = if applying.is_empty() {
        Some(NotAnnouncedReason::NoMatchingAdvertisement)
    } else if l2_shared_ip_with_service_selectors(&applying) {
        Some(NotAnnouncedReason::SharedIpWithServiceSelectors)
    } else if !applying
        .iter()
        .any(|(_, svcs)| any_serving_endpoint(index, svcs))
    {
        Some(NotAnnouncedReason::NoServingEndpoint)
    } else {
        None
    };
    let advs: Vec<&L2Advertisement> = applying.iter().map(|(a, _)| *a).collect();
    let candidates: Vec<(&str, u64)> = if blocked.is_some() {
        Vec::new()
    } else {
        l2_eligible_nodes(index, ip, services)
            .into_iter()
            .map(|n| {
                (
                    n,
                    index.node(n).map_or(0, |info| l2_preference(&advs, info)),
                )
            })
            .collect()
    };
    let owner = elect_preferred(ip, candidates.iter().copied()).map(str::to_string);
    if let Some(o) = owner.as_deref()
        && o != my_node
        && elect_preferred(ip, candidates.iter().copied().filter(|(n, _)| *n != o)) == Some(my_node)
    {
        decision.l2_successor_of = Some(o.to_string());
        let mine = l2_advertisements_of_node(index, ip, my_node, services);
        decision.l2_standby = Some(L2Announcement {
            ip,
            services: names.to_vec(),
            interfaces: l2_interfaces(&mine),
        });
    }
    if owner.as_deref() == Some(my_node) {
        let mine = l2_advertisements_of_node(index, ip, my_node, services);
        decision.layer2 = Some(L2Announcement {
            ip,
            services: names.to_vec(),
            interfaces: l2_interfaces(&mine),
        });
    }
    if blocked.is_none()
        && index.node_links(my_node).is_some()
        && !candidates.iter().any(|(n, _)| *n == my_node)
    {
        let reasons = l2_carrier_blocks(index, ip, my_node, services);
        if !reasons.is_empty() {
            decision.l2_no_carrier = Some(L2NoCarrier {
                ip,
                services: names.to_vec(),
                reasons,
            });
        }
    }
    let no_owner = owner.is_none();
    decision.l2_owner = Some(L2Owner {
        ip,
        services: names.to_vec(),
        owner,
    });
    blocked.or(no_owner.then_some(NotAnnouncedReason::NoEligibleNode))
}

/// The BGP decision for one IP: adds this node's routes for it to `bgp`, and returns why no
/// node advertises it when that is known cluster-wide (whether another node advertises it
/// depends on that node's eligibility and sessions, which are its own to report).
fn bgp_for_ip(
    index: &ClusterIndex,
    my_node: &str,
    ip: IpAddr,
    services: &[&ServiceInfo],
    bgp: &mut BTreeMap<IpNet, BgpRoutes>,
) -> Option<NotAnnouncedReason> {
    let applying = bgp_advertisements_applying(index, ip, services);
    if applying.is_empty() {
        return Some(NotAnnouncedReason::NoMatchingAdvertisement);
    }
    if !applying
        .iter()
        .any(|(_, svcs)| any_serving_endpoint(index, svcs))
    {
        return Some(NotAnnouncedReason::NoServingEndpoint);
    }
    // An unknown local node advertises nothing; the address may still be advertised by others.
    if let Some(me) = index.node(my_node) {
        for (adv, svcs) in bgp_advertisements_of_node(index, ip, my_node, services) {
            let peers = peers_for(index.config(), adv, me);
            if peers.is_empty() {
                continue;
            }
            let acc = bgp.entry(aggregate(ip, adv)).or_default();
            acc.ips.insert(ip);
            acc.services.extend(service_names(&svcs));
            for p in peers {
                merge(acc.peers.entry(p.name.clone()).or_default(), adv);
            }
        }
    }
    None
}

/// Routes to one prefix, from one IP or merged from several.
#[derive(Clone, Debug, Default)]
pub(crate) struct BgpRoutes {
    ips: BTreeSet<IpAddr>,
    services: BTreeSet<String>,
    peers: BTreeMap<String, AttrAcc>,
}

impl BgpRoutes {
    /// Adds `other`'s IPs, Services and peers. Unions and the highest LOCAL_PREF: the order in
    /// which routes are merged never matters.
    pub(crate) fn merge(&mut self, other: &BgpRoutes) {
        self.ips.extend(other.ips.iter().copied());
        self.services.extend(other.services.iter().cloned());
        for (name, attrs) in &other.peers {
            let acc = self.peers.entry(name.clone()).or_default();
            acc.local_pref = acc.local_pref.max(attrs.local_pref);
            acc.communities.extend(attrs.communities.iter().copied());
        }
    }

    /// The announcement of `prefix` these routes make.
    pub(crate) fn announcement(self, prefix: IpNet) -> BgpAnnouncement {
        BgpAnnouncement {
            prefix,
            ips: self.ips.into_iter().collect(),
            services: self.services.into_iter().collect(),
            peers: self
                .peers
                .into_iter()
                .map(|(name, a)| {
                    let attrs = RouteAttributes {
                        local_pref: a.local_pref,
                        communities: a.communities.into_iter().collect(),
                    };
                    (name, attrs)
                })
                .collect(),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct AttrAcc {
    local_pref: Option<u32>,
    communities: BTreeSet<CommunityValue>,
}

fn merge(acc: &mut AttrAcc, adv: &BgpAdvertisement) {
    // `Option`'s order puts `None` below every value, so `max` keeps the highest one set.
    acc.local_pref = acc.local_pref.max(adv.local_pref);
    acc.communities.extend(adv.communities.iter().copied());
}

/// Our Services' IPs, each with the Services using it (sorted by key; IPs ascending).
fn services_by_ip(index: &ClusterIndex) -> BTreeMap<IpAddr, Vec<&ServiceInfo>> {
    let mut by_ip: BTreeMap<IpAddr, Vec<&ServiceInfo>> = BTreeMap::new();
    for svc in index.services().filter(|s| s.ours) {
        for ip in &svc.ips {
            by_ip.entry(*ip).or_default().push(svc);
        }
    }
    by_ip
}

fn service_names(services: &[&ServiceInfo]) -> Vec<String> {
    services.iter().map(|s| s.key.to_string()).collect()
}

/// The prefix `ip` is advertised as under `adv`. Lengths beyond the family's width (validation
/// prevents them) are clamped, so the function is total.
pub fn aggregate(ip: IpAddr, adv: &BgpAdvertisement) -> IpNet {
    match ip {
        IpAddr::V4(v4) => Ipv4Net::new(v4, adv.aggregation_length.min(32))
            .map(|n| IpNet::V4(n.trunc()))
            .unwrap_or_else(|_| IpNet::from(ip)),
        IpAddr::V6(v6) => Ipv6Net::new(v6, adv.aggregation_length_v6.min(128))
            .map(|n| IpNet::V6(n.trunc()))
            .unwrap_or_else(|_| IpNet::from(ip)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::election::elect;
    use crate::eligibility::tests::{
        bgpadv, endpoints, ip, l2adv, label_sel, node, peer, pool, service,
    };
    use crate::index::NodeInfo;
    use ferrolb_api::annotations::EXCLUDE_FROM_LB_LABEL;
    use ferrolb_api::service::TrafficPolicy;
    use ferrolb_config::Config;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn net(s: &str) -> IpNet {
        s.parse().expect("test prefix")
    }

    fn config() -> Config {
        let mut c = Config::default();
        for p in [
            pool(
                "l2pool",
                &[
                    ("10.200.0.0", "10.200.0.255"),
                    ("fd00:200::", "fd00:200::ffff"),
                ],
            ),
            pool("bgppool", &[("10.210.0.0", "10.210.1.255")]),
            pool("dark", &[("10.220.0.0", "10.220.0.255")]),
        ] {
            c.pools.insert(p.name.clone(), p);
        }
        c.l2_advertisements = vec![
            l2adv("l2-a", &["l2pool"], vec![], &["eth1"]),
            l2adv("l2-b", &["l2pool"], vec![label_sel("zone", "b")], &["eth2"]),
        ];
        let mut agg = bgpadv("agg", &["bgppool"], vec![], &["tor"]);
        agg.aggregation_length = 24;
        agg.local_pref = Some(100);
        agg.communities = vec![CommunityValue::Standard(65000 << 16 | 1)];
        let mut host = bgpadv("host", &["bgppool"], vec![], &[]);
        host.local_pref = Some(50);
        let mut agg2 = bgpadv("agg2", &["bgppool"], vec![], &["tor"]);
        agg2.aggregation_length = 24;
        agg2.local_pref = Some(200);
        agg2.communities = vec![
            CommunityValue::Standard(65000 << 16 | 1),
            CommunityValue::Large(64500, 1, 2),
        ];
        c.bgp_advertisements = vec![agg, agg2, host];
        for p in [
            peer("tor", vec![]),
            peer("spine", vec![label_sel("spine", "yes")]),
        ] {
            c.peers.insert(p.name.clone(), p);
        }
        c
    }

    /// Adds `svc`; a `Cluster` Service also gets an endpoint that can serve (on no particular
    /// node), since without one it is announced nowhere (MetalLB bgp_controller.go
    /// hasHealthyEndpoint, layer2_controller.go activeEndpointExists).
    fn upsert_served(idx: &mut ClusterIndex, svc: ServiceInfo) {
        if svc.traffic_policy == TrafficPolicy::Cluster {
            let mut anywhere = endpoints(&svc.key.namespace, &svc.key.name, &[]);
            anywhere.name = format!("{}-anywhere", svc.key.name);
            anywhere.any_serving = true;
            idx.upsert_endpoint_slice(anywhere);
        }
        idx.upsert_service(svc);
    }

    fn index() -> ClusterIndex {
        let mut idx = ClusterIndex::new(config());
        idx.upsert_node(node("a", &[("spine", "yes")], true));
        idx.upsert_node(node("b", &[("zone", "b")], true));
        idx.upsert_node(node("c", &[], true));
        idx
    }

    #[test]
    fn l2_owner_is_elected_among_eligible_nodes_and_only_it_announces() {
        let mut idx = index();
        upsert_served(
            &mut idx,
            service(
                "web",
                "shop",
                &["10.200.0.10", "fd00:200::10"],
                TrafficPolicy::Cluster,
            ),
        );
        let mut owners_seen = BTreeSet::new();
        for me in ["a", "b", "c"] {
            let d = desired_announcements(&idx, me);
            assert_eq!(d.l2_owners.len(), 2);
            for o in &d.l2_owners {
                let expected = elect(o.ip, ["a", "b", "c"]).map(str::to_string);
                assert_eq!(o.owner, expected);
                assert_eq!(o.services, ["web/shop"]);
            }
            for a in &d.layer2 {
                owners_seen.insert((a.ip, me));
                let o = d
                    .l2_owners
                    .iter()
                    .find(|o| o.ip == a.ip)
                    .expect("owner listed");
                assert_eq!(o.owner.as_deref(), Some(me));
                // Node b matches both advertisements; the others only l2-a.
                let want: &[&str] = if me == "b" {
                    &["eth1", "eth2"]
                } else {
                    &["eth1"]
                };
                assert_eq!(a.interfaces, want);
            }
            assert!(d.bgp.is_empty());
            assert!(d.not_announced.is_empty());
        }
        // Each IP is announced by exactly one node.
        assert_eq!(owners_seen.len(), 2);
        assert_eq!(
            owners_seen
                .iter()
                .map(|(i, _)| *i)
                .collect::<BTreeSet<_>>()
                .len(),
            2
        );
    }

    #[test]
    fn shared_ip_is_announced_once_listing_both_services() {
        let mut idx = index();
        upsert_served(
            &mut idx,
            service("web", "http", &["10.200.0.7"], TrafficPolicy::Cluster),
        );
        upsert_served(
            &mut idx,
            service("web", "https", &["10.200.0.7"], TrafficPolicy::Cluster),
        );
        let owner = elect(ip("10.200.0.7"), ["a", "b", "c"]).expect("eligible");
        let d = desired_announcements(&idx, owner);
        assert_eq!(d.layer2.len(), 1);
        assert_eq!(d.layer2[0].services, ["web/http", "web/https"]);
    }

    #[test]
    fn local_policy_moves_owner_to_endpoint_node() {
        let mut idx = index();
        upsert_served(
            &mut idx,
            service("web", "shop", &["10.200.0.10"], TrafficPolicy::Local),
        );
        let d = desired_announcements(&idx, "a");
        assert_eq!(d.l2_owners[0].owner, None, "no endpoint anywhere");
        assert!(d.layer2.is_empty());
        for only in ["a", "b", "c"] {
            idx.upsert_endpoint_slice(endpoints("web", "shop", &[only]));
            let d = desired_announcements(&idx, only);
            assert_eq!(d.l2_owners[0].owner.as_deref(), Some(only));
            assert_eq!(d.layer2.len(), 1);
        }
    }

    #[test]
    fn dead_member_loses_only_its_ips() {
        let mut idx = index();
        let ips: Vec<String> = (1..=60).map(|i| format!("10.200.0.{i}")).collect();
        let refs: Vec<&str> = ips.iter().map(String::as_str).collect();
        upsert_served(
            &mut idx,
            service("web", "many", &refs, TrafficPolicy::Cluster),
        );
        let all = |idx: &ClusterIndex| -> BTreeMap<IpAddr, Option<String>> {
            desired_announcements(idx, "a")
                .l2_owners
                .into_iter()
                .map(|o| (o.ip, o.owner))
                .collect()
        };
        let before = all(&idx);
        idx.set_members_alive(Some(BTreeSet::from(["a".to_string(), "c".to_string()])));
        let after = all(&idx);
        let mut moved = 0;
        for (ip, owner) in &before {
            if owner.as_deref() == Some("b") {
                moved += 1;
                assert!(matches!(after[ip].as_deref(), Some("a" | "c")));
            } else {
                assert_eq!(&after[ip], owner);
            }
        }
        assert!(moved > 0, "b owned none of 60 IPs");
    }

    #[test]
    fn each_node_watches_the_owners_it_would_replace() {
        let mut idx = index();
        let ips: Vec<String> = (1..=60).map(|i| format!("10.200.0.{i}")).collect();
        let refs: Vec<&str> = ips.iter().map(String::as_str).collect();
        upsert_served(
            &mut idx,
            service("web", "many", &refs, TrafficPolicy::Cluster),
        );
        // The successor of each IP's owner is whoever owns it once the owner is dead: check
        // every node's watch list against the election run without the owner.
        let mut expected: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        let mut standby: BTreeMap<&str, BTreeSet<IpAddr>> = BTreeMap::new();
        for o in desired_announcements(&idx, "a").l2_owners {
            let owner = o.owner.expect("elected");
            let rest: Vec<&str> = ["a", "b", "c"]
                .into_iter()
                .filter(|n| *n != owner)
                .collect();
            let successor = elect(o.ip, rest).expect("two candidates left");
            expected.entry(successor).or_default().insert(owner);
            standby.entry(successor).or_default().insert(o.ip);
        }
        for me in ["a", "b", "c"] {
            let d = desired_announcements(&idx, me);
            // The IPs kept ready are exactly those this node would take over, never its own.
            let ready: BTreeSet<IpAddr> = d.l2_standby.iter().map(|a| a.ip).collect();
            assert_eq!(ready, standby.get(me).cloned().unwrap_or_default(), "{me}");
            assert!(d.layer2.iter().all(|a| !ready.contains(&a.ip)));
            assert!(d.l2_standby.iter().all(|a| a.services == ["web/many"]));
            let watched = d.l2_successor_of;
            assert_eq!(
                watched,
                expected.get(me).cloned().unwrap_or_default(),
                "{me}"
            );
            assert!(!watched.contains(me));
        }
        // With 60 IPs over three nodes every node is some owner's successor.
        assert_eq!(expected.len(), 3, "{expected:?}");
        // Only eligible nodes count: with b excluded from membership, a and c watch each
        // other only.
        idx.set_members_alive(Some(BTreeSet::from(["a".to_string(), "c".to_string()])));
        assert_eq!(
            desired_announcements(&idx, "a").l2_successor_of,
            BTreeSet::from(["c".to_string()])
        );
        // A single eligible node has no successor.
        idx.set_members_alive(Some(BTreeSet::from(["a".to_string()])));
        assert!(desired_announcements(&idx, "a").l2_successor_of.is_empty());
    }

    #[test]
    fn services_not_ours_or_without_ips_are_ignored() {
        let mut idx = index();
        let mut theirs = service("web", "theirs", &["10.200.0.10"], TrafficPolicy::Cluster);
        theirs.ours = false;
        idx.upsert_service(theirs);
        upsert_served(
            &mut idx,
            service("web", "pending", &[], TrafficPolicy::Cluster),
        );
        assert_eq!(desired_announcements(&idx, "a"), Desired::default());
    }

    #[test]
    fn not_announced_reasons() {
        let mut idx = index();
        upsert_served(
            &mut idx,
            service("web", "dark", &["10.220.0.1"], TrafficPolicy::Cluster),
        );
        upsert_served(
            &mut idx,
            service("web", "stray", &["192.0.2.1"], TrafficPolicy::Cluster),
        );
        let d = desired_announcements(&idx, "a");
        let got: Vec<(IpAddr, NotAnnouncedReason)> =
            d.not_announced.iter().map(|n| (n.ip, n.reason)).collect();
        assert_eq!(
            got,
            [
                (ip("10.220.0.1"), NotAnnouncedReason::NoAdvertisement),
                (ip("192.0.2.1"), NotAnnouncedReason::NoPool),
            ]
        );
        assert!(d.l2_owners.is_empty() && d.layer2.is_empty() && d.bgp.is_empty());
    }

    #[test]
    fn a_layer2_address_no_node_may_announce_is_reported() {
        let mut idx = index();
        // externalTrafficPolicy Local with its only ready endpoint on a node that is not
        // Ready: no node is eligible.
        idx.upsert_node(node("d", &[], false));
        idx.upsert_endpoint_slice(endpoints("web", "local", &["d"]));
        upsert_served(
            &mut idx,
            service("web", "local", &["10.200.0.11"], TrafficPolicy::Local),
        );
        for me in ["a", "b", "c"] {
            let d = desired_announcements(&idx, me);
            assert!(d.layer2.is_empty(), "{me}: {d:?}");
            assert_eq!(d.l2_owners.len(), 1);
            assert_eq!(d.l2_owners[0].owner, None);
            let reasons: Vec<_> = d.not_announced.iter().map(|n| (n.ip, n.reason)).collect();
            assert_eq!(
                reasons,
                [(ip("10.200.0.11"), NotAnnouncedReason::NoEligibleNode)]
            );
        }
        // A BGP address is not reported here even where this node has no route for it: other
        // nodes may advertise it.
        let mut idx = index();
        idx.upsert_endpoint_slice(endpoints("web", "bgp", &["b"]));
        upsert_served(
            &mut idx,
            service("web", "bgp", &["10.210.0.5"], TrafficPolicy::Local),
        );
        let d = desired_announcements(&idx, "a");
        assert!(d.bgp.is_empty() && d.not_announced.is_empty(), "{d:?}");
    }

    /// MetalLB speaker/bgp_controller.go ShouldAnnounce ("noEndpoints", "noLocalEndpoints")
    /// and speaker/layer2_controller.go activeEndpointExists: without an endpoint that can
    /// serve anywhere nobody announces, whatever the policy and mode, and every speaker says
    /// so; an endpoint serving while terminating keeps the address announced (MetalLB
    /// internal/k8s/epslices EndpointCanServe, applied by `index::endpoint_slice_from_k8s`).
    #[test]
    fn no_serving_endpoint_is_announced_nowhere_and_reported() {
        let mut idx = index();
        for (name, ip, policy) in [
            ("l2-cluster", "10.200.0.20", TrafficPolicy::Cluster),
            ("l2-local", "10.200.0.21", TrafficPolicy::Local),
            ("bgp-cluster", "10.210.0.20", TrafficPolicy::Cluster),
            ("bgp-local", "10.210.0.21", TrafficPolicy::Local),
        ] {
            idx.upsert_service(service("web", name, &[ip], policy));
        }
        for me in ["a", "b", "c"] {
            let d = desired_announcements(&idx, me);
            assert!(d.layer2.is_empty() && d.bgp.is_empty(), "{me}: {d:?}");
            assert!(d.l2_owners.iter().all(|o| o.owner.is_none()));
            let reasons: Vec<_> = d.not_announced.iter().map(|n| (n.ip, n.reason)).collect();
            assert_eq!(
                reasons,
                [
                    (ip("10.200.0.20"), NotAnnouncedReason::NoServingEndpoint),
                    (ip("10.200.0.21"), NotAnnouncedReason::NoServingEndpoint),
                    (ip("10.210.0.20"), NotAnnouncedReason::NoServingEndpoint),
                    (ip("10.210.0.21"), NotAnnouncedReason::NoServingEndpoint),
                ]
            );
        }
        // One terminating-but-serving endpoint of the Cluster Services, on node c.
        for name in ["l2-cluster", "bgp-cluster"] {
            idx.upsert_endpoint_slice(endpoints("web", name, &["c"]));
        }
        let all: Vec<Desired> = ["a", "b", "c"]
            .iter()
            .map(|me| desired_announcements(&idx, me))
            .collect();
        let l2: Vec<IpAddr> = all.iter().flat_map(|d| &d.layer2).map(|a| a.ip).collect();
        assert_eq!(l2, [ip("10.200.0.20")]);
        // With Cluster every node advertises over BGP, not only c.
        assert!(
            all.iter()
                .all(|d| d.bgp.iter().any(|b| b.ips == [ip("10.210.0.20")]))
        );
        let reasons: Vec<_> = all[0].not_announced.iter().map(|n| n.ip).collect();
        assert_eq!(reasons, [ip("10.200.0.21"), ip("10.210.0.21")]);
    }

    /// MetalLB speaker/layer2_controller.go speakersForAds and bgp_controller.go ShouldAnnounce
    /// ("nodeNetworkUnavailable"): a node whose NetworkUnavailable condition is True neither
    /// owns a layer 2 address nor advertises over BGP.
    #[test]
    fn network_unavailable_node_announces_nothing() {
        let mut idx = index();
        let ips: Vec<String> = (1..=30).map(|i| format!("10.200.0.{i}")).collect();
        let refs: Vec<&str> = ips.iter().map(String::as_str).collect();
        upsert_served(
            &mut idx,
            service("web", "many", &refs, TrafficPolicy::Cluster),
        );
        upsert_served(
            &mut idx,
            service("web", "bgp", &["10.210.0.5"], TrafficPolicy::Cluster),
        );
        assert!(!desired_announcements(&idx, "b").bgp.is_empty());
        assert!(!desired_announcements(&idx, "b").layer2.is_empty());
        idx.upsert_node(NodeInfo {
            network_unavailable: true,
            ..node("b", &[("zone", "b")], true)
        });
        let d = desired_announcements(&idx, "b");
        assert!(d.layer2.is_empty() && d.bgp.is_empty() && d.l2_standby.is_empty());
        for o in desired_announcements(&idx, "a").l2_owners {
            assert!(matches!(o.owner.as_deref(), Some("a" | "c")), "{o:?}");
        }
    }

    fn preferring(
        mut adv: L2Advertisement,
        weight: u32,
        key: &str,
        value: &str,
    ) -> L2Advertisement {
        adv.preferred_nodes.push(ferrolb_config::NodePreference {
            weight,
            selector: label_sel(key, value),
        });
        adv
    }

    /// MetalLB e2etest/l2tests/preferred_node.go: the preferred node announces instead of the
    /// natural winner; when it is excluded the natural winner takes over, and it reclaims the
    /// address when it returns; a preference every node matches changes nothing. The node
    /// that takes over on failure (heartbeat successor) follows the same ranking.
    #[test]
    fn preferred_node_wins_and_falls_back() {
        let mut c = config();
        c.l2_advertisements = vec![l2adv("pref", &["l2pool"], vec![], &[])];
        let mut idx = ClusterIndex::new(c.clone());
        for n in ["a", "b", "c"] {
            idx.upsert_node(node(n, &[], true));
        }
        let vip = ip("10.200.0.10");
        upsert_served(
            &mut idx,
            service("web", "shop", &["10.200.0.10"], TrafficPolicy::Cluster),
        );
        let owner = |idx: &ClusterIndex| desired_announcements(idx, "a").l2_owners[0].owner.clone();
        let natural = elect(vip, ["a", "b", "c"]).expect("three nodes");
        assert_eq!(owner(&idx).as_deref(), Some(natural));
        let candidate = ["a", "b", "c"]
            .into_iter()
            .find(|n| *n != natural)
            .expect("another node");

        c.l2_advertisements = vec![preferring(
            l2adv("pref", &["l2pool"], vec![], &[]),
            100,
            "preferred",
            "true",
        )];
        idx.set_config(c.clone());
        idx.upsert_node(node(candidate, &[("preferred", "true")], true));
        assert_eq!(owner(&idx).as_deref(), Some(candidate));
        let d = desired_announcements(&idx, candidate);
        assert_eq!(d.layer2.iter().map(|a| a.ip).collect::<Vec<_>>(), [vip]);
        // The natural winner is next in line (equal scores among the rest): it watches the
        // preferred owner and keeps the address ready.
        let successor =
            elect(vip, ["a", "b", "c"].into_iter().filter(|n| *n != candidate)).expect("two left");
        let d = desired_announcements(&idx, successor);
        assert_eq!(d.l2_successor_of, BTreeSet::from([candidate.to_string()]));
        assert_eq!(d.l2_standby.iter().map(|a| a.ip).collect::<Vec<_>>(), [vip]);

        // Excluded from load balancers: back to the natural winner; then it reclaims.
        idx.upsert_node(node(
            candidate,
            &[("preferred", "true"), (EXCLUDE_FROM_LB_LABEL, "")],
            true,
        ));
        assert_eq!(owner(&idx).as_deref(), Some(natural));
        idx.upsert_node(node(candidate, &[("preferred", "true")], true));
        assert_eq!(owner(&idx).as_deref(), Some(candidate));
        // The label removed: the natural winner again.
        idx.upsert_node(node(candidate, &[], true));
        assert_eq!(owner(&idx).as_deref(), Some(natural));

        // No node matches one preference and every node matches the other: no movement.
        let mut everyone = l2adv("pref", &["l2pool"], vec![], &[]);
        everyone.preferred_nodes = vec![ferrolb_config::NodePreference {
            weight: 10,
            selector: ferrolb_config::Selector::everything(),
        }];
        let everyone = preferring(everyone, 100, "nomatch", "true");
        c.l2_advertisements = vec![everyone];
        idx.set_config(c);
        assert_eq!(owner(&idx).as_deref(), Some(natural));
    }

    /// MetalLB speaker/layer2_controller.go and bgp_controller.go: advertisements apply only to
    /// the Services their serviceSelectors match ("noMatchingAdvertisement" otherwise), and a
    /// Service with allow-shared-ip is refused in layer 2 under selective advertisements
    /// ("sharedIPWithServiceSelector").
    #[test]
    fn service_selectors_and_their_reasons() {
        let mut c = config();
        for a in c.l2_advertisements.iter_mut() {
            a.service_selectors = vec![label_sel("tier", "web")];
        }
        let mut host = bgpadv("host", &["bgppool"], vec![], &[]);
        host.service_selectors = vec![label_sel("tier", "web")];
        c.bgp_advertisements = vec![host];
        let mut idx = ClusterIndex::new(c);
        for n in ["a", "b", "c"] {
            idx.upsert_node(node(n, &[], true));
        }
        let web = |name: &str, ip_: &str| {
            let mut s = service("web", name, &[ip_], TrafficPolicy::Cluster);
            s.labels.insert("tier".into(), "web".into());
            s
        };
        upsert_served(&mut idx, web("web-l2", "10.200.0.30"));
        upsert_served(
            &mut idx,
            service("web", "db-l2", &["10.200.0.31"], TrafficPolicy::Cluster),
        );
        let mut shared = web("shared-l2", "10.200.0.32");
        shared.allow_shared_ip = true;
        upsert_served(&mut idx, shared);
        upsert_served(&mut idx, web("web-bgp", "10.210.0.30"));
        upsert_served(
            &mut idx,
            service("web", "db-bgp", &["10.210.0.31"], TrafficPolicy::Cluster),
        );
        // Both Services share 10.210.0.32; only one is selected and only it is carried.
        upsert_served(&mut idx, web("web-bgp2", "10.210.0.32"));
        upsert_served(
            &mut idx,
            service("web", "db-bgp2", &["10.210.0.32"], TrafficPolicy::Cluster),
        );

        let all: Vec<Desired> = ["a", "b", "c"]
            .iter()
            .map(|me| desired_announcements(&idx, me))
            .collect();
        let l2: Vec<IpAddr> = all.iter().flat_map(|d| &d.layer2).map(|a| a.ip).collect();
        assert_eq!(l2, [ip("10.200.0.30")]);
        let d = &all[0];
        let routes: Vec<(Vec<IpAddr>, Vec<String>)> = d
            .bgp
            .iter()
            .map(|b| (b.ips.clone(), b.services.clone()))
            .collect();
        assert_eq!(
            routes,
            [
                (vec![ip("10.210.0.30")], vec!["web/web-bgp".to_string()]),
                (vec![ip("10.210.0.32")], vec!["web/web-bgp2".to_string()]),
            ]
        );
        let reasons: Vec<_> = d.not_announced.iter().map(|n| (n.ip, n.reason)).collect();
        assert_eq!(
            reasons,
            [
                (
                    ip("10.200.0.31"),
                    NotAnnouncedReason::NoMatchingAdvertisement
                ),
                (
                    ip("10.200.0.32"),
                    NotAnnouncedReason::SharedIpWithServiceSelectors
                ),
                (
                    ip("10.210.0.31"),
                    NotAnnouncedReason::NoMatchingAdvertisement
                ),
            ]
        );
    }

    /// When both modes fail, the mode that got further gives the reason.
    #[test]
    fn the_mode_closest_to_announcing_gives_the_reason() {
        let mut c = config();
        // Pool l2pool also advertised over BGP, to Services labelled tier=web only.
        let mut sel = bgpadv("sel", &["l2pool"], vec![], &[]);
        sel.service_selectors = vec![label_sel("tier", "web")];
        c.bgp_advertisements.push(sel);
        let mut idx = ClusterIndex::new(c);
        idx.upsert_node(node("a", &[], true));
        // Layer 2: no eligible node (Local, endpoint on an unknown node); BGP: no matching
        // advertisement. NoEligibleNode comes later in the decision.
        idx.upsert_endpoint_slice(endpoints("web", "local", &["ghost"]));
        idx.upsert_service(service(
            "web",
            "local",
            &["10.200.0.40"],
            TrafficPolicy::Local,
        ));
        let d = desired_announcements(&idx, "a");
        let reasons: Vec<_> = d.not_announced.iter().map(|n| (n.ip, n.reason)).collect();
        assert_eq!(
            reasons,
            [(ip("10.200.0.40"), NotAnnouncedReason::NoEligibleNode)]
        );
        // Layer 2 off: BGP's reason.
        let d = desired_announcements_in(
            &idx,
            "a",
            Modes {
                layer2: false,
                bgp: true,
            },
        );
        let reasons: Vec<_> = d.not_announced.iter().map(|n| (n.ip, n.reason)).collect();
        assert_eq!(
            reasons,
            [(
                ip("10.200.0.40"),
                NotAnnouncedReason::NoMatchingAdvertisement
            )]
        );
    }

    #[test]
    fn reason_codes_are_distinct_and_listed() {
        let codes: BTreeSet<&str> = NotAnnouncedReason::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), NotAnnouncedReason::ALL.len());
        let mut sorted = NotAnnouncedReason::ALL;
        sorted.sort();
        assert_eq!(sorted, NotAnnouncedReason::ALL, "ALL is in decision order");
        assert!(
            NotAnnouncedReason::ALL
                .iter()
                .all(|r| !r.message().is_empty())
        );
    }

    #[test]
    fn a_mode_turned_off_announces_nothing_and_says_so() {
        let mut idx = index();
        upsert_served(
            &mut idx,
            service("web", "l2", &["10.200.0.10"], TrafficPolicy::Cluster),
        );
        upsert_served(
            &mut idx,
            service("web", "bgp", &["10.210.0.5"], TrafficPolicy::Cluster),
        );
        let all: Vec<Desired> = ["a", "b", "c"]
            .iter()
            .map(|me| desired_announcements(&idx, me))
            .collect();
        assert!(all.iter().any(|d| !d.layer2.is_empty()), "{all:?}");
        assert!(all.iter().any(|d| !d.bgp.is_empty()), "{all:?}");

        let no_l2 = Modes {
            layer2: false,
            bgp: true,
        };
        for me in ["a", "b", "c"] {
            let d = desired_announcements_in(&idx, me, no_l2);
            assert!(d.layer2.is_empty() && d.l2_owners.is_empty(), "{me}: {d:?}");
            assert!(d.l2_standby.is_empty() && d.l2_successor_of.is_empty());
            let reasons: Vec<_> = d.not_announced.iter().map(|n| (n.ip, n.reason)).collect();
            assert_eq!(
                reasons,
                [(ip("10.200.0.10"), NotAnnouncedReason::ModeDisabled)]
            );
            assert_eq!(d.bgp, desired_announcements(&idx, me).bgp, "{me}");
        }

        let no_bgp = Modes {
            layer2: true,
            bgp: false,
        };
        for me in ["a", "b", "c"] {
            let d = desired_announcements_in(&idx, me, no_bgp);
            assert!(d.bgp.is_empty(), "{me}: {d:?}");
            let reasons: Vec<_> = d.not_announced.iter().map(|n| (n.ip, n.reason)).collect();
            assert_eq!(
                reasons,
                [(ip("10.210.0.5"), NotAnnouncedReason::ModeDisabled)]
            );
            assert_eq!(d.layer2, desired_announcements(&idx, me).layer2, "{me}");
        }
    }

    #[test]
    fn bgp_aggregates_merges_and_dedups() {
        let mut idx = index();
        upsert_served(
            &mut idx,
            service("web", "one", &["10.210.0.5"], TrafficPolicy::Cluster),
        );
        upsert_served(
            &mut idx,
            service("web", "two", &["10.210.0.9"], TrafficPolicy::Cluster),
        );
        upsert_served(
            &mut idx,
            service("web", "three", &["10.210.1.1"], TrafficPolicy::Cluster),
        );
        let d = desired_announcements(&idx, "a");
        let prefixes: Vec<IpNet> = d.bgp.iter().map(|b| b.prefix).collect();
        assert_eq!(
            prefixes,
            [
                net("10.210.0.0/24"),
                net("10.210.0.5/32"),
                net("10.210.0.9/32"),
                net("10.210.1.0/24"),
                net("10.210.1.1/32"),
            ]
        );
        let agg = &d.bgp[0];
        assert_eq!(agg.ips, [ip("10.210.0.5"), ip("10.210.0.9")]);
        assert_eq!(agg.services, ["web/one", "web/two"]);
        // Only `tor` gets the aggregate; `agg` and `agg2` merge: highest localPref, union of
        // communities.
        assert_eq!(agg.peers.keys().collect::<Vec<_>>(), ["tor"]);
        assert_eq!(
            agg.peers["tor"],
            RouteAttributes {
                local_pref: Some(200),
                communities: vec![
                    CommunityValue::Standard(65000 << 16 | 1),
                    CommunityValue::Large(64500, 1, 2),
                ],
            }
        );
        // Host routes go to every peer of node a (it matches spine's selector).
        let host = &d.bgp[1];
        assert_eq!(host.peers.keys().collect::<Vec<_>>(), ["spine", "tor"]);
        assert_eq!(host.peers["spine"].local_pref, Some(50));
        assert!(host.peers["spine"].communities.is_empty());

        // Node c has no session with spine.
        let d = desired_announcements(&idx, "c");
        assert_eq!(d.bgp[1].peers.keys().collect::<Vec<_>>(), ["tor"]);
    }

    #[test]
    fn bgp_local_policy_only_from_endpoint_nodes() {
        let mut idx = index();
        upsert_served(
            &mut idx,
            service("web", "shop", &["10.210.0.5"], TrafficPolicy::Local),
        );
        idx.upsert_endpoint_slice(endpoints("web", "shop", &["b"]));
        assert!(desired_announcements(&idx, "a").bgp.is_empty());
        assert_eq!(desired_announcements(&idx, "b").bgp.len(), 2);
        // An unknown local node advertises nothing.
        assert!(desired_announcements(&idx, "ghost").bgp.is_empty());
    }

    #[test]
    fn local_pref_unset_loses_to_any_value() {
        let mut acc = AttrAcc::default();
        let mut adv = bgpadv("x", &[], vec![], &[]);
        merge(&mut acc, &adv);
        assert_eq!(acc.local_pref, None);
        adv.local_pref = Some(0);
        merge(&mut acc, &adv);
        assert_eq!(acc.local_pref, Some(0));
        adv.local_pref = None;
        merge(&mut acc, &adv);
        assert_eq!(acc.local_pref, Some(0));
    }

    #[test]
    fn aggregation_lengths() {
        let mut adv = bgpadv("x", &[], vec![], &[]);
        adv.aggregation_length = 24;
        adv.aggregation_length_v6 = 64;
        assert_eq!(aggregate(ip("10.0.0.5"), &adv), net("10.0.0.0/24"));
        assert_eq!(
            aggregate(ip("fd00:1:2:3:4::5"), &adv),
            net("fd00:1:2:3::/64")
        );
        adv.aggregation_length = 99;
        adv.aggregation_length_v6 = 200;
        assert_eq!(aggregate(ip("10.0.0.5"), &adv), net("10.0.0.5/32"));
        assert_eq!(aggregate(ip("fd00::5"), &adv), net("fd00::5/128"));
        adv.aggregation_length = 0;
        assert_eq!(aggregate(ip("10.0.0.5"), &adv), net("0.0.0.0/0"));
    }

    fn links(up: &[(&str, bool)]) -> Vec<crate::layer2::carrier::LinkReport> {
        up.iter()
            .map(|(name, carrier)| crate::layer2::carrier::LinkReport {
                name: (*name).to_string(),
                carrier: *carrier,
                automatic: true,
            })
            .collect()
    }

    /// The owner's announcing interface loses carrier: every node elects another owner, the
    /// old one says why it does not announce, and with carrier back the address returns.
    #[test]
    fn an_owner_without_carrier_is_replaced_and_comes_back_with_it() {
        let mut idx = index();
        upsert_served(
            &mut idx,
            service("web", "shop", &["10.200.0.10"], TrafficPolicy::Cluster),
        );
        let ip10 = ip("10.200.0.10");
        let all_up: BTreeMap<String, _> = ["a", "b", "c"]
            .iter()
            .map(|n| (n.to_string(), links(&[("eth1", true), ("eth2", true)])))
            .collect();
        idx.set_node_links(all_up.clone());
        let owner = elect(ip10, ["a", "b", "c"]).expect("an owner").to_string();
        for me in ["a", "b", "c"] {
            let d = desired_announcements(&idx, me);
            assert_eq!(d.l2_owners[0].owner.as_deref(), Some(owner.as_str()));
            assert!(d.l2_no_carrier.is_empty());
        }

        // The owner's eth1 (the interface of l2-a) loses carrier; its eth2 is up, which only
        // counts where l2-b selects the node (zone b).
        let mut down = all_up.clone();
        down.insert(owner.clone(), links(&[("eth1", false), ("eth2", true)]));
        idx.set_node_links(down);
        let others: Vec<&str> = ["a", "b", "c"]
            .into_iter()
            .filter(|n| *n != owner)
            .collect();
        let expected = if owner == "b" {
            // Still eligible under l2-b, on eth2.
            owner.clone()
        } else {
            elect(ip10, others.iter().copied())
                .expect("another owner")
                .to_string()
        };
        for me in ["a", "b", "c"] {
            let d = desired_announcements(&idx, me);
            assert_eq!(
                d.l2_owners[0].owner.as_deref(),
                Some(expected.as_str()),
                "{me}"
            );
        }
        let d = desired_announcements(&idx, &owner);
        if owner == "b" {
            assert_eq!(d.layer2[0].interfaces, ["eth2"]);
            assert!(d.l2_no_carrier.is_empty());
        } else {
            assert!(d.layer2.is_empty());
            assert_eq!(d.l2_no_carrier.len(), 1);
            assert_eq!(d.l2_no_carrier[0].ip, ip10);
            assert_eq!(
                d.l2_no_carrier[0].reasons[0].to_string(),
                "interface eth1 has no carrier"
            );
        }

        // Carrier back: the election is the original one again.
        idx.set_node_links(all_up);
        for me in ["a", "b", "c"] {
            let d = desired_announcements(&idx, me);
            assert_eq!(d.l2_owners[0].owner.as_deref(), Some(owner.as_str()));
        }
    }

    /// Every node without carrier: nobody owns the address, and the reason says so.
    #[test]
    fn no_node_with_carrier_means_no_owner() {
        let mut idx = index();
        upsert_served(
            &mut idx,
            service("web", "shop", &["10.200.0.10"], TrafficPolicy::Cluster),
        );
        idx.set_node_links(
            ["a", "b", "c"]
                .iter()
                .map(|n| (n.to_string(), links(&[("eth1", false), ("eth2", false)])))
                .collect(),
        );
        let d = desired_announcements(&idx, "b");
        assert_eq!(d.l2_owners[0].owner, None);
        assert_eq!(
            d.not_announced.iter().map(|n| n.reason).collect::<Vec<_>>(),
            [NotAnnouncedReason::NoEligibleNode]
        );
        // Node b lacks carrier under both advertisements that select it.
        let reasons: Vec<String> = d.l2_no_carrier[0]
            .reasons
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            reasons,
            [
                "interface eth1 has no carrier",
                "interface eth2 has no carrier"
            ]
        );
    }

    /// A node that sent no report (an older speaker, membership off) keeps being eligible.
    #[test]
    fn nodes_without_a_report_are_eligible() {
        let mut idx = index();
        upsert_served(
            &mut idx,
            service("web", "shop", &["10.200.0.10"], TrafficPolicy::Cluster),
        );
        idx.set_node_links(BTreeMap::from([(
            "a".to_string(),
            links(&[("eth1", false)]),
        )]));
        let ip10 = ip("10.200.0.10");
        let d = desired_announcements(&idx, "c");
        assert_eq!(d.l2_owners[0].owner.as_deref(), elect(ip10, ["b", "c"]));
    }

    proptest! {
        /// Across all nodes, every L2 IP with an eligible node is announced by exactly that
        /// node, whatever the mix of policies, readiness and endpoints.
        #[test]
        fn exactly_one_announcer_per_l2_ip(
            ready in proptest::collection::vec(any::<bool>(), 4),
            eps in proptest::collection::vec(any::<bool>(), 4),
            local in any::<bool>(),
            last_octets in proptest::collection::btree_set(0u8..=255, 1..20),
        ) {
            let names = ["n0", "n1", "n2", "n3"];
            let mut idx = ClusterIndex::new(config());
            for (i, n) in names.iter().enumerate() {
                idx.upsert_node(node(n, &[], ready[i]));
            }
            let with_ep: Vec<&str> = names.iter().zip(&eps).filter(|(_, e)| **e).map(|(n, _)| *n).collect();
            idx.upsert_endpoint_slice(endpoints("web", "s", &with_ep));
            let ips: Vec<String> = last_octets.iter().map(|o| format!("10.200.0.{o}")).collect();
            let ip_refs: Vec<&str> = ips.iter().map(String::as_str).collect();
            let policy = if local { TrafficPolicy::Local } else { TrafficPolicy::Cluster };
            idx.upsert_service(service("web", "s", &ip_refs, policy));
            // Cluster needs an endpoint somewhere, Local one on the node.
            let any_eligible = (0..4).any(|i| ready[i] && if local { eps[i] } else { eps.contains(&true) });
            let mut count = BTreeMap::<IpAddr, usize>::new();
            for n in names {
                let d = desired_announcements(&idx, n);
                prop_assert_eq!(d.l2_owners.len(), ips.len());
                for a in d.layer2 {
                    *count.entry(a.ip).or_default() += 1;
                }
            }
            if any_eligible {
                prop_assert_eq!(count.len(), ips.len());
                prop_assert!(count.values().all(|c| *c == 1));
            } else {
                prop_assert!(count.is_empty());
            }
            // Deterministic: same input, same output.
            prop_assert_eq!(desired_announcements(&idx, "n0"), desired_announcements(&idx, "n0"));
        }

        /// With any mix of carrier (and missing reports), every node elects the same owner of
        /// each L2 IP, that owner has carrier on the advertised interface (or sent no report),
        /// and exactly it announces.
        #[test]
        fn owners_agree_and_have_carrier(
            carrier in proptest::collection::vec(proptest::option::of(any::<bool>()), 4),
            last_octets in proptest::collection::btree_set(0u8..=255, 1..20),
        ) {
            let names = ["n0", "n1", "n2", "n3"];
            let mut idx = ClusterIndex::new(config());
            for n in names {
                idx.upsert_node(node(n, &[], true));
            }
            idx.set_node_links(
                names
                    .iter()
                    .zip(&carrier)
                    .filter_map(|(n, c)| c.map(|c| (n.to_string(), links(&[("eth1", c)]))))
                    .collect(),
            );
            let ips: Vec<String> = last_octets.iter().map(|o| format!("10.200.0.{o}")).collect();
            let ip_refs: Vec<&str> = ips.iter().map(String::as_str).collect();
            upsert_served(&mut idx, service("web", "s", &ip_refs, TrafficPolicy::Cluster));
            let with_carrier: Vec<&str> = names
                .iter()
                .zip(&carrier)
                .filter(|(_, c)| **c != Some(false))
                .map(|(n, _)| *n)
                .collect();
            let views: Vec<Desired> = names.iter().map(|n| desired_announcements(&idx, n)).collect();
            let mut count = BTreeMap::<IpAddr, usize>::new();
            for (me, d) in names.iter().zip(&views) {
                prop_assert_eq!(&d.l2_owners, &views[0].l2_owners);
                for o in &d.l2_owners {
                    let expected = elect(o.ip, with_carrier.iter().copied()).map(str::to_string);
                    prop_assert_eq!(&o.owner, &expected);
                }
                for a in &d.layer2 {
                    prop_assert!(with_carrier.contains(me));
                    *count.entry(a.ip).or_default() += 1;
                }
                // A node without carrier says so for every address, one with it never.
                let expect_blocked = if with_carrier.contains(me) { 0 } else { ips.len() };
                prop_assert_eq!(d.l2_no_carrier.len(), expect_blocked);
            }
            if with_carrier.is_empty() {
                prop_assert!(count.is_empty());
            } else {
                prop_assert_eq!(count.len(), ips.len());
                prop_assert!(count.values().all(|c| *c == 1));
            }
        }
    }
}
