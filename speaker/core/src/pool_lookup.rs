//! Which pool holds an address, found by binary search over every range of every pool.
//!
//! Each pass looks up the pool of every announced address; scanning the ranges would cost a
//! pass (addresses × ranges) comparisons, a million per address for a pool written as a
//! million ranges. Validated pools do not overlap, so one search by range start finds the only
//! candidate. A configuration with overlapping ranges (possible only when built by hand,
//! never from validation) keeps [`crate::eligibility::pool_for`]'s first-by-name rule through
//! a scan.

use crate::eligibility::pool_for;
use ferrolb_config::{Config, IpFamily, Pool};
use std::net::IpAddr;

/// One range of a pool: first and last address as numbers, and the pool's name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    start: u128,
    end: u128,
    pool: String,
}

/// Every range of a configuration's pools, per family, sorted by start.
#[derive(Clone, Debug, Default)]
pub struct PoolLookup {
    v4: Vec<Entry>,
    v6: Vec<Entry>,
    /// No two ranges of one family share an address.
    disjoint: bool,
}

impl PoolLookup {
    /// The lookup for `config`'s pools.
    pub fn new(config: &Config) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for pool in config.pools.values() {
            for range in &pool.ranges {
                let entry = Entry {
                    start: range.start(),
                    end: range.end(),
                    pool: pool.name.clone(),
                };
                match range.family() {
                    IpFamily::V4 => v4.push(entry),
                    IpFamily::V6 => v6.push(entry),
                }
            }
        }
        v4.sort();
        v6.sort();
        let disjoint = disjoint(&v4) && disjoint(&v6);
        PoolLookup { v4, v6, disjoint }
    }

    /// The pool of `config` (the configuration this lookup was made for) holding `ip`.
    pub fn pool<'c>(&self, config: &'c Config, ip: IpAddr) -> Option<&'c Pool> {
        if !self.disjoint {
            return pool_for(config, ip);
        }
        let (entries, x) = match ip {
            IpAddr::V4(a) => (&self.v4, u128::from(u32::from(a))),
            IpAddr::V6(a) => (&self.v6, u128::from(a)),
        };
        let after = entries.partition_point(|e| e.start <= x);
        let entry = entries.get(after.checked_sub(1)?)?;
        (entry.end >= x)
            .then(|| config.pools.get(&entry.pool))
            .flatten()
    }
}

/// Whether sorted `entries` share no address.
fn disjoint(entries: &[Entry]) -> bool {
    entries.windows(2).all(|w| w[0].end < w[1].start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_config::{AddressRange, Inputs};

    fn config(pools: &[(&str, &[&str])]) -> Config {
        let inputs = Inputs {
            pools: pools
                .iter()
                .map(|(name, addresses)| ferrolb_api::IPAddressPool {
                    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                        name: Some(name.to_string()),
                        namespace: Some("ns".to_string()),
                        ..Default::default()
                    },
                    spec: ferrolb_api::IPAddressPoolSpec {
                        addresses: addresses.iter().map(|a| a.to_string()).collect(),
                        auto_assign: true,
                        ..Default::default()
                    },
                    status: None,
                })
                .collect(),
            ..Inputs::default()
        };
        Config::build_report(&inputs).config.expect("valid pools")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn finds_the_pool_of_each_address_as_the_scan_does() {
        let c = config(&[
            ("a", &["10.0.0.0/24", "10.0.2.0-10.0.2.9", "fd00::/120"]),
            ("b", &["10.0.1.0/24", "::/96"]),
            ("c", &["255.255.255.255/32"]),
        ]);
        let lookup = PoolLookup::new(&c);
        for s in [
            "10.0.0.0",
            "10.0.0.255",
            "10.0.1.7",
            "10.0.2.9",
            "10.0.2.10",
            "9.255.255.255",
            "255.255.255.255",
            "fd00::ff",
            "fd00::100",
            "::",
            "::ffff:ffff",
            "::1:0:0",
        ] {
            let got = lookup.pool(&c, ip(s)).map(|p| p.name.as_str());
            let want = pool_for(&c, ip(s)).map(|p| p.name.as_str());
            assert_eq!(got, want, "{s}");
        }
        assert_eq!(
            lookup.pool(&c, ip("10.0.2.3")).map(|p| p.name.as_str()),
            Some("a")
        );
        assert_eq!(lookup.pool(&c, ip("10.0.2.10")), None);
    }

    #[test]
    fn a_million_ranges_are_searched_not_scanned() {
        let entries: Vec<String> = (0u32..1_000_000)
            .map(|i| {
                let [_, b, c, d] = (i * 2).to_be_bytes();
                format!("10.{b}.{c}.{d}/32")
            })
            .collect();
        let refs: Vec<&str> = entries.iter().map(String::as_str).collect();
        let c = config(&[("million", &refs)]);
        let lookup = PoolLookup::new(&c);
        assert_eq!(lookup.v4.len(), 1_000_000);
        assert!(lookup.disjoint);
        assert_eq!(
            lookup
                .pool(&c, ip("10.30.132.126"))
                .map(|p| p.name.as_str()),
            Some("million")
        );
        assert_eq!(lookup.pool(&c, ip("10.30.132.127")), None);
    }

    #[test]
    fn overlapping_hand_built_pools_keep_the_first_by_name() {
        let range = |text: &str| {
            ferrolb_config::address::parse_address_range(text)
                .expect("range")
                .range
        };
        let mut c = Config::default();
        let ranges: Vec<AddressRange> = vec![range("10.0.0.0/16")];
        c.pools
            .insert("z".into(), Pool::with_ranges("ns", "z", ranges));
        c.pools.insert(
            "a".into(),
            Pool::with_ranges("ns", "a", vec![range("10.0.1.0/24")]),
        );
        let lookup = PoolLookup::new(&c);
        assert!(!lookup.disjoint);
        assert_eq!(
            lookup.pool(&c, ip("10.0.1.1")).map(|p| p.name.as_str()),
            Some("a")
        );
        assert_eq!(
            lookup.pool(&c, ip("10.0.2.1")).map(|p| p.name.as_str()),
            Some("z")
        );
    }
}
