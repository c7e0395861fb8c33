//! The IPv4 + UDP framing of echo packets, for a packet socket (RFC 5881 §4).
//!
//! An echo packet is addressed to ourselves, yet must leave through the peer: the kernel
//! would deliver a datagram for a local address over the loopback device, so the speaker
//! writes the IP header itself to a packet socket with the peer's link-layer address, and
//! reads the returning packets from a packet socket too (the kernel's IP layer drops a packet
//! whose source is one of its own addresses arriving from outside as a martian, before any
//! UDP socket could see it). This module builds and checks those IP/UDP headers.

use super::echo::{ECHO_PORT, ECHO_TTL};
use std::net::Ipv4Addr;

/// IPv4 header length without options.
const IPV4_HEADER: usize = 20;
/// UDP header length.
const UDP_HEADER: usize = 8;
/// IP protocol number of UDP.
const PROTO_UDP: u8 = 17;
/// IP precedence "internetwork control" (CS6), as for control packets.
const TOS_CS6: u8 = 0xc0;

/// One's complement sum of 16-bit words (odd trailing byte padded with zero).
fn sum16(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(u16::from_be_bytes([*last, 0]));
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, udp: &[u8]) -> u16 {
    let mut acc = sum16(0, &src.octets());
    acc = sum16(acc, &dst.octets());
    acc += u32::from(PROTO_UDP);
    acc += u32::try_from(udp.len()).unwrap_or(u32::MAX);
    let c = fold(sum16(acc, udp));
    // RFC 768: a computed zero is sent as all ones (zero means "no checksum").
    if c == 0 { 0xffff } else { c }
}

/// An IPv4 datagram from `src` to `dst`, UDP port [`ECHO_PORT`] to [`ECHO_PORT`], TTL
/// [`ECHO_TTL`], carrying `payload`; `id` is the IP identification.
pub fn build_ipv4(src: Ipv4Addr, dst: Ipv4Addr, id: u16, payload: &[u8]) -> Vec<u8> {
    let udp_len = UDP_HEADER + payload.len();
    let total = IPV4_HEADER + udp_len;
    let mut b = vec![0u8; total];
    b[0] = 0x45;
    b[1] = TOS_CS6;
    b[2..4].copy_from_slice(&u16::try_from(total).unwrap_or(u16::MAX).to_be_bytes());
    b[4..6].copy_from_slice(&id.to_be_bytes());
    // Don't Fragment: an echo packet is tiny and must come back whole.
    b[6] = 0x40;
    b[8] = ECHO_TTL;
    b[9] = PROTO_UDP;
    b[12..16].copy_from_slice(&src.octets());
    b[16..20].copy_from_slice(&dst.octets());
    let check = fold(sum16(0, &b[..IPV4_HEADER]));
    b[10..12].copy_from_slice(&check.to_be_bytes());
    let udp = &mut b[IPV4_HEADER..];
    udp[0..2].copy_from_slice(&ECHO_PORT.to_be_bytes());
    udp[2..4].copy_from_slice(&ECHO_PORT.to_be_bytes());
    udp[4..6].copy_from_slice(&u16::try_from(udp_len).unwrap_or(u16::MAX).to_be_bytes());
    udp[8..].copy_from_slice(payload);
    let check = udp_checksum(src, dst, udp);
    udp[6..8].copy_from_slice(&check.to_be_bytes());
    b
}

/// A received IPv4 datagram for the echo port, headers checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoDatagram<'a> {
    /// IP source.
    pub src: Ipv4Addr,
    /// IP destination.
    pub dst: Ipv4Addr,
    /// TTL it arrived with.
    pub ttl: u8,
    /// UDP payload.
    pub payload: &'a [u8],
}

/// Parses an IPv4 datagram (from the IP header on) that should be a UDP packet to the echo
/// port; `None` for anything else or a bad checksum.
pub fn parse_ipv4(data: &[u8]) -> Option<EchoDatagram<'_>> {
    let first = *data.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < IPV4_HEADER || data.len() < ihl + UDP_HEADER {
        return None;
    }
    if fold(sum16(0, &data[..ihl])) != 0 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([data[2], data[3]]));
    // Fragments (MF set or an offset) are not ours: we send with DF and tiny payloads.
    let frag = u16::from_be_bytes([data[6], data[7]]);
    if data[9] != PROTO_UDP || frag & 0x3fff != 0 || total > data.len() || total < ihl {
        return None;
    }
    let src = Ipv4Addr::new(data[12], data[13], data[14], data[15]);
    let dst = Ipv4Addr::new(data[16], data[17], data[18], data[19]);
    let udp = &data[ihl..total];
    if udp.len() < UDP_HEADER || u16::from_be_bytes([udp[2], udp[3]]) != ECHO_PORT {
        return None;
    }
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if udp_len < UDP_HEADER || udp_len > udp.len() {
        return None;
    }
    let udp = &udp[..udp_len];
    let check = u16::from_be_bytes([udp[6], udp[7]]);
    if check != 0 && fold(sum16(pseudo_sum(src, dst, udp_len), udp)) != 0 {
        return None;
    }
    Some(EchoDatagram {
        src,
        dst,
        ttl: data[8],
        payload: &udp[UDP_HEADER..],
    })
}

fn pseudo_sum(src: Ipv4Addr, dst: Ipv4Addr, udp_len: usize) -> u32 {
    let mut acc = sum16(0, &src.octets());
    acc = sum16(acc, &dst.octets());
    acc + u32::from(PROTO_UDP) + u32::try_from(udp_len).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
