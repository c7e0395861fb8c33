//! Fuzzes the BFD Control packet decoder
//! (`ferrolb_speaker_core::bfd::packet::ControlPacket`) and the session state machine it feeds.
//! Invariants: no panic; every accepted packet re-encodes to bytes that decode to the same
//! packet and equal the input's first 24 bytes (except the Length byte); a session fed the
//! packet never panics in its timer arithmetic.
//!
//! Run: `cargo +nightly fuzz run bfd_decode -- -max_total_time=600` from `fuzz/`.
#![no_main]

use ferrolb_speaker_core::bfd::fsm::{Session, Timers};
use ferrolb_speaker_core::bfd::packet::ControlPacket;
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = ControlPacket::decode(data) else {
        return;
    };
    let encoded = p.encode();
    assert_eq!(ControlPacket::decode(&encoded), Ok(p));
    assert_eq!(&encoded[..3], &data[..3]);
    assert_eq!(&encoded[4..], &data[4..24]);

    let now = Instant::now();
    let timers = Timers {
        desired_min_tx: Duration::from_millis(50),
        required_min_rx: Duration::from_millis(50),
        detect_mult: data.get(24).copied().unwrap_or(3).max(1),
    };
    let mut s = Session::new(p.your_discr.max(1), timers, data.len() % 2 == 0, now);
    let _ = s.receive(&p, now);
    while s.poll_transmit(now, 0.5).is_some() {}
    if let Some(d) = s.next_deadline(now) {
        let _ = s.on_timer(d);
        while s.poll_transmit(d, 0.99).is_some() {}
    }
    let _ = s.detection_time();
});
