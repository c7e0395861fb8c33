//! Unnumbered peering: which address on the interface is the router, and which next hops
//! name this node. The executor (speaker/src/bgp/neighbour.rs) sends a Router Solicitation
//! and an all-nodes echo request on the interface and hands what it heard back here.
//!
//! As FRR's `neighbor IFACE interface`, the router is found by its Router Advertisements
//! (RFC 4861 requires their source to be link-local); a router that sends none (FRR without
//! `no ipv6 nd suppress-ra`) is still found by its answer to a ping of ff02::1, which every
//! IPv6 node gives. On a point-to-point link one address answers; more than one is a shared
//! link, where the router cannot be told apart and the session is not opened.

use std::net::Ipv6Addr;

/// ICMPv6 Echo Request (RFC 4443).
pub const ICMPV6_ECHO_REQUEST: u8 = 128;
/// ICMPv6 Echo Reply (RFC 4443).
pub const ICMPV6_ECHO_REPLY: u8 = 129;
/// ICMPv6 Router Solicitation (RFC 4861).
pub const ICMPV6_ROUTER_SOLICITATION: u8 = 133;
/// ICMPv6 Router Advertisement (RFC 4861).
pub const ICMPV6_ROUTER_ADVERTISEMENT: u8 = 134;
/// All-routers multicast group: where Router Solicitations go.
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
/// All-nodes multicast group: where the discovery ping goes.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// What a received ICMPv6 message says about its sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Heard {
    /// It sent a Router Advertisement: a router.
    RouterAdvertisement,
    /// It answered our all-nodes ping: a node on the link.
    EchoReply,
}

/// A message heard on the interface: its source and kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    /// Source address.
    pub from: Ipv6Addr,
    /// What it was.
    pub heard: Heard,
}

/// The outcome of one discovery round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Discovery {
    /// The router's link-local address.
    Found(Ipv6Addr),
    /// Nothing heard from another link-local address.
    Nothing,
    /// Several candidates of the best kind heard: the link is not point-to-point.
    Ambiguous(Vec<Ipv6Addr>),
}

/// Reads an ICMPv6 message (as a raw ICMPv6 socket returns it: from the type octet on).
/// `echo_id` is the identifier of our discovery pings; replies to other pings are not ours.
pub fn classify(message: &[u8], echo_id: u16) -> Option<Heard> {
    match message {
        // RFC 4861 §6.1.2: code 0, at least 16 octets.
        [ICMPV6_ROUTER_ADVERTISEMENT, 0, ..] if message.len() >= 16 => {
            Some(Heard::RouterAdvertisement)
        }
        [ICMPV6_ECHO_REPLY, 0, _, _, id_hi, id_lo, ..]
            if u16::from_be_bytes([*id_hi, *id_lo]) == echo_id =>
        {
            Some(Heard::EchoReply)
        }
        _ => None,
    }
}

/// The router among what was heard: only link-local sources other than our own count;
/// routers (Router Advertisements) before mere nodes (echo replies); exactly one address of
/// the best kind is the router.
pub fn choose(observations: &[Observation], own: &[Ipv6Addr]) -> Discovery {
    let candidates = |kind: Heard| {
        let mut v: Vec<Ipv6Addr> = observations
            .iter()
            .filter(|o| o.heard == kind && o.from.is_unicast_link_local() && !own.contains(&o.from))
            .map(|o| o.from)
            .collect();
        v.sort();
        v.dedup();
        v
    };
    for kind in [Heard::RouterAdvertisement, Heard::EchoReply] {
        match candidates(kind).as_slice() {
            [] => continue,
            [one] => return Discovery::Found(*one),
            many => return Discovery::Ambiguous(many.to_vec()),
        }
    }
    Discovery::Nothing
}

/// A Router Solicitation without options (RFC 4861 §4.1); the kernel fills in the checksum
/// of a raw ICMPv6 socket's messages.
pub fn router_solicitation() -> [u8; 8] {
    [ICMPV6_ROUTER_SOLICITATION, 0, 0, 0, 0, 0, 0, 0]
}

/// A Router Advertisement that announces nothing (RFC 4861 §4.2): router lifetime 0, so no
/// host takes us for a default router, no options. Its only purpose is to tell the router our
/// link-local address.
pub fn router_advertisement() -> [u8; 16] {
    let mut m = [0u8; 16];
    m[0] = ICMPV6_ROUTER_ADVERTISEMENT;
    m
}

/// An Echo Request with identifier `id` and sequence number `seq` (RFC 4443 §4.1).
pub fn echo_request(id: u16, seq: u16) -> [u8; 8] {
    let [i0, i1] = id.to_be_bytes();
    let [s0, s1] = seq.to_be_bytes();
    [ICMPV6_ECHO_REQUEST, 0, 0, 0, i0, i1, s0, s1]
}

/// The IPv6 next hops of an unnumbered session: a global address of the interface when it
/// has one, with the link-local one beside it (32 octets, as FRR sends them); the link-local
/// address alone (16 octets) otherwise, which FRR reads as link-local and scopes to the
/// session's interface. Returns (next hop, link-local next hop sent beside it).
pub fn next_hops(
    link_local: Ipv6Addr,
    interface_addresses: &[Ipv6Addr],
) -> (Ipv6Addr, Option<Ipv6Addr>) {
    let global = interface_addresses
        .iter()
        .filter(|a| {
            !a.is_unicast_link_local()
                && !a.is_loopback()
                && !a.is_multicast()
                && !a.is_unspecified()
        })
        .min()
        .copied();
    match global {
        Some(g) => (g, Some(link_local)),
        None => (link_local, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().expect("ip")
    }

    fn seen(from: &str, heard: Heard) -> Observation {
        Observation {
            from: ip(from),
            heard,
        }
    }

    #[test]
    fn router_advertisements_and_our_echo_replies_are_recognised() {
        let mut ra = vec![0u8; 16];
        ra[0] = ICMPV6_ROUTER_ADVERTISEMENT;
        assert_eq!(classify(&ra, 7), Some(Heard::RouterAdvertisement));
        assert_eq!(classify(&ra[..8], 7), None, "truncated");
        let mut reply = echo_request(7, 1);
        reply[0] = ICMPV6_ECHO_REPLY;
        assert_eq!(classify(&reply, 7), Some(Heard::EchoReply));
        assert_eq!(classify(&reply, 8), None, "someone else's ping");
        assert_eq!(
            classify(&echo_request(7, 1), 7),
            None,
            "a request is not an answer"
        );
        assert_eq!(classify(&router_solicitation(), 7), None);
        // Our own advertisement reads as one (it is filtered by source, see `choose`).
        assert_eq!(
            classify(&router_advertisement(), 7),
            Some(Heard::RouterAdvertisement)
        );
        assert_eq!(classify(&[], 7), None);
    }

    #[test]
    fn the_router_is_the_one_link_local_source_not_ours() {
        let own = [ip("fe80::1")];
        assert_eq!(
            choose(
                &[
                    seen("fe80::1", Heard::EchoReply),
                    seen("fe80::2", Heard::EchoReply),
                    seen("fe80::2", Heard::EchoReply),
                ],
                &own
            ),
            Discovery::Found(ip("fe80::2"))
        );
        // A global source is not a link-local neighbour.
        assert_eq!(
            choose(&[seen("fd00:200::2", Heard::RouterAdvertisement)], &own),
            Discovery::Nothing
        );
        assert_eq!(choose(&[], &own), Discovery::Nothing);
    }

    #[test]
    fn routers_come_before_nodes_and_two_of_a_kind_are_ambiguous() {
        let own = [ip("fe80::1")];
        assert_eq!(
            choose(
                &[
                    seen("fe80::3", Heard::EchoReply),
                    seen("fe80::2", Heard::RouterAdvertisement),
                ],
                &own
            ),
            Discovery::Found(ip("fe80::2"))
        );
        assert_eq!(
            choose(
                &[
                    seen("fe80::3", Heard::EchoReply),
                    seen("fe80::2", Heard::EchoReply),
                ],
                &own
            ),
            Discovery::Ambiguous(vec![ip("fe80::2"), ip("fe80::3")])
        );
    }

    #[test]
    fn probes_are_well_formed() {
        assert_eq!(router_solicitation(), [133, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(echo_request(0x1234, 2), [128, 0, 0, 0, 0x12, 0x34, 0, 2]);
        let ra = router_advertisement();
        assert_eq!(
            (ra[0], &ra[6..8]),
            (134, &[0u8, 0][..]),
            "router lifetime 0"
        );
    }

    #[test]
    fn next_hops_are_global_and_link_local_or_link_local_alone() {
        let ll = ip("fe80::1");
        assert_eq!(next_hops(ll, &[ll]), (ll, None));
        assert_eq!(next_hops(ll, &[]), (ll, None));
        assert_eq!(
            next_hops(ll, &[ll, ip("fd00:200:9::2"), ip("fd00:200:9::1")]),
            (ip("fd00:200:9::1"), Some(ll))
        );
    }
}
