//! BFD end to end: the speakers' native BFD (a BGPPeer naming a BFDProfile) against BIRD's
//! and FRR's (bfdd), in the lab. A frozen speaker or a cut link makes the router withdraw the
//! node's routes within the detection time instead of the BGP hold time (9 s here), and a
//! frozen router makes the speakers tear their sessions down with Cease / BFD Down. Needs
//! root (CI runs it as root) and the daemons (scripts/install-test-deps.sh).

mod common;

use common::bgp::*;
use common::*;
use ferrolb_e2e::cluster::{Cluster, ClusterOptions, RouterKind};
use ferrolb_e2e::lab::daemons::BfdTimers;
use std::time::{Duration, Instant};

/// BFDProfile `fast`: 50 ms × 3 (detection 150 ms), named by the example's BGPPeer.
const FAST_PROFILE: &str = "
apiVersion: ferrolb.io/v1beta1
kind: BFDProfile
metadata:
  name: fast
  namespace: ferrolb-system
spec:
  receiveInterval: 50
  transmitInterval: 50
  detectMultiplier: 3
";

/// Withdrawal must beat this by far: the hold time is 9 s, detection 150 ms; the rest is
/// the router's reaction and our polling (every 20 ms).
const BFD_BOUND: Duration = Duration::from_secs(1);

/// The speakers' side is read from their status API, refreshed once a second, and a session
/// leaves Established after its Cease has lingered (at most 0.5 s) for the frozen peer; still
/// far below the 9 s hold time.
const SPEAKER_SIDE_BOUND: Duration = Duration::from_secs(3);

/// The BGP example with its BGPPeer naming the `fast` profile, against `router` running BFD
/// with the same timers.
fn bfd_cluster(router: RouterKind) -> Cluster {
    let c = Cluster::start(ClusterOptions {
        router_bfd: Some(BfdTimers::new(50, 3)),
        ..bgp_options(router)
    })
    .expect("cluster");
    c.apply_yaml(FAST_PROFILE).expect("apply BFDProfile");
    let peer = BGP_EXAMPLE.replace("  holdTime: 9s\n", "  holdTime: 9s\n  bfdProfile: fast\n");
    assert!(peer.contains("bfdProfile: fast"), "the example changed");
    c.apply_yaml(&peer).expect("apply the BGP example with BFD");
    c
}

/// BFD state of the example peer in speaker `i`'s status API.
fn speaker_bfd(c: &Cluster, i: usize) -> Option<String> {
    Some(speaker_peer(c, i)?["bfd"]["state"].as_str()?.to_string())
}

fn wait_bfd_up(c: &Cluster, nodes: &[usize]) {
    for &i in nodes {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline
            && !(speaker_bfd(c, i).as_deref() == Some("Up") && c.router_bfd_up(node_addr(c, i)))
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        if Instant::now() >= deadline {
            let router = match (&c.bird, &c.frr) {
                (Some(b), _) => b.birdc("show bfd sessions").unwrap_or_default(),
                (None, Some(f)) => f.vtysh("show bfd peers").unwrap_or_default(),
                _ => String::new(),
            };
            panic!(
                "BFD node{i} not Up: speaker {:?}; router:\n{router}",
                speaker_peer(c, i)
            );
        }
        eventually(
            &format!("BFD router <-> node{i} Up on both ends"),
            Duration::from_secs(20),
            || {
                (speaker_bfd(c, i).as_deref() == Some("Up") && c.router_bfd_up(node_addr(c, i)))
                    .then_some(())
            },
        );
    }
}

fn bfd_tools(router: RouterKind) -> &'static [&'static str] {
    match router {
        RouterKind::Bird => &["bird", "birdc"],
        RouterKind::Frr => &[
            "vtysh",
            "/usr/lib/frr/bgpd",
            "/usr/lib/frr/zebra",
            "/usr/lib/frr/bfdd",
        ],
        RouterKind::Gobgp => panic!("gobgpd has no BFD"),
    }
}

/// Sessions and BFD come up; SIGSTOP of a speaker and a cut link each make the router drop
/// that node's routes within [`BFD_BOUND`]; both recover.
fn speaker_failure_detected_by_bfd(router: RouterKind) {
    let c = bfd_cluster(router);
    wait_established(&c, &ALL, Duration::from_secs(30));
    wait_bfd_up(&c, &ALL);
    let st = speaker_peer(&c, 1).expect("status");
    println!("{router:?}: node1 peer status {st}");
    assert_eq!(st["bfd"]["detectionTimeMs"].as_u64(), Some(150), "{st}");
    let ip = service(&c, "web", false);
    wait_hops("router RIB", Duration::from_secs(10), &ALL, || {
        router_next_hops(&c, ip)
    });

    // A frozen speaker: its BFD packets stop.
    let start = Instant::now();
    c.speaker(3).expect("speaker").pause().expect("SIGSTOP");
    let took = wait_hops(
        "router drops node3",
        Duration::from_secs(5),
        &[1, 2],
        || router_next_hops(&c, ip),
    );
    println!("{router:?}: SIGSTOP node3 -> routes withdrawn after {took:?} (BFD 50 ms x 3)");
    assert!(took < BFD_BOUND, "{took:?}");
    c.speaker(3).expect("speaker").resume().expect("SIGCONT");
    wait_established(&c, &[3], Duration::from_secs(30));
    wait_bfd_up(&c, &[3]);
    wait_hops("node3 back", Duration::from_secs(10), &ALL, || {
        router_next_hops(&c, ip)
    });
    println!(
        "{router:?}: SIGCONT node3 -> BFD and BGP back in {:?}",
        start.elapsed() - took
    );

    // A cut link: nothing reaches the router from node2.
    let n2 = c.lab.node(2);
    n2.ns()
        .ip(["link", "set", n2.iface(), "down"])
        .expect("link down");
    let took = wait_hops(
        "router drops node2",
        Duration::from_secs(5),
        &[1, 3],
        || router_next_hops(&c, ip),
    );
    println!("{router:?}: node2 link down -> routes withdrawn after {took:?}");
    assert!(took < BFD_BOUND, "{took:?}");
    n2.ns()
        .ip(["link", "set", n2.iface(), "up"])
        .expect("link up");
    wait_established(&c, &[2], Duration::from_secs(30));
    wait_hops("node2 back", Duration::from_secs(10), &ALL, || {
        router_next_hops(&c, ip)
    });

    // The speakers export the BFD state.
    let metrics = c
        .get_text(c.speaker_http(1), "/metrics")
        .expect("GET /metrics");
    assert!(
        metrics.contains(r#"ferrolb_speaker_bfd_session_up{peer="ferrolb-system/router"} 1"#),
        "{metrics}"
    );
}

/// A speaker that restarts and freezes soon after: before it could announce anything, as
/// its routes reach the router, or in between. Whatever it managed to send, the router must
/// not route through it for longer than [`BFD_BOUND`] after the freeze: no route may go out
/// before the router's BFD session is Up, since one sent earlier is protected by nothing but
/// the 9 s hold time.
fn speaker_frozen_right_after_restart_is_detected_by_bfd(router: RouterKind) {
    let mut c = bfd_cluster(router);
    wait_established(&c, &ALL, Duration::from_secs(30));
    wait_bfd_up(&c, &ALL);
    let ip = service(&c, "web", false);
    wait_hops("router RIB", Duration::from_secs(10), &ALL, || {
        router_next_hops(&c, ip)
    });
    // None: freeze as soon as the router's kernel has a route via node3.
    let freezes = [
        Some(Duration::from_millis(100)),
        None,
        Some(Duration::from_millis(300)),
        Some(Duration::from_millis(600)),
        None,
    ];
    for (round, after) in freezes.into_iter().enumerate() {
        c.speaker(3).expect("speaker").kill().expect("SIGKILL");
        c.drop_speaker(3);
        wait_hops(
            "router drops the killed node3",
            Duration::from_secs(5),
            &[1, 2],
            || router_next_hops(&c, ip),
        );
        let started = Instant::now();
        c.start_speaker(3).expect("restart node3's speaker");
        match after {
            Some(d) => std::thread::sleep(d.saturating_sub(started.elapsed())),
            // The router's kernel table is the quickest view of what BIRD accepted.
            None => {
                while !kernel_next_hops(&c, ip).contains(&3) {
                    assert!(
                        started.elapsed() < Duration::from_secs(30),
                        "node3 never came back after its restart"
                    );
                }
            }
        }
        c.speaker(3).expect("speaker").pause().expect("SIGSTOP");
        let frozen = Instant::now();
        let frozen_after = frozen - started;
        // Watch past the BFD bound: node3 may be there at first, never after it.
        let mut last_seen = None;
        while frozen.elapsed() < BFD_BOUND + Duration::from_secs(2) {
            if router_next_hops(&c, ip).contains(&3) {
                last_seen = Some(frozen.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        println!(
            "{router:?} round {round}: node3 frozen {frozen_after:?} after its restart; last \
             routed through {last_seen:?} after the freeze (BFD 50 ms x 3, hold time 9 s)"
        );
        c.speaker(3).expect("speaker").resume().expect("SIGCONT");
        assert!(
            last_seen.is_none_or(|t| t < BFD_BOUND),
            "round {round}: node3 frozen {frozen_after:?} after its restart is still a next hop \
             {last_seen:?} after the freeze"
        );
        wait_established(&c, &[3], Duration::from_secs(30));
        wait_bfd_up(&c, &[3]);
        wait_hops("node3 back", Duration::from_secs(10), &ALL, || {
            router_next_hops(&c, ip)
        });
    }
}

/// A frozen router: every speaker's BFD detects it and tears its BGP session down with Cease
/// / BFD Down well before the hold time; thawed, everything comes back.
fn router_failure_detected_by_speakers(router: RouterKind) {
    let c = bfd_cluster(router);
    wait_established(&c, &ALL, Duration::from_secs(30));
    wait_bfd_up(&c, &ALL);
    let procs: Vec<&ferrolb_e2e::lab::LabProcess> = match (&c.bird, &c.frr) {
        (Some(b), _) => vec![b.process()],
        (None, Some(f)) => [Some(f.bgpd()), f.bfdd(), Some(f.zebra())]
            .into_iter()
            .flatten()
            .collect(),
        _ => panic!("no BFD-capable router daemon"),
    };
    let start = Instant::now();
    for p in &procs {
        p.pause().expect("SIGSTOP router");
    }
    for i in ALL {
        eventually(
            &format!("node{i} tears its session down on BFD Down"),
            Duration::from_secs(5),
            || (!speaker_established(&c, i)).then_some(()),
        );
    }
    let took = start.elapsed();
    for p in &procs {
        p.resume().expect("SIGCONT router");
    }
    println!("{router:?} frozen: all 3 speakers left Established after {took:?}");
    assert!(took < SPEAKER_SIDE_BOUND, "{took:?}");
    let st = speaker_peer(&c, 1).expect("status");
    assert!(
        st["lastNotification"]
            .as_str()
            .is_some_and(|n| n.contains("BFD Down")),
        "Cease / BFD Down sent: {st}"
    );
    wait_established(&c, &ALL, Duration::from_secs(30));
    wait_bfd_up(&c, &ALL);
}

#[test]
fn speaker_failure_detected_by_bfd_bird() {
    let r = RouterKind::Bird;
    with_router(
        "speaker_failure_detected_by_bfd_bird",
        r,
        bfd_tools(r),
        speaker_failure_detected_by_bfd,
    );
}

#[test]
fn speaker_failure_detected_by_bfd_frr() {
    let r = RouterKind::Frr;
    with_router(
        "speaker_failure_detected_by_bfd_frr",
        r,
        bfd_tools(r),
        speaker_failure_detected_by_bfd,
    );
}

#[test]
fn router_failure_detected_by_speakers_bird() {
    let r = RouterKind::Bird;
    with_router(
        "router_failure_detected_by_speakers_bird",
        r,
        bfd_tools(r),
        router_failure_detected_by_speakers,
    );
}

#[test]
fn router_failure_detected_by_speakers_frr() {
    let r = RouterKind::Frr;
    with_router(
        "router_failure_detected_by_speakers_frr",
        r,
        bfd_tools(r),
        router_failure_detected_by_speakers,
    );
}

#[test]
fn speaker_frozen_right_after_restart_is_detected_by_bfd_bird() {
    let r = RouterKind::Bird;
    with_router(
        "speaker_frozen_right_after_restart_is_detected_by_bfd_bird",
        r,
        bfd_tools(r),
        speaker_frozen_right_after_restart_is_detected_by_bfd,
    );
}
