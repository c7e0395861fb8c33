//! When two Services may use the same address (MetalLB's `allow-shared-ip` rules).

use super::request::{ServicePort, ServiceRequest, TrafficPolicy};
use ferrolb_api::annotations::{self, ALLOW_SHARED_IP};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Colliding ports named in a message; the rest are counted.
const MAX_LISTED_PORTS: usize = 10;

/// The part of a request that decides address sharing; stored for every holder so a newcomer
/// can be checked against holders that are not being reconciled right now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SharingInfo {
    /// Sharing key; without one the Service shares with nobody.
    pub key: Option<String>,
    /// The annotation the key was written under, as the user spelled it (for messages).
    pub key_annotation: Option<String>,
    /// Ports, sorted and deduplicated.
    pub ports: Vec<ServicePort>,
    /// `externalTrafficPolicy`.
    pub traffic_policy: TrafficPolicy,
    /// `spec.selector` (only compared for `Local`).
    pub selector: BTreeMap<String, String>,
}

impl SharingInfo {
    /// Extracts the sharing-relevant fields of a request.
    pub fn of(req: &ServiceRequest) -> Self {
        let mut ports = req.ports.clone();
        ports.sort();
        ports.dedup();
        Self {
            key: req.sharing_key.as_ref().map(|r| r.value.clone()),
            key_annotation: req.sharing_key.as_ref().map(|r| r.source.clone()),
            ports,
            traffic_policy: req.traffic_policy,
            selector: req.selector.clone(),
        }
    }
}

/// Why two Services cannot share an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incompatibility {
    /// One side has no sharing key (named: the side's `namespace/name` is added by the caller).
    NoKey {
        /// Whether the newcomer (rather than the holder) lacks the key.
        newcomer: bool,
    },
    /// Both have keys, but different ones.
    KeyMismatch {
        /// The annotation the newcomer wrote its key under.
        annotation: String,
        /// The newcomer's key.
        newcomer: String,
        /// The holder's key.
        holder: String,
    },
    /// Some port+protocol is used by both.
    PortsCollide(Vec<ServicePort>),
    /// One is `Cluster`, the other `Local`: traffic would be steered inconsistently.
    TrafficPolicy {
        /// The newcomer's policy.
        newcomer: TrafficPolicy,
        /// The holder's policy.
        holder: TrafficPolicy,
    },
    /// Both `Local` but they select different pods, so the nodes that may announce differ.
    SelectorsDiffer,
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoKey { newcomer: true } => {
                f.write_str("the Service has no ferrolb.io/allow-shared-ip annotation")
            }
            Self::NoKey { newcomer: false } => {
                f.write_str("the holder has no ferrolb.io/allow-shared-ip annotation")
            }
            Self::KeyMismatch {
                annotation,
                newcomer,
                holder,
            } => write!(
                f,
                "sharing keys differ ({annotation} {newcomer:?}, holder's {holder:?})"
            ),
            Self::PortsCollide(ports) => {
                let list: Vec<String> = ports
                    .iter()
                    .take(MAX_LISTED_PORTS)
                    .map(ToString::to_string)
                    .collect();
                write!(f, "ports {}", list.join(", "))?;
                if let Some(more) = ports.len().checked_sub(MAX_LISTED_PORTS).filter(|n| *n > 0) {
                    write!(f, " and {more} more")?;
                }
                f.write_str(" collide")
            }
            Self::TrafficPolicy { newcomer, holder } => write!(
                f,
                "externalTrafficPolicy differs ({newcomer} vs the holder's {holder}); both must \
                 be Cluster, or both Local with the same selector"
            ),
            Self::SelectorsDiffer => f.write_str(
                "both use externalTrafficPolicy Local but their selectors differ, so different \
                 nodes would announce the address",
            ),
        }
    }
}

/// Whether `newcomer` may share an address already used by `holder`.
pub fn check(newcomer: &SharingInfo, holder: &SharingInfo) -> Result<(), Incompatibility> {
    let (mine, theirs) = match (&newcomer.key, &holder.key) {
        (None, _) => return Err(Incompatibility::NoKey { newcomer: true }),
        (_, None) => return Err(Incompatibility::NoKey { newcomer: false }),
        (Some(a), Some(b)) => (a, b),
    };
    if mine != theirs {
        return Err(Incompatibility::KeyMismatch {
            annotation: newcomer
                .key_annotation
                .clone()
                .unwrap_or_else(|| annotations::key(ALLOW_SHARED_IP)),
            newcomer: mine.clone(),
            holder: theirs.clone(),
        });
    }
    // Holders may be built by hand, unsorted: a set keeps this O(n log n) for Services with
    // thousands of ports.
    let theirs: BTreeSet<&ServicePort> = holder.ports.iter().collect();
    let collide: Vec<ServicePort> = newcomer
        .ports
        .iter()
        .copied()
        .filter(|p| theirs.contains(p))
        .collect();
    if !collide.is_empty() {
        return Err(Incompatibility::PortsCollide(collide));
    }
    match (newcomer.traffic_policy, holder.traffic_policy) {
        (TrafficPolicy::Cluster, TrafficPolicy::Cluster) => Ok(()),
        (TrafficPolicy::Local, TrafficPolicy::Local) if newcomer.selector == holder.selector => {
            Ok(())
        }
        (TrafficPolicy::Local, TrafficPolicy::Local) => Err(Incompatibility::SelectorsDiffer),
        (n, h) => Err(Incompatibility::TrafficPolicy {
            newcomer: n,
            holder: h,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(key: Option<&str>, ports: &[ServicePort], tp: TrafficPolicy, app: &str) -> SharingInfo {
        SharingInfo {
            key: key.map(str::to_string),
            key_annotation: key.map(|_| "metallb.universe.tf/allow-shared-ip".to_string()),
            ports: ports.to_vec(),
            traffic_policy: tp,
            selector: BTreeMap::from([("app".to_string(), app.to_string())]),
        }
    }

    #[test]
    fn same_key_disjoint_ports_cluster_share() {
        let a = info(
            Some("k"),
            &[ServicePort::tcp(80)],
            TrafficPolicy::Cluster,
            "a",
        );
        let b = info(
            Some("k"),
            &[ServicePort::tcp(443), ServicePort::udp(80)],
            TrafficPolicy::Cluster,
            "b",
        );
        assert_eq!(check(&a, &b), Ok(()));
        assert_eq!(check(&b, &a), Ok(()));
    }

    #[test]
    fn refusals_say_why() {
        let base = info(
            Some("k"),
            &[ServicePort::tcp(80)],
            TrafficPolicy::Cluster,
            "a",
        );
        let clash = info(
            Some("k"),
            &[ServicePort::tcp(80)],
            TrafficPolicy::Cluster,
            "a",
        );
        assert_eq!(
            check(&clash, &base).map_err(|e| e.to_string()),
            Err("ports TCP/80 collide".into())
        );
        let other_key = info(
            Some("j"),
            &[ServicePort::tcp(81)],
            TrafficPolicy::Cluster,
            "a",
        );
        // The message names the annotation as the newcomer spelled it.
        assert_eq!(
            check(&other_key, &base).map_err(|e| e.to_string()),
            Err(
                "sharing keys differ (metallb.universe.tf/allow-shared-ip \"j\", holder's \"k\")"
                    .into()
            )
        );
        let no_key = info(None, &[ServicePort::tcp(81)], TrafficPolicy::Cluster, "a");
        assert_eq!(
            check(&no_key, &base),
            Err(Incompatibility::NoKey { newcomer: true })
        );
        assert_eq!(
            check(&base, &no_key),
            Err(Incompatibility::NoKey { newcomer: false })
        );
        let local = info(
            Some("k"),
            &[ServicePort::tcp(81)],
            TrafficPolicy::Local,
            "a",
        );
        assert!(matches!(
            check(&local, &base),
            Err(Incompatibility::TrafficPolicy { .. })
        ));
        let local_b = info(
            Some("k"),
            &[ServicePort::tcp(82)],
            TrafficPolicy::Local,
            "b",
        );
        assert_eq!(
            check(&local_b, &local),
            Err(Incompatibility::SelectorsDiffer)
        );
        let local_a = info(
            Some("k"),
            &[ServicePort::tcp(82)],
            TrafficPolicy::Local,
            "a",
        );
        assert_eq!(check(&local_a, &local), Ok(()));
    }
}
