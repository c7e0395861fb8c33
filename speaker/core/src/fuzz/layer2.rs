//! The `layer2_frame` target: ARP and NDP frames as the layer 2 responders parse them.

use crate::layer2::frames::{
    self, ARP_FRAME_LEN, ArpOp, ETHERNET_HEADER_LEN, ETHERTYPE_IPV6, EthernetHeader,
    IPV6_HEADER_LEN, Ipv6Header, MacAddr, NeighborAdvertisement,
};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The responder's own MAC in the harness.
const MY_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);

/// The addresses the harness owns: every other one, so both "ours" and "not ours" are reached.
fn owns_v4(ip: Ipv4Addr) -> bool {
    ip.octets()[3].is_multiple_of(2)
}

fn owns_v6(ip: Ipv6Addr) -> bool {
    ip.octets()[15].is_multiple_of(2)
}

/// Feeds `data`, an Ethernet frame as an AF_PACKET socket delivers it, to the ARP responder
/// ([`frames::arp_reply_into`], what `speaker/src/layer2/arp.rs` runs for every frame) and,
/// when it carries IPv6, to the NDP responder ([`frames::ndp_response`] on the ICMPv6 message
/// and source an ICMPv6 socket would deliver) and the whole-packet solicitation parser
/// ([`frames::parse_ns_packet`], once as received and once with the ICMPv6 checksum repaired
/// so the checks behind it are reached). Invariants: no panic; an answer is only ever given
/// to a non-gratuitous request or solicitation for an owned address from someone else, and
/// is a well-formed reply that parses back to what was meant; a solicitation the
/// whole-packet parser accepts is one the socket path answers as well.
pub fn layer2_frame(data: &[u8]) {
    arp(data);
    let Some((eth, payload)) = EthernetHeader::parse(data) else {
        return;
    };
    if eth.ethertype != ETHERTYPE_IPV6 {
        return;
    }
    ndp(payload);
    if let Some(repaired) = with_checksum_repaired(payload) {
        ndp(&repaired);
    }
}

fn arp(frame: &[u8]) {
    let mut out = [0u8; ARP_FRAME_LEN];
    let Some(request) = frames::arp_reply_into(frame, MY_MAC, owns_v4, &mut out) else {
        return;
    };
    assert_eq!(request.op, ArpOp::Request);
    assert!(owns_v4(request.target_ip));
    assert!(!request.is_gratuitous());
    assert_ne!(request.sender_mac, MY_MAC);
    let (eth, reply) = frames::parse_arp_frame(&out).expect("our ARP reply parses");
    assert_eq!(eth.dst, request.sender_mac);
    assert_eq!(eth.src, MY_MAC);
    assert_eq!(reply.op, ArpOp::Reply);
    assert_eq!(reply.sender_mac, MY_MAC);
    assert_eq!(reply.sender_ip, request.target_ip);
    assert_eq!(reply.target_mac, request.sender_mac);
    assert_eq!(reply.target_ip, request.sender_ip);
}

fn ndp(packet: &[u8]) {
    let socket_answer = Ipv6Header::parse(packet).and_then(|(header, icmp)| {
        let answer = frames::ndp_response(header.src, icmp, MY_MAC, owns_v6)?;
        check_answer(header.src, icmp, answer);
        Some(answer)
    });
    if let Some((header, ns)) = frames::parse_ns_packet(packet) {
        assert!(!ns.target.is_multicast());
        assert!(!header.src.is_multicast());
        if owns_v6(ns.target) {
            let (dst, na) = socket_answer.expect("an accepted solicitation is answered");
            assert_eq!(na.target, ns.target);
            assert_eq!(dst.is_multicast(), header.src.is_unspecified());
        }
    }
}

/// The answer to a solicitation from `src` is for an owned, unicast target, goes back to the
/// solicitor (or all nodes for duplicate address detection) and survives encoding.
fn check_answer(src: Ipv6Addr, icmp: &[u8], (dst, na): (Ipv6Addr, NeighborAdvertisement)) {
    let ns = frames::NeighborSolicitation::parse_icmpv6(icmp).expect("answered means parsed");
    assert_eq!(na.target, ns.target);
    assert!(owns_v6(na.target));
    assert!(!na.target.is_multicast());
    assert_eq!(na.target_mac, Some(MY_MAC));
    assert!(na.override_flag && !na.router);
    if src.is_unspecified() {
        assert_eq!(dst, frames::ALL_NODES);
        assert!(!na.solicited);
    } else {
        assert_eq!(dst, src);
        assert!(na.solicited);
    }
    let source = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    let encoded = na.to_icmpv6(source, dst);
    assert!(frames::icmpv6_checksum_ok(source, dst, &encoded));
    assert_eq!(NeighborAdvertisement::parse_icmpv6(&encoded), Some(na));
    let frame = frames::na_frame(MY_MAC, MacAddr::BROADCAST, source, dst, &na);
    let (eth, packet) = EthernetHeader::parse(&frame).expect("our NA frame parses");
    assert_eq!(eth.ethertype, ETHERTYPE_IPV6);
    let (header, body) = Ipv6Header::parse(packet).expect("our NA packet parses");
    assert_eq!((header.src, header.dst), (source, dst));
    assert_eq!(body, encoded.as_slice());
    assert_eq!(
        frame.len(),
        ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + encoded.len()
    );
}

/// `packet` with the ICMPv6 checksum set to the right value, when it is an IPv6 packet long
/// enough to hold one.
fn with_checksum_repaired(packet: &[u8]) -> Option<Vec<u8>> {
    let (header, icmp) = Ipv6Header::parse(packet)?;
    if icmp.len() < 4 {
        return None;
    }
    let mut fixed = icmp.to_vec();
    fixed.get_mut(2..4)?.copy_from_slice(&[0, 0]);
    let sum = frames::icmpv6_checksum(header.src, header.dst, &fixed);
    fixed.get_mut(2..4)?.copy_from_slice(&sum.to_be_bytes());
    let mut out = packet.get(..IPV6_HEADER_LEN)?.to_vec();
    out.extend_from_slice(&fixed);
    Some(out)
}
