//! The BFD Echo function (RFC 5880 §6.4, §6.8.9; RFC 5881 §4), without I/O: the echo packet
//! format and the decisions when to send one and when the path has failed.
//!
//! Echo packets are addressed to ourselves and sent through the peer, whose forwarding plane
//! loops them back; only the sender ever reads them, so their payload is a local matter
//! (RFC 5880 §4: "the contents are a local matter"). Ours carries a version, our
//! discriminator (to find the session) and a sequence number.
//!
//! Timing follows FRR's bfdd so that both ends of a session agree on what they expect:
//! - echo runs while the session is Up, echo is enabled locally and the remote advertises a
//!   non-zero Required Min Echo RX Interval (§6.8.9: "MUST NOT transmit ... if ... zero");
//! - the transmit interval is the larger of our `echoInterval` and the remote's Required Min
//!   Echo RX, with the same 0–25 % jitter as control packets (§6.8.9);
//! - the echo detection time is the remote's Detect Mult times that interval (FRR:
//!   `echo_detect_TO = remote_detect_mult * echo_xmt_TO`); when it passes without one of our
//!   packets coming back, the session goes Down with diagnostic 2, Echo Function Failed.
//!
//! Control packets keep their configured rate while echo runs, as in FRR: RFC 5880 §6.8.3
//! allows (SHOULD) slowing them to one second, but then a failure of the remote's control
//! plane alone would take seconds to notice.

use super::fsm::jittered;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Destination (and our source) UDP port of echo packets (RFC 5881 §4).
pub const ECHO_PORT: u16 = 3785;
/// Version of our echo payload.
pub const ECHO_VERSION: u8 = 1;
/// Length of our echo payload.
pub const ECHO_LEN: usize = 16;
/// TTL we send echo packets with; the peer's forwarding decrements it once.
pub const ECHO_TTL: u8 = 255;
/// TTL a looped-back echo packet must arrive with: exactly one hop through the peer, so a
/// packet that travelled further (or was forged from afar) is not taken as proof of the link.
pub const ECHO_RETURN_TTL: u8 = 254;

/// One echo payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoPacket {
    /// bfd.LocalDiscr of the sending session.
    pub my_discr: u32,
    /// Sequence number, for logs and to tell packets apart.
    pub sequence: u64,
}

/// Why a datagram on the echo port is not one of ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum EchoDecodeError {
    /// Shorter than our payload.
    #[error("echo packet of {0} bytes is shorter than {ECHO_LEN}")]
    TooShort(usize),
    /// Another version or length field (another implementation's echo).
    #[error("echo packet version {version} length {length} is not ours")]
    Foreign {
        /// Version byte.
        version: u8,
        /// Length byte.
        length: u8,
    },
}

impl EchoPacket {
    /// The payload bytes.
    pub fn encode(&self) -> [u8; ECHO_LEN] {
        let mut b = [0u8; ECHO_LEN];
        b[0] = ECHO_VERSION;
        b[1] = ECHO_LEN as u8;
        b[4..8].copy_from_slice(&self.my_discr.to_be_bytes());
        b[8..16].copy_from_slice(&self.sequence.to_be_bytes());
        b
    }

    /// Reads a payload we sent.
    pub fn decode(data: &[u8]) -> Result<EchoPacket, EchoDecodeError> {
        let b: &[u8; ECHO_LEN] = data
            .get(..ECHO_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(EchoDecodeError::TooShort(data.len()))?;
        if b[0] != ECHO_VERSION || usize::from(b[1]) != ECHO_LEN {
            return Err(EchoDecodeError::Foreign {
                version: b[0],
                length: b[1],
            });
        }
        let mut discr = [0u8; 4];
        discr.copy_from_slice(&b[4..8]);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&b[8..16]);
        Ok(EchoPacket {
            my_discr: u32::from_be_bytes(discr),
            sequence: u64::from_be_bytes(seq),
        })
    }
}

/// What the control session tells the echo function, read on every tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoInputs {
    /// bfd.SessionState is Up.
    pub session_up: bool,
    /// The remote's Required Min Echo RX Interval (zero: it loops back nothing).
    pub remote_min_echo_rx: Duration,
    /// The remote's Detect Mult.
    pub remote_detect_mult: u8,
    /// The transmit path is usable (our address and the peer's link-layer address are
    /// known); without it nothing can be sent and nothing is expected back.
    pub path_ready: bool,
}

/// The echo function of one session.
#[derive(Clone, Debug)]
pub struct Echo {
    my_discr: u32,
    /// Our `echoInterval`.
    interval: Duration,
    /// The interval in force while active (before jitter).
    tx_interval: Option<Duration>,
    detect_mult: u8,
    next_tx: Option<Instant>,
    deadline: Option<Instant>,
    sequence: u64,
    /// Echo failed: stay off until the session has left Up (it goes Down on the failure).
    failed: bool,
}

impl Echo {
    /// The echo function of session `my_discr`, sending every `interval` (at least).
    pub fn new(my_discr: u32, interval: Duration) -> Echo {
        Echo {
            my_discr,
            interval,
            tx_interval: None,
            detect_mult: 0,
            next_tx: None,
            deadline: None,
            sequence: 0,
            failed: false,
        }
    }

    /// Changes `echoInterval` (a changed profile); takes effect with the next update.
    pub fn set_interval(&mut self, interval: Duration) {
        self.interval = interval;
    }

    /// Whether echo packets are being sent and expected back.
    pub fn active(&self) -> bool {
        self.tx_interval.is_some()
    }

    /// The echo transmit interval in force (before jitter), while active.
    pub fn tx_interval(&self) -> Option<Duration> {
        self.tx_interval
    }

    /// The echo detection time in force, while active.
    pub fn detection_time(&self) -> Option<Duration> {
        self.tx_interval
            .map(|i| i.saturating_mul(u32::from(self.detect_mult)))
    }

    /// Starts, adjusts or stops the function from the control session's view. Returns
    /// whether it is active afterwards.
    pub fn update(&mut self, input: EchoInputs, now: Instant) -> bool {
        if !input.session_up {
            self.failed = false;
        }
        let wanted = input.session_up
            && !self.failed
            && input.path_ready
            && !input.remote_min_echo_rx.is_zero()
            && input.remote_detect_mult > 0;
        if !wanted {
            self.stop();
            return false;
        }
        let interval = self.interval.max(input.remote_min_echo_rx);
        if self.tx_interval.is_none() {
            // Starting: send at once; the first packet has a whole detection time to return.
            self.next_tx = Some(now);
            self.deadline =
                Some(now + interval.saturating_mul(u32::from(input.remote_detect_mult)));
        } else if let (Some(old), Some(next)) = (self.tx_interval, self.next_tx)
            && interval < old
        {
            // A shorter interval applies to the next packet, not after the old one.
            self.next_tx = Some(next.min(now + interval));
        }
        self.tx_interval = Some(interval);
        self.detect_mult = input.remote_detect_mult;
        true
    }

    fn stop(&mut self) {
        self.tx_interval = None;
        self.next_tx = None;
        self.deadline = None;
    }

    /// The echo packet to send now, if one is due. `jitter` is uniform in `[0, 1)`.
    pub fn poll_transmit(&mut self, now: Instant, jitter: f64) -> Option<EchoPacket> {
        let interval = self.tx_interval?;
        if self.next_tx.is_none_or(|t| t > now) {
            return None;
        }
        self.sequence = self.sequence.wrapping_add(1);
        // Jitter as for control packets; a detect multiplier of 1 gets the 75-90 % rule.
        self.next_tx = Some(now + jittered(interval, self.detect_mult.max(2), jitter));
        Some(EchoPacket {
            my_discr: self.my_discr,
            sequence: self.sequence,
        })
    }

    /// One of our packets came back: the path works; the detection timer restarts.
    /// Returns false (and changes nothing) for a packet of another session or while inactive.
    pub fn receive(&mut self, p: &EchoPacket, now: Instant) -> bool {
        if p.my_discr != self.my_discr {
            return false;
        }
        match self.detection_time() {
            Some(d) => {
                self.deadline = Some(now + d);
                true
            }
            None => false,
        }
    }

    /// Checks the echo detection timer: true when it expired (the path failed). The function
    /// stops and stays off until the session has been Down.
    pub fn on_timer(&mut self, now: Instant) -> bool {
        match self.deadline {
            Some(d) if now >= d => {
                self.stop();
                self.failed = true;
                true
            }
            _ => false,
        }
    }

    /// The earliest instant at which [`Echo::poll_transmit`] or [`Echo::on_timer`] has
    /// something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.next_tx, self.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests;
