//! Layer 2 mode: ARP (IPv4) and NDP (IPv6) for the IPs this node owns.
//!
//! Only the pure frame codecs live here so far; the AF_PACKET / ICMPv6 sockets and the
//! interface discovery (rtnetlink) will wrap them.

pub mod frames;
