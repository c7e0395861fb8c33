//! What an allocation decided, and why — as plain data whose `Display` is the message a person
//! reads in an event or in the status API.

use super::request::{IpFamilyPolicy, ServiceKey};
use super::sharing::Incompatibility;
use ferrolb_config::IpFamily;
use std::fmt;
use std::net::IpAddr;

/// Why a Service gets no address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// The requested pool does not exist.
    UnknownPool {
        /// Pool asked for.
        pool: String,
        /// Annotation key it was asked in.
        source: String,
        /// Every pool of the configuration.
        known: Vec<String>,
    },
    /// The requested pool's `serviceAllocation` excludes the Service.
    PoolDoesNotAdmit {
        /// Pool asked for.
        pool: String,
        /// Annotation key it was asked in.
        source: String,
        /// The Service.
        service: ServiceKey,
    },
    /// A requested address is in no pool the Service may use.
    RequestedIpNotInPool {
        /// The address.
        ip: IpAddr,
        /// Where it was asked for.
        source: String,
        /// The Service.
        service: ServiceKey,
        /// The pool the Service asked for, if any.
        requested_pool: Option<String>,
        /// Pools the Service may use, as `name (ranges)`.
        pools: Vec<String>,
    },
    /// Two requested addresses are in different pools.
    RequestedIpsInDifferentPools {
        /// Where they were asked for.
        source: String,
        /// First address and its pool.
        first: (IpAddr, String),
        /// Second address and its pool.
        second: (IpAddr, String),
    },
    /// A requested address ends in .0 or .255 in a pool with `avoidBuggyIPs`.
    RequestedIpUnusable {
        /// The address.
        ip: IpAddr,
        /// Its pool.
        pool: String,
    },
    /// A requested address has a family the Service does not use.
    RequestedFamily {
        /// The address.
        ip: IpAddr,
        /// Where it was asked for.
        source: String,
        /// `spec.ipFamilyPolicy`.
        policy: IpFamilyPolicy,
        /// Families the Service may have.
        families: Vec<IpFamily>,
    },
    /// RequireDualStack with requested addresses of only one family.
    RequireDualStackOneIp {
        /// Where the addresses were asked for.
        source: String,
    },
    /// An address is used by a Service it cannot be shared with.
    IpInUse {
        /// The address.
        ip: IpAddr,
        /// One Service holding it.
        holder: ServiceKey,
        /// Why sharing is refused.
        why: Incompatibility,
    },
    /// No pool with autoAssign admits the Service.
    NoPool {
        /// The Service.
        service: ServiceKey,
    },
    /// Every candidate pool is full for what the Service needs.
    Exhausted {
        /// The Service.
        service: ServiceKey,
        /// `spec.ipFamilyPolicy`.
        policy: IpFamilyPolicy,
        /// Families needed.
        families: Vec<IpFamily>,
        /// Pools tried, in order.
        pools: Vec<String>,
    },
}

fn families(fams: &[IpFamily]) -> String {
    fams.iter()
        .map(|f| f.k8s_name())
        .collect::<Vec<_>>()
        .join(" and ")
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownPool {
                pool,
                source,
                known,
            } => write!(
                f,
                "annotation {source} names pool {pool}, which does not exist; pools: {}",
                list(known)
            ),
            Self::PoolDoesNotAdmit {
                pool,
                source,
                service,
            } => write!(
                f,
                "pool {pool} (annotation {source}) does not admit {service}: its \
                 spec.serviceAllocation (namespaces, namespaceSelectors, serviceSelectors) \
                 excludes it"
            ),
            Self::RequestedIpNotInPool {
                ip,
                source,
                service,
                requested_pool,
                pools,
            } => {
                match requested_pool {
                    Some(p) => write!(f, "{ip} ({source}) is not in pool {p}")?,
                    None => write!(
                        f,
                        "{ip} ({source}) is not in any pool that admits {service}"
                    )?,
                }
                write!(f, "; pools: {}", list(pools))
            }
            Self::RequestedIpsInDifferentPools {
                source,
                first,
                second,
            } => write!(
                f,
                "{source}: {} is in pool {} but {} is in pool {}; both addresses must come \
                 from one pool",
                first.0, first.1, second.0, second.1
            ),
            Self::RequestedIpUnusable { ip, pool } => write!(
                f,
                "{ip} ends in .0 or .255 and pool {pool} has avoidBuggyIPs"
            ),
            Self::RequestedFamily {
                ip,
                source,
                policy,
                families: fams,
            } => write!(
                f,
                "{source} asks for {ip} ({}) but the Service is {policy} {}",
                IpFamily::of(ip).k8s_name(),
                families(fams)
            ),
            Self::RequireDualStackOneIp { source } => write!(
                f,
                "ipFamilyPolicy RequireDualStack needs an IPv4 and an IPv6 address but {source} \
                 lists only one family"
            ),
            Self::IpInUse { ip, holder, why } => {
                write!(f, "{ip} is used by {holder} and cannot be shared: {why}")
            }
            Self::NoPool { service } => write!(
                f,
                "no pool with autoAssign admits {service}; request one with annotation \
                 ferrolb.io/address-pool or check the pools' serviceAllocation"
            ),
            Self::Exhausted {
                service,
                policy,
                families: fams,
                pools,
            } => match policy {
                IpFamilyPolicy::RequireDualStack => write!(
                    f,
                    "ipFamilyPolicy RequireDualStack: no pool admitting {service} has free {} \
                     addresses; pools tried: {}",
                    families(fams),
                    list(pools)
                ),
                _ => write!(
                    f,
                    "no free {} address for {service}; pools tried: {}",
                    families(fams),
                    list(pools)
                ),
            },
        }
    }
}

impl std::error::Error for AllocError {}

impl AllocError {
    /// The `reason` label of `ferrolb_controller_allocation_failures_total`. Values are part of
    /// the exported metric: `exhausted`, `sharing`, `requested_ip`, `requested_pool`,
    /// `no_pool`, `invalid_service`.
    pub fn metric_reason(&self) -> &'static str {
        match self {
            Self::UnknownPool { .. } | Self::PoolDoesNotAdmit { .. } => "requested_pool",
            Self::RequestedIpNotInPool { .. } => "requested_ip",
            Self::RequestedIpsInDifferentPools { .. } | Self::RequestedIpUnusable { .. } => {
                "invalid_service"
            }
            // Counted with the dual-stack shortfalls under a RequireDualStack policy, as the
            // released label set does; dashboards and alerts count on it.
            Self::RequestedFamily {
                policy: IpFamilyPolicy::RequireDualStack,
                ..
            }
            | Self::RequireDualStackOneIp { .. } => "exhausted",
            Self::RequestedFamily { .. } => "invalid_service",
            Self::IpInUse { .. } => "sharing",
            Self::NoPool { .. } => "no_pool",
            Self::Exhausted { .. } => "exhausted",
        }
    }
}

/// Why an address a Service had was taken away from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReleaseReason {
    /// The pool it came from no longer exists.
    PoolDeleted {
        /// The vanished pool.
        pool: String,
    },
    /// The pool it came from still exists but no longer contains it.
    PoolShrunk {
        /// The pool.
        pool: String,
    },
    /// It is in no pool (e.g. assigned by MetalLB from a pool not migrated).
    NotInAnyPool,
    /// The Service now asks for another pool.
    PoolAnnotationChanged {
        /// Annotation key.
        source: String,
        /// Pool now asked for.
        pool: String,
    },
    /// The Service now asks for other addresses.
    NotRequested {
        /// Annotation key or field.
        source: String,
    },
    /// The pool's `serviceAllocation` no longer admits the Service.
    NotAdmitted {
        /// The pool.
        pool: String,
        /// The Service.
        service: ServiceKey,
    },
    /// The pool now has `avoidBuggyIPs` and the address ends in .0 or .255.
    Unusable {
        /// The pool.
        pool: String,
    },
    /// The Service no longer has this family.
    FamilyNotWanted {
        /// `spec.ipFamilyPolicy`.
        policy: IpFamilyPolicy,
        /// Families the Service may have.
        families: Vec<IpFamily>,
    },
    /// A second address of a family the Service already has an address of.
    Duplicate,
    /// In another pool than the Service's other address.
    DifferentPool {
        /// This address's pool.
        pool: String,
        /// The pool of the address kept.
        kept_pool: String,
    },
    /// Another holder cannot share it with the Service (any more).
    Sharing {
        /// One holder.
        holder: ServiceKey,
        /// Why.
        why: Incompatibility,
    },
    /// A dual-stack Service whose pool cannot give the other family: RequireDualStack, or
    /// either policy when another pool gives a pair instead.
    DualStackIncomplete {
        /// `spec.ipFamilyPolicy`.
        policy: IpFamilyPolicy,
        /// The pool.
        pool: String,
        /// The missing family.
        missing: IpFamily,
    },
    /// It was in the Service's status but never recorded as the Service's (status drift).
    NotAllocated,
    /// The Service's request cannot be met at all (see the outcome's error).
    RequestFailed,
}

/// An address taken from a Service, with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleasedIp {
    /// The address.
    pub ip: IpAddr,
    /// Why.
    pub reason: ReleaseReason,
}

impl fmt::Display for ReleasedIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip = self.ip;
        match &self.reason {
            ReleaseReason::PoolDeleted { pool } => {
                write!(f, "pool {pool} was deleted while {ip} was in use")
            }
            ReleaseReason::PoolShrunk { pool } => write!(f, "pool {pool} no longer contains {ip}"),
            ReleaseReason::NotInAnyPool => write!(f, "{ip} is not in any pool"),
            ReleaseReason::PoolAnnotationChanged { source, pool } => write!(
                f,
                "annotation {source} changed to {pool}, which does not contain {ip}"
            ),
            ReleaseReason::NotRequested { source } => {
                write!(f, "{source} no longer lists {ip}")
            }
            ReleaseReason::NotAdmitted { pool, service } => write!(
                f,
                "pool {pool} no longer admits {service} (spec.serviceAllocation), releasing {ip}"
            ),
            ReleaseReason::Unusable { pool } => write!(
                f,
                "{ip} ends in .0 or .255 and pool {pool} now has avoidBuggyIPs"
            ),
            ReleaseReason::FamilyNotWanted {
                policy,
                families: fams,
            } => write!(
                f,
                "{ip} is {} but the Service is {policy} {}",
                IpFamily::of(&ip).k8s_name(),
                families(fams)
            ),
            ReleaseReason::Duplicate => write!(
                f,
                "{ip} is a second {} address of the Service",
                IpFamily::of(&ip).k8s_name()
            ),
            ReleaseReason::DifferentPool { pool, kept_pool } => write!(
                f,
                "{ip} is in pool {pool} but the Service's other address is in pool {kept_pool}"
            ),
            ReleaseReason::Sharing { holder, why } => {
                write!(f, "{ip} is used by {holder} and cannot be shared: {why}")
            }
            ReleaseReason::DualStackIncomplete {
                policy,
                pool,
                missing,
            } => write!(
                f,
                "ipFamilyPolicy {policy}: pool {pool} has no free {} address to pair with {ip}",
                missing.k8s_name()
            ),
            ReleaseReason::NotAllocated => {
                write!(
                    f,
                    "{ip} was in the Service's status but not allocated to it"
                )
            }
            ReleaseReason::RequestFailed => {
                write!(
                    f,
                    "{ip} released because the Service's request cannot be met"
                )
            }
        }
    }
}

/// The decision for one Service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Addresses the Service has now, in its `ipFamilies` order; write these to its status.
    pub ips: Vec<IpAddr>,
    /// Pool they come from.
    pub pool: Option<String>,
    /// Why the Service has no address, when it has none.
    pub error: Option<AllocError>,
    /// Addresses newly given to the Service.
    pub added: Vec<IpAddr>,
    /// Addresses taken from the Service (and addresses of its status it did not get), with why.
    pub released: Vec<ReleasedIp>,
    /// Released addresses whose pool was deleted (also in `released`), for a "pool deleted
    /// while in use" event.
    pub pool_deleted: Vec<(IpAddr, String)>,
}

impl Outcome {
    /// Whether the Service's addresses differ from what it had.
    pub fn changed(&self) -> bool {
        !self.added.is_empty() || !self.released.is_empty()
    }
}

/// An address two Services' statuses both claimed at restore, though they cannot share it; the
/// first by key keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreConflict {
    /// The address.
    pub ip: IpAddr,
    /// The Service that did not get it.
    pub service: ServiceKey,
    /// The Service that kept it.
    pub holder: ServiceKey,
    /// Why they cannot share.
    pub why: Incompatibility,
}
