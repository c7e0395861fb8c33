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
use crate::election::elect;
use crate::eligibility::{
    bgp_advertisements_for, bgp_advertisements_of_node, l2_advertisements_for,
    l2_advertisements_of_node, l2_eligible_nodes, l2_interfaces, peers_for, pool_for,
};
use crate::index::{ClusterIndex, ServiceInfo};
use ferrolb_config::{BgpAdvertisement, CommunityValue};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NotAnnouncedReason {
    /// The IP lies in no pool of the configuration in force.
    NoPool,
    /// The IP's pool is selected by no L2Advertisement and no BGPAdvertisement.
    NoAdvertisement,
    /// The IP's pool is advertised only in modes the speakers run with turned off
    /// (`--disable-layer2`, `--disable-bgp`).
    ModeDisabled,
    /// The IP's pool is advertised in layer 2 only, and no node is eligible to announce it.
    NoEligibleNode,
}

impl NotAnnouncedReason {
    /// Every reason, for metrics that report zero too.
    pub const ALL: [NotAnnouncedReason; 4] = [
        NotAnnouncedReason::NoPool,
        NotAnnouncedReason::NoAdvertisement,
        NotAnnouncedReason::ModeDisabled,
        NotAnnouncedReason::NoEligibleNode,
    ];

    /// A stable name for the status API and metrics.
    pub fn code(self) -> &'static str {
        match self {
            NotAnnouncedReason::NoPool => "NoPool",
            NotAnnouncedReason::NoAdvertisement => "NoAdvertisement",
            NotAnnouncedReason::ModeDisabled => "ModeDisabled",
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
            NotAnnouncedReason::NoEligibleNode => {
                "no node may announce it in layer 2: check the L2Advertisements' nodeSelectors, \
                 that the nodes are Ready and their speakers alive, and, with \
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
}

/// Computes what `my_node` must announce from the whole index.
pub fn desired_announcements(index: &ClusterIndex, my_node: &str) -> Desired {
    desired_announcements_in(index, my_node, Modes::ALL)
}

/// [`desired_announcements`] with only the given modes running: an address advertised only in
/// a mode that is off is reported as [`NotAnnouncedReason::ModeDisabled`].
pub fn desired_announcements_in(index: &ClusterIndex, my_node: &str, modes: Modes) -> Desired {
    let config = index.config();
    let mut desired = Desired::default();
    let mut bgp: BTreeMap<IpNet, BgpAcc> = BTreeMap::new();

    for (ip, services) in services_by_ip(index) {
        let names = service_names(&services);
        let Some(pool) = pool_for(config, ip) else {
            desired.not_announced.push(NotAnnounced {
                ip,
                services: names,
                reason: NotAnnouncedReason::NoPool,
            });
            continue;
        };

        let l2_advertised = l2_advertisements_for(config, &pool.name).next().is_some();
        let has_l2 = modes.layer2 && l2_advertised;
        let mut no_l2_owner = false;
        if has_l2 {
            let eligible = l2_eligible_nodes(index, ip, &services);
            let owner = elect(ip, eligible.iter().copied()).map(str::to_string);
            if let Some(o) = owner.as_deref()
                && o != my_node
                && elect(ip, eligible.iter().copied().filter(|n| *n != o)) == Some(my_node)
            {
                desired.l2_successor_of.insert(o.to_string());
                let advs = l2_advertisements_of_node(index, ip, my_node, &services);
                desired.l2_standby.push(L2Announcement {
                    ip,
                    services: names.clone(),
                    interfaces: l2_interfaces(&advs),
                });
            }
            if owner.as_deref() == Some(my_node) {
                let advs = l2_advertisements_of_node(index, ip, my_node, &services);
                desired.layer2.push(L2Announcement {
                    ip,
                    services: names.clone(),
                    interfaces: l2_interfaces(&advs),
                });
            }
            no_l2_owner = owner.is_none();
            desired.l2_owners.push(L2Owner {
                ip,
                services: names.clone(),
                owner,
            });
        }

        let bgp_advertised = bgp_advertisements_for(config, &pool.name).next().is_some();
        let has_bgp = modes.bgp && bgp_advertised;
        if has_bgp && let Some(me) = index.node(my_node) {
            for adv in bgp_advertisements_of_node(index, ip, my_node, &services) {
                let peers = peers_for(config, adv, me);
                if peers.is_empty() {
                    continue;
                }
                let acc = bgp.entry(aggregate(ip, adv)).or_default();
                acc.ips.insert(ip);
                acc.services.extend(names.iter().cloned());
                for p in peers {
                    merge(acc.peers.entry(p.name.clone()).or_default(), adv);
                }
            }
        }

        if no_l2_owner && !has_bgp {
            desired.not_announced.push(NotAnnounced {
                ip,
                services: names,
                reason: NotAnnouncedReason::NoEligibleNode,
            });
        } else if !has_l2 && !has_bgp {
            let reason = if l2_advertised || bgp_advertised {
                NotAnnouncedReason::ModeDisabled
            } else {
                NotAnnouncedReason::NoAdvertisement
            };
            desired.not_announced.push(NotAnnounced {
                ip,
                services: names,
                reason,
            });
        }
    }

    desired.bgp = bgp
        .into_iter()
        .map(|(prefix, acc)| BgpAnnouncement {
            prefix,
            ips: acc.ips.into_iter().collect(),
            services: acc.services.into_iter().collect(),
            peers: acc
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
        })
        .collect();
    desired
}

#[derive(Default)]
struct BgpAcc {
    ips: BTreeSet<IpAddr>,
    services: BTreeSet<String>,
    peers: BTreeMap<String, AttrAcc>,
}

#[derive(Default)]
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
    use crate::eligibility::tests::{
        bgpadv, endpoints, ip, l2adv, label_sel, node, peer, pool, service,
    };
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
        idx.upsert_service(service(
            "web",
            "shop",
            &["10.200.0.10", "fd00:200::10"],
            TrafficPolicy::Cluster,
        ));
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
        idx.upsert_service(service(
            "web",
            "http",
            &["10.200.0.7"],
            TrafficPolicy::Cluster,
        ));
        idx.upsert_service(service(
            "web",
            "https",
            &["10.200.0.7"],
            TrafficPolicy::Cluster,
        ));
        let owner = elect(ip("10.200.0.7"), ["a", "b", "c"]).expect("eligible");
        let d = desired_announcements(&idx, owner);
        assert_eq!(d.layer2.len(), 1);
        assert_eq!(d.layer2[0].services, ["web/http", "web/https"]);
    }

    #[test]
    fn local_policy_moves_owner_to_endpoint_node() {
        let mut idx = index();
        idx.upsert_service(service(
            "web",
            "shop",
            &["10.200.0.10"],
            TrafficPolicy::Local,
        ));
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
        idx.upsert_service(service("web", "many", &refs, TrafficPolicy::Cluster));
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
        idx.upsert_service(service("web", "many", &refs, TrafficPolicy::Cluster));
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
        idx.upsert_service(service("web", "pending", &[], TrafficPolicy::Cluster));
        assert_eq!(desired_announcements(&idx, "a"), Desired::default());
    }

    #[test]
    fn not_announced_reasons() {
        let mut idx = index();
        idx.upsert_service(service(
            "web",
            "dark",
            &["10.220.0.1"],
            TrafficPolicy::Cluster,
        ));
        idx.upsert_service(service(
            "web",
            "stray",
            &["192.0.2.1"],
            TrafficPolicy::Cluster,
        ));
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
        // externalTrafficPolicy Local without a ready endpoint anywhere: no node is eligible.
        idx.upsert_service(service(
            "web",
            "local",
            &["10.200.0.11"],
            TrafficPolicy::Local,
        ));
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
        idx.upsert_service(service("web", "bgp", &["10.210.0.5"], TrafficPolicy::Local));
        assert!(desired_announcements(&idx, "a").not_announced.is_empty());
    }

    #[test]
    fn a_mode_turned_off_announces_nothing_and_says_so() {
        let mut idx = index();
        idx.upsert_service(service(
            "web",
            "l2",
            &["10.200.0.10"],
            TrafficPolicy::Cluster,
        ));
        idx.upsert_service(service(
            "web",
            "bgp",
            &["10.210.0.5"],
            TrafficPolicy::Cluster,
        ));
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
        idx.upsert_service(service(
            "web",
            "one",
            &["10.210.0.5"],
            TrafficPolicy::Cluster,
        ));
        idx.upsert_service(service(
            "web",
            "two",
            &["10.210.0.9"],
            TrafficPolicy::Cluster,
        ));
        idx.upsert_service(service(
            "web",
            "three",
            &["10.210.1.1"],
            TrafficPolicy::Cluster,
        ));
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
        idx.upsert_service(service(
            "web",
            "shop",
            &["10.210.0.5"],
            TrafficPolicy::Local,
        ));
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
            let any_eligible = (0..4).any(|i| ready[i] && (!local || eps[i]));
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
    }
}
