//! The BFD thread: receive sockets, one transmit socket per session, and the loop that drives
//! every [`Session`] from packets and timers.
//!
//! It runs on its own OS thread with a current-thread tokio runtime, so nothing scheduled on
//! the speaker's main runtime can delay a BFD packet. All sockets are created on that thread;
//! a thread starts in the network namespace of the thread that spawned it, so they live in the
//! caller's namespace.

use super::echo_socket::EchoSocket;
use super::neighbor;
use ferrolb_speaker_core::bfd::echo::{Echo, EchoInputs, EchoPacket};
use ferrolb_speaker_core::bfd::echo_frame;
use ferrolb_speaker_core::bfd::fsm::{Session, Timers, Transition};
use ferrolb_speaker_core::bfd::packet::{BfdState, ControlPacket};
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use rand_foca::RngExt;
use rand_foca::rngs::StdRng;
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::{BTreeMap, HashMap};
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

/// Counters of one session, for metrics.
#[derive(Debug, Default)]
pub struct BfdCounters {
    /// Control packets sent.
    pub packets_sent: AtomicU64,
    /// Control packets received and accepted for this session.
    pub packets_received: AtomicU64,
    /// State changes.
    pub state_changes: AtomicU64,
    /// Echo packets sent (through the peer, to ourselves).
    pub echo_packets_sent: AtomicU64,
    /// Our echo packets that came back.
    pub echo_packets_received: AtomicU64,
}

/// Single-hop destination port (RFC 5881 §4).
pub const SINGLE_HOP_PORT: u16 = 3784;
/// Multihop destination port (RFC 5883 §5).
pub const MULTIHOP_PORT: u16 = 4784;
/// Source ports of Control packets (RFC 5881 §4: 49152 through 65535).
const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
/// TTL / hop limit we send, and require on single-hop reception (RFC 5881 §5).
const TTL: u32 = 255;
/// IP precedence / traffic class "network control" (CS6), as routing protocols use, so that
/// queueing on the path favours BFD over data.
const TOS_CS6: u32 = 0xc0;
/// AdminDown packets sent for a removed session before it is forgotten.
const ADMIN_DOWN_PACKETS: u32 = 3;
/// How often an unresolved echo path (the peer's link-layer address) is looked up again.
const ECHO_LOOKUP_RETRY: Duration = Duration::from_secs(1);
/// Upper bound for sending those (they go at the ≥ 1 s AdminDown rate).
const REMOVED_LINGER: Duration = Duration::from_secs(3);
/// How long [`Command::Shutdown`] keeps sending AdminDown before the thread ends: the first
/// packet goes at once, later ones would need the 1 s AdminDown interval.
const SHUTDOWN_LINGER: Duration = Duration::from_millis(500);

/// What the manager and the thread share about one session (by key).
#[derive(Debug)]
pub(crate) struct SessionHandle {
    /// Current state; receivers are handed out by the manager.
    pub state: watch::Sender<BfdState>,
    /// Detection time in force, milliseconds (0 until the remote is heard).
    pub detection_ms: AtomicU64,
    /// The Echo function is running.
    pub echo_active: AtomicBool,
    /// Counters for metrics.
    pub counters: Arc<BfdCounters>,
}

impl SessionHandle {
    pub(crate) fn new() -> SessionHandle {
        SessionHandle {
            state: watch::Sender::new(BfdState::Down),
            detection_ms: AtomicU64::new(0),
            echo_active: AtomicBool::new(false),
            counters: Arc::default(),
        }
    }
}

/// Everything that defines one session on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SessionSpec {
    pub peer: IpAddr,
    pub local: Option<IpAddr>,
    pub multihop: bool,
    pub timers: Timers,
    pub passive: bool,
    pub minimum_ttl: u8,
    /// Echo interval when the profile asks for echo mode (IPv4 single hop only).
    pub echo: Option<Duration>,
}

impl SessionSpec {
    /// The part whose change needs a new session (new socket, new discriminator).
    fn endpoint(&self) -> (IpAddr, Option<IpAddr>, bool) {
        (self.peer, self.local, self.multihop)
    }
}

/// Commands from the manager.
pub(crate) enum Command {
    /// The whole desired set of sessions (level-triggered).
    Apply(BTreeMap<String, (SessionSpec, Arc<SessionHandle>)>),
    /// AdminDown to every peer, then end the thread.
    Shutdown,
}

/// Spawns the BFD thread; returns once its receive sockets are bound (or failed to bind).
pub(crate) fn spawn(
    commands: mpsc::UnboundedReceiver<Command>,
) -> io::Result<std::thread::JoinHandle<()>> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
    // The new thread inherits the calling thread's network namespace: every socket below
    // is therefore opened in the namespace of whoever called `BfdManager::start`.
    let thread = std::thread::Builder::new()
        .name("ferrolb-bfd".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                let receivers = match Receiver::open_all() {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                Runtime::new(receivers).run(commands).await;
            });
        })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(thread),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(io::Error::other("BFD thread ended before it was ready"))
        }
    }
}

/// One receive socket: a family and a port.
struct Receiver {
    socket: UdpSocket,
    multihop: bool,
}

/// A received datagram with what the kernel told about it.
struct Datagram {
    len: usize,
    source: IpAddr,
    /// Destination address of the datagram (our address), from IP_PKTINFO.
    destination: Option<IpAddr>,
    /// TTL / hop limit it arrived with.
    ttl: Option<u8>,
}

impl Receiver {
    /// Binds IPv4 and IPv6 on the single-hop and multihop ports. A family that cannot be
    /// bound (IPv6 disabled, port taken) is logged and skipped; none at all is an error.
    fn open_all() -> io::Result<Vec<Receiver>> {
        let mut out = Vec::new();
        let mut last_error = None;
        for (v6, port) in [
            (false, SINGLE_HOP_PORT),
            (true, SINGLE_HOP_PORT),
            (false, MULTIHOP_PORT),
            (true, MULTIHOP_PORT),
        ] {
            match Receiver::open(v6, port) {
                Ok(r) => out.push(r),
                Err(e) => {
                    warn!(port, ipv6 = v6, error = %e, "cannot bind BFD receive socket");
                    last_error = Some(e);
                }
            }
        }
        match (out.is_empty(), last_error) {
            (true, Some(e)) => Err(e),
            _ => Ok(out),
        }
    }

    fn open(v6: bool, port: u16) -> io::Result<Receiver> {
        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
        let any: IpAddr = if v6 {
            socket.set_only_v6(true)?;
            setsockopt(&socket, sockopt::Ipv6RecvHopLimit, &true).map_err(io::Error::from)?;
            setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true).map_err(io::Error::from)?;
            Ipv6Addr::UNSPECIFIED.into()
        } else {
            setsockopt(&socket, sockopt::Ipv4RecvTtl, &true).map_err(io::Error::from)?;
            setsockopt(&socket, sockopt::Ipv4PacketInfo, &true).map_err(io::Error::from)?;
            Ipv4Addr::UNSPECIFIED.into()
        };
        socket.set_nonblocking(true)?;
        socket.bind(&SocketAddr::new(any, port).into())?;
        Ok(Receiver {
            socket: UdpSocket::from_std(StdUdpSocket::from(socket))?,
            multihop: port == MULTIHOP_PORT,
        })
    }

    /// One `recvmsg` with the TTL and destination address control messages.
    fn recv(&self, buf: &mut [u8]) -> io::Result<Datagram> {
        let mut iov = [IoSliceMut::new(buf)];
        let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo, libc::c_int, libc::in_pktinfo);
        let msg = recvmsg::<SockaddrStorage>(
            self.socket.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .map_err(io::Error::from)?;
        let mut ttl = None;
        let mut destination = None;
        // A truncated control buffer (ENOBUFS) leaves TTL unknown: the packet is dropped.
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                match c {
                    ControlMessageOwned::Ipv4Ttl(t) | ControlMessageOwned::Ipv6HopLimit(t) => {
                        ttl = u8::try_from(t).ok();
                    }
                    ControlMessageOwned::Ipv4PacketInfo(pi) => {
                        destination =
                            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(pi.ipi_addr.s_addr))));
                    }
                    ControlMessageOwned::Ipv6PacketInfo(pi) => {
                        destination = Some(IpAddr::V6(Ipv6Addr::from(pi.ipi6_addr.s6_addr)));
                    }
                    _ => {}
                }
            }
        }
        let source = msg
            .address
            .as_ref()
            .and_then(|a| {
                a.as_sockaddr_in()
                    .map(|s| IpAddr::V4(s.ip()))
                    .or_else(|| a.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())))
            })
            .ok_or_else(|| io::Error::other("datagram without source address"))?;
        Ok(Datagram {
            len: msg.bytes,
            source,
            destination,
            ttl,
        })
    }
}

/// A session on the wire.
struct Live {
    key: String,
    spec: SessionSpec,
    fsm: Session,
    socket: StdUdpSocket,
    /// `None` once removed: it only sends its AdminDown packets.
    handle: Option<Arc<SessionHandle>>,
    /// The Echo function, when the profile asks for it.
    echo: Option<EchoState>,
    /// Our address as the peer's control packets are addressed (the echo packets' source and
    /// destination when no source address is configured).
    local_seen: Option<IpAddr>,
    /// Set when removed: AdminDown packets sent so far and when to give up.
    linger: Option<(u32, Instant)>,
}

/// The Echo function of one session and where its packets go.
struct EchoState {
    echo: Echo,
    path: Option<EchoPath>,
    /// Earliest next lookup of an unresolved path.
    next_lookup: Instant,
}

/// Where echo packets go: from and to our address, out of `ifindex`, to the peer's `mac`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EchoPath {
    local: Ipv4Addr,
    ifindex: u32,
    mac: [u8; 6],
}

impl Live {
    fn destination(&self) -> SocketAddr {
        let port = if self.spec.multihop {
            MULTIHOP_PORT
        } else {
            SINGLE_HOP_PORT
        };
        SocketAddr::new(self.spec.peer, port)
    }

    fn publish(&self, t: Transition) {
        info!(
            peer = %self.spec.peer, key = %self.key, from = %t.from, to = %t.to,
            diag = ?t.diag, "BFD session state changed"
        );
        if let Some(h) = &self.handle {
            h.counters.state_changes.fetch_add(1, Ordering::Relaxed);
            // The peer took the session AdminDown: our state is Down (RFC 5880 §6.8.6), but
            // clients must not read it as a path failure (RFC 5882 §3.2). They see AdminDown,
            // which no client acts upon; a BGP session stays up.
            let client_state =
                if t.to == BfdState::Down && self.fsm.remote_state() == BfdState::AdminDown {
                    BfdState::AdminDown
                } else {
                    t.to
                };
            h.state.send_replace(client_state);
        }
        self.update_detection();
    }

    fn update_detection(&self) {
        if let Some(h) = &self.handle {
            let ms = self
                .fsm
                .detection_time()
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            h.detection_ms.store(ms, Ordering::Relaxed);
        }
    }

    /// Sends whatever the state machine wants sent now.
    fn transmit(&mut self, now: Instant, rng: &mut StdRng) {
        while let Some(p) = self.fsm.poll_transmit(now, rng.random::<f64>()) {
            let dest = self.destination();
            match self.socket.send_to(&p.encode(), dest) {
                Ok(_) => {
                    if let Some(h) = &self.handle {
                        h.counters.packets_sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // Dropping one packet is what a lossy link would do; the detection time
                // absorbs it. Logged at debug: a missing route would otherwise flood the log.
                Err(e) => debug!(peer = %self.spec.peer, error = %e, "BFD send failed"),
            }
            if let Some((sent, _)) = &mut self.linger
                && p.state == BfdState::AdminDown
            {
                *sent += 1;
            }
        }
    }

    /// Resolves the echo path once the peer has been heard (the ARP entry exists because
    /// we send it control packets), and sets the Required Min Echo RX we advertise: our
    /// `echoInterval` when this node forwards IPv4 on that interface (the peer's echo
    /// packets, addressed to itself, come back through our forwarding), else zero.
    fn resolve_echo_path(&mut self, now: Instant) {
        let Some(es) = &mut self.echo else {
            return;
        };
        if es.path.is_some() || now < es.next_lookup || self.fsm.remote_discr() == 0 {
            return;
        }
        es.next_lookup = now + ECHO_LOOKUP_RETRY;
        let IpAddr::V4(peer) = self.spec.peer else {
            return;
        };
        let local = match self.spec.local.or(self.local_seen) {
            Some(IpAddr::V4(l)) => l,
            _ => return,
        };
        let Some(n) = neighbor::lookup(peer) else {
            debug!(peer = %self.spec.peer, "echo: peer's link-layer address not resolved yet");
            return;
        };
        let ifindex = match nix::net::if_::if_nametoindex(n.device.as_str()) {
            Ok(i) => i,
            Err(e) => {
                debug!(peer = %self.spec.peer, device = %n.device, error = %e, "echo: no such interface");
                return;
            }
        };
        let forwards = neighbor::forwards_ipv4(&n.device);
        let interval = self.spec.echo.unwrap_or_default();
        self.fsm
            .set_required_min_echo_rx(if forwards { interval } else { Duration::ZERO });
        if !forwards {
            warn!(
                peer = %self.spec.peer, device = %n.device,
                "echo: this node does not forward IPv4 on the interface, so the peer's echo \
                 packets could not be looped back; the peer is asked for none (our own echo \
                 packets still run)"
            );
        }
        info!(peer = %self.spec.peer, %local, device = %n.device, forwards, "echo path resolved");
        es.path = Some(EchoPath {
            local,
            ifindex,
            mac: n.mac,
        });
    }

    /// Runs the Echo function: start/stop from the session's state, detection, sending.
    fn run_echo(&mut self, now: Instant, socket: Option<&EchoSocket>, rng: &mut StdRng) {
        self.resolve_echo_path(now);
        let Some(es) = &mut self.echo else {
            return;
        };
        let inputs = EchoInputs {
            session_up: self.fsm.state() == BfdState::Up,
            remote_min_echo_rx: self.fsm.remote_min_echo_rx(),
            remote_detect_mult: self.fsm.remote_detect_mult(),
            path_ready: es.path.is_some() && socket.is_some(),
        };
        let was_active = es.echo.active();
        let active = es.echo.update(inputs, now);
        if es.echo.on_timer(now) {
            warn!(peer = %self.spec.peer, key = %self.key, "echo packets stopped coming back");
            // The path may have changed (new MAC): look it up again after the failure.
            es.path = None;
            if let Some(t) = self.fsm.echo_failed(now) {
                self.publish(t);
            }
            self.set_echo_active(false);
            return;
        }
        if active != was_active {
            info!(peer = %self.spec.peer, key = %self.key, active,
                interval = ?es.echo.tx_interval(), "echo function {}", if active { "started" } else { "stopped" });
            if let Some(h) = &self.handle {
                h.echo_active.store(active, Ordering::Relaxed);
            }
        }
        let (Some(path), Some(socket)) = (es.path, socket) else {
            return;
        };
        while let Some(p) = es.echo.poll_transmit(now, rng.random::<f64>()) {
            let datagram =
                echo_frame::build_ipv4(path.local, path.local, p.sequence as u16, &p.encode());
            match socket.send(path.ifindex, path.mac, &datagram) {
                Ok(()) => {
                    if let Some(h) = &self.handle {
                        h.counters.echo_packets_sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) => debug!(peer = %self.spec.peer, error = %e, "echo send failed"),
            }
        }
    }

    fn set_echo_active(&self, active: bool) {
        if let Some(h) = &self.handle {
            h.echo_active.store(active, Ordering::Relaxed);
        }
    }

    fn next_echo_deadline(&self) -> Option<Instant> {
        let es = self.echo.as_ref()?;
        let lookup = (es.path.is_none() && self.fsm.remote_discr() != 0).then_some(es.next_lookup);
        match (es.echo.next_deadline(), lookup) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A removed session is forgotten after its AdminDown packets, or at once when the
    /// remote never heard of us.
    fn finished(&self, now: Instant) -> bool {
        match self.linger {
            Some((sent, until)) => {
                sent >= ADMIN_DOWN_PACKETS || now >= until || self.fsm.remote_discr() == 0
            }
            None => false,
        }
    }
}

/// Opens the transmit socket of a session: bound to (local address or unspecified, a free
/// port in 49152–65535), TTL / hop limit 255.
fn transmit_socket(spec: &SessionSpec, rng: &mut StdRng) -> io::Result<StdUdpSocket> {
    let v6 = spec.peer.is_ipv6();
    let socket = Socket::new(
        if v6 { Domain::IPV6 } else { Domain::IPV4 },
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    if v6 {
        socket.set_unicast_hops_v6(TTL)?;
        socket.set_tclass_v6(TOS_CS6)?;
    } else {
        socket.set_ttl_v4(TTL)?;
        socket.set_tos_v4(TOS_CS6)?;
    }
    socket.set_nonblocking(true)?;
    let ip = spec.local.unwrap_or(if v6 {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    });
    // Random ports first (cheap, rarely taken); the whole range is not scanned.
    let mut last = io::Error::from(io::ErrorKind::AddrInUse);
    for _ in 0..64 {
        let port = rng.random_range(SOURCE_PORTS);
        match socket.bind(&SocketAddr::new(ip, port).into()) {
            Ok(()) => return Ok(socket.into()),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// What woke the loop.
enum Event {
    Command(Option<Command>),
    Readable(usize),
    EchoReadable,
    Timer,
}

/// The thread's state.
struct Runtime {
    receivers: Vec<Receiver>,
    /// The echo packet socket, open while some session wants echo (it sees every incoming
    /// IPv4 packet through its filter, so nodes without echo do not pay for it); `None` when
    /// it cannot be opened (no CAP_NET_RAW): sessions then run without echo.
    echo_socket: Option<EchoSocket>,
    /// By local discriminator.
    sessions: HashMap<u32, Live>,
    /// Active (not removed) sessions by key.
    keys: HashMap<String, u32>,
    rng: StdRng,
    buf: Vec<u8>,
}

impl Runtime {
    fn new(receivers: Vec<Receiver>) -> Runtime {
        Runtime {
            receivers,
            echo_socket: None,
            sessions: HashMap::new(),
            keys: HashMap::new(),
            rng: rand_foca::make_rng(),
            buf: vec![0; 2048],
        }
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            let now = Instant::now();
            let deadline = self.next_deadline(now);
            // The readiness futures borrow the receive sockets; they are gone before the
            // event is handled.
            let event = {
                let readable = self.receivers.iter().map(|r| Box::pin(r.socket.readable()));
                let readable = readable.collect::<Vec<_>>();
                let any_readable = async move {
                    if readable.is_empty() {
                        std::future::pending::<usize>().await
                    } else {
                        futures::future::select_all(readable).await.1
                    }
                };
                let echo_readable = async {
                    match &self.echo_socket {
                        Some(s) => s.readable().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    cmd = commands.recv() => Event::Command(cmd),
                    index = any_readable => Event::Readable(index),
                    _ = echo_readable => Event::EchoReadable,
                    () = sleep_until(deadline) => Event::Timer,
                }
            };
            match event {
                Event::Command(Some(Command::Apply(desired))) => {
                    self.apply(desired, Instant::now())
                }
                Event::Command(Some(Command::Shutdown)) => {
                    self.shutdown().await;
                    return;
                }
                // The manager was dropped without shutdown: stop at once, like a crash.
                Event::Command(None) => return,
                Event::Readable(index) => self.drain(index),
                Event::EchoReadable => self.drain_echo(),
                Event::Timer => {}
            }
            self.tick(Instant::now());
        }
    }

    fn next_deadline(&self, now: Instant) -> Option<Instant> {
        self.sessions
            .values()
            .filter_map(|s| {
                let fsm = match s.linger {
                    Some((_, until)) => {
                        Some(s.fsm.next_deadline(now).map_or(until, |d| d.min(until)))
                    }
                    None => s.fsm.next_deadline(now),
                };
                match (fsm, s.next_echo_deadline()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            })
            .min()
    }

    /// Detection timers and transmissions of every session, and removal of finished ones.
    fn tick(&mut self, now: Instant) {
        for s in self.sessions.values_mut() {
            if let Some(t) = s.fsm.on_timer(now) {
                s.publish(t);
            }
            s.run_echo(now, self.echo_socket.as_ref(), &mut self.rng);
            s.transmit(now, &mut self.rng);
        }
        self.sessions.retain(|_, s| !s.finished(now));
    }

    /// Opens the echo socket when a desired session wants echo, closes it when none does.
    fn want_echo_socket(&mut self, wanted: bool) {
        match (wanted, self.echo_socket.is_some()) {
            (true, false) => match EchoSocket::open() {
                Ok(s) => self.echo_socket = Some(s),
                // Retried with the next apply; the sessions run without echo meanwhile.
                Err(e) => warn!(error = %e,
                    "cannot open the BFD echo packet socket; sessions run without echo"),
            },
            (false, true) => self.echo_socket = None,
            _ => {}
        }
    }

    fn apply(
        &mut self,
        desired: BTreeMap<String, (SessionSpec, Arc<SessionHandle>)>,
        now: Instant,
    ) {
        self.want_echo_socket(desired.values().any(|(spec, _)| spec.echo.is_some()));
        let gone: Vec<String> = self
            .keys
            .keys()
            .filter(|k| !desired.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            self.retire(&key, now);
        }
        for (key, (spec, handle)) in desired {
            if let Some(s) = self.keys.get(&key).and_then(|d| self.sessions.get_mut(d)) {
                if s.spec.endpoint() == spec.endpoint() {
                    if s.spec != spec {
                        info!(key, peer = %spec.peer, "BFD timers changed");
                        s.fsm.set_config(spec.timers, spec.passive, now);
                        match (spec.echo, &mut s.echo) {
                            (Some(i), Some(es)) => {
                                es.echo.set_interval(i);
                                // Re-read forwarding and re-advertise with the new interval.
                                es.path = None;
                            }
                            (Some(i), None) => s.echo = Some(new_echo(s.fsm.local_discr(), i, now)),
                            (None, _) => {
                                s.echo = None;
                                s.fsm.set_required_min_echo_rx(Duration::ZERO);
                                s.set_echo_active(false);
                            }
                        }
                        s.spec = spec;
                    }
                    s.handle = Some(handle);
                    continue;
                }
                self.retire(&key, now);
            }
            self.create(key, spec, handle, now);
        }
    }

    fn create(&mut self, key: String, spec: SessionSpec, handle: Arc<SessionHandle>, now: Instant) {
        let socket = match transmit_socket(&spec, &mut self.rng) {
            Ok(s) => s,
            Err(e) => {
                // Retried on the next apply (the session is still desired and absent).
                error!(key, peer = %spec.peer, error = %e, "cannot open BFD socket");
                return;
            }
        };
        let discr = loop {
            let d: u32 = self.rng.random();
            if d != 0 && !self.sessions.contains_key(&d) {
                break d;
            }
        };
        info!(key, peer = %spec.peer, multihop = spec.multihop, discr, "BFD session created");
        handle.state.send_if_modified(|s| {
            let changed = *s != BfdState::Down;
            *s = BfdState::Down;
            changed
        });
        handle.detection_ms.store(0, Ordering::Relaxed);
        handle.echo_active.store(false, Ordering::Relaxed);
        let fsm = Session::new(discr, spec.timers, spec.passive, now);
        let echo = spec.echo.map(|i| new_echo(discr, i, now));
        self.keys.insert(key.clone(), discr);
        self.sessions.insert(
            discr,
            Live {
                key,
                spec,
                fsm,
                socket,
                handle: Some(handle),
                linger: None,
                echo,
                local_seen: None,
            },
        );
    }

    /// AdminDown (published at once), then a few AdminDown packets before forgetting it.
    fn retire(&mut self, key: &str, now: Instant) {
        let Some(s) = self
            .keys
            .remove(key)
            .and_then(|d| self.sessions.get_mut(&d))
        else {
            return;
        };
        if let Some(t) = s.fsm.admin_down(now) {
            s.publish(t);
        }
        s.set_echo_active(false);
        s.echo = None;
        s.handle = None;
        s.linger = Some((0, now + REMOVED_LINGER));
    }

    async fn shutdown(&mut self) {
        let now = Instant::now();
        let keys: Vec<String> = self.keys.keys().cloned().collect();
        for key in keys {
            self.retire(&key, now);
        }
        let until = now + SHUTDOWN_LINGER;
        loop {
            let now = Instant::now();
            self.tick(now);
            if self.sessions.is_empty() || now >= until {
                return;
            }
            let next = self.next_deadline(now).map_or(until, |d| d.min(until));
            sleep_until(Some(next)).await;
        }
    }

    fn drain(&mut self, index: usize) {
        // The buffer is taken out of `self` so that handling may borrow `self` mutably.
        let mut buf = std::mem::take(&mut self.buf);
        while let Some(rx) = self.receivers.get(index) {
            let multihop = rx.multihop;
            match rx
                .socket
                .try_io(Interest::READABLE, || rx.recv(buf.as_mut_slice()))
            {
                Ok(d) => {
                    let len = d.len.min(buf.len());
                    self.handle_datagram(&buf[..len], &d, multihop, Instant::now());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    warn!(error = %e, "BFD receive failed");
                    break;
                }
            }
        }
        self.buf = buf;
    }

    /// Reads every queued echo packet: ours that came back restart their session's echo
    /// detection timer.
    fn drain_echo(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        let now = Instant::now();
        while let Some(socket) = &self.echo_socket {
            let n = match socket.recv(buf.as_mut_slice()) {
                Ok(n) => n.min(buf.len()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    warn!(error = %e, "BFD echo receive failed");
                    break;
                }
            };
            let Some(d) = echo_frame::parse_ipv4(&buf[..n]) else {
                continue;
            };
            let Ok(p) = EchoPacket::decode(d.payload) else {
                continue;
            };
            let Some(s) = self.sessions.get_mut(&p.my_discr) else {
                continue;
            };
            let Some(es) = &mut s.echo else {
                continue;
            };
            // Ours: sent from and to our own address of this session.
            if es
                .path
                .is_none_or(|path| d.src != path.local || d.dst != path.local)
            {
                continue;
            }
            if es.echo.receive(&p, now)
                && let Some(h) = &s.handle
            {
                h.counters
                    .echo_packets_received
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        self.buf = buf;
    }

    /// Demultiplexes one datagram (RFC 5880 §6.8.6, RFC 5881 §3/§5, RFC 5883 §4/§5).
    fn handle_datagram(&mut self, data: &[u8], d: &Datagram, multihop: bool, now: Instant) {
        let p = match ControlPacket::decode(data) {
            Ok(p) => p,
            Err(e) => {
                debug!(source = %d.source, error = %e, "BFD packet discarded");
                return;
            }
        };
        let discr = if p.your_discr != 0 {
            Some(p.your_discr).filter(|d| self.sessions.contains_key(d))
        } else {
            // Not yet known to the remote: by source, local address and hop mode; active
            // sessions before removed ones (a key may be removed and re-added).
            self.sessions
                .iter()
                .filter(|(_, s)| {
                    s.spec.peer == d.source
                        && s.spec.multihop == multihop
                        && s.spec.local.is_none_or(|l| Some(l) == d.destination)
                })
                .min_by_key(|(_, s)| s.linger.is_some())
                .map(|(discr, _)| *discr)
        };
        let Some(s) = discr.and_then(|discr| self.sessions.get_mut(&discr)) else {
            debug!(source = %d.source, your_discr = p.your_discr, "BFD packet for no session");
            return;
        };
        if s.spec.peer != d.source || s.spec.multihop != multihop {
            debug!(source = %d.source, "BFD packet from the wrong address or port");
            return;
        }
        // GTSM: single hop requires 255 (RFC 5881 §5); multihop at least the profile's
        // minimum TTL (RFC 5883 §5 leaves the check to configuration).
        let min_ttl = if multihop { s.spec.minimum_ttl } else { 255 };
        if d.ttl.is_none_or(|ttl| ttl < min_ttl) {
            debug!(source = %d.source, ttl = ?d.ttl, min_ttl, "BFD packet with low TTL discarded");
            return;
        }
        if let Some(h) = &s.handle {
            h.counters.packets_received.fetch_add(1, Ordering::Relaxed);
        }
        if d.destination.is_some() {
            s.local_seen = d.destination;
        }
        let transition = s.fsm.receive(&p, now);
        // A Final, a new state, or the first packet of a passive session, goes out at once —
        // before the clients hear of a new state: a BGP session that our Up releases must not
        // advertise before the router was told.
        s.transmit(now, &mut self.rng);
        match transition {
            Some(t) => s.publish(t),
            None => s.update_detection(),
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

fn new_echo(discr: u32, interval: Duration, now: Instant) -> EchoState {
    EchoState {
        echo: Echo::new(discr, interval),
        path: None,
        next_lookup: now,
    }
}
