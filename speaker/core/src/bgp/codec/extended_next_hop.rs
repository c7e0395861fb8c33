//! Extended next hop encoding (RFC 8950, capability code 5): IPv4 unicast routes carried with
//! an IPv6 next hop. An unnumbered session has no IPv4 address on its link, so its IPv4 routes
//! can only name the node by its IPv6 (link-local) address.
//!
//! The capability is added to an OPEN built by [`super::open::build_open`] rather than being a
//! field of its configuration: only unnumbered sessions offer it.

use netgauze_bgp_pkt::capabilities::{
    BgpCapability, ExtendedNextHopEncoding, ExtendedNextHopEncodingCapability,
};
use netgauze_bgp_pkt::open::{BgpOpenMessage, BgpOpenMessageParameter};
use netgauze_iana::address_family::{AddressFamily, AddressType};

/// The one encoding we offer and look for: IPv4 unicast NLRI with an IPv6 next hop.
fn ipv4_over_ipv6() -> ExtendedNextHopEncoding {
    ExtendedNextHopEncoding::new(AddressType::Ipv4Unicast, AddressFamily::IPv6)
}

/// `open` with the extended next hop capability for IPv4 unicast over an IPv6 next hop
/// appended to its capabilities.
pub fn offer_extended_next_hop(open: &BgpOpenMessage) -> BgpOpenMessage {
    let mut caps: Vec<BgpCapability> = open.capabilities().into_iter().cloned().collect();
    caps.push(BgpCapability::ExtendedNextHopEncoding(
        ExtendedNextHopEncodingCapability::new(vec![ipv4_over_ipv6()]),
    ));
    BgpOpenMessage::new(
        open.my_as(),
        open.hold_time(),
        open.bgp_id(),
        vec![BgpOpenMessageParameter::new_capabilities(caps)],
    )
}

/// Whether a peer's OPEN accepts IPv4 unicast routes with an IPv6 next hop.
pub fn accepts_ipv4_with_ipv6_next_hop(open: &BgpOpenMessage) -> bool {
    open.capabilities().into_iter().any(|c| match c {
        BgpCapability::ExtendedNextHopEncoding(e) => e.encodings().contains(&ipv4_over_ipv6()),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::RouteAttributes;
    use crate::bgp::codec::{
        Message, OpenConfig, PeerOpen, UpdateContext, build_announcements, build_open, decode_one,
        encode, summarize_update,
    };
    use ipnet::IpNet;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn open() -> BgpOpenMessage {
        build_open(&OpenConfig {
            asn: 64512,
            hold_time: 90,
            router_id: Ipv4Addr::new(10, 200, 0, 1),
            ipv4: true,
            ipv6: true,
            graceful_restart: None,
            bfd_strict: false,
        })
    }

    fn round_trip(m: Message) -> Message {
        let bytes = encode(m).expect("encode");
        decode_one(&bytes, true)
            .expect("decodes")
            .expect("complete")
            .message
    }

    /// RFC 8950 §3: code 5, length 6, NLRI AFI 1, NLRI SAFI 1 (two octets), next hop AFI 2;
    /// the other capabilities stay as built.
    #[test]
    fn the_capability_is_offered_and_read_back() {
        let plain = open();
        assert!(!accepts_ipv4_with_ipv6_next_hop(&plain));
        let offered = offer_extended_next_hop(&plain);
        let bytes = encode(Message::Open(offered.clone())).expect("encode");
        assert!(
            bytes.windows(8).any(|w| w == [5, 6, 0, 1, 0, 1, 0, 2]),
            "capability bytes missing in {bytes:02x?}"
        );
        let Message::Open(back) = round_trip(Message::Open(offered)) else {
            panic!("expected OPEN");
        };
        assert!(accepts_ipv4_with_ipv6_next_hop(&back));
        let (before, after) = (PeerOpen::from_open(&plain), PeerOpen::from_open(&back));
        assert_eq!(before, after);
    }

    /// An extended next hop capability for another family (VPNv4 here) does not let IPv4
    /// unicast routes carry an IPv6 next hop.
    #[test]
    fn a_capability_for_another_family_is_not_ours() {
        let other = BgpOpenMessage::new(
            64500,
            90,
            Ipv4Addr::new(10, 0, 0, 1),
            vec![BgpOpenMessageParameter::new_capabilities(vec![
                BgpCapability::ExtendedNextHopEncoding(ExtendedNextHopEncodingCapability::new(
                    vec![ExtendedNextHopEncoding::new(
                        AddressType::Ipv4MplsLabeledVpn,
                        AddressFamily::IPv6,
                    )],
                )),
            ])],
        );
        assert!(!accepts_ipv4_with_ipv6_next_hop(&other));
    }

    fn ctx(global: Option<Ipv6Addr>, link_local: Ipv6Addr) -> UpdateContext {
        UpdateContext {
            local_as: 64512,
            ebgp: true,
            four_octet_as: true,
            next_hop_v4: None,
            next_hop_v6: Some(global.unwrap_or(link_local)),
            next_hop_v6_link_local: global.map(|_| link_local),
            ipv4_via_ipv6: true,
        }
    }

    fn net(s: &str) -> IpNet {
        s.parse().expect("prefix")
    }

    /// IPv4 prefixes go in MP_REACH_NLRI (AFI 1, SAFI 1) with a 16-octet next hop when the
    /// link-local address is all the interface has (FRR reads it as link-local and scopes it
    /// to the session's interface), and with 32 octets (global, link-local) otherwise.
    #[test]
    fn ipv4_routes_carry_the_ipv6_next_hops_in_mp_reach() {
        let ll: Ipv6Addr = "fe80::a8c1:abff:fe00:1".parse().expect("ip");
        let global: Ipv6Addr = "fd00:200:7::1".parse().expect("ip");
        let attrs = RouteAttributes::default();
        for (g, nh_len) in [(None, 16u8), (Some(global), 32)] {
            let ups = build_announcements(
                &ctx(g, ll),
                &attrs,
                &[
                    net("10.200.7.10/32"),
                    net("10.200.7.11/32"),
                    net("fd00:200:7::10/128"),
                ],
            )
            .expect("build");
            assert_eq!(ups.len(), 2, "one UPDATE per family");
            let bytes = encode(Message::Update(ups[0].clone())).expect("encode");
            // No classic NLRI and no NEXT_HOP: withdrawn length 0, and the first attribute is
            // MP_REACH_NLRI (flags optional + extended length, type 14), AFI 1, SAFI 1.
            assert_eq!(&bytes[19..21], &[0, 0]);
            assert_eq!(&bytes[23..25], &[0x90, 14]);
            assert_eq!(&bytes[27..31], &[0, 1, 1, nh_len]);
            let Message::Update(back) = round_trip(Message::Update(ups[0].clone())) else {
                panic!("expected UPDATE");
            };
            let s = summarize_update(&back);
            assert_eq!(
                s.announced,
                vec![net("10.200.7.10/32"), net("10.200.7.11/32")]
            );
            assert_eq!(s.next_hop, Some(IpAddr::V6(g.unwrap_or(ll))));
            assert_eq!(s.next_hop_link_local, g.map(|_| ll));
            assert_eq!(s.as_path, vec![64512]);
            let Message::Update(v6) = round_trip(Message::Update(ups[1].clone())) else {
                panic!("expected UPDATE");
            };
            let s6 = summarize_update(&v6);
            assert_eq!(s6.announced, vec![net("fd00:200:7::10/128")]);
            assert_eq!(s6.next_hop, Some(IpAddr::V6(g.unwrap_or(ll))));
        }
    }

    /// Many IPv4 prefixes over an IPv6 next hop are split into messages that each fit 4096
    /// octets, losing none.
    #[test]
    fn many_ipv4_prefixes_are_split_to_fit() {
        let ll: Ipv6Addr = "fe80::1".parse().expect("ip");
        let prefixes: Vec<IpNet> = (0..2000u32)
            .map(|i| {
                IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(0x0ac8_0000 + i), 32).expect("net"))
            })
            .collect();
        let ups = build_announcements(&ctx(None, ll), &RouteAttributes::default(), &prefixes)
            .expect("build");
        assert!(ups.len() > 1);
        let mut seen = Vec::new();
        for u in ups {
            let bytes = encode(Message::Update(u.clone())).expect("encode");
            assert!(bytes.len() <= 4096, "{} octets", bytes.len());
            seen.extend(summarize_update(&u).announced);
        }
        assert_eq!(seen, prefixes);
    }
}
