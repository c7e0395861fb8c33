use super::*;
use ferrolb_config::CommunityValue;
use ferrolb_speaker_core::bgp::codec::{Decoded, Notification, UpdateSummary, summarize_update};
use netgauze_bgp_pkt::open::BgpOpenMessage;
use tokio::net::TcpListener;

fn net(s: &str) -> IpNet {
    s.parse().expect("prefix")
}

fn attrs(c: u32) -> RouteAttributes {
    RouteAttributes {
        local_pref: Some(200),
        communities: vec![CommunityValue::Standard(c), CommunityValue::Large(1, 2, 3)],
    }
}

#[test]
fn diff_groups_by_attributes_and_withdraws_the_rest() {
    let mut sent = AdjRibOut::new();
    sent.insert(net("10.0.0.1/32"), attrs(1));
    sent.insert(net("10.0.0.2/32"), attrs(1));
    sent.insert(net("10.0.0.3/32"), attrs(1));
    let mut wanted = AdjRibOut::new();
    wanted.insert(net("10.0.0.1/32"), attrs(1)); // unchanged
    wanted.insert(net("10.0.0.2/32"), attrs(2)); // changed
    wanted.insert(net("10.0.0.4/32"), attrs(2)); // new, same attrs as .2
    wanted.insert(net("fd00::4/128"), attrs(1)); // new
    let (w, a) = diff(&sent, &wanted);
    assert_eq!(w, vec![net("10.0.0.3/32")]);
    assert_eq!(a.len(), 2);
    assert_eq!(a[&attrs(2)], vec![net("10.0.0.2/32"), net("10.0.0.4/32")]);
    assert_eq!(a[&attrs(1)], vec![net("fd00::4/128")]);
    let (w, a) = diff(&wanted, &wanted);
    assert!(w.is_empty() && a.is_empty());
}

fn cfg(port: u16, peer_as: PeerAsn) -> SessionConfig {
    SessionConfig {
        name: "ns/peer".into(),
        local_as: 64512,
        peer_as,
        peer_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        interface: None,
        port,
        source_address: None,
        router_id: Ipv4Addr::new(10, 200, 0, 1),
        hold_time: 9,
        keepalive_time: 3,
        connect_time: None,
        password: None,
        ebgp_multihop: false,
        graceful_restart: false,
        graceful_restart_time: 120,
        disable_mp: false,
        // Both families, so that the scripted peers below see IPv6 routes on IPv4 sessions.
        dual_stack: true,
        vrf: None,
        next_hop_v6: None,
        next_hop_v4: None,
        bfd: false,
        bfd_strict: false,
    }
}

#[test]
fn ttl_and_families() {
    let mut c = cfg(179, PeerAsn::Fixed(64513));
    assert_eq!(c.ttl(), 1);
    c.ebgp_multihop = true;
    assert_eq!(c.ttl(), 255);
    let c = cfg(179, PeerAsn::Internal);
    assert_eq!(c.ttl(), 255);
    let mut c = cfg(179, PeerAsn::External);
    assert_eq!(c.families(), (true, true));
    c.disable_mp = true;
    assert_eq!(c.families(), (true, false));
    // Without dualStackAddressFamily: the peer address's family only.
    c.disable_mp = false;
    c.dual_stack = false;
    assert_eq!(c.families(), (true, false));
    c.peer_address = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
    assert_eq!(c.families(), (false, true));
}

/// A scripted peer on loopback, speaking through our own codec.
struct FakePeer {
    framed: Framed<TcpStream, BgpFrameCodec>,
}

impl FakePeer {
    async fn accept(listener: &TcpListener) -> Self {
        let (s, _) = listener.accept().await.expect("accept");
        FakePeer {
            framed: Framed::new(s, BgpFrameCodec::new()),
        }
    }

    async fn recv(&mut self) -> Decoded {
        tokio::time::timeout(Duration::from_secs(5), self.framed.next())
            .await
            .expect("message in time")
            .expect("stream open")
            .expect("well-formed")
    }

    async fn recv_update(&mut self) -> UpdateSummary {
        loop {
            match self.recv().await.message {
                Message::Update(u) => return summarize_update(&u),
                Message::KeepAlive => continue,
                other => panic!("expected UPDATE, got {other:?}"),
            }
        }
    }

    async fn send(&mut self, m: Message) {
        self.framed.send(m).await.expect("send");
    }

    async fn handshake(&mut self, asn: u32) -> BgpOpenMessage {
        let Message::Open(ours) = self.recv().await.message else {
            panic!("expected OPEN first")
        };
        let open = build_open(&OpenConfig {
            asn,
            hold_time: 9,
            router_id: Ipv4Addr::new(10, 200, 0, 2),
            ipv4: true,
            ipv6: true,
            graceful_restart: None,
            bfd_strict: false,
        });
        self.send(Message::Open(open)).await;
        self.send(Message::KeepAlive).await;
        assert_eq!(self.recv().await.message, Message::KeepAlive);
        self.framed.codec_mut().set_four_octet_as(true);
        ours
    }
}

async fn wait_state(h: &SessionHandle, s: State) {
    let mut rx = h.subscribe_state();
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|x| *x == s))
        .await
        .expect("state in time")
        .expect("session alive");
}

#[tokio::test]
async fn session_establishes_sends_table_diffs_and_ceases() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut table = AdjRibOut::new();
    table.insert(net("10.200.0.10/32"), attrs(100));
    table.insert(net("10.200.0.11/32"), attrs(100));
    table.insert(net("fd00:200::10/128"), attrs(100));
    let h = SessionHandle::spawn(cfg(port, PeerAsn::Fixed(4_200_000_001)), table.clone());
    let mut peer = FakePeer::accept(&listener).await;
    let ours = peer.handshake(4_200_000_001).await;
    assert_eq!(ours.my_as(), 64512);
    wait_state(&h, State::Established).await;

    // Full table: one v4 UPDATE with both prefixes, one v6, then End-of-RIB for each.
    let u4 = peer.recv_update().await;
    assert_eq!(
        u4.announced,
        vec![net("10.200.0.10/32"), net("10.200.0.11/32")]
    );
    assert_eq!(u4.as_path, vec![64512]);
    assert_eq!(u4.local_pref, None, "eBGP");
    assert_eq!(u4.next_hop, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let u6 = peer.recv_update().await;
    assert_eq!(u6.announced, vec![net("fd00:200::10/128")]);
    assert_eq!(
        u6.next_hop,
        Some(IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()))
    );
    assert!(peer.recv_update().await.announced.is_empty(), "EoR v4");
    assert!(peer.recv_update().await.announced.is_empty(), "EoR v6");
    assert_eq!(h.status().prefixes_advertised, 3);

    // Change: withdraw .11 and change .10's communities → one withdrawal, one UPDATE.
    table.remove(&net("10.200.0.11/32"));
    table.insert(net("10.200.0.10/32"), attrs(200));
    h.set_table(table.clone());
    let w = peer.recv_update().await;
    assert_eq!(w.withdrawn, vec![net("10.200.0.11/32")]);
    let a = peer.recv_update().await;
    assert_eq!(a.announced, vec![net("10.200.0.10/32")]);
    assert!(a.communities.contains(&CommunityValue::Standard(200)));

    // Route refresh → everything again.
    peer.send(Message::RouteRefresh(
        netgauze_bgp_pkt::route_refresh::BgpRouteRefreshMessage::new(
            netgauze_iana::address_family::AddressType::Ipv4Unicast,
            netgauze_bgp_pkt::iana::RouteRefreshSubcode::NormalRequest,
        ),
    ))
    .await;
    let again = peer.recv_update().await;
    assert_eq!(again.announced.len(), 1);

    let status = h.status();
    assert_eq!(status.state, "Established");
    assert!(status.updates_sent >= 6);
    assert!(status.uptime_seconds.is_some());

    // Stop: Cease / Administrative Shutdown, then the connection closes.
    let stopper = tokio::spawn(h.stop(StopCause::Shutdown, Duration::from_secs(2)));
    let mut got_cease = false;
    loop {
        match tokio::time::timeout(Duration::from_secs(3), peer.framed.next()).await {
            Ok(Some(Ok(d))) => {
                if d.message == Message::Notification(Notification::cease_admin_shutdown()) {
                    got_cease = true;
                }
            }
            Ok(None) | Ok(Some(Err(_))) => break,
            Err(_) => panic!("connection not closed"),
        }
    }
    assert!(got_cease);
    stopper.await.expect("stopped");
}

#[tokio::test]
async fn wrong_peer_as_gets_bad_peer_as_and_retries() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let h = SessionHandle::spawn(cfg(port, PeerAsn::Fixed(64513)), AdjRibOut::new());
    let mut peer = FakePeer::accept(&listener).await;
    let _ = peer.recv().await; // our OPEN
    let open = build_open(&OpenConfig {
        asn: 64999,
        hold_time: 9,
        router_id: Ipv4Addr::new(10, 200, 0, 2),
        ipv4: true,
        ipv6: false,
        graceful_restart: None,
        bfd_strict: false,
    });
    peer.send(Message::Open(open)).await;
    let Message::Notification(n) = peer.recv().await.message else {
        panic!("expected NOTIFICATION")
    };
    assert_eq!((n.code, n.subcode), (2, 2));
    // The session backs off (1 s) and connects again.
    let again = tokio::time::timeout(Duration::from_secs(4), listener.accept()).await;
    assert!(again.is_ok(), "reconnected after backoff");
    let st = h.status();
    assert!(
        st.last_notification
            .as_deref()
            .unwrap_or("")
            .contains("Bad Peer AS"),
        "{st:?}"
    );
    h.stop(StopCause::Shutdown, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn malformed_message_from_peer_gets_header_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let h = SessionHandle::spawn(cfg(port, PeerAsn::External), AdjRibOut::new());
    let (mut s, _) = listener.accept().await.expect("accept");
    use tokio::io::AsyncWriteExt;
    let mut bad = vec![0xffu8; 16];
    bad.extend_from_slice(&[0, 19, 9]); // unknown type 9
    s.write_all(&bad).await.expect("write");
    let mut framed = Framed::new(s, BgpFrameCodec::new());
    let mut seen = Vec::new();
    while let Ok(Some(Ok(d))) = tokio::time::timeout(Duration::from_secs(3), framed.next()).await {
        seen.push(d.message);
    }
    assert!(matches!(seen.first(), Some(Message::Open(_))));
    assert_eq!(
        seen.last(),
        Some(&Message::Notification(Notification::new(1, 3, vec![9])))
    );
    h.stop(StopCause::Shutdown, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn hold_timer_expiry_sends_4_0() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut c = cfg(port, PeerAsn::External);
    c.hold_time = 3;
    c.keepalive_time = 1;
    let h = SessionHandle::spawn(c, AdjRibOut::new());
    let mut peer = FakePeer::accept(&listener).await;
    let _ = peer.handshake(64513).await;
    wait_state(&h, State::Established).await;
    // Stay silent: within ~3 s the session must give up with Hold Timer Expired.
    let start = std::time::Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_secs(6), peer.framed.next()).await {
            Ok(Some(Ok(d))) => match d.message {
                Message::Notification(n) => {
                    assert_eq!(n, Notification::hold_timer_expired());
                    break;
                }
                _ => continue,
            },
            other => panic!("no hold timer NOTIFICATION: {other:?}"),
        }
    }
    assert!(start.elapsed() >= Duration::from_secs(2));
    h.stop(StopCause::Shutdown, Duration::from_secs(1)).await;
}

fn negotiated(ebgp: bool) -> Negotiated {
    Negotiated {
        peer_as: 64513,
        peer_router_id: Ipv4Addr::new(10, 200, 0, 2),
        hold_time: 9,
        keepalive_time: 3,
        four_octet_as: true,
        ipv4: true,
        ipv6: true,
        ebgp,
        route_refresh: true,
        graceful_restart: false,
        graceful_notification: false,
        bfd_strict: false,
    }
}

#[test]
fn next_hops_follow_the_session_address() {
    let c = cfg(179, PeerAsn::External);
    let v4 = update_context(&c, &negotiated(true), "10.200.0.1".parse().expect("ip"));
    assert_eq!(v4.next_hop_v4, Some(Ipv4Addr::new(10, 200, 0, 1)));
    assert_eq!(
        v4.next_hop_v6,
        Some(Ipv4Addr::new(10, 200, 0, 1).to_ipv6_mapped())
    );
    assert_eq!(v4.next_hop_v6_link_local, None);
    let g = update_context(&c, &negotiated(true), "fd00:200::1".parse().expect("ip"));
    assert_eq!(g.next_hop_v6, Some("fd00:200::1".parse().expect("ip")));
    assert_eq!(g.next_hop_v6_link_local, None);
    assert_eq!(
        g.next_hop_v4,
        Some(c.router_id),
        "router ID for IPv4 over IPv6"
    );
    let ll = update_context(&c, &negotiated(false), "fe80::1".parse().expect("ip"));
    assert_eq!(
        ll.next_hop_v6_link_local,
        Some("fe80::1".parse().expect("ip"))
    );
    assert!(!ll.ebgp);
    // With the node's addresses known, each family's routes carry the node's own address.
    let mut c = c;
    c.next_hop_v6 = "fd00:200::10".parse().ok();
    c.next_hop_v4 = Some(Ipv4Addr::new(10, 200, 0, 10));
    let v4 = update_context(&c, &negotiated(true), "10.200.0.1".parse().expect("ip"));
    assert_eq!(v4.next_hop_v6, "fd00:200::10".parse().ok());
    let g = update_context(&c, &negotiated(true), "fd00:200::1".parse().expect("ip"));
    assert_eq!(g.next_hop_v4, Some(Ipv4Addr::new(10, 200, 0, 10)));
    assert_eq!(
        g.next_hop_v6,
        "fd00:200::1".parse().ok(),
        "the session's own address"
    );
}

/// An unnumbered session: both families offered; IPv4 routes carry the IPv6 next hops once
/// the peer accepted them (RFC 8950), the interface's global address beside the link-local
/// one when it has one.
#[test]
fn unnumbered_sessions_offer_both_families_and_ipv6_next_hops() {
    let mut c = cfg(179, PeerAsn::External);
    c.peer_address = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
    c.interface = Some("eth1".into());
    assert_eq!(c.families(), (true, true));
    let ll: Ipv6Addr = "fe80::1".parse().expect("ip");
    let only_ll = unnumbered_update_context(&c, &negotiated(true), ll, &[ll], true);
    assert!(only_ll.ipv4_via_ipv6);
    assert_eq!(
        (only_ll.next_hop_v6, only_ll.next_hop_v6_link_local),
        (Some(ll), None)
    );
    let global: Ipv6Addr = "fd00:200:9::1".parse().expect("ip");
    let both = unnumbered_update_context(&c, &negotiated(true), ll, &[ll, global], true);
    assert_eq!(
        (both.next_hop_v6, both.next_hop_v6_link_local),
        (Some(global), Some(ll))
    );
    let refused = unnumbered_update_context(&c, &negotiated(true), ll, &[ll], false);
    assert!(!refused.ipv4_via_ipv6);
    assert_eq!(refused.next_hop_v4, Some(c.router_id));
}

proptest::proptest! {
    /// Applying the diff to what was sent gives exactly what is wanted.
    #[test]
    fn diff_converges(
        sent in proptest::collection::btree_map(0u32..64, 0u32..3, 0..40),
        wanted in proptest::collection::btree_map(0u32..64, 0u32..3, 0..40),
    ) {
        let to_table = |m: &BTreeMap<u32, u32>| -> AdjRibOut {
            m.iter()
                .map(|(k, v)| {
                    (
                        IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + k), 32).expect("net")),
                        attrs(*v),
                    )
                })
                .collect()
        };
        let (sent, wanted) = (to_table(&sent), to_table(&wanted));
        let (withdraw, announce) = diff(&sent, &wanted);
        let mut result = sent.clone();
        for p in &withdraw {
            result.remove(p);
        }
        for (a, ps) in &announce {
            for p in ps {
                result.insert(*p, a.clone());
            }
        }
        proptest::prop_assert_eq!(&result, &wanted);
        // Nothing unchanged is resent.
        for (a, ps) in &announce {
            for p in ps {
                proptest::prop_assert_ne!(sent.get(p), Some(a));
            }
        }
    }
}

#[test]
fn debug_redacts_the_password() {
    let mut c = cfg(179, PeerAsn::External);
    c.password = Some("s3cret".into());
    let text = format!("{c:?}");
    assert!(!text.contains("s3cret"), "{text}");
    assert!(text.contains("<redacted>"));
}

/// Reads until the connection closes; the NOTIFICATIONs that came.
async fn notifications_until_close(peer: &mut FakePeer) -> Vec<Notification> {
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(3), peer.framed.next()).await {
            Ok(Some(Ok(d))) => {
                if let Message::Notification(n) = d.message {
                    got.push(n);
                }
            }
            Ok(None) | Ok(Some(Err(_))) => return got,
            Err(_) => panic!("connection not closed"),
        }
    }
}

#[tokio::test]
async fn bfd_going_down_tears_the_session_down_and_it_comes_back() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut c = cfg(port, PeerAsn::Fixed(64513));
    c.bfd = true;
    let (bfd_tx, bfd_rx) = watch::channel(BfdState::Down);
    let h = SessionHandle::spawn_with_bfd(c, AdjRibOut::new(), Some(bfd_rx));
    let mut peer = FakePeer::accept(&listener).await;
    peer.handshake(64513).await;
    wait_state(&h, State::Established).await;

    // BFD never came up: Down again is no failure (RFC 5882: only Up -> Down is).
    bfd_tx.send_replace(BfdState::Down);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.state(), State::Established);
    // The peer taking BFD AdminDown is no failure either.
    bfd_tx.send_replace(BfdState::Up);
    bfd_tx.send_replace(BfdState::AdminDown);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.state(), State::Established);

    // Up, then Down: Cease / BFD Down at once, and the session closes.
    bfd_tx.send_replace(BfdState::Up);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t = std::time::Instant::now();
    bfd_tx.send_replace(BfdState::Down);
    let got = notifications_until_close(&mut peer).await;
    assert_eq!(got, vec![Notification::cease_bfd_down()]);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    drop(peer);
    let mut rx = h.subscribe_state();
    tokio::time::timeout(
        Duration::from_secs(2),
        rx.wait_for(|s| *s != State::Established),
    )
    .await
    .expect("leaves Established")
    .expect("session alive");
    assert_eq!(h.status().last_error.as_deref(), Some("BFD session down"));

    // Not an administrative stop: it connects again by itself.
    let mut again = tokio::time::timeout(Duration::from_secs(5), FakePeer::accept(&listener))
        .await
        .expect("reconnects");
    again.handshake(64513).await;
    wait_state(&h, State::Established).await;
    h.stop(StopCause::Shutdown, Duration::from_secs(1)).await;
}

// ---- graceful restart (RFC 4724) with and without RFC 8538's N bit

/// A router's OPEN announcing graceful restart as a helper, with or without the N bit.
fn router_open_with_gr(asn: u32, n_bit: bool) -> BgpOpenMessage {
    use netgauze_bgp_pkt::capabilities::{
        BgpCapability, FourOctetAsCapability, GracefulRestartCapability,
        MultiProtocolExtensionsCapability,
    };
    use netgauze_bgp_pkt::open::BgpOpenMessageParameter;
    use netgauze_iana::address_family::AddressType;
    let caps = vec![
        BgpCapability::MultiProtocolExtensions(MultiProtocolExtensionsCapability::new(
            AddressType::Ipv4Unicast,
        )),
        BgpCapability::FourOctetAs(FourOctetAsCapability::new(asn)),
        BgpCapability::GracefulRestartCapability(GracefulRestartCapability::new(
            false,
            n_bit,
            120,
            vec![],
        )),
    ];
    BgpOpenMessage::new(
        u16::try_from(asn).unwrap_or(23456),
        9,
        Ipv4Addr::new(10, 200, 0, 2),
        vec![BgpOpenMessageParameter::new_capabilities(caps)],
    )
}

impl FakePeer {
    /// Handshake as a graceful restart helper; returns our OPEN as read.
    async fn handshake_gr(&mut self, asn: u32, n_bit: bool) -> PeerOpen {
        let Message::Open(ours) = self.recv().await.message else {
            panic!("expected OPEN first")
        };
        self.send(Message::Open(router_open_with_gr(asn, n_bit)))
            .await;
        self.send(Message::KeepAlive).await;
        assert_eq!(self.recv().await.message, Message::KeepAlive);
        self.framed.codec_mut().set_four_octet_as(true);
        PeerOpen::from_open(&ours)
    }
}

fn gr_cfg(port: u16) -> SessionConfig {
    SessionConfig {
        graceful_restart: true,
        graceful_restart_time: 60,
        ..cfg(port, PeerAsn::Fixed(64513))
    }
}

/// Our graceful restart capability as sent: (R, N, restart time, families with F set).
fn our_gr_capability(ours: &BgpOpenMessage) -> (bool, bool, u16, usize) {
    ours.capabilities()
        .into_iter()
        .find_map(|c| match c {
            netgauze_bgp_pkt::capabilities::BgpCapability::GracefulRestartCapability(g) => Some((
                g.restart(),
                g.graceful_notification(),
                g.time(),
                g.address_families()
                    .iter()
                    .filter(|f| f.forwarding_state())
                    .count(),
            )),
            _ => None,
        })
        .expect("graceful restart capability")
}

#[tokio::test]
async fn a_restarted_speaker_says_so_then_sends_its_table_and_end_of_rib() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut table = AdjRibOut::new();
    table.insert(net("10.200.0.10/32"), attrs(100));
    let h = SessionHandle::spawn_with(gr_cfg(port), table, None, true);
    let mut peer = FakePeer::accept(&listener).await;
    let Message::Open(ours) = peer.recv().await.message else {
        panic!("expected OPEN first")
    };
    // R and N set, the configured restart time, F for both families.
    assert_eq!(our_gr_capability(&ours), (true, true, 60, 2));
    peer.send(Message::Open(router_open_with_gr(64513, true)))
        .await;
    peer.send(Message::KeepAlive).await;
    assert_eq!(peer.recv().await.message, Message::KeepAlive);
    peer.framed.codec_mut().set_four_octet_as(true);
    wait_state(&h, State::Established).await;
    assert!(h.graceful_restart());
    // The table, then End-of-RIB (the router flushes what is still stale on it).
    assert_eq!(
        peer.recv_update().await.announced,
        vec![net("10.200.0.10/32")]
    );
    let eor = peer.recv_update().await;
    assert!(eor.announced.is_empty() && eor.withdrawn.is_empty());

    // The peer drops the session: the next OPEN no longer claims a restart.
    drop(peer);
    let mut peer = FakePeer::accept(&listener).await;
    let Message::Open(again) = peer.recv().await.message else {
        panic!("expected OPEN first")
    };
    assert_eq!(our_gr_capability(&again), (false, true, 60, 2));
    h.stop(StopCause::Shutdown, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn restart_in_place_closes_without_notification_where_only_gr_is_negotiated() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut table = AdjRibOut::new();
    table.insert(net("10.200.0.10/32"), attrs(100));
    let h = SessionHandle::spawn(gr_cfg(port), table);
    let mut peer = FakePeer::accept(&listener).await;
    let ours = peer.handshake_gr(64513, false).await;
    assert!(ours.graceful_restart && ours.graceful_notification && !ours.restarting);
    wait_state(&h, State::Established).await;
    assert!(h.graceful_restart());
    peer.recv_update().await;
    let stopper = tokio::spawn(h.stop(StopCause::Restart, Duration::from_secs(2)));
    assert_eq!(notifications_until_close(&mut peer).await, vec![]);
    stopper.await.expect("stopped");
}

#[tokio::test]
async fn restart_in_place_sends_administrative_reset_where_n_is_negotiated() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let h = SessionHandle::spawn(gr_cfg(port), AdjRibOut::new());
    let mut peer = FakePeer::accept(&listener).await;
    peer.handshake_gr(64513, true).await;
    wait_state(&h, State::Established).await;
    let stopper = tokio::spawn(h.stop(StopCause::Restart, Duration::from_secs(2)));
    assert_eq!(
        notifications_until_close(&mut peer).await,
        vec![Notification::cease_admin_reset()]
    );
    stopper.await.expect("stopped");
}

#[tokio::test]
async fn a_leaving_node_withdraws_then_hard_resets() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut table = AdjRibOut::new();
    table.insert(net("10.200.0.10/32"), attrs(100));
    table.insert(net("10.200.0.11/32"), attrs(100));
    let h = SessionHandle::spawn(gr_cfg(port), table);
    let mut peer = FakePeer::accept(&listener).await;
    peer.handshake_gr(64513, true).await;
    wait_state(&h, State::Established).await;
    assert_eq!(peer.recv_update().await.announced.len(), 2);
    peer.recv_update().await; // End-of-RIB
    h.set_table(AdjRibOut::new());
    assert!(h.wait_withdrawn(Duration::from_secs(2)).await);
    let stopper = tokio::spawn(h.stop(StopCause::Shutdown, Duration::from_secs(2)));
    // In order on the wire: the withdrawal, then the Hard Reset.
    let w = peer.recv_update().await;
    assert_eq!(
        w.withdrawn,
        vec![net("10.200.0.10/32"), net("10.200.0.11/32")]
    );
    assert_eq!(
        notifications_until_close(&mut peer).await,
        vec![Notification::hard_reset(
            &Notification::cease_admin_shutdown()
        )]
    );
    stopper.await.expect("stopped");
}

/// Strict mode over a real connection: the OPEN carries capability 74; after the peer's OPEN
/// and KEEPALIVE no KEEPALIVE comes back while BFD is Down (the session stays OpenSent and
/// says why); BFD Up releases it at once, straight to Established.
#[tokio::test]
async fn strict_mode_withholds_the_keepalive_until_bfd_is_up() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut c = cfg(port, PeerAsn::Fixed(64513));
    c.bfd = true;
    c.bfd_strict = true;
    let (bfd_tx, bfd_rx) = watch::channel(BfdState::Down);
    let h = SessionHandle::spawn_with_bfd(c, AdjRibOut::new(), Some(bfd_rx));
    let mut peer = FakePeer::accept(&listener).await;
    let Message::Open(ours) = peer.recv().await.message else {
        panic!("expected OPEN first")
    };
    assert!(PeerOpen::from_open(&ours).bfd_strict, "capability 74 sent");
    let open = build_open(&OpenConfig {
        asn: 64513,
        hold_time: 9,
        router_id: Ipv4Addr::new(10, 200, 0, 2),
        ipv4: true,
        ipv6: true,
        graceful_restart: None,
        bfd_strict: false,
    });
    peer.send(Message::Open(open)).await;
    peer.send(Message::KeepAlive).await;
    // Nothing comes back while BFD is Down.
    let quiet = tokio::time::timeout(Duration::from_millis(500), peer.framed.next()).await;
    assert!(quiet.is_err(), "no KEEPALIVE while BFD is down: {quiet:?}");
    assert_eq!(h.state(), State::OpenSent);
    assert!(
        h.status()
            .last_error
            .is_some_and(|e| e.contains("strict mode")),
        "{:?}",
        h.status()
    );
    // BFD Up: our KEEPALIVE, and Established (the peer's KEEPALIVE came already).
    bfd_tx.send_replace(BfdState::Up);
    assert_eq!(peer.recv().await.message, Message::KeepAlive);
    wait_state(&h, State::Established).await;
    h.stop(StopCause::Shutdown, Duration::from_secs(1)).await;
}

/// A table for one IPv4 route.
fn one_route() -> AdjRibOut {
    let mut t = AdjRibOut::new();
    t.insert(net("10.200.100.1/32"), attrs(1));
    t
}

/// With a BFD profile, an Established session holds its routes until BFD is Up: a route out
/// before BFD is armed would outlive a node failure by the hold time.
#[tokio::test]
async fn routes_wait_for_bfd_to_be_up() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut c = cfg(port, PeerAsn::Fixed(64513));
    c.bfd = true;
    let (bfd_tx, bfd_rx) = watch::channel(BfdState::Down);
    let h = SessionHandle::spawn_with_bfd(c, one_route(), Some(bfd_rx));
    let mut peer = FakePeer::accept(&listener).await;
    peer.handshake(64513).await;
    wait_state(&h, State::Established).await;
    let quiet = tokio::time::timeout(Duration::from_millis(700), peer.recv_update()).await;
    assert!(quiet.is_err(), "an UPDATE before BFD is Up: {quiet:?}");
    assert_eq!(h.status().prefixes_advertised, 0);
    bfd_tx.send_replace(BfdState::Up);
    let u = peer.recv_update().await;
    assert_eq!(u.announced, vec![net("10.200.100.1/32")]);
    h.stop(StopCause::Shutdown, Duration::from_secs(1)).await;
}

/// BFD that never comes Up (a router without it) delays the routes by [`BFD_ARM_WAIT`], not
/// forever.
#[tokio::test]
async fn routes_go_out_after_the_bfd_wait_without_bfd() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut c = cfg(port, PeerAsn::Fixed(64513));
    c.bfd = true;
    let (_bfd_tx, bfd_rx) = watch::channel(BfdState::Down);
    let h = SessionHandle::spawn_with_bfd(c, one_route(), Some(bfd_rx));
    let mut peer = FakePeer::accept(&listener).await;
    peer.handshake(64513).await;
    wait_state(&h, State::Established).await;
    let established = std::time::Instant::now();
    let u = tokio::time::timeout(BFD_ARM_WAIT + Duration::from_secs(3), peer.recv_update())
        .await
        .expect("routes after the wait");
    assert_eq!(u.announced, vec![net("10.200.100.1/32")]);
    let waited = established.elapsed();
    assert!(
        waited + Duration::from_millis(100) >= BFD_ARM_WAIT,
        "routes after {waited:?}, before the wait ended"
    );
    h.stop(StopCause::Shutdown, Duration::from_secs(1)).await;
}
