//! Free-address search without materializing pools.
//!
//! Held addresses are kept as coalesced inclusive intervals, so the lowest free address at or
//! after a point is one B-tree lookup: either the point itself or one past the interval that
//! covers it (intervals never touch, so that address is free). Memory is proportional to the
//! number of intervals, never to a pool's size — an IPv6 /64 costs what is allocated in it.

use ferrolb_config::{IpFamily, Pool};
use std::collections::BTreeMap;

/// A set of `u128` stored as disjoint, non-adjacent inclusive intervals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSet {
    /// start -> end (inclusive).
    intervals: BTreeMap<u128, u128>,
    len: u128,
}

impl RangeSet {
    /// Number of members.
    pub fn len(&self) -> u128 {
        self.len
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of intervals (for tests and memory reasoning).
    pub fn interval_count(&self) -> usize {
        self.intervals.len()
    }

    fn covering(&self, x: u128) -> Option<(u128, u128)> {
        self.intervals
            .range(..=x)
            .next_back()
            .filter(|(_, end)| **end >= x)
            .map(|(s, e)| (*s, *e))
    }

    /// Whether `x` is a member.
    pub fn contains(&self, x: u128) -> bool {
        self.covering(x).is_some()
    }

    /// Adds `x`; returns whether it was new.
    pub fn insert(&mut self, x: u128) -> bool {
        if self.contains(x) {
            return false;
        }
        let left = self
            .intervals
            .range(..x)
            .next_back()
            .filter(|(_, end)| end.checked_add(1) == Some(x))
            .map(|(s, _)| *s);
        let right = x
            .checked_add(1)
            .and_then(|next| self.intervals.get(&next).map(|end| (next, *end)));
        let (start, end) = match (left, right) {
            (Some(ls), Some((rs, re))) => {
                self.intervals.remove(&rs);
                (ls, re)
            }
            (Some(ls), None) => (ls, x),
            (None, Some((rs, re))) => {
                self.intervals.remove(&rs);
                (x, re)
            }
            (None, None) => (x, x),
        };
        self.intervals.insert(start, end);
        self.len += 1;
        true
    }

    /// Removes `x`; returns whether it was a member.
    pub fn remove(&mut self, x: u128) -> bool {
        let Some((start, end)) = self.covering(x) else {
            return false;
        };
        self.intervals.remove(&start);
        if start < x {
            self.intervals.insert(start, x - 1);
        }
        if x < end {
            self.intervals.insert(x + 1, end);
        }
        self.len -= 1;
        true
    }

    /// The smallest non-member `>= x`, or `None` when every number from `x` up is a member.
    pub fn first_gap_from(&self, x: u128) -> Option<u128> {
        match self.covering(x) {
            Some((_, end)) => end.checked_add(1),
            None => Some(x),
        }
    }

    /// Members within `[lo, hi]`.
    pub fn count_within(&self, lo: u128, hi: u128) -> u128 {
        let first = self.covering(lo).map_or(lo, |(s, _)| s);
        self.intervals
            .range(first..=hi)
            .map(|(s, e)| (*e).min(hi) - (*s).max(lo) + 1)
            .sum()
    }
}

/// The first address of `family` in `pool` that is neither held nor excluded by
/// `avoidBuggyIPs`: the lowest free one of the first range (in the order the pool lists them)
/// that has one, as MetalLB walks a pool's CIDRs in order (internal/allocator/allocator.go
/// getFreeIPsFromPool, getIPFromCIDR).
pub fn lowest_free(pool: &Pool, family: IpFamily, held: &RangeSet) -> Option<u128> {
    let avoid = pool.avoid_buggy_ips && family == IpFamily::V4;
    pool.ranges
        .iter()
        .filter(|r| r.family() == family)
        .find_map(|r| lowest_free_in(r.start(), r.end(), avoid, held))
}

fn lowest_free_in(start: u128, end: u128, avoid_buggy: bool, held: &RangeSet) -> Option<u128> {
    let mut candidate = start;
    // Each turn either returns or moves past a held interval or a .0/.255 address, so the loop
    // runs at most (intervals in range + 2 per /24) times.
    loop {
        candidate = held.first_gap_from(candidate)?;
        if candidate > end {
            return None;
        }
        let low = candidate & 0xff;
        if !avoid_buggy || (low != 0 && low != 255) {
            return Some(candidate);
        }
        // .255 is followed by .0, which is just as unusable.
        candidate = candidate.checked_add(if low == 255 { 2 } else { 1 })?;
    }
}

/// Addresses of `family` in `pool` that `avoidBuggyIPs` allows, saturating.
pub fn usable_size(pool: &Pool, family: IpFamily) -> u128 {
    if !(pool.avoid_buggy_ips && family == IpFamily::V4) {
        return pool.size(family);
    }
    pool.ranges
        .iter()
        .filter(|r| r.family() == family)
        .map(|r| usable_up_to(r.end()) - r.start().checked_sub(1).map_or(0, usable_up_to))
        .fold(0, u128::saturating_add)
}

/// IPv4 numbers in `[0, x]` whose last octet is neither 0 nor 255.
fn usable_up_to(x: u128) -> u128 {
    (x / 256) * 254 + (x % 256).min(254)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_config::AddressRange;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::net::IpAddr;

    fn pool(first: &str, last: &str, avoid: bool) -> Pool {
        let first: IpAddr = first.parse().expect("test address");
        let last: IpAddr = last.parse().expect("test address");
        Pool {
            namespace: "ns".into(),
            name: "p".into(),
            labels: Default::default(),
            ranges: vec![AddressRange {
                first,
                last,
                prefix_len: None,
                text: format!("{first}-{last}"),
            }],
            auto_assign: true,
            avoid_buggy_ips: avoid,
            service_allocation: false,
            priority: None,
            namespaces: vec![],
            namespace_selectors: vec![],
            service_selectors: vec![],
        }
    }

    #[test]
    fn skips_held_and_buggy_addresses() {
        let p = pool("10.0.0.254", "10.0.1.2", true);
        let mut held = RangeSet::default();
        let n = |s: &str| ferrolb_config::model::ip_to_u128(s.parse().expect("test address"));
        assert_eq!(lowest_free(&p, IpFamily::V4, &held), Some(n("10.0.0.254")));
        held.insert(n("10.0.0.254"));
        // .255 and .0 are skipped.
        assert_eq!(lowest_free(&p, IpFamily::V4, &held), Some(n("10.0.1.1")));
        held.insert(n("10.0.1.1"));
        held.insert(n("10.0.1.2"));
        assert_eq!(lowest_free(&p, IpFamily::V4, &held), None);
        assert_eq!(lowest_free(&p, IpFamily::V6, &held), None);
        assert_eq!(usable_size(&p, IpFamily::V4), 3);
        let plain = pool("10.0.0.254", "10.0.1.2", false);
        assert_eq!(usable_size(&plain, IpFamily::V4), 5);
        assert_eq!(
            lowest_free(&plain, IpFamily::V4, &held),
            Some(n("10.0.0.255"))
        );
    }

    #[test]
    fn top_of_ipv6_space_does_not_overflow() {
        let p = pool(
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            false,
        );
        let mut held = RangeSet::default();
        held.insert(u128::MAX - 1);
        held.insert(u128::MAX);
        assert_eq!(held.interval_count(), 1);
        assert_eq!(lowest_free(&p, IpFamily::V6, &held), None);
        assert_eq!(held.first_gap_from(u128::MAX), None);
    }

    proptest! {
        /// The interval set behaves exactly like a plain set, and stays coalesced.
        #[test]
        fn range_set_matches_btreeset(ops in proptest::collection::vec((any::<bool>(), 0u128..64), 0..200)) {
            let mut rs = RangeSet::default();
            let mut bs = BTreeSet::new();
            for (add, x) in ops {
                if add {
                    prop_assert_eq!(rs.insert(x), bs.insert(x));
                } else {
                    prop_assert_eq!(rs.remove(x), bs.remove(&x));
                }
            }
            prop_assert_eq!(rs.len(), bs.len() as u128);
            for x in 0u128..70 {
                prop_assert_eq!(rs.contains(x), bs.contains(&x));
                let gap = (x..).find(|y| !bs.contains(y));
                prop_assert_eq!(rs.first_gap_from(x), gap);
            }
            prop_assert_eq!(rs.count_within(10, 40), bs.range(10..=40).count() as u128);
            let runs = bs.iter().filter(|x| **x == 0 || !bs.contains(&(**x - 1))).count();
            prop_assert_eq!(rs.interval_count(), runs);
        }

        /// Lowest free equals a brute-force scan of a small pool.
        #[test]
        fn lowest_free_matches_scan(held_list in proptest::collection::vec(0u128..600, 0..300), avoid in any::<bool>()) {
            let p = pool("10.0.0.200", "10.0.2.100", avoid);
            let base = ferrolb_config::model::ip_to_u128(p.ranges[0].first);
            let mut held = RangeSet::default();
            for h in &held_list {
                held.insert(base + h);
            }
            let expect = (p.ranges[0].start()..=p.ranges[0].end()).find(|n| {
                !held.contains(*n) && p.is_usable(ferrolb_config::model::u128_to_ip(*n, IpFamily::V4))
            });
            prop_assert_eq!(lowest_free(&p, IpFamily::V4, &held), expect);
            let usable = (p.ranges[0].start()..=p.ranges[0].end())
                .filter(|n| p.is_usable(ferrolb_config::model::u128_to_ip(*n, IpFamily::V4)))
                .count() as u128;
            prop_assert_eq!(usable_size(&p, IpFamily::V4), usable);
        }
    }
}
