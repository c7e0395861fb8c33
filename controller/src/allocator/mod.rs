//! The pure allocator: Services' requests and the pool configuration in, address decisions out.
//!
//! No Kubernetes, no I/O, no async. The reconciler turns each Service into a
//! [`ServiceRequest`], calls [`Allocator::allocate`], and writes [`Outcome::ips`] to the
//! Service's status. At startup it first calls [`Allocator::restore`] with every Service's
//! current status so that a restart moves no address.

mod free;
mod outcome;
mod plan;
mod request;
mod request_error;
mod sharing;
mod table;
mod usage;

#[cfg(test)]
mod metallb_cases;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

pub use free::RangeSet;
pub use outcome::{AllocError, Outcome, ReleaseReason, ReleasedIp, RestoreConflict};
pub use request::{
    AnnotationRequest, IpFamilyPolicy, Protocol, Requested, ServiceKey, ServicePort,
    ServiceRequest, TrafficPolicy, parse_ip_families, parse_requested_ips,
};
pub use request_error::{
    MAX_POOL_NAME_LEN, MAX_QUOTED_LEN, MAX_SHARING_KEY_LEN, RequestError, UnknownProtocol, excerpt,
};
pub use sharing::{Incompatibility, SharingInfo};
pub use usage::{FamilyUsage, PoolUsage};

use ferrolb_config::Config;
use plan::Planner;
use std::net::IpAddr;
use std::sync::Arc;
use table::{Change, ServiceEntry, Table};
use usage::UsageCounts;

/// Address allocation state: the configuration in force and who holds what.
#[derive(Clone, Debug, Default)]
pub struct Allocator {
    config: Arc<Config>,
    table: Table,
    usage: UsageCounts,
    room_made: u64,
}

impl Allocator {
    /// An empty allocator using `config`.
    pub fn new(config: Config) -> Self {
        Self {
            config: Arc::new(config),
            table: Table::default(),
            usage: UsageCounts::default(),
            room_made: 0,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether `config` is the configuration in force: the same shared one, or an equal one.
    pub fn runs_on(&self, config: &Arc<Config>) -> bool {
        Arc::ptr_eq(&self.config, config) || *self.config == **config
    }

    /// Switches to a new configuration. Allocations stay recorded — each is re-checked when its
    /// Service is next allocated — and usage counts are recomputed against the new pools.
    pub fn set_config(&mut self, config: impl Into<Arc<Config>>) {
        self.config = config.into();
        self.usage = UsageCounts::recompute(&self.config, &self.table);
    }

    /// Rebuilds the table from Services' statuses (`ServiceRequest::current`) before anything
    /// is allocated. Every address is recorded as held, also addresses in no pool, so nobody
    /// else gets them; they are judged when their Service is allocated. When two statuses claim
    /// one address and cannot share it, the first Service by key keeps it and the conflict is
    /// returned.
    pub fn restore(
        &mut self,
        services: impl IntoIterator<Item = ServiceRequest>,
    ) -> Vec<RestoreConflict> {
        let mut all: Vec<ServiceRequest> = services.into_iter().collect();
        // Sorted so that the winner of a conflict does not depend on watch order.
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all.iter().flat_map(|req| self.adopt(req)).collect()
    }

    fn adopt(&mut self, req: &ServiceRequest) -> Vec<RestoreConflict> {
        let sharing = SharingInfo::of(req);
        let mut conflicts = Vec::new();
        let mut ips: Vec<IpAddr> = Vec::new();
        for ip in &req.current {
            if ips.contains(ip) {
                continue;
            }
            let refusal = self.table.holding(ip).and_then(|h| {
                h.holders
                    .iter()
                    .filter(|k| k.as_ref() != &req.key)
                    .find_map(|k| {
                        let theirs = self.table.service(k).map(|e| &e.sharing)?;
                        sharing::check(&sharing, theirs)
                            .err()
                            .map(|why| (k.as_ref().clone(), why))
                    })
            });
            match refusal {
                Some((holder, why)) => conflicts.push(RestoreConflict {
                    ip: *ip,
                    service: req.key.clone(),
                    holder,
                    why,
                }),
                None => ips.push(*ip),
            }
        }
        let pool = ips.first().and_then(|ip| self.pool_name(*ip));
        let entry = ServiceEntry {
            ips,
            pool: pool.map(Arc::from),
            sharing,
            error: None,
        };
        let config = &self.config;
        let change = self.table.set(&req.key, entry, |ip| {
            config
                .pools
                .values()
                .find(|p| p.contains(*ip))
                .map(|p| Arc::from(p.name.as_str()))
        });
        self.count(&change);
        conflicts
    }

    fn pool_name(&self, ip: IpAddr) -> Option<String> {
        self.config
            .pools
            .values()
            .find(|p| p.contains(ip))
            .map(|p| p.name.clone())
    }

    /// Counts the changes that may let a Service that got nothing in: an address freed, the
    /// sharing fields (key, ports, traffic policy, selector) of a Service holding addresses
    /// changed, or a Service with a sharing key gaining an address others may share. MetalLB
    /// re-processes every Service on such a change (controller/main.go SetBalancer,
    /// `SyncStateReprocessAll`); a caller compares two readings to know whether the Services
    /// still waiting are worth asking again.
    pub fn room_made(&self) -> u64 {
        self.room_made
    }

    fn count(&mut self, change: &Change) {
        if !change.freed.is_empty() {
            self.room_made += 1;
        }
        for ip in &change.gained {
            self.usage.gained(&self.config, *ip);
        }
        for ip in &change.freed {
            self.usage.freed(&self.config, *ip);
        }
    }

    /// Decides the addresses of one Service and records them. Addresses it holds stay while
    /// still valid; invalid ones are released with a reason; missing ones are allocated.
    pub fn allocate(&mut self, req: &ServiceRequest) -> Outcome {
        // A Service not seen since startup (restore not called, or created meanwhile with a
        // status already set): adopt its status as restore would have.
        let mut adopt_conflicts = Vec::new();
        if self.table.service(&req.key).is_none() && !req.current.is_empty() {
            adopt_conflicts = self.adopt(req);
        }
        let held: Vec<IpAddr> = self
            .table
            .service(&req.key)
            .map(|e| e.ips.clone())
            .unwrap_or_default();
        let planner = Planner::new(&self.config, &self.table, req);
        let plan = planner.plan(&held);
        let sharing = planner.sharing;
        let mut released = plan.released;
        for c in adopt_conflicts {
            if !released.iter().any(|r| r.ip == c.ip) {
                released.push(ReleasedIp {
                    ip: c.ip,
                    reason: ReleaseReason::Sharing {
                        holder: c.holder,
                        why: c.why,
                    },
                });
            }
        }
        let added: Vec<IpAddr> = plan
            .ips
            .iter()
            .filter(|ip| !held.contains(ip))
            .copied()
            .collect();
        let pool_deleted = released
            .iter()
            .filter_map(|r| match &r.reason {
                ReleaseReason::PoolDeleted { pool } => Some((r.ip, pool.clone())),
                _ => None,
            })
            .collect();
        // One shared name for the Service and each of its addresses.
        let pool: Option<Arc<str>> = plan.pool.as_deref().map(Arc::from);
        let entry = ServiceEntry {
            ips: plan.ips.clone(),
            pool: pool.clone(),
            sharing,
            error: plan.error.as_ref().map(ToString::to_string),
        };
        let before = self.table.service(&req.key);
        let sharing_changed =
            before.is_some_and(|old| !old.ips.is_empty() && old.sharing != entry.sharing);
        let shareable_gain = entry.sharing.key.is_some()
            && entry
                .ips
                .iter()
                .any(|ip| before.is_none_or(|old| !old.ips.contains(ip)));
        if sharing_changed || shareable_gain {
            self.room_made += 1;
        }
        let change = self.table.set(&req.key, entry, |_| pool.clone());
        self.count(&change);
        Outcome {
            ips: plan.ips,
            pool: plan.pool,
            error: plan.error,
            added,
            released,
            pool_deleted,
        }
    }

    /// Forgets a Service (deleted, or no longer handled by ferrolb). Returns the addresses that
    /// became free; a shared address stays held while another Service uses it.
    pub fn release(&mut self, key: &ServiceKey) -> Vec<IpAddr> {
        let change = self.table.remove(key);
        self.count(&change);
        change.freed
    }

    /// Every Service the table has an entry for, in no particular order.
    pub fn services(&self) -> impl Iterator<Item = &ServiceKey> {
        self.table.service_keys()
    }

    /// How many Services the table has an entry for.
    pub fn service_count(&self) -> usize {
        self.table.service_count()
    }

    /// Whether the table has an entry for the Service (every Service decided since its last
    /// release has one, even one that got no address).
    pub fn has_entry(&self, key: &ServiceKey) -> bool {
        self.table.service(key).is_some()
    }

    /// Addresses recorded for a Service.
    pub fn ips_of(&self, key: &ServiceKey) -> &[IpAddr] {
        self.table.service(key).map_or(&[], |e| e.ips.as_slice())
    }

    /// Services holding an address, sorted.
    pub fn holders_of(&self, ip: &IpAddr) -> Vec<ServiceKey> {
        self.table
            .holding(ip)
            .map(|h| h.holders.iter().map(|k| k.as_ref().clone()).collect())
            .unwrap_or_default()
    }

    /// Usage of one pool of the configuration in force.
    pub fn pool_usage(&self, name: &str) -> Option<PoolUsage> {
        self.config.pools.get(name).map(|p| self.usage.usage(p))
    }

    /// Usage of every pool, by name.
    pub fn usage(&self) -> Vec<PoolUsage> {
        self.config
            .pools
            .values()
            .map(|p| self.usage.usage(p))
            .collect()
    }

    /// Usage of every pool in the status API form.
    pub fn usage_status(&self) -> Vec<ferrolb_api::status::PoolUsage> {
        self.config
            .pools
            .values()
            .map(|p| self.usage.usage(p).to_api(p))
            .collect()
    }

    /// Every Service the allocator knows, with its addresses or why it has none, by key.
    pub fn allocations(&self) -> Vec<ferrolb_api::status::ServiceAllocation> {
        self.table
            .services()
            .into_iter()
            .map(|(k, e)| ferrolb_api::status::ServiceAllocation {
                namespace: k.namespace.clone(),
                name: k.name.clone(),
                ips: e.ips.clone(),
                pool: e.pool.as_deref().map(str::to_string),
                sharing_key: e.sharing.key.clone(),
                error: e.error.clone(),
            })
            .collect()
    }
}
