//! The BFD session state machine and timer arithmetic (RFC 5880 §6.8), without I/O.
//!
//! Time is an argument (`now`), randomness too (`jitter` in `[0, 1)`), so every rule is
//! unit-tested deterministically. The runtime feeds received packets and timer ticks in and
//! sends what [`Session::poll_transmit`] returns.

use super::packet::{BfdState, ControlPacket, Diagnostic};
use std::time::{Duration, Instant};

/// While a session is not Up, bfd.DesiredMinTxInterval is at least one second (RFC 5880
/// §6.8.3: "MUST set bfd.DesiredMinTxInterval to a value of not less than one second").
pub const SLOW_TX: Duration = Duration::from_secs(1);

/// The initial bfd.RemoteMinRxInterval (RFC 5880 §6.8.1: "initialized to 1").
const INITIAL_REMOTE_MIN_RX: Duration = Duration::from_micros(1);

/// Timer parameters of one session (from the BFDProfile).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    /// Desired Min TX Interval once Up.
    pub desired_min_tx: Duration,
    /// Required Min RX Interval.
    pub required_min_rx: Duration,
    /// Detect Mult we send (the remote multiplies its detection time by it).
    pub detect_mult: u8,
}

/// A state change, for logs, metrics and the watch channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// State before.
    pub from: BfdState,
    /// State after.
    pub to: BfdState,
    /// bfd.LocalDiag after the change.
    pub diag: Diagnostic,
}

/// The interval actually used between two periodic packets: `interval` reduced by a random
/// 0–25 %, or for a detect multiplier of 1 set to 75–90 % of it (RFC 5880 §6.8.7).
/// `jitter` is a uniform random number in `[0, 1)`.
pub fn jittered(interval: Duration, detect_mult: u8, jitter: f64) -> Duration {
    let r = jitter.clamp(0.0, 1.0);
    let factor = if detect_mult == 1 {
        0.90 - 0.15 * r
    } else {
        1.0 - 0.25 * r
    };
    interval.mul_f64(factor)
}

/// Microseconds in the 32-bit fields of the packet, saturating.
fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// One BFD session's state variables (RFC 5880 §6.8.1) and timers.
#[derive(Clone, Debug)]
pub struct Session {
    state: BfdState,
    remote_state: BfdState,
    local_discr: u32,
    remote_discr: u32,
    local_diag: Diagnostic,
    /// Configured timers (what we want once Up).
    config: Timers,
    passive: bool,
    /// bfd.DesiredMinTxInterval: what we advertise now.
    desired_min_tx: Duration,
    /// bfd.RequiredMinRxInterval: what we advertise now.
    required_min_rx: Duration,
    /// Desired Min TX actually used for transmission: an increase while Up waits for the
    /// Final of its Poll Sequence (§6.8.3).
    tx_in_use: Duration,
    /// Required Min RX used for the detection time: a decrease while Up waits for the Final
    /// (§6.8.3).
    rx_in_use: Duration,
    remote_min_rx: Duration,
    remote_desired_min_tx: Duration,
    remote_detect_mult: u8,
    remote_demand: bool,
    /// The remote's Required Min Echo RX Interval (zero: it loops back no echo packets).
    remote_min_echo_rx: Duration,
    /// bfd.RequiredMinEchoRxInterval we advertise: non-zero while we loop the remote's echo
    /// packets back (echo mode on and this node forwards IPv4).
    required_min_echo_rx: Duration,
    /// Advertised (tx, rx) when the Poll Sequence in progress started.
    poll: Option<(Duration, Duration)>,
    /// Parameters changed during a Poll Sequence: start another one after its Final (a new
    /// one MUST NOT start while one is in progress, §6.5).
    poll_pending: bool,
    /// A Poll was received: send a Final as soon as practicable.
    final_pending: bool,
    next_tx: Option<Instant>,
    last_tx: Option<Instant>,
    detect_deadline: Option<Instant>,
}

impl Session {
    /// A new session in Down. An active session transmits at once; a passive one waits for
    /// the remote's first packet (§6.1: "MUST NOT transmit ... if bfd.RemoteDiscr is zero").
    pub fn new(local_discr: u32, config: Timers, passive: bool, now: Instant) -> Session {
        let desired_min_tx = config.desired_min_tx.max(SLOW_TX);
        Session {
            state: BfdState::Down,
            remote_state: BfdState::Down,
            local_discr,
            remote_discr: 0,
            local_diag: Diagnostic::NoDiagnostic,
            config,
            passive,
            desired_min_tx,
            required_min_rx: config.required_min_rx,
            tx_in_use: desired_min_tx,
            rx_in_use: config.required_min_rx,
            remote_min_rx: INITIAL_REMOTE_MIN_RX,
            remote_desired_min_tx: Duration::ZERO,
            remote_detect_mult: 0,
            remote_demand: false,
            remote_min_echo_rx: Duration::ZERO,
            required_min_echo_rx: Duration::ZERO,
            poll: None,
            poll_pending: false,
            final_pending: false,
            next_tx: Some(now),
            last_tx: None,
            detect_deadline: None,
        }
    }

    /// bfd.SessionState.
    pub fn state(&self) -> BfdState {
        self.state
    }

    /// bfd.LocalDiag.
    pub fn diag(&self) -> Diagnostic {
        self.local_diag
    }

    /// bfd.LocalDiscr.
    pub fn local_discr(&self) -> u32 {
        self.local_discr
    }

    /// bfd.RemoteDiscr (0 until the remote is heard, and again after a detection timeout).
    pub fn remote_discr(&self) -> u32 {
        self.remote_discr
    }

    /// bfd.RemoteSessionState.
    pub fn remote_state(&self) -> BfdState {
        self.remote_state
    }

    /// The remote's last Required Min Echo RX Interval (zero when it wants no echo packets,
    /// and after a detection timeout).
    pub fn remote_min_echo_rx(&self) -> Duration {
        self.remote_min_echo_rx
    }

    /// The remote's last Detect Mult (0 until heard, and after a detection timeout).
    pub fn remote_detect_mult(&self) -> u8 {
        self.remote_detect_mult
    }

    /// Sets the Required Min Echo RX Interval we advertise (zero: send us no echo packets).
    /// It goes out with the next packet; RFC 5880 §6.8.9 needs no Poll Sequence for it.
    pub fn set_required_min_echo_rx(&mut self, interval: Duration) {
        self.required_min_echo_rx = interval;
    }

    /// The Echo function detected a failure (RFC 5880 §6.8.5: echo detection time passed
    /// while Up): the session goes Down with diagnostic 2, Echo Function Failed.
    pub fn echo_failed(&mut self, now: Instant) -> Option<Transition> {
        (self.state == BfdState::Up)
            .then(|| self.set_state(BfdState::Down, Some(Diagnostic::EchoFunctionFailed), now))
    }

    /// Whether a Poll Sequence is in progress.
    pub fn polling(&self) -> bool {
        self.poll.is_some()
    }

    /// The configured timers.
    pub fn config(&self) -> Timers {
        self.config
    }

    /// Detection time (§6.8.4, asynchronous mode): the remote's Detect Mult times the larger
    /// of our RequiredMinRxInterval in force and the remote's last Desired Min TX. `None`
    /// until a packet has been received.
    pub fn detection_time(&self) -> Option<Duration> {
        if self.remote_detect_mult == 0 {
            return None;
        }
        Some(
            self.rx_in_use
                .max(self.remote_desired_min_tx)
                .saturating_mul(u32::from(self.remote_detect_mult)),
        )
    }

    /// Negotiated transmission interval before jitter (§6.8.7): the larger of the Desired Min
    /// TX in force and the remote's Required Min RX.
    pub fn tx_interval(&self) -> Duration {
        self.tx_in_use.max(self.remote_min_rx)
    }

    /// Whether any packet may be sent: a passive session stays silent until it has heard
    /// the remote (§6.8.7: "MUST NOT transmit ... if bfd.RemoteDiscr is zero and the system
    /// is taking the Passive role").
    fn may_send(&self) -> bool {
        !(self.passive && self.remote_discr == 0)
    }

    /// Whether periodic packets may be sent (§6.8.7): not when the remote asks for none
    /// (Required Min RX 0), nor in the remote's Demand mode with both sides Up (§6.6). A
    /// Final answering a Poll is not periodic and is still sent.
    fn may_send_periodic(&self) -> bool {
        self.may_send()
            && !self.remote_min_rx.is_zero()
            && !(self.remote_demand
                && self.state == BfdState::Up
                && self.remote_state == BfdState::Up)
    }

    /// The earliest instant at which [`Session::on_timer`] or [`Session::poll_transmit`] has
    /// something to do.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let tx = if self.final_pending && self.may_send() {
            Some(now)
        } else if self.may_send_periodic() {
            self.next_tx
        } else {
            None
        };
        match (tx, self.detect_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Changes the configured timers (a changed profile). While Up, a Poll Sequence carries
    /// the change; an increase of the transmit interval and a decrease of the receive
    /// interval take effect only when the Final arrives (§6.8.3).
    pub fn set_config(&mut self, config: Timers, passive: bool, now: Instant) {
        self.config = config;
        self.passive = passive;
        self.refresh_intervals(now);
        if self.next_tx.is_none() {
            self.next_tx = Some(now);
        }
    }

    /// Recomputes the advertised intervals after a change of state or configuration.
    fn refresh_intervals(&mut self, now: Instant) {
        let up = self.state == BfdState::Up;
        let tx = if up {
            self.config.desired_min_tx
        } else {
            self.config.desired_min_tx.max(SLOW_TX)
        };
        let rx = self.config.required_min_rx;
        let mut changed = false;
        if tx != self.desired_min_tx {
            changed = true;
            self.desired_min_tx = tx;
            // Sending faster is always safe; slower only after the remote acknowledged.
            self.tx_in_use = if up { self.tx_in_use.min(tx) } else { tx };
        }
        if rx != self.required_min_rx {
            changed = true;
            self.required_min_rx = rx;
            // A longer detection time is always safe; a shorter one only after the Final.
            self.rx_in_use = if up { self.rx_in_use.max(rx) } else { rx };
        }
        if changed && up {
            self.start_poll();
        }
        self.pull_in_next_tx(now);
    }

    fn start_poll(&mut self) {
        if self.poll.is_some() {
            self.poll_pending = true;
        } else {
            self.poll = Some((self.desired_min_tx, self.required_min_rx));
        }
    }

    /// The Final of our Poll Sequence arrived: the intervals it carried are in force.
    fn finish_poll(&mut self, now: Instant) {
        let Some((tx, rx)) = self.poll.take() else {
            return;
        };
        self.tx_in_use = tx.min(self.desired_min_tx);
        self.rx_in_use = rx.max(self.required_min_rx);
        if self.poll_pending {
            self.poll_pending = false;
            self.start_poll();
        }
        self.pull_in_next_tx(now);
    }

    /// When the interval shrinks, do not wait out a long one already scheduled: the next
    /// packet goes at the earliest instant the new interval allows (75 % of it after the
    /// previous packet, the largest jitter reduction).
    fn pull_in_next_tx(&mut self, now: Instant) {
        let earliest = match self.last_tx {
            Some(last) => last + self.tx_interval().mul_f64(0.75),
            None => now,
        };
        if let Some(next) = self.next_tx
            && earliest < next
        {
            self.next_tx = Some(earliest.max(now));
        }
    }

    fn set_state(&mut self, to: BfdState, diag: Option<Diagnostic>, now: Instant) -> Transition {
        let from = self.state;
        self.state = to;
        if let Some(d) = diag {
            self.local_diag = d;
        }
        if to != BfdState::Up {
            // Poll Sequences negotiate the Up intervals; leaving Up abandons them.
            self.poll = None;
            self.poll_pending = false;
        }
        self.refresh_intervals(now);
        Transition {
            from,
            to,
            diag: self.local_diag,
        }
    }

    /// Processes a received, decoded packet that demultiplexed to this session (RFC 5880
    /// §6.8.6, from "Set bfd.RemoteDiscr" on; the packet-only checks are in the decoder).
    pub fn receive(&mut self, p: &ControlPacket, now: Instant) -> Option<Transition> {
        self.remote_discr = p.my_discr;
        self.remote_state = p.state;
        self.remote_demand = p.demand;
        self.remote_min_rx = Duration::from_micros(u64::from(p.required_min_rx_us));
        self.remote_desired_min_tx = Duration::from_micros(u64::from(p.desired_min_tx_us));
        self.remote_detect_mult = p.detect_mult;
        self.remote_min_echo_rx = Duration::from_micros(u64::from(p.required_min_echo_rx_us));
        if p.final_ && self.poll.is_some() {
            self.finish_poll(now);
        }
        if self.state == BfdState::AdminDown {
            return None;
        }
        self.detect_deadline = self.detection_time().map(|d| now + d);
        let transition = if p.state == BfdState::AdminDown {
            (self.state != BfdState::Down).then(|| {
                self.set_state(
                    BfdState::Down,
                    Some(Diagnostic::NeighborSignaledSessionDown),
                    now,
                )
            })
        } else {
            match (self.state, p.state) {
                (BfdState::Down, BfdState::Down) => Some(self.set_state(BfdState::Init, None, now)),
                (BfdState::Down, BfdState::Init) => Some(self.set_state(BfdState::Up, None, now)),
                (BfdState::Init, BfdState::Init | BfdState::Up) => {
                    Some(self.set_state(BfdState::Up, None, now))
                }
                (BfdState::Up, BfdState::Down) => Some(self.set_state(
                    BfdState::Down,
                    Some(Diagnostic::NeighborSignaledSessionDown),
                    now,
                )),
                _ => None,
            }
        };
        if p.poll {
            self.final_pending = true;
        }
        // The remote's Required Min RX may have shrunk, or a passive session just heard its
        // peer for the first time.
        if self.next_tx.is_none() {
            self.next_tx = Some(now);
        }
        self.pull_in_next_tx(now);
        if transition.is_some() {
            self.send_state_at_once(now);
        }
        transition
    }

    /// Checks the detection timer (§6.8.4): when it expired, the remote is forgotten and an
    /// Init or Up session goes Down with diagnostic 1.
    pub fn on_timer(&mut self, now: Instant) -> Option<Transition> {
        let deadline = self.detect_deadline?;
        if now < deadline {
            return None;
        }
        self.detect_deadline = None;
        self.remote_discr = 0;
        self.remote_state = BfdState::Down;
        self.remote_demand = false;
        self.remote_min_rx = INITIAL_REMOTE_MIN_RX;
        self.remote_detect_mult = 0;
        self.remote_desired_min_tx = Duration::ZERO;
        self.remote_min_echo_rx = Duration::ZERO;
        let transition = matches!(self.state, BfdState::Init | BfdState::Up).then(|| {
            self.set_state(
                BfdState::Down,
                Some(Diagnostic::ControlDetectionTimeExpired),
                now,
            )
        });
        if transition.is_some() {
            self.send_state_at_once(now);
        }
        transition
    }

    /// A new state is told to the remote at once, not with the next periodic packet (as the
    /// reference implementations do). Going Up on the remote's Init and waiting for the timer
    /// (three quarters of the fast interval after our last packet: 75 ms at 100 ms) left the
    /// remote in Init meanwhile, and the routes that our Up releases to the BGP sessions
    /// unprotected by the remote's BFD: a speaker frozen then stayed the router's next hop
    /// until the BGP hold time ran out.
    fn send_state_at_once(&mut self, now: Instant) {
        self.next_tx = Some(now);
    }

    /// Takes the session administratively down (peer removed, speaker stopping). The next
    /// packet, sent at once, says AdminDown with diagnostic 7 so the remote goes Down
    /// immediately instead of after its detection time.
    pub fn admin_down(&mut self, now: Instant) -> Option<Transition> {
        if self.state == BfdState::AdminDown {
            return None;
        }
        self.detect_deadline = None;
        let t = self.set_state(
            BfdState::AdminDown,
            Some(Diagnostic::AdministrativelyDown),
            now,
        );
        self.next_tx = Some(now);
        Some(t)
    }

    /// The packet to send now, if any: a Final answering a Poll (sent without regard to the
    /// transmit timer), else the periodic packet when it is due. Call until it returns `None`.
    /// `jitter` is a uniform random number in `[0, 1)`.
    pub fn poll_transmit(&mut self, now: Instant, jitter: f64) -> Option<ControlPacket> {
        if !self.may_send() {
            return None;
        }
        let periodic_due = self.may_send_periodic() && self.next_tx.is_some_and(|t| t <= now);
        let p = if self.final_pending {
            self.final_pending = false;
            // P and F MUST NOT both be set: with our own Poll in progress the Final goes
            // alone, and so it does when no periodic packet is due.
            if self.poll.is_some() || !periodic_due {
                return Some(self.packet(false, true));
            }
            // Otherwise the Final rides on the periodic packet.
            self.packet(false, true)
        } else if periodic_due {
            self.packet(self.poll.is_some(), false)
        } else {
            return None;
        };
        self.last_tx = Some(now);
        self.next_tx = Some(now + jittered(self.tx_interval(), self.config.detect_mult, jitter));
        Some(p)
    }

    fn packet(&self, poll: bool, final_: bool) -> ControlPacket {
        ControlPacket {
            diag: self.local_diag,
            state: self.state,
            poll,
            final_,
            cpi: false,
            demand: false,
            detect_mult: self.config.detect_mult,
            my_discr: self.local_discr,
            your_discr: self.remote_discr,
            desired_min_tx_us: micros(self.desired_min_tx),
            required_min_rx_us: micros(self.required_min_rx),
            // 0 tells the remote not to send echo packets (§6.8.9).
            required_min_echo_rx_us: micros(self.required_min_echo_rx),
        }
    }
}

#[cfg(test)]
mod tests;
