//! The speaker's pass: from one consistent view of the cluster to the plan its executor
//! applies. Level-triggered: every pass starts from the whole view, never from the change that
//! woke it, so a missed or merged notification cannot leave the speaker behind.
//!
//! The pass decides; `ferrolb-speaker` (its `run` module) hands the [`Plan`] to the layer 2
//! announcer, the BGP manager, the status writers and the event queue.

mod changes;
mod incremental;
mod mirror;
mod nodes;
mod owners;
mod settle;
mod tracked;

pub use changes::DesiredChanges;
pub use incremental::IncrementalPass;
pub use mirror::Mirror;
pub use nodes::{NodeAddresses, expected_members, internal_ips, node_addresses};
pub use owners::{NodeAssigned, OwnerChanges, owner_changes};
pub use settle::{MEMBERSHIP_SETTLE, Settling, membership_settled};

use crate::desired::{Desired, Modes, desired_announcements_in};
use crate::eligibility::peers_for_node;
use crate::index::{ClusterIndex, endpoint_slice_from_k8s, node_from_k8s, service_from_k8s};
use crate::layer2::carrier::LinkReport;
use ferrolb_api::service::ClassPolicy;
use ferrolb_config::{BfdProfile, Config, Peer};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

/// What one pass looks at: the watched objects as they are now, and what the speaker carries
/// from earlier passes.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    /// This node's name.
    pub node: &'a str,
    /// Every Service.
    pub services: &'a [Arc<Service>],
    /// Every EndpointSlice.
    pub slices: &'a [Arc<EndpointSlice>],
    /// Every Node.
    pub nodes: &'a [Arc<Node>],
    /// Which `loadBalancerClass` values are ours.
    pub class_policy: ClassPolicy,
    /// The announcement modes the speakers run.
    pub modes: Modes,
    /// Announce from nodes labelled `node.kubernetes.io/exclude-from-external-load-balancers`
    /// too (`--ignore-exclude-lb`, the same on every speaker).
    pub ignore_exclude_lb: bool,
    /// Where a freshly started membership stands; `None` when membership is off (liveness is
    /// the Node Ready condition alone).
    pub settling: Option<Settling>,
    /// The owner of each layer 2 address as of the last settled pass.
    pub owners: &'a BTreeMap<IpAddr, Option<String>>,
    /// Each node's announcing interfaces with their carrier, as the speakers reported them
    /// through the membership (this node's own included); `None` when membership is off,
    /// since the others could not know this node's carrier and would elect differently.
    pub links: Option<&'a BTreeMap<String, Vec<LinkReport>>>,
}

/// What the executor does after a pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Whether layer 2 announcements, owner-change events and readiness may follow this pass
    /// (see [`membership_settled`]). The executor latches the first `true`.
    pub settled: bool,
    /// This node's own InternalIP addresses (BGP router ID and next hops).
    pub node_addresses: NodeAddresses,
    /// What to announce; `None` while no valid configuration has ever been loaded (nothing is
    /// announced or withdrawn then).
    pub announce: Option<Announce>,
}

/// The announcing half of a [`Plan`].
#[derive(Clone, Debug, PartialEq)]
pub struct Announce {
    /// Layer 2 and BGP announcements of this node, owners, standby and the addresses no node
    /// announces. Shared: [`IncrementalPass`] keeps it between passes and changes only the
    /// entries of what changed, so handing it over must not copy the whole of it.
    pub desired: Arc<Desired>,
    /// The BGP peers this node opens sessions to (none with BGP turned off).
    pub peers: Vec<Peer>,
    /// The configuration's BFD profiles, by name.
    pub bfd_profiles: BTreeMap<String, BfdProfile>,
    /// Owner changes since the last settled pass; `None` while unsettled, because an unsettled
    /// view elects this node for everything and neither events nor metrics may come from it.
    pub owner_changes: Option<OwnerChanges>,
}

/// Builds the index of `last_valid` (the configuration in force) over the view's objects.
pub fn index_of(view: &View<'_>, config: Config) -> ClusterIndex {
    let mut index = ClusterIndex::new(config);
    index.set_ignore_exclude_lb(view.ignore_exclude_lb);
    for svc in view.services {
        if let Some(info) = service_from_k8s(svc, view.class_policy) {
            index.upsert_service(info);
        }
    }
    for slice in view.slices {
        if let Some(info) = endpoint_slice_from_k8s(slice) {
            index.upsert_endpoint_slice(info);
        }
    }
    for node in view.nodes {
        if let Some(info) = node_from_k8s(node) {
            index.upsert_node(info);
        }
    }
    index
}

/// One pass. `alive` is the membership's alive set (`None` when membership is off);
/// `last_valid` the configuration in force (the last one that was valid).
pub fn pass(
    view: &View<'_>,
    alive: Option<&BTreeSet<String>>,
    last_valid: Option<&Config>,
) -> Plan {
    plan(view, alive, |settled| {
        last_valid.map(|config| {
            let mut index = index_of(view, config.clone());
            index.set_members_alive(alive.cloned());
            if let Some(links) = view.links {
                index.set_node_links(links.clone());
            }
            let desired = desired_announcements_in(&index, view.node, view.modes);
            let owner_changes =
                settled.then(|| owner_changes(&desired.l2_owners, view.owners, view.node));
            announce(view, &index, Arc::new(desired), owner_changes)
        })
    })
}

/// The plan of a pass whose announcing half `announce` gives (`None` without a valid
/// configuration) from whether the membership has settled.
fn plan(
    view: &View<'_>,
    alive: Option<&BTreeSet<String>>,
    announce: impl FnOnce(bool) -> Option<Announce>,
) -> Plan {
    plan_expecting(&expected_members(view.nodes), view, alive, announce)
}

/// [`plan`], with the members a settled membership sees alive (`expected_members` of the
/// view's nodes) already known.
fn plan_expecting(
    expected: &BTreeSet<String>,
    view: &View<'_>,
    alive: Option<&BTreeSet<String>>,
    announce: impl FnOnce(bool) -> Option<Announce>,
) -> Plan {
    let empty = BTreeSet::new();
    let settled = membership_settled(view.settling.as_ref(), alive.unwrap_or(&empty), expected);
    Plan {
        settled,
        node_addresses: node_addresses(view.nodes, view.node),
        announce: announce(settled),
    }
}

/// The announcing half of a plan from its index, desired announcements and owner changes.
fn announce(
    view: &View<'_>,
    index: &ClusterIndex,
    desired: Arc<Desired>,
    owner_changes: Option<OwnerChanges>,
) -> Announce {
    // With BGP off no session is opened at all.
    let peers: Vec<Peer> = index
        .node(view.node)
        .filter(|_| view.modes.bgp)
        .map(|n| peers_for_node(index.config(), n).cloned().collect())
        .unwrap_or_default();
    Announce {
        desired,
        peers,
        bfd_profiles: index.config().bfd_profiles.clone(),
        owner_changes,
    }
}

#[cfg(test)]
mod tests;
