//! The pass at the cost of what changed: [`IncrementalPass::pass`] gives exactly the [`Plan`]
//! of [`super::pass`] over the same view, but keeps the index and each IP's decisions between
//! passes.
//!
//! Still level-triggered: every pass is handed the whole view, and finds what changed in it
//! by itself ([`super::tracked`]), never from the notification that woke it. Services and
//! EndpointSlices that changed are converted and decided again, for the IPs of the Services
//! they touch only (an IP's decision reads no other Service, see
//! [`crate::desired::IpDecision`]). Anything every decision reads — the configuration, the
//! Nodes, the alive set, the links, this node's name, the modes, `--ignore-exclude-lb` —
//! decides every IP again when it changes; a changed class policy starts from nothing.

use super::changes::DesiredChanges;
use super::owners::compare_owner;
use super::tracked::Tracked;
use super::{
    OwnerChanges, Plan, View, announce, expected_members, owner_changes, plan, plan_expecting,
};
use crate::desired::{BgpAnnouncement, BgpRoutes, Desired, IpDecision, Modes, assemble, decide_ip};
use crate::index::{
    ClusterIndex, NodeInfo, ServiceInfo, endpoint_slice_from_k8s, node_from_k8s, service_from_k8s,
};
use crate::layer2::carrier::LinkReport;
use ferrolb_api::service::{ClassPolicy, ServiceKey};
use ferrolb_config::Config;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

/// What every IP's decision reads besides its own Services.
#[derive(Clone, Debug)]
struct Global {
    node: String,
    modes: Modes,
    ignore_exclude_lb: bool,
    config: Config,
    nodes: BTreeMap<String, NodeInfo>,
    alive: Option<BTreeSet<String>>,
    links: BTreeMap<String, Vec<LinkReport>>,
}

/// The speaker's pass, kept between passes. Give it every view the executor would give
/// [`super::pass`]; its plans are the same.
#[derive(Debug, Default)]
pub struct IncrementalPass {
    /// The class policy the Services were converted under.
    class_policy: Option<ClassPolicy>,
    services: Tracked<Service>,
    slices: Tracked<EndpointSlice>,
    /// The Node objects of the last pass: while none changed, the nodes decided under are
    /// still the view's, and converting them again on every pass is skipped.
    node_objects: Tracked<Node>,
    /// `expected_members` of those Node objects.
    expected_members: BTreeSet<String>,
    /// Services and slices from the deltas; the rest is set from [`Global`].
    index: ClusterIndex,
    /// Our Services by IP.
    by_ip: BTreeMap<IpAddr, BTreeSet<ServiceKey>>,
    /// What the decisions held were made under; `None`: nothing decided.
    global: Option<Global>,
    decisions: BTreeMap<IpAddr, IpDecision>,
    /// How many IPs make this node the successor of each owner.
    successors: BTreeMap<String, usize>,
    /// The IPs routed under each prefix.
    prefix_ips: BTreeMap<IpNet, BTreeSet<IpAddr>>,
    desired: Arc<Desired>,
    /// The layer 2 owners of the last owner changes handed out; `None` when the next ones
    /// must be computed from all owners.
    owners_out: Option<Arc<Owners>>,
    /// IPs decided again since `owners_out` was made.
    owners_dirty: BTreeSet<IpAddr>,
    /// The owners handed out before `owners_out`, to be reused once the executor has let go
    /// of them, and the IPs in which they differ from `owners_out`.
    owners_spare: Option<(Arc<Owners>, BTreeSet<IpAddr>)>,
    /// The parts of `desired` changed since [`IncrementalPass::take_changes`] was last called
    /// (all of them at first).
    changed: DesiredChanges,
}

type Owners = BTreeMap<IpAddr, Option<String>>;

impl IncrementalPass {
    /// An incremental pass that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// One pass over the whole view: the same arguments and the same plan as
    /// [`super::pass`].
    pub fn pass(
        &mut self,
        view: &View<'_>,
        alive: Option<&BTreeSet<String>>,
        last_valid: Option<&Config>,
    ) -> Plan {
        if self.class_policy != Some(view.class_policy) {
            *self = Self {
                class_policy: Some(view.class_policy),
                ..Self::default()
            };
        }
        let dirty = self.follow_objects(view);
        let Some(config) = last_valid else {
            self.global = None;
            return plan(view, alive, |_| None);
        };
        let node_news = self.node_objects.advance(view.nodes);
        let same_nodes = node_news.came.is_empty() && node_news.gone.is_empty();
        if !same_nodes {
            self.expected_members = expected_members(view.nodes);
        }
        let convert = || -> BTreeMap<String, NodeInfo> {
            view.nodes
                .iter()
                .filter_map(|n| node_from_k8s(n))
                .map(|n| (n.name.clone(), n))
                .collect()
        };
        // `None`: the nodes the decisions held were made under.
        let nodes = match &self.global {
            Some(_) if same_nodes => None,
            _ => Some(convert()),
        };
        let empty = BTreeMap::new();
        let links = view.links.unwrap_or(&empty);
        // Compared before anything is copied: most passes change no global input.
        let unchanged = self.global.as_ref().is_some_and(|g| {
            g.node == view.node
                && g.modes == view.modes
                && g.ignore_exclude_lb == view.ignore_exclude_lb
                && g.config == *config
                && nodes.as_ref().is_none_or(|n| g.nodes == *n)
                && g.alive.as_ref() == alive
                && g.links == *links
        });
        if unchanged {
            for ip in dirty {
                self.decide_again(ip);
            }
        } else {
            self.decide_all(Global {
                node: view.node.to_string(),
                modes: view.modes,
                ignore_exclude_lb: view.ignore_exclude_lb,
                config: config.clone(),
                nodes: nodes
                    .or_else(|| self.global.as_ref().map(|g| g.nodes.clone()))
                    .unwrap_or_else(convert),
                alive: alive.cloned(),
                links: links.clone(),
            });
        }
        // Out of `self` while the closure borrows it; put back below.
        let expected = std::mem::take(&mut self.expected_members);
        let plan = plan_expecting(&expected, view, alive, |settled| {
            let owner_changes = settled.then(|| self.owner_changes(view));
            Some(announce(
                view,
                &self.index,
                self.desired.clone(),
                owner_changes,
            ))
        });
        self.expected_members = expected;
        plan
    }

    /// The parts of the desired announcements that changed since the last call (all of them at
    /// the first, and after a pass that decided everything again): what the plans handed out
    /// since then differ in from the plans before.
    pub fn take_changes(&mut self) -> DesiredChanges {
        std::mem::replace(&mut self.changed, DesiredChanges::NONE)
    }

    /// [`owner_changes`] against the view's owners. When those are the owners this pass
    /// handed out last, only the IPs decided again since are compared and changed, in a map
    /// the executor no longer holds where there is one.
    fn owner_changes(&mut self, view: &View<'_>) -> OwnerChanges {
        let dirty = std::mem::take(&mut self.owners_dirty);
        let spare = self.owners_spare.take();
        let last = match self.owners_out.take() {
            Some(last) if std::ptr::eq(view.owners, &*last) => last,
            _ => {
                let changes = owner_changes(&self.desired.l2_owners, view.owners, view.node);
                self.owners_out = Some(changes.owners.clone());
                return changes;
            }
        };
        let (mut next, behind) = spare.unwrap_or_else(|| (last.clone(), BTreeSet::new()));
        let map = Arc::make_mut(&mut next);
        for ip in &behind {
            match last.get(ip) {
                Some(owner) => map.insert(*ip, owner.clone()),
                None => map.remove(ip),
            };
        }
        let mut changes = OwnerChanges::default();
        let owners = &self.desired.l2_owners;
        for ip in &dirty {
            match owners.binary_search_by(|o| o.ip.cmp(ip)) {
                Ok(i) => {
                    compare_owner(&owners[i], last.get(ip), view.node, &mut changes);
                    map.insert(*ip, owners[i].owner.clone());
                }
                Err(_) => {
                    map.remove(ip);
                }
            }
        }
        changes.owners = next.clone();
        self.owners_out = Some(next);
        self.owners_spare = Some((last, dirty));
        changes
    }

    /// Applies the view's changed Services and slices to the index; returns the IPs whose
    /// decisions they may change.
    fn follow_objects(&mut self, view: &View<'_>) -> BTreeSet<IpAddr> {
        let mut dirty = BTreeSet::new();
        let services = self.services.advance(view.services);
        for gone in &services.gone {
            let (Some(ns), Some(name)) = (&gone.metadata.namespace, &gone.metadata.name) else {
                continue;
            };
            if let Some(old) = self.index.remove_service(&ServiceKey::new(ns, name)) {
                self.unlist(&old, &mut dirty);
            }
        }
        for came in &services.came {
            let Some(info) = service_from_k8s(came, view.class_policy) else {
                continue;
            };
            if let Some(old) = self.index.remove_service(&info.key) {
                self.unlist(&old, &mut dirty);
            }
            if info.ours {
                for ip in &info.ips {
                    self.by_ip.entry(*ip).or_default().insert(info.key.clone());
                    dirty.insert(*ip);
                }
            }
            self.index.upsert_service(info);
        }

        let mut touched: BTreeSet<ServiceKey> = BTreeSet::new();
        let slices = self.slices.advance(view.slices);
        for gone in &slices.gone {
            let (Some(ns), Some(name)) = (&gone.metadata.namespace, &gone.metadata.name) else {
                continue;
            };
            if let Some(old) = self.index.endpoint_slice(ns, name) {
                touched.insert(old.service_key());
                self.index.remove_endpoint_slice(ns, name);
            }
        }
        for came in &slices.came {
            let Some(info) = endpoint_slice_from_k8s(came) else {
                continue;
            };
            if let Some(old) = self.index.endpoint_slice(&info.namespace, &info.name) {
                touched.insert(old.service_key());
            }
            touched.insert(info.service_key());
            self.index.upsert_endpoint_slice(info);
        }
        for key in touched {
            if let Some(svc) = self.index.service(&key).filter(|s| s.ours) {
                dirty.extend(svc.ips.iter().copied());
            }
        }
        dirty
    }

    /// Takes a Service the index no longer holds off its IPs, marking them.
    fn unlist(&mut self, old: &ServiceInfo, dirty: &mut BTreeSet<IpAddr>) {
        if !old.ours {
            return;
        }
        for ip in &old.ips {
            dirty.insert(*ip);
            if let Some(keys) = self.by_ip.get_mut(ip) {
                keys.remove(&old.key);
                if keys.is_empty() {
                    self.by_ip.remove(ip);
                }
            }
        }
    }

    /// The decision of `ip` now, or `None` when no Service of ours uses it.
    fn decide(&self, ip: IpAddr, global: &Global) -> Option<IpDecision> {
        let keys = self.by_ip.get(&ip)?;
        let services: Vec<&ServiceInfo> =
            keys.iter().filter_map(|k| self.index.service(k)).collect();
        Some(decide_ip(
            &self.index,
            &global.node,
            global.modes,
            ip,
            &services,
        ))
    }

    /// Everything decided afresh under `global`.
    fn decide_all(&mut self, global: Global) {
        self.index.set_config(global.config.clone());
        self.index.set_ignore_exclude_lb(global.ignore_exclude_lb);
        self.index.replace_nodes(global.nodes.values().cloned());
        self.index.set_members_alive(global.alive.clone());
        self.index.set_node_links(global.links.clone());
        self.decisions = self
            .by_ip
            .keys()
            .filter_map(|ip| Some((*ip, self.decide(*ip, &global)?)))
            .collect();
        self.successors.clear();
        self.prefix_ips.clear();
        for (ip, d) in &self.decisions {
            if let Some(owner) = &d.l2_successor_of {
                *self.successors.entry(owner.clone()).or_default() += 1;
            }
            for prefix in d.bgp.keys() {
                self.prefix_ips.entry(*prefix).or_default().insert(*ip);
            }
        }
        self.desired = Arc::new(assemble(self.decisions.values().cloned()));
        self.global = Some(global);
        self.owners_out = None;
        self.changed = DesiredChanges::ALL;
    }

    /// Decides `ip` again and puts the difference into the desired announcements.
    fn decide_again(&mut self, ip: IpAddr) {
        let Some(global) = self.global.take() else {
            return;
        };
        let new = self.decide(ip, &global);
        self.global = Some(global);
        let old = match &new {
            Some(d) => self.decisions.insert(ip, d.clone()),
            None => self.decisions.remove(&ip),
        };
        let old = old.unwrap_or_default();
        let new = new.unwrap_or_default();
        self.owners_dirty.insert(ip);

        let desired = Arc::make_mut(&mut self.desired);
        let changed = &mut self.changed;
        changed.layer2 |= put(&mut desired.layer2, ip, |a| a.ip, new.layer2);
        changed.l2_standby |= put(&mut desired.l2_standby, ip, |a| a.ip, new.l2_standby);
        changed.l2_no_carrier |= put(&mut desired.l2_no_carrier, ip, |a| a.ip, new.l2_no_carrier);
        // Who owns what reaches the executor as owner changes (`owner_changes`), not as a part.
        put(&mut desired.l2_owners, ip, |o| o.ip, new.l2_owner);
        changed.not_announced |= put(&mut desired.not_announced, ip, |n| n.ip, new.not_announced);

        if old.l2_successor_of != new.l2_successor_of {
            changed.l2_successor_of = true;
            if let Some(owner) = old.l2_successor_of
                && let Some(count) = self.successors.get_mut(&owner)
            {
                *count -= 1;
                if *count == 0 {
                    self.successors.remove(&owner);
                    desired.l2_successor_of.remove(&owner);
                }
            }
            if let Some(owner) = new.l2_successor_of {
                *self.successors.entry(owner.clone()).or_default() += 1;
                desired.l2_successor_of.insert(owner);
            }
        }

        let prefixes: BTreeSet<IpNet> = old.bgp.keys().chain(new.bgp.keys()).copied().collect();
        for prefix in prefixes {
            let ips = self.prefix_ips.entry(prefix).or_default();
            if new.bgp.contains_key(&prefix) {
                ips.insert(ip);
            } else {
                ips.remove(&ip);
            }
            let mut merged: Option<BgpRoutes> = None;
            for routes in ips
                .iter()
                .filter_map(|i| self.decisions.get(i)?.bgp.get(&prefix))
            {
                merged.get_or_insert_default().merge(routes);
            }
            if ips.is_empty() {
                self.prefix_ips.remove(&prefix);
            }
            changed.bgp |= put(
                &mut desired.bgp,
                prefix,
                |b: &BgpAnnouncement| b.prefix,
                merged.map(|m| m.announcement(prefix)),
            );
        }
    }
}

/// Puts `entry` (or nothing) in the place of `at` in `list`, which is sorted by `key` with
/// one entry per key at most; tells whether the list changed.
fn put<T: PartialEq, K: Ord + Copy>(
    list: &mut Vec<T>,
    at: K,
    key: impl Fn(&T) -> K,
    entry: Option<T>,
) -> bool {
    match (list.binary_search_by(|e| key(e).cmp(&at)), entry) {
        (Ok(i), Some(e)) => {
            let changed = list[i] != e;
            list[i] = e;
            changed
        }
        (Ok(i), None) => {
            list.remove(i);
            true
        }
        (Err(i), Some(e)) => {
            list.insert(i, e);
            true
        }
        (Err(_), None) => false,
    }
}

#[cfg(test)]
mod tests;
