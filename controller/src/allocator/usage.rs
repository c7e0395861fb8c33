//! Per-pool usage counts, kept up to date as addresses are held and freed, and recomputed when
//! the configuration changes.

use super::free::usable_size;
use super::table::Table;
use ferrolb_config::{Config, IpFamily, Pool};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Usage of one family of one pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FamilyUsage {
    /// Addresses in the pool's ranges.
    pub size: u128,
    /// Held addresses in the pool (a shared address counts once).
    pub assigned: u128,
    /// Addresses that could still be handed out (not held, not excluded by avoidBuggyIPs).
    pub available: u128,
}

fn saturate(n: u128) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl FamilyUsage {
    /// `assigned`, saturated for status fields.
    pub fn assigned_u64(&self) -> u64 {
        saturate(self.assigned)
    }

    /// `available`, saturated for status fields (an IPv6 /64 has 2^64 addresses).
    pub fn available_u64(&self) -> u64 {
        saturate(self.available)
    }
}

/// Usage of one pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolUsage {
    /// Pool name.
    pub pool: String,
    /// IPv4.
    pub v4: FamilyUsage,
    /// IPv6.
    pub v6: FamilyUsage,
}

impl PoolUsage {
    /// Usage of `family`.
    pub fn family(&self, family: IpFamily) -> &FamilyUsage {
        match family {
            IpFamily::V4 => &self.v4,
            IpFamily::V6 => &self.v6,
        }
    }

    /// The status API form.
    pub fn to_api(&self, pool: &Pool) -> ferrolb_api::status::PoolUsage {
        ferrolb_api::status::PoolUsage {
            namespace: pool.namespace.clone(),
            name: pool.name.clone(),
            addresses: pool.ranges.iter().map(|r| r.text.clone()).collect(),
            auto_assign: pool.auto_assign,
            assigned_ipv4: self.v4.assigned_u64(),
            available_ipv4: self.v4.available_u64(),
            assigned_ipv6: self.v6.assigned_u64(),
            available_ipv6: self.v6.available_u64(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    assigned: u128,
    /// Held addresses that avoidBuggyIPs allows; `available` subtracts only these, because the
    /// others were never part of the usable size.
    assigned_usable: u128,
}

/// Held-address counts per pool and family.
#[derive(Clone, Debug, Default)]
pub struct UsageCounts {
    counts: BTreeMap<String, [Counts; 2]>,
}

fn index(f: IpFamily) -> usize {
    match f {
        IpFamily::V4 => 0,
        IpFamily::V6 => 1,
    }
}

impl UsageCounts {
    /// Counts every held address of `table` against the pools of `config`.
    pub fn recompute(config: &Config, table: &Table) -> Self {
        let mut me = Self::default();
        for (ip, _) in table.holdings() {
            me.gained(config, *ip);
        }
        me
    }

    fn slot(&mut self, config: &Config, ip: IpAddr) -> Option<(&mut Counts, bool)> {
        let pool = config.pools.values().find(|p| p.contains(ip))?;
        let usable = pool.is_usable(ip);
        // Look up before inserting: `entry` would allocate the name on every call.
        if !self.counts.contains_key(&pool.name) {
            self.counts.insert(pool.name.clone(), Default::default());
        }
        let counts = self.counts.get_mut(&pool.name)?;
        Some((&mut counts[index(IpFamily::of(&ip))], usable))
    }

    /// `ip` became held.
    pub fn gained(&mut self, config: &Config, ip: IpAddr) {
        if let Some((c, usable)) = self.slot(config, ip) {
            c.assigned += 1;
            c.assigned_usable += u128::from(usable);
        }
    }

    /// `ip` is no longer held.
    pub fn freed(&mut self, config: &Config, ip: IpAddr) {
        if let Some((c, usable)) = self.slot(config, ip) {
            c.assigned = c.assigned.saturating_sub(1);
            c.assigned_usable = c.assigned_usable.saturating_sub(u128::from(usable));
        }
    }

    /// Usage of `pool`.
    pub fn usage(&self, pool: &Pool) -> PoolUsage {
        let counts = self.counts.get(&pool.name).copied().unwrap_or_default();
        let fam = |f: IpFamily| {
            let c = counts[index(f)];
            FamilyUsage {
                size: pool.size(f),
                assigned: c.assigned,
                available: usable_size(pool, f).saturating_sub(c.assigned_usable),
            }
        };
        PoolUsage {
            pool: pool.name.clone(),
            v4: fam(IpFamily::V4),
            v6: fam(IpFamily::V6),
        }
    }
}
