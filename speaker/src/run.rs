//! The speaker process: caches, membership, the level-triggered loop (index → desired
//! announcements → announcers), events and the HTTP API.

use crate::bgp::manager::{NodeAddresses, PeerManager};
use crate::http::StatusSource;
use crate::layer2::announcer::{Announcer, AnnouncerConfig, KERNEL_LEASE, L2Responder};
use crate::membership::{GossipTimers, Membership, MembershipConfig};
use crate::metrics::{Metrics, ModeLabels, NotAnnouncedLabels};
use crate::stores::SpeakerStores;
use anyhow::Context;
use ferrolb_api::service::ClassPolicy;
use ferrolb_api::status::{BgpPeerStatus, MembershipView, NotAnnouncedAddress, SpeakerStatus};
use ferrolb_config::Peer;
use ferrolb_runtime::http::Health;
use ferrolb_runtime::sync::lock;
use ferrolb_runtime::{ConfigTracker, ConfigUpdate, Wiring};
use ferrolb_speaker_core::desired::{Desired, Modes, NotAnnouncedReason, desired_announcements_in};
use ferrolb_speaker_core::eligibility::peers_for_node;
use ferrolb_speaker_core::membership::heartbeat::HeartbeatTimers;
use k8s_openapi::api::core::v1::{Node, ObjectReference};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

/// Settings of `ferrolb-speaker run`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// This node's name (the Node object's name).
    pub node_name: String,
    /// Namespace of the configuration objects and Secrets.
    pub namespace: String,
    /// Address of the HTTP API.
    pub listen: SocketAddr,
    /// Which `loadBalancerClass` values are ours to handle.
    pub class_policy: ClassPolicy,
    /// Gossip membership: UDP port (on the node's address) and the Secret holding the key;
    /// `None` uses the Node Ready condition alone.
    pub membership: Option<MembershipOptions>,
    /// Glob patterns of interfaces the automatic choice skips (layer 2).
    pub exclude_interfaces: Vec<String>,
    /// Who answers ARP and NDP (in the kernel where possible, or always from userspace).
    pub l2_responder: L2Responder,
    /// Which announcement modes run (the same on every speaker).
    pub modes: Modes,
}

/// Gossip membership settings.
#[derive(Clone, Debug)]
pub struct MembershipOptions {
    /// UDP port, the same on every node.
    pub port: u16,
    /// Secret (in the speaker's namespace) with the shared key.
    pub secret: String,
    /// Key of the Secret's data holding the key.
    pub secret_key: String,
    /// SWIM timers.
    pub timers: GossipTimers,
    /// Owner → successor heartbeats; `None` leaves failure detection to the gossip.
    pub heartbeat: Option<HeartbeatTimers>,
}

#[derive(Default)]
struct State {
    config: ConfigTracker,
    membership: MembershipView,
    bgp_peers: Vec<BgpPeerStatus>,
    bgp_errors: Vec<String>,
    /// Addresses advertised over BGP, with since-when.
    bgp_announcements: Vec<ferrolb_api::status::Announcement>,
    /// Addresses no node announces, with the reason (the same on every speaker).
    not_announced: Vec<NotAnnouncedAddress>,
}

/// State shared by the loop and the HTTP API.
pub struct Shared {
    node: String,
    state: Mutex<State>,
    metrics: Metrics,
    ready: AtomicBool,
    announcer: Mutex<Option<Arc<Announcer>>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn announcer(&self) -> Option<Arc<Announcer>> {
        lock(&self.announcer).clone()
    }
}

impl Health for Shared {
    fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    fn metrics_text(&self) -> String {
        if let Some(a) = self.announcer() {
            self.metrics.observe_l2(a.counters());
        }
        self.metrics.encode()
    }
}

impl StatusSource for Shared {
    fn status(&self) -> SpeakerStatus {
        let st = self.state();
        SpeakerStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            node: self.node.clone(),
            ready: self.ready(),
            config: st.config.status().clone(),
            membership: st.membership.clone(),
            announcements: self
                .announcer()
                .map(|a| a.snapshot())
                .unwrap_or_default()
                .into_iter()
                .chain(st.bgp_announcements.iter().cloned())
                .collect(),
            bgp_peers: st.bgp_peers.clone(),
            kernel_responder_interfaces: self
                .announcer()
                .map(|a| a.kernel_responder_interfaces())
                .unwrap_or_default(),
            not_announced: st.not_announced.clone(),
        }
    }
}

/// A running speaker: `stop` stops it (withdrawing everything it announces) and waits for it.
pub type Handle = ferrolb_runtime::Handle<Shared, anyhow::Error>;

/// Runs the speaker until SIGTERM/SIGINT.
pub async fn run(client: Client, opts: RunOptions) -> anyhow::Result<()> {
    start(client, opts).await?.run_until_signal().await
}

/// Binds the HTTP API and starts the speaker in the background.
pub async fn start(client: Client, opts: RunOptions) -> anyhow::Result<Handle> {
    let shared = Arc::new(Shared {
        node: opts.node_name.clone(),
        state: Mutex::new(State::default()),
        metrics: Metrics::new(),
        ready: AtomicBool::new(false),
        announcer: Mutex::new(None),
    });
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("binding the HTTP API on {}", opts.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(listen = %addr, node = %opts.node_name, "HTTP API listening");
    let router = crate::http::router(shared.clone());
    Ok(Handle::spawn(listener, router, shared, |w| {
        main_loop(client, opts, w)
    })?)
}

/// InternalIP addresses of a Node (IPv4 first).
fn node_addresses(node: &Node) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = node
        .status
        .iter()
        .flat_map(|s| s.addresses.iter().flatten())
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect();
    ips.sort_by_key(|ip| ip.is_ipv6());
    ips
}

struct Gossip {
    membership: Membership,
    key: Vec<u8>,
    started: std::time::Instant,
    /// Set once the membership has settled: the gate below is about a fresh start only. Without
    /// the latch, a Ready node dying within `MEMBERSHIP_SETTLE` of our start would hold back
    /// its takeover until then (the first failover after a start would take seconds).
    settled: bool,
}

/// How long a freshly started membership may take to learn the other speakers before layer 2
/// announcements are made anyway.
const MEMBERSHIP_SETTLE: Duration = Duration::from_secs(2);

/// Whether layer 2 announcements may be applied. Right after (re)starting, a speaker's
/// membership knows only itself, so it would elect itself for every address and answer next to
/// the real owners; it waits until it sees every other Ready node with an address alive, or
/// until [`MEMBERSHIP_SETTLE`] has passed (a dead node that is still Ready must not block it).
fn membership_settled(
    gossip: Option<&Gossip>,
    alive: &BTreeSet<String>,
    expected: &BTreeSet<String>,
) -> bool {
    match gossip {
        None => true,
        Some(g) => {
            g.settled || expected.is_subset(alive) || g.started.elapsed() >= MEMBERSHIP_SETTLE
        }
    }
}

async fn main_loop(client: Client, opts: RunOptions, mut w: Wiring<Shared>) -> anyhow::Result<()> {
    let shared = w.shared.clone();
    let stores = SpeakerStores::start(&client, &opts.namespace, &mut w);
    let announcer = Arc::new(
        Announcer::start(AnnouncerConfig {
            exclude_patterns: opts.exclude_interfaces.clone(),
            responder: opts.l2_responder,
            kernel_lease: kernel_lease(opts.membership.as_ref().and_then(|m| m.heartbeat.as_ref())),
        })
        .await
        .context("starting the layer 2 announcer")?,
    );
    *lock(&shared.announcer) = Some(announcer.clone());

    let mut stop = std::pin::pin!(w.stop);
    tokio::select! {
        r = stores.wait_until_ready() => r?,
        _ = &mut stop => return Ok(()),
    }
    tracing::info!("caches synced");
    // ServiceL2Status, ServiceBGPStatus and BGPSessionState objects follow what the speaker
    // does, written from tasks of their own.
    let status_objects =
        crate::status_objects::Writers::start(&client, &opts.namespace, &opts.node_name);
    let publish_bgp_status = |shared: &Shared| {
        let st = shared.state();
        status_objects.publish_bgp(&st.bgp_announcements, &st.bgp_peers);
    };
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "ferrolb-speaker".into(),
            instance: Some(opts.node_name.clone()),
        },
    );

    let mut gossip: Option<Gossip> = None;
    let (_no_alive_tx, no_alive) = watch::channel(BTreeSet::new());
    let mut alive_rx = no_alive.clone();
    let (_no_reclaims_tx, no_reclaims) = watch::channel(0u64);
    let mut reclaims_rx = no_reclaims.clone();
    let mut owners: BTreeMap<IpAddr, Option<String>> = BTreeMap::new();
    let mut bgp = PeerManager::new(None);
    let mut warned_no_key = false;
    let mut bgp_since: BTreeMap<IpAddr, String> = BTreeMap::new();
    // Set while layer 2 waits for the membership to settle: recompute again shortly.
    let mut settle_retry = false;
    // Session states change without any watch event: refresh their status and metrics.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    'outer: loop {
        // Membership follows the key Secret and the Node objects.
        if let Some(mopts) = &opts.membership {
            let key = stores
                .secret_values(&mopts.secret_key)
                .get(&mopts.secret)
                .cloned();
            let nodes = stores.nodes();
            let me = nodes
                .iter()
                .find(|n| n.metadata.name.as_deref() == Some(opts.node_name.as_str()));
            let my_ip = me.and_then(|n| node_addresses(n).into_iter().next());
            let seeds: Vec<SocketAddr> = nodes
                .iter()
                .filter(|n| n.metadata.name.as_deref() != Some(opts.node_name.as_str()))
                .filter_map(|n| node_addresses(n).into_iter().next())
                .map(|ip| SocketAddr::new(ip, mopts.port))
                .collect();
            match (key, my_ip) {
                (Some(key), Some(ip)) if gossip.as_ref().is_none_or(|g| g.key != key) => {
                    if let Some(old) = gossip.take() {
                        old.membership.leave().await;
                    }
                    let cfg = MembershipConfig {
                        node_name: opts.node_name.clone(),
                        bind: SocketAddr::new(ip, mopts.port),
                        advertise: None,
                        seeds,
                        key: key.clone(),
                        timers: mopts.timers.clone(),
                        heartbeat: mopts.heartbeat.clone(),
                    };
                    match Membership::start(cfg).await {
                        Ok(m) => {
                            alive_rx = m.alive();
                            reclaims_rx = m.reclaims();
                            gossip = Some(Gossip {
                                membership: m,
                                key,
                                started: std::time::Instant::now(),
                                settled: false,
                            });
                            tracing::info!("membership started");
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "membership could not start; using Node Ready only")
                        }
                    }
                }
                (Some(_), Some(_)) => {
                    if let Some(g) = &gossip {
                        g.membership.set_seeds(seeds);
                    }
                }
                (None, _) => {
                    if gossip.is_some() || !warned_no_key {
                        tracing::warn!(
                            secret = %mopts.secret,
                            key = %mopts.secret_key,
                            namespace = %opts.namespace,
                            "membership key Secret (or its key) not found; node liveness is the Node Ready condition only, so failover waits for the node controller"
                        );
                        warned_no_key = true;
                    }
                    if let Some(old) = gossip.take() {
                        old.membership.leave().await;
                    }
                    alive_rx = no_alive.clone();
                    reclaims_rx = no_reclaims.clone();
                }
                (Some(_), None) => {
                    tracing::warn!(node = %opts.node_name, "no InternalIP on this node's Node object; membership waits")
                }
            }
        }
        let alive = gossip
            .as_ref()
            .map(|_| alive_rx.borrow_and_update().clone());

        let desired = {
            let mut st = shared.state();
            if let ConfigUpdate::Rejected {
                changed: true,
                errors,
            } = st.config.update(stores.config())
            {
                for e in errors {
                    tracing::error!(error = %e, "configuration rejected; the last valid one stays in force");
                }
            }
            shared
                .metrics
                .config_valid
                .set(i64::from(st.config.valid()));
            st.membership = match &gossip {
                Some(g) => g.membership.view(),
                None => MembershipView {
                    enabled: false,
                    members: Vec::new(),
                },
            };
            let members = alive.as_ref().map_or(0, |a| a.len());
            shared
                .metrics
                .members
                .set(i64::try_from(members).unwrap_or(i64::MAX));
            st.config.in_force().cloned().map(|cfg| {
                let mut index = stores.index(cfg, opts.class_policy);
                index.set_members_alive(alive.clone());
                // With BGP off no session is opened at all.
                let peers: Vec<Peer> = index
                    .node(&opts.node_name)
                    .filter(|_| opts.modes.bgp)
                    .map(|n| peers_for_node(index.config(), n).cloned().collect())
                    .unwrap_or_default();
                let bfd_profiles = index.config().bfd_profiles.clone();
                (
                    desired_announcements_in(&index, &opts.node_name, opts.modes),
                    peers,
                    bfd_profiles,
                )
            })
        };
        if let Some((desired, peers, bfd_profiles)) = desired {
            // Layer 2 first: after a membership change this is the failover itself (the new
            // owner's gratuitous ARP goes out inside `set_desired`), and it must not wait for
            // the BGP manager below.
            let expected: BTreeSet<String> = stores
                .nodes()
                .iter()
                .filter(|n| !node_addresses(n).is_empty())
                .filter_map(|n| ferrolb_speaker_core::index::node_from_k8s(n))
                .filter(|n| n.ready)
                .map(|n| n.name)
                .collect();
            let alive_now = alive.clone().unwrap_or_default();
            let settled = membership_settled(gossip.as_ref(), &alive_now, &expected);
            if let Some(g) = gossip.as_mut() {
                g.settled |= settled;
            }
            if let Some(g) = &gossip {
                // Heartbeats from the owners this node would replace: the fast path of
                // failover (membership::heartbeat).
                g.membership.set_watched(desired.l2_successor_of.clone());
            }
            if settled {
                // The interfaces of the addresses this node would take over are kept ready,
                // so the takeover itself only has to answer.
                announcer.set_desired_and_standby(desired.layer2.iter(), desired.l2_standby.iter());
                status_objects.publish_layer2(&announcer.snapshot());
            } else {
                tracing::debug!("membership still settling; layer 2 announcements wait");
                settle_retry = true;
            }
            bgp.set_bfd_profiles(bfd_profiles);
            let mut node_ips = NodeAddresses::default();
            let this_node = stores
                .nodes()
                .into_iter()
                .find(|n| n.metadata.name.as_deref() == Some(opts.node_name.as_str()));
            for ip in this_node.map(|n| node_addresses(&n)).unwrap_or_default() {
                match ip {
                    IpAddr::V4(v4) => node_ips.v4 = node_ips.v4.or(Some(v4)),
                    IpAddr::V6(v6) => node_ips.v6 = node_ips.v6.or(Some(v6)),
                }
            }
            apply_bgp(
                &mut bgp,
                &shared,
                &stores,
                &opts.namespace,
                node_ips,
                &peers,
                &desired,
            )
            .await;
            record_bgp_announcements(&desired, &shared, &mut bgp_since);
            for reason in NotAnnouncedReason::ALL {
                let count = desired
                    .not_announced
                    .iter()
                    .filter(|n| n.reason == reason)
                    .count();
                shared
                    .metrics
                    .not_announced
                    .get_or_create(&NotAnnouncedLabels {
                        reason: reason.code().to_string(),
                    })
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
            shared.state().not_announced = desired
                .not_announced
                .iter()
                .map(|n| NotAnnouncedAddress {
                    ip: n.ip.to_string(),
                    services: n.services.clone(),
                    reason: n.reason.code().to_string(),
                    message: n.reason.message().to_string(),
                })
                .collect();
            shared
                .metrics
                .announced
                .get_or_create(&ModeLabels {
                    mode: "layer2".into(),
                })
                .set(desired.layer2.len() as i64);
            shared
                .metrics
                .announced
                .get_or_create(&ModeLabels { mode: "bgp".into() })
                .set(desired.bgp.len() as i64);
            // An unsettled view elects this node for everything: neither events nor election
            // metrics may come from it, and the speaker is not ready yet.
            if settled {
                record_owner_changes(
                    &desired,
                    &mut owners,
                    &opts.node_name,
                    &stores,
                    &recorder,
                    &shared.metrics,
                )
                .await;
                shared.ready.store(true, Ordering::Relaxed);
            }
        }

        // Wait for something that changes the desired state; the periodic tick only refreshes
        // the sessions' status.
        let retry_settle = std::mem::take(&mut settle_retry);
        let settle = async move {
            if retry_settle {
                tokio::time::sleep(Duration::from_millis(100)).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let mut settle = std::pin::pin!(settle);
        loop {
            tokio::select! {
                _ = w.changes.changed() => break,
                _ = &mut settle => break,
                r = alive_rx.changed(), if gossip.is_some() => {
                    if r.is_ok() {
                        shared.metrics.membership_changes.inc();
                    }
                    break;
                }
                r = reclaims_rx.changed(), if gossip.is_some() => {
                    if r.is_ok() {
                        announcer.reannounce();
                    }
                }
                _ = tick.tick() => {
                    if let Some(g) = &gossip {
                        shared.metrics.observe_membership(g.membership.counters().values());
                    }
                    refresh_bgp_status(&bgp, &shared);
                    publish_bgp_status(&shared);
                    // Interface changes reach the announcer without a pass of this loop.
                    status_objects.publish_layer2(&announcer.snapshot());
                }
                _ = &mut stop => break 'outer,
            }
        }
        // Let a burst of watch events land before recomputing (membership changes are rare and
        // urgent: they skip the wait).
        if w.changes.has_changed().unwrap_or(false) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    tracing::info!("stopping: withdrawing announcements");
    announcer.set_desired(Vec::<crate::layer2::announcer::DesiredIp>::new());
    // The writers remove this node's status objects on the way out.
    status_objects.stop(Duration::from_secs(2)).await;
    // Cease to every peer so routers withdraw our routes at once.
    bgp.shutdown().await;
    if let Some(g) = gossip.take() {
        g.membership.leave().await;
    }
    Ok(())
}

/// The kernel responder's lease: shorter than the time the other speakers take to replace a
/// stopped or starved one, so its node has gone quiet by then (one heartbeat interval below
/// their silence threshold with heartbeats, the default below the gossip's detection time
/// otherwise).
fn kernel_lease(heartbeat: Option<&HeartbeatTimers>) -> Duration {
    match heartbeat {
        Some(h) => h
            .dead_after()
            .saturating_sub(h.interval)
            .clamp(Duration::from_millis(5), KERNEL_LEASE),
        None => KERNEL_LEASE,
    }
}

/// Hands the BGP manager the peers of this node, their passwords and the whole desired table.
async fn apply_bgp(
    bgp: &mut PeerManager,
    shared: &Shared,
    stores: &SpeakerStores,
    namespace: &str,
    node_ips: NodeAddresses,
    peers: &[Peer],
    desired: &Desired,
) {
    let passwords: BTreeMap<(String, String), String> = stores
        .secret_values("password")
        .into_iter()
        .filter_map(|(name, bytes)| {
            let text = String::from_utf8(bytes).ok()?;
            Some(((namespace.to_string(), name), text))
        })
        .collect();
    bgp.set_node_addresses(node_ips);
    let errors: Vec<String> = bgp
        .apply(peers, &passwords, &desired.bgp)
        .await
        .iter()
        .map(ToString::to_string)
        .collect();
    {
        let mut st = shared.state();
        if errors != st.bgp_errors {
            for e in &errors {
                tracing::error!(error = %e, "BGP peer not applied");
            }
            st.bgp_errors = errors;
        }
    }
    refresh_bgp_status(bgp, shared);
}

/// Lists the addresses advertised over BGP in the status API, keeping when each started.
fn record_bgp_announcements(
    desired: &Desired,
    shared: &Shared,
    since: &mut BTreeMap<IpAddr, String>,
) {
    let now = crate::layer2::announcer::rfc3339(std::time::SystemTime::now());
    let mut next = BTreeMap::new();
    let mut list = Vec::new();
    for b in &desired.bgp {
        for ip in &b.ips {
            let started = since.get(ip).cloned().unwrap_or_else(|| now.clone());
            next.insert(*ip, started.clone());
            list.push(ferrolb_api::status::Announcement {
                ip: *ip,
                services: b.services.clone(),
                mode: ferrolb_api::status::AnnouncementMode::Bgp,
                interfaces: Vec::new(),
                peers: b.peers.keys().cloned().collect(),
                since: started,
            });
        }
    }
    *since = next;
    shared.state().bgp_announcements = list;
}

/// Copies the sessions' states into the status API and the metrics.
fn refresh_bgp_status(bgp: &PeerManager, shared: &Shared) {
    let status = bgp.status();
    let m = &shared.metrics;
    for p in &status {
        let labels = crate::metrics::PeerLabels {
            peer: p.name.clone(),
        };
        m.bgp_session_up
            .get_or_create(&labels)
            .set(i64::from(p.state == "Established"));
        m.bgp_prefixes_advertised
            .get_or_create(&labels)
            .set(i64::try_from(p.prefixes_advertised).unwrap_or(i64::MAX));
        if let Some(bfd) = &p.bfd {
            m.bfd_session_up
                .get_or_create(&labels)
                .set(i64::from(bfd.state == "Up"));
        }
    }
    m.observe_bgp(&bgp.counters());
    m.observe_bfd(&bgp.bfd_counters());
    shared.state().bgp_peers = status;
}

/// Counts owner changes and records `nodeAssigned` on each Service of an IP this node newly
/// owns (each speaker reports only its own announcements).
async fn record_owner_changes(
    desired: &Desired,
    owners: &mut BTreeMap<IpAddr, Option<String>>,
    me: &str,
    stores: &SpeakerStores,
    recorder: &Recorder,
    metrics: &Metrics,
) {
    let mut next = BTreeMap::new();
    for o in &desired.l2_owners {
        let before = owners.get(&o.ip);
        if before.is_some_and(|b| *b != o.owner) {
            metrics.election_changes.inc();
        }
        let newly_mine =
            o.owner.as_deref() == Some(me) && before.is_none_or(|b| b.as_deref() != Some(me));
        if newly_mine {
            for svc in &o.services {
                let Some((ns, name)) = svc.split_once('/') else {
                    continue;
                };
                let Some(obj) = stores.service(ns, name) else {
                    continue;
                };
                let reference: ObjectReference = obj.object_ref(&());
                let ev = Event {
                    type_: EventType::Normal,
                    reason: ferrolb_api::events::NODE_ASSIGNED.to_string(),
                    note: Some(format!(
                        "announcing {} from node {me} with protocol layer2",
                        o.ip
                    )),
                    action: "Announce".to_string(),
                    secondary: None,
                };
                if let Err(e) = recorder.publish(&ev, &reference).await {
                    tracing::warn!(error = %e, service = %svc, "recording nodeAssigned failed");
                }
            }
        }
        next.insert(o.ip, o.owner.clone());
    }
    *owners = next;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_lease_ends_before_the_successor_takes_over() {
        let h = HeartbeatTimers::default();
        let lease = kernel_lease(Some(&h));
        assert!(lease < h.dead_after(), "{lease:?}");
        assert_eq!(lease, Duration::from_millis(15));
        assert_eq!(kernel_lease(None), KERNEL_LEASE);
        // Slow heartbeats never lengthen it beyond the default.
        let slow = HeartbeatTimers {
            interval: Duration::from_millis(100),
            misses: 5,
            ..h
        };
        assert_eq!(kernel_lease(Some(&slow)), KERNEL_LEASE);
    }
}
