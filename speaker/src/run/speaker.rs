//! The executor: one `process_*` per input of the loop, each running passes and handing their
//! plans to the announcer, the BGP manager, the status writers and the event queue.

use super::RunOptions;
use super::carrier;
use super::events::{EventQueue, Pending};
use super::membership::MembershipDriver;
use super::shared::Shared;
use crate::bgp::manager::PeerManager;
use crate::bgp::restart_marker_file;
use crate::layer2::InterfaceTable;
use crate::layer2::announcer::{Announcer, DesiredIp, rfc3339};
use crate::layer2::interfaces::link_reports;
use crate::status_objects::Writers;
use crate::stores::{Lists, SpeakerStores};
use ferrolb_api::status::{Announcement, AnnouncementMode, NotAnnouncedAddress};
use ferrolb_runtime::ConfigUpdate;
use ferrolb_runtime::config_state::ConfigStateWriter;
use ferrolb_speaker_core::bgp::departure::{Departure, departure};
use ferrolb_speaker_core::bgp::fsm::StopCause;
use ferrolb_speaker_core::bgp::restart_marker::RestartMarker;
use ferrolb_speaker_core::desired::Desired;
use ferrolb_speaker_core::layer2::carrier::LinkReport;
use ferrolb_speaker_core::layer2::stop::{L2Stop, l2_stop};
use ferrolb_speaker_core::pass::{
    Announce, DesiredChanges, IncrementalPass, NodeAddresses, Plan, View,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long a pass that found the membership unsettled waits before the next one.
const SETTLE_RETRY: Duration = Duration::from_millis(100);

/// A burst of watch events is let land this long before recomputing.
const CHANGES_DEBOUNCE: Duration = Duration::from_millis(10);

/// How long a leaving node waits for its withdrawals to be written before it ceases anyway
/// (within the pod's termination grace period).
const WITHDRAW_TIMEOUT: Duration = Duration::from_secs(1);

/// How long the in-kernel responder keeps answering for this node's layer 2 addresses, and
/// the other speakers hold them, while the speaker restarts in place. It covers a DaemonSet
/// rolling update with the image already on the node (the new pod starts within seconds)
/// with room for a slow kubelet; if no new speaker is back by then, the node goes quiet and
/// the addresses fail over as after a crash. Kept short because a node that really dies
/// during the restart leaves its addresses silent until it ends.
pub(crate) const L2_RESTART_HOLD: Duration = Duration::from_secs(15);

/// Everything the loop carries from one pass to the next.
pub(crate) struct Speaker {
    pub(crate) opts: RunOptions,
    pub(crate) shared: Arc<Shared>,
    pub(crate) stores: SpeakerStores,
    pub(crate) announcer: Arc<Announcer>,
    pub(crate) status_objects: Writers,
    /// This speaker's ConfigurationState.
    pub(crate) config_state: ConfigStateWriter,
    pub(crate) events: EventQueue,
    pub(crate) membership: Option<MembershipDriver>,
    pub(crate) bgp: PeerManager,
    /// The owner of each layer 2 address as of the last settled pass.
    pub(crate) owners: Arc<BTreeMap<IpAddr, Option<String>>>,
    /// Since when each address is advertised over BGP.
    pub(crate) bgp_since: BTreeMap<IpAddr, String>,
    /// BGPPeers (`namespace/name`) whose VRF was missing at the last tick, so that each
    /// disappearance of a VRF is recorded as one event.
    pub(crate) vrf_missing: BTreeSet<String>,
    /// When to pass again because the last one waited for the membership to settle.
    pub(crate) settle_at: Option<Instant>,
    /// This node's interfaces, carrier included (the announcer's table).
    pub(crate) local_links: tokio::sync::watch::Receiver<InterfaceTable>,
    /// This node's links report as of the last pass.
    pub(crate) last_local_links: Option<Vec<LinkReport>>,
    /// Layer 2 addresses kept from this node by carrier as of the last pass, with why.
    pub(crate) last_no_carrier: BTreeMap<IpAddr, String>,
    /// The pass, kept between passes so that each costs what changed.
    pub(crate) incremental: IncrementalPass,
    /// Every Service and EndpointSlice, kept up to date by what changed.
    pub(crate) lists: Lists,
    /// The parts of the desired announcements changed since they were last handed on (all at
    /// first); a part that did not change is not handed on again.
    pub(crate) pending: DesiredChanges,
    /// What the BGP manager was last given without an error: with the same inputs and an
    /// unchanged table, it is not given them again.
    pub(crate) bgp_applied: Option<BgpInputs>,
    /// The BGP announcements of the status API changed since the ServiceBGPStatus objects were
    /// last built from them: the tick rebuilds them only then.
    pub(crate) bgp_statuses_stale: bool,
}

/// Everything but the table that the BGP manager's `apply` reads.
#[derive(Debug, PartialEq)]
pub(crate) struct BgpInputs {
    peers: Vec<ferrolb_config::Peer>,
    passwords: crate::bgp::manager::Passwords,
    node_addresses: NodeAddresses,
    bfd_profiles: BTreeMap<String, ferrolb_config::BfdProfile>,
}

impl Speaker {
    /// Watched objects changed: let a burst land, then pass.
    pub(crate) async fn process_changes(&mut self, more_pending: bool) {
        if more_pending {
            tokio::time::sleep(CHANGES_DEBOUNCE).await;
        }
        self.pass_and_apply().await;
    }

    /// The settle retry is due.
    pub(crate) async fn process_settle(&mut self) {
        self.pass_and_apply().await;
    }

    /// The membership's alive set changed (`changed` is false when the membership went away):
    /// this pass is the failover itself, so it never waits.
    pub(crate) async fn process_alive(&mut self, changed: bool) {
        if changed {
            self.shared.metrics.membership.changes.inc();
        }
        self.pass_and_apply().await;
    }

    /// This node's interfaces changed, or another speaker reported its carrier: a node that
    /// lost carrier is replaced in this pass, so it never waits.
    pub(crate) async fn process_links(&mut self) {
        self.pass_and_apply().await;
    }

    /// Another speaker answered for one of our addresses (it restarted and had not settled
    /// yet): announce again so clients go back to us.
    pub(crate) fn process_reclaim(&self, reclaimed: bool) {
        if reclaimed {
            self.announcer.reannounce();
        }
    }

    /// Session states and interfaces change without a watch event: refresh what reports them.
    pub(crate) async fn process_tick(&mut self) {
        if let Some(m) = self.membership.as_ref().and_then(|d| d.membership()) {
            self.shared
                .metrics
                .membership
                .observe(m.counters().values());
        }
        self.refresh_bgp_status();
        let missing = {
            let st = self.shared.state();
            // One ServiceBGPStatus per advertised Service: rebuilt when the announcements
            // changed, not every second.
            if std::mem::take(&mut self.bgp_statuses_stale) {
                self.status_objects
                    .publish_bgp_services(&st.bgp_announcements);
            }
            self.status_objects.publish_bgp_sessions(&st.bgp_peers);
            st.bgp_peers
                .iter()
                .filter(|p| p.vrf_missing)
                .map(|p| (p.name.clone(), p.vrf.clone().unwrap_or_default()))
                .collect::<BTreeMap<String, String>>()
        };
        self.record_missing_vrfs(missing).await;
        self.status_objects
            .publish_layer2(&self.announcer.snapshot());
    }

    /// Stopping: the layer 2 addresses and the BGP sessions end as the node's state calls for
    /// ([`departure`], [`l2_stop`]), this node's status objects are removed, and the membership
    /// is left (or told to hold this node's addresses through a restart in place). Layer 2
    /// comes first (clients on the LAN), then BGP, then the status objects: the pod's grace
    /// period is short, and what clients and routers are told matters most.
    pub(crate) async fn process_stop(mut self) {
        let node = self
            .stores
            .nodes()
            .into_iter()
            .find(|n| n.metadata.name.as_deref() == Some(self.opts.node_name.as_str()));
        let how = departure(
            node.as_deref(),
            self.opts.hitless_operations,
            self.opts.ignore_exclude_lb,
        );
        let l2 = self.stop_layer2(how).await;
        self.stop_bgp(how).await;
        self.status_objects.stop(Duration::from_secs(2)).await;
        if let Some(m) = self.membership.as_mut() {
            match l2 {
                L2Stop::HandToNextProcess => m.restart(L2_RESTART_HOLD).await,
                L2Stop::HandToSuccessors | L2Stop::ReleaseAtOnce => m.leave().await,
            }
        }
    }

    /// Ends layer 2 for `how` ([`l2_stop`]); returns what was done.
    async fn stop_layer2(&mut self, how: Departure) -> L2Stop {
        let membership = self
            .membership
            .as_ref()
            .is_some_and(|d| d.membership().is_some());
        let kernel = how == Departure::Restart
            && match self.announcer.hand_over_to_next_process(L2_RESTART_HOLD) {
                Ok(interfaces) => {
                    tracing::info!(
                        ?interfaces,
                        hold_s = L2_RESTART_HOLD.as_secs(),
                        "restarting in place: the in-kernel responder keeps answering for this node's layer 2 addresses until the next speaker adopts them"
                    );
                    true
                }
                Err(error) => {
                    tracing::warn!(%error, "restarting in place, but the in-kernel responder cannot be left answering: handing the layer 2 addresses to other nodes instead");
                    false
                }
            };
        let l2 = l2_stop(how, kernel, membership);
        match l2 {
            L2Stop::HandToNextProcess => {}
            L2Stop::HandToSuccessors => {
                tracing::info!(
                    "stopping: handing the layer 2 addresses to the other nodes before going quiet"
                );
                // Leaving first makes the others elect the successors, whose announcements
                // end each hand-over.
                if let Some(m) = self.membership.as_mut() {
                    m.leave().await;
                }
                self.announcer.hand_over_all().await;
                self.announcer.set_desired(Vec::<DesiredIp>::new());
            }
            L2Stop::ReleaseAtOnce => {
                tracing::info!("stopping: withdrawing layer 2 announcements");
                self.announcer.set_desired(Vec::<DesiredIp>::new());
            }
        }
        l2
    }

    /// Ends the BGP sessions for `how`: a restart in place keeps the routes where graceful
    /// restart is negotiated and leaves the restart marker for the next process; a leaving
    /// node withdraws first, then ceases; with hitless operations off every session ceases.
    async fn stop_bgp(&mut self, how: Departure) {
        match how {
            Departure::Restart => {
                let kept = self.bgp.shutdown(StopCause::Restart).await;
                if kept.is_empty() {
                    return;
                }
                let names: Vec<&str> = kept.iter().map(|p| p.name.as_str()).collect();
                let marker = RestartMarker {
                    node: self.opts.node_name.clone(),
                    written: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                    peers: kept.clone(),
                };
                match restart_marker_file::write(&self.opts.restart_marker_dir, &marker) {
                    Ok(path) => tracing::info!(peers = ?names, marker = %path.display(),
                        "restarting in place: routers keep our routes through graceful restart"),
                    Err(e) => tracing::warn!(peers = ?names, error = %e,
                        "restarting in place, but the restart marker cannot be written: the next \
                         speaker will not announce the Restart State bit"),
                }
            }
            Departure::Leave(reason) => {
                tracing::info!(
                    reason = reason.describe(),
                    "node leaving: withdrawing BGP routes before closing the sessions"
                );
                let late = self.bgp.withdraw_all(WITHDRAW_TIMEOUT).await;
                if !late.is_empty() {
                    tracing::warn!(peers = ?late, "withdrawals not written in time; ceasing anyway");
                }
                self.bgp.shutdown(StopCause::Shutdown).await;
            }
            Departure::Cease => {
                self.bgp.shutdown(StopCause::Shutdown).await;
            }
        }
    }

    /// One pass over the whole view, and its plan applied.
    pub(crate) async fn pass_and_apply(&mut self) {
        self.settle_at = None;
        if let Some(driver) = self.membership.as_mut() {
            let (secret, key) = driver.secret();
            let key = self.stores.secret_values(key).get(secret).cloned();
            driver.follow(key, &self.stores.nodes()).await;
        }
        let alive = self.membership.as_mut().and_then(|d| d.alive_now());
        let local_links = link_reports(
            &self.local_links.borrow_and_update(),
            &self.opts.exclude_interfaces,
        );
        if self.last_local_links.as_ref() != Some(&local_links) {
            carrier::log_carrier_changes(self.last_local_links.as_deref(), &local_links);
            self.shared.metrics.layer2.observe_carrier(&local_links);
            self.shared.state().interfaces = carrier::interfaces_status(&local_links);
            self.last_local_links = Some(local_links.clone());
        }
        if let Some(m) = self.membership.as_ref().and_then(|d| d.membership()) {
            m.set_links(local_links.clone());
        }
        // This node's own report counts at once; the others' as the membership has them.
        let links = self
            .membership
            .as_mut()
            .and_then(|d| d.links_now())
            .map(|mut all| {
                all.insert(self.opts.node_name.clone(), local_links);
                all
            });
        let config = {
            let mut st = self.shared.state();
            if let ConfigUpdate::Rejected {
                changed: true,
                errors,
            } = st.config.update(self.stores.config())
            {
                for e in errors {
                    tracing::error!(error = %e, "configuration rejected; the last valid one stays in force");
                }
            }
            self.shared
                .metrics
                .announcements
                .config_valid
                .set(i64::from(st.config.valid()));
            self.shared
                .metrics
                .metallb
                .observe_config(st.config.loaded(), st.config.valid());
            self.config_state.publish(st.config.status());
            st.membership = self
                .membership
                .as_ref()
                .map(|d| d.view())
                .unwrap_or_default();
            st.config.in_force_shared()
        };
        self.shared
            .metrics
            .membership
            .set_members(alive.as_ref().map_or(0, |a| a.len()));
        self.stores.refresh(&mut self.lists);
        let nodes = self.stores.nodes();
        let view = View {
            node: &self.opts.node_name,
            services: self.lists.services(),
            slices: self.lists.slices(),
            nodes: &nodes,
            class_policy: self.opts.class_policy,
            modes: self.opts.modes,
            ignore_exclude_lb: self.opts.ignore_exclude_lb,
            settling: self.membership.as_ref().and_then(|d| d.settling()),
            owners: &self.owners,
            links: links.as_ref(),
        };
        let plan = self
            .incremental
            .pass(&view, alive.as_ref(), config.as_deref());
        self.pending.merge(self.incremental.take_changes());
        if let Some(d) = self.membership.as_mut() {
            d.latch(plan.settled);
        }
        self.apply(plan).await;
    }

    /// Hands a plan to the executors. Layer 2 first: after a membership change this is the
    /// failover itself (the new owner's gratuitous ARP goes out inside the announcer), and it
    /// must not wait for the BGP manager.
    async fn apply(&mut self, plan: Plan) {
        let Plan {
            settled,
            node_addresses,
            announce,
        } = plan;
        let Some(Announce {
            desired,
            peers,
            bfd_profiles,
            owner_changes,
        }) = announce
        else {
            return;
        };
        if let Some(m) = self.membership.as_ref().and_then(|d| d.membership()) {
            // Heartbeats from the owners this node would replace: the fast path of failover.
            m.set_watched(desired.l2_successor_of.clone());
        }
        let pending = self.pending;
        if settled {
            // Addresses this node loses go to their new owners make-before-break. The map is
            // the pass's own, shared: the announcer always holds the newest one, so the pass
            // can update the one before in place.
            if let Some(changes) = &owner_changes {
                self.announcer.set_owners(changes.owners.clone());
            }
            // The interfaces of the addresses this node would take over are kept ready, so
            // the takeover itself only has to answer. (The announcer follows the interfaces
            // and retries failures by itself; the tick publishes its state every second.)
            if pending.layer2 || pending.l2_standby {
                self.announcer
                    .set_desired_and_standby(desired.layer2.iter(), desired.l2_standby.iter());
                self.status_objects
                    .publish_layer2(&self.announcer.snapshot());
            }
            // This process answers for its addresses now: a responder the previous process
            // left answering through the restart can go.
            self.announcer.release_predecessor();
        } else {
            tracing::debug!("membership still settling; layer 2 announcements wait");
            self.settle_at = Some(Instant::now() + SETTLE_RETRY);
        }
        let inputs = BgpInputs {
            peers,
            passwords: self.stores.passwords(&self.opts.namespace),
            node_addresses,
            bfd_profiles,
        };
        // The sessions' status follows in `apply_bgp`, and every second on the tick (sessions
        // move on by themselves).
        if pending.bgp || self.bgp_applied.as_ref() != Some(&inputs) {
            self.apply_bgp(inputs, &desired).await;
        }
        if pending.bgp {
            self.record_bgp_announcements(&desired);
        }
        if pending.announced() {
            self.shared.metrics.announcements.observe(&desired);
            self.shared
                .metrics
                .metallb
                .observe_announced(&desired, &self.opts.node_name, &pending);
        }
        if pending.not_announced {
            self.shared.state().not_announced = desired
                .not_announced
                .iter()
                .map(|n| NotAnnouncedAddress {
                    ip: n.ip.to_string(),
                    services: n.services.clone(),
                    reason: n.reason.code().to_string(),
                    message: n.reason.message().to_string(),
                })
                .collect();
        }
        // Layer 2 reaches the announcer only in a settled pass; the rest was handed on.
        self.pending = DesiredChanges {
            layer2: pending.layer2 && !settled,
            l2_standby: pending.l2_standby && !settled,
            ..DesiredChanges::NONE
        };
        let lost_to_carrier = carrier::owned_lost_to_carrier(
            &self.owners,
            &self.opts.node_name,
            &self.last_no_carrier,
            &desired.l2_no_carrier,
        );
        self.last_no_carrier =
            carrier::log_no_carrier_changes(&self.last_no_carrier, &desired.l2_no_carrier);
        self.events.send(lost_to_carrier).await;
        self.shared.state().no_carrier = carrier::no_carrier_status(&desired.l2_no_carrier);
        if let Some(changes) = owner_changes {
            self.shared
                .metrics
                .layer2
                .election_changes
                .inc_by(changes.changed);
            self.owners = changes.owners;
            self.events
                .send(
                    changes
                        .assigned
                        .into_iter()
                        .map(Pending::Assigned)
                        .collect(),
                )
                .await;
            self.shared.set_ready();
        }
    }

    /// Hands the BGP manager the peers of this node, their passwords and the whole desired
    /// table.
    async fn apply_bgp(&mut self, inputs: BgpInputs, desired: &Desired) {
        self.bgp.set_bfd_profiles(inputs.bfd_profiles.clone());
        self.bgp.set_node_addresses(inputs.node_addresses);
        let errors: Vec<String> = self
            .bgp
            .apply(&inputs.peers, &inputs.passwords, &desired.bgp)
            .await
            .iter()
            .map(ToString::to_string)
            .collect();
        // A peer that could not be configured is tried again with the next pass.
        self.bgp_applied = errors.is_empty().then_some(inputs);
        {
            let mut st = self.shared.state();
            if errors != st.bgp_errors {
                for e in &errors {
                    tracing::error!(error = %e, "BGP peer not applied");
                }
                st.bgp_errors = errors;
            }
        }
        self.refresh_bgp_status();
    }

    /// Lists the addresses advertised over BGP in the status API, keeping when each started.
    fn record_bgp_announcements(&mut self, desired: &Desired) {
        let now = rfc3339(std::time::SystemTime::now());
        let mut next = BTreeMap::new();
        let mut list = Vec::new();
        for b in &desired.bgp {
            for ip in &b.ips {
                let started = self
                    .bgp_since
                    .get(ip)
                    .cloned()
                    .unwrap_or_else(|| now.clone());
                next.insert(*ip, started.clone());
                list.push(Announcement {
                    ip: *ip,
                    services: b.services.clone(),
                    mode: AnnouncementMode::Bgp,
                    interfaces: Vec::new(),
                    peers: b.peers.keys().cloned().collect(),
                    since: started,
                });
            }
        }
        self.bgp_since = next;
        self.shared.state().bgp_announcements = list;
        self.bgp_statuses_stale = true;
    }

    /// Copies the sessions' states into the status API and the metrics.
    /// Records a warning event on each BGPPeer whose VRF has just been found missing on this
    /// node (once per disappearance, not on every tick).
    async fn record_missing_vrfs(&mut self, missing: BTreeMap<String, String>) {
        let new: Vec<Pending> = missing
            .iter()
            .filter(|(peer, _)| !self.vrf_missing.contains(*peer))
            .map(|(peer, vrf)| {
                tracing::warn!(peer = %peer, vrf = %vrf, "VRF of a BGP peer does not exist on this node");
                Pending::VrfMissing {
                    peer: peer.clone(),
                    vrf: vrf.clone(),
                }
            })
            .collect();
        self.vrf_missing = missing.into_keys().collect();
        self.events.send(new).await;
    }

    fn refresh_bgp_status(&self) {
        let status = self.bgp.status();
        let m = &self.shared.metrics;
        m.bgp.observe_status(&status);
        m.bfd.observe_status(&status);
        m.metallb.observe_sessions(&status);
        m.bgp.observe(&self.bgp.counters());
        m.bfd.observe(&self.bgp.bfd_counters());
        self.shared.state().bgp_peers = status;
    }
}
