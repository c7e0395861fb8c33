//! One BGP session: a tokio task per peer that owns the socket and the timers and drives the
//! pure [`fsm`] with what happens on them.
//!
//! - Active only: we connect, never listen (like MetalLB's native mode), so no collision
//!   handling is needed and the speaker opens no port.
//! - The socket is prepared before `connect` ([`super::socket`]): VRF device
//!   (SO_BINDTODEVICE, so the source address and routes come from the VRF), source address,
//!   TTL (1 for single-hop eBGP, 255 for multihop eBGP and iBGP), TCP MD5 (RFC 2385). A VRF
//!   missing on the node keeps the session down, retrying, and is reported in its status.
//! - The Adj-RIB-Out is level-triggered: the manager publishes the whole desired table on a
//!   `watch` channel; on Established the session sends all of it, then only differences
//!   against what it has sent. Prefixes with identical attributes share an UPDATE, and
//!   withdrawals are batched too.
//! - On manual stop the session sends the Cease its cause calls for before closing, so the
//!   router withdraws our routes at once instead of waiting for its hold timer — except when
//!   the speaker restarts in place with graceful restart negotiated: then the router must keep
//!   them (see [`StopCause`]), and the next process announces the Restart State bit in its
//!   first OPEN and End-of-RIB after its table.

use crate::bfd::BfdState;
use crate::bgp::framing::BgpFrameCodec;
use crate::bgp::neighbour;
use crate::bgp::socket::{ConnectError, ConnectOptions, connect};
use ferrolb_api::status::BgpPeerStatus;
use ferrolb_config::PeerAsn;
use ferrolb_runtime::sync::lock;
use ferrolb_speaker_core::bgp::RouteAttributes;
use ferrolb_speaker_core::bgp::codec::notification::code;
use ferrolb_speaker_core::bgp::codec::{
    CodecError, GracefulRestart, Message, Notification, OpenConfig, PeerOpen, UpdateContext,
    build_announcements, build_open, build_withdrawals, end_of_rib,
};
use ferrolb_speaker_core::bgp::codec::{accepts_ipv4_with_ipv6_next_hop, offer_extended_next_hop};
use ferrolb_speaker_core::bgp::fsm::{
    self, Action, Event, Fsm, FsmConfig, Negotiated, State, StopCause, Timer,
};
use ferrolb_speaker_core::bgp::neighbour::next_hops as unnumbered_next_hops;
use ferrolb_speaker_core::bgp::session_params::{offered_families, unnumbered_families};
use futures::{SinkExt, StreamExt};
use ipnet::IpNet;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::codec::Framed;
use tracing::{debug, info, warn};

/// The routes a session must advertise: prefix → attributes.
pub type AdjRibOut = BTreeMap<IpNet, RouteAttributes>;

/// Everything a session needs to know about its peer. `Debug` redacts the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// `namespace/name` of the BGPPeer.
    pub name: String,
    /// The AS we present to this peer (`localASN`, else `myASN`).
    pub local_as: u32,
    /// The peer's AS.
    pub peer_as: PeerAsn,
    /// The peer's address; `::` for an unnumbered peer, whose address is discovered on
    /// `interface` before each connection.
    pub peer_address: IpAddr,
    /// Unnumbered peering: the node's interface the router is discovered on (`interface`).
    pub interface: Option<String>,
    /// The peer's port.
    pub port: u16,
    /// Local address to connect from.
    pub source_address: Option<IpAddr>,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Proposed hold time, seconds.
    pub hold_time: u16,
    /// Keepalive interval, seconds.
    pub keepalive_time: u16,
    /// The BGPPeer's `connectTime`: connection attempts start this far apart (FRR's
    /// `timers connect`). `None`: retry with backoff (the FSM's `retry_delay`).
    pub connect_time: Option<Duration>,
    /// TCP MD5 password (resolved).
    pub password: Option<String>,
    /// eBGP multihop (TTL 255).
    pub ebgp_multihop: bool,
    /// Announce graceful restart.
    pub graceful_restart: bool,
    /// Restart time announced with graceful restart, seconds.
    pub graceful_restart_time: u16,
    /// Only the session's own family (no multiprotocol across families), even with
    /// `dual_stack`.
    pub disable_mp: bool,
    /// Offer both families, not only the peer address's (`dualStackAddressFamily`).
    pub dual_stack: bool,
    /// The VRF device the socket is bound to; `None`: the default VRF.
    pub vrf: Option<String>,
    /// IPv6 next hop for IPv6 prefixes on an IPv4 session (default: IPv4-mapped local address).
    pub next_hop_v6: Option<Ipv6Addr>,
    /// IPv4 next hop for IPv4 prefixes on an IPv6 session (default: the router ID).
    pub next_hop_v4: Option<Ipv4Addr>,
    /// A BFD session protects this one (the BGPPeer names a BFDProfile): when BFD goes from
    /// Up to Down the session is torn down with Cease / BFD Down. Turning it on or off
    /// reconnects; profile timers change under a running session.
    pub bfd: bool,
    /// BFD strict mode (the profile's `strictMode`, with `bfd`): announce the BFD
    /// Strict-Mode capability and hold the session in OpenSent until BFD is Up.
    pub bfd_strict: bool,
}

impl std::fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionConfig")
            .field("name", &self.name)
            .field("local_as", &self.local_as)
            .field("peer_as", &self.peer_as)
            .field("peer_address", &self.peer_address)
            .field("interface", &self.interface)
            .field("port", &self.port)
            .field("source_address", &self.source_address)
            .field("router_id", &self.router_id)
            .field("hold_time", &self.hold_time)
            .field("keepalive_time", &self.keepalive_time)
            .field("connect_time", &self.connect_time)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ebgp_multihop", &self.ebgp_multihop)
            .field("graceful_restart", &self.graceful_restart)
            .field("graceful_restart_time", &self.graceful_restart_time)
            .field("disable_mp", &self.disable_mp)
            .field("dual_stack", &self.dual_stack)
            .field("vrf", &self.vrf)
            .field("next_hop_v6", &self.next_hop_v6)
            .field("next_hop_v4", &self.next_hop_v4)
            .field("bfd", &self.bfd)
            .field("bfd_strict", &self.bfd_strict)
            .finish()
    }
}

impl SessionConfig {
    fn ibgp_known(&self) -> bool {
        match self.peer_as {
            PeerAsn::Fixed(a) => a == self.local_as,
            PeerAsn::Internal => true,
            PeerAsn::External => false,
        }
    }

    /// TTL for the session's packets: 1 for single-hop eBGP, 255 otherwise.
    pub fn ttl(&self) -> u32 {
        if self.ebgp_multihop || self.ibgp_known() {
            255
        } else {
            1
        }
    }

    /// How to open the session's TCP connection.
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            peer: SocketAddr::new(self.peer_address, self.port),
            ttl: self.ttl(),
            password: self.password.clone(),
            source_address: self.source_address,
            device: self.vrf.clone(),
            timeout: self.fsm_config().connect_timeout(),
        }
    }

    /// Families we offer in OPEN (IPv4, IPv6).
    pub fn families(&self) -> (bool, bool) {
        let f = match &self.interface {
            Some(_) => unnumbered_families(),
            None => offered_families(self.peer_address, self.dual_stack, self.disable_mp),
        };
        (f.ipv4, f.ipv6)
    }

    fn fsm_config(&self) -> FsmConfig {
        let (ipv4, ipv6) = self.families();
        FsmConfig {
            local_as: self.local_as,
            peer_as: self.peer_as,
            router_id: self.router_id,
            hold_time: self.hold_time,
            keepalive_time: self.keepalive_time,
            ipv4,
            ipv6,
            connect_retry: self.connect_time,
            graceful_restart: self.graceful_restart,
            bfd_strict: self.bfd && self.bfd_strict,
        }
    }

    /// Our OPEN; `restarting` sets the Restart State bit of the graceful restart capability.
    fn open_config(&self, restarting: bool) -> OpenConfig {
        let (ipv4, ipv6) = self.families();
        OpenConfig {
            asn: self.local_as,
            hold_time: self.hold_time,
            router_id: self.router_id,
            ipv4,
            ipv6,
            graceful_restart: self.graceful_restart.then_some(GracefulRestart {
                restart_time: self.graceful_restart_time,
                restarting,
            }),
            bfd_strict: self.bfd && self.bfd_strict,
        }
    }
}

/// Counters for metrics, updated lock-free by the session task.
#[derive(Debug, Default)]
pub struct SessionCounters {
    /// Connect attempts.
    pub connect_attempts: AtomicU64,
    /// Times the session reached Established.
    pub established_transitions: AtomicU64,
    /// Messages sent, all types.
    pub messages_sent: AtomicU64,
    /// Messages received, all types.
    pub messages_received: AtomicU64,
    /// UPDATEs sent.
    pub updates_sent: AtomicU64,
    /// UPDATEs received.
    pub updates_received: AtomicU64,
    /// NOTIFICATIONs sent.
    pub notifications_sent: AtomicU64,
    /// NOTIFICATIONs received.
    pub notifications_received: AtomicU64,
    /// Malformed attributes skipped in received UPDATEs (RFC 7606 treat-as-withdraw).
    pub treat_as_withdraw: AtomicU64,
    /// NOTIFICATIONs by (direction, code, subcode); few distinct keys, written rarely.
    notifications: Mutex<BTreeMap<NotificationKey, u64>>,
}

/// Which way a NOTIFICATION went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// We sent it.
    Sent,
    /// The peer sent it.
    Received,
}

impl Direction {
    /// `sent` or `received`.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Sent => "sent",
            Direction::Received => "received",
        }
    }
}

/// (direction, code, subcode) of a NOTIFICATION, for counting them by kind.
pub type NotificationKey = (Direction, u8, u8);

impl SessionCounters {
    pub(crate) fn count_notification(&self, direction: Direction, n: &Notification) {
        let counter = match direction {
            Direction::Sent => &self.notifications_sent,
            Direction::Received => &self.notifications_received,
        };
        bump(counter);
        let mut by_code = lock(&self.notifications);
        *by_code.entry((direction, n.code, n.subcode)).or_default() += 1;
    }

    /// NOTIFICATIONs counted so far by (direction, code, subcode).
    pub fn notifications_by_code(&self) -> BTreeMap<NotificationKey, u64> {
        lock(&self.notifications).clone()
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What the task reports besides counters.
#[derive(Clone, Debug, Default)]
struct Shared {
    established_at: Option<Instant>,
    last_error: Option<String>,
    last_notification: Option<String>,
    prefixes_advertised: u64,
    /// Graceful restart negotiated on the current session.
    graceful_restart: bool,
    /// The last connect failed because the VRF device does not exist.
    vrf_missing: bool,
    /// Unnumbered: the router's link-local address found on the interface by the last
    /// discovery; `None` while none is.
    neighbour: Option<Ipv6Addr>,
    /// Why the last discovery found none.
    neighbour_error: Option<String>,
}

/// The manager's handle on a running session.
#[derive(Debug)]
pub struct SessionHandle {
    config: SessionConfig,
    table: watch::Sender<Arc<AdjRibOut>>,
    stop: mpsc::Sender<StopCause>,
    state: watch::Receiver<State>,
    /// How many prefixes the peer holds from us, as of the last table sent.
    advertised: watch::Receiver<usize>,
    shared: Arc<Mutex<Shared>>,
    counters: Arc<SessionCounters>,
    task: JoinHandle<()>,
}

impl SessionHandle {
    /// Starts the session task (it connects at once). Must be called inside a tokio runtime.
    pub fn spawn(config: SessionConfig, table: AdjRibOut) -> Self {
        Self::spawn_with_bfd(config, table, None)
    }

    /// [`spawn`](Self::spawn), watching the state of the BFD session protecting this one.
    pub fn spawn_with_bfd(
        config: SessionConfig,
        table: AdjRibOut,
        bfd: Option<watch::Receiver<BfdState>>,
    ) -> Self {
        Self::spawn_with(config, table, bfd, false)
    }

    /// [`spawn_with_bfd`](Self::spawn_with_bfd); `restarting` announces the Restart State bit
    /// until the session is first Established (this process restarted in place, and the peer
    /// may hold our routes as stale).
    pub fn spawn_with(
        config: SessionConfig,
        table: AdjRibOut,
        bfd: Option<watch::Receiver<BfdState>>,
        restarting: bool,
    ) -> Self {
        let (table_tx, table_rx) = watch::channel(Arc::new(table));
        let (advertised_tx, advertised_rx) = watch::channel(0usize);
        let (stop_tx, stop_rx) = mpsc::channel(1);
        let (state_tx, state_rx) = watch::channel(State::Idle);
        let shared = Arc::new(Mutex::new(Shared::default()));
        let counters = Arc::new(SessionCounters::default());
        let runner = Runner {
            fsm_cfg: config.fsm_config(),
            cfg: config.clone(),
            fsm: Fsm::new(),
            framed: None,
            connecting: None,
            timers: Timers::default(),
            table_rx,
            sent: AdjRibOut::new(),
            update_ctx: None,
            negotiated: None,
            state_tx,
            advertised_tx,
            restarting,
            peer_extended_next_hop: false,
            shared: shared.clone(),
            counters: counters.clone(),
            bfd_up: bfd.as_ref().is_some_and(|rx| *rx.borrow() == BfdState::Up),
            bfd,
            held_for_bfd: None,
        };
        let task = tokio::spawn(runner.run(stop_rx));
        SessionHandle {
            config,
            table: table_tx,
            stop: stop_tx,
            state: state_rx,
            advertised: advertised_rx,
            shared,
            counters,
            task,
        }
    }

    /// The configuration the session runs with.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Hands the session its whole desired table; it sends the difference when Established.
    pub fn set_table(&self, table: AdjRibOut) {
        self.table.send_if_modified(|current| {
            if **current == table {
                false
            } else {
                *current = Arc::new(table);
                true
            }
        });
    }

    /// The desired table the session currently works towards.
    pub fn table(&self) -> Arc<AdjRibOut> {
        self.table.borrow().clone()
    }

    /// Current FSM state.
    pub fn state(&self) -> State {
        *self.state.borrow()
    }

    /// A receiver of state changes (tests wait on it).
    pub fn subscribe_state(&self) -> watch::Receiver<State> {
        self.state.clone()
    }

    /// Counters for metrics.
    pub fn counters(&self) -> &Arc<SessionCounters> {
        &self.counters
    }

    /// Status for `/api/v1/status`.
    pub fn status(&self) -> BgpPeerStatus {
        let shared = lock(&self.shared).clone();
        let state = self.state();
        BgpPeerStatus {
            name: self.config.name.clone(),
            address: match (&self.config.interface, shared.neighbour) {
                (Some(i), Some(n)) => format!("[{n}%{i}]:{}", self.config.port),
                (Some(i), None) => i.clone(),
                (None, _) => {
                    SocketAddr::new(self.config.peer_address, self.config.port).to_string()
                }
            },
            state: state.name().to_string(),
            uptime_seconds: match (state, shared.established_at) {
                (State::Established, Some(t)) => Some(t.elapsed().as_secs()),
                _ => None,
            },
            last_error: shared.last_error,
            last_notification: shared.last_notification,
            prefixes_advertised: shared.prefixes_advertised,
            updates_sent: self.counters.updates_sent.load(Ordering::Relaxed),
            updates_received: self.counters.updates_received.load(Ordering::Relaxed),
            bfd: None,
            local_asn: self.config.local_as,
            vrf: self.config.vrf.clone(),
            vrf_missing: shared.vrf_missing,
            interface: self.config.interface.clone(),
            neighbour: self
                .config
                .interface
                .as_ref()
                .and_then(|i| shared.neighbour.map(|n| format!("{n}%{i}"))),
            neighbour_error: shared.neighbour_error,
        }
    }

    /// Whether graceful restart is negotiated on the current session (false when not
    /// Established).
    pub fn graceful_restart(&self) -> bool {
        self.state() == State::Established && lock(&self.shared).graceful_restart
    }

    /// Waits until the peer holds no prefix from us (after an empty table: the withdrawals are
    /// written) or the session is not Established, at most `timeout`. Returns whether it got
    /// there.
    pub async fn wait_withdrawn(&self, timeout: Duration) -> bool {
        let mut advertised = self.advertised.clone();
        let mut state = self.state.clone();
        let done = async {
            loop {
                if *advertised.borrow_and_update() == 0
                    || *state.borrow_and_update() != State::Established
                {
                    return;
                }
                tokio::select! {
                    r = advertised.changed() => if r.is_err() { return },
                    r = state.changed() => if r.is_err() { return },
                }
            }
        };
        tokio::time::timeout(timeout, done).await.is_ok()
    }

    /// Stops the session: a Cease with `cause`'s subcode when connected, then close. Waits
    /// at most `timeout` for the task, then aborts it.
    pub async fn stop(self, cause: StopCause, timeout: Duration) {
        let _ = self.stop.try_send(cause);
        let mut task = self.task;
        if tokio::time::timeout(timeout, &mut task).await.is_err() {
            warn!(peer = %self.config.name, "session did not stop in time; aborting it");
            task.abort();
        }
    }
}

#[derive(Debug, Default)]
struct Timers {
    connect_retry: Option<Instant>,
    hold: Option<Instant>,
    keepalive: Option<Instant>,
}

impl Timers {
    fn slot(&mut self, t: Timer) -> &mut Option<Instant> {
        match t {
            Timer::ConnectRetry => &mut self.connect_retry,
            Timer::Hold => &mut self.hold,
            Timer::Keepalive => &mut self.keepalive,
        }
    }

    /// The earliest armed timer.
    fn next(&self) -> Option<(Instant, Timer)> {
        [
            (self.connect_retry, Timer::ConnectRetry),
            (self.hold, Timer::Hold),
            (self.keepalive, Timer::Keepalive),
        ]
        .into_iter()
        .filter_map(|(d, t)| d.map(|d| (d, t)))
        .min_by_key(|(d, _)| *d)
    }
}

type ConnectFuture = Pin<Box<dyn Future<Output = Result<TcpStream, ConnectError>> + Send>>;

struct Runner {
    cfg: SessionConfig,
    fsm_cfg: FsmConfig,
    fsm: Fsm,
    framed: Option<Framed<TcpStream, BgpFrameCodec>>,
    connecting: Option<ConnectFuture>,
    timers: Timers,
    table_rx: watch::Receiver<Arc<AdjRibOut>>,
    sent: AdjRibOut,
    update_ctx: Option<UpdateContext>,
    negotiated: Option<Negotiated>,
    state_tx: watch::Sender<State>,
    /// Prefixes the peer holds from us, published after each table sent.
    advertised_tx: watch::Sender<usize>,
    /// This process restarted in place: announce the Restart State bit until Established.
    restarting: bool,
    /// The peer's OPEN offered IPv4 unicast with IPv6 next hops (RFC 8950).
    peer_extended_next_hop: bool,
    shared: Arc<Mutex<Shared>>,
    counters: Arc<SessionCounters>,
    /// State of the protecting BFD session, if any.
    bfd: Option<watch::Receiver<BfdState>>,
    /// Whether BFD has been Up since we last looked: only an Up → Down change is a failure
    /// (a session that never came up, or one the peer took AdminDown, is not, RFC 5882 §3.2).
    bfd_up: bool,
    /// Established with BFD configured but not Up yet: the table is held until BFD is Up or
    /// this deadline passes ([`BFD_ARM_WAIT`]).
    held_for_bfd: Option<Instant>,
}

/// How long an Established session with a BFD profile holds its routes for the BFD session to
/// come Up. A route advertised before BFD is Up is protected by the hold time alone: a node
/// that fails in that window (a speaker that just restarted) stays a next hop for seconds
/// instead of the BFD detection time. A BFD session leaves Down within one slow transmit
/// interval (1 s, RFC 5880 §6.8.3) of both ends running; past this wait the routes go out
/// anyway, so a router without BFD still gets them.
pub const BFD_ARM_WAIT: Duration = Duration::from_secs(5);

/// Sleeps until `at`; pending forever without a deadline.
async fn deadline(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How long a write may block before the connection is considered dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the peer to close after our NOTIFICATION.
const LINGER: Duration = Duration::from_millis(500);

async fn next_message(
    framed: &mut Option<Framed<TcpStream, BgpFrameCodec>>,
) -> Option<Result<ferrolb_speaker_core::bgp::codec::Decoded, CodecError>> {
    match framed.as_mut() {
        Some(f) => f.next().await,
        None => std::future::pending().await,
    }
}

async fn connecting(c: &mut Option<ConnectFuture>) -> Result<TcpStream, ConnectError> {
    match c.as_mut() {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// The next BFD state change; pending forever without BFD.
async fn bfd_change(bfd: &mut Option<watch::Receiver<BfdState>>) -> Option<BfdState> {
    match bfd.as_mut() {
        Some(rx) => match rx.changed().await {
            Ok(()) => Some(*rx.borrow_and_update()),
            Err(_) => None,
        },
        None => std::future::pending().await,
    }
}

async fn timer(next: Option<(Instant, Timer)>) -> Timer {
    match next {
        Some((at, t)) => {
            tokio::time::sleep_until(at).await;
            t
        }
        None => std::future::pending().await,
    }
}

impl Runner {
    fn with_shared(&self, f: impl FnOnce(&mut Shared)) {
        f(&mut lock(&self.shared))
    }

    async fn run(mut self, mut stop_rx: mpsc::Receiver<StopCause>) {
        info!(peer = %self.cfg.name, address = %self.cfg.peer_address, "BGP session starting");
        if self.bfd_up {
            self.handle(Event::BfdUp).await;
        }
        self.handle(Event::ManualStart).await;
        loop {
            let next_timer = self.timers.next();
            let established = self.fsm.state == State::Established;
            let held = self.held_for_bfd;
            tokio::select! {
                biased;
                cause = stop_rx.recv() => {
                    // A dropped handle (None) is a removed peer.
                    let cause = cause.unwrap_or(StopCause::Deconfigured);
                    self.handle(Event::ManualStop(cause)).await;
                    break;
                }
                res = connecting(&mut self.connecting) => {
                    self.connecting = None;
                    match res {
                        Ok(stream) => {
                            debug!(peer = %self.cfg.name, "TCP connected");
                            self.with_shared(|s| s.vrf_missing = false);
                            self.framed = Some(Framed::new(stream, BgpFrameCodec::new()));
                            self.handle(Event::TcpConnectionConfirmed).await;
                        }
                        Err(e) => {
                            debug!(peer = %self.cfg.name, error = %e, "connect failed");
                            let vrf_missing = matches!(e, ConnectError::NoDevice(..));
                            if matches!(e, ConnectError::Neighbour(_)) {
                                info!(peer = %self.cfg.name, error = %e, "no neighbour yet");
                            }
                            self.with_shared(|s| {
                                s.last_error = Some(e.to_string());
                                s.vrf_missing = vrf_missing;
                            });
                            self.handle(Event::TcpConnectionFails).await;
                        }
                    }
                }
                t = timer(next_timer) => {
                    *self.timers.slot(t) = None;
                    let ev = match t {
                        Timer::ConnectRetry => Event::ConnectRetryTimerExpires,
                        Timer::Hold => Event::HoldTimerExpires,
                        Timer::Keepalive => Event::KeepaliveTimerExpires,
                    };
                    self.handle(ev).await;
                }
                msg = next_message(&mut self.framed) => {
                    let ev = self.on_message(msg);
                    self.handle(ev).await;
                }
                bfd = bfd_change(&mut self.bfd) => match bfd {
                    None => {
                        // The BFD session was removed; the manager reconnects us without it.
                        self.bfd = None;
                    }
                    Some(BfdState::Up) => {
                        self.bfd_up = true;
                        self.handle(Event::BfdUp).await;
                        if self.held_for_bfd.take().is_some() {
                            info!(peer = %self.cfg.name, "BFD is Up: advertising the table");
                            self.release_table().await;
                        }
                    }
                    Some(BfdState::Down) if self.bfd_up => {
                        self.bfd_up = false;
                        warn!(peer = %self.cfg.name, "BFD session down; tearing the BGP session down");
                        self.with_shared(|s| s.last_error = Some("BFD session down".into()));
                        self.handle(Event::BfdDown).await;
                    }
                    Some(_) => {
                        self.bfd_up = false;
                        self.handle(Event::BfdNotUp).await;
                    }
                },
                () = deadline(held), if held.is_some() => {
                    self.held_for_bfd = None;
                    warn!(peer = %self.cfg.name, wait_s = BFD_ARM_WAIT.as_secs(),
                        "BFD did not come Up: advertising the table without it (failures are \
                         detected by the hold time until it does)");
                    self.release_table().await;
                }
                changed = self.table_rx.changed(), if established && held.is_none() => {
                    if changed.is_err() {
                        // The manager dropped the handle without stopping: stop cleanly.
                        self.handle(Event::ManualStop(StopCause::Deconfigured)).await;
                        break;
                    }
                    self.sync_table(false).await;
                }
            }
        }
        info!(peer = %self.cfg.name, "BGP session stopped");
    }

    fn on_message(
        &mut self,
        msg: Option<Result<ferrolb_speaker_core::bgp::codec::Decoded, CodecError>>,
    ) -> Event {
        match msg {
            None => {
                self.with_shared(|s| s.last_error = Some("connection closed by peer".into()));
                Event::TcpConnectionFails
            }
            Some(Err(CodecError::Malformed {
                kind,
                reason,
                notification,
            })) => {
                warn!(peer = %self.cfg.name, kind, %reason, "malformed message from peer");
                self.with_shared(|s| s.last_error = Some(format!("malformed {kind}: {reason}")));
                match notification.code {
                    code::OPEN_MESSAGE => Event::BgpOpenMsgErr(notification),
                    code::UPDATE_MESSAGE => Event::UpdateMsgErr(notification),
                    _ => Event::BgpHeaderErr(notification),
                }
            }
            Some(Err(e)) => {
                self.with_shared(|s| s.last_error = Some(e.to_string()));
                Event::TcpConnectionFails
            }
            Some(Ok(d)) => {
                bump(&self.counters.messages_received);
                if d.malformed_attributes > 0 {
                    // RFC 7606 treat-as-withdraw: we import nothing, so count and log.
                    self.counters
                        .treat_as_withdraw
                        .fetch_add(d.malformed_attributes as u64, Ordering::Relaxed);
                    warn!(peer = %self.cfg.name, count = d.malformed_attributes,
                        "malformed attributes in UPDATE treated as withdraw");
                }
                match d.message {
                    Message::Open(o) => {
                        self.peer_extended_next_hop = accepts_ipv4_with_ipv6_next_hop(&o);
                        Event::BgpOpen(PeerOpen::from_open(&o))
                    }
                    Message::KeepAlive => Event::KeepAliveMsg,
                    Message::Update(_) => {
                        bump(&self.counters.updates_received);
                        Event::UpdateMsg
                    }
                    Message::RouteRefresh(_) => Event::RouteRefreshMsg,
                    Message::Notification(n) => {
                        self.counters.count_notification(Direction::Received, &n);
                        info!(peer = %self.cfg.name, notification = %n, "NOTIFICATION received");
                        self.with_shared(|s| s.last_notification = Some(format!("received: {n}")));
                        Event::NotifMsg(n)
                    }
                }
            }
        }
    }

    /// Runs one event and everything it causes (a failed write becomes TcpConnectionFails).
    async fn handle(&mut self, ev: Event) {
        let mut queue = VecDeque::from([ev]);
        while let Some(ev) = queue.pop_front() {
            let before = self.fsm.state;
            let (next, actions) = fsm::step(&self.fsm_cfg, &self.fsm, ev);
            self.fsm = next;
            if let (Some(n), Some(f)) = (&self.fsm.negotiated, self.framed.as_mut()) {
                // Received UPDATEs may follow the OPEN immediately: read AS_PATH with the
                // negotiated width from now on.
                f.codec_mut().set_four_octet_as(n.four_octet_as);
            }
            for a in actions {
                if let Some(follow) = self.execute(a).await {
                    queue.push_back(follow);
                }
            }
            if self.fsm.state != before {
                debug!(peer = %self.cfg.name, from = before.name(), to = self.fsm.state.name(), "state change");
                self.state_tx.send_replace(self.fsm.state);
            }
        }
    }

    async fn send(&mut self, msg: Message) -> Option<Event> {
        let framed = self.framed.as_mut()?;
        let kind = msg.kind();
        let is_update = matches!(msg, Message::Update(_));
        match tokio::time::timeout(WRITE_TIMEOUT, framed.send(msg)).await {
            Ok(Ok(())) => {
                bump(&self.counters.messages_sent);
                if is_update {
                    bump(&self.counters.updates_sent);
                }
                None
            }
            Ok(Err(CodecError::Encode { kind, reason })) => {
                // A bug or an impossible table (attributes larger than a message): skip the
                // message rather than tear the session down for every other route.
                warn!(peer = %self.cfg.name, kind, %reason, "cannot encode message; skipped");
                None
            }
            Ok(Err(e)) => {
                self.with_shared(|s| s.last_error = Some(format!("sending {kind}: {e}")));
                self.framed = None;
                Some(Event::TcpConnectionFails)
            }
            Err(_) => {
                self.with_shared(|s| s.last_error = Some(format!("sending {kind}: timed out")));
                self.framed = None;
                Some(Event::TcpConnectionFails)
            }
        }
    }

    async fn execute(&mut self, action: Action) -> Option<Event> {
        match action {
            Action::Connect => {
                bump(&self.counters.connect_attempts);
                let cfg = self.cfg.clone();
                let shared = self.shared.clone();
                self.connecting = Some(Box::pin(async move {
                    let mut options = cfg.connect_options();
                    if let Some(interface) = &cfg.interface {
                        // Discovered before every connection: the router may have been
                        // replaced, and with it its link-local address.
                        let found = neighbour::discover(interface, options.timeout).await;
                        {
                            let mut s = lock(&shared);
                            s.neighbour = found.as_ref().ok().map(|n| n.address);
                            s.neighbour_error = found.as_ref().err().map(ToString::to_string);
                        }
                        let n = found?;
                        debug!(peer = %cfg.name, neighbour = %n.address, %interface, "neighbour discovered");
                        options.peer =
                            SocketAddr::V6(SocketAddrV6::new(n.address, cfg.port, 0, n.ifindex));
                    }
                    connect(&options).await
                }));
                None
            }
            Action::DropTcp => {
                self.connecting = None;
                if let Some(framed) = self.framed.take() {
                    close_gracefully(framed).await;
                }
                None
            }
            Action::SendOpen => {
                let mut open = build_open(&self.cfg.open_config(self.restarting));
                if self.cfg.interface.is_some() {
                    // No IPv4 address on the link: IPv4 routes need an IPv6 next hop.
                    open = offer_extended_next_hop(&open);
                }
                self.peer_extended_next_hop = false;
                self.send(Message::Open(open)).await
            }
            Action::SendKeepalive => self.send(Message::KeepAlive).await,
            Action::SendNotification(n) => {
                info!(peer = %self.cfg.name, notification = %n, "sending NOTIFICATION");
                self.with_shared(|s| s.last_notification = Some(format!("sent: {n}")));
                self.counters.count_notification(Direction::Sent, &n);
                self.send(Message::Notification(n)).await
            }
            Action::StartTimer(t, d) => {
                *self.timers.slot(t) = Some(Instant::now() + d);
                None
            }
            Action::StopTimer(t) => {
                *self.timers.slot(t) = None;
                None
            }
            Action::Established(n) => {
                info!(peer = %self.cfg.name, peer_as = n.peer_as, hold = n.hold_time,
                    ipv4 = n.ipv4, ipv6 = n.ipv6, graceful_restart = n.graceful_restart,
                    graceful_notification = n.graceful_notification,
                    restarting = self.restarting, "BGP session established");
                // The Restart State bit belongs to the first session after the restart only.
                self.restarting = false;
                let graceful_restart = n.graceful_restart;
                bump(&self.counters.established_transitions);
                let extended_next_hop = self.peer_extended_next_hop;
                self.update_ctx = self.framed.as_ref().and_then(|f| {
                    f.get_ref().local_addr().ok().map(|local| {
                        match (&self.cfg.interface, local.ip()) {
                            (Some(interface), IpAddr::V6(link_local)) => unnumbered_update_context(
                                &self.cfg,
                                &n,
                                link_local,
                                &neighbour::interface_addresses(interface),
                                extended_next_hop,
                            ),
                            _ => update_context(&self.cfg, &n, local.ip()),
                        }
                    })
                });
                self.negotiated = Some(n);
                self.sent.clear();
                self.with_shared(|s| {
                    s.established_at = Some(Instant::now());
                    s.last_error = None;
                    s.graceful_restart = graceful_restart;
                });
                if self.bfd.is_some() && !self.bfd_up {
                    info!(peer = %self.cfg.name, wait_s = BFD_ARM_WAIT.as_secs(),
                        "Established before BFD is Up: holding the table until it is");
                    self.held_for_bfd = Some(Instant::now() + BFD_ARM_WAIT);
                    return None;
                }
                self.sync_table(true).await
            }
            Action::ResendAll if self.held_for_bfd.is_some() => None,
            Action::ResendAll => {
                self.sent.clear();
                self.sync_table(false).await
            }
            Action::WaitingForBfd => {
                let peer_strict = self.fsm.negotiated.as_ref().is_some_and(|n| n.bfd_strict);
                info!(peer = %self.cfg.name, peer_announced_strict_mode = peer_strict,
                    "BFD strict mode: OPEN received, holding the session in OpenSent (no \
                     KEEPALIVE) until the BFD session is Up");
                self.with_shared(|s| {
                    s.last_error = Some(
                        "BFD strict mode: waiting for the BFD session to be Up before \
                         establishing"
                            .into(),
                    )
                });
                None
            }
            Action::Down(reason) => {
                if self.negotiated.is_some() {
                    info!(peer = %self.cfg.name, %reason, "BGP session down");
                } else {
                    debug!(peer = %self.cfg.name, %reason, "BGP session not up");
                }
                self.negotiated = None;
                self.update_ctx = None;
                self.held_for_bfd = None;
                self.sent.clear();
                self.advertised_tx.send_replace(0);
                self.with_shared(|s| {
                    s.established_at = None;
                    s.graceful_restart = false;
                    s.prefixes_advertised = 0;
                    if !reason.starts_with("stopped") {
                        s.last_error = Some(reason);
                    }
                });
                None
            }
        }
    }

    /// Sends the table held for BFD, with the End-of-RIB markers that follow an initial table;
    /// an error tears the session down as any failed send does.
    async fn release_table(&mut self) {
        if let Some(ev) = self.sync_table(true).await {
            self.handle(ev).await;
        }
    }

    /// Sends the difference between the desired table and what was sent. `end_of_rib` adds
    /// the RFC 4724 markers after the initial table.
    async fn sync_table(&mut self, end_of_rib_markers: bool) -> Option<Event> {
        let (Some(n), Some(ctx)) = (self.negotiated.clone(), self.update_ctx.clone()) else {
            return None;
        };
        let desired = self.table_rx.borrow_and_update().clone();
        let wanted: AdjRibOut = desired
            .iter()
            .filter(|(p, _)| if p.addr().is_ipv4() { n.ipv4 } else { n.ipv6 })
            .map(|(p, a)| (*p, a.clone()))
            .collect();
        let (withdraw, announce) = diff(&self.sent, &wanted);
        let mut messages = Vec::new();
        match build_withdrawals(&withdraw) {
            Ok(w) => messages.extend(w),
            Err(e) => warn!(peer = %self.cfg.name, error = %e, "cannot build withdrawals"),
        }
        for (attrs, prefixes) in &announce {
            match build_announcements(&ctx, attrs, prefixes) {
                Ok(u) => messages.extend(u),
                Err(e) => {
                    warn!(peer = %self.cfg.name, error = %e, "cannot build UPDATE; prefixes skipped")
                }
            }
        }
        if end_of_rib_markers {
            if n.ipv4 {
                messages.push(end_of_rib(false));
            }
            if n.ipv6 {
                messages.push(end_of_rib(true));
            }
        }
        debug!(peer = %self.cfg.name, withdrawn = withdraw.len(),
            announced = announce.values().map(Vec::len).sum::<usize>(), messages = messages.len(), "sending table diff");
        for m in messages {
            if let Some(ev) = self.send(Message::Update(m)).await {
                return Some(ev);
            }
        }
        // Keepalive timer: RFC 4271 lets UPDATEs stand in for KEEPALIVEs, but restarting the
        // timer here buys nothing; it keeps its own rhythm.
        self.sent = wanted;
        let count = self.sent.len() as u64;
        self.advertised_tx.send_replace(self.sent.len());
        self.with_shared(|s| s.prefixes_advertised = count);
        None
    }
}

/// Withdrawals (prefixes sent but no longer wanted) and announcements grouped by identical
/// attributes (new prefixes and prefixes whose attributes changed).
pub fn diff(
    sent: &AdjRibOut,
    wanted: &AdjRibOut,
) -> (Vec<IpNet>, BTreeMap<RouteAttributes, Vec<IpNet>>) {
    let withdraw: Vec<IpNet> = sent
        .keys()
        .filter(|p| !wanted.contains_key(p))
        .copied()
        .collect();
    let mut announce: BTreeMap<RouteAttributes, Vec<IpNet>> = BTreeMap::new();
    for (p, a) in wanted {
        if sent.get(p) != Some(a) {
            announce.entry(a.clone()).or_default().push(*p);
        }
    }
    (withdraw, announce)
}

/// Next hops and AS_PATH rules for a negotiated session with the given local address.
pub fn update_context(cfg: &SessionConfig, n: &Negotiated, local: IpAddr) -> UpdateContext {
    let (next_hop_v4, next_hop_v6, next_hop_v6_link_local) = match local {
        IpAddr::V4(v4) => (
            Some(v4),
            // IPv6 routes over an IPv4 session need an IPv6 next hop; without a configured
            // one, the IPv4-mapped address (what FRR and GoBGP send) at least names us.
            Some(cfg.next_hop_v6.unwrap_or_else(|| v4.to_ipv6_mapped())),
            None,
        ),
        IpAddr::V6(v6) => {
            let link_local = v6.is_unicast_link_local();
            (
                Some(cfg.next_hop_v4.unwrap_or(cfg.router_id)),
                Some(if link_local {
                    cfg.next_hop_v6.unwrap_or(v6)
                } else {
                    v6
                }),
                link_local.then_some(v6),
            )
        }
    };
    UpdateContext {
        local_as: cfg.local_as,
        ebgp: n.ebgp,
        four_octet_as: n.four_octet_as,
        next_hop_v4,
        next_hop_v6,
        next_hop_v6_link_local,
        ipv4_via_ipv6: false,
    }
}

/// Next hops of an unnumbered session opened from `link_local` on an interface with
/// `interface_addresses`: IPv6 routes, and IPv4 routes when the peer accepts IPv6 next hops
/// for them (`extended_next_hop`), carry the interface's global address (if any) and the
/// link-local one; without extended next hop IPv4 routes fall back to the session's IPv4 next
/// hop (`next_hop_v4`, else the router ID), which the router may not reach.
pub fn unnumbered_update_context(
    cfg: &SessionConfig,
    n: &Negotiated,
    link_local: Ipv6Addr,
    interface_addresses: &[Ipv6Addr],
    extended_next_hop: bool,
) -> UpdateContext {
    let (next_hop_v6, next_hop_v6_link_local) =
        unnumbered_next_hops(link_local, interface_addresses);
    UpdateContext {
        local_as: cfg.local_as,
        ebgp: n.ebgp,
        four_octet_as: n.four_octet_as,
        next_hop_v4: Some(cfg.next_hop_v4.unwrap_or(cfg.router_id)),
        next_hop_v6: Some(next_hop_v6),
        next_hop_v6_link_local,
        ipv4_via_ipv6: extended_next_hop,
    }
}

/// After a NOTIFICATION the connection must be closed so that the peer still reads it:
/// half-close, then wait (briefly) for the peer to close its side. Closing with unread data
/// would send a RST that can overtake the NOTIFICATION.
async fn close_gracefully(framed: Framed<TcpStream, BgpFrameCodec>) {
    let mut stream = framed.into_inner();
    let _ = tokio::time::timeout(LINGER, async {
        use tokio::io::AsyncWriteExt;
        let _ = stream.shutdown().await;
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests;
