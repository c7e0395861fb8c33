use super::*;
use crate::bgp::framing::BgpFrameCodec;
use ferrolb_config::{CommunityValue, PeerAsn};
use ferrolb_speaker_core::bgp::RouteAttributes;
use ferrolb_speaker_core::bgp::codec::{Message, Notification};
use futures::StreamExt;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

fn peer(name: &str, port: u16) -> Peer {
    Peer {
        port,
        ..Peer::with_defaults(
            "ferrolb-system",
            name,
            64512,
            PeerAsn::Fixed(64513),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        )
    }
}

fn ann(prefix: &str, peers: &[(&str, u32)]) -> BgpAnnouncement {
    BgpAnnouncement {
        prefix: prefix.parse().expect("prefix"),
        ips: vec![],
        services: vec!["default/svc".into()],
        peers: peers
            .iter()
            .map(|(p, c)| {
                (
                    p.to_string(),
                    RouteAttributes {
                        local_pref: Some(100),
                        communities: vec![CommunityValue::Standard(*c)],
                    },
                )
            })
            .collect(),
    }
}

#[test]
fn session_config_resolves_passwords_and_router_id() {
    let mut p = peer("tor", 179);
    p.password = Some(PeerPassword::Secret {
        namespace: "ferrolb-system".into(),
        name: "tor-pw".into(),
    });
    let mut pw = Passwords::new();
    let id = NodeAddresses {
        v4: Some(Ipv4Addr::new(10, 200, 0, 5)),
        v6: Some("fd00:200::5".parse().expect("v6")),
    };
    assert_eq!(
        session_config(&p, &pw, id),
        Err(ManagerError::MissingSecret {
            peer: "ferrolb-system/tor".into(),
            namespace: "ferrolb-system".into(),
            name: "tor-pw".into()
        })
    );
    pw.insert(("ferrolb-system".into(), "tor-pw".into()), "s3cret".into());
    let c = session_config(&p, &pw, id).expect("config");
    assert_eq!(c.password.as_deref(), Some("s3cret"));
    assert_eq!(c.router_id, Ipv4Addr::new(10, 200, 0, 5));
    // The node's addresses are the next hops of the other family's routes.
    assert_eq!(c.next_hop_v4, Some(Ipv4Addr::new(10, 200, 0, 5)));
    assert_eq!(c.next_hop_v6, "fd00:200::5".parse().ok());
    assert_eq!((c.hold_time, c.keepalive_time), (90, 30));
    assert_eq!(c.name, "ferrolb-system/tor");

    p.router_id = Some(Ipv4Addr::new(1, 2, 3, 4));
    assert_eq!(
        session_config(&p, &pw, NodeAddresses::default())
            .expect("config")
            .router_id,
        Ipv4Addr::new(1, 2, 3, 4)
    );
    p.router_id = None;
    assert!(matches!(
        session_config(&p, &pw, NodeAddresses::default()),
        Err(ManagerError::NoRouterId { .. })
    ));

    p.password = Some(PeerPassword::Literal("x".repeat(81)));
    assert!(matches!(
        session_config(&p, &pw, id),
        Err(ManagerError::PasswordTooLong { len: 81, .. })
    ));
}

/// `localASN` is the AS of our OPEN; a session in a VRF carries its name and does not name the
/// node's (default VRF) addresses as next hops.
#[test]
fn session_config_presents_local_asn_and_keeps_vrf_next_hops_out_of_the_default_vrf() {
    let mut p = peer("tor", 179);
    let id = NodeAddresses {
        v4: Some(Ipv4Addr::new(10, 200, 0, 5)),
        v6: Some("fd00:200::5".parse().expect("v6")),
    };
    let c = session_config(&p, &Passwords::new(), id).expect("config");
    assert_eq!((c.local_as, c.vrf.as_deref()), (64512, None));
    p.local_asn = Some(65010);
    p.vrf = Some("red".into());
    p.dual_stack = true;
    let c = session_config(&p, &Passwords::new(), id).expect("config");
    assert_eq!((c.local_as, c.vrf.as_deref()), (65010, Some("red")));
    assert_eq!((c.next_hop_v4, c.next_hop_v6), (None, None));
    assert_eq!(c.families(), (true, true));
    assert_eq!(c.connect_options().device.as_deref(), Some("red"));
}

#[test]
fn table_for_takes_only_the_peers_prefixes() {
    let anns = vec![
        ann("10.200.0.10/32", &[("a", 1), ("b", 2)]),
        ann("10.200.0.11/32", &[("b", 3)]),
    ];
    let a = table_for("a", &anns);
    assert_eq!(a.len(), 1);
    let p: IpNet = "10.200.0.10/32".parse().expect("prefix");
    assert_eq!(a[&p].communities, vec![CommunityValue::Standard(1)]);
    assert_eq!(a[&p].local_pref, Some(100));
    assert_eq!(table_for("b", &anns).len(), 2);
    assert!(table_for("c", &anns).is_empty());
}

async fn accept(l: &TcpListener, within: Duration) -> Option<Framed<TcpStream, BgpFrameCodec>> {
    match tokio::time::timeout(within, l.accept()).await {
        Ok(Ok((s, _))) => Some(Framed::new(s, BgpFrameCodec::new())),
        _ => None,
    }
}

/// Reads until the connection closes; the NOTIFICATIONs that came.
async fn notifications(f: &mut Framed<TcpStream, BgpFrameCodec>) -> Vec<Notification> {
    let mut got = Vec::new();
    while let Ok(Some(Ok(d))) = tokio::time::timeout(Duration::from_secs(3), f.next()).await {
        if let Message::Notification(n) = d.message {
            got.push(n);
        }
    }
    got
}

#[tokio::test]
async fn a_peer_change_reconnects_only_that_session() {
    let la = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let lb = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let pa = peer("a", la.local_addr().expect("addr").port());
    let pb = peer("b", lb.local_addr().expect("addr").port());
    let mut m = PeerManager::new(Some(Ipv4Addr::new(10, 200, 0, 1)));
    let anns = vec![ann("10.200.0.10/32", &[("a", 1), ("b", 2)])];
    let errs = m
        .apply(&[pa.clone(), pb.clone()], &Passwords::new(), &anns)
        .await;
    assert!(errs.is_empty());
    let mut ca = accept(&la, Duration::from_secs(3))
        .await
        .expect("a connects");
    let mut cb = accept(&lb, Duration::from_secs(3))
        .await
        .expect("b connects");
    assert_eq!(m.status().len(), 2);

    // Same peers, new table: no reconnect, tables updated.
    let anns2 = vec![ann("10.200.0.12/32", &[("b", 2)])];
    m.apply(&[pa.clone(), pb.clone()], &Passwords::new(), &anns2)
        .await;
    assert!(m.session("a").expect("a").table().is_empty());
    assert_eq!(m.session("b").expect("b").table().len(), 1);
    assert!(accept(&la, Duration::from_millis(300)).await.is_none());

    // Change a's hold time: a gets a Cease and a new connection; b is untouched.
    let mut pa2 = pa.clone();
    pa2.hold_time = Duration::from_secs(30);
    m.apply(&[pa2.clone(), pb.clone()], &Passwords::new(), &anns2)
        .await;
    assert_eq!(
        notifications(&mut ca).await,
        vec![Notification::cease_config_change()],
        "old session of a ceased with Other Configuration Change"
    );
    let mut ca = accept(&la, Duration::from_secs(3))
        .await
        .expect("a reconnects");
    assert!(
        accept(&lb, Duration::from_millis(500)).await.is_none(),
        "b not reconnected"
    );
    assert_eq!(m.session("a").expect("a").config().hold_time, 30);

    // A missing Secret on an existing peer keeps its running session.
    let mut pa3 = pa2.clone();
    pa3.password = Some(PeerPassword::Secret {
        namespace: "x".into(),
        name: "missing".into(),
    });
    let errs = m.apply(&[pa3, pb.clone()], &Passwords::new(), &anns2).await;
    assert_eq!(errs.len(), 1);
    assert!(m.session("a").is_some());

    // Remove b: Peer De-configured.
    m.apply(&[pa2], &Passwords::new(), &anns2).await;
    assert!(m.session("b").is_none());
    assert_eq!(
        notifications(&mut cb).await,
        vec![Notification::cease_deconfigured()]
    );
    // Shutdown: Administrative Shutdown.
    m.shutdown(StopCause::Shutdown).await;
    assert!(m.status().is_empty());
    assert_eq!(
        notifications(&mut ca).await,
        vec![Notification::cease_admin_shutdown()]
    );
}
