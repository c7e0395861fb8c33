#!/usr/bin/env python3
"""Writes the hand-made seeds of the byte-level targets (bfd_decode, layer2_frame) into
fuzz/seeds/: well-formed frames of each kind the responders meet on a segment. Run from
fuzz/; the output is committed, so this only needs to run again when a seed is added."""
import ipaddress
import pathlib
import struct

SEEDS = pathlib.Path(__file__).resolve().parent / "seeds"
MY = bytes.fromhex("020000000001")  # the harness's own MAC
PEER = bytes.fromhex("020000000002")
BCAST = b"\xff" * 6


def write(target, name, data):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def bfd(state, flags, mult, my, your, tx, rx, echo, extra=b""):
    first = (1 << 5) | 0  # version 1, diagnostic 0
    second = (state << 6) | flags
    body = struct.pack("!BBBBIIIII", first, second, mult, 24 + len(extra), my, your, tx, rx, echo)
    return body + extra


write("bfd_decode", "down-initial", bfd(1, 0, 3, 1, 0, 1_000_000, 300_000, 0))
write("bfd_decode", "init", bfd(2, 0, 3, 7, 1, 50_000, 50_000, 0))
write("bfd_decode", "up-poll", bfd(3, 0x20, 3, 7, 1, 50_000, 50_000, 0))
write("bfd_decode", "up-final", bfd(3, 0x10, 5, 7, 1, 20_000, 20_000, 0))
write("bfd_decode", "admin-down", bfd(0, 0, 3, 7, 1, 1_000_000, 0, 0))
# Authentication present (simple password): the decoder's handling of the A bit.
write("bfd_decode", "auth-simple", bfd(3, 0x04, 3, 7, 1, 50_000, 50_000, 0, b"\x01\x07\x01secret"))


def eth(dst, src, ethertype, payload):
    return dst + src + struct.pack("!H", ethertype) + payload


def arp(op, smac, sip, tmac, tip):
    return struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + smac + ipaddress.IPv4Address(sip).packed + tmac + ipaddress.IPv4Address(tip).packed


# The harness owns addresses whose last byte is even.
write("layer2_frame", "arp-request-owned", eth(BCAST, PEER, 0x0806, arp(1, PEER, "10.200.0.2", b"\0" * 6, "10.200.0.10")))
write("layer2_frame", "arp-request-not-owned", eth(BCAST, PEER, 0x0806, arp(1, PEER, "10.200.0.2", b"\0" * 6, "10.200.0.11")))
write("layer2_frame", "arp-probe-rfc5227", eth(BCAST, PEER, 0x0806, arp(1, PEER, "0.0.0.0", b"\0" * 6, "10.200.0.10")))
write("layer2_frame", "arp-gratuitous", eth(BCAST, PEER, 0x0806, arp(1, PEER, "10.200.0.12", b"\0" * 6, "10.200.0.12")))
write("layer2_frame", "arp-reply-padded", eth(MY, PEER, 0x0806, arp(2, PEER, "10.200.0.2", MY, "10.200.0.10") + b"\0" * 18))


def checksum(src, dst, icmp):
    pseudo = src + dst + struct.pack("!I", len(icmp)) + b"\0\0\0\x3a"
    data = pseudo + icmp + (b"\0" if len(icmp) % 2 else b"")
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ipv6_icmp(src, dst, icmp, hop=255):
    s = ipaddress.IPv6Address(src).packed
    d = ipaddress.IPv6Address(dst).packed
    icmp = icmp[:2] + b"\0\0" + icmp[4:]
    c = checksum(s, d, icmp)
    icmp = icmp[:2] + struct.pack("!H", c) + icmp[4:]
    return struct.pack("!IHBB", 0x60000000, len(icmp), 58, hop) + s + d + icmp


def ns(target, source_mac=None):
    body = struct.pack("!BBHI", 135, 0, 0, 0) + ipaddress.IPv6Address(target).packed
    if source_mac:
        body += b"\x01\x01" + source_mac
    return body


def na(target, flags, target_mac):
    return struct.pack("!BBHB3x", 136, 0, 0, flags) + ipaddress.IPv6Address(target).packed + b"\x02\x01" + target_mac


def snm(target):
    o = ipaddress.IPv6Address(target).packed
    return str(ipaddress.IPv6Address(bytes.fromhex("ff0200000000000000000001ff") + o[13:]))


def mcast_mac(addr):
    return b"\x33\x33" + ipaddress.IPv6Address(addr).packed[12:]


T = "fd00:200::10"
write("layer2_frame", "ns-owned", eth(mcast_mac(snm(T)), PEER, 0x86DD, ipv6_icmp("fd00:200::2", snm(T), ns(T, PEER))))
write("layer2_frame", "ns-not-owned", eth(mcast_mac(snm("fd00:200::11")), PEER, 0x86DD, ipv6_icmp("fd00:200::2", snm("fd00:200::11"), ns("fd00:200::11", PEER))))
write("layer2_frame", "ns-dad", eth(mcast_mac(snm(T)), PEER, 0x86DD, ipv6_icmp("::", snm(T), ns(T))))
write("layer2_frame", "ns-unicast-no-option", eth(MY, PEER, 0x86DD, ipv6_icmp("fe80::2", T, ns(T))))
write("layer2_frame", "ns-routed-hop-64", eth(MY, PEER, 0x86DD, ipv6_icmp("fd00:200::2", T, ns(T, PEER), hop=64)))
write("layer2_frame", "na-unsolicited", eth(mcast_mac("ff02::1"), PEER, 0x86DD, ipv6_icmp("fe80::2", "ff02::1", na(T, 0x20, PEER))))
