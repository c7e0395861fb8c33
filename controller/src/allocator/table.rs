//! What is allocated: which Services hold which addresses.
//!
//! Addresses are stored once per address (not per pool), so an address held by a Service that is
//! in no pool (e.g. assigned by MetalLB before a migration) still blocks everyone else, and
//! pools can change without rebuilding anything.

use super::free::RangeSet;
use super::request::ServiceKey;
use super::sharing::SharingInfo;
use ferrolb_config::IpFamily;
use ferrolb_config::model::ip_to_u128;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

/// One held address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holding {
    /// Services using it, sorted; shared with the table's keys so a holder costs a pointer.
    pub holders: Vec<Arc<ServiceKey>>,
    /// Pool it was last assigned from (`None`: it was in no pool), so a vanished pool can be
    /// told apart from a shrunk one.
    pub pool: Option<Arc<str>>,
}

/// What the table knows about one Service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceEntry {
    /// Addresses, in the Service's family order.
    pub ips: Vec<IpAddr>,
    /// Pool of the addresses.
    pub pool: Option<Arc<str>>,
    /// Sharing fields of the request that got them.
    pub sharing: SharingInfo,
    /// Why the Service has no (or fewer) addresses, from its last allocation.
    pub error: Option<String>,
}

/// Addresses that started or stopped being held by anybody.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// Newly held.
    pub gained: Vec<IpAddr>,
    /// No longer held by anybody.
    pub freed: Vec<IpAddr>,
}

/// The allocation table.
///
/// Services are in a hash map because looking them up is the hot path (string keys in a
/// B-tree cost a dozen comparisons each); nothing iterates it to make a decision, and
/// [`Table::services`] sorts, so allocation stays deterministic.
#[derive(Clone, Debug, Default)]
pub struct Table {
    holdings: BTreeMap<IpAddr, Holding>,
    held_v4: RangeSet,
    held_v6: RangeSet,
    services: HashMap<Arc<ServiceKey>, ServiceEntry>,
    by_sharing_key: BTreeMap<String, BTreeSet<Arc<ServiceKey>>>,
}

impl Table {
    /// Held addresses of `family` as numbers.
    pub fn held(&self, family: IpFamily) -> &RangeSet {
        match family {
            IpFamily::V4 => &self.held_v4,
            IpFamily::V6 => &self.held_v6,
        }
    }

    fn held_mut(&mut self, family: IpFamily) -> &mut RangeSet {
        match family {
            IpFamily::V4 => &mut self.held_v4,
            IpFamily::V6 => &mut self.held_v6,
        }
    }

    /// The entry of a Service.
    pub fn service(&self, key: &ServiceKey) -> Option<&ServiceEntry> {
        self.services.get(key)
    }

    /// How many Services have an entry.
    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// Every Service entry, sorted by key.
    pub fn services(&self) -> Vec<(&ServiceKey, &ServiceEntry)> {
        let mut all: Vec<(&ServiceKey, &ServiceEntry)> =
            self.services.iter().map(|(k, e)| (k.as_ref(), e)).collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        all
    }

    /// Every Service with an entry, in no particular order (a caller that decides from
    /// them sorts what it keeps).
    pub fn service_keys(&self) -> impl Iterator<Item = &ServiceKey> {
        self.services.keys().map(|k| k.as_ref())
    }

    /// Every held address.
    pub fn holdings(&self) -> impl Iterator<Item = (&IpAddr, &Holding)> {
        self.holdings.iter()
    }

    /// The holding of an address.
    pub fn holding(&self, ip: &IpAddr) -> Option<&Holding> {
        self.holdings.get(ip)
    }

    /// Services with sharing key `key`, sorted.
    pub fn with_sharing_key(&self, key: &str) -> impl Iterator<Item = &ServiceKey> {
        self.by_sharing_key
            .get(key)
            .into_iter()
            .flatten()
            .map(|k| k.as_ref())
    }

    /// Replaces the entry of `key` and updates the holders of every address involved;
    /// `pool_of` names the pool each address is now in.
    pub fn set(
        &mut self,
        key: &ServiceKey,
        entry: ServiceEntry,
        pool_of: impl Fn(&IpAddr) -> Option<Arc<str>>,
    ) -> Change {
        let shared_key = match self.services.get_key_value(key) {
            Some((k, _)) => k.clone(),
            None => Arc::new(key.clone()),
        };
        let mut change = self.drop_addresses(key, &entry.ips);
        for ip in &entry.ips {
            let holding = self.holdings.entry(*ip).or_default();
            if holding.holders.is_empty() {
                change.gained.push(*ip);
            }
            if let Err(pos) = holding.holders.binary_search_by(|h| h.as_ref().cmp(key)) {
                holding.holders.insert(pos, shared_key.clone());
            }
            holding.pool = pool_of(ip);
            let n = ip_to_u128(*ip);
            self.held_mut(IpFamily::of(ip)).insert(n);
        }
        self.unindex(key);
        if let Some(k) = &entry.sharing.key {
            self.by_sharing_key
                .entry(k.clone())
                .or_default()
                .insert(shared_key.clone());
        }
        self.services.insert(shared_key, entry);
        change
    }

    /// Forgets a Service; its addresses stay held while another holder remains.
    pub fn remove(&mut self, key: &ServiceKey) -> Change {
        let change = self.drop_addresses(key, &[]);
        self.unindex(key);
        self.services.remove(key);
        change
    }

    fn unindex(&mut self, key: &ServiceKey) {
        let Some(old) = self.services.get(key).and_then(|e| e.sharing.key.as_ref()) else {
            return;
        };
        if let Some(set) = self.by_sharing_key.get_mut(old) {
            set.remove(key);
            if set.is_empty() {
                let old = old.clone();
                self.by_sharing_key.remove(&old);
            }
        }
    }

    /// Removes `key` as holder of its addresses that are not in `keep`.
    fn drop_addresses(&mut self, key: &ServiceKey, keep: &[IpAddr]) -> Change {
        let mut change = Change::default();
        let Some(old) = self.services.get(key) else {
            return change;
        };
        for ip in old.ips.iter().filter(|ip| !keep.contains(ip)) {
            let Some(holding) = self.holdings.get_mut(ip) else {
                continue;
            };
            holding.holders.retain(|h| h.as_ref() != key);
            if holding.holders.is_empty() {
                self.holdings.remove(ip);
                let n = ip_to_u128(*ip);
                match IpFamily::of(ip) {
                    IpFamily::V4 => self.held_v4.remove(n),
                    IpFamily::V6 => self.held_v6.remove(n),
                };
                change.freed.push(*ip);
            }
        }
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ips: &[&str], key: Option<&str>) -> ServiceEntry {
        ServiceEntry {
            ips: ips
                .iter()
                .map(|s| s.parse().expect("test address"))
                .collect(),
            pool: Some("p".into()),
            sharing: SharingInfo {
                key: key.map(str::to_string),
                ..Default::default()
            },
            error: None,
        }
    }

    fn pool(_: &IpAddr) -> Option<Arc<str>> {
        Some("p".into())
    }

    #[test]
    fn shared_address_stays_until_last_holder_leaves() {
        let mut t = Table::default();
        let a = ServiceKey::new("ns", "a");
        let b = ServiceKey::new("ns", "b");
        let ip: IpAddr = "10.0.0.1".parse().expect("test address");
        assert_eq!(
            t.set(&a, entry(&["10.0.0.1"], Some("k")), pool).gained,
            vec![ip]
        );
        assert_eq!(
            t.set(&b, entry(&["10.0.0.1"], Some("k")), pool),
            Change::default()
        );
        assert_eq!(t.holding(&ip).map(|h| h.holders.len()), Some(2));
        assert_eq!(t.with_sharing_key("k").count(), 2);
        assert_eq!(t.remove(&a), Change::default());
        assert!(t.held(IpFamily::V4).contains(ip_to_u128(ip)));
        assert_eq!(t.remove(&b).freed, vec![ip]);
        assert!(t.held(IpFamily::V4).is_empty());
        assert_eq!(t.with_sharing_key("k").count(), 0);
    }

    #[test]
    fn replacing_an_entry_frees_dropped_addresses() {
        let mut t = Table::default();
        let a = ServiceKey::new("ns", "a");
        t.set(&a, entry(&["10.0.0.1", "fd00::1"], None), pool);
        let change = t.set(&a, entry(&["10.0.0.2", "fd00::1"], Some("k")), pool);
        assert_eq!(
            change.freed,
            vec!["10.0.0.1".parse::<IpAddr>().expect("test address")]
        );
        assert_eq!(
            change.gained,
            vec!["10.0.0.2".parse::<IpAddr>().expect("test address")]
        );
        assert_eq!(t.held(IpFamily::V6).len(), 1);
        assert_eq!(t.with_sharing_key("k").count(), 1);
    }
}
