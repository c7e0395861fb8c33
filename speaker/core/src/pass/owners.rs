//! Layer 2 owner changes between two settled passes: the `nodeAssigned` events this node
//! records and the election-change count. Each speaker reports only what it newly announces
//! itself, so one event per change reaches each Service, from the node that took it.

use crate::desired::L2Owner;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// This node became the layer 2 owner of `ip`, which `service` uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeAssigned {
    /// The address.
    pub ip: IpAddr,
    /// The Service, `namespace/name`.
    pub service: String,
}

/// What changed since the last settled pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerChanges {
    /// The owner of every layer 2 address now (the next pass compares against it). Shared:
    /// [`super::IncrementalPass`] recognises the map it handed out when it comes back as the
    /// next view's owners, and then changes only the entries of what changed.
    pub owners: Arc<BTreeMap<IpAddr, Option<String>>>,
    /// Addresses whose owner differs from the last pass (a first sighting is no change).
    pub changed: u64,
    /// `nodeAssigned` events to record, one per Service of each address newly owned by `me`.
    pub assigned: Vec<NodeAssigned>,
}

/// Compares the owners of this pass with `before`.
pub fn owner_changes(
    owners: &[L2Owner],
    before: &BTreeMap<IpAddr, Option<String>>,
    me: &str,
) -> OwnerChanges {
    let mut out = OwnerChanges::default();
    let mut now = BTreeMap::new();
    for o in owners {
        compare_owner(o, before.get(&o.ip), me, &mut out);
        now.insert(o.ip, o.owner.clone());
    }
    out.owners = Arc::new(now);
    out
}

/// Counts `o` into `out` against its owner in the last settled pass, `was`.
pub(super) fn compare_owner(
    o: &L2Owner,
    was: Option<&Option<String>>,
    me: &str,
    out: &mut OwnerChanges,
) {
    if was.is_some_and(|b| *b != o.owner) {
        out.changed += 1;
    }
    let newly_mine = o.owner.as_deref() == Some(me) && was.is_none_or(|b| b.as_deref() != Some(me));
    if newly_mine {
        out.assigned.extend(o.services.iter().map(|s| NodeAssigned {
            ip: o.ip,
            service: s.clone(),
        }));
    }
}
