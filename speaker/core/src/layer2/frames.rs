//! Building and parsing the few frames layer 2 mode needs: Ethernet, ARP (RFC 826, gratuitous
//! ARP per RFC 5227) and the NDP messages of RFC 4861 (Neighbor Solicitation in, Neighbor
//! Advertisement out), with the ICMPv6 checksum and solicited-node multicast helpers.
//!
//! Written as plain byte code rather than with `pnet_packet` or `etherparse`: the formats are
//! a handful of fixed offsets, and owning every index makes the "never panic on any input"
//! promise easy to check by reading (all reads go through `get`, never slicing by an
//! unchecked length), while the builders produce exactly the bytes the golden tests pin.
//!
//! Parsers return `None` for anything that is not a well-formed message of the expected kind;
//! the listeners drop such input silently, as RFC 4861 asks for invalid NDP messages.
//! 802.1Q tags are not handled: AF_PACKET delivers frames with the tag already stripped (it
//! moves to the auxiliary data) on Linux.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Length of an Ethernet header without VLAN tag.
pub const ETHERNET_HEADER_LEN: usize = 14;
/// Length of an ARP packet for Ethernet and IPv4.
pub const ARP_LEN: usize = 28;
/// Length of an IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;
/// IPv6 next-header value of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;
/// ICMPv6 type of a Neighbor Solicitation.
pub const ICMPV6_NEIGHBOR_SOLICITATION: u8 = 135;
/// ICMPv6 type of a Neighbor Advertisement.
pub const ICMPV6_NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// Hop limit every NDP message is sent with and must arrive with (RFC 4861 §7.1).
pub const NDP_HOP_LIMIT: u8 = 255;
/// The all-nodes link-local multicast address, destination of unsolicited advertisements.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// NDP option type of the source link-layer address.
const OPT_SOURCE_LL: u8 = 1;
/// NDP option type of the target link-layer address.
const OPT_TARGET_LL: u8 = 2;
/// Length of a Neighbor Solicitation / Advertisement before options.
const ND_FIXED_LEN: usize = 24;
const NA_FLAG_ROUTER: u8 = 0x80;
const NA_FLAG_SOLICITED: u8 = 0x40;
const NA_FLAG_OVERRIDE: u8 = 0x20;

/// An Ethernet (MAC-48) address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Whether the group bit is set (multicast or broadcast).
    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }

    fn from_slice(b: &[u8]) -> Option<Self> {
        Some(MacAddr(b.get(..6)?.try_into().ok()?))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

fn ipv4_at(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    let o: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(o))
}

fn ipv6_at(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    let o: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(o))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// An Ethernet II header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetHeader {
    /// Destination.
    pub dst: MacAddr,
    /// Source.
    pub src: MacAddr,
    /// EtherType of the payload.
    pub ethertype: u16,
}

impl EthernetHeader {
    /// Splits a frame into header and payload (which may include trailing padding).
    pub fn parse(frame: &[u8]) -> Option<(Self, &[u8])> {
        let header = EthernetHeader {
            dst: MacAddr::from_slice(frame.get(0..6)?)?,
            src: MacAddr::from_slice(frame.get(6..12)?)?,
            ethertype: u16_at(frame, 12)?,
        };
        Some((header, frame.get(ETHERNET_HEADER_LEN..)?))
    }

    /// Appends the 14 header bytes to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.dst.0);
        out.extend_from_slice(&self.src.0);
        out.extend_from_slice(&self.ethertype.to_be_bytes());
    }
}

/// ARP operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArpOp {
    /// Who has `target_ip`?
    Request,
    /// `sender_ip` is at `sender_mac`.
    Reply,
}

impl ArpOp {
    fn code(self) -> u16 {
        match self {
            ArpOp::Request => 1,
            ArpOp::Reply => 2,
        }
    }
}

/// An ARP packet for Ethernet and IPv4 (the only combination we speak).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpPacket {
    /// Operation.
    pub op: ArpOp,
    /// Sender hardware address.
    pub sender_mac: MacAddr,
    /// Sender protocol address (0.0.0.0 in an RFC 5227 probe).
    pub sender_ip: Ipv4Addr,
    /// Target hardware address (ignored in requests).
    pub target_mac: MacAddr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl ArpPacket {
    /// Parses an ARP payload (after the Ethernet header; trailing padding is ignored).
    /// Anything but Ethernet/IPv4 requests and replies is `None`.
    pub fn parse(b: &[u8]) -> Option<Self> {
        // htype 1 (Ethernet), ptype IPv4, hlen 6, plen 4.
        if u16_at(b, 0)? != 1
            || u16_at(b, 2)? != ETHERTYPE_IPV4
            || *b.get(4)? != 6
            || *b.get(5)? != 4
        {
            return None;
        }
        let op = match u16_at(b, 6)? {
            1 => ArpOp::Request,
            2 => ArpOp::Reply,
            _ => return None,
        };
        Some(ArpPacket {
            op,
            sender_mac: MacAddr::from_slice(b.get(8..14)?)?,
            sender_ip: ipv4_at(b, 14)?,
            target_mac: MacAddr::from_slice(b.get(18..24)?)?,
            target_ip: ipv4_at(b, 24)?,
        })
    }

    /// The 28 bytes of the packet.
    pub fn to_bytes(&self) -> [u8; ARP_LEN] {
        let mut b = [0u8; ARP_LEN];
        b[0..2].copy_from_slice(&1u16.to_be_bytes());
        b[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        b[4] = 6;
        b[5] = 4;
        b[6..8].copy_from_slice(&self.op.code().to_be_bytes());
        b[8..14].copy_from_slice(&self.sender_mac.0);
        b[14..18].copy_from_slice(&self.sender_ip.octets());
        b[18..24].copy_from_slice(&self.target_mac.0);
        b[24..28].copy_from_slice(&self.target_ip.octets());
        b
    }

    /// Whether this is a gratuitous ARP (sender and target IP equal).
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip
    }
}

/// Parses an Ethernet frame carrying ARP.
pub fn parse_arp_frame(frame: &[u8]) -> Option<(EthernetHeader, ArpPacket)> {
    let (eth, payload) = EthernetHeader::parse(frame)?;
    if eth.ethertype != ETHERTYPE_ARP {
        return None;
    }
    Some((eth, ArpPacket::parse(payload)?))
}

/// An Ethernet frame carrying `arp` (42 bytes; the NIC pads to the 60-byte minimum, as it does
/// for the kernel's own ARP frames).
pub fn arp_frame(dst: MacAddr, src: MacAddr, arp: &ArpPacket) -> Vec<u8> {
    let mut out = Vec::with_capacity(ETHERNET_HEADER_LEN + ARP_LEN);
    EthernetHeader {
        dst,
        src,
        ethertype: ETHERTYPE_ARP,
    }
    .write(&mut out);
    out.extend_from_slice(&arp.to_bytes());
    out
}

/// Gratuitous ARP as an RFC 5227 "ARP Announcement": a broadcast request with sender and
/// target IP both `ip` and the target hardware address zero (as the Linux kernel sends it).
pub fn gratuitous_arp_request(mac: MacAddr, ip: Ipv4Addr) -> Vec<u8> {
    let arp = ArpPacket {
        op: ArpOp::Request,
        sender_mac: mac,
        sender_ip: ip,
        target_mac: MacAddr::ZERO,
        target_ip: ip,
    };
    arp_frame(MacAddr::BROADCAST, mac, &arp)
}

/// Gratuitous ARP as a broadcast reply (some hosts only update their cache from replies),
/// target hardware address broadcast, as MetalLB sends it.
pub fn gratuitous_arp_reply(mac: MacAddr, ip: Ipv4Addr) -> Vec<u8> {
    let arp = ArpPacket {
        op: ArpOp::Reply,
        sender_mac: mac,
        sender_ip: ip,
        target_mac: MacAddr::BROADCAST,
        target_ip: ip,
    };
    arp_frame(MacAddr::BROADCAST, mac, &arp)
}

/// Length of an Ethernet frame carrying ARP, before the NIC pads it to the 60-byte minimum.
pub const ARP_FRAME_LEN: usize = ETHERNET_HEADER_LEN + ARP_LEN;

/// Writes the Ethernet frame carrying `arp` into `out`, without allocating (the listener's hot
/// path).
pub fn write_arp_frame(dst: MacAddr, src: MacAddr, arp: &ArpPacket, out: &mut [u8; ARP_FRAME_LEN]) {
    out[0..6].copy_from_slice(&dst.0);
    out[6..12].copy_from_slice(&src.0);
    out[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    out[ETHERNET_HEADER_LEN..].copy_from_slice(&arp.to_bytes());
}

/// The reply to send for a received ARP frame, if it is a request for an IP `owns` says is
/// ours, written into `out`; returns the request (for counters and logs). Our own frames
/// (sender `my_mac`) and gratuitous requests (another host announcing itself) get no answer;
/// RFC 5227 probes (sender IP 0.0.0.0) are answered, which defends the address like Linux
/// does. Allocation-free: this runs for every ARP request on the segment.
pub fn arp_reply_into(
    frame: &[u8],
    my_mac: MacAddr,
    owns: impl Fn(Ipv4Addr) -> bool,
    out: &mut [u8; ARP_FRAME_LEN],
) -> Option<ArpPacket> {
    let (_, arp) = parse_arp_frame(frame)?;
    if arp.op != ArpOp::Request
        || arp.sender_mac == my_mac
        || arp.is_gratuitous()
        || !owns(arp.target_ip)
    {
        return None;
    }
    let reply = ArpPacket {
        op: ArpOp::Reply,
        sender_mac: my_mac,
        sender_ip: arp.target_ip,
        target_mac: arp.sender_mac,
        target_ip: arp.sender_ip,
    };
    write_arp_frame(arp.sender_mac, my_mac, &reply, out);
    Some(arp)
}

/// [`arp_reply_into`] returning the reply frame as a vector.
pub fn arp_response(
    frame: &[u8],
    my_mac: MacAddr,
    owns: impl Fn(Ipv4Addr) -> bool,
) -> Option<Vec<u8>> {
    let mut out = [0u8; ARP_FRAME_LEN];
    arp_reply_into(frame, my_mac, owns, &mut out)?;
    Some(out.to_vec())
}

/// The fields of an IPv6 header NDP validation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Header {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Next header (58 for ICMPv6).
    pub next_header: u8,
    /// Hop limit.
    pub hop_limit: u8,
}

impl Ipv6Header {
    /// Splits an IPv6 packet into header and payload (`payload length` bytes; anything after
    /// is link padding and dropped). Extension headers are not followed: NDP messages carry
    /// none in practice, and a packet with any is simply not NDP to us.
    pub fn parse(packet: &[u8]) -> Option<(Self, &[u8])> {
        if packet.first()? >> 4 != 6 {
            return None;
        }
        let payload_len = usize::from(u16_at(packet, 4)?);
        let header = Ipv6Header {
            next_header: *packet.get(6)?,
            hop_limit: *packet.get(7)?,
            src: ipv6_at(packet, 8)?,
            dst: ipv6_at(packet, 24)?,
        };
        let payload = packet.get(IPV6_HEADER_LEN..IPV6_HEADER_LEN.checked_add(payload_len)?)?;
        Some((header, payload))
    }

    /// Appends the 40 header bytes (traffic class and flow label zero) for a payload of
    /// `payload_len` bytes.
    pub fn write(&self, payload_len: u16, out: &mut Vec<u8>) {
        out.extend_from_slice(&[0x60, 0, 0, 0]);
        out.extend_from_slice(&payload_len.to_be_bytes());
        out.push(self.next_header);
        out.push(self.hop_limit);
        out.extend_from_slice(&self.src.octets());
        out.extend_from_slice(&self.dst.octets());
    }
}

/// The ICMPv6 checksum (RFC 4443 §2.3) of `icmp` between `src` and `dst`: the ones'
/// complement of the ones'-complement sum over the pseudo-header (source, destination,
/// upper-layer length, next header 58) and the message. Computed over `icmp` as given, so
/// zero the checksum field first when building; over a received message with its checksum in
/// place, the result is zero when it is correct.
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, icmp: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        let mut chunks = bytes.chunks_exact(2);
        for c in &mut chunks {
            sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u64::from(u16::from_be_bytes([*last, 0]));
        }
    };
    add(&src.octets());
    add(&dst.octets());
    // A message longer than 4 GiB cannot exist; saturating keeps the function total.
    add(&u32::try_from(icmp.len()).unwrap_or(u32::MAX).to_be_bytes());
    add(&[0, 0, 0, IPPROTO_ICMPV6]);
    add(icmp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Whether a received ICMPv6 message (checksum in place) is intact.
pub fn icmpv6_checksum_ok(src: Ipv6Addr, dst: Ipv6Addr, icmp: &[u8]) -> bool {
    icmpv6_checksum(src, dst, icmp) == 0
}

/// Iterates over NDP options as (type, body without type and length). `None` when an option is
/// malformed: zero length (RFC 4861 §4.6: such packets MUST be discarded) or running past the
/// end.
fn ndp_options(mut b: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let kind = *b.first()?;
        let len = usize::from(*b.get(1)?) * 8;
        if len == 0 {
            return None;
        }
        out.push((kind, b.get(2..len)?));
        b = b.get(len..)?;
    }
    Some(out)
}

fn link_layer_option(options: &[(u8, &[u8])], kind: u8) -> Option<MacAddr> {
    // Only the first option of the kind counts; on Ethernet its body is the MAC plus nothing
    // (length 1 = 8 bytes); longer bodies are tolerated and their first 6 bytes taken.
    options
        .iter()
        .find(|(k, _)| *k == kind)
        .and_then(|(_, body)| MacAddr::from_slice(body))
}

fn write_link_layer_option(kind: u8, mac: MacAddr, out: &mut Vec<u8>) {
    out.push(kind);
    out.push(1);
    out.extend_from_slice(&mac.0);
}

/// A Neighbor Solicitation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborSolicitation {
    /// The address asked about.
    pub target: Ipv6Addr,
    /// The source link-layer address option, when present (absent in DAD probes).
    pub source_mac: Option<MacAddr>,
}

impl NeighborSolicitation {
    /// Parses an ICMPv6 message as received from an ICMPv6 raw socket (no IPv6 header).
    /// Checks what can be checked without the header (RFC 4861 §7.1.1): type, code 0, length
    /// of at least 24, a non-multicast target, well-formed options. The kernel has already
    /// verified the checksum on such a socket; the hop limit (must be 255) comes with
    /// `IPV6_RECVHOPLIMIT` ancillary data and is the caller's to check.
    pub fn parse_icmpv6(icmp: &[u8]) -> Option<Self> {
        if *icmp.first()? != ICMPV6_NEIGHBOR_SOLICITATION || *icmp.get(1)? != 0 {
            return None;
        }
        let target = ipv6_at(icmp, 8)?;
        if target.is_multicast() {
            return None;
        }
        let options = ndp_options(icmp.get(ND_FIXED_LEN..)?)?;
        Some(NeighborSolicitation {
            target,
            source_mac: link_layer_option(&options, OPT_SOURCE_LL),
        })
    }

    /// The ICMPv6 message from `src` to `dst`, checksum filled in.
    pub fn to_icmpv6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let mut out = vec![ICMPV6_NEIGHBOR_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
        out.extend_from_slice(&self.target.octets());
        if let Some(mac) = self.source_mac {
            write_link_layer_option(OPT_SOURCE_LL, mac, &mut out);
        }
        set_checksum(src, dst, &mut out);
        out
    }
}

/// Parses a whole IPv6 packet carrying a Neighbor Solicitation, with every RFC 4861 §7.1.1
/// check: a unicast or unspecified source, next header ICMPv6, hop limit 255, valid checksum, the checks of
/// [`NeighborSolicitation::parse_icmpv6`], and for an unspecified source (DAD) a
/// solicited-node destination and no source link-layer option.
pub fn parse_ns_packet(packet: &[u8]) -> Option<(Ipv6Header, NeighborSolicitation)> {
    let (header, icmp) = Ipv6Header::parse(packet)?;
    // A multicast source is never valid (RFC 4291 §2.7); the stack drops such packets before
    // an ICMPv6 socket sees them, and so must anything that parses whole frames.
    if header.src.is_multicast()
        || header.next_header != IPPROTO_ICMPV6
        || header.hop_limit != NDP_HOP_LIMIT
        || !icmpv6_checksum_ok(header.src, header.dst, icmp)
    {
        return None;
    }
    let ns = NeighborSolicitation::parse_icmpv6(icmp)?;
    if header.src.is_unspecified()
        && (!is_solicited_node_multicast(header.dst) || ns.source_mac.is_some())
    {
        return None;
    }
    Some((header, ns))
}

/// A Neighbor Advertisement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborAdvertisement {
    /// R: the sender is a router (never for us).
    pub router: bool,
    /// S: sent in response to a solicitation.
    pub solicited: bool,
    /// O: override existing cache entries.
    pub override_flag: bool,
    /// The address advertised.
    pub target: Ipv6Addr,
    /// The target link-layer address option.
    pub target_mac: Option<MacAddr>,
}

impl NeighborAdvertisement {
    /// Parses an ICMPv6 message (no IPv6 header); same checks as for solicitations.
    pub fn parse_icmpv6(icmp: &[u8]) -> Option<Self> {
        if *icmp.first()? != ICMPV6_NEIGHBOR_ADVERTISEMENT || *icmp.get(1)? != 0 {
            return None;
        }
        let flags = *icmp.get(4)?;
        let target = ipv6_at(icmp, 8)?;
        if target.is_multicast() {
            return None;
        }
        let options = ndp_options(icmp.get(ND_FIXED_LEN..)?)?;
        Some(NeighborAdvertisement {
            router: flags & NA_FLAG_ROUTER != 0,
            solicited: flags & NA_FLAG_SOLICITED != 0,
            override_flag: flags & NA_FLAG_OVERRIDE != 0,
            target,
            target_mac: link_layer_option(&options, OPT_TARGET_LL),
        })
    }

    /// The ICMPv6 message from `src` to `dst`, checksum filled in. On an ICMPv6 raw socket the
    /// kernel recomputes the checksum with the source address it picks, so any `src` works
    /// there; for a full frame it must be the real source.
    pub fn to_icmpv6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let mut flags = 0u8;
        if self.router {
            flags |= NA_FLAG_ROUTER;
        }
        if self.solicited {
            flags |= NA_FLAG_SOLICITED;
        }
        if self.override_flag {
            flags |= NA_FLAG_OVERRIDE;
        }
        let mut out = vec![ICMPV6_NEIGHBOR_ADVERTISEMENT, 0, 0, 0, flags, 0, 0, 0];
        out.extend_from_slice(&self.target.octets());
        if let Some(mac) = self.target_mac {
            write_link_layer_option(OPT_TARGET_LL, mac, &mut out);
        }
        set_checksum(src, dst, &mut out);
        out
    }
}

fn set_checksum(src: Ipv6Addr, dst: Ipv6Addr, icmp: &mut [u8]) {
    if let Some(field) = icmp.get_mut(2..4) {
        field.copy_from_slice(&[0, 0]);
    }
    let sum = icmpv6_checksum(src, dst, icmp);
    if let Some(field) = icmp.get_mut(2..4) {
        field.copy_from_slice(&sum.to_be_bytes());
    }
}

/// The advertisement answering a solicitation for `target` (which we own) from `ns_src`, and
/// where to send it (RFC 4861 §7.2.4): to the solicitor with S and O set, or, when the
/// solicitor is doing duplicate address detection (unspecified source), to all nodes with S
/// clear.
pub fn solicited_na(
    ns_src: Ipv6Addr,
    target: Ipv6Addr,
    my_mac: MacAddr,
) -> (Ipv6Addr, NeighborAdvertisement) {
    let dad = ns_src.is_unspecified();
    let na = NeighborAdvertisement {
        router: false,
        solicited: !dad,
        override_flag: true,
        target,
        target_mac: Some(my_mac),
    };
    (if dad { ALL_NODES } else { ns_src }, na)
}

/// The unsolicited advertisement sent when we gain `target` (RFC 4861 §7.2.6): O set so
/// caches switch to us, to all nodes.
pub fn unsolicited_na(target: Ipv6Addr, my_mac: MacAddr) -> (Ipv6Addr, NeighborAdvertisement) {
    let na = NeighborAdvertisement {
        router: false,
        solicited: false,
        override_flag: true,
        target,
        target_mac: Some(my_mac),
    };
    (ALL_NODES, na)
}

/// A complete Ethernet frame carrying `na` from `src` to `dst` (hop limit 255). The Ethernet
/// destination is the multicast MAC of `dst` when it is multicast, else `dst_mac`.
pub fn na_frame(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    na: &NeighborAdvertisement,
) -> Vec<u8> {
    let icmp = na.to_icmpv6(src, dst);
    let eth_dst = if dst.is_multicast() {
        multicast_mac(dst)
    } else {
        dst_mac
    };
    let mut out = Vec::with_capacity(ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + icmp.len());
    EthernetHeader {
        dst: eth_dst,
        src: src_mac,
        ethertype: ETHERTYPE_IPV6,
    }
    .write(&mut out);
    let header = Ipv6Header {
        src,
        dst,
        next_header: IPPROTO_ICMPV6,
        hop_limit: NDP_HOP_LIMIT,
    };
    // NDP messages are tens of bytes; the length always fits.
    header.write(u16::try_from(icmp.len()).unwrap_or(u16::MAX), &mut out);
    out.extend_from_slice(&icmp);
    out
}

/// The reply to a solicitation received on an ICMPv6 socket from `src` (no IPv6 header), if
/// it asks for an address `owns` says is ours: the destination and the ICMPv6 message.
pub fn ndp_response(
    src: Ipv6Addr,
    icmp: &[u8],
    my_mac: MacAddr,
    owns: impl Fn(Ipv6Addr) -> bool,
) -> Option<(Ipv6Addr, NeighborAdvertisement)> {
    let ns = NeighborSolicitation::parse_icmpv6(icmp)?;
    if !owns(ns.target) || (src.is_unspecified() && ns.source_mac.is_some()) {
        return None;
    }
    Some(solicited_na(src, ns.target, my_mac))
}

/// The solicited-node multicast address of `ip`: ff02::1:ff00:0/104 plus its low 24 bits.
/// Solicitations for `ip` go there, so the NDP listener joins it for every owned address.
pub fn solicited_node_multicast(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// Whether `ip` is a solicited-node multicast address.
pub fn is_solicited_node_multicast(ip: Ipv6Addr) -> bool {
    let o = ip.octets();
    o[..13] == [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff]
}

/// The Ethernet MAC of an IPv6 multicast address (RFC 2464 §7): 33:33 and its low 32 bits.
pub fn multicast_mac(ip: Ipv6Addr) -> MacAddr {
    let o = ip.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAC: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);
    const PEER_MAC: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x00, 0x02]);

    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex"))
            .collect()
    }

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().expect("test address")
    }

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().expect("test address")
    }

    #[test]
    fn golden_gratuitous_arp_request() {
        // Ethernet: broadcast dst, our src, ARP. ARP: Ethernet/IPv4, 6/4, op 1, sender
        // 02:00:00:00:00:01 10.200.0.10, target 00:00:00:00:00:00 10.200.0.10.
        let want = hex("ffffffffffff 020000000001 0806
             0001 0800 06 04 0001
             020000000001 0ac8000a
             000000000000 0ac8000a");
        let got = gratuitous_arp_request(MAC, v4("10.200.0.10"));
        assert_eq!(got, want);
        let (eth, arp) = parse_arp_frame(&got).expect("parses");
        assert_eq!(eth.dst, MacAddr::BROADCAST);
        assert!(arp.is_gratuitous());
        assert_eq!(arp.op, ArpOp::Request);
    }

    #[test]
    fn golden_gratuitous_arp_reply() {
        let want = hex("ffffffffffff 020000000001 0806
             0001 0800 06 04 0002
             020000000001 0ac8000a
             ffffffffffff 0ac8000a");
        assert_eq!(gratuitous_arp_reply(MAC, v4("10.200.0.10")), want);
    }

    #[test]
    fn answers_requests_for_owned_ips_only() {
        // A request from 10.200.0.2 (PEER_MAC) for 10.200.0.10, padded to 60 bytes as on the
        // wire.
        let mut request = hex("ffffffffffff 020000000002 0806
             0001 0800 06 04 0001
             020000000002 0ac80002
             000000000000 0ac8000a");
        request.resize(60, 0);
        let reply = arp_response(&request, MAC, |ip| ip == v4("10.200.0.10")).expect("owned");
        let want = hex("020000000002 020000000001 0806
             0001 0800 06 04 0002
             020000000001 0ac8000a
             020000000002 0ac80002");
        assert_eq!(reply, want);
        // The allocation-free form writes the same bytes and hands back the request.
        let mut out = [0u8; ARP_FRAME_LEN];
        let req =
            arp_reply_into(&request, MAC, |ip| ip == v4("10.200.0.10"), &mut out).expect("owned");
        assert_eq!(out.as_slice(), want.as_slice());
        assert_eq!(req.sender_ip, v4("10.200.0.2"));
        assert_eq!(arp_response(&request, MAC, |_| false), None);
        // Our own request looped back is not answered.
        assert_eq!(arp_response(&request, PEER_MAC, |_| true), None);
        // Replies and gratuitous announcements are not answered.
        assert_eq!(
            arp_response(
                &gratuitous_arp_reply(PEER_MAC, v4("10.200.0.10")),
                MAC,
                |_| true
            ),
            None
        );
        assert_eq!(
            arp_response(
                &gratuitous_arp_request(PEER_MAC, v4("10.200.0.10")),
                MAC,
                |_| true
            ),
            None
        );
        // An RFC 5227 probe for our address is answered (to 0.0.0.0 at the prober's MAC).
        let probe = arp_frame(
            MacAddr::BROADCAST,
            PEER_MAC,
            &ArpPacket {
                op: ArpOp::Request,
                sender_mac: PEER_MAC,
                sender_ip: Ipv4Addr::UNSPECIFIED,
                target_mac: MacAddr::ZERO,
                target_ip: v4("10.200.0.10"),
            },
        );
        let (eth, arp) = parse_arp_frame(&arp_response(&probe, MAC, |_| true).expect("defended"))
            .expect("parses");
        assert_eq!((eth.dst, arp.target_ip), (PEER_MAC, Ipv4Addr::UNSPECIFIED));
    }

    #[test]
    fn arp_rejects_other_hardware_protocols_and_ops() {
        let good = gratuitous_arp_request(MAC, v4("10.0.0.1"));
        for (at, byte) in [
            (14, 0x01),
            (15, 0x06),
            (16, 0x86),
            (18, 8),
            (19, 16),
            (21, 3),
            (12, 0x08),
        ] {
            let mut bad = good.clone();
            bad[at] = byte;
            // Byte 12/13 is the EtherType: 0x0808 is not ARP.
            if at == 12 {
                bad[13] = 0x08;
            }
            assert_eq!(parse_arp_frame(&bad), None, "byte {at} = {byte:#x}");
        }
        assert_eq!(parse_arp_frame(&good[..41]), None);
    }

    /// NA from fe80::1 (02:00:00:00:00:01) to all nodes: unsolicited, O set, target
    /// fd00:200::10. Checksum 0x570c computed independently (Python, RFC 4443 pseudo-header).
    const GOLDEN_UNSOLICITED_NA: &str = "333300000001 020000000001 86dd
         60000000 0020 3a ff
         fe800000000000000000000000000001
         ff020000000000000000000000000001
         88 00 570c 20000000
         fd000200000000000000000000000010
         02 01 020000000001";

    #[test]
    fn golden_unsolicited_na() {
        let (dst, na) = unsolicited_na(v6("fd00:200::10"), MAC);
        assert_eq!(dst, ALL_NODES);
        let frame = na_frame(MAC, MacAddr::BROADCAST, v6("fe80::1"), dst, &na);
        assert_eq!(frame, hex(GOLDEN_UNSOLICITED_NA));
        let icmp = &frame[ETHERNET_HEADER_LEN + IPV6_HEADER_LEN..];
        assert!(icmpv6_checksum_ok(v6("fe80::1"), ALL_NODES, icmp));
        assert_eq!(NeighborAdvertisement::parse_icmpv6(icmp), Some(na));
    }

    /// NS from fe80::2 (02:00:00:00:00:02) to ff02::1:ff00:10 for fd00:200::10, with a source
    /// link-layer option, as a whole Ethernet frame. Checksum 0x79f9 computed independently.
    const GOLDEN_NS: &str = "3333ff000010 020000000002 86dd
         60000000 0020 3a ff
         fe800000000000000000000000000002
         ff0200000000000000000001ff000010
         87 00 79f9 00000000
         fd000200000000000000000000000010
         01 01 020000000002";

    #[test]
    fn golden_ns_parses_and_gets_solicited_reply() {
        let frame = hex(GOLDEN_NS);
        let (eth, packet) = EthernetHeader::parse(&frame).expect("ethernet");
        assert_eq!(eth.ethertype, ETHERTYPE_IPV6);
        let (ip, ns) = parse_ns_packet(packet).expect("valid NS");
        assert_eq!(ip.src, v6("fe80::2"));
        assert_eq!(ip.dst, solicited_node_multicast(v6("fd00:200::10")));
        assert_eq!(eth.dst, multicast_mac(ip.dst));
        assert_eq!(
            ns,
            NeighborSolicitation {
                target: v6("fd00:200::10"),
                source_mac: Some(PEER_MAC)
            }
        );
        // Rebuilding gives the same ICMPv6 bytes.
        assert_eq!(ns.to_icmpv6(ip.src, ip.dst), packet[IPV6_HEADER_LEN..]);

        // The raw socket hands over the ICMPv6 part only.
        let icmp = &packet[IPV6_HEADER_LEN..];
        let (dst, na) =
            ndp_response(ip.src, icmp, MAC, |t| t == v6("fd00:200::10")).expect("owned");
        assert_eq!(dst, v6("fe80::2"));
        assert!(na.solicited && na.override_flag && !na.router);
        assert_eq!(na.target_mac, Some(MAC));
        assert_eq!(ndp_response(ip.src, icmp, MAC, |_| false), None);

        // Solicited reply frame, checked byte by byte: flags 0x60 (S+O), unicast to the
        // solicitor. Checksum 0x178d computed independently.
        let reply = na_frame(MAC, PEER_MAC, v6("fe80::1"), dst, &na);
        let want = hex("020000000002 020000000001 86dd
             60000000 0020 3a ff
             fe800000000000000000000000000001
             fe800000000000000000000000000002
             88 00 178d 60000000
             fd000200000000000000000000000010
             02 01 020000000001");
        assert_eq!(reply, want);
    }

    #[test]
    fn ns_validation() {
        let good = hex(GOLDEN_NS);
        let packet = &good[ETHERNET_HEADER_LEN..];
        // Hop limit other than 255: off-link, must be dropped.
        let mut bad = packet.to_vec();
        bad[7] = 64;
        assert_eq!(parse_ns_packet(&bad), None);
        // Corrupted checksum.
        let mut bad = packet.to_vec();
        bad[IPV6_HEADER_LEN + 2] ^= 1;
        assert_eq!(parse_ns_packet(&bad), None);
        // Multicast source (checksum made right, so only the source decides).
        let (header, body) = Ipv6Header::parse(packet).expect("golden NS");
        let ns = NeighborSolicitation::parse_icmpv6(body).expect("golden NS");
        let mut bad = Vec::new();
        let src = v6("ff02::2");
        let icmp = ns.to_icmpv6(src, header.dst);
        Ipv6Header { src, ..header }.write(icmp.len() as u16, &mut bad);
        bad.extend_from_slice(&icmp);
        assert_eq!(parse_ns_packet(&bad), None);
        // Code not 0.
        let mut icmp = packet[IPV6_HEADER_LEN..].to_vec();
        icmp[1] = 1;
        assert_eq!(NeighborSolicitation::parse_icmpv6(&icmp), None);
        // Zero-length option.
        let mut icmp = packet[IPV6_HEADER_LEN..].to_vec();
        icmp[25] = 0;
        assert_eq!(NeighborSolicitation::parse_icmpv6(&icmp), None);
        // Option running past the end.
        let mut icmp = packet[IPV6_HEADER_LEN..].to_vec();
        icmp[25] = 2;
        assert_eq!(NeighborSolicitation::parse_icmpv6(&icmp), None);
        // Multicast target.
        let mcast = NeighborSolicitation {
            target: ALL_NODES,
            source_mac: None,
        };
        assert_eq!(
            NeighborSolicitation::parse_icmpv6(&mcast.to_icmpv6(v6("fe80::2"), ALL_NODES)),
            None
        );
        // Truncated.
        assert_eq!(
            NeighborSolicitation::parse_icmpv6(&packet[IPV6_HEADER_LEN..IPV6_HEADER_LEN + 23]),
            None
        );
        // Trailing link padding after the payload length is ignored.
        let mut padded = packet.to_vec();
        padded.extend_from_slice(&[0; 6]);
        assert!(parse_ns_packet(&padded).is_some());
    }

    #[test]
    fn dad_solicitation_gets_all_nodes_reply_without_s() {
        let target = v6("fd00:200::10");
        let dst = solicited_node_multicast(target);
        let ns = NeighborSolicitation {
            target,
            source_mac: None,
        };
        let mut packet = Vec::new();
        let icmp = ns.to_icmpv6(Ipv6Addr::UNSPECIFIED, dst);
        Ipv6Header {
            src: Ipv6Addr::UNSPECIFIED,
            dst,
            next_header: IPPROTO_ICMPV6,
            hop_limit: 255,
        }
        .write(icmp.len() as u16, &mut packet);
        packet.extend_from_slice(&icmp);
        assert!(parse_ns_packet(&packet).is_some());
        let (to, na) = ndp_response(Ipv6Addr::UNSPECIFIED, &icmp, MAC, |_| true).expect("owned");
        assert_eq!(to, ALL_NODES);
        assert!(!na.solicited && na.override_flag);
        // DAD with a source link-layer option is invalid.
        let bad = NeighborSolicitation {
            target,
            source_mac: Some(PEER_MAC),
        };
        let icmp = bad.to_icmpv6(Ipv6Addr::UNSPECIFIED, dst);
        assert_eq!(
            ndp_response(Ipv6Addr::UNSPECIFIED, &icmp, MAC, |_| true),
            None
        );
    }

    #[test]
    fn solicited_node_multicast_and_mac() {
        let m = solicited_node_multicast(v6("fd00:200::12:3456"));
        assert_eq!(m, v6("ff02::1:ff12:3456"));
        assert!(is_solicited_node_multicast(m));
        assert!(!is_solicited_node_multicast(ALL_NODES));
        assert_eq!(multicast_mac(m).to_string(), "33:33:ff:12:34:56");
        assert!(multicast_mac(m).is_multicast());
        assert_eq!(multicast_mac(ALL_NODES), MacAddr([0x33, 0x33, 0, 0, 0, 1]));
    }

    #[test]
    fn checksum_of_odd_length_pads_with_zero() {
        let (a, b) = (v6("::1"), v6("::2"));
        let odd = icmpv6_checksum(a, b, &[0x12]);
        // Same sum as the explicit padding, but the length in the pseudo-header differs by one.
        let even = icmpv6_checksum(a, b, &[0x12, 0x00]);
        assert_eq!(u32::from(!odd) + 1, u32::from(!even));
    }

    fn mac() -> impl Strategy<Value = MacAddr> {
        any::<[u8; 6]>().prop_map(MacAddr)
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_arp_frame(&bytes);
            let _ = ArpPacket::parse(&bytes);
            let _ = EthernetHeader::parse(&bytes);
            let _ = Ipv6Header::parse(&bytes);
            let _ = parse_ns_packet(&bytes);
            let _ = NeighborSolicitation::parse_icmpv6(&bytes);
            let _ = NeighborAdvertisement::parse_icmpv6(&bytes);
            let _ = arp_response(&bytes, MAC, |_| true);
            let _ = ndp_response(Ipv6Addr::UNSPECIFIED, &bytes, MAC, |_| true);
            let _ = icmpv6_checksum(ALL_NODES, ALL_NODES, &bytes);
        }

        /// Arbitrary bytes behind a valid NDP prefix reach the option parser.
        #[test]
        fn option_parser_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..64), na in any::<bool>()) {
            let mut icmp = vec![if na { 136 } else { 135 }, 0, 0, 0, 0, 0, 0, 0];
            icmp.extend_from_slice(&v6("fd00::1").octets());
            icmp.extend_from_slice(&tail);
            let _ = NeighborSolicitation::parse_icmpv6(&icmp);
            let _ = NeighborAdvertisement::parse_icmpv6(&icmp);
        }

        #[test]
        fn arp_round_trips(
            request in any::<bool>(), smac in mac(), tmac in mac(),
            sip in any::<[u8; 4]>(), tip in any::<[u8; 4]>(), dst in mac(),
        ) {
            let arp = ArpPacket {
                op: if request { ArpOp::Request } else { ArpOp::Reply },
                sender_mac: smac, sender_ip: Ipv4Addr::from(sip),
                target_mac: tmac, target_ip: Ipv4Addr::from(tip),
            };
            let frame = arp_frame(dst, smac, &arp);
            prop_assert_eq!(frame.len(), 42);
            let (eth, back) = parse_arp_frame(&frame).expect("own frame parses");
            prop_assert_eq!(back, arp);
            prop_assert_eq!((eth.dst, eth.src), (dst, smac));
        }

        #[test]
        fn na_round_trips(
            flags in any::<[bool; 3]>(), target in any::<[u8; 16]>(), tmac in proptest::option::of(mac()),
            src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(), src_mac in mac(),
        ) {
            let target = Ipv6Addr::from(target);
            prop_assume!(!target.is_multicast());
            let na = NeighborAdvertisement {
                router: flags[0], solicited: flags[1], override_flag: flags[2], target, target_mac: tmac,
            };
            let (src, dst) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
            let frame = na_frame(src_mac, src_mac, src, dst, &na);
            let (eth, packet) = EthernetHeader::parse(&frame).expect("ethernet");
            prop_assert_eq!(eth.ethertype, ETHERTYPE_IPV6);
            let (ip, icmp) = Ipv6Header::parse(packet).expect("ipv6");
            prop_assert_eq!((ip.src, ip.dst, ip.hop_limit), (src, dst, 255));
            prop_assert!(icmpv6_checksum_ok(src, dst, icmp));
            prop_assert_eq!(NeighborAdvertisement::parse_icmpv6(icmp), Some(na));
        }

        #[test]
        fn ns_round_trips(target in any::<[u8; 16]>(), smac in proptest::option::of(mac()), src in any::<[u8; 16]>()) {
            let target = Ipv6Addr::from(target);
            prop_assume!(!target.is_multicast());
            let src = Ipv6Addr::from(src);
            prop_assume!(!src.is_unspecified() && !src.is_multicast());
            let ns = NeighborSolicitation { target, source_mac: smac };
            let dst = solicited_node_multicast(target);
            let icmp = ns.to_icmpv6(src, dst);
            let mut packet = Vec::new();
            Ipv6Header { src, dst, next_header: IPPROTO_ICMPV6, hop_limit: 255 }.write(icmp.len() as u16, &mut packet);
            packet.extend_from_slice(&icmp);
            prop_assert_eq!(parse_ns_packet(&packet), Some((Ipv6Header { src, dst, next_header: 58, hop_limit: 255 }, ns)));
            prop_assert_eq!(NeighborSolicitation::parse_icmpv6(&icmp), Some(ns));
        }

        #[test]
        fn solicited_node_keeps_low_24_bits(a in any::<[u8; 16]>()) {
            let ip = Ipv6Addr::from(a);
            let m = solicited_node_multicast(ip);
            prop_assert!(is_solicited_node_multicast(m));
            prop_assert_eq!(&m.octets()[13..], &a[13..]);
            prop_assert_eq!(&multicast_mac(m).0[..3], &[0x33, 0x33, 0xff]);
        }
    }
}
