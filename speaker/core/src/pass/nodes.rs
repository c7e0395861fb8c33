//! What the pass reads from Node objects besides the index: addresses and the members a fresh
//! membership should expect.

use crate::index::node_from_k8s;
use k8s_openapi::api::core::v1::Node;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// This node's own addresses (its InternalIPs), as BGP uses them: the defaults of what a
/// peer leaves unset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeAddresses {
    /// IPv4 InternalIP: the default router ID, and the IPv4 next hop of IPv4 routes sent over
    /// an IPv6 session.
    pub v4: Option<Ipv4Addr>,
    /// IPv6 InternalIP: the IPv6 next hop of IPv6 routes sent over an IPv4 session. Without
    /// one, such routes carry the IPv4-mapped address of the session's local address (what
    /// FRR and GoBGP send too), which most routers cannot resolve.
    pub v6: Option<Ipv6Addr>,
}

/// InternalIP addresses of a Node, IPv4 first (the first is the node's membership address).
pub fn internal_ips(node: &Node) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = node
        .status
        .iter()
        .flat_map(|s| s.addresses.iter().flatten())
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect();
    ips.sort_by_key(|ip| ip.is_ipv6());
    ips
}

/// The first IPv4 and the first IPv6 InternalIP of the Node named `me`.
pub fn node_addresses(nodes: &[Arc<Node>], me: &str) -> NodeAddresses {
    let mut found = NodeAddresses::default();
    let mine = nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(me));
    for ip in mine.map(|n| internal_ips(n)).unwrap_or_default() {
        match ip {
            IpAddr::V4(v4) => found.v4 = found.v4.or(Some(v4)),
            IpAddr::V6(v6) => found.v6 = found.v6.or(Some(v6)),
        }
    }
    found
}

/// The members a settled membership sees alive: every Ready node with an address (a node
/// without one cannot run a membership at all).
pub fn expected_members(nodes: &[Arc<Node>]) -> BTreeSet<String> {
    nodes
        .iter()
        .filter(|n| !internal_ips(n).is_empty())
        .filter_map(|n| node_from_k8s(n))
        .filter(|n| n.ready)
        .map(|n| n.name)
        .collect()
}
