//! The RFC 4271 §8 finite state machine, pure: `step(config, fsm, event) -> (fsm, actions)`.
//!
//! The session task owns sockets and timers and only translates: socket results and received
//! messages become [`Event`]s, returned [`Action`]s become writes, connects, timer changes.
//! Everything that decides — OPEN validation, hold time negotiation, which NOTIFICATION to
//! send, when to give up and retry — lives here and is unit-tested transition by transition.
//!
//! Differences from the RFC's full machine, on purpose:
//! - Active-only (like MetalLB's native mode): we never listen, so there is no connection
//!   collision to resolve. `Active` is the state "waiting for the ConnectRetry timer before the
//!   next connect attempt"; `Connect` is "a connect attempt is in flight".
//! - Automatic restart is built in: after an error the machine goes to `Idle` and arms the
//!   ConnectRetry timer; its expiry in `Idle` restarts the session unless it was stopped
//!   manually.
//! - The ConnectRetry interval is the BGPPeer's `connectTime` when it is set, as MetalLB's FRR
//!   mode writes it (`timers connect`): the timer starts with each connect attempt, a refused
//!   attempt waits for it in `Active`, and an attempt still in flight when it expires is
//!   abandoned for a new one (RFC 4271 §8.2.2, Connect state, Event 9) — so attempts start
//!   `connectTime` apart whether the peer refuses or never answers. Without `connectTime`
//!   the timer is armed after each failure with exponential backoff (1 s, 2 s, 4 s … capped at
//!   30 s, reset on Established) and an attempt gives up after [`CONNECT_TIMEOUT`].
//! - A timer event for a timer the current state does not run is ignored: a timer may fire
//!   just as the session task is cancelling it, and that race must not reset the session.
//! - BFD strict mode (draft-ietf-idr-bgp-bfd-strict-mode, [`FsmConfig::bfd_strict`]): on
//!   the peer's OPEN while BFD is not Up, the machine stays in OpenSent without sending its
//!   KEEPALIVE (the draft's OpenSentBfdUpPending; a KEEPALIVE from the peer meanwhile is the
//!   draft's OpenSentConfirmedBfdUpPending) until [`Event::BfdUp`]. The draft enters these
//!   sub-states only when both ends announced the BFD Strict-Mode capability; we hold also
//!   when the peer did not announce it (as IOS-XR's `bfd strict-mode` and FRR's `neighbor ..
//!   bfd strict` do): the user asked that this session never carry traffic on a path BFD has
//!   not confirmed, and most routers (FRR before 10.4, BIRD, GoBGP) do not implement the
//!   draft. Whether the peer announced it is reported ([`Negotiated::bfd_strict`]).

use crate::bgp::codec::notification::{code, subcode};
use crate::bgp::codec::{AS_TRANS, Notification, PeerOpen};
use ferrolb_config::PeerAsn;
use std::net::Ipv4Addr;
use std::time::Duration;

/// RFC 4271 session states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Not running, or waiting for an automatic restart.
    Idle,
    /// TCP connect in flight.
    Connect,
    /// Waiting for the ConnectRetry timer before connecting again.
    Active,
    /// OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for the first KEEPALIVE.
    OpenConfirm,
    /// Session up.
    Established,
}

impl State {
    /// Name as in RFC 4271 (and `BgpPeerStatus.state`).
    pub fn name(self) -> &'static str {
        match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        }
    }
}

/// The three timers of RFC 4271.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// ConnectRetry (our backoff timer).
    ConnectRetry,
    /// Hold.
    Hold,
    /// Keepalive.
    Keepalive,
}

/// Why a session is stopped administratively; each maps to its RFC 4486 Cease subcode, and
/// to whether the router should keep our routes when graceful restart was negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopCause {
    /// The speaker stops for good (its node is leaving, or hitless operations are off): 6/2,
    /// Administrative Shutdown, as a Hard Reset where RFC 8538's N bit was negotiated so the
    /// router drops our routes at once.
    Shutdown,
    /// The speaker restarts in place and comes back within the restart time: with graceful
    /// restart negotiated the router must keep our routes, so the session closes without a
    /// NOTIFICATION (RFC 4724), or with Cease / Administrative Reset (6/4) where the N bit
    /// was negotiated (RFC 8538 §4: every NOTIFICATION but Hard Reset keeps the routes).
    /// Without graceful restart it is a [`StopCause::Shutdown`].
    Restart,
    /// The BGPPeer no longer applies to this node (6/3, Peer De-configured; a Hard Reset where
    /// N was negotiated, as RFC 8538 §5 suggests for this subcode).
    Deconfigured,
    /// The BGPPeer's configuration changed; the session reconnects (6/6, Other
    /// Configuration Change, which RFC 8538 §5 lets keep the routes through the reconnect).
    Reconfigured,
}

impl StopCause {
    /// The NOTIFICATION that closes a session stopped for this cause, given what its OPEN
    /// exchange negotiated (`None` before it did); `None` closes the connection without one.
    pub fn notification(self, negotiated: Option<&Negotiated>) -> Option<Notification> {
        let graceful = negotiated.is_some_and(|n| n.graceful_restart);
        let notification_kept = negotiated.is_some_and(|n| n.graceful_notification);
        let hard = |n: Notification| {
            if notification_kept {
                Notification::hard_reset(&n)
            } else {
                n
            }
        };
        match self {
            StopCause::Restart if notification_kept => Some(Notification::cease_admin_reset()),
            StopCause::Restart if graceful => None,
            StopCause::Restart | StopCause::Shutdown => {
                Some(hard(Notification::cease_admin_shutdown()))
            }
            StopCause::Deconfigured => Some(hard(Notification::cease_deconfigured())),
            StopCause::Reconfigured => Some(Notification::cease_config_change()),
        }
    }
}

/// Inputs of the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Administrative start (session configured).
    ManualStart,
    /// Administrative stop (speaker shutting down, peer removed or reconfigured); the cause
    /// picks the Cease subcode sent when connected.
    ManualStop(StopCause),
    /// The BFD session protecting this peer went from Up to Down (RFC 5882 §4.3): tear the
    /// session down at once with Cease / BFD Down (6/10) and retry later.
    BfdDown,
    /// The BFD session protecting this peer is Up (releases a strict-mode hold).
    BfdUp,
    /// The BFD session left Up without failing (the peer took it AdminDown, or it was
    /// removed): no teardown (RFC 5882 §3.2), but strict mode holds the next session again.
    BfdNotUp,
    /// ConnectRetry timer fired.
    ConnectRetryTimerExpires,
    /// Hold timer fired.
    HoldTimerExpires,
    /// Keepalive timer fired.
    KeepaliveTimerExpires,
    /// Our connect succeeded.
    TcpConnectionConfirmed,
    /// Connect failed or timed out, or the established connection closed/failed.
    TcpConnectionFails,
    /// A well-formed OPEN arrived (the machine validates it against the configuration).
    BgpOpen(PeerOpen),
    /// A message failed header checks; the NOTIFICATION to send.
    BgpHeaderErr(Notification),
    /// An OPEN failed parsing; the NOTIFICATION to send.
    BgpOpenMsgErr(Notification),
    /// A NOTIFICATION arrived.
    NotifMsg(Notification),
    /// A KEEPALIVE arrived.
    KeepAliveMsg,
    /// An UPDATE arrived.
    UpdateMsg,
    /// An UPDATE failed parsing; the NOTIFICATION to send.
    UpdateMsgErr(Notification),
    /// A ROUTE-REFRESH arrived.
    RouteRefreshMsg,
}

/// Outputs of the machine, executed in order by the session task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start a TCP connect (the session reports the result as an event).
    Connect,
    /// Close the TCP connection.
    DropTcp,
    /// Send our OPEN.
    SendOpen,
    /// Send a KEEPALIVE.
    SendKeepalive,
    /// Send a NOTIFICATION (then the session closes the connection: a DropTcp follows).
    SendNotification(Notification),
    /// (Re)start a timer.
    StartTimer(Timer, Duration),
    /// Stop a timer.
    StopTimer(Timer),
    /// The session is up: send the whole Adj-RIB-Out.
    Established(Negotiated),
    /// The peer asked for our routes again (ROUTE-REFRESH): resend the whole Adj-RIB-Out.
    ResendAll,
    /// The session left Established or failed to get there; the reason, for status and logs.
    Down(String),
    /// Strict mode holds the session in OpenSent until BFD is Up (for status and logs).
    WaitingForBfd,
}

/// Static parameters of the machine, from the peer configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsmConfig {
    /// Our AS.
    pub local_as: u32,
    /// Expected peer AS.
    pub peer_as: PeerAsn,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Proposed hold time (seconds; 0 disables keepalives, else >= 3).
    pub hold_time: u16,
    /// Configured keepalive interval (seconds); scaled down if the negotiated hold time is
    /// shorter than ours.
    pub keepalive_time: u16,
    /// We want IPv4 unicast on this session.
    pub ipv4: bool,
    /// We want IPv6 unicast on this session.
    pub ipv6: bool,
    /// ConnectRetryTime, the BGPPeer's `connectTime`: attempts start this far apart. `None`:
    /// back off after each failure (see [`retry_delay`]).
    pub connect_retry: Option<Duration>,
    /// We announce graceful restart (with the N bit) in our OPEN.
    pub graceful_restart: bool,
    /// BFD strict mode: announce the BFD Strict-Mode capability and do not leave OpenSent
    /// (no KEEPALIVE) until the BFD session is Up.
    pub bfd_strict: bool,
}

impl FsmConfig {
    /// Wait before the next attempt after `failures` consecutive failures.
    pub fn retry_delay(&self, failures: u32) -> Duration {
        self.connect_retry.unwrap_or_else(|| retry_delay(failures))
    }

    /// How long one TCP connect may take: the ConnectRetry interval when `connectTime` is set
    /// (its expiry abandons the attempt anyway), else [`CONNECT_TIMEOUT`].
    pub fn connect_timeout(&self) -> Duration {
        self.connect_retry.unwrap_or(CONNECT_TIMEOUT)
    }
}

/// What the OPEN exchange settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// Peer AS.
    pub peer_as: u32,
    /// Peer BGP identifier.
    pub peer_router_id: Ipv4Addr,
    /// Hold time (0: no hold or keepalive timers).
    pub hold_time: u16,
    /// Keepalive interval (0 when hold time is 0).
    pub keepalive_time: u16,
    /// AS numbers are 4 octets in AS_PATH.
    pub four_octet_as: bool,
    /// IPv4 unicast may be sent.
    pub ipv4: bool,
    /// IPv6 unicast may be sent.
    pub ipv6: bool,
    /// eBGP session.
    pub ebgp: bool,
    /// Peer understands ROUTE-REFRESH.
    pub route_refresh: bool,
    /// Both ends announced graceful restart (RFC 4724): the router keeps our routes, as stale,
    /// when the session closes without a NOTIFICATION.
    pub graceful_restart: bool,
    /// Both ends set the N bit (RFC 8538): NOTIFICATIONs other than Hard Reset keep the routes
    /// too, and Hard Reset is how to make the router drop them.
    pub graceful_notification: bool,
    /// Both ends announced the BFD Strict-Mode capability (the draft's BfdStrictNegotiated).
    pub bfd_strict: bool,
}

/// The machine's state and the bookkeeping the transitions need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fsm {
    /// Current state.
    pub state: State,
    /// Started and not manually stopped: automatic restart is allowed.
    pub admin_up: bool,
    /// Consecutive failed attempts since the last Established (drives the backoff).
    pub failures: u32,
    /// Negotiated parameters, from OpenConfirm on (and while a strict-mode hold waits).
    pub negotiated: Option<Negotiated>,
    /// The protecting BFD session is Up, as last reported by BFD events.
    pub bfd_up: bool,
    /// Strict mode holds the session in OpenSent until BFD is Up; `Some(true)` once the
    /// peer's KEEPALIVE arrived meanwhile (so BFD Up goes straight to Established).
    pub bfd_hold: Option<bool>,
}

impl Default for Fsm {
    fn default() -> Self {
        Fsm::new()
    }
}

/// First retry delay.
pub const RETRY_BASE: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub const RETRY_CAP: Duration = Duration::from_secs(30);
/// TCP connect timeout when `connectTime` is unset.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Hold timer while waiting for the peer's OPEN (RFC 4271 suggests 4 minutes).
pub const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);

/// Retry delay after `failures` consecutive failures (1 → RETRY_BASE, doubling, capped).
pub fn retry_delay(failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(16);
    (RETRY_BASE * (1u32 << shift)).min(RETRY_CAP)
}

/// Validates a peer's OPEN and negotiates: Ok, or the NOTIFICATION RFC 4271 §6.2 prescribes.
pub fn negotiate(cfg: &FsmConfig, open: &PeerOpen) -> Result<Negotiated, Notification> {
    if open.version != 4 {
        // Data: the largest version we support, 2 octets.
        return Err(Notification::new(
            code::OPEN_MESSAGE,
            subcode::UNSUPPORTED_VERSION_NUMBER,
            4u16.to_be_bytes().to_vec(),
        ));
    }
    let as_ok = match cfg.peer_as {
        PeerAsn::Fixed(asn) => open.asn == asn,
        PeerAsn::Internal => open.asn == cfg.local_as,
        PeerAsn::External => open.asn != cfg.local_as,
    };
    if !as_ok {
        return Err(Notification::new(
            code::OPEN_MESSAGE,
            subcode::BAD_PEER_AS,
            open.my_as_field.to_be_bytes().to_vec(),
        ));
    }
    // A 4-octet AS capability must come with AS_TRANS in the 2-octet field when the AS does
    // not fit, and with the AS itself when it does (RFC 6793 §4.1 leaves mismatches to the
    // receiver; a mismatching 2-octet AS is a Bad Peer AS).
    if open.four_octet_as {
        let expected = u16::try_from(open.asn).unwrap_or(AS_TRANS);
        if open.my_as_field != expected && open.my_as_field != AS_TRANS {
            return Err(Notification::new(
                code::OPEN_MESSAGE,
                subcode::BAD_PEER_AS,
                open.my_as_field.to_be_bytes().to_vec(),
            ));
        }
    }
    let ebgp = open.asn != cfg.local_as;
    // RFC 6286: the identifier must be non-zero, and differ from ours on iBGP.
    if open.router_id.is_unspecified() || (!ebgp && open.router_id == cfg.router_id) {
        return Err(Notification::new(
            code::OPEN_MESSAGE,
            subcode::BAD_BGP_IDENTIFIER,
            open.router_id.octets().to_vec(),
        ));
    }
    if open.hold_time != 0 && open.hold_time < 3 {
        return Err(Notification::new(
            code::OPEN_MESSAGE,
            subcode::UNACCEPTABLE_HOLD_TIME,
            open.hold_time.to_be_bytes().to_vec(),
        ));
    }
    let hold_time = cfg.hold_time.min(open.hold_time);
    let keepalive_time = if hold_time == 0 {
        0
    } else if cfg.keepalive_time == 0 || cfg.hold_time == 0 {
        (hold_time / 3).max(1)
    } else {
        // Keep the configured ratio when the peer forces a shorter hold time.
        let scaled =
            u32::from(cfg.keepalive_time) * u32::from(hold_time) / u32::from(cfg.hold_time);
        u16::try_from(scaled)
            .unwrap_or(u16::MAX)
            .clamp(1, hold_time)
    };
    let ipv4 = cfg.ipv4 && open.accepts_ipv4();
    let ipv6 = cfg.ipv6 && open.mp_ipv6;
    Ok(Negotiated {
        peer_as: open.asn,
        peer_router_id: open.router_id,
        hold_time,
        keepalive_time,
        four_octet_as: open.four_octet_as,
        ipv4,
        ipv6,
        ebgp,
        route_refresh: open.route_refresh,
        graceful_restart: cfg.graceful_restart && open.graceful_restart,
        graceful_notification: cfg.graceful_restart
            && open.graceful_restart
            && open.graceful_notification,
        bfd_strict: cfg.bfd_strict && open.bfd_strict,
    })
}

impl Fsm {
    /// A stopped machine.
    pub fn new() -> Self {
        Fsm {
            state: State::Idle,
            admin_up: false,
            failures: 0,
            negotiated: None,
            bfd_up: false,
            bfd_hold: None,
        }
    }
}

fn secs(s: u16) -> Duration {
    Duration::from_secs(u64::from(s))
}

/// Tears the session down after an error: optional NOTIFICATION, close, stop timers, go Idle
/// and arm the backoff timer (when automatic restart is allowed).
fn fail(
    cfg: &FsmConfig,
    mut fsm: Fsm,
    notification: Option<Notification>,
    reason: String,
) -> (Fsm, Vec<Action>) {
    let mut actions = Vec::new();
    if let Some(n) = notification {
        actions.push(Action::SendNotification(n));
    }
    actions.push(Action::DropTcp);
    actions.push(Action::StopTimer(Timer::Hold));
    actions.push(Action::StopTimer(Timer::Keepalive));
    actions.push(Action::Down(reason));
    fsm.failures = fsm.failures.saturating_add(1);
    fsm.negotiated = None;
    fsm.bfd_hold = None;
    fsm.state = State::Idle;
    if fsm.admin_up {
        actions.push(Action::StartTimer(
            Timer::ConnectRetry,
            cfg.retry_delay(fsm.failures),
        ));
    } else {
        actions.push(Action::StopTimer(Timer::ConnectRetry));
    }
    (fsm, actions)
}

/// Manual stop: the Cease (when connected), close, Idle.
fn stop(mut fsm: Fsm, cease: Option<Notification>) -> (Fsm, Vec<Action>) {
    let mut actions = Vec::new();
    if let Some(n) = cease {
        actions.push(Action::SendNotification(n));
    }
    if fsm.state != State::Idle {
        actions.push(Action::DropTcp);
    }
    actions.extend([
        Action::StopTimer(Timer::ConnectRetry),
        Action::StopTimer(Timer::Hold),
        Action::StopTimer(Timer::Keepalive),
    ]);
    if fsm.state != State::Idle {
        actions.push(Action::Down("stopped administratively".into()));
    }
    fsm.admin_up = false;
    fsm.failures = 0;
    fsm.negotiated = None;
    fsm.bfd_hold = None;
    fsm.state = State::Idle;
    (fsm, actions)
}

/// Starts an attempt; with `connectTime` set the ConnectRetry timer runs from here, so the
/// next attempt starts one interval after this one whatever becomes of it.
fn start_connect(cfg: &FsmConfig, mut fsm: Fsm) -> (Fsm, Vec<Action>) {
    fsm.state = State::Connect;
    let timer = match cfg.connect_retry {
        Some(d) => Action::StartTimer(Timer::ConnectRetry, d),
        None => Action::StopTimer(Timer::ConnectRetry),
    };
    (fsm, vec![timer, Action::Connect])
}

fn hold_restart(fsm: &Fsm) -> Vec<Action> {
    match &fsm.negotiated {
        Some(n) if n.hold_time > 0 => vec![Action::StartTimer(Timer::Hold, secs(n.hold_time))],
        _ => Vec::new(),
    }
}

fn unexpected(cfg: &FsmConfig, fsm: Fsm, what: &str) -> (Fsm, Vec<Action>) {
    let subcode = match fsm.state {
        State::OpenSent => subcode::UNEXPECTED_IN_OPEN_SENT,
        State::OpenConfirm => subcode::UNEXPECTED_IN_OPEN_CONFIRM,
        State::Established => subcode::UNEXPECTED_IN_ESTABLISHED,
        _ => subcode::UNSPECIFIC,
    };
    let reason = format!("unexpected {what} in {}", fsm.state.name());
    fail(cfg, fsm, Some(Notification::fsm_error(subcode)), reason)
}

/// One transition.
pub fn step(cfg: &FsmConfig, fsm: &Fsm, event: Event) -> (Fsm, Vec<Action>) {
    use Event as E;
    use State as S;
    let mut fsm = fsm.clone();
    match event {
        E::BfdUp => fsm.bfd_up = true,
        E::BfdDown | E::BfdNotUp => fsm.bfd_up = false,
        _ => {}
    }
    match (fsm.state, event) {
        // ---- administrative events, any state
        (S::Idle, E::ManualStart) => {
            let mut fsm = fsm;
            fsm.admin_up = true;
            fsm.failures = 0;
            start_connect(cfg, fsm)
        }
        (_, E::ManualStart) => (fsm, Vec::new()),
        (S::Idle | S::Connect | S::Active, E::ManualStop(_)) => stop(fsm, None),
        (_, E::ManualStop(cause)) => {
            let notification = cause.notification(fsm.negotiated.as_ref());
            stop(fsm, notification)
        }
        // BFD only matters once a connection exists; before, the connect attempt itself
        // tells whether the peer is there.
        (S::Idle | S::Connect | S::Active, E::BfdDown) => (fsm, Vec::new()),
        (_, E::BfdDown) => fail(
            cfg,
            fsm,
            Some(Notification::cease_bfd_down()),
            "BFD session down".into(),
        ),
        // Strict mode: BFD is Up, the held session goes on (draft §8.5: send the KEEPALIVE;
        // to Established at once if the peer's KEEPALIVE came meanwhile).
        (S::OpenSent, E::BfdUp) if fsm.bfd_hold.is_some() => {
            let keepalive_seen = fsm.bfd_hold.take() == Some(true);
            let (fsm, mut actions) = open_confirm(fsm);
            if keepalive_seen {
                let (fsm, more) = established(fsm);
                actions.extend(more);
                (fsm, actions)
            } else {
                (fsm, actions)
            }
        }
        (_, E::BfdUp | E::BfdNotUp) => (fsm, Vec::new()),

        // ---- Idle: only the automatic restart timer matters
        (S::Idle, E::ConnectRetryTimerExpires) if fsm.admin_up => start_connect(cfg, fsm),
        (S::Idle, _) => (fsm, Vec::new()),

        // ---- Connect: a connect is in flight
        (S::Connect, E::TcpConnectionConfirmed) => {
            let mut fsm = fsm;
            fsm.state = S::OpenSent;
            (
                fsm,
                vec![
                    Action::StopTimer(Timer::ConnectRetry),
                    Action::SendOpen,
                    Action::StartTimer(Timer::Hold, OPEN_HOLD_TIME),
                ],
            )
        }
        (S::Connect, E::TcpConnectionFails) => {
            let mut fsm = fsm;
            fsm.failures = fsm.failures.saturating_add(1);
            fsm.state = S::Active;
            let mut actions = vec![
                Action::DropTcp,
                Action::Down("TCP connection failed".into()),
            ];
            // With connectTime the timer started with the attempt keeps running.
            if cfg.connect_retry.is_none() {
                actions.push(Action::StartTimer(
                    Timer::ConnectRetry,
                    retry_delay(fsm.failures),
                ));
            }
            (fsm, actions)
        }
        // RFC 4271 §8.2.2 Connect, Event 9: abandon the attempt and start another. Only
        // connectTime runs the timer during an attempt; otherwise the expiry is stale.
        (S::Connect, E::ConnectRetryTimerExpires) if cfg.connect_retry.is_some() => {
            let mut fsm = fsm;
            fsm.failures = fsm.failures.saturating_add(1);
            let (fsm, connect) = start_connect(cfg, fsm);
            let mut actions = vec![
                Action::DropTcp,
                Action::Down("TCP connect did not complete within connectTime".into()),
            ];
            actions.extend(connect);
            (fsm, actions)
        }
        (
            S::Connect,
            E::ConnectRetryTimerExpires | E::HoldTimerExpires | E::KeepaliveTimerExpires,
        ) => (fsm, Vec::new()),
        (S::Connect, other) => {
            let reason = format!("unexpected {other:?} in Connect");
            fail(cfg, fsm, None, reason)
        }

        // ---- Active: waiting to retry
        (S::Active, E::ConnectRetryTimerExpires) => start_connect(cfg, fsm),
        (S::Active, E::HoldTimerExpires | E::KeepaliveTimerExpires) => (fsm, Vec::new()),
        (S::Active, other) => {
            let reason = format!("unexpected {other:?} in Active");
            fail(cfg, fsm, None, reason)
        }

        // ---- OpenSent: waiting for the peer's OPEN
        (S::OpenSent, E::BgpOpen(_)) if fsm.bfd_hold.is_some() => {
            unexpected(cfg, fsm, "second OPEN")
        }
        (S::OpenSent, E::BgpOpen(open)) => match negotiate(cfg, &open) {
            Ok(n) if cfg.bfd_strict && !fsm.bfd_up => {
                // Held: no KEEPALIVE until BFD is Up. The hold timer keeps bounding the wait
                // (the negotiated hold time; with 0, the OPEN hold timer already running).
                let mut actions = Vec::new();
                if n.hold_time > 0 {
                    actions.push(Action::StartTimer(Timer::Hold, secs(n.hold_time)));
                }
                actions.push(Action::WaitingForBfd);
                fsm.negotiated = Some(n);
                fsm.bfd_hold = Some(false);
                (fsm, actions)
            }
            Ok(n) => {
                fsm.negotiated = Some(n);
                open_confirm(fsm)
            }
            Err(notification) => {
                let reason = format!("rejected OPEN: {notification}");
                fail(cfg, fsm, Some(notification), reason)
            }
        },
        (S::OpenSent, E::TcpConnectionFails) => {
            // RFC 4271: close, restart ConnectRetry, go to Active.
            let mut fsm = fsm;
            fsm.failures = fsm.failures.saturating_add(1);
            fsm.state = S::Active;
            let d = cfg.retry_delay(fsm.failures);
            (
                fsm,
                vec![
                    Action::DropTcp,
                    Action::StopTimer(Timer::Hold),
                    Action::Down("connection closed in OpenSent".into()),
                    Action::StartTimer(Timer::ConnectRetry, d),
                ],
            )
        }
        (S::OpenSent, E::ConnectRetryTimerExpires | E::KeepaliveTimerExpires) => (fsm, Vec::new()),
        // Strict-mode hold: the peer (in OpenConfirm) sends KEEPALIVEs; remember it and keep
        // the hold timer fed (draft §8.5.6, OpenSentConfirmedBfdUpPending).
        (S::OpenSent, E::KeepAliveMsg) if fsm.bfd_hold.is_some() => {
            fsm.bfd_hold = Some(true);
            let actions = hold_restart(&fsm);
            (fsm, actions)
        }

        // ---- events common to OpenSent, OpenConfirm, Established
        (S::OpenSent | S::OpenConfirm | S::Established, E::HoldTimerExpires) => fail(
            cfg,
            fsm,
            Some(Notification::hold_timer_expired()),
            "hold timer expired".into(),
        ),
        (
            S::OpenSent | S::OpenConfirm | S::Established,
            E::BgpHeaderErr(n) | E::BgpOpenMsgErr(n),
        ) => {
            let reason = format!("malformed message from peer: {n}");
            fail(cfg, fsm, Some(n), reason)
        }
        (S::OpenSent | S::OpenConfirm | S::Established, E::NotifMsg(n)) => {
            // Never answer a NOTIFICATION with one.
            let reason = format!("NOTIFICATION received: {n}");
            fail(cfg, fsm, None, reason)
        }
        (S::OpenConfirm | S::Established, E::TcpConnectionFails) => {
            fail(cfg, fsm, None, "connection closed by peer".into())
        }
        (S::OpenSent, other) => unexpected(cfg, fsm, &event_name(&other)),

        // ---- OpenConfirm: waiting for the first KEEPALIVE
        (S::OpenConfirm, E::KeepAliveMsg) => established(fsm),
        (S::OpenConfirm, E::KeepaliveTimerExpires) => {
            let actions = keepalive(&fsm);
            (fsm, actions)
        }
        (S::OpenConfirm, E::ConnectRetryTimerExpires) => (fsm, Vec::new()),
        (S::OpenConfirm, other) => unexpected(cfg, fsm, &event_name(&other)),

        // ---- Established
        (S::Established, E::KeepaliveTimerExpires) => {
            let actions = keepalive(&fsm);
            (fsm, actions)
        }
        (S::Established, E::KeepAliveMsg | E::UpdateMsg) => {
            let actions = hold_restart(&fsm);
            (fsm, actions)
        }
        (S::Established, E::RouteRefreshMsg) => {
            let mut actions = hold_restart(&fsm);
            actions.push(Action::ResendAll);
            (fsm, actions)
        }
        (S::Established, E::UpdateMsgErr(n)) => {
            let reason = format!("malformed UPDATE from peer: {n}");
            fail(cfg, fsm, Some(n), reason)
        }
        (S::Established, E::ConnectRetryTimerExpires) => (fsm, Vec::new()),
        (S::Established, other) => unexpected(cfg, fsm, &event_name(&other)),
    }
}

/// OPENs exchanged (negotiated set): our KEEPALIVE, the timers, OpenConfirm.
fn open_confirm(mut fsm: Fsm) -> (Fsm, Vec<Action>) {
    let mut actions = vec![Action::SendKeepalive];
    match &fsm.negotiated {
        Some(n) if n.hold_time > 0 => {
            actions.push(Action::StartTimer(Timer::Keepalive, secs(n.keepalive_time)));
            actions.push(Action::StartTimer(Timer::Hold, secs(n.hold_time)));
        }
        _ => actions.push(Action::StopTimer(Timer::Hold)),
    }
    fsm.state = State::OpenConfirm;
    (fsm, actions)
}

/// The peer's first KEEPALIVE after ours: Established.
fn established(mut fsm: Fsm) -> (Fsm, Vec<Action>) {
    fsm.state = State::Established;
    fsm.failures = 0;
    let mut actions = hold_restart(&fsm);
    if let Some(n) = fsm.negotiated.clone() {
        actions.push(Action::Established(n));
    }
    (fsm, actions)
}

fn keepalive(fsm: &Fsm) -> Vec<Action> {
    match &fsm.negotiated {
        Some(n) if n.keepalive_time > 0 => vec![
            Action::SendKeepalive,
            Action::StartTimer(Timer::Keepalive, secs(n.keepalive_time)),
        ],
        _ => Vec::new(),
    }
}

fn event_name(e: &Event) -> String {
    match e {
        Event::BgpOpen(_) => "OPEN".into(),
        Event::KeepAliveMsg => "KEEPALIVE".into(),
        Event::UpdateMsg | Event::UpdateMsgErr(_) => "UPDATE".into(),
        Event::RouteRefreshMsg => "ROUTE-REFRESH".into(),
        Event::TcpConnectionConfirmed => "TCP connection".into(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests;
