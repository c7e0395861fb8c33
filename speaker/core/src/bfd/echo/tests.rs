use super::*;

const DISCR: u32 = 0xabcd;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn up(remote_echo_ms: u64, mult: u8) -> EchoInputs {
    EchoInputs {
        session_up: true,
        remote_min_echo_rx: ms(remote_echo_ms),
        remote_detect_mult: mult,
        path_ready: true,
    }
}

#[test]
fn packet_round_trips_and_foreign_payloads_are_rejected() {
    let p = EchoPacket {
        my_discr: 0xdead_beef,
        sequence: 0x0102_0304_0506_0708,
    };
    let b = p.encode();
    assert_eq!(b[0], ECHO_VERSION);
    assert_eq!(usize::from(b[1]), ECHO_LEN);
    assert_eq!(EchoPacket::decode(&b), Ok(p));
    assert_eq!(
        EchoPacket::decode(&b[..10]),
        Err(EchoDecodeError::TooShort(10))
    );
    // FRR's echo payload: version 1, length 24.
    let mut frr = [0u8; 24];
    frr[0] = 1;
    frr[1] = 24;
    assert_eq!(
        EchoPacket::decode(&frr),
        Err(EchoDecodeError::Foreign {
            version: 1,
            length: 24
        })
    );
}

#[test]
fn inactive_unless_up_with_a_remote_that_loops_back() {
    let now = Instant::now();
    let mut e = Echo::new(DISCR, ms(50));
    assert!(!e.update(
        EchoInputs {
            session_up: false,
            ..up(50, 3)
        },
        now
    ));
    assert!(!e.update(up(0, 3), now), "remote Required Min Echo RX 0");
    assert!(
        !e.update(
            EchoInputs {
                path_ready: false,
                ..up(50, 3)
            },
            now
        ),
        "no path"
    );
    assert_eq!(e.poll_transmit(now, 0.0), None);
    assert_eq!(e.next_deadline(), None);
    assert!(e.update(up(50, 3), now));
    assert!(e.active());
}

#[test]
fn interval_is_the_larger_of_ours_and_the_remotes_and_detection_uses_remote_mult() {
    let now = Instant::now();
    let mut e = Echo::new(DISCR, ms(50));
    e.update(up(200, 4), now);
    assert_eq!(e.tx_interval(), Some(ms(200)));
    assert_eq!(e.detection_time(), Some(ms(800)));
    let mut e = Echo::new(DISCR, ms(300));
    e.update(up(50, 3), now);
    assert_eq!(e.tx_interval(), Some(ms(300)));
    assert_eq!(e.detection_time(), Some(ms(900)));
}

#[test]
fn sends_at_once_then_every_jittered_interval() {
    let now = Instant::now();
    let mut e = Echo::new(DISCR, ms(100));
    e.update(up(50, 3), now);
    let p1 = e.poll_transmit(now, 0.0).expect("first at once");
    assert_eq!(p1.my_discr, DISCR);
    assert_eq!(e.poll_transmit(now, 0.0), None, "one per interval");
    // jitter 0 -> the full interval; jitter ~1 -> 75 % of it.
    assert_eq!(e.next_deadline(), Some(now + ms(100)));
    let p2 = e.poll_transmit(now + ms(100), 0.999).expect("second");
    assert_eq!(p2.sequence, p1.sequence + 1);
    let next = e.next_deadline().expect("scheduled");
    assert!(next >= now + ms(100) + ms(75) && next <= now + ms(100) + ms(76));
}

#[test]
fn returning_packets_hold_off_failure_and_silence_fails() {
    let now = Instant::now();
    let mut e = Echo::new(DISCR, ms(50));
    e.update(up(50, 3), now);
    let p = e.poll_transmit(now, 0.0).expect("sent");
    // Detection 150 ms from the start.
    assert!(!e.on_timer(now + ms(149)));
    assert!(e.receive(&p, now + ms(100)));
    assert!(
        !e.on_timer(now + ms(249)),
        "restarted by the returned packet"
    );
    assert!(e.on_timer(now + ms(250)), "150 ms of silence");
    assert!(!e.active());
    // Stays off while the session is still Up, resumes after it has been Down.
    assert!(!e.update(up(50, 3), now + ms(260)));
    e.update(
        EchoInputs {
            session_up: false,
            ..up(50, 3)
        },
        now + ms(270),
    );
    assert!(e.update(up(50, 3), now + ms(280)));
}

#[test]
fn packets_of_other_sessions_or_while_inactive_are_ignored() {
    let now = Instant::now();
    let mut e = Echo::new(DISCR, ms(50));
    let other = EchoPacket {
        my_discr: DISCR + 1,
        sequence: 1,
    };
    let ours = EchoPacket {
        my_discr: DISCR,
        sequence: 1,
    };
    assert!(!e.receive(&ours, now), "inactive");
    e.update(up(50, 3), now);
    assert!(!e.receive(&other, now));
    assert!(e.receive(&ours, now));
}

#[test]
fn a_shorter_interval_applies_to_the_next_packet() {
    let now = Instant::now();
    let mut e = Echo::new(DISCR, ms(50));
    e.update(up(1000, 3), now);
    e.poll_transmit(now, 0.0);
    assert_eq!(e.next_deadline(), Some(now + ms(1000)));
    e.update(up(100, 3), now + ms(10));
    assert_eq!(e.next_deadline(), Some(now + ms(110)));
}
