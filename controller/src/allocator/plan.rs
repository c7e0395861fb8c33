//! The decision for one Service, computed from the configuration and the table without
//! changing either; [`super::Allocator`] applies it.

use super::free::lowest_free;
use super::outcome::{AllocError, ReleaseReason, ReleasedIp};
use super::request::{IpFamilyPolicy, Requested, ServiceKey, ServiceRequest};
use super::sharing::{self, Incompatibility, SharingInfo};
use super::table::Table;
use ferrolb_config::model::u128_to_ip;
use ferrolb_config::{Config, IpFamily, Pool};
use std::net::IpAddr;

/// Addresses and their pool, or why not; boxed because the error is large and rare.
type Filled<'a> = Result<(Vec<IpAddr>, &'a Pool), Box<AllocError>>;

/// What to do for one Service.
#[derive(Debug)]
pub struct Plan {
    /// Addresses the Service ends up with, in family order.
    pub ips: Vec<IpAddr>,
    /// Their pool.
    pub pool: Option<String>,
    /// Addresses taken away, with reasons.
    pub released: Vec<ReleasedIp>,
    /// Why nothing could be given.
    pub error: Option<AllocError>,
}

pub struct Planner<'a> {
    pub config: &'a Config,
    pub table: &'a Table,
    pub req: &'a ServiceRequest,
    pub sharing: SharingInfo,
}

/// One or two families in preference order; a value type because it is computed on every
/// allocation (the hot path allocates as little as possible).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Families {
    items: [IpFamily; 2],
    len: usize,
}

impl Families {
    fn one(f: IpFamily) -> Self {
        Self {
            items: [f, f],
            len: 1,
        }
    }

    fn two(a: IpFamily, b: IpFamily) -> Self {
        Self {
            items: [a, b],
            len: 2,
        }
    }
}

impl std::ops::Deref for Families {
    type Target = [IpFamily];
    fn deref(&self) -> &[IpFamily] {
        &self.items[..self.len]
    }
}

/// Families in the order the Service lists them (IPv4 when it lists none).
fn listed_families(req: &ServiceRequest) -> Families {
    match req.ip_families.as_slice() {
        [] => Families::one(IpFamily::V4),
        [a, rest @ ..] => match rest.iter().find(|f| *f != a) {
            Some(b) => Families::two(*a, *b),
            None => Families::one(*a),
        },
    }
}

fn other(f: IpFamily) -> IpFamily {
    match f {
        IpFamily::V4 => IpFamily::V6,
        IpFamily::V6 => IpFamily::V4,
    }
}

/// Describes a pool for messages: `name (range, range)`.
pub fn describe(pool: &Pool) -> String {
    let ranges: Vec<&str> = pool.ranges.iter().map(|r| r.text.as_str()).collect();
    format!("{} ({})", pool.name, ranges.join(", "))
}

/// Pools for automatic assignment, in MetalLB's order (internal/allocator/allocator.go
/// `Allocate`, `pinnedPoolsForService`, `sortPools`), as two tiers tried one after the other:
///
/// 1. pools with a `serviceAllocation` (present, even empty) that admits the Service, by
///    priority: a positive priority first, lowest first; 0, negative or unset after them;
/// 2. only when no pool of the first tier can serve the Service: pools without a
///    `serviceAllocation`.
///
/// Pools with `autoAssign: false` are in neither. Ties — and MetalLB leaves their order to a
/// map's iteration — go by pool name, so every replica decides alike.
pub fn auto_tiers<'c>(config: &'c Config, req: &ServiceRequest) -> [Vec<&'c Pool>; 2] {
    let mut pinned: Vec<&Pool> = Vec::new();
    let mut others: Vec<&Pool> = Vec::new();
    for p in config
        .pools
        .values()
        .filter(|p| p.auto_assign && admits(p, req))
    {
        if has_service_allocation(p) {
            pinned.push(p);
        } else {
            others.push(p);
        }
    }
    let rank = |p: &Pool| match p.priority {
        Some(n) if n > 0 => (false, n),
        _ => (true, 0),
    };
    pinned.sort_by(|a, b| (rank(a), &a.name).cmp(&(rank(b), &b.name)));
    others.sort_by(|a, b| a.name.cmp(&b.name));
    [pinned, others]
}

/// Whether the pool has a `serviceAllocation`: one written empty, or any of the fields that
/// only exist inside one.
fn has_service_allocation(p: &Pool) -> bool {
    p.service_allocation
        || p.priority.is_some()
        || !p.namespaces.is_empty()
        || !p.namespace_selectors.is_empty()
        || !p.service_selectors.is_empty()
}

pub fn admits(pool: &Pool, req: &ServiceRequest) -> bool {
    pool.admits(
        &req.key.namespace,
        &req.namespace_labels,
        &req.service_labels,
    )
}

impl<'a> Planner<'a> {
    pub fn new(config: &'a Config, table: &'a Table, req: &'a ServiceRequest) -> Self {
        Self {
            config,
            table,
            req,
            sharing: SharingInfo::of(req),
        }
    }

    fn key(&self) -> &ServiceKey {
        &self.req.key
    }

    /// Families the Service may have addresses of, in preference order.
    fn allowed_families(&self) -> Families {
        let fams = listed_families(self.req);
        match self.req.ip_family_policy {
            IpFamilyPolicy::SingleStack => Families::one(fams.items[0]),
            IpFamilyPolicy::PreferDualStack => fams,
            IpFamilyPolicy::RequireDualStack => Families::two(fams.items[0], other(fams.items[0])),
        }
    }

    /// Family sets to try, best first, and how many there are. PreferDualStack falls back to
    /// the first family, then — leniently, so the Service still gets an address — to the
    /// second.
    fn requirement_sets(&self) -> ([Families; 3], usize) {
        let fams = self.allowed_families();
        match (self.req.ip_family_policy, &*fams) {
            (IpFamilyPolicy::PreferDualStack, [a, b]) => {
                ([fams, Families::one(*a), Families::one(*b)], 3)
            }
            _ => ([fams; 3], 1),
        }
    }

    fn requested_ips(&self) -> Option<&'a Requested<Vec<IpAddr>>> {
        self.req
            .requested_ips
            .as_ref()
            .filter(|r| !r.value.is_empty())
    }

    fn pool_of(&self, ip: IpAddr) -> Option<&'a Pool> {
        self.config.pools.values().find(|p| p.contains(ip))
    }

    /// Whether the Service may use `ip` alongside every other holder.
    fn check_sharing(&self, ip: IpAddr) -> Result<(), (ServiceKey, Incompatibility)> {
        let Some(holding) = self.table.holding(&ip) else {
            return Ok(());
        };
        for holder in holding.holders.iter().filter(|h| h.as_ref() != self.key()) {
            // Every holder has an entry (Table::set creates it); a missing one shares nothing.
            let theirs = self.table.service(holder).map(|e| &e.sharing);
            let res = match theirs {
                Some(theirs) => sharing::check(&self.sharing, theirs),
                None => Err(Incompatibility::NoKey { newcomer: false }),
            };
            res.map_err(|why| (holder.as_ref().clone(), why))?;
        }
        Ok(())
    }

    pub fn plan(&self, held: &[IpAddr]) -> Plan {
        let allowed = self.allowed_families();
        let mut released = Vec::new();
        let mut kept: Vec<IpAddr> = Vec::new();
        let mut kept_pool: Option<&Pool> = None;
        for ip in held {
            match self.check_held(*ip, &allowed, &kept, kept_pool) {
                Ok(p) => {
                    kept.push(*ip);
                    kept_pool = Some(p);
                }
                Err(reason) => released.push(ReleasedIp { ip: *ip, reason }),
            }
        }
        // The Service had both families and one of its addresses is gone (e.g. its pool no
        // longer has that family).
        let lost_family = held.iter().any(|ip| IpFamily::of(ip) == IpFamily::V4)
            && held.iter().any(|ip| IpFamily::of(ip) == IpFamily::V6)
            && kept.len() == 1;
        let result = self.fill(lost_family, &mut kept, &mut kept_pool, &mut released);
        // Addresses in the status that the table never gave this Service: say why they are
        // not kept, so the reconciler's event explains the status change.
        let report_drift = |final_ips: &[IpAddr], released: &mut Vec<ReleasedIp>| {
            for ip in &self.req.current {
                if final_ips.contains(ip)
                    || held.contains(ip)
                    || released.iter().any(|r| r.ip == *ip)
                {
                    continue;
                }
                let reason = match self.check_sharing(*ip) {
                    Err((holder, why)) => ReleaseReason::Sharing { holder, why },
                    Ok(()) => ReleaseReason::NotAllocated,
                };
                released.push(ReleasedIp { ip: *ip, reason });
            }
        };
        match result {
            Ok((mut ips, pool)) => {
                ips.sort_by_key(|ip| allowed.iter().position(|f| *f == IpFamily::of(ip)));
                report_drift(&ips, &mut released);
                Plan {
                    ips,
                    pool: Some(pool.name.clone()),
                    released,
                    error: None,
                }
            }
            Err(error) => {
                for ip in kept {
                    released.push(ReleasedIp {
                        ip,
                        reason: ReleaseReason::RequestFailed,
                    });
                }
                report_drift(&[], &mut released);
                Plan {
                    ips: Vec::new(),
                    pool: None,
                    released,
                    error: Some(*error),
                }
            }
        }
    }

    /// Whether an address the Service holds stays valid; `Ok` gives its pool.
    fn check_held(
        &self,
        ip: IpAddr,
        allowed: &[IpFamily],
        kept: &[IpAddr],
        kept_pool: Option<&'a Pool>,
    ) -> Result<&'a Pool, ReleaseReason> {
        let family = IpFamily::of(&ip);
        if !allowed.contains(&family) {
            return Err(ReleaseReason::FamilyNotWanted {
                policy: self.req.ip_family_policy,
                families: allowed.to_vec(),
            });
        }
        if kept.iter().any(|k| IpFamily::of(k) == family) {
            return Err(ReleaseReason::Duplicate);
        }
        if let Some(r) = self.requested_ips()
            && !r.value.contains(&ip)
        {
            return Err(ReleaseReason::NotRequested {
                source: r.source.clone(),
            });
        }
        let Some(pool) = self.pool_of(ip) else {
            let recorded = self.table.holding(&ip).and_then(|h| h.pool.clone());
            return Err(match recorded {
                Some(pool) if !self.config.pools.contains_key(&*pool) => {
                    ReleaseReason::PoolDeleted {
                        pool: pool.to_string(),
                    }
                }
                Some(pool) => ReleaseReason::PoolShrunk {
                    pool: pool.to_string(),
                },
                None => ReleaseReason::NotInAnyPool,
            });
        };
        if let Some(r) = &self.req.requested_pool
            && r.value != pool.name
        {
            return Err(ReleaseReason::PoolAnnotationChanged {
                source: r.source.clone(),
                pool: r.value.clone(),
            });
        }
        if !admits(pool, self.req) {
            return Err(ReleaseReason::NotAdmitted {
                pool: pool.name.clone(),
                service: self.key().clone(),
            });
        }
        if !pool.is_usable(ip) {
            return Err(ReleaseReason::Unusable {
                pool: pool.name.clone(),
            });
        }
        if let Some(kp) = kept_pool
            && kp.name != pool.name
        {
            return Err(ReleaseReason::DifferentPool {
                pool: pool.name.clone(),
                kept_pool: kp.name.clone(),
            });
        }
        self.check_sharing(ip)
            .map_err(|(holder, why)| ReleaseReason::Sharing { holder, why })?;
        Ok(pool)
    }

    fn fill(
        &self,
        lost_family: bool,
        kept: &mut Vec<IpAddr>,
        kept_pool: &mut Option<&'a Pool>,
        released: &mut Vec<ReleasedIp>,
    ) -> Filled<'a> {
        let requested_pool = match &self.req.requested_pool {
            None => None,
            Some(r) => {
                let pool =
                    self.config
                        .pools
                        .get(&r.value)
                        .ok_or_else(|| AllocError::UnknownPool {
                            pool: r.value.clone(),
                            source: r.source.clone(),
                            known: self.config.pools.values().map(describe).collect(),
                        })?;
                if !admits(pool, self.req) {
                    return Err(AllocError::PoolDoesNotAdmit {
                        pool: pool.name.clone(),
                        source: r.source.clone(),
                        service: self.key().clone(),
                    }
                    .into());
                }
                Some(pool)
            }
        };
        match self.requested_ips() {
            Some(r) => self.fill_requested(r, requested_pool, kept, *kept_pool),
            None => self.fill_auto(requested_pool, lost_family, kept, kept_pool, released),
        }
    }

    fn fill_requested(
        &self,
        requested: &Requested<Vec<IpAddr>>,
        requested_pool: Option<&'a Pool>,
        kept: &[IpAddr],
        kept_pool: Option<&'a Pool>,
    ) -> Filled<'a> {
        let allowed = self.allowed_families();
        for ip in &requested.value {
            if !allowed.contains(&IpFamily::of(ip)) {
                return Err(AllocError::RequestedFamily {
                    ip: *ip,
                    source: requested.source.clone(),
                    policy: self.req.ip_family_policy,
                    families: allowed.to_vec(),
                }
                .into());
            }
        }
        let has = |f: IpFamily| requested.value.iter().any(|ip| IpFamily::of(ip) == f);
        if self.req.ip_family_policy == IpFamilyPolicy::RequireDualStack
            && !(has(IpFamily::V4) && has(IpFamily::V6))
        {
            return Err(AllocError::RequireDualStackOneIp {
                source: requested.source.clone(),
            }
            .into());
        }
        let mut out: Vec<IpAddr> = kept.to_vec();
        let mut chosen: Option<(&Pool, IpAddr)> = kept_pool.zip(kept.first().copied());
        for ip in requested.value.iter().filter(|ip| !kept.contains(ip)) {
            let pool = match requested_pool {
                Some(p) => Some(p).filter(|p| p.contains(*ip)),
                None => self
                    .config
                    .pools
                    .values()
                    .find(|p| p.contains(*ip) && admits(p, self.req)),
            };
            let Some(pool) = pool else {
                let pools = match requested_pool {
                    Some(p) => vec![describe(p)],
                    None => self
                        .config
                        .pools
                        .values()
                        .filter(|p| admits(p, self.req))
                        .map(describe)
                        .collect(),
                };
                return Err(AllocError::RequestedIpNotInPool {
                    ip: *ip,
                    source: requested.source.clone(),
                    service: self.key().clone(),
                    requested_pool: requested_pool.map(|p| p.name.clone()),
                    pools,
                }
                .into());
            };
            if let Some((first_pool, first_ip)) = chosen
                && first_pool.name != pool.name
            {
                return Err(AllocError::RequestedIpsInDifferentPools {
                    source: requested.source.clone(),
                    first: (first_ip, first_pool.name.clone()),
                    second: (*ip, pool.name.clone()),
                }
                .into());
            }
            if !pool.is_usable(*ip) {
                return Err(AllocError::RequestedIpUnusable {
                    ip: *ip,
                    pool: pool.name.clone(),
                }
                .into());
            }
            self.check_sharing(*ip)
                .map_err(|(holder, why)| AllocError::IpInUse {
                    ip: *ip,
                    holder,
                    why,
                })?;
            chosen = chosen.or(Some((pool, *ip)));
            out.push(*ip);
        }
        match chosen {
            Some((pool, _)) => Ok((out, pool)),
            // requested_ips() filters out an empty list, so at least one address was handled.
            None => Err(AllocError::NoPool {
                service: self.key().clone(),
            }
            .into()),
        }
    }

    fn fill_auto(
        &self,
        requested_pool: Option<&'a Pool>,
        lost_family: bool,
        kept: &mut Vec<IpAddr>,
        kept_pool: &mut Option<&'a Pool>,
        released: &mut Vec<ReleasedIp>,
    ) -> Filled<'a> {
        let (sets, count) = self.requirement_sets();
        let sets = &sets[..count];
        let tiers: Vec<Vec<&'a Pool>> = match requested_pool {
            Some(p) => vec![vec![p]],
            None => auto_tiers(self.config, self.req)
                .into_iter()
                .filter(|t| !t.is_empty())
                .collect(),
        };
        if let Some(pool) = *kept_pool {
            let have: Vec<IpFamily> = kept.iter().map(IpFamily::of).collect();
            let pair = sets.first().filter(|s| s.len() == 2);
            // Stability first: complete what the Service has from the same pool.
            if let Some(extra) = sets.first().and_then(|s| self.supply(pool, s, &have)) {
                let mut ips = kept.clone();
                ips.extend(extra);
                return Ok((ips, pool));
            }
            // A dual-stack Service whose pool lost one of its families takes a new pair from
            // another pool with room, as MetalLB clears and reallocates it (controller/service.go
            // convergeBalancer, Assign failing for the pair).
            let missing = pair
                .and_then(|s| s.iter().find(|f| !have.contains(f)).copied())
                .unwrap_or(IpFamily::V6);
            let new_pair = pair
                .filter(|_| lost_family)
                .and_then(|set| tiers.iter().find_map(|tier| self.first_supply(tier, set)));
            let release = |kept: &mut Vec<IpAddr>, released: &mut Vec<ReleasedIp>| {
                for ip in kept.drain(..) {
                    released.push(ReleasedIp {
                        ip,
                        reason: ReleaseReason::DualStackIncomplete {
                            policy: self.req.ip_family_policy,
                            pool: pool.name.clone(),
                            missing,
                        },
                    });
                }
            };
            if let Some(found) = new_pair {
                release(kept, released);
                *kept_pool = None;
                return Ok(found);
            }
            // No pool has a pair: PreferDualStack keeps the address it has (a fresh MetalLB
            // allocation could move it) when its pool can still give that family.
            for set in sets
                .iter()
                .skip(1)
                .filter(|s| have.iter().all(|f| s.contains(f)))
            {
                if let Some(extra) = self.supply(pool, set, &have) {
                    let mut ips = kept.clone();
                    ips.extend(extra);
                    return Ok((ips, pool));
                }
            }
            // Only RequireDualStack gets here: its pool cannot pair the address.
            release(kept, released);
            *kept_pool = None;
        }
        if tiers.is_empty() {
            return Err(AllocError::NoPool {
                service: self.key().clone(),
            }
            .into());
        }
        // MetalLB tries the second tier only when the first cannot serve the Service at all
        // (allocator.go Allocate), and within a tier the preferred family set in every pool
        // before a lesser one (findBestPoolForService).
        for tier in &tiers {
            for set in sets {
                if let Some(found) = self.first_supply(tier, set) {
                    return Ok(found);
                }
            }
        }
        Err(AllocError::Exhausted {
            service: self.key().clone(),
            policy: self.req.ip_family_policy,
            families: sets.first().map(|s| s.to_vec()).unwrap_or_default(),
            pools: tiers.iter().flatten().map(|p| describe(p)).collect(),
        }
        .into())
    }

    /// The first pool of `pools` that can give every family of `set`, with the addresses.
    /// An address already used by a compatible Service with the same sharing key wins over a
    /// free one, whatever the pool order: sharing is what the key asks for.
    fn first_supply(
        &self,
        pools: &[&'a Pool],
        set: &[IpFamily],
    ) -> Option<(Vec<IpAddr>, &'a Pool)> {
        if self.sharing.key.is_some() {
            for pool in pools {
                if set.iter().any(|f| self.shareable(pool, *f).is_some())
                    && let Some(ips) = self.supply(pool, set, &[])
                {
                    return Some((ips, pool));
                }
            }
        }
        pools
            .iter()
            .find_map(|pool| self.supply(pool, set, &[]).map(|ips| (ips, *pool)))
    }

    /// One address of every family of `set` not in `have`, from `pool`: shared when possible,
    /// else the lowest free one.
    fn supply(&self, pool: &Pool, set: &[IpFamily], have: &[IpFamily]) -> Option<Vec<IpAddr>> {
        set.iter()
            .filter(|f| !have.contains(f))
            .map(|f| {
                self.shareable(pool, *f).or_else(|| {
                    lowest_free(pool, *f, self.table.held(*f)).map(|n| u128_to_ip(n, *f))
                })
            })
            .collect()
    }

    /// The lowest address of `family` in `pool` held by Services with the same sharing key that
    /// every holder lets this Service share.
    fn shareable(&self, pool: &Pool, family: IpFamily) -> Option<IpAddr> {
        let key = self.sharing.key.as_deref()?;
        self.table
            .with_sharing_key(key)
            .filter(|k| *k != self.key())
            .filter_map(|k| self.table.service(k))
            .flat_map(|e| e.ips.iter().copied())
            .filter(|ip| {
                IpFamily::of(ip) == family
                    && pool.contains(*ip)
                    && pool.is_usable(*ip)
                    && self.check_sharing(*ip).is_ok()
            })
            .min()
    }
}
