//! Speaker-to-speaker membership: which speakers are alive, learnt in well under a second.
//!
//! The Node `Ready` condition takes the kubelet's `node-monitor-grace-period` (40 s by default)
//! to turn false, far too slow for layer 2 failover. Speakers therefore gossip among themselves
//! with SWIM ([`foca`]) over UDP: each member probes a random other member every probe period,
//! asks others to probe it indirectly when the direct probe gets no answer within the probe
//! RTT, suspects it when neither works, and declares it down when it does not refute the
//! suspicion in time. The alive set feeds the layer 2 election
//! ([`ferrolb_speaker_core::index::ClusterIndex::set_members_alive`]).
//!
//! # Identity and authentication
//!
//! A member is identified by its node name and gossip address ([`NodeId`]), plus a start-time
//! stamp that lets a restarted speaker (or one wrongly declared down) rejoin at once with a
//! newer identity instead of waiting for the cluster to forget the old one. Every datagram is
//! authenticated with HMAC-SHA256 and a key shared through a Secret ([`auth`]); datagrams that
//! fail verification are dropped and counted, so a host without the key is never admitted.
//!
//! # Timers ([`GossipTimers::default`])
//!
//! | setting | value | why |
//! | --- | --- | --- |
//! | probe period | 50 ms | how often each member probes one other member |
//! | probe RTT | 20 ms | a LAN answers in well under 1 ms; the rest leaves room for indirect probes |
//! | indirect probes | 3 | a lost datagram alone does not raise suspicion |
//! | suspect → down | 150 ms | time for a suspected member to refute (it hears of it by gossip within ~25 ms) |
//! | gossip | every 25 ms to 3 members, only while there is news | refutations and deaths spread in tens of ms |
//! | announce to down members | every 1 s | partitions heal without waiting for the cluster to forget |
//!
//! A dead speaker is probed within about one probe period (foca walks the members in a
//! shuffled round-robin, and in a small cluster several members probe it), its probe fails at
//! the end of that period, and 150 ms later it is down; the member that declares it down
//! gossips the news at once rather than at its next gossip tick. Expected detection is about
//! 0.25 s, worst case about 0.3 s (`speaker/tests/membership.rs` measures it on loopback).
//!
//! # Heartbeats: the fast path, with the gossip as the judge
//!
//! Layer 2 failover time is detection time, and VRRP at its fastest (10 ms adverts) detects a
//! dead master in about 35 ms — well below what SWIM can do without false positives. So the
//! membership also carries owner → successor heartbeats ([`heartbeat`]): each speaker asks
//! the owners of the addresses it would take over next for a beat every 5 ms and, when one
//! falls silent for 20 ms, presumes it down in the alive set it publishes. Only that
//! successor acts on the presumption (it is the one the election picks once the owner is
//! gone), so no other speaker's view changes. The gossip stays the source of truth: it either
//! confirms the death (the presumption becomes moot) or, if it still sees the owner alive a
//! second later, the presumption is revoked and the owner asked to announce again; a beat
//! heard again revokes it at once. A heartbeat lost alone never fails over (four in a row
//! must be), and the indirect probes and refutable suspicion below still guard the shared
//! view that every other decision rests on.
//!
//! The heartbeats' trade-off: a speaker whose membership thread cannot beat for 20 ms
//! (a stopped or starved process) has its addresses taken over by their successors until it
//! beats again; the kernel responder's lease (15 ms, `layer2/announcer.rs`) makes such a
//! node go quiet before that, so the address does not answer from two MACs. Four measures
//! keep a busy node from looking dead: the thread runs at nice −10
//! (`thread_priority.rs`); before any timer fires it handles every datagram already
//! queued on its socket; a timer that fires more than one interval late (the whole host
//! stalled, the owners' beats late with it) gives the owners one more interval instead of
//! presuming — its own time off the CPU is not read as the others' silence; and when
//! several owners fall silent within one interval of each other, the heartbeats presume none
//! of them and leave the verdict to the gossip (a hiccup on this side is far likelier than
//! two hosts dying in the same milliseconds; a real double failure then takes the gossip's
//! 0.25 s). The metrics
//! `ferrolb_speaker_heartbeat_presumed_down_total` and `…_revoked_total` count these events;
//! on nodes where they are frequent, raise `--heartbeat-interval` / `--heartbeat-misses`.
//!
//! The gossip's trade-off: a speaker that cannot answer for about 200 ms (50 ms to fail the direct
//! and indirect probes, 150 ms not to refute: CPU starvation under a tight CFS quota, a burst of
//! packet loss) is declared down and its layer 2 IPs fail over. It notices (foca tells a down
//! member so), rejoins with a renewed identity within one probe period, and the election moves the
//! IPs back: a false positive costs two short failovers, not an outage. To keep the speaker's own
//! work (watches, index rebuilds, BGP) from delaying the gossip, the membership runs on its own
//! thread with its own event loop. Measured false "down" declarations: none (no membership change
//! at all) in 10 minutes of an idle three-node lab (`ferrolb-e2e lab --keep`) while a release build
//! of the speaker, two failover benchmarks, clippy and test builds ran on the same 2-core machine
//! (load average 0.1–1.8), November 2026. The gossip's traffic is about 40 datagrams per second per
//! speaker whatever the cluster size, each well under the MTU; the heartbeats add 200 datagrams of
//! about 60 bytes per second for each (owner, successor) pair — at most one per other speaker, and
//! none on a node that announces nothing in layer 2. Slower timers can be configured for noisy
//! networks (`ferrolb-speaker run --gossip-probe-period … --gossip-suspect-timeout …`).
//!
//! # Carrier reports
//!
//! The heartbeat channel also carries each speaker's report of the interfaces it can announce
//! on and their carrier ([`Message::Links`], [`Membership::set_links`]): sent to every member
//! when it changes, to all again when a member joins, and every second; kept per node when it
//! comes from that node's own gossip address and is newer (boot stamp, sequence number); and
//! published with ours as [`Membership::links`]. The layer 2 election passes over a node
//! without carrier on the interfaces an advertisement selects
//! (`ferrolb_speaker_core::layer2::carrier`), so the membership may run over another network
//! than the announcements. Speakers of earlier versions drop the message as an unknown type.
//!
//! # Network partitions
//!
//! When the speakers are split into groups that cannot reach each other, each side declares
//! the other side down and elects owners among its own alive members. An IP can then be
//! answered from both sides of the partition. That is safe: a partition that separates the
//! speakers also separates their layer 2 segments, so no client can hear both answers (if a
//! client could reach both sides on one segment, so could the speakers' gossip). When the
//! partition heals, members announce themselves to the ones they consider down, foca's
//! refutation (renewed identities, higher incarnations) brings everyone back alive, every
//! speaker computes the same election over the same alive set again, and the losers stop
//! answering while the winner sends gratuitous ARP / unsolicited NA so caches converge.

use bytes::Bytes;
use ferrolb_api::status::{Member as ViewMember, MembershipView};
use ferrolb_speaker_core::layer2::carrier::LinkReport;
use ferrolb_speaker_core::membership::auth::{self, AuthError, Authenticator, Channel};
use ferrolb_speaker_core::membership::heartbeat::{
    self, HeartbeatTimers, LinksReport, Message, Outbox, Watchdog,
};
use ferrolb_speaker_core::membership::restart_hold::RestartHolds;
use foca::{AccumulatingRuntime, Foca, Identity, OwnedNotification, PostcardCodec, State, Timer};
use rand_foca::rngs::StdRng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroUsize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use tokio::net::UdpSocket;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

/// Largest foca payload: leaves room for the authentication header inside a 1400-byte
/// datagram, below any Ethernet MTU even with tunnels.
const MAX_PAYLOAD: usize = 1400 - auth::OVERHEAD;

/// A member's identity: node name, gossip address, and a stamp that orders incarnations of the
/// same address (start time in milliseconds, incremented on every rejoin).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId {
    /// Kubernetes node name.
    pub node: String,
    /// Gossip address (node IP and port).
    pub addr: SocketAddr,
    /// Orders identities with the same address; larger wins.
    pub bump: u64,
}

impl Identity for NodeId {
    type Addr = SocketAddr;

    /// Rejoining after being declared down (a false suspicion, a healed partition) needs a
    /// new identity that wins over the old one.
    fn renew(&self) -> Option<Self> {
        Some(NodeId {
            node: self.node.clone(),
            addr: self.addr,
            bump: self.bump.wrapping_add(1),
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.bump > adversary.bump
    }
}

/// The SWIM timers; see the module documentation for the values and the trade-off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GossipTimers {
    /// How often a member probes another.
    pub probe_period: Duration,
    /// How long a direct probe may take before indirect probes are sent.
    pub probe_rtt: Duration,
    /// How long a suspected member has to refute before it is declared down.
    pub suspect_to_down: Duration,
    /// How often updates are gossiped to a few members beyond probe piggybacking.
    pub gossip_period: Duration,
    /// How often members considered down are contacted (partition healing).
    pub announce_to_down_period: Duration,
    /// How often seeds that are not alive members are announced to (joining, healing).
    pub seed_announce_period: Duration,
}

impl Default for GossipTimers {
    fn default() -> Self {
        GossipTimers {
            probe_period: Duration::from_millis(50),
            probe_rtt: Duration::from_millis(20),
            suspect_to_down: Duration::from_millis(150),
            // Gossip rounds only happen while there are updates to spread, so a short period
            // costs nothing in steady state.
            gossip_period: Duration::from_millis(25),
            announce_to_down_period: Duration::from_secs(1),
            seed_announce_period: Duration::from_millis(500),
        }
    }
}

/// Errors of the membership.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// The shared key is empty.
    #[error("the membership key is empty; set it from the Secret")]
    EmptyKey,
    /// The timers are inconsistent.
    #[error("invalid gossip timers: {0}")]
    Timers(&'static str),
    /// The advertised address is unspecified (0.0.0.0 / ::): peers could not reach it.
    #[error("the advertised gossip address {0} is unspecified; give the node IP")]
    UnspecifiedAddress(SocketAddr),
    /// The UDP socket could not be bound.
    #[error("binding the gossip socket on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The membership's thread or its event loop could not be started.
    #[error("starting the membership thread: {0}")]
    Thread(std::io::Error),
}

/// The foca configuration for `timers`. `foca` asks for: probe RTT < probe period, all
/// durations non-zero.
pub fn foca_config(timers: &GossipTimers) -> Result<foca::Config, MembershipError> {
    if timers.probe_rtt.is_zero() || timers.probe_period.is_zero() {
        return Err(MembershipError::Timers(
            "probe period and RTT must be positive",
        ));
    }
    if timers.probe_rtt >= timers.probe_period {
        return Err(MembershipError::Timers(
            "probe RTT must be below the probe period",
        ));
    }
    if timers.suspect_to_down.is_zero()
        || timers.gossip_period.is_zero()
        || timers.announce_to_down_period.is_zero()
        || timers.seed_announce_period.is_zero()
    {
        return Err(MembershipError::Timers("durations must be positive"));
    }
    let three = NonZeroUsize::MIN.saturating_add(2);
    Ok(foca::Config {
        probe_period: timers.probe_period,
        probe_rtt: timers.probe_rtt,
        num_indirect_probes: three,
        // Each update rides on this many messages; enough for clusters of hundreds of nodes
        // (memberlist uses 4 × log10(n + 1)).
        max_transmissions: NonZeroU8::new(12).unwrap_or(NonZeroU8::MIN),
        suspect_to_down_after: timers.suspect_to_down,
        // Renewed identities replace old ones by address, so remembering down members costs
        // one entry per address; a day is plenty to refuse a stale identity.
        remove_down_after: Some(Duration::from_secs(24 * 3600)),
        max_packet_size: NonZeroUsize::new(MAX_PAYLOAD).unwrap_or(NonZeroUsize::MIN),
        notify_down_members: true,
        periodic_announce: Some(foca::PeriodicParams {
            frequency: Duration::from_secs(10),
            num_members: NonZeroUsize::MIN,
        }),
        periodic_announce_to_down_members: Some(foca::PeriodicParams {
            frequency: timers.announce_to_down_period,
            num_members: three,
        }),
        periodic_gossip: Some(foca::PeriodicParams {
            frequency: timers.gossip_period,
            num_members: three,
        }),
    })
}

/// How to run the membership.
#[derive(Clone)]
pub struct MembershipConfig {
    /// This node's name.
    pub node_name: String,
    /// Where to bind the UDP socket (port 0 picks one, for tests).
    pub bind: SocketAddr,
    /// The address peers reach us at; defaults to the bound address, which must then be
    /// specific.
    pub advertise: Option<SocketAddr>,
    /// Other speakers' gossip addresses (node IPs from Node objects, our port).
    pub seeds: Vec<SocketAddr>,
    /// The shared key from the Secret.
    pub key: Vec<u8>,
    /// SWIM timers.
    pub timers: GossipTimers,
    /// Owner → successor heartbeats ([`heartbeat`]); `None` leaves failure detection to the
    /// gossip alone.
    pub heartbeat: Option<HeartbeatTimers>,
}

impl std::fmt::Debug for MembershipConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MembershipConfig")
            .field("node_name", &self.node_name)
            .field("bind", &self.bind)
            .field("advertise", &self.advertise)
            .field("seeds", &self.seeds)
            .field("key", &"<redacted>")
            .field("timers", &self.timers)
            .field("heartbeat", &self.heartbeat)
            .finish()
    }
}

/// Counters of the membership, for metrics. Monotonic.
#[derive(Debug, Default)]
pub struct MembershipCounters {
    /// Datagrams received that passed authentication.
    pub datagrams_received: AtomicU64,
    /// Datagrams sent.
    pub datagrams_sent: AtomicU64,
    /// Datagrams dropped because authentication failed (wrong key, tampering, not ours).
    pub auth_failures: AtomicU64,
    /// Authenticated datagrams foca rejected (malformed, from ourselves, too big).
    pub protocol_errors: AtomicU64,
    /// Speakers presumed down for missing heartbeats (before the gossip confirmed).
    pub heartbeat_presumed_down: AtomicU64,
    /// Presumptions revoked: the speaker beat again, or the gossip did not confirm in time.
    pub heartbeat_revoked: AtomicU64,
}

/// A snapshot of [`MembershipCounters`] for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MembershipCounterValues {
    /// See [`MembershipCounters::auth_failures`].
    pub auth_failures: u64,
    /// See [`MembershipCounters::heartbeat_presumed_down`].
    pub heartbeat_presumed_down: u64,
    /// See [`MembershipCounters::heartbeat_revoked`].
    pub heartbeat_revoked: u64,
}

impl MembershipCounters {
    /// The current values.
    pub fn values(&self) -> MembershipCounterValues {
        MembershipCounterValues {
            auth_failures: self.auth_failures.load(Ordering::Relaxed),
            heartbeat_presumed_down: self.heartbeat_presumed_down.load(Ordering::Relaxed),
            heartbeat_revoked: self.heartbeat_revoked.load(Ordering::Relaxed),
        }
    }
}

enum Command {
    Leave(oneshot::Sender<()>),
    Restarting(Duration, oneshot::Sender<()>),
}

/// The running membership. Dropping it stops gossiping at once, without telling anyone (as a
/// crash would); [`Membership::leave`] tells the cluster first.
///
/// The gossip runs on a thread of its own with a single-threaded tokio runtime, not as a task
/// of the caller's runtime: with the short timers above, a probe answered late is a step
/// towards a false "down", and the speaker's own work (a burst of watch events, an index
/// rebuild with thousands of Services, BGP) must not be able to delay it.
pub struct Membership {
    identity: NodeId,
    alive: watch::Receiver<BTreeSet<String>>,
    view: watch::Receiver<MembershipView>,
    seeds: watch::Sender<Vec<SocketAddr>>,
    watched: watch::Sender<BTreeSet<String>>,
    reclaims: watch::Receiver<u64>,
    own_links: watch::Sender<Option<Vec<LinkReport>>>,
    links: watch::Receiver<BTreeMap<String, Vec<LinkReport>>>,
    commands: tokio::sync::mpsc::Sender<Command>,
    counters: Arc<MembershipCounters>,
    /// Dropping it stops the gossip thread (its receiver resolves).
    _stop: oneshot::Sender<()>,
}

impl Membership {
    /// Binds the socket and starts gossiping, announcing to the seeds.
    pub async fn start(config: MembershipConfig) -> Result<Self, MembershipError> {
        let auth = Authenticator::new(&config.key).ok_or(MembershipError::EmptyKey)?;
        let foca_config = foca_config(&config.timers)?;
        if let Some(t) = &config.heartbeat {
            t.validate().map_err(MembershipError::Timers)?;
        }
        let bind_error = |source| MembershipError::Bind {
            addr: config.bind,
            source,
        };
        let std_socket = std::net::UdpSocket::bind(config.bind).map_err(bind_error)?;
        std_socket.set_nonblocking(true).map_err(bind_error)?;
        let bound = std_socket.local_addr().map_err(bind_error)?;
        let advertise = config.advertise.unwrap_or(bound);
        if advertise.ip().is_unspecified() {
            return Err(MembershipError::UnspecifiedAddress(advertise));
        }
        let bump = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let identity = NodeId {
            node: config.node_name.clone(),
            addr: advertise,
            bump,
        };
        let rng: StdRng = rand_foca::make_rng();
        let foca = Foca::new(identity.clone(), foca_config, rng, PostcardCodec);

        let me = BTreeSet::from([config.node_name.clone()]);
        let (alive_tx, alive) = watch::channel(me);
        let (view_tx, view) = watch::channel(MembershipView {
            enabled: true,
            members: vec![ViewMember {
                node: config.node_name.clone(),
                address: advertise.to_string(),
                alive: true,
            }],
        });
        let (seeds, seeds_rx) = watch::channel(config.seeds.clone());
        let (watched, watched_rx) = watch::channel(BTreeSet::new());
        let (reclaims_tx, reclaims) = watch::channel(0u64);
        let (own_links, own_links_rx) = watch::channel(None);
        let (links_tx, links) = watch::channel(BTreeMap::new());
        let watchdog = config
            .heartbeat
            .clone()
            .map(|t| Watchdog::new(config.node_name.clone(), bump, t));
        let (commands, commands_rx) = tokio::sync::mpsc::channel(4);
        let counters = Arc::new(MembershipCounters::default());
        let (stop, stop_rx) = oneshot::channel();
        let (started_tx, started) = oneshot::channel();
        let (seed_period, worker_counters) = (config.timers.seed_announce_period, counters.clone());
        // The runtime and the socket's registration are made on the gossip thread itself: a
        // runtime must not be dropped inside the caller's async context if anything fails.
        let gossip = move || {
            if let Err(error) = crate::thread_priority::favour_current_thread() {
                tracing::warn!(%error, "membership: the gossip thread keeps the default priority (raising it needs CAP_SYS_NICE); on a busy node late heartbeats may then move addresses needlessly");
            }
            let setup = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .and_then(|rt| {
                    let socket = {
                        let _context = rt.enter();
                        UdpSocket::from_std(std_socket)?
                    };
                    Ok((rt, socket))
                });
            let (rt, socket) = match setup {
                Ok(ok) => ok,
                Err(error) => {
                    let _ = started_tx.send(Err(error));
                    return;
                }
            };
            let worker = Worker {
                foca,
                runtime: AccumulatingRuntime::new(),
                socket,
                auth,
                timers: BTreeMap::new(),
                timer_seq: 0,
                seeds: seeds_rx,
                seed_period,
                alive_tx,
                view_tx,
                counters: worker_counters,
                watchdog,
                watched: watched_rx,
                reclaims: reclaims_tx,
                member_addrs: BTreeSet::new(),
                holds: RestartHolds::new(),
                boot: bump,
                own_links: own_links_rx,
                own_links_open: true,
                links_seq: 0,
                peer_links: BTreeMap::new(),
                links_tx,
            };
            let _ = started_tx.send(Ok(()));
            rt.block_on(worker.run(commands_rx, stop_rx));
        };
        std::thread::Builder::new()
            .name("membership".into())
            .spawn(gossip)
            .map_err(MembershipError::Thread)?;
        match started.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(MembershipError::Thread(error)),
            Err(_gone) => {
                return Err(MembershipError::Thread(std::io::Error::other(
                    "the membership thread exited during start",
                )));
            }
        }
        Ok(Membership {
            identity,
            alive,
            view,
            seeds,
            watched,
            reclaims,
            own_links,
            links,
            commands,
            counters,
            _stop: stop,
        })
    }

    /// Our identity.
    pub fn identity(&self) -> &NodeId {
        &self.identity
    }

    /// The names of the nodes whose speakers are alive (always including ours), updated on
    /// every change.
    pub fn alive(&self) -> watch::Receiver<BTreeSet<String>> {
        self.alive.clone()
    }

    /// The membership as the status API shows it.
    pub fn view(&self) -> MembershipView {
        self.view.borrow().clone()
    }

    /// Replaces the seed addresses (e.g. when Nodes come and go).
    pub fn set_seeds(&self, seeds: Vec<SocketAddr>) {
        self.seeds.send_if_modified(|old| {
            let changed = *old != seeds;
            *old = seeds;
            changed
        });
    }

    /// Replaces the speakers this one is successor to (whose heartbeats it watches).
    pub fn set_watched(&self, nodes: BTreeSet<String>) {
        self.watched.send_if_modified(|old| {
            let changed = *old != nodes;
            *old = nodes;
            changed
        });
    }

    /// Replaces this node's report of the interfaces it can announce on, sent to every member
    /// at once when it changes and every [`heartbeat::LINKS_REFRESH`]. Nothing is sent before
    /// the first report (the others would take "no interfaces" for "no carrier").
    pub fn set_links(&self, links: Vec<LinkReport>) {
        self.own_links.send_if_modified(|old| {
            let changed = old.as_ref() != Some(&links);
            if changed {
                *old = Some(links);
            }
            changed
        });
    }

    /// Every node's latest report of its announcing interfaces (ours included, once set), by
    /// node name; nodes whose speakers sent none are absent.
    pub fn links(&self) -> watch::Receiver<BTreeMap<String, Vec<LinkReport>>> {
        self.links.clone()
    }

    /// Changes each time a successor gives our addresses back after a revoked presumption, and
    /// each time this speaker rejoins after being declared down: announce them again so caches
    /// point back here.
    pub fn reclaims(&self) -> watch::Receiver<u64> {
        self.reclaims.clone()
    }

    /// Datagrams dropped for failed authentication so far.
    pub fn auth_failures(&self) -> u64 {
        self.counters.auth_failures.load(Ordering::Relaxed)
    }

    /// All counters.
    pub fn counters(&self) -> &MembershipCounters {
        &self.counters
    }

    /// Stops for a restart in place: tells every member to hold this node's addresses for
    /// `hold` ([`Message::Restarting`], [`RestartHolds`]) and stops without leaving; the next
    /// process joins with a newer identity, which ends the hold.
    pub async fn restart(self, hold: Duration) {
        let (tx, rx) = oneshot::channel();
        if self
            .commands
            .send(Command::Restarting(hold, tx))
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(Duration::from_secs(1), rx).await;
        }
    }

    /// Leaves the cluster gracefully (others mark us down at once instead of after the
    /// suspicion timeout) and stops.
    pub async fn leave(self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Leave(tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), rx).await;
        }
    }
}

struct Worker {
    foca: Foca<NodeId, PostcardCodec, StdRng, foca::NoCustomBroadcast>,
    runtime: AccumulatingRuntime<NodeId>,
    socket: UdpSocket,
    auth: Authenticator,
    /// Timers by (due, sequence): foca needs them delivered in order.
    timers: BTreeMap<(Instant, u64), Timer<NodeId>>,
    timer_seq: u64,
    seeds: watch::Receiver<Vec<SocketAddr>>,
    seed_period: Duration,
    alive_tx: watch::Sender<BTreeSet<String>>,
    view_tx: watch::Sender<MembershipView>,
    counters: Arc<MembershipCounters>,
    watchdog: Option<Watchdog>,
    watched: watch::Receiver<BTreeSet<String>>,
    reclaims: watch::Sender<u64>,
    /// Gossip addresses of the active members: heartbeat datagrams from anywhere else are
    /// dropped, so a replayed request for beats with a forged source cannot turn an owner
    /// into a reflector (one datagram in, hundreds of beats out).
    member_addrs: BTreeSet<SocketAddr>,
    /// Speakers restarting in place, counted alive until they rejoin or their hold ends.
    holds: RestartHolds,
    /// This process's boot stamp, carried by its links reports.
    boot: u64,
    /// This node's links report, from [`Membership::set_links`].
    own_links: watch::Receiver<Option<Vec<LinkReport>>>,
    /// Whether [`Membership`] (the sender of `own_links`) is still there.
    own_links_open: bool,
    /// Sequence number of this process's links reports.
    links_seq: u32,
    /// The latest links report of every other node.
    peer_links: BTreeMap<String, LinksReport>,
    links_tx: watch::Sender<BTreeMap<String, Vec<LinkReport>>>,
}

impl Worker {
    async fn run(
        mut self,
        mut commands: tokio::sync::mpsc::Receiver<Command>,
        mut stop: oneshot::Receiver<()>,
    ) {
        let mut buf = vec![0u8; 65_536];
        let mut seed_tick = tokio::time::interval(self.seed_period);
        seed_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut links_tick = tokio::time::interval(heartbeat::LINKS_REFRESH);
        links_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next_timer = self.timers.keys().next().map(|(at, _)| *at);
            let next_heartbeat = self
                .watchdog
                .as_ref()
                .and_then(Watchdog::next_deadline)
                .map(Instant::from_std);
            let next_hold_expiry = self.holds.next_expiry().map(Instant::from_std);
            let result = tokio::select! {
                // The handle was dropped: stop without a word, as a crash would.
                _ = &mut stop => return,
                got = self.socket.recv_from(&mut buf) => match got {
                    Ok((n, from)) => {
                        let datagram = buf.get(..n).unwrap_or_default();
                        self.on_datagram(from, datagram).await
                    }
                    Err(error) => {
                        // ICMP port unreachable from a dead peer surfaces here on Linux;
                        // nothing to do but carry on.
                        tracing::debug!(%error, "gossip receive error");
                        Ok(())
                    }
                },
                () = sleep_until_opt(next_timer) => {
                    self.receive_pending(&mut buf).await;
                    let now = Instant::now();
                    let mut result = Ok(());
                    while let Some(entry) = self.timers.first_entry() {
                        if entry.key().0 > now {
                            break;
                        }
                        let timer = entry.remove();
                        result = result.and(self.foca.handle_timer(timer, &mut self.runtime));
                    }
                    result
                }
                () = sleep_until_opt(next_heartbeat) => {
                    self.receive_pending(&mut buf).await;
                    self.heartbeat_tick(next_heartbeat).await;
                    Ok(())
                }
                () = sleep_until_opt(next_hold_expiry) => {
                    for node in self.holds.expire(std::time::Instant::now()) {
                        tracing::warn!(%node, "a speaker restarting in place did not come back within its hold: its addresses fail over");
                    }
                    self.publish();
                    Ok(())
                }
                changed = self.watched.changed() => {
                    if changed.is_ok() {
                        self.update_watched().await;
                    }
                    Ok(())
                }
                _ = seed_tick.tick() => self.announce_to_seeds(),
                changed = self.own_links.changed(), if self.own_links_open => {
                    if changed.is_ok() {
                        // Carrier changed here: the others' elections wait for this news.
                        self.links_seq = self.links_seq.wrapping_add(1);
                        self.send_links().await;
                        self.publish_links();
                    } else {
                        self.own_links_open = false;
                    }
                    Ok(())
                }
                _ = links_tick.tick() => {
                    self.send_links().await;
                    Ok(())
                }
                changed = self.seeds.changed() => {
                    if changed.is_ok() {
                        self.announce_to_seeds()
                    } else {
                        Ok(())
                    }
                }
                command = commands.recv() => match command {
                    Some(Command::Leave(done)) => {
                        let result = self.foca.leave_cluster(&mut self.runtime);
                        if let Err(error) = result {
                            tracing::debug!(%error, "leaving the cluster");
                        }
                        self.drain().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(Command::Restarting(hold, done)) => {
                        self.announce_restart(hold).await;
                        let _ = done.send(());
                        return;
                    }
                    None => Ok(()),
                },
            };
            if let Err(error) = result {
                self.counters
                    .protocol_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%error, "gossip protocol error");
            }
            self.drain().await;
        }
    }

    /// One received datagram, of either channel.
    async fn on_datagram(&mut self, from: SocketAddr, datagram: &[u8]) -> Result<(), foca::Error> {
        match self.auth.open_any(datagram) {
            Ok((Channel::Gossip, payload)) => {
                self.counters
                    .datagrams_received
                    .fetch_add(1, Ordering::Relaxed);
                self.foca.handle_data(payload, &mut self.runtime)
            }
            Ok((Channel::Heartbeat, payload)) => {
                self.counters
                    .datagrams_received
                    .fetch_add(1, Ordering::Relaxed);
                self.heartbeat_datagram(from, payload).await;
                Ok(())
            }
            Err(error) => {
                self.count_auth_failure(error);
                Ok(())
            }
        }
    }

    /// Handles every datagram already queued on the socket. Called before timers fire: when
    /// this thread was kept off the CPU, the beats and probe answers that arrived meanwhile
    /// wait in the socket, and a timer handled before them would take our own stall for the
    /// others' silence.
    async fn receive_pending(&mut self, buf: &mut [u8]) {
        loop {
            let (n, from) = match self.socket.try_recv_from(buf) {
                Ok(got) => got,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(error) => {
                    tracing::debug!(%error, "gossip receive error");
                    continue;
                }
            };
            let datagram = buf.get(..n).unwrap_or_default();
            if let Err(error) = self.on_datagram(from, datagram).await {
                self.counters
                    .protocol_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%error, "gossip datagram rejected");
            }
        }
    }

    /// Tells every member this speaker restarts in place and they should hold its addresses
    /// for `hold`: twice, a lost datagram costing a needless failover.
    async fn announce_restart(&mut self, hold: Duration) {
        let me = self.foca.identity().node.clone();
        let hold_ms = u32::try_from(hold.as_millis()).unwrap_or(u32::MAX);
        let datagram = self.auth.seal_on(
            Channel::Heartbeat,
            &Message::Restarting(me, hold_ms).encode(),
        );
        let members: Vec<SocketAddr> = self.member_addrs.iter().copied().collect();
        for _ in 0..2 {
            for to in &members {
                if let Err(error) = self.socket.send_to(&datagram, to).await {
                    tracing::debug!(%error, %to, "restart notice send failed");
                }
            }
        }
        tracing::info!(
            members = members.len(),
            hold_ms,
            "told the other speakers to hold this node's addresses while it restarts"
        );
    }

    /// A heartbeat datagram: beats, requests for beats, reclaims, restart notices.
    async fn heartbeat_datagram(&mut self, from: SocketAddr, payload: &[u8]) {
        if !self.member_addrs.contains(&from) {
            self.counters
                .protocol_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%from, "dropped heartbeat datagram from an address that is no member's");
            return;
        }
        let message = match Message::decode(payload) {
            Ok(m) => m,
            Err(error) => {
                self.counters
                    .protocol_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%error, %from, "dropped heartbeat datagram");
                return;
            }
        };
        if let Message::Links(report) = message {
            self.links_datagram(from, report);
            return;
        }
        if let Message::Restarting(node, hold_ms) = &message {
            let hold = Duration::from_millis(u64::from(*hold_ms));
            tracing::info!(%node, hold_ms, "a speaker restarts in place: holding its addresses");
            self.holds.hold(node, hold, std::time::Instant::now());
            self.publish();
        }
        let Some(watchdog) = self.watchdog.as_mut() else {
            return;
        };
        let mut out = Outbox::new();
        let effects = watchdog.on_message(from, message, std::time::Instant::now(), &mut out);
        self.heartbeat_effects(effects, out).await;
    }

    /// A member's links report: kept when it is that member's own (sent from its gossip
    /// address) and newer than the one kept.
    fn links_datagram(&mut self, from: SocketAddr, report: LinksReport) {
        let sender_is_node = self
            .foca
            .iter_members()
            .any(|m| m.id().addr == from && m.id().node == report.node);
        if !sender_is_node {
            self.counters
                .protocol_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%from, node = %report.node, "dropped a links report sent for another node");
            return;
        }
        let newer = self
            .peer_links
            .get(&report.node)
            .is_none_or(|old| report.supersedes(old));
        if newer {
            self.peer_links.insert(report.node.clone(), report);
            self.publish_links();
        }
    }

    /// Sends this node's links report to every member (nothing before the first report).
    async fn send_links(&mut self) {
        let Some(links) = self.own_links.borrow().clone() else {
            return;
        };
        let report = LinksReport {
            node: self.foca.identity().node.clone(),
            boot: self.boot,
            seq: self.links_seq,
            links,
        };
        let datagram = self
            .auth
            .seal_on(Channel::Heartbeat, &Message::Links(report).encode());
        for to in &self.member_addrs {
            match self.socket.send_to(&datagram, to).await {
                Ok(_) => {
                    self.counters.datagrams_sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => tracing::debug!(%error, %to, "links report send failed"),
            }
        }
    }

    /// Publishes every node's links report, ours included.
    fn publish_links(&self) {
        let mut all: BTreeMap<String, Vec<LinkReport>> = self
            .peer_links
            .iter()
            .map(|(node, r)| (node.clone(), r.links.clone()))
            .collect();
        if let Some(own) = self.own_links.borrow().clone() {
            all.insert(self.foca.identity().node.clone(), own);
        }
        self.links_tx.send_if_modified(|old| {
            let changed = *old != all;
            *old = all;
            changed
        });
    }

    /// The watchdog's timers; `scheduled` is the deadline the thread slept until (`None` when
    /// called for another reason), to tell the watchdog how late this thread got to run.
    async fn heartbeat_tick(&mut self, scheduled: Option<Instant>) {
        let gossip_alive = self.gossip_alive();
        let Some(watchdog) = self.watchdog.as_mut() else {
            return;
        };
        let now = Instant::now();
        let late = scheduled.map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        let mut out = Outbox::new();
        let effects = watchdog.tick(now.into_std(), late, &gossip_alive, &mut out);
        self.heartbeat_effects(effects, out).await;
    }

    /// Hands the watchdog the gossip addresses of the nodes the speaker wants watched (the
    /// owners it is successor to), as the gossip currently knows them.
    async fn update_watched(&mut self) {
        let wanted = self.watched.borrow_and_update().clone();
        let Some(watchdog) = self.watchdog.as_mut() else {
            return;
        };
        let mut targets: BTreeMap<String, (u64, SocketAddr)> = BTreeMap::new();
        for m in self.foca.iter_members() {
            let id = m.id();
            if !wanted.contains(&id.node) {
                continue;
            }
            // Of several identities of one node (a restart not yet forgotten), the newest.
            let entry = targets.entry(id.node.clone()).or_insert((id.bump, id.addr));
            if id.bump >= entry.0 {
                *entry = (id.bump, id.addr);
            }
        }
        let targets = targets.into_iter().map(|(n, (_, a))| (n, a)).collect();
        let mut out = Outbox::new();
        watchdog.set_watched(targets, std::time::Instant::now(), &mut out);
        self.heartbeat_effects(heartbeat::Effects::default(), out)
            .await;
    }

    async fn heartbeat_effects(&mut self, effects: heartbeat::Effects, out: Outbox) {
        for (to, message) in out {
            let datagram = self.auth.seal_on(Channel::Heartbeat, &message.encode());
            match self.socket.send_to(&datagram, to).await {
                Ok(_) => {
                    self.counters.datagrams_sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => tracing::debug!(%error, %to, "heartbeat send failed"),
            }
        }
        if effects.presumed {
            self.counters
                .heartbeat_presumed_down
                .fetch_add(1, Ordering::Relaxed);
        }
        if effects.revoked {
            self.counters
                .heartbeat_revoked
                .fetch_add(1, Ordering::Relaxed);
        }
        if effects.alive_changed {
            self.publish();
        }
        if effects.reclaim {
            self.reclaims.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Nodes the gossip itself sees alive, ourselves included.
    fn gossip_alive(&self) -> BTreeSet<String> {
        let mut alive = BTreeSet::from([self.foca.identity().node.clone()]);
        alive.extend(
            self.foca
                .iter_membership_state()
                .filter(|m| m.state() != State::Down)
                .map(|m| m.id().node.clone()),
        );
        alive
    }

    fn count_auth_failure(&self, error: AuthError) {
        let n = self.counters.auth_failures.fetch_add(1, Ordering::Relaxed);
        // Log the first and then every 100th: a misconfigured peer sends several per second.
        if n.is_multiple_of(100) {
            tracing::warn!(%error, total = n + 1, "dropped unauthenticated gossip datagram");
        }
    }

    /// Announces to every seed whose address is not an active member's (joining at start,
    /// re-joining after a partition the cluster has forgotten).
    fn announce_to_seeds(&mut self) -> Result<(), foca::Error> {
        let me = self.foca.identity().addr;
        let active: BTreeSet<SocketAddr> = self.foca.iter_members().map(|m| m.id().addr).collect();
        let seeds: Vec<SocketAddr> = self.seeds.borrow_and_update().clone();
        for seed in seeds {
            if seed == me || active.contains(&seed) {
                continue;
            }
            // foca accepts an Announce addressed to any identity with the right address, so
            // the seed's name and stamp need not be known.
            let dst = NodeId {
                node: String::new(),
                addr: seed,
                bump: 0,
            };
            self.foca.announce(dst, &mut self.runtime)?;
        }
        Ok(())
    }

    /// Sends what foca produced, schedules its timers and publishes membership changes.
    async fn drain(&mut self) {
        while let Some((to, data)) = self.runtime.to_send() {
            self.send(to.addr, &data).await;
        }
        let now = Instant::now();
        while let Some((after, timer)) = self.runtime.to_schedule() {
            self.timer_seq += 1;
            self.timers.insert((now + after, self.timer_seq), timer);
        }
        let mut changed = false;
        let mut news = false;
        let mut joined: Vec<String> = Vec::new();
        while let Some(notification) = self.runtime.to_notify() {
            match &notification {
                OwnedNotification::MemberUp(id) => {
                    tracing::info!(node = %id.node, addr = %id.addr, "member up");
                    news = true;
                    joined.push(id.node.clone());
                }
                OwnedNotification::MemberDown(id) => {
                    tracing::info!(node = %id.node, addr = %id.addr, "member down");
                    news = true;
                }
                OwnedNotification::Defunct => {
                    tracing::warn!("our identity is down (left, or declared down by the cluster)");
                }
                // A member's address now belongs to a newer identity: the speaker restarted
                // (or rejoined after being declared down).
                OwnedNotification::Rename(old, new) => {
                    tracing::info!(node = %new.node, from = old.bump, to = new.bump, "member renewed its identity");
                    news = true;
                    joined.push(new.node.clone());
                }
                OwnedNotification::Rejoin(id) => {
                    tracing::info!(bump = id.bump, "rejoined the cluster with a new identity");
                    // Declared down meanwhile (frozen, cut off): the others took this node's
                    // layer 2 addresses over and clients' caches point at them. Nothing changed
                    // in this node's own view, so nothing would announce the addresses again;
                    // the successors hand them back make-before-break and wait for exactly
                    // that announcement. Announce as after a reclaim.
                    self.reclaims.send_modify(|n| *n = n.wrapping_add(1));
                }
                other => tracing::debug!(notification = ?other, "membership"),
            }
            changed = true;
        }
        // A speaker presumed down that joins with a new identity (or takes over its address
        // with one) has restarted: it will claim its addresses at once, so the successor must
        // let go now, not at its next beat.
        let anyone_joined = !joined.is_empty();
        for node in &joined {
            if self.holds.rejoined(node) {
                tracing::info!(%node, "a speaker restarting in place is back");
            }
        }
        if let Some(watchdog) = self.watchdog.as_mut() {
            for node in joined {
                if watchdog.forget_presumption(&node) {
                    self.counters
                        .heartbeat_revoked
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%node, "a speaker presumed down rejoined the gossip after a restart");
                }
            }
        }
        if changed {
            self.member_addrs = self.foca.iter_members().map(|m| m.id().addr).collect();
            // Presumptions the gossip now confirms end here, and watched owners that moved
            // (restarted with a new identity) are resolved again.
            self.heartbeat_tick(None).await;
            self.update_watched().await;
            self.publish();
        }
        // A member that just joined (a new speaker, a restart) learns our carrier at once.
        if anyone_joined {
            self.send_links().await;
        }
        // A member we just saw go down (or come back) is the news layer 2 failover waits for
        // on every other speaker, the new owner among them: spread it now rather than at the
        // next gossip tick or probe. Not recursive: gossiping produces datagrams, never
        // notifications.
        if news {
            match self.foca.gossip(&mut self.runtime) {
                Ok(()) => {
                    while let Some((to, data)) = self.runtime.to_send() {
                        self.send(to.addr, &data).await;
                    }
                }
                Err(error) => tracing::debug!(%error, "gossiping a membership change"),
            }
        }
    }

    async fn send(&self, to: SocketAddr, data: &Bytes) {
        let datagram = self.auth.seal(data);
        match self.socket.send_to(&datagram, to).await {
            Ok(_) => {
                self.counters.datagrams_sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => tracing::debug!(%error, %to, "gossip send failed"),
        }
    }

    fn publish(&self) {
        let me = self.foca.identity();
        let mut alive = BTreeSet::from([me.node.clone()]);
        let mut members = vec![ViewMember {
            node: me.node.clone(),
            address: me.addr.to_string(),
            alive: true,
        }];
        let presumed: BTreeSet<&str> = self
            .watchdog
            .as_ref()
            .map(|w| w.presumed_down().collect())
            .unwrap_or_default();
        for m in self.foca.iter_membership_state() {
            // A member presumed down for missing heartbeats counts as down here, where the
            // election reads it, until the gossip confirms or the presumption is revoked.
            let is_alive = m.state() != State::Down && !presumed.contains(m.id().node.as_str());
            if is_alive {
                alive.insert(m.id().node.clone());
            }
            members.push(ViewMember {
                node: m.id().node.clone(),
                address: m.id().addr.to_string(),
                alive: is_alive,
            });
        }
        // A speaker restarting in place keeps its addresses until it is back or its hold ends.
        let alive = self.holds.alive_with_holds(&alive);
        for m in &mut members {
            m.alive |= alive.contains(&m.node);
        }
        members.sort_by(|a, b| (&a.node, &a.address).cmp(&(&b.node, &b.address)));
        // The view first: whoever reacts to the alive set finds the view already up to date.
        self.view_tx.send_if_modified(|old| {
            let changed = old.members != members;
            old.members = members;
            changed
        });
        self.alive_tx.send_if_modified(|old| {
            let changed = *old != alive;
            if changed {
                tracing::info!(alive = ?alive, "alive speakers changed");
                *old = alive;
            }
            changed
        });
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_timers_detect_in_well_under_a_second() {
        let t = GossipTimers::default();
        let c = foca_config(&t).expect("valid");
        assert!(c.probe_rtt < c.probe_period);
        assert_eq!(c.probe_period, Duration::from_millis(50));
        assert_eq!(c.probe_rtt, Duration::from_millis(20));
        // Worst case in a small cluster: wait for the next probe of the dead member (one
        // period), the probe's own period, then the suspicion timeout: the gossip alone must
        // still move an address in well under 300 ms.
        let worst = c.probe_period * 2 + c.suspect_to_down_after;
        assert!(worst <= Duration::from_millis(250), "{worst:?}");
        // A suspected member hears of it by gossip and refutes: the timeout must leave room
        // for several gossip rounds.
        let gossip = c.periodic_gossip.as_ref().map(|g| g.frequency);
        assert!(gossip.is_some_and(|g| g * 4 <= c.suspect_to_down_after));
        assert!(c.notify_down_members);
        assert!(c.periodic_gossip.is_some());
        assert!(c.max_packet_size.get() + auth::OVERHEAD <= 1400);
    }

    #[test]
    fn inconsistent_timers_are_rejected() {
        let mut t = GossipTimers {
            probe_rtt: Duration::from_millis(200),
            ..GossipTimers::default()
        };
        assert!(foca_config(&t).is_err());
        t.probe_rtt = Duration::ZERO;
        assert!(foca_config(&t).is_err());
        t = GossipTimers {
            suspect_to_down: Duration::ZERO,
            ..GossipTimers::default()
        };
        assert!(foca_config(&t).is_err());
    }

    #[test]
    fn renewed_identity_wins() {
        let id = NodeId {
            node: "n1".into(),
            addr: "127.0.0.1:7472".parse().expect("addr"),
            bump: 5,
        };
        let renewed = id.renew().expect("renews");
        assert_eq!((renewed.addr(), &renewed.node), (id.addr(), &id.node));
        assert!(renewed.win_addr_conflict(&id));
        assert!(!id.win_addr_conflict(&renewed));
    }

    #[tokio::test]
    async fn empty_key_and_unspecified_address_are_refused() {
        let config = MembershipConfig {
            node_name: "n1".into(),
            bind: "127.0.0.1:0".parse().expect("addr"),
            advertise: None,
            seeds: vec![],
            key: vec![],
            timers: GossipTimers::default(),
            heartbeat: Some(HeartbeatTimers::default()),
        };
        assert!(matches!(
            Membership::start(config.clone()).await,
            Err(MembershipError::EmptyKey)
        ));
        let config = MembershipConfig {
            key: b"k".to_vec(),
            advertise: Some("0.0.0.0:7472".parse().expect("addr")),
            ..config
        };
        assert!(matches!(
            Membership::start(config).await,
            Err(MembershipError::UnspecifiedAddress(_))
        ));
    }
}
