//! Interop of the BFD implementation (`ferrolb_speaker::bfd`) with BIRD 2 and FRR's bfdd, in
//! network namespaces.
//!
//! Each test builds a `common::router_lab::RouterLab` (two namespaces joined by a veth pair,
//! 10.200.42.0/24 and fd00:200:0:42::/64 — the namespaces are private, so parallel tests reuse
//! the prefix), runs the routing daemon in one and our `BfdManager` in the other: a thread
//! enters our namespace and starts the manager there, and the BFD thread it spawns inherits
//! that namespace, so every BFD socket lives in the lab. The test thread itself only talks to
//! the manager (channels) and to the daemons' control sockets (Unix sockets). The lab stops
//! the daemons by PID and deletes the namespaces on drop, also when an assertion fails.
//!
//! Needs root, BIRD 2 (`bird`, `birdc`) and FRR (`/usr/lib/frr/bfdd`, `vtysh`). Without them:
//! skipped with a message locally, a failure when `CI` is set.

mod common;

use common::router_lab::{OUR_V4, OUR_V6, RouterLab, THEIR_V4, THEIR_V6};
use ferrolb_config::BfdProfile;
use ferrolb_lab::Netns;
use ferrolb_speaker::bfd::{BfdManager, BfdPeer, BfdState};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Returns false (after printing why) when the test cannot run here.
fn can_run(test: &str, frr: bool) -> bool {
    if frr {
        ferrolb_lab::tools_or_skip(test, &["/usr/lib/frr/bfdd", "vtysh"])
    } else {
        ferrolb_lab::tools_or_skip(test, &["bird", "birdc"])
    }
}

/// BIRD's state of the session to `peer` (`Up`, `Down`, `Init`, `AdminDown`), if listed.
fn bird_state(lab: &RouterLab, peer: &str) -> Option<String> {
    lab.birdc(&["show", "bfd", "sessions"])
        .lines()
        .find(|l| l.split_whitespace().next() == Some(peer))
        .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
}

/// Starts a `BfdManager` from a thread inside `ns`; the BFD thread it spawns inherits the
/// namespace (see the module comment).
fn start_manager_in(ns: &Netns) -> BfdManager {
    ns.run(|| BfdManager::start().expect("BfdManager::start in the lab namespace"))
        .expect("entering the namespace")
}

fn profile(ms: u64, mult: u8) -> BfdProfile {
    BfdProfile {
        namespace: "ferrolb-system".into(),
        name: "fast".into(),
        receive_interval: Duration::from_millis(ms),
        transmit_interval: Duration::from_millis(ms),
        detect_multiplier: mult,
        echo_interval: Duration::from_millis(50),
        echo_mode: false,
        passive_mode: false,
        minimum_ttl: 254,
        strict_mode: false,
    }
}

fn peer(their: &str, our: &str, profile: BfdProfile) -> BfdPeer {
    BfdPeer {
        peer: their.parse().expect("address"),
        local: Some(our.parse().expect("address")),
        multihop: false,
        profile,
    }
}

/// Polls `f` every 5 ms until true; panics after `within`. Returns the time it took.
fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < within {
        if f() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("timed out after {within:?} waiting for {what}");
}

fn state(rx: &watch::Receiver<BfdState>) -> BfdState {
    *rx.borrow()
}

#[test]
fn bird_sessions_come_up_and_failures_are_detected_both_ways() {
    if !can_run(
        "bird_sessions_come_up_and_failures_are_detected_both_ways",
        false,
    ) {
        return;
    }
    let mut lab = RouterLab::new("bfd");
    let bird_conf = format!(
        "protocol bfd {{\n  interface \"*\" {{ min rx interval 50 ms; min tx interval 50 ms; multiplier 3; }};\n  \
         neighbor {OUR_V4} local {THEIR_V4};\n  neighbor {OUR_V6} local {THEIR_V6};\n}}\n"
    );
    let bird = lab.start_bird(&bird_conf);
    let m = start_manager_in(&lab.us);
    let mut peers = BTreeMap::new();
    peers.insert(
        "ns/bird4".to_string(),
        peer(THEIR_V4, OUR_V4, profile(50, 3)),
    );
    peers.insert(
        "ns/bird6".to_string(),
        peer(THEIR_V6, OUR_V6, profile(50, 3)),
    );
    assert_eq!(m.apply(peers.clone()), vec![]);
    let rx4 = m.subscribe("ns/bird4").expect("v4 session");
    let rx6 = m.subscribe("ns/bird6").expect("v6 session");
    let took = wait_until("both sessions Up", Duration::from_secs(15), || {
        state(&rx4) == BfdState::Up && state(&rx6) == BfdState::Up
    });
    eprintln!("IPv4 and IPv6 sessions Up after {took:?}");
    wait_until("BIRD sees both Up", Duration::from_secs(5), || {
        bird_state(&lab, OUR_V4).as_deref() == Some("Up")
            && bird_state(&lab, OUR_V6).as_deref() == Some("Up")
    });
    // After the Poll Sequences both sides run 50 ms: detection 3 × 50 ms.
    wait_until("detection time 150 ms", Duration::from_secs(5), || {
        m.status()
            .values()
            .all(|s| s.state == "Up" && s.detection_time_ms == 150)
    });
    eprintln!("{}", lab.birdc(&["show", "bfd", "sessions"]));
    let counters = m.counters();
    for (key, c) in &counters {
        let (sent, received) = (
            c.packets_sent.load(Ordering::Relaxed),
            c.packets_received.load(Ordering::Relaxed),
        );
        assert!(
            sent > 0 && received > 0,
            "{key}: sent {sent} received {received}"
        );
        // Down → Up directly (remote already in Init) or Down → Init → Up.
        let changes = c.state_changes.load(Ordering::Relaxed);
        assert!((1..=2).contains(&changes), "{key}: {changes} state changes");
    }
    // Stable for a second at 50 ms × 3 (no flaps: state changes do not grow).
    let changes = counters["ns/bird4"].state_changes.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        counters["ns/bird4"].state_changes.load(Ordering::Relaxed),
        changes
    );
    assert_eq!(state(&rx4), BfdState::Up);

    // Removing the IPv6 peer: AdminDown at once on our side, Down at BIRD.
    let mut only_v4 = peers.clone();
    only_v4.remove("ns/bird6");
    m.apply(only_v4.clone());
    assert_eq!(state(&rx6), BfdState::AdminDown);
    assert!(m.subscribe("ns/bird6").is_none());
    let start = Instant::now();
    let took = wait_until(
        "BIRD sees the IPv6 session Down",
        Duration::from_secs(2),
        || bird_state(&lab, OUR_V6).is_some_and(|s| s != "Up"),
    );
    // BIRD shows no diagnostic; timing tells AdminDown from a timeout: our last packet left
    // at most 50 ms before the removal, so BIRD's 150 ms detection could not fire before
    // 100 ms after it.
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "BIRD left Up only after {took:?}: our AdminDown did not arrive"
    );
    eprintln!(
        "BIRD left Up {took:?} after the IPv6 peer was removed: {:?}",
        bird_state(&lab, OUR_V6)
    );

    // BIRD dies: our IPv4 session goes Down within the detection time (150 ms).
    let start = Instant::now();
    lab.kill(bird);
    let took = wait_until(
        "our session Down after BIRD died",
        Duration::from_secs(2),
        || state(&rx4) == BfdState::Down,
    );
    eprintln!("our session went Down {took:?} after BIRD was killed (detection time 150 ms)");
    assert!(
        start.elapsed() < Duration::from_millis(400),
        "detection took {took:?}, expected about 150 ms"
    );

    // A new BIRD: the session comes back; then we freeze (dropped without AdminDown) and
    // BIRD must detect it within its detection time.
    lab.start_bird(&bird_conf);
    wait_until("session Up again", Duration::from_secs(15), || {
        state(&rx4) == BfdState::Up && bird_state(&lab, OUR_V4).as_deref() == Some("Up")
    });
    wait_until("fast timers again", Duration::from_secs(5), || {
        m.status()["ns/bird4"].detection_time_ms == 150
    });
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    drop(m);
    let took = wait_until("BIRD declares us Down", Duration::from_secs(2), || {
        bird_state(&lab, OUR_V4).is_some_and(|s| s != "Up")
    });
    eprintln!(
        "BIRD declared the frozen session {:?} {took:?} after our BFD stopped (detection time 150 ms)",
        bird_state(&lab, OUR_V4)
    );
    assert!(
        start.elapsed() < Duration::from_millis(600),
        "BIRD needed {took:?}"
    );
    drop(lab);
}

#[test]
fn frr_bfdd_sessions_come_up_and_see_admin_down_on_shutdown() {
    if !can_run(
        "frr_bfdd_sessions_come_up_and_see_admin_down_on_shutdown",
        true,
    ) {
        return;
    }
    let mut lab = RouterLab::new("bfd");
    let conf = format!(
        "log file {}\n!\nbfd\n peer {OUR_V4} local-address {THEIR_V4}\n  receive-interval 50\n  \
         transmit-interval 50\n  detect-multiplier 3\n !\n peer {OUR_V6} local-address {THEIR_V6}\n  \
         receive-interval 50\n  transmit-interval 50\n  detect-multiplier 3\n !\n!\n",
        lab.path("frr/bfdd.log")
    );
    lab.frr_conf(&conf);
    let bfdctl = lab.path("frr/bfdd.sock");
    lab.start_frr_daemon("bfdd", &["--bfdctl", &bfdctl]);
    let m = start_manager_in(&lab.us);
    let mut peers = BTreeMap::new();
    peers.insert(
        "ns/frr4".to_string(),
        peer(THEIR_V4, OUR_V4, profile(50, 3)),
    );
    peers.insert(
        "ns/frr6".to_string(),
        peer(THEIR_V6, OUR_V6, profile(50, 3)),
    );
    assert_eq!(m.apply(peers), vec![]);
    let rx4 = m.subscribe("ns/frr4").expect("session");
    let rx6 = m.subscribe("ns/frr6").expect("session");
    let took = wait_until("sessions with FRR Up", Duration::from_secs(15), || {
        state(&rx4) == BfdState::Up && state(&rx6) == BfdState::Up
    });
    eprintln!("FRR sessions Up after {took:?}");
    wait_until("FRR shows both peers up", Duration::from_secs(5), || {
        lab.vtysh("show bfd peers").matches("Status: up").count() == 2
    });
    wait_until("detection time 150 ms", Duration::from_secs(5), || {
        m.status().values().all(|s| s.detection_time_ms == 150)
    });
    let out = lab.vtysh("show bfd peers");
    eprintln!("{out}");
    assert!(out.contains("Detect-multiplier: 3"), "{out}");

    // Shutdown: AdminDown reaches FRR (remote diagnostic "administratively down").
    m.shutdown();
    let took = wait_until("FRR sees AdminDown", Duration::from_secs(2), || {
        let out = lab.vtysh("show bfd peers");
        out.matches("Status: down").count() == 2
            && out
                .matches("Remote diagnostics: administratively down")
                .count()
                == 2
    });
    eprintln!(
        "FRR saw AdminDown {took:?} after shutdown:\n{}",
        lab.vtysh("show bfd peers")
    );
    drop(lab);
}

#[test]
fn two_speakers_multihop_passive_and_timer_change_by_poll() {
    if !can_run(
        "two_speakers_multihop_passive_and_timer_change_by_poll",
        false,
    ) {
        return;
    }
    let lab = RouterLab::new("bfd");
    let ours = start_manager_in(&lab.us);
    let theirs = start_manager_in(&lab.them);
    let multihop = |their: &str, our: &str, profile: BfdProfile| BfdPeer {
        multihop: true,
        ..peer(their, our, profile)
    };
    let mut passive = profile(50, 3);
    passive.passive_mode = true;
    let mut their_peers = BTreeMap::new();
    their_peers.insert(
        "ns/a4".to_string(),
        multihop(OUR_V4, THEIR_V4, passive.clone()),
    );
    their_peers.insert("ns/a6".to_string(), multihop(OUR_V6, THEIR_V6, passive));
    assert_eq!(theirs.apply(their_peers), vec![]);
    // Passive and nobody talking to it: not a single packet.
    std::thread::sleep(Duration::from_millis(1500));
    let silent: u64 = theirs
        .counters()
        .values()
        .map(|c| c.packets_sent.load(Ordering::Relaxed))
        .sum();
    assert_eq!(
        silent, 0,
        "a passive session transmitted before hearing its peer"
    );

    let mut our_peers = BTreeMap::new();
    our_peers.insert(
        "ns/b4".to_string(),
        multihop(THEIR_V4, OUR_V4, profile(50, 3)),
    );
    our_peers.insert(
        "ns/b6".to_string(),
        multihop(THEIR_V6, OUR_V6, profile(50, 3)),
    );
    assert_eq!(ours.apply(our_peers.clone()), vec![]);
    let took = wait_until("multihop sessions Up", Duration::from_secs(15), || {
        ours.status()
            .values()
            .chain(theirs.status().values())
            .all(|s| s.state == "Up")
    });
    eprintln!("multihop sessions (one side passive) Up after {took:?}");
    wait_until(
        "150 ms detection on both sides",
        Duration::from_secs(5),
        || {
            ours.status()
                .values()
                .chain(theirs.status().values())
                .all(|s| s.detection_time_ms == 150)
        },
    );

    // Slower timers on our side: carried by a Poll Sequence; both sides end at 3 × 200 ms
    // without the sessions leaving Up.
    let changes: u64 = ours.counters()["ns/b4"]
        .state_changes
        .load(Ordering::Relaxed);
    let mut slower = our_peers.clone();
    for p in slower.values_mut() {
        p.profile = profile(200, 3);
    }
    assert_eq!(ours.apply(slower), vec![]);
    let took = wait_until(
        "600 ms detection on both sides",
        Duration::from_secs(5),
        || {
            ours.status()
                .values()
                .chain(theirs.status().values())
                .all(|s| s.state == "Up" && s.detection_time_ms == 600)
        },
    );
    eprintln!("timer change negotiated in {took:?}: {:?}", theirs.status());
    assert_eq!(
        ours.counters()["ns/b4"]
            .state_changes
            .load(Ordering::Relaxed),
        changes,
        "the session stayed Up"
    );

    // Removing our peers: the other side hears AdminDown and goes Down at once, which its
    // clients see as AdminDown (no failure, RFC 5882 §3.2).
    let rx = theirs.subscribe("ns/a4").expect("session");
    assert_eq!(*rx.borrow(), BfdState::Up);
    let start = Instant::now();
    ours.apply(BTreeMap::new());
    let took = wait_until("their side AdminDown", Duration::from_secs(2), || {
        *rx.borrow() == BfdState::AdminDown
    });
    eprintln!(
        "remote went Down {:?} after our peer was removed ({took:?} after apply returned; \
         detection time 600 ms)",
        start.elapsed()
    );
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "Down after {took:?}: AdminDown was not received, only the 600 ms detection expired"
    );
    ours.shutdown();
    theirs.shutdown();
    drop(lab);
}

#[test]
fn fifty_ms_times_three_holds_while_every_core_is_busy() {
    if !can_run("fifty_ms_times_three_holds_while_every_core_is_busy", false) {
        return;
    }
    let mut lab = RouterLab::new("bfd");
    lab.start_bird(&format!(
        "protocol bfd {{\n  interface \"*\" {{ min rx interval 50 ms; min tx interval 50 ms; multiplier 3; }};\n  \
         neighbor {OUR_V4} local {THEIR_V4};\n}}\n"
    ));
    let m = start_manager_in(&lab.us);
    let mut peers = BTreeMap::new();
    peers.insert(
        "ns/bird4".to_string(),
        peer(THEIR_V4, OUR_V4, profile(50, 3)),
    );
    assert_eq!(m.apply(peers), vec![]);
    wait_until("Up with 150 ms detection", Duration::from_secs(15), || {
        m.status()["ns/bird4"].state == "Up" && m.status()["ns/bird4"].detection_time_ms == 150
    });
    let before = m.counters()["ns/bird4"]
        .state_changes
        .load(Ordering::Relaxed);
    let received_before = m.counters()["ns/bird4"]
        .packets_received
        .load(Ordering::Relaxed);

    // Two busy threads per core plus a busy multi-thread tokio runtime (standing in for the
    // speaker's own runtime doing heavy kube/BGP work) for 5 s.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut burners = Vec::new();
    for _ in 0..2 * cores {
        let stop = stop.clone();
        burners.push(std::thread::spawn(move || {
            let mut x = 0u64;
            while !stop.load(Ordering::Relaxed) {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                std::hint::black_box(x);
            }
        }));
    }
    let busy_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .build()
        .expect("runtime");
    for _ in 0..4 * cores {
        let stop = stop.clone();
        busy_rt.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                // Blocks its worker without yielding, as badly behaved work would.
                let t = Instant::now();
                while t.elapsed() < Duration::from_millis(20) {
                    std::hint::black_box(t);
                }
                tokio::task::yield_now().await;
            }
        });
    }
    let mut bird_saw_down = false;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        bird_saw_down |= bird_state(&lab, OUR_V4).as_deref() != Some("Up");
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for b in burners {
        let _ = b.join();
    }
    busy_rt.shutdown_timeout(Duration::from_secs(1));

    let c = &m.counters()["ns/bird4"];
    let received = c.packets_received.load(Ordering::Relaxed) - received_before;
    eprintln!(
        "under load for 5 s on {cores} cores: {received} packets received (about 114 expected: \
         50 ms less 0-25 % jitter), state changes {}",
        c.state_changes.load(Ordering::Relaxed) - before
    );
    assert_eq!(
        c.state_changes.load(Ordering::Relaxed),
        before,
        "our session flapped under load"
    );
    assert!(!bird_saw_down, "BIRD saw the session leave Up under load");
    assert!(received >= 75, "only {received} packets in 5 s");
    m.shutdown();
    drop(lab);
}
