//! Interop of the BFD Echo function (`echoMode`) with FRR's bfdd in echo mode, in the
//! two-namespace router lab (see `bfd_interop.rs` for how our manager runs inside the lab).
//! A file of its own so that it does not run beside `bfd_interop.rs`'s load test: cargo runs
//! test binaries one after another.
//!
//! Needs root and FRR (`/usr/lib/frr/zebra`, `/usr/lib/frr/bfdd`, `vtysh`) and nftables
//! (`nft`). Without them: skipped with a message locally, a failure when `CI` is set.

mod common;

use common::router_lab::{OUR_V4, RouterLab, THEIR_V4};
use ferrolb_config::BfdProfile;
use ferrolb_lab::Netns;
use ferrolb_speaker::bfd::{BfdManager, BfdPeer, BfdState};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::watch;

fn can_run(test: &str) -> bool {
    ferrolb_lab::tools_or_skip(
        test,
        &["/usr/lib/frr/zebra", "/usr/lib/frr/bfdd", "vtysh", "nft"],
    )
}

/// Starts a `BfdManager` from a thread inside `ns`; the BFD thread it spawns inherits the
/// namespace.
fn start_manager_in(ns: &Netns) -> BfdManager {
    ns.run(|| BfdManager::start().expect("BfdManager::start in the lab namespace"))
        .expect("entering the namespace")
}

fn profile(ms: u64, mult: u8) -> BfdProfile {
    BfdProfile {
        namespace: "ferrolb-system".into(),
        name: "echo".into(),
        receive_interval: Duration::from_millis(ms),
        transmit_interval: Duration::from_millis(ms),
        detect_multiplier: mult,
        echo_interval: Duration::from_millis(50),
        echo_mode: true,
        passive_mode: false,
        minimum_ttl: 254,
        strict_mode: false,
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

/// Sets IPv4 forwarding of namespace `ns` (every interface).
fn set_forwarding(ns: &Netns, on: bool) {
    let v = if on { "1" } else { "0" };
    ns.exec_ok([
        "sysctl",
        "-qw",
        &format!("net.ipv4.conf.all.forwarding={v}"),
    ])
    .expect("sysctl forwarding");
}

/// Echo mode against FRR's bfdd with echo mode on: both ends loop each other's echo packets
/// back through IP forwarding, our echo function runs (status `echoActive`, packets come
/// back), and FRR shows the echo intervals. When the router stops forwarding our echo
/// packets (nftables in its namespace), they stop coming back while control packets still
/// flow: the session goes Down with diagnostic 2 (Echo Function Failed) within the echo
/// detection time (3 × 50 ms), long before the control detection time (3 × 300 ms) — then
/// comes back once they pass again.
#[test]
fn frr_echo_mode_runs_and_detects_a_forwarding_failure() {
    if !can_run("frr_echo_mode_runs_and_detects_a_forwarding_failure") {
        return;
    }
    let mut lab = RouterLab::new("echo");
    set_forwarding(&lab.them, true);
    set_forwarding(&lab.us, true);
    let conf = format!(
        "log file {}\n!\nbfd\n peer {OUR_V4} local-address {THEIR_V4} interface rtr0\n  \
         receive-interval 300\n  transmit-interval 300\n  detect-multiplier 3\n  echo-mode\n  \
         echo transmit-interval 50\n  echo receive-interval 50\n !\n!\n",
        lab.path("frr/bfdd.log")
    );
    lab.frr_conf(&conf);
    // zebra tells bfdd about interfaces: FRR's forwarding-plane echo needs the interface to
    // learn our MAC address.
    lab.start_frr_daemon("zebra", &[]);
    std::thread::sleep(Duration::from_millis(500));
    let bfdctl = lab.path("frr/bfdd.sock");
    lab.start_frr_daemon("bfdd", &["--bfdctl", &bfdctl]);
    let m = start_manager_in(&lab.us);
    let mut peers = BTreeMap::new();
    peers.insert(
        "ns/frr4".to_string(),
        BfdPeer {
            peer: THEIR_V4.parse().expect("address"),
            local: Some(OUR_V4.parse().expect("address")),
            multihop: false,
            profile: profile(300, 3),
        },
    );
    assert_eq!(m.apply(peers), vec![]);
    let rx = m.subscribe("ns/frr4").expect("session");
    let took = wait_until("session with FRR Up", Duration::from_secs(15), || {
        state(&rx) == BfdState::Up
    });
    eprintln!("FRR session Up after {took:?}");
    let active = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        m.status()["ns/frr4"].echo_active
    });
    assert!(
        active,
        "our echo function is not active: {:?}\nFRR:\n{}\nus: {}",
        m.status(),
        lab.vtysh("show bfd peers"),
        lab.us
            .exec(["ip", "neigh"])
            .map(|o| o.stdout)
            .unwrap_or_default()
    );
    let counters = m.counters()["ns/frr4"].clone();
    let before = counters.echo_packets_received.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(1000));
    let back = counters.echo_packets_received.load(Ordering::Relaxed) - before;
    let sent = counters.echo_packets_sent.load(Ordering::Relaxed);
    eprintln!("echo packets: {sent} sent, {back} came back in the last second");
    // 50 ms with up to 25 % jitter: 20-27 a second.
    assert!(back >= 15, "only {back} echo packets came back in a second");
    // FRR loops ours back and runs its own echo through us (we advertise 50 ms since this
    // namespace forwards).
    let frr_echo_out = || {
        lab.vtysh("show bfd peers counters")
            .lines()
            .find(|l| l.contains("Echo packet output:"))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let frr_echo = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        frr_echo_out() > 10
    });
    assert!(
        frr_echo,
        "FRR sends no echo packets:\n{}\n{}",
        lab.vtysh("show bfd peers"),
        lab.vtysh("show bfd peers counters")
    );
    eprintln!("FRR sends echo packets through us");
    let out = lab.vtysh("show bfd peers");
    eprintln!("{out}");
    assert!(out.contains("Status: up"), "{out}");
    assert!(out.contains("Echo receive interval: 50ms"), "{out}");
    eprintln!("{}", lab.vtysh("show bfd peers counters"));
    assert_eq!(m.status()["ns/frr4"].state, "Up");

    // The router stops forwarding our echo packets (and nothing else): its control plane
    // still answers, FRR's own echo still loops through us, ours die in the router.
    let nft = |args: &str| {
        let argv: Vec<&str> = std::iter::once("nft").chain(args.split(' ')).collect();
        lab.them.exec_ok(argv).expect("nft");
    };
    nft("add table inet flb_echo");
    nft("add chain inet flb_echo forwarded { type filter hook forward priority 0 ; }");
    nft(&format!(
        "add rule inet flb_echo forwarded ip saddr {OUR_V4} udp dport 3785 drop"
    ));
    let start = Instant::now();
    let took = wait_until("our session Down by echo", Duration::from_secs(2), || {
        state(&rx) == BfdState::Down
    });
    eprintln!(
        "session Down {took:?} after the router stopped forwarding our echo packets (echo \
         detection 150 ms, control 900 ms)"
    );
    assert!(
        took < Duration::from_millis(600),
        "detected in {took:?}: not by echo"
    );
    wait_until("FRR sees our diagnostic 2", Duration::from_secs(2), || {
        lab.vtysh("show bfd peers")
            .contains("Remote diagnostics: echo function failed")
    });
    eprintln!("{}", lab.vtysh("show bfd peers"));
    assert!(start.elapsed() < Duration::from_secs(5));

    // Forwarding back: the session comes Up again with echo.
    nft("delete table inet flb_echo");
    wait_until("Up again with echo", Duration::from_secs(20), || {
        state(&rx) == BfdState::Up && m.status()["ns/frr4"].echo_active
    });
    eprintln!("Up again with echo:\n{}", lab.vtysh("show bfd peers"));
    m.shutdown();
    drop(lab);
}
