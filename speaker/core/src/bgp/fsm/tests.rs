use super::*;
use crate::bgp::codec::AS_TRANS;

fn cfg() -> FsmConfig {
    FsmConfig {
        local_as: 64512,
        peer_as: PeerAsn::Fixed(64513),
        router_id: Ipv4Addr::new(10, 200, 0, 1),
        hold_time: 90,
        keepalive_time: 30,
        ipv4: true,
        ipv6: true,
        connect_retry: None,
        graceful_restart: false,
        bfd_strict: false,
    }
}

/// A peer with `connectTime: 2s`.
fn cfg_connect_time() -> FsmConfig {
    FsmConfig {
        connect_retry: Some(Duration::from_secs(2)),
        ..cfg()
    }
}

fn open() -> PeerOpen {
    PeerOpen {
        version: 4,
        asn: 64513,
        my_as_field: 64513,
        hold_time: 9,
        router_id: Ipv4Addr::new(10, 200, 0, 2),
        four_octet_as: true,
        mp_ipv4: true,
        mp_ipv6: true,
        mp_any: true,
        route_refresh: true,
        graceful_restart: false,
        graceful_notification: false,
        restarting: false,
        bfd_strict: false,
    }
}

fn in_state(state: State) -> Fsm {
    let mut f = Fsm::new();
    f.state = state;
    f.admin_up = true;
    if matches!(state, State::OpenConfirm | State::Established) {
        f.negotiated = Some(negotiate(&cfg(), &open()).expect("valid open"));
    }
    f
}

fn run(f: &Fsm, e: Event) -> (Fsm, Vec<Action>) {
    step(&cfg(), f, e)
}

fn sent_notification(actions: &[Action]) -> Option<&Notification> {
    actions.iter().find_map(|a| match a {
        Action::SendNotification(n) => Some(n),
        _ => None,
    })
}

// ---- Idle

#[test]
fn idle_manual_start_connects() {
    let (f, a) = run(&Fsm::new(), Event::ManualStart);
    assert_eq!(f.state, State::Connect);
    assert!(f.admin_up);
    assert_eq!(
        a,
        vec![Action::StopTimer(Timer::ConnectRetry), Action::Connect]
    );
}

#[test]
fn idle_ignores_messages_and_timers_when_stopped() {
    let f = Fsm::new();
    for e in [
        Event::ConnectRetryTimerExpires,
        Event::HoldTimerExpires,
        Event::KeepAliveMsg,
        Event::UpdateMsg,
        Event::TcpConnectionFails,
    ] {
        let (g, a) = run(&f, e.clone());
        assert_eq!(g, f, "{e:?}");
        assert!(a.is_empty(), "{e:?}");
    }
}

#[test]
fn idle_retry_timer_restarts_when_admin_up() {
    let mut f = in_state(State::Idle);
    f.failures = 3;
    let (g, a) = run(&f, Event::ConnectRetryTimerExpires);
    assert_eq!(g.state, State::Connect);
    assert_eq!(g.failures, 3, "backoff keeps counting until Established");
    assert!(a.contains(&Action::Connect));
}

#[test]
fn idle_manual_stop_disarms_restart() {
    let f = in_state(State::Idle);
    let (g, a) = run(&f, Event::ManualStop(StopCause::Shutdown));
    assert!(!g.admin_up);
    assert_eq!(g.state, State::Idle);
    assert!(sent_notification(&a).is_none());
    assert!(a.contains(&Action::StopTimer(Timer::ConnectRetry)));
}

// ---- Connect

#[test]
fn connect_confirmed_sends_open_and_arms_large_hold() {
    let (f, a) = run(&in_state(State::Connect), Event::TcpConnectionConfirmed);
    assert_eq!(f.state, State::OpenSent);
    assert_eq!(
        a,
        vec![
            Action::StopTimer(Timer::ConnectRetry),
            Action::SendOpen,
            Action::StartTimer(Timer::Hold, OPEN_HOLD_TIME)
        ]
    );
}

#[test]
fn connect_failure_backs_off_in_active() {
    let (f, a) = run(&in_state(State::Connect), Event::TcpConnectionFails);
    assert_eq!(f.state, State::Active);
    assert_eq!(f.failures, 1);
    assert!(a.contains(&Action::StartTimer(
        Timer::ConnectRetry,
        Duration::from_secs(1)
    )));
    let (f2, a2) = run(&f, Event::ConnectRetryTimerExpires);
    assert_eq!(f2.state, State::Connect);
    assert!(a2.contains(&Action::Connect));
    let (f3, a3) = run(&f2, Event::TcpConnectionFails);
    assert_eq!(f3.failures, 2);
    assert!(a3.contains(&Action::StartTimer(
        Timer::ConnectRetry,
        Duration::from_secs(2)
    )));
}

#[test]
fn connect_manual_stop_sends_no_cease() {
    let (f, a) = run(
        &in_state(State::Connect),
        Event::ManualStop(StopCause::Shutdown),
    );
    assert_eq!(f.state, State::Idle);
    assert!(sent_notification(&a).is_none());
    assert!(a.contains(&Action::DropTcp));
}

#[test]
fn connect_ignores_stale_timers() {
    let f = in_state(State::Connect);
    for e in [
        Event::HoldTimerExpires,
        Event::KeepaliveTimerExpires,
        Event::ConnectRetryTimerExpires,
    ] {
        assert_eq!(run(&f, e), (f.clone(), vec![]));
    }
}

#[test]
fn active_manual_stop() {
    let (f, a) = run(
        &in_state(State::Active),
        Event::ManualStop(StopCause::Shutdown),
    );
    assert_eq!(f.state, State::Idle);
    assert!(!f.admin_up);
    assert!(sent_notification(&a).is_none());
}

// ---- OpenSent

#[test]
fn opensent_valid_open_goes_openconfirm_with_negotiated_timers() {
    let (f, a) = run(&in_state(State::OpenSent), Event::BgpOpen(open()));
    assert_eq!(f.state, State::OpenConfirm);
    let n = f.negotiated.clone().expect("negotiated");
    assert_eq!(n.hold_time, 9, "min(90, 9)");
    assert_eq!(n.keepalive_time, 3, "30/90 of 9");
    assert!(n.four_octet_as && n.ipv4 && n.ipv6 && n.ebgp);
    assert_eq!(
        a,
        vec![
            Action::SendKeepalive,
            Action::StartTimer(Timer::Keepalive, Duration::from_secs(3)),
            Action::StartTimer(Timer::Hold, Duration::from_secs(9)),
        ]
    );
}

#[test]
fn opensent_zero_hold_time_disables_timers() {
    let mut o = open();
    o.hold_time = 0;
    let (f, a) = run(&in_state(State::OpenSent), Event::BgpOpen(o));
    assert_eq!(f.state, State::OpenConfirm);
    assert_eq!(f.negotiated.as_ref().map(|n| n.keepalive_time), Some(0));
    assert_eq!(
        a,
        vec![Action::SendKeepalive, Action::StopTimer(Timer::Hold)]
    );
}

#[test]
fn opensent_unacceptable_hold_time_is_2_6() {
    for h in [1u16, 2] {
        let mut o = open();
        o.hold_time = h;
        let (f, a) = run(&in_state(State::OpenSent), Event::BgpOpen(o));
        assert_eq!(f.state, State::Idle);
        let n = sent_notification(&a).expect("notification");
        assert_eq!((n.code, n.subcode), (2, 6));
        assert!(a.contains(&Action::DropTcp));
    }
}

#[test]
fn opensent_bad_peer_as_is_2_2() {
    let mut o = open();
    o.asn = 64999;
    o.my_as_field = 64999;
    let (_, a) = run(&in_state(State::OpenSent), Event::BgpOpen(o));
    let n = sent_notification(&a).expect("notification");
    assert_eq!((n.code, n.subcode), (2, 2));
}

#[test]
fn dynamic_internal_and_external_asn() {
    let mut c = cfg();
    c.peer_as = PeerAsn::Internal;
    let mut o = open();
    assert_eq!(
        negotiate(&c, &o).map_err(|n| (n.code, n.subcode)),
        Err((2, 2))
    );
    o.asn = 64512;
    o.my_as_field = 64512;
    let n = negotiate(&c, &o).expect("internal accepts our AS");
    assert!(!n.ebgp);
    c.peer_as = PeerAsn::External;
    assert_eq!(
        negotiate(&c, &o).map_err(|n| (n.code, n.subcode)),
        Err((2, 2))
    );
    o.asn = 4_200_000_001;
    o.my_as_field = AS_TRANS;
    let n = negotiate(&c, &o).expect("external accepts another AS");
    assert!(n.ebgp);
    assert_eq!(n.peer_as, 4_200_000_001);
}

#[test]
fn four_octet_as_with_wrong_two_octet_field_is_bad_peer_as() {
    let mut c = cfg();
    c.peer_as = PeerAsn::Fixed(4_200_000_001);
    let mut o = open();
    o.asn = 4_200_000_001;
    o.my_as_field = 1234;
    assert_eq!(
        negotiate(&c, &o).map_err(|n| (n.code, n.subcode)),
        Err((2, 2))
    );
    o.my_as_field = AS_TRANS;
    assert!(negotiate(&c, &o).is_ok());
}

#[test]
fn bad_bgp_identifier_is_2_3() {
    let mut o = open();
    o.router_id = Ipv4Addr::UNSPECIFIED;
    assert_eq!(
        negotiate(&cfg(), &o).map_err(|n| (n.code, n.subcode)),
        Err((2, 3))
    );
    // Same identifier as ours: fine on eBGP, rejected on iBGP.
    let mut o = open();
    o.router_id = cfg().router_id;
    assert!(negotiate(&cfg(), &o).is_ok());
    let mut c = cfg();
    c.peer_as = PeerAsn::Internal;
    o.asn = 64512;
    o.my_as_field = 64512;
    assert_eq!(
        negotiate(&c, &o).map_err(|n| (n.code, n.subcode)),
        Err((2, 3))
    );
}

#[test]
fn unsupported_version_is_2_1_with_our_version() {
    let mut o = open();
    o.version = 3;
    let n = negotiate(&cfg(), &o).expect_err("version 3");
    assert_eq!((n.code, n.subcode, n.data), (2, 1, vec![0, 4]));
}

#[test]
fn families_follow_both_sides() {
    let mut o = open();
    o.mp_ipv6 = false;
    let n = negotiate(&cfg(), &o).expect("ok");
    assert!(n.ipv4 && !n.ipv6);
    // No multiprotocol capability at all: IPv4 unicast implied.
    let mut o = open();
    o.mp_any = false;
    o.mp_ipv4 = false;
    o.mp_ipv6 = false;
    let n = negotiate(&cfg(), &o).expect("ok");
    assert!(n.ipv4 && !n.ipv6);
    let mut c = cfg();
    c.ipv4 = false;
    let n = negotiate(&c, &open()).expect("ok");
    assert!(!n.ipv4 && n.ipv6);
}

#[test]
fn opensent_header_and_open_errors_send_their_notification() {
    for e in [
        Event::BgpHeaderErr(Notification::new(1, 2, vec![0, 5])),
        Event::BgpOpenMsgErr(Notification::new(2, 4, vec![])),
    ] {
        let (f, a) = run(&in_state(State::OpenSent), e.clone());
        assert_eq!(f.state, State::Idle);
        let expected = match e {
            Event::BgpHeaderErr(n) | Event::BgpOpenMsgErr(n) => n,
            _ => unreachable!(),
        };
        assert_eq!(sent_notification(&a), Some(&expected));
        assert!(a.contains(&Action::StartTimer(
            Timer::ConnectRetry,
            Duration::from_secs(1)
        )));
    }
}

#[test]
fn opensent_notification_received_sends_none() {
    let (f, a) = run(
        &in_state(State::OpenSent),
        Event::NotifMsg(Notification::new(2, 2, vec![])),
    );
    assert_eq!(f.state, State::Idle);
    assert!(sent_notification(&a).is_none());
    assert!(a.contains(&Action::DropTcp));
}

#[test]
fn opensent_unexpected_keepalive_is_fsm_error_5_1() {
    let (f, a) = run(&in_state(State::OpenSent), Event::KeepAliveMsg);
    assert_eq!(f.state, State::Idle);
    let n = sent_notification(&a).expect("notification");
    assert_eq!((n.code, n.subcode), (5, 1));
}

#[test]
fn opensent_hold_timer_expiry_is_4_0() {
    let (f, a) = run(&in_state(State::OpenSent), Event::HoldTimerExpires);
    assert_eq!(f.state, State::Idle);
    assert_eq!(
        sent_notification(&a),
        Some(&Notification::hold_timer_expired())
    );
}

#[test]
fn opensent_tcp_failure_goes_active() {
    let (f, a) = run(&in_state(State::OpenSent), Event::TcpConnectionFails);
    assert_eq!(f.state, State::Active);
    assert!(a.contains(&Action::DropTcp));
    assert!(
        a.iter()
            .any(|x| matches!(x, Action::StartTimer(Timer::ConnectRetry, _)))
    );
}

#[test]
fn opensent_manual_stop_sends_cease() {
    let (f, a) = run(
        &in_state(State::OpenSent),
        Event::ManualStop(StopCause::Shutdown),
    );
    assert_eq!(f.state, State::Idle);
    assert_eq!(
        sent_notification(&a),
        Some(&Notification::cease_admin_shutdown())
    );
}

// ---- OpenConfirm

#[test]
fn openconfirm_keepalive_establishes_and_resets_backoff() {
    let mut f = in_state(State::OpenConfirm);
    f.failures = 5;
    let (g, a) = run(&f, Event::KeepAliveMsg);
    assert_eq!(g.state, State::Established);
    assert_eq!(g.failures, 0);
    let n = f.negotiated.clone().expect("negotiated");
    assert_eq!(
        a,
        vec![
            Action::StartTimer(Timer::Hold, Duration::from_secs(9)),
            Action::Established(n)
        ]
    );
}

#[test]
fn openconfirm_keepalive_timer_sends_keepalive() {
    let f = in_state(State::OpenConfirm);
    let (g, a) = run(&f, Event::KeepaliveTimerExpires);
    assert_eq!(g, f);
    assert_eq!(
        a,
        vec![
            Action::SendKeepalive,
            Action::StartTimer(Timer::Keepalive, Duration::from_secs(3))
        ]
    );
}

#[test]
fn openconfirm_errors() {
    let f = in_state(State::OpenConfirm);
    let (g, a) = run(&f, Event::HoldTimerExpires);
    assert_eq!(g.state, State::Idle);
    assert_eq!(
        sent_notification(&a),
        Some(&Notification::hold_timer_expired())
    );
    let (g, a) = run(&f, Event::UpdateMsg);
    assert_eq!(g.state, State::Idle);
    assert_eq!(
        sent_notification(&a).map(|n| (n.code, n.subcode)),
        Some((5, 2))
    );
    let (g, a) = run(&f, Event::TcpConnectionFails);
    assert_eq!(g.state, State::Idle);
    assert!(sent_notification(&a).is_none());
    let (g, a) = run(&f, Event::NotifMsg(Notification::cease_admin_shutdown()));
    assert_eq!(g.state, State::Idle);
    assert!(sent_notification(&a).is_none());
    let (g, a) = run(&f, Event::ManualStop(StopCause::Shutdown));
    assert_eq!(g.state, State::Idle);
    assert_eq!(
        sent_notification(&a),
        Some(&Notification::cease_admin_shutdown())
    );
}

// ---- Established

#[test]
fn established_keepalive_and_update_restart_hold() {
    let f = in_state(State::Established);
    for e in [Event::KeepAliveMsg, Event::UpdateMsg] {
        let (g, a) = run(&f, e);
        assert_eq!(g, f);
        assert_eq!(
            a,
            vec![Action::StartTimer(Timer::Hold, Duration::from_secs(9))]
        );
    }
}

#[test]
fn established_keepalive_timer() {
    let f = in_state(State::Established);
    let (_, a) = run(&f, Event::KeepaliveTimerExpires);
    assert_eq!(
        a,
        vec![
            Action::SendKeepalive,
            Action::StartTimer(Timer::Keepalive, Duration::from_secs(3))
        ]
    );
}

#[test]
fn established_route_refresh_resends() {
    let (_, a) = run(&in_state(State::Established), Event::RouteRefreshMsg);
    assert!(a.contains(&Action::ResendAll));
}

#[test]
fn established_manual_stop_sends_cease_before_close() {
    let (f, a) = run(
        &in_state(State::Established),
        Event::ManualStop(StopCause::Shutdown),
    );
    assert_eq!(f.state, State::Idle);
    assert!(!f.admin_up);
    assert_eq!(
        a[0],
        Action::SendNotification(Notification::cease_admin_shutdown())
    );
    assert_eq!(a[1], Action::DropTcp);
    assert!(a.iter().any(|x| matches!(x, Action::Down(_))));
}

#[test]
fn established_update_error_sends_it() {
    let n = Notification::new(3, 1, vec![]);
    let (f, a) = run(
        &in_state(State::Established),
        Event::UpdateMsgErr(n.clone()),
    );
    assert_eq!(f.state, State::Idle);
    assert_eq!(sent_notification(&a), Some(&n));
    assert!(a.iter().any(|x| matches!(x, Action::Down(_))));
}

#[test]
fn established_unexpected_open_is_5_3() {
    let (_, a) = run(&in_state(State::Established), Event::BgpOpen(open()));
    assert_eq!(
        sent_notification(&a).map(|n| (n.code, n.subcode)),
        Some((5, 3))
    );
}

#[test]
fn established_hold_expiry_and_peer_close() {
    let f = in_state(State::Established);
    let (g, a) = run(&f, Event::HoldTimerExpires);
    assert_eq!(g.state, State::Idle);
    assert_eq!(g.failures, 1);
    assert_eq!(
        sent_notification(&a),
        Some(&Notification::hold_timer_expired())
    );
    let (g, a) = run(&f, Event::TcpConnectionFails);
    assert_eq!(g.state, State::Idle);
    assert!(a.contains(&Action::DropTcp));
    assert!(a.contains(&Action::StartTimer(
        Timer::ConnectRetry,
        Duration::from_secs(1)
    )));
}

#[test]
fn manual_start_is_ignored_when_running() {
    for s in [
        State::Connect,
        State::Active,
        State::OpenSent,
        State::OpenConfirm,
        State::Established,
    ] {
        let f = in_state(s);
        assert_eq!(run(&f, Event::ManualStart), (f.clone(), vec![]));
    }
}

#[test]
fn backoff_doubles_and_caps() {
    let d: Vec<u64> = (1..=8).map(|n| retry_delay(n).as_secs()).collect();
    assert_eq!(d, vec![1, 2, 4, 8, 16, 30, 30, 30]);
    assert_eq!(retry_delay(u32::MAX), RETRY_CAP);
}

// ---- connectTime (MetalLB api/v1beta2 bgppeer_types.go BGPPeerSpec ConnectTime, written as
// `timers connect` by internal/bgp/frr/templates/neighborsession.tmpl; RFC 4271 §8.2.2)

/// Without connectTime (MetalLB's templates then write no `timers connect`) the wait is the
/// backoff, and a connect gives up after CONNECT_TIMEOUT.
#[test]
fn without_connect_time_the_wait_is_the_backoff() {
    let c = cfg();
    let d: Vec<u64> = (1..=7).map(|n| c.retry_delay(n).as_secs()).collect();
    assert_eq!(d, vec![1, 2, 4, 8, 16, 30, 30]);
    assert_eq!(c.connect_timeout(), CONNECT_TIMEOUT);
    assert_eq!(CONNECT_TIMEOUT, Duration::from_secs(10));
}

/// With connectTime the wait is connectTime whatever the failures so far, and one connect
/// may last at most that long.
#[test]
fn with_connect_time_the_wait_is_connect_time() {
    let c = cfg_connect_time();
    for failures in [0, 1, 2, 6, u32::MAX] {
        assert_eq!(
            c.retry_delay(failures),
            Duration::from_secs(2),
            "{failures}"
        );
    }
    assert_eq!(c.connect_timeout(), Duration::from_secs(2));
}

#[test]
fn connect_time_timer_starts_with_each_attempt() {
    let c = cfg_connect_time();
    let (f, a) = step(&c, &Fsm::new(), Event::ManualStart);
    assert_eq!(f.state, State::Connect);
    assert_eq!(
        a,
        vec![
            Action::StartTimer(Timer::ConnectRetry, Duration::from_secs(2)),
            Action::Connect
        ]
    );
}

/// A refused attempt waits in Active for the timer started with it, so attempts start
/// connectTime apart, not connectTime after the refusal.
#[test]
fn connect_time_refused_attempt_waits_for_the_running_timer() {
    let c = cfg_connect_time();
    let mut f = in_state(State::Connect);
    f.failures = 4;
    let (f, a) = step(&c, &f, Event::TcpConnectionFails);
    assert_eq!(f.state, State::Active);
    assert_eq!(
        a,
        vec![
            Action::DropTcp,
            Action::Down("TCP connection failed".into())
        ]
    );
    let (f, a) = step(&c, &f, Event::ConnectRetryTimerExpires);
    assert_eq!(f.state, State::Connect);
    assert_eq!(
        a,
        vec![
            Action::StartTimer(Timer::ConnectRetry, Duration::from_secs(2)),
            Action::Connect
        ]
    );
}

/// RFC 4271 §8.2.2, Connect state, ConnectRetryTimer_Expires: drop the attempt, restart the
/// timer, connect again.
#[test]
fn connect_time_abandons_an_attempt_still_in_flight() {
    let c = cfg_connect_time();
    let (f, a) = step(
        &c,
        &in_state(State::Connect),
        Event::ConnectRetryTimerExpires,
    );
    assert_eq!(f.state, State::Connect);
    assert_eq!(f.failures, 1);
    assert_eq!(
        a,
        vec![
            Action::DropTcp,
            Action::Down("TCP connect did not complete within connectTime".into()),
            Action::StartTimer(Timer::ConnectRetry, Duration::from_secs(2)),
            Action::Connect
        ]
    );
    // Without connectTime the timer does not run during an attempt: a late expiry is stale.
    let f = in_state(State::Connect);
    assert_eq!(
        run(&f, Event::ConnectRetryTimerExpires),
        (f.clone(), vec![])
    );
}

/// A session that fails after connecting also waits connectTime, not the backoff.
#[test]
fn connect_time_after_a_failed_session() {
    let c = cfg_connect_time();
    let mut f = in_state(State::OpenSent);
    f.failures = 5;
    let (_, a) = step(&c, &f, Event::TcpConnectionFails);
    assert!(
        a.contains(&Action::StartTimer(
            Timer::ConnectRetry,
            Duration::from_secs(2)
        )),
        "{a:?}"
    );
    let mut f = in_state(State::Established);
    f.failures = 5;
    let (g, a) = step(&c, &f, Event::HoldTimerExpires);
    assert_eq!(g.state, State::Idle);
    assert_eq!(
        a.last(),
        Some(&Action::StartTimer(
            Timer::ConnectRetry,
            Duration::from_secs(2)
        ))
    );
}

#[test]
fn full_happy_path_and_restart() {
    let c = cfg();
    let mut f = Fsm::new();
    let mut all = Vec::new();
    for e in [
        Event::ManualStart,
        Event::TcpConnectionConfirmed,
        Event::BgpOpen(open()),
        Event::KeepAliveMsg,
    ] {
        let (g, a) = step(&c, &f, e);
        f = g;
        all.extend(a);
    }
    assert_eq!(f.state, State::Established);
    assert!(all.iter().any(|a| matches!(a, Action::Established(_))));
    let (f, _) = step(
        &c,
        &f,
        Event::NotifMsg(Notification::cease_admin_shutdown()),
    );
    assert_eq!(f.state, State::Idle);
    let (f, a) = step(&c, &f, Event::ConnectRetryTimerExpires);
    assert_eq!(f.state, State::Connect);
    assert!(a.contains(&Action::Connect));
}

proptest::proptest! {
    /// Whatever happens, the machine never panics, Idle after ManualStop stays down, and a
    /// NOTIFICATION is always followed by closing the connection.
    #[test]
    fn random_event_sequences_are_safe(
        seq in proptest::collection::vec(0u8..15, 0..60),
        with_connect_time: bool,
    ) {
        let c = if with_connect_time { cfg_connect_time() } else { cfg() };
        let mut f = Fsm::new();
        for code in seq {
            let e = match code {
                0 => Event::ManualStart,
                1 => Event::ManualStop(StopCause::Shutdown),
                2 => Event::ConnectRetryTimerExpires,
                3 => Event::HoldTimerExpires,
                4 => Event::KeepaliveTimerExpires,
                5 => Event::TcpConnectionConfirmed,
                6 => Event::TcpConnectionFails,
                7 => Event::BgpOpen(open()),
                8 => Event::BgpHeaderErr(Notification::new(1, 1, vec![])),
                9 => Event::BgpOpenMsgErr(Notification::new(2, 0, vec![])),
                10 => Event::NotifMsg(Notification::new(6, 2, vec![])),
                11 => Event::KeepAliveMsg,
                12 => Event::UpdateMsg,
                13 => Event::UpdateMsgErr(Notification::new(3, 1, vec![])),
                _ => Event::RouteRefreshMsg,
            };
            let was_stop = matches!(e, Event::ManualStop(StopCause::Shutdown));
            let (g, a) = step(&c, &f, e);
            if let Some(i) = a.iter().position(|x| matches!(x, Action::SendNotification(_))) {
                proptest::prop_assert_eq!(&a[i + 1], &Action::DropTcp);
            }
            // With connectTime no attempt runs without the timer that bounds it.
            if let (Some(d), Some(i)) =
                (c.connect_retry, a.iter().position(|x| *x == Action::Connect))
            {
                proptest::prop_assert!(
                    a[..i].contains(&Action::StartTimer(Timer::ConnectRetry, d)),
                    "{:?}",
                    a
                );
            }
            if was_stop {
                proptest::prop_assert_eq!(g.state, State::Idle);
                proptest::prop_assert!(!g.admin_up);
            }
            if g.state == State::Established {
                proptest::prop_assert!(g.negotiated.is_some());
            }
            f = g;
        }
    }
}

#[test]
fn manual_stop_sends_the_cease_subcode_of_its_cause() {
    for (cause, subcode) in [
        (StopCause::Shutdown, 2),
        (StopCause::Deconfigured, 3),
        (StopCause::Reconfigured, 6),
    ] {
        for state in [State::OpenSent, State::OpenConfirm, State::Established] {
            let (f, a) = run(&in_state(state), Event::ManualStop(cause));
            assert_eq!(f.state, State::Idle, "{cause:?} in {state:?}");
            assert!(!f.admin_up);
            assert_eq!(
                a.first(),
                Some(&Action::SendNotification(Notification::new(
                    6,
                    subcode,
                    Vec::new()
                ))),
                "{cause:?} in {state:?}: {a:?}"
            );
        }
    }
}

#[test]
fn bfd_down_tears_a_connected_session_down_and_retries() {
    for state in [State::OpenSent, State::OpenConfirm, State::Established] {
        let (f, a) = run(&in_state(state), Event::BfdDown);
        assert_eq!(f.state, State::Idle, "{state:?}");
        assert!(f.admin_up, "BFD down is not an administrative stop");
        assert_eq!(
            a.first(),
            Some(&Action::SendNotification(Notification::cease_bfd_down())),
            "{a:?}"
        );
        assert!(a.contains(&Action::DropTcp), "{a:?}");
        assert!(
            a.iter()
                .any(|x| matches!(x, Action::StartTimer(Timer::ConnectRetry, _))),
            "{a:?}"
        );
    }
    // Without a connection there is nothing to tear down.
    for state in [State::Idle, State::Connect, State::Active] {
        let before = in_state(state);
        let (f, a) = run(&before, Event::BfdDown);
        assert_eq!(f, before, "{state:?}");
        assert!(a.is_empty(), "{state:?}: {a:?}");
    }
}

// ---- graceful restart (RFC 4724) and its notifications (RFC 8538)

/// Established with graceful restart announced by us and, per `peer_gr`/`peer_n`, the peer.
fn established_gr(peer_gr: bool, peer_n: bool) -> (FsmConfig, Fsm) {
    let cfg = FsmConfig {
        graceful_restart: true,
        ..cfg()
    };
    let peer = PeerOpen {
        graceful_restart: peer_gr,
        graceful_notification: peer_n,
        ..open()
    };
    let mut f = Fsm::new();
    f.state = State::Established;
    f.admin_up = true;
    f.negotiated = Some(negotiate(&cfg, &peer).expect("valid open"));
    (cfg, f)
}

#[test]
fn graceful_restart_is_negotiated_only_when_both_announce_it() {
    let (_, f) = established_gr(true, true);
    let n = f.negotiated.expect("negotiated");
    assert!(n.graceful_restart && n.graceful_notification);
    let (_, f) = established_gr(true, false);
    let n = f.negotiated.expect("negotiated");
    assert!(n.graceful_restart && !n.graceful_notification);
    let (_, f) = established_gr(false, true);
    let n = f.negotiated.expect("negotiated");
    assert!(!n.graceful_restart && !n.graceful_notification);
    // We did not announce it: nothing is negotiated whatever the peer says.
    let peer = PeerOpen {
        graceful_restart: true,
        graceful_notification: true,
        ..open()
    };
    let n = negotiate(&cfg(), &peer).expect("valid open");
    assert!(!n.graceful_restart && !n.graceful_notification);
}

#[test]
fn restart_closes_without_notification_when_only_graceful_restart_is_negotiated() {
    let (cfg, f) = established_gr(true, false);
    let (f, a) = step(&cfg, &f, Event::ManualStop(StopCause::Restart));
    assert_eq!(f.state, State::Idle);
    assert_eq!(sent_notification(&a), None, "{a:?}");
    assert_eq!(a.first(), Some(&Action::DropTcp));
}

#[test]
fn restart_sends_administrative_reset_when_the_n_bit_is_negotiated() {
    let (cfg, f) = established_gr(true, true);
    let (_, a) = step(&cfg, &f, Event::ManualStop(StopCause::Restart));
    assert_eq!(
        sent_notification(&a),
        Some(&Notification::new(
            code::CEASE,
            subcode::ADMINISTRATIVE_RESET,
            vec![]
        ))
    );
    assert_eq!(a.get(1), Some(&Action::DropTcp));
}

#[test]
fn restart_without_graceful_restart_is_a_shutdown() {
    let (cfg, f) = established_gr(false, false);
    let (_, a) = step(&cfg, &f, Event::ManualStop(StopCause::Restart));
    assert_eq!(
        sent_notification(&a),
        Some(&Notification::cease_admin_shutdown())
    );
}

#[test]
fn shutdown_is_a_hard_reset_when_the_n_bit_is_negotiated() {
    let (cfg, f) = established_gr(true, true);
    let (_, a) = step(&cfg, &f, Event::ManualStop(StopCause::Shutdown));
    // RFC 8538 §3.1: Cease / Hard Reset carrying the Cease it stands for.
    assert_eq!(
        sent_notification(&a),
        Some(&Notification::new(
            code::CEASE,
            subcode::HARD_RESET,
            vec![code::CEASE, subcode::ADMINISTRATIVE_SHUTDOWN]
        ))
    );
    // Without N a plain Cease already drops the routes.
    let (cfg, f) = established_gr(true, false);
    let (_, a) = step(&cfg, &f, Event::ManualStop(StopCause::Shutdown));
    assert_eq!(
        sent_notification(&a),
        Some(&Notification::cease_admin_shutdown())
    );
}

#[test]
fn notification_choice_per_cause_and_negotiation() {
    let none = |gr: bool, n: bool| {
        let (_, f) = established_gr(gr, n);
        f.negotiated
    };
    let plain = none(false, false);
    let gr = none(true, false);
    let gr_n = none(true, true);
    let cease = |s: u8| Some(Notification::new(code::CEASE, s, vec![]));
    let hard = |s: u8| {
        Some(Notification::new(
            code::CEASE,
            subcode::HARD_RESET,
            vec![code::CEASE, s],
        ))
    };
    use subcode::*;
    let table = [
        (StopCause::Restart, None, cease(ADMINISTRATIVE_SHUTDOWN)),
        (
            StopCause::Restart,
            plain.as_ref(),
            cease(ADMINISTRATIVE_SHUTDOWN),
        ),
        (StopCause::Restart, gr.as_ref(), None),
        (
            StopCause::Restart,
            gr_n.as_ref(),
            cease(ADMINISTRATIVE_RESET),
        ),
        (
            StopCause::Shutdown,
            gr.as_ref(),
            cease(ADMINISTRATIVE_SHUTDOWN),
        ),
        (
            StopCause::Shutdown,
            gr_n.as_ref(),
            hard(ADMINISTRATIVE_SHUTDOWN),
        ),
        (
            StopCause::Deconfigured,
            plain.as_ref(),
            cease(PEER_DE_CONFIGURED),
        ),
        (
            StopCause::Deconfigured,
            gr_n.as_ref(),
            hard(PEER_DE_CONFIGURED),
        ),
        (
            StopCause::Reconfigured,
            gr.as_ref(),
            cease(OTHER_CONFIGURATION_CHANGE),
        ),
        (
            StopCause::Reconfigured,
            gr_n.as_ref(),
            cease(OTHER_CONFIGURATION_CHANGE),
        ),
    ];
    for (cause, negotiated, want) in table {
        assert_eq!(
            cause.notification(negotiated),
            want,
            "{cause:?} with {negotiated:?}"
        );
    }
}

#[test]
fn restart_before_established_sends_nothing_gracefully() {
    // OpenSent: nothing negotiated yet, so a restart is an ordinary Cease.
    let cfg = FsmConfig {
        graceful_restart: true,
        ..cfg()
    };
    let mut f = Fsm::new();
    f.state = State::OpenSent;
    f.admin_up = true;
    let (_, a) = step(&cfg, &f, Event::ManualStop(StopCause::Restart));
    assert_eq!(
        sent_notification(&a),
        Some(&Notification::cease_admin_shutdown())
    );
}

// ---- BFD strict mode (draft-ietf-idr-bgp-bfd-strict-mode)

fn strict() -> FsmConfig {
    FsmConfig {
        bfd_strict: true,
        ..cfg()
    }
}

fn open_sent() -> Fsm {
    let mut f = Fsm::new();
    f.state = State::OpenSent;
    f.admin_up = true;
    f
}

#[test]
fn strict_mode_holds_in_open_sent_without_keepalive_until_bfd_is_up() {
    let cfg = strict();
    let (f, a) = step(&cfg, &open_sent(), Event::BgpOpen(open()));
    assert_eq!(f.state, State::OpenSent);
    assert_eq!(f.bfd_hold, Some(false));
    assert!(!a.contains(&Action::SendKeepalive), "{a:?}");
    assert!(a.contains(&Action::WaitingForBfd), "{a:?}");
    // The negotiated hold time (9 s) bounds the wait.
    assert!(a.contains(&Action::StartTimer(Timer::Hold, Duration::from_secs(9))));
    // The keepalive timer is not running; its stale expiry sends nothing.
    let (f2, a2) = step(&cfg, &f, Event::KeepaliveTimerExpires);
    assert_eq!((f2.state, a2), (State::OpenSent, vec![]));
    // BFD Up: our KEEPALIVE, timers, OpenConfirm; the peer's KEEPALIVE then establishes.
    let (f, a) = step(&cfg, &f, Event::BfdUp);
    assert_eq!(f.state, State::OpenConfirm);
    assert_eq!(f.bfd_hold, None);
    assert_eq!(a.first(), Some(&Action::SendKeepalive));
    let (f, a) = step(&cfg, &f, Event::KeepAliveMsg);
    assert_eq!(f.state, State::Established);
    assert!(a.iter().any(|a| matches!(a, Action::Established(_))));
}

#[test]
fn strict_mode_peer_keepalive_while_held_goes_straight_to_established_on_bfd_up() {
    let cfg = strict();
    let (f, _) = step(&cfg, &open_sent(), Event::BgpOpen(open()));
    let (f, a) = step(&cfg, &f, Event::KeepAliveMsg);
    assert_eq!((f.state, f.bfd_hold), (State::OpenSent, Some(true)));
    assert_eq!(
        a,
        vec![Action::StartTimer(Timer::Hold, Duration::from_secs(9))]
    );
    let (f, a) = step(&cfg, &f, Event::BfdUp);
    assert_eq!(f.state, State::Established);
    assert_eq!(a.first(), Some(&Action::SendKeepalive));
    assert!(a.iter().any(|a| matches!(a, Action::Established(_))));
}

#[test]
fn strict_mode_with_bfd_already_up_is_the_ordinary_exchange() {
    let cfg = strict();
    let (f, _) = step(&cfg, &open_sent(), Event::BfdUp);
    assert!(f.bfd_up);
    let (f, a) = step(&cfg, &f, Event::BgpOpen(open()));
    assert_eq!(f.state, State::OpenConfirm);
    assert_eq!(a.first(), Some(&Action::SendKeepalive));
    // BFD leaving Up without failing (AdminDown) closes the gate for the next session only.
    let (f, a) = step(&cfg, &f, Event::BfdNotUp);
    assert_eq!((f.state, a), (State::OpenConfirm, vec![]));
    assert!(!f.bfd_up);
}

#[test]
fn without_strict_mode_bfd_state_does_not_gate() {
    let (f, a) = step(&cfg(), &open_sent(), Event::BgpOpen(open()));
    assert_eq!(f.state, State::OpenConfirm);
    assert_eq!(a.first(), Some(&Action::SendKeepalive));
}

#[test]
fn strict_mode_hold_ends_with_the_hold_timer_or_a_failure() {
    let cfg = strict();
    let (held, _) = step(&cfg, &open_sent(), Event::BgpOpen(open()));
    let (f, a) = step(&cfg, &held, Event::HoldTimerExpires);
    assert_eq!((f.state, f.bfd_hold), (State::Idle, None));
    assert_eq!(
        sent_notification(&a),
        Some(&Notification::hold_timer_expired())
    );
    let (f, _) = step(
        &cfg,
        &held,
        Event::NotifMsg(Notification::hold_timer_expired()),
    );
    assert_eq!(
        (f.state, f.bfd_hold, f.negotiated),
        (State::Idle, None, None)
    );
    // A second OPEN while held is an FSM error.
    let (f, a) = step(&cfg, &held, Event::BgpOpen(open()));
    assert_eq!(f.state, State::Idle);
    assert!(sent_notification(&a).is_some());
}

#[test]
fn strict_capability_is_negotiated_only_when_both_announce_it() {
    let peer = PeerOpen {
        bfd_strict: true,
        ..open()
    };
    assert!(negotiate(&strict(), &peer).expect("valid").bfd_strict);
    assert!(!negotiate(&strict(), &open()).expect("valid").bfd_strict);
    assert!(!negotiate(&cfg(), &peer).expect("valid").bfd_strict);
}
