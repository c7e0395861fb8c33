use super::*;

const LOCAL: u32 = 0x1111;
const REMOTE: u32 = 0x2222;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn timers(tx: u64, rx: u64, mult: u8) -> Timers {
    Timers {
        desired_min_tx: ms(tx),
        required_min_rx: ms(rx),
        detect_mult: mult,
    }
}

/// A packet from the remote.
fn remote(state: BfdState, tx_ms: u64, rx_ms: u64, mult: u8) -> ControlPacket {
    ControlPacket {
        diag: Diagnostic::NoDiagnostic,
        state,
        poll: false,
        final_: false,
        cpi: false,
        demand: false,
        detect_mult: mult,
        my_discr: REMOTE,
        your_discr: if state == BfdState::Down { 0 } else { LOCAL },
        desired_min_tx_us: u32::try_from(tx_ms * 1000).unwrap_or(u32::MAX),
        required_min_rx_us: u32::try_from(rx_ms * 1000).unwrap_or(u32::MAX),
        required_min_echo_rx_us: 0,
    }
}

fn session(now: Instant) -> Session {
    Session::new(LOCAL, timers(50, 50, 3), false, now)
}

fn state_after(from: &[BfdState], received: BfdState) -> (BfdState, Option<Transition>) {
    let t0 = Instant::now();
    let mut s = session(t0);
    for st in from {
        s.receive(&remote(*st, 50, 50, 3), t0);
    }
    let t = s.receive(&remote(received, 50, 50, 3), t0);
    (s.state(), t)
}

/// Brings a session Up (Down →Init → Up) and answers the Poll that switches to fast timers.
fn up_session(now: Instant) -> Session {
    let mut s = session(now);
    s.receive(&remote(BfdState::Down, 1000, 50, 3), now);
    s.receive(&remote(BfdState::Up, 1000, 50, 3), now);
    assert_eq!(s.state(), BfdState::Up);
    let mut fin = remote(BfdState::Up, 50, 50, 3);
    fin.final_ = true;
    s.receive(&fin, now);
    assert!(!s.polling());
    s
}

#[test]
fn every_transition_of_the_rfc_diagram() {
    use BfdState::*;
    // From Down.
    assert_eq!(state_after(&[], Down).0, Init);
    assert_eq!(state_after(&[], Init).0, Up);
    assert_eq!(state_after(&[], Up), (Down, None));
    assert_eq!(state_after(&[], AdminDown), (Down, None));
    // From Init (reached by receiving Down).
    assert_eq!(state_after(&[Down], Init).0, Up);
    assert_eq!(state_after(&[Down], Up).0, Up);
    assert_eq!(state_after(&[Down], Down), (Init, None));
    let (st, t) = state_after(&[Down], AdminDown);
    assert_eq!(st, Down);
    assert_eq!(
        t.map(|t| t.diag),
        Some(Diagnostic::NeighborSignaledSessionDown)
    );
    // From Up.
    assert_eq!(state_after(&[Init], Up), (Up, None));
    assert_eq!(state_after(&[Init], Init), (Up, None));
    let (st, t) = state_after(&[Init], Down);
    assert_eq!(st, Down);
    assert_eq!(
        t,
        Some(Transition {
            from: Up,
            to: Down,
            diag: Diagnostic::NeighborSignaledSessionDown
        })
    );
    let (st, t) = state_after(&[Init], AdminDown);
    assert_eq!(st, Down);
    assert_eq!(
        t.map(|t| t.diag),
        Some(Diagnostic::NeighborSignaledSessionDown)
    );
}

#[test]
fn admin_down_ignores_received_packets_and_sends_admin_down_at_once() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    let t1 = t0 + ms(10);
    // Drain what is due, then go AdminDown.
    while s.poll_transmit(t1, 0.0).is_some() {}
    let t = s.admin_down(t1);
    assert_eq!(
        t,
        Some(Transition {
            from: BfdState::Up,
            to: BfdState::AdminDown,
            diag: Diagnostic::AdministrativelyDown
        })
    );
    let p = s.poll_transmit(t1, 0.0).expect("AdminDown packet at once");
    assert_eq!(p.state, BfdState::AdminDown);
    assert_eq!(p.diag, Diagnostic::AdministrativelyDown);
    assert_eq!(p.your_discr, REMOTE);
    // Not Up: the advertised Desired Min TX is back to at least 1 s.
    assert_eq!(p.desired_min_tx_us, 1_000_000);
    for st in [BfdState::Down, BfdState::Init, BfdState::Up] {
        assert_eq!(s.receive(&remote(st, 50, 50, 3), t1), None);
        assert_eq!(s.state(), BfdState::AdminDown);
    }
    assert_eq!(s.admin_down(t1), None);
    // No detection timer in AdminDown.
    assert_eq!(s.on_timer(t1 + ms(10_000)), None);
}

#[test]
fn detection_timeout_takes_up_and_init_down_with_diag_1() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    assert_eq!(s.detection_time(), Some(ms(150)));
    assert_eq!(s.on_timer(t0 + ms(149)), None);
    let t = s.on_timer(t0 + ms(150));
    assert_eq!(
        t,
        Some(Transition {
            from: BfdState::Up,
            to: BfdState::Down,
            diag: Diagnostic::ControlDetectionTimeExpired
        })
    );
    assert_eq!(s.remote_discr(), 0);
    assert_eq!(s.detection_time(), None);
    // The packets after it say Down, diag 1, your discriminator 0, slow timers; the first
    // leaves at once.
    let p = s
        .poll_transmit(t0 + ms(150), 0.0)
        .expect("the state change, at once");
    assert_eq!(
        (p.state, p.diag, p.your_discr, p.desired_min_tx_us),
        (
            BfdState::Down,
            Diagnostic::ControlDetectionTimeExpired,
            0,
            1_000_000
        )
    );

    let mut s = session(t0);
    s.receive(&remote(BfdState::Down, 1000, 50, 3), t0);
    assert_eq!(s.state(), BfdState::Init);
    // In Init the remote's 1 s transmit interval rules: 3 × max(50 ms, 1 s).
    assert_eq!(s.detection_time(), Some(ms(3000)));
    assert_eq!(s.on_timer(t0 + ms(2999)), None);
    assert_eq!(
        s.on_timer(t0 + ms(3000)).map(|t| (t.to, t.diag)),
        Some((BfdState::Down, Diagnostic::ControlDetectionTimeExpired))
    );

    // In Down a timeout changes no state but forgets the remote.
    let mut s = session(t0);
    s.receive(&remote(BfdState::AdminDown, 1000, 50, 3), t0);
    assert_eq!(s.remote_discr(), REMOTE);
    assert_eq!(s.on_timer(t0 + ms(3000)), None);
    assert_eq!(s.state(), BfdState::Down);
    assert_eq!(s.remote_discr(), 0);
}

#[test]
fn detection_time_uses_remote_multiplier_and_larger_interval() {
    let t0 = Instant::now();
    let mut s = Session::new(LOCAL, timers(50, 300, 3), false, t0);
    assert_eq!(s.detection_time(), None);
    // Remote: mult 5, sends every 100 ms: 5 × max(300, 100).
    s.receive(&remote(BfdState::Down, 100, 50, 5), t0);
    assert_eq!(s.detection_time(), Some(ms(1500)));
    // Remote sends every 400 ms, mult 2: 2 × max(300, 400).
    s.receive(&remote(BfdState::Init, 400, 50, 2), t0);
    assert_eq!(s.detection_time(), Some(ms(800)));
    // The timer restarts on every packet.
    let t1 = t0 + ms(700);
    s.receive(&remote(BfdState::Up, 400, 50, 2), t1);
    assert_eq!(s.on_timer(t0 + ms(800)), None);
    assert_eq!(s.next_deadline(t1).map(|d| d <= t1 + ms(800)), Some(true));
    assert!(s.on_timer(t1 + ms(800)).is_some());
}

#[test]
fn transmission_interval_and_jitter() {
    // 0–25 % reduction; detect mult 1: 75–90 %.
    assert_eq!(jittered(ms(100), 3, 0.0), ms(100));
    assert_eq!(jittered(ms(100), 3, 0.5), Duration::from_micros(87_500));
    assert!(jittered(ms(100), 3, 0.999_999) > ms(75));
    assert_eq!(jittered(ms(100), 1, 0.0), ms(90));
    assert!(jittered(ms(100), 1, 0.999_999) >= ms(75));
    assert!(jittered(ms(100), 1, 0.999_999) < Duration::from_micros(75_001));

    let t0 = Instant::now();
    let mut s = up_session(t0);
    // max(our 50 ms, remote's Required Min RX 200 ms).
    s.receive(&remote(BfdState::Up, 50, 200, 3), t0);
    assert_eq!(s.tx_interval(), ms(200));
    let first = s.poll_transmit(t0, 0.0);
    assert!(first.is_some());
    assert_eq!(s.poll_transmit(t0 + ms(199), 0.0), None);
    // Maximal jitter: the next one is due after 150 ms.
    assert!(s.poll_transmit(t0 + ms(200), 0.999_999).is_some());
    let t1 = t0 + ms(200);
    assert!(s.poll_transmit(t1 + ms(149), 0.0).is_none());
    assert!(s.poll_transmit(t1 + ms(151), 0.0).is_some());
    // Remote Required Min RX 0: we must not transmit periodic packets.
    s.receive(&remote(BfdState::Up, 50, 0, 3), t1);
    assert_eq!(s.poll_transmit(t1 + ms(10_000), 0.0), None);
}

#[test]
fn active_sends_at_once_passive_waits_for_the_remote() {
    let t0 = Instant::now();
    let mut a = session(t0);
    let p = a.poll_transmit(t0, 0.0).expect("active sends");
    assert_eq!(
        (p.state, p.your_discr, p.my_discr, p.detect_mult),
        (BfdState::Down, 0, LOCAL, 3)
    );
    assert_eq!(
        (p.desired_min_tx_us, p.required_min_rx_us),
        (1_000_000, 50_000)
    );
    assert_eq!(p.required_min_echo_rx_us, 0);
    // Slow rate while Down.
    assert_eq!(a.poll_transmit(t0 + ms(749), 0.0), None);
    assert!(a.poll_transmit(t0 + ms(1000), 0.0).is_some());

    let mut p = Session::new(LOCAL, timers(50, 50, 3), true, t0);
    assert_eq!(p.poll_transmit(t0 + ms(5000), 0.0), None);
    assert_eq!(p.next_deadline(t0), None);
    let t1 = t0 + ms(5000);
    p.receive(&remote(BfdState::Down, 1000, 50, 3), t1);
    let pkt = p
        .poll_transmit(t1, 0.0)
        .expect("passive answers once heard");
    assert_eq!((pkt.state, pkt.your_discr), (BfdState::Init, REMOTE));
}

#[test]
fn going_up_polls_for_the_fast_interval() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.receive(&remote(BfdState::Down, 1000, 50, 3), t0);
    let _ = s.poll_transmit(t0, 0.0);
    let t = s.receive(&remote(BfdState::Up, 1000, 50, 3), t0 + ms(10));
    assert_eq!(t.map(|t| t.to), Some(BfdState::Up));
    assert!(s.polling());
    // The new state leaves at once, asking for the faster interval.
    let p = s
        .poll_transmit(t0 + ms(10), 0.0)
        .expect("the state change, at once");
    assert_eq!(p.state, BfdState::Up);
    assert!(p.poll && !p.final_);
    assert_eq!(p.desired_min_tx_us, 50_000);
    // Faster is applied at once: the next one is due 50 ms after it, not 1 s.
    assert_eq!(s.poll_transmit(t0 + ms(59), 0.0), None);
    let mut fin = remote(BfdState::Up, 50, 50, 3);
    fin.final_ = true;
    s.receive(&fin, t0 + ms(40));
    assert!(!s.polling());
    let p = s.poll_transmit(t0 + ms(100), 0.0).expect("periodic");
    assert!(!p.poll && !p.final_);
    // A Final without our Poll changes nothing.
    s.receive(&fin, t0 + ms(100));
    assert!(!s.polling());
}

#[test]
fn poll_is_answered_with_final_without_waiting_for_the_timer() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    let _ = s.poll_transmit(t0, 0.0);
    let mut poll = remote(BfdState::Up, 100, 100, 3);
    poll.poll = true;
    let t1 = t0 + ms(5);
    s.receive(&poll, t1);
    assert_eq!(s.next_deadline(t1), Some(t1));
    let p = s.poll_transmit(t1, 0.0).expect("final at once");
    assert!(p.final_ && !p.poll);
    assert_eq!(s.poll_transmit(t1, 0.0), None, "one Final per Poll");
    // The remote's new Required Min RX (100 ms) is used at once.
    assert_eq!(s.tx_interval(), ms(100));

    // Our own Poll in progress: the Final goes alone, then the periodic packet with P.
    s.set_config(timers(20, 50, 3), false, t1);
    assert!(s.polling());
    let t2 = t1 + ms(200);
    s.receive(&poll, t2);
    let a = s.poll_transmit(t2, 0.0).expect("final");
    assert!(a.final_ && !a.poll);
    let b = s.poll_transmit(t2, 0.0).expect("periodic with poll");
    assert!(b.poll && !b.final_);
    assert_eq!(s.poll_transmit(t2, 0.0), None);
}

#[test]
fn shorter_receive_interval_takes_effect_only_after_final() {
    let t0 = Instant::now();
    let mut s = Session::new(LOCAL, timers(300, 300, 3), false, t0);
    s.receive(&remote(BfdState::Init, 50, 50, 3), t0);
    assert_eq!(s.state(), BfdState::Up);
    // Remote transmits every 50 ms: detection 3 × max(300, 50).
    assert_eq!(s.detection_time(), Some(ms(900)));
    // Going Up started a Poll (1 s → 300 ms transmit); answer it first.
    assert!(s.polling());
    let mut fin = remote(BfdState::Up, 50, 50, 3);
    fin.final_ = true;
    s.receive(&fin, t0);
    assert!(!s.polling());
    s.set_config(timers(300, 50, 3), false, t0);
    assert!(s.polling());
    let p = s.poll_transmit(t0, 0.0).expect("poll");
    assert!(p.poll);
    assert_eq!(p.required_min_rx_us, 50_000, "the new value is advertised");
    s.receive(&remote(BfdState::Up, 50, 50, 3), t0);
    assert_eq!(
        s.detection_time(),
        Some(ms(900)),
        "old value until the Final"
    );
    let mut fin = remote(BfdState::Up, 50, 50, 3);
    fin.final_ = true;
    s.receive(&fin, t0);
    assert_eq!(s.detection_time(), Some(ms(150)));

    // A longer receive interval applies at once (it only lengthens detection).
    s.set_config(timers(300, 500, 3), false, t0);
    assert_eq!(s.detection_time(), Some(ms(1500)));
}

#[test]
fn slower_transmit_interval_takes_effect_only_after_final() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    assert_eq!(s.tx_interval(), ms(50));
    s.set_config(timers(300, 50, 3), false, t0);
    assert!(s.polling());
    assert_eq!(s.tx_interval(), ms(50));
    let p = s.poll_transmit(t0 + ms(60), 0.0).expect("poll");
    assert!(p.poll);
    assert_eq!(p.desired_min_tx_us, 300_000);
    let mut fin = remote(BfdState::Up, 50, 50, 3);
    fin.final_ = true;
    s.receive(&fin, t0 + ms(70));
    assert_eq!(s.tx_interval(), ms(300));
    // Faster again: at once, still with a Poll.
    s.set_config(timers(100, 50, 3), false, t0 + ms(80));
    assert_eq!(s.tx_interval(), ms(100));
    assert!(s.polling());
}

#[test]
fn change_during_poll_starts_another_poll_after_final() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    s.set_config(timers(200, 50, 3), false, t0);
    s.set_config(timers(400, 50, 3), false, t0);
    let mut fin = remote(BfdState::Up, 50, 50, 3);
    fin.final_ = true;
    s.receive(&fin, t0);
    // The first Final acknowledges 200 ms only; 400 ms needs its own Poll.
    assert_eq!(s.tx_interval(), ms(200));
    assert!(s.polling());
    s.receive(&fin, t0);
    assert_eq!(s.tx_interval(), ms(400));
    assert!(!s.polling());
}

#[test]
fn down_while_polling_abandons_the_poll_and_slows_down() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    s.set_config(timers(300, 50, 3), false, t0);
    assert!(s.polling());
    s.receive(&remote(BfdState::Down, 1000, 50, 3), t0);
    assert_eq!(s.state(), BfdState::Down);
    assert!(!s.polling());
    assert_eq!(s.tx_interval(), ms(1000));
    let p = s.poll_transmit(t0 + ms(1000), 0.0).expect("packet");
    assert!(!p.poll);
}

#[test]
fn remote_demand_mode_stops_periodic_packets_when_both_up() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    let mut d = remote(BfdState::Up, 50, 50, 3);
    d.demand = true;
    s.receive(&d, t0);
    assert_eq!(s.poll_transmit(t0 + ms(500), 0.0), None);
}

#[test]
fn final_is_sent_even_when_the_remote_wants_no_periodic_packets() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    let mut poll = remote(BfdState::Up, 50, 0, 3);
    poll.poll = true;
    s.receive(&poll, t0);
    let p = s.poll_transmit(t0, 0.0).expect("Final");
    assert!(p.final_);
    assert_eq!(s.poll_transmit(t0 + ms(1000), 0.0), None);
    assert_eq!(
        s.next_deadline(t0).map(|d| d > t0),
        Some(true),
        "only detection left"
    );
}

#[test]
fn required_min_echo_rx_is_advertised_and_the_remotes_is_remembered() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    let p = s.poll_transmit(t0 + ms(100), 0.0).expect("periodic");
    assert_eq!(p.required_min_echo_rx_us, 0, "no echo unless asked");
    s.set_required_min_echo_rx(ms(50));
    let p = s.poll_transmit(t0 + ms(200), 0.0).expect("periodic");
    assert_eq!(p.required_min_echo_rx_us, 50_000);
    let mut r = remote(BfdState::Up, 50, 50, 3);
    r.required_min_echo_rx_us = 70_000;
    s.receive(&r, t0 + ms(210));
    assert_eq!(s.remote_min_echo_rx(), ms(70));
    assert_eq!(s.remote_detect_mult(), 3);
    // A detection timeout forgets it.
    s.on_timer(t0 + ms(10_000));
    assert_eq!(s.remote_min_echo_rx(), Duration::ZERO);
}

#[test]
fn echo_failure_takes_an_up_session_down_with_diag_2() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    let t = s.echo_failed(t0).expect("transition");
    assert_eq!((t.from, t.to), (BfdState::Up, BfdState::Down));
    assert_eq!(t.diag, Diagnostic::EchoFunctionFailed);
    let p = s.poll_transmit(t0 + ms(2000), 0.0).expect("Down packet");
    assert_eq!(p.state, BfdState::Down);
    assert_eq!(p.diag, Diagnostic::EchoFunctionFailed);
    assert_eq!(s.echo_failed(t0), None, "only from Up");
}
