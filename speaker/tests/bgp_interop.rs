//! End-to-end interop of the native BGP speaker with BIRD 2, in network namespaces.
//!
//! Each test builds a `common::router_lab::RouterLab` (two namespaces joined by a veth pair,
//! addresses in 10.200.0.0/16 and fd00:200::/48 only), runs BIRD or FRR in one, and runs our
//! `PeerManager` in-process in the other: a dedicated thread enters the namespace before
//! building a current-thread tokio runtime, so every socket the sessions open lives there.
//! Everything is torn down on drop (processes stopped by PID, namespaces deleted), also when
//! an assertion fails.
//!
//! Needs root and `bird`/`birdc`. Without root: skipped with a message locally, a failure
//! when `CI` is set.

mod common;

use common::router_lab::{OUR_V4, OUR_V6, RouterLab, THEIR_V4, THEIR_V6, birdc_at};
use ferrolb_config::{CommunityValue, Peer, PeerAsn, PeerPassword};
use ferrolb_lab::Netns;
use ferrolb_speaker::bgp::manager::{Passwords, PeerManager};
use ferrolb_speaker_core::bgp::RouteAttributes;
use ferrolb_speaker_core::bgp::fsm::{State, StopCause};
use ferrolb_speaker_core::desired::BgpAnnouncement;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Returns false (after printing why) when the test cannot run here.
fn can_run(test: &str) -> bool {
    ferrolb_lab::tools_or_skip(test, &["bird", "birdc"])
}

/// Runs `f` on a thread inside namespace `ns`, with a current-thread runtime; a panic in it
/// fails the test with its own message.
fn in_netns<F, Fut>(ns: &Netns, f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let handle = ns
        .spawn_thread(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(f());
        })
        .expect("entering the namespace");
    if let Err(panic) = handle.join() {
        std::panic::resume_unwind(panic);
    }
}

fn peer(name: &str, my_asn: u32, peer_asn: u32, address: &str) -> Peer {
    Peer {
        hold_time: Duration::from_secs(9),
        keepalive_time: Duration::from_secs(3),
        connect_time: Some(Duration::from_secs(2)),
        ..Peer::with_defaults(
            "ferrolb-system",
            name,
            my_asn,
            PeerAsn::Fixed(peer_asn),
            address.parse().expect("address"),
        )
    }
}

fn announcement(prefix: &str, peers: &[&str], local_pref: Option<u32>) -> BgpAnnouncement {
    BgpAnnouncement {
        prefix: prefix.parse().expect("prefix"),
        ips: vec![],
        services: vec!["default/web".into()],
        peers: peers
            .iter()
            .map(|p| {
                (
                    p.to_string(),
                    RouteAttributes {
                        local_pref,
                        communities: vec![
                            CommunityValue::Standard((64512 << 16) | 100),
                            CommunityValue::Large(4_200_000_099, 1, 2),
                        ],
                    },
                )
            })
            .collect::<BTreeMap<_, _>>(),
    }
}

async fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < within {
        if f() {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out after {within:?} waiting for {what}");
}

async fn wait_established(m: &PeerManager, name: &str, within: Duration) {
    let mut rx = m.session(name).expect("session").subscribe_state();
    tokio::time::timeout(within, rx.wait_for(|s| *s == State::Established))
        .await
        .unwrap_or_else(|_| panic!("{name} not Established within {within:?}: {:?}", m.status()))
        .expect("session alive");
}

#[test]
fn bird_learns_routes_with_communities_withdrawal_and_cease() {
    if !can_run("bird_learns_routes_with_communities_withdrawal_and_cease") {
        return;
    }
    let mut lab = RouterLab::new("bgp");
    let protocols = format!(
        "protocol bgp us4 {{ local {b4} as 64513; neighbor {o4} as 4200000099; passive on; hold time 9;\n  ipv4 {{ import all; export none; }}; }}\n\
         protocol bgp us6 {{ local {b6} as 64513; neighbor {o6} as 4200000099; passive on; hold time 9;\n  ipv6 {{ import all; export none; }}; }}\n",
        b4 = THEIR_V4,
        o4 = OUR_V4,
        b6 = THEIR_V6,
        o6 = OUR_V6
    );
    lab.start_bird(&protocols);
    let ctl = lab.bird_ctl();
    let birdc = move |args: &[&str]| birdc_at(&ctl, args);

    in_netns(&lab.us, move || async move {
        let router_id: Ipv4Addr = OUR_V4.parse().expect("v4");
        let mut m = PeerManager::new(Some(router_id));
        let peers = vec![
            peer("bird4", 4_200_000_099, 64513, THEIR_V4),
            peer("bird6", 4_200_000_099, 64513, THEIR_V6),
        ];
        let v4 = "10.200.200.10/32";
        let v6 = "fd00:200:0:200::10/128";
        let anns = vec![
            announcement(v4, &["bird4"], Some(300)),
            announcement(v6, &["bird6"], None),
        ];
        let errs = m.apply(&peers, &Passwords::new(), &anns).await;
        assert!(errs.is_empty(), "{errs:?}");
        wait_established(&m, "bird4", Duration::from_secs(20)).await;
        wait_established(&m, "bird6", Duration::from_secs(20)).await;

        // The IPv4 route with our communities, AS_PATH = our 4-octet AS, next hop = us.
        wait_until("IPv4 route in BIRD", Duration::from_secs(10), || {
            birdc(&["show", "route", "all", "for", v4]).contains(v4.trim_end_matches("/32"))
        })
        .await;
        let out = birdc(&["show", "route", "all", "protocol", "us4"]);
        assert!(out.contains("10.200.200.10/32"), "{out}");
        assert!(out.contains("BGP.community: (64512,100)"), "{out}");
        assert!(
            out.contains("BGP.large_community: (4200000099, 1, 2)"),
            "{out}"
        );
        assert!(out.contains("BGP.as_path: 4200000099"), "{out}");
        assert!(out.contains(&format!("BGP.next_hop: {OUR_V4}")), "{out}");
        assert!(
            !out.contains("BGP.local_pref: 300"),
            "no LOCAL_PREF on eBGP: {out}"
        );

        // The IPv6 route over the IPv6 session (MP_REACH_NLRI, global next hop).
        wait_until("IPv6 route in BIRD", Duration::from_secs(10), || {
            birdc(&["show", "route", "all", "protocol", "us6"]).contains("fd00:200:0:200::10/128")
        })
        .await;
        let out6 = birdc(&["show", "route", "all", "protocol", "us6"]);
        assert!(out6.contains(&format!("BGP.next_hop: {OUR_V6}")), "{out6}");
        assert!(out6.contains("BGP.community: (64512,100)"), "{out6}");

        // Status of the sessions.
        let st = m.status();
        assert!(st.iter().all(|s| s.state == "Established"), "{st:?}");
        assert!(st.iter().all(|s| s.prefixes_advertised == 1), "{st:?}");

        // Withdrawal: an empty desired table removes the route.
        m.apply(&peers, &Passwords::new(), &[anns[1].clone()]).await;
        let took = wait_until("IPv4 withdrawal", Duration::from_secs(5), || {
            !birdc(&["show", "route", "protocol", "us4"]).contains("10.200.200.10/32")
        })
        .await;
        eprintln!("withdrawal visible in BIRD after {took:?}");
        // And back.
        m.apply(&peers, &Passwords::new(), &anns).await;
        wait_until("IPv4 re-announcement", Duration::from_secs(5), || {
            birdc(&["show", "route", "protocol", "us4"]).contains("10.200.200.10/32")
        })
        .await;

        // Cease on shutdown: BIRD drops the routes at once (its hold timer is 9 s).
        let start = Instant::now();
        m.shutdown(StopCause::Shutdown).await;
        loop {
            let r4 = birdc(&["show", "route", "protocol", "us4"]);
            let r6 = birdc(&["show", "route", "protocol", "us6"]);
            if !r4.contains("10.200.200.10/32") && !r6.contains("fd00:200:0:200::10/128") {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "routes still in BIRD {:?} after shutdown:\n{r4}\n{r6}",
                start.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "routes gone from BIRD {:?} after shutdown started",
            start.elapsed()
        );
        let protos = birdc(&["show", "protocols", "all", "us4"]);
        assert!(
            protos.to_lowercase().contains("administrative shutdown"),
            "BIRD saw our Cease: {protos}"
        );
    });
    drop(lab);
}

#[test]
fn ibgp_sends_local_pref_and_empty_as_path() {
    if !can_run("ibgp_sends_local_pref_and_empty_as_path") {
        return;
    }
    let mut lab = RouterLab::new("bgp");
    let protocols = format!(
        "protocol bgp peer_ibgp {{ local {b4} as 4200000099; neighbor {o4} as 4200000099; passive on; hold time 9; direct;\n  ipv4 {{ import all; export none; }}; }}\n",
        b4 = THEIR_V4,
        o4 = OUR_V4
    );
    lab.start_bird(&protocols);
    let ctl = lab.bird_ctl();
    in_netns(&lab.us, move || async move {
        let mut m = PeerManager::new(Some(OUR_V4.parse().expect("v4")));
        let mut p = peer("bird", 4_200_000_099, 4_200_000_099, THEIR_V4);
        p.peer_asn = PeerAsn::Internal;
        let anns = vec![announcement("10.200.201.0/24", &["bird"], Some(300))];
        m.apply(&[p], &Passwords::new(), &anns).await;
        wait_established(&m, "bird", Duration::from_secs(20)).await;
        let show = || birdc_at(&ctl, &["show", "route", "all", "protocol", "peer_ibgp"]);
        wait_until("iBGP route", Duration::from_secs(10), || {
            show().contains("10.200.201.0/24")
        })
        .await;
        let out = show();
        assert!(out.contains("BGP.local_pref: 300"), "{out}");
        assert!(
            !out.contains("BGP.as_path: 4200000099"),
            "iBGP: empty AS_PATH: {out}"
        );
        m.shutdown(StopCause::Shutdown).await;
    });
    drop(lab);
}

#[test]
fn md5_wrong_password_never_establishes_right_one_does() {
    if !can_run("md5_wrong_password_never_establishes_right_one_does") {
        return;
    }
    let mut lab = RouterLab::new("bgp");
    let protocols = format!(
        "protocol bgp peer_md5 {{ local {b4} as 64513; neighbor {o4} as 64512; passive on; hold time 9; password \"s3cret\";\n  ipv4 {{ import all; export none; }}; }}\n",
        b4 = THEIR_V4,
        o4 = OUR_V4
    );
    lab.start_bird(&protocols);
    in_netns(&lab.us, move || async move {
        let mut m = PeerManager::new(Some(OUR_V4.parse().expect("v4")));
        let mut p = peer("bird", 64512, 64513, THEIR_V4);
        p.password = Some(PeerPassword::Literal("wrong".into()));
        let anns = vec![announcement("10.200.202.10/32", &["bird"], None)];
        m.apply(&[p.clone()], &Passwords::new(), &anns).await;
        // Several connect attempts (one every 2 s, connectTime) within 8 s: none may succeed.
        let mut rx = m.session("bird").expect("session").subscribe_state();
        let reached = tokio::time::timeout(
            Duration::from_secs(8),
            rx.wait_for(|s| matches!(s, State::OpenSent | State::OpenConfirm | State::Established)),
        )
        .await;
        assert!(
            reached.is_err(),
            "wrong MD5 password got past TCP: {:?}",
            m.status()
        );
        let attempts = m.counters()[0].1.connect_attempts.load(Ordering::Relaxed);
        assert!(attempts >= 2, "retried: {attempts}");

        // The right password, from a Secret: establishes.
        p.password = Some(PeerPassword::Secret {
            namespace: "ferrolb-system".into(),
            name: "bird-md5".into(),
        });
        let mut pw = Passwords::new();
        pw.insert(
            ("ferrolb-system".into(), "bird-md5".into()),
            "s3cret".into(),
        );
        m.apply(&[p], &pw, &anns).await;
        wait_established(&m, "bird", Duration::from_secs(20)).await;
        m.shutdown(StopCause::Shutdown).await;
    });
    drop(lab);
}

#[test]
fn frr_learns_routes_over_md5_with_four_octet_as_and_ceases() {
    if !can_run("frr_learns_routes_over_md5_with_four_octet_as_and_ceases") {
        return;
    }
    if !std::path::Path::new("/usr/lib/frr/bgpd").exists() {
        if std::env::var_os("CI").is_some() {
            panic!("FRR (apt-get install frr) is needed and CI is set");
        }
        eprintln!("skipping: FRR not installed");
        return;
    }
    let mut lab = RouterLab::new("bgp");
    let conf = format!(
        "frr defaults traditional\nhostname frr-lab\nlog file {dir}/frr.log\n!\n\
         router bgp 64513\n bgp router-id {b4}\n no bgp ebgp-requires-policy\n\
          neighbor {o4} remote-as 4200000099\n neighbor {o4} password s3cret\n\
          neighbor {o4} passive\n neighbor {o4} timers 3 9\n\
          neighbor {o6} remote-as 4200000099\n neighbor {o6} passive\n neighbor {o6} timers 3 9\n\
          address-family ipv4 unicast\n  no neighbor {o6} activate\n exit-address-family\n\
          address-family ipv6 unicast\n  neighbor {o6} activate\n exit-address-family\n!\n",
        dir = lab.frr_dir(),
        b4 = THEIR_V4,
        o4 = OUR_V4,
        o6 = OUR_V6,
    );
    lab.frr_conf(&conf);
    for daemon in ["zebra", "bgpd"] {
        lab.start_frr_daemon(daemon, &[]);
        // zebra's socket must exist before bgpd connects; bgpd needs a moment to listen.
        std::thread::sleep(Duration::from_millis(700));
    }
    let lab = std::sync::Arc::new(lab);
    let l = lab.clone();
    in_netns(&lab.us, move || async move {
        let mut m = PeerManager::new(Some(OUR_V4.parse().expect("v4")));
        let mut p4 = peer("frr4", 4_200_000_099, 64513, THEIR_V4);
        p4.password = Some(PeerPassword::Literal("s3cret".into()));
        let p6 = peer("frr6", 4_200_000_099, 64513, THEIR_V6);
        let anns = vec![
            announcement("10.200.210.10/32", &["frr4"], None),
            announcement("fd00:200:0:210::10/128", &["frr6"], None),
        ];
        m.apply(&[p4, p6], &Passwords::new(), &anns).await;
        wait_established(&m, "frr4", Duration::from_secs(30)).await;
        wait_established(&m, "frr6", Duration::from_secs(30)).await;
        wait_until("IPv4 route in FRR", Duration::from_secs(10), || {
            l.vtysh("show bgp ipv4 unicast 10.200.210.10/32")
                .contains("4200000099")
        })
        .await;
        let out = l.vtysh("show bgp ipv4 unicast 10.200.210.10/32");
        assert!(out.contains("Community: 64512:100"), "{out}");
        assert!(out.contains("Large Community: 4200000099:1:2"), "{out}");
        wait_until("IPv6 route in FRR", Duration::from_secs(10), || {
            l.vtysh("show bgp ipv6 unicast fd00:200:0:210::10/128")
                .contains("4200000099")
        })
        .await;
        let start = Instant::now();
        m.shutdown(StopCause::Shutdown).await;
        wait_until(
            "FRR drops the routes after Cease",
            Duration::from_secs(1),
            || {
                !l.vtysh("show bgp ipv4 unicast")
                    .contains("10.200.210.10/32")
                    && !l
                        .vtysh("show bgp ipv6 unicast")
                        .contains("fd00:200:0:210::10/128")
            },
        )
        .await;
        eprintln!(
            "FRR dropped the routes {:?} after shutdown started",
            start.elapsed()
        );
    });
    drop(lab);
}
