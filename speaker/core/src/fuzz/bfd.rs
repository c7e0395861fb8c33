//! The `bfd_decode` target: the BFD Control packet decoder and the session it feeds.

use crate::bfd::fsm::{Session, Timers};
use crate::bfd::packet::ControlPacket;
use std::time::{Duration, Instant};

/// Decodes `data` as a BFD Control packet (RFC 5880 §4.1) and, when accepted, feeds it to a
/// session. Invariants: no panic; an accepted packet re-encodes to bytes that decode to the
/// same packet and equal the input's first 24 bytes except the Length byte; the session's
/// timer arithmetic never panics on what the packet carries.
pub fn bfd_decode(data: &[u8]) {
    let Ok(p) = ControlPacket::decode(data) else {
        return;
    };
    let encoded = p.encode();
    assert_eq!(ControlPacket::decode(&encoded), Ok(p));
    assert_eq!(encoded.get(..3), data.get(..3));
    assert_eq!(encoded.get(4..), data.get(4..24));

    let now = Instant::now();
    let timers = Timers {
        desired_min_tx: Duration::from_millis(50),
        required_min_rx: Duration::from_millis(50),
        detect_mult: data.get(24).copied().unwrap_or(3).max(1),
    };
    let mut s = Session::new(
        p.your_discr.max(1),
        timers,
        data.len().is_multiple_of(2),
        now,
    );
    let _ = s.receive(&p, now);
    while s.poll_transmit(now, 0.5).is_some() {}
    if let Some(d) = s.next_deadline(now) {
        let _ = s.on_timer(d);
        while s.poll_transmit(d, 0.99).is_some() {}
    }
    let _ = s.detection_time();
}
