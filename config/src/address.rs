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

/// One parsed entry of `spec.addresses`, with what it means if that differs from what is
/// written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedEntry {
    /// The addresses.
    pub range: AddressRange,
    /// Set when the entry is accepted but does not say what it means: a CIDR with host bits
    /// set is read as its network, as MetalLB reads it.
    pub warning: Option<String>,
}

/// Parses one entry of `spec.addresses` the way MetalLB's `ParseCIDR`
/// (internal/config/config.go) does: a range `first-last` may have spaces around each address,
/// a CIDR may not; host bits of a CIDR are cleared (with a warning). The error says what was
/// wrong and what is accepted.
pub fn parse_address_range(text: &str) -> Result<ParsedEntry, String> {
    if let Some((first, last)) = text.split_once('-') {
        return parse_range(text, first, last).map(|range| ParsedEntry {
            range,
            warning: None,
        });
    }
    if text.trim() != text {
        return Err(format!(
            "{text:?} has leading or trailing spaces; a CIDR is read without them (MetalLB \
             rejects them too): write {:?}",
            text.trim()
        ));
    }
    if let Some((addr, len)) = text.split_once('/') {
        return parse_cidr(text, addr, len);
    }
    if text.parse::<IpAddr>().is_ok() {
        let bits = if text.contains(':') { 128 } else { 32 };
        return Err(format!(
            "{text:?} is a single address without a prefix length; write {text}/{bits} for just \
             this address, or use {ACCEPTED}"
        ));
    }
    Err(format!(
        "{text:?} is neither a CIDR nor a range; expected {ACCEPTED}"
    ))
}

fn parse_range(text: &str, first: &str, last: &str) -> Result<AddressRange, String> {
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
    Ok(AddressRange {
        first,
        last,
        prefix_len: None,
        text: text.to_string(),
    })
}

fn parse_cidr(text: &str, addr: &str, len: &str) -> Result<ParsedEntry, String> {
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("{text:?}: {addr:?} is not an IP address; expected {ACCEPTED}"))?;
    let family = IpFamily::of(&ip);
    let bits = family_bits(family);
    let prefix_len: u8 = len
        .parse()
        .ok()
        .filter(|l| *l <= bits && len.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            format!("{text:?}: prefix length {len:?} is not a number from 0 to {bits}")
        })?;
    let host_mask = host_mask(bits - prefix_len);
    let start = ip_to_u128(ip) & !host_mask;
    let network = u128_to_ip(start, family);
    let warning = (network != ip).then(|| {
        format!(
            "{text:?} has host bits set, so it means {network}/{prefix_len} (all {} addresses \
             of it, as MetalLB reads it); write {network}/{prefix_len}, or {ip}/{bits} for just \
             this address",
            1u128
                .checked_shl(u32::from(bits - prefix_len))
                .map_or_else(|| "2^128".to_string(), |n| n.to_string())
        )
    });
    Ok(ParsedEntry {
        range: AddressRange {
            first: network,
            last: u128_to_ip(start | host_mask, family),
            prefix_len: Some(prefix_len),
            text: text.to_string(),
        },
        warning,
    })
}

/// The low `host_bits` bits set.
fn host_mask(host_bits: u8) -> u128 {
    if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    }
}

/// One CIDR block of an entry: first address as a number, and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    /// First address.
    pub start: u128,
    /// Prefix length.
    pub prefix_len: u8,
}

impl Block {
    /// The block as a CIDR (a single address without its prefix length), for messages.
    pub fn describe(&self, family: IpFamily) -> String {
        let host = family_bits(family).saturating_sub(self.prefix_len);
        describe(self.start, self.start | host_mask(host), family)
    }
}

impl AddressRange {
    /// The largest aligned CIDR blocks the entry splits into, in address order: the entry's
    /// own CIDR, or for `first-last` the blocks MetalLB's `ParseCIDR` summarizes it into.
    pub fn blocks(&self) -> Vec<Block> {
        let bits = family_bits(self.family());
        let (mut cur, end) = (self.start(), self.end());
        let mut out = Vec::new();
        loop {
            let align = if cur == 0 {
                u32::from(bits)
            } else {
                cur.trailing_zeros().min(u32::from(bits))
            };
            let remaining = end - cur;
            // floor(log2(remaining + 1)), without overflowing when the range is all of IPv6.
            let fits = match remaining.checked_add(1) {
                Some(n) => 127 - n.leading_zeros(),
                None => 128,
            };
            let host = align.min(fits);
            // host <= bits, which fits in a u8.
            out.push(Block {
                start: cur,
                prefix_len: bits - host as u8,
            });
            let size_minus_one = host_mask(host as u8);
            match (cur | size_minus_one).checked_add(1) {
                Some(next) if (cur | size_minus_one) < end => cur = next,
                _ => break,
            }
        }
        out
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

    fn range(text: &str) -> AddressRange {
        let parsed = parse_address_range(text).expect(text);
        assert_eq!(parsed.warning, None, "{text}");
        parsed.range
    }

    #[test]
    fn cidrs_and_ranges_parse() {
        let r = range("10.0.0.0/24");
        assert_eq!(
            (r.first.to_string(), r.last.to_string()),
            ("10.0.0.0".into(), "10.0.0.255".into())
        );
        assert_eq!(r.prefix_len, Some(24));
        let r = range("10.0.0.5-10.0.0.9");
        assert_eq!(r.size(), 5);
        assert_eq!(r.prefix_len, None);
        assert_eq!(range("fd00::/120").size(), 256);
        assert_eq!(range("0.0.0.0/0").size(), 1 << 32);
        assert_eq!(range("::/0").size(), u128::MAX);
    }

    /// MetalLB internal/config/config.go ParseCIDR: a range is split at '-' and each address
    /// trimmed (TestParse "config using all features" has "40.0.0.210 - 40.0.0.240"); a CIDR
    /// goes to net.ParseCIDR as written, so spaces make it invalid (TestParse "duplicate
    /// CIDRs" uses " 10.0.0.0/8").
    #[test]
    fn spaces_are_allowed_around_range_ends_only() {
        let r = range(" 40.0.0.210 - 40.0.0.240 ");
        assert_eq!(r.size(), 31);
        assert_eq!(r.text, " 40.0.0.210 - 40.0.0.240 ");
        assert_eq!(
            parse_address_range(" 10.0.0.0/8").expect_err("leading space"),
            "\" 10.0.0.0/8\" has leading or trailing spaces; a CIDR is read without them \
             (MetalLB rejects them too): write \"10.0.0.0/8\""
        );
        assert!(parse_address_range("10.0.0.0/8 ").is_err());
        assert!(parse_address_range("10.0.0.0 /8").is_err());
        assert!(parse_address_range("10.0.0.0/ 8").is_err());
        assert!(parse_address_range("10.0.0.0/+8").is_err());
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

    /// MetalLB reads a CIDR with net.ParseCIDR, which keeps the network and drops the host
    /// bits (TestParse "bad aggregation length (incompatible with CIDR)" uses 10.20.30.40/24
    /// as a valid pool entry); ferrolb reads it the same and warns.
    #[test]
    fn host_bits_mean_the_network_with_a_warning() {
        let parsed = parse_address_range("10.0.0.5/24").expect("host bits are accepted");
        assert_eq!(
            (
                parsed.range.first.to_string(),
                parsed.range.last.to_string()
            ),
            ("10.0.0.0".into(), "10.0.0.255".into())
        );
        assert_eq!(
            parsed.warning.as_deref(),
            Some(
                "\"10.0.0.5/24\" has host bits set, so it means 10.0.0.0/24 (all 256 addresses \
                 of it, as MetalLB reads it); write 10.0.0.0/24, or 10.0.0.5/32 for just this \
                 address"
            )
        );
        let parsed = parse_address_range("fd00::1/64").expect("v6 host bits");
        assert!(
            parsed
                .warning
                .is_some_and(|w| w.contains("so it means fd00::/64")),
        );
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

    fn block_texts(text: &str) -> Vec<String> {
        let r = range(text);
        r.blocks().iter().map(|b| b.describe(r.family())).collect()
    }

    /// The blocks MetalLB's ParseCIDR summarizes a range into (TestParse "config using all
    /// features": 40.0.0.150-40.0.0.200 is 150/31, 152/29, 160/27, 192/29, 200/32).
    #[test]
    fn ranges_split_into_the_largest_aligned_blocks() {
        assert_eq!(
            block_texts("40.0.0.150-40.0.0.200"),
            vec![
                "40.0.0.150/31",
                "40.0.0.152/29",
                "40.0.0.160/27",
                "40.0.0.192/29",
                "40.0.0.200"
            ]
        );
        assert_eq!(block_texts("10.0.0.0/25"), vec!["10.0.0.0/25"]);
        assert_eq!(block_texts("10.0.0.5-10.0.0.5"), vec!["10.0.0.5"]);
        assert_eq!(block_texts("0.0.0.0-255.255.255.255"), vec!["0.0.0.0/0"]);
        assert_eq!(
            range("::/0").blocks(),
            vec![Block {
                start: 0,
                prefix_len: 0
            }]
        );
        assert_eq!(
            block_texts("fd00::c8-fd00::ef"),
            vec!["fd00::c8/125", "fd00::d0/124", "fd00::e0/124"]
        );
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
            let r = range(&text);
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
            let r = range(&text);
            prop_assert_eq!(r.first, IpAddr::V6(ip));
            if len < 128 {
                prop_assert_eq!(describe(r.start(), r.end(), IpFamily::V6), text);
            }
        }

        /// Blocks tile the range exactly, each aligned to its size, and no two neighbours
        /// could merge into one aligned block (so they are the largest possible).
        #[test]
        fn blocks_tile_ranges_with_largest_aligned_blocks(a in any::<u32>(), b in any::<u32>()) {
            let (lo, hi) = (Ipv4Addr::from(a.min(b)), Ipv4Addr::from(a.max(b)));
            let r = range(&format!("{lo}-{hi}"));
            let blocks = r.blocks();
            prop_assert!(blocks.len() <= 62);
            let mut next = r.start();
            for (i, block) in blocks.iter().enumerate() {
                let size = 1u128 << (32 - block.prefix_len);
                prop_assert_eq!(block.start, next);
                prop_assert_eq!(block.start % size, 0);
                next = block.start + size;
                if let Some(following) = blocks.get(i + 1) {
                    let merged = size * 2;
                    let mergeable = following.prefix_len == block.prefix_len
                        && block.start % merged == 0;
                    prop_assert!(!mergeable, "{:?} and {:?} would merge", block, following);
                }
            }
            prop_assert_eq!(next, r.end() + 1);
        }

        /// Host bits never make an entry invalid: it means its network, with a warning.
        #[test]
        fn any_v4_cidr_parses(n in any::<u32>(), len in 0u8..=32) {
            let text = format!("{}/{len}", Ipv4Addr::from(n));
            let parsed = parse_address_range(&text).expect("valid");
            let network = if len == 0 { 0 } else { n & (u32::MAX << (32 - len)) };
            prop_assert_eq!(parsed.range.first, IpAddr::V4(Ipv4Addr::from(network)));
            prop_assert_eq!(parsed.warning.is_some(), network != n);
        }
    }
}
