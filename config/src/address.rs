//! Parsing of `spec.addresses` entries: a CIDR (`10.0.0.0/24`) or an inclusive range
//! (`10.0.0.5-10.0.0.20`) of one family.

use crate::model::{AddressRange, IpFamily, ip_to_u128, u128_to_ip};
use std::net::IpAddr;

/// What the error messages say is accepted.
pub const ACCEPTED: &str = "a CIDR such as 192.168.10.0/24 or fc00::/120, or a range \
                            first-last of one family such as 192.168.10.5-192.168.10.20";

/// Number of address bits of a family.
pub fn family_bits(family: IpFamily) -> u8 {
    match family {
        IpFamily::V4 => 32,
        IpFamily::V6 => 128,
    }
}

/// Parses one entry of `spec.addresses`. The error says what was wrong and what is accepted.
pub fn parse_address_range(text: &str) -> Result<AddressRange, String> {
    let entry = text.trim();
    if let Some((addr, len)) = entry.split_once('/') {
        return parse_cidr(text, addr.trim(), len.trim());
    }
    if let Some((first, last)) = entry.split_once('-') {
        let first: IpAddr = first.trim().parse().map_err(|_| {
            format!(
                "{text:?}: range start {:?} is not an IP address; expected {ACCEPTED}",
                first.trim()
            )
        })?;
        let last: IpAddr = last.trim().parse().map_err(|_| {
            format!(
                "{text:?}: range end {:?} is not an IP address; expected {ACCEPTED}",
                last.trim()
            )
        })?;
        if IpFamily::of(&first) != IpFamily::of(&last) {
            return Err(format!(
                "{text:?} mixes an {} start and an {} end; a range must be of one family",
                IpFamily::of(&first).k8s_name(),
                IpFamily::of(&last).k8s_name()
            ));
        }
        if ip_to_u128(first) > ip_to_u128(last) {
            return Err(format!(
                "{text:?}: start {first} is after end {last}; write the range as {last}-{first}"
            ));
        }
        return Ok(AddressRange {
            first,
            last,
            prefix_len: None,
            text: text.to_string(),
        });
    }
    if entry.parse::<IpAddr>().is_ok() {
        let bits = if entry.contains(':') { 128 } else { 32 };
        return Err(format!(
            "{text:?} is a single address without a prefix length; write {entry}/{bits} for just \
             this address, or use {ACCEPTED}"
        ));
    }
    Err(format!(
        "{text:?} is neither a CIDR nor a range; expected {ACCEPTED}"
    ))
}

fn parse_cidr(text: &str, addr: &str, len: &str) -> Result<AddressRange, String> {
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("{text:?}: {addr:?} is not an IP address; expected {ACCEPTED}"))?;
    let family = IpFamily::of(&ip);
    let bits = family_bits(family);
    let prefix_len: u8 = len.parse().ok().filter(|l| *l <= bits).ok_or_else(|| {
        format!("{text:?}: prefix length {len:?} is not a number from 0 to {bits}")
    })?;
    let host_bits = u32::from(bits - prefix_len);
    let host_mask: u128 = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    let start = ip_to_u128(ip);
    if start & host_mask != 0 {
        let network = u128_to_ip(start & !host_mask, family);
        return Err(format!(
            "{text:?} has host bits set; did you mean {network}/{prefix_len}? (for a single \
             address write {ip}/{bits})"
        ));
    }
    Ok(AddressRange {
        first: ip,
        last: u128_to_ip(start | host_mask, family),
        prefix_len: Some(prefix_len),
        text: text.to_string(),
    })
}

impl AddressRange {
    /// Prefix length of the entry as written, or of the smallest CIDR covering a `first-last`
    /// range (MetalLB's rule for checking aggregation lengths).
    pub fn covering_prefix_len(&self) -> u8 {
        if let Some(len) = self.prefix_len {
            return len;
        }
        let differing = self.start() ^ self.end();
        let bits = family_bits(self.family());
        // Bits above the family's width are zero in both numbers, so count only the low ones.
        let used = 128 - differing.leading_zeros();
        bits - used as u8
    }
}

/// Formats the inclusive range `start..=end` of `family` for messages: one address, a CIDR when
/// it is exactly one, else `first-last`.
pub fn describe(start: u128, end: u128, family: IpFamily) -> String {
    let first = u128_to_ip(start, family);
    if start == end {
        return first.to_string();
    }
    let size_minus_one = end - start;
    if size_minus_one.wrapping_add(1) & size_minus_one == 0 && start & size_minus_one == 0 {
        let host = 128 - size_minus_one.leading_zeros();
        let len = u32::from(family_bits(family)) - host;
        return format!("{first}/{len}");
    }
    format!("{first}-{}", u128_to_ip(end, family))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn cidrs_and_ranges_parse() {
        let r = parse_address_range("10.0.0.0/24").expect("cidr");
        assert_eq!(
            (r.first.to_string(), r.last.to_string()),
            ("10.0.0.0".into(), "10.0.0.255".into())
        );
        assert_eq!(r.prefix_len, Some(24));
        let r = parse_address_range("10.0.0.5-10.0.0.9").expect("range");
        assert_eq!(r.size(), 5);
        assert_eq!(r.prefix_len, None);
        let r = parse_address_range("fd00::/120").expect("v6");
        assert_eq!(r.size(), 256);
        let r = parse_address_range("0.0.0.0/0").expect("all v4");
        assert_eq!(r.size(), 1 << 32);
        assert_eq!(
            parse_address_range("::/0").expect("all v6").size(),
            u128::MAX
        );
    }

    #[test]
    fn garbage_is_neither_cidr_nor_range() {
        assert_eq!(
            parse_address_range("bogus").expect_err("garbage"),
            format!("\"bogus\" is neither a CIDR nor a range; expected {ACCEPTED}")
        );
        let err = parse_address_range("10.0.0.1").expect_err("bare address");
        assert!(
            err.contains("write 10.0.0.1/32 for just this address"),
            "{err}"
        );
        let err = parse_address_range("10.0.0.0/33").expect_err("long prefix");
        assert_eq!(
            err,
            "\"10.0.0.0/33\": prefix length \"33\" is not a number from 0 to 32"
        );
        let err = parse_address_range("10.0.0.x-10.0.0.9").expect_err("bad start");
        assert!(
            err.contains("range start \"10.0.0.x\" is not an IP address"),
            "{err}"
        );
    }

    #[test]
    fn host_bits_suggest_the_network() {
        assert_eq!(
            parse_address_range("10.0.0.5/24").expect_err("host bits"),
            "\"10.0.0.5/24\" has host bits set; did you mean 10.0.0.0/24? (for a single address \
             write 10.0.0.5/32)"
        );
        let err = parse_address_range("fd00::1/64").expect_err("v6 host bits");
        assert!(err.contains("did you mean fd00::/64?"), "{err}");
    }

    #[test]
    fn backwards_and_mixed_ranges_are_rejected() {
        assert_eq!(
            parse_address_range("10.0.0.9-10.0.0.5").expect_err("backwards"),
            "\"10.0.0.9-10.0.0.5\": start 10.0.0.9 is after end 10.0.0.5; write the range as \
             10.0.0.5-10.0.0.9"
        );
        assert_eq!(
            parse_address_range("10.0.0.1-fd00::1").expect_err("mixed"),
            "\"10.0.0.1-fd00::1\" mixes an IPv4 start and an IPv6 end; a range must be of one family"
        );
    }

    #[test]
    fn covering_prefix_of_ranges() {
        let len = |s: &str| parse_address_range(s).expect(s).covering_prefix_len();
        assert_eq!(len("10.0.0.0/25"), 25);
        assert_eq!(len("10.0.0.200-10.0.0.239"), 26); // 10.0.0.192/26
        assert_eq!(len("10.0.0.4-10.0.0.7"), 30);
        assert_eq!(len("10.0.0.5-10.0.0.5"), 32);
        assert_eq!(len("fd00::c8-fd00::ef"), 122);
    }

    #[test]
    fn describe_picks_the_shortest_form() {
        assert_eq!(describe(10, 10, IpFamily::V4), "0.0.0.10");
        assert_eq!(
            describe(0x0a00_0000, 0x0a00_00ff, IpFamily::V4),
            "10.0.0.0/24"
        );
        assert_eq!(
            describe(0x0a00_0005, 0x0a00_0009, IpFamily::V4),
            "10.0.0.5-10.0.0.9"
        );
    }

    fn v4_cidr() -> impl Strategy<Value = (Ipv4Addr, u8)> {
        (any::<u32>(), 0u8..=32).prop_map(|(n, len)| {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            (Ipv4Addr::from(n & mask), len)
        })
    }

    proptest! {
        #[test]
        fn valid_v4_cidrs_round_trip((ip, len) in v4_cidr()) {
            let text = format!("{ip}/{len}");
            let r = parse_address_range(&text).expect("valid cidr");
            prop_assert_eq!(r.prefix_len, Some(len));
            prop_assert_eq!(r.first, IpAddr::V4(ip));
            prop_assert_eq!(r.size(), 1u128 << (32 - len));
            // A single address is described without its /32.
            if len < 32 {
                prop_assert_eq!(describe(r.start(), r.end(), IpFamily::V4), text);
            }
        }

        #[test]
        fn valid_v6_cidrs_round_trip(n in any::<u128>(), len in 1u8..=128) {
            let ip = Ipv6Addr::from(n & (u128::MAX << (128 - u32::from(len))));
            let text = format!("{ip}/{len}");
            let r = parse_address_range(&text).expect("valid cidr");
            prop_assert_eq!(r.first, IpAddr::V6(ip));
            if len < 128 {
                prop_assert_eq!(describe(r.start(), r.end(), IpFamily::V6), text);
            }
        }

        #[test]
        fn valid_ranges_round_trip(a in any::<u32>(), b in any::<u32>()) {
            let (lo, hi) = (Ipv4Addr::from(a.min(b)), Ipv4Addr::from(a.max(b)));
            let r = parse_address_range(&format!("{lo}-{hi}")).expect("valid range");
            prop_assert_eq!((r.first, r.last), (IpAddr::V4(lo), IpAddr::V4(hi)));
            let len = r.covering_prefix_len();
            let covering = parse_address_range(&format!("{}/{len}", {
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                Ipv4Addr::from(a.min(b) & mask)
            })).expect("covering cidr");
            prop_assert!(covering.start() <= r.start() && r.end() <= covering.end());
            // Smallest: one bit longer no longer covers both ends.
            if len < 32 {
                let half = 1u128 << (31 - len);
                prop_assert!((r.start() - covering.start()) / half != (r.end() - covering.start()) / half);
            }
        }
    }
}
