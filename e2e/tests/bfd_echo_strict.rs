//! BFD echo mode and BFD strict mode end to end, against FRR (zebra + bgpd + bfdd) in the lab.
//!
//! - Echo: the BGP example's peer names a BFDProfile with `echoMode`; the speakers send echo
//!   packets to themselves through the router, whose forwarding returns them, and the router
//!   (echo mode on too) sends its own through the nodes (which forward IPv4 here, as
//!   Kubernetes nodes do). When the router stops forwarding the nodes' echo packets, control
//!   packets still flow but echo packets die: the speakers' sessions go Down with diagnostic 2 (Echo Function
//!   Failed) within the echo detection time, well before the control detection time.
//! - Strict mode: the profile's `strictMode` holds each BGP session before Established
//!   until its BFD session is Up. FRR 8.4 (Debian 12) does not implement
//!   draft-ietf-idr-bgp-bfd-strict-mode (FRR 10.4 added `neighbor .. bfd strict`), so the
//!   router does not hold anything itself (it logs "unrecognized capability code: 74 -
//!   ignored"): while the router drops BFD packets, the connection the router accepted waits in
//!   OpenConfirm for a KEEPALIVE the speaker withholds (FRR's `show bgp neighbors` shows the
//!   configured neighbor, not the accepted connection, so it reads Active), and the session
//!   reaches Established only once BFD packets pass again and BFD comes Up.
//!
//! Needs root (CI runs it as root), FRR and nftables (scripts/install-test-deps.sh).

mod common;

use common::bgp::*;
use common::*;
use ferrolb_e2e::cluster::{Cluster, ClusterOptions, RouterKind};
use ferrolb_e2e::lab::daemons::BfdTimers;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const FRR_TOOLS: &[&str] = &[
    "vtysh",
    "/usr/lib/frr/bgpd",
    "/usr/lib/frr/zebra",
    "/usr/lib/frr/bfdd",
    "nft",
];

/// Control packets every 300 ms × 3 (detection 900 ms), echo every 50 ms (detection 150 ms).
const ECHO_PROFILE: &str = "
apiVersion: ferrolb.io/v1beta1
kind: BFDProfile
metadata:
  name: echo
  namespace: ferrolb-system
spec:
  receiveInterval: 300
  transmitInterval: 300
  detectMultiplier: 3
  echoMode: true
  echoInterval: 50
";

const STRICT_PROFILE: &str = "
apiVersion: ferrolb.io/v1beta1
kind: BFDProfile
metadata:
  name: strict
  namespace: ferrolb-system
spec:
  receiveInterval: 50
  transmitInterval: 50
  detectMultiplier: 3
  strictMode: true
";

/// The control detection time of [`ECHO_PROFILE`]: a failure noticed sooner was noticed by
/// echo.
const CONTROL_DETECTION: Duration = Duration::from_millis(900);

/// The BGP example with its peer naming `profile`.
fn apply_example_with(c: &Cluster, profile_yaml: &str, profile: &str) {
    c.apply_yaml(profile_yaml).expect("apply BFDProfile");
    let peer = BGP_EXAMPLE.replace(
        "  holdTime: 9s\n",
        &format!("  holdTime: 9s\n  bfdProfile: {profile}\n"),
    );
    assert!(peer.contains("bfdProfile:"), "the example changed");
    c.apply_yaml(&peer).expect("apply the BGP example with BFD");
}

fn speaker_bfd(c: &Cluster, i: usize) -> serde_json::Value {
    speaker_peer(c, i).map_or(serde_json::Value::Null, |p| p["bfd"].clone())
}

/// FRR's `show bfd peer ADDR json` field `key`.
fn frr_bfd_field(c: &Cluster, peer: IpAddr, key: &str) -> Option<String> {
    let out = c
        .frr
        .as_ref()?
        .vtysh(&format!("show bfd peer {peer} json"))
        .ok()?;
    let v: serde_json::Value = serde_json::from_str(&out).ok()?;
    match &v[key] {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// `vtysh -c cmd` against bgpd alone (vtysh waits for every daemon it finds; bgpd is all
/// that is asked here).
fn bgpd_vtysh(c: &Cluster, cmd: &str) -> Option<String> {
    let dir = c.frr.as_ref()?.dir().to_string_lossy().into_owned();
    let out = c
        .lab
        .router()
        .ns()
        .exec(["vtysh", "--vty_socket", &dir, "-d", "bgpd", "-c", cmd])
        .ok()?;
    Some(out.stdout)
}

/// FRR's BGP state of the session with `peer`.
fn frr_bgp_state(c: &Cluster, peer: IpAddr) -> Option<String> {
    let out = bgpd_vtysh(c, &format!("show bgp neighbors {peer} json"))?;
    let v: serde_json::Value = serde_json::from_str(&out).ok()?;
    v[peer.to_string()]["bgpState"].as_str().map(str::to_string)
}

fn vtysh(c: &Cluster, cmd: &str) -> String {
    c.frr
        .as_ref()
        .and_then(|f| f.vtysh(cmd).ok())
        .unwrap_or_default()
}

fn echo_mode_up_and_failure_detected_through_echo(router: RouterKind) {
    let c = Cluster::start(ClusterOptions {
        router_bfd: Some(BfdTimers::new(300, 3).echo(50)),
        ..bgp_options(router)
    })
    .expect("cluster");
    // Kubernetes nodes forward IPv4; the lab's do not by default. It lets the router's echo
    // packets (addressed to the router itself) come back through the nodes.
    for i in ALL {
        c.lab
            .node(i)
            .ns()
            .sysctl("net.ipv4.conf.all.forwarding", "1")
            .expect("node forwarding");
    }
    apply_example_with(&c, ECHO_PROFILE, "echo");
    wait_established(&c, &ALL, Duration::from_secs(30));
    for i in ALL {
        eventually(
            &format!("node{i}: BFD Up with echo active"),
            Duration::from_secs(20),
            || {
                let b = speaker_bfd(&c, i);
                (b["state"] == "Up" && b["echoActive"] == true && c.router_bfd_up(node_addr(&c, i)))
                    .then_some(())
            },
        );
    }
    println!("node1 BFD status: {}", speaker_bfd(&c, 1));
    let metrics = c
        .get_text(c.speaker_http(1), "/metrics")
        .expect("GET /metrics");
    println!(
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("bfd") && !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!("FRR show bfd peers:\n{}", vtysh(&c, "show bfd peers"));
    println!(
        "FRR show bfd peers counters:\n{}",
        vtysh(&c, "show bfd peers counters")
    );
    let ip = service(&c, "web", false);
    wait_hops("router RIB", Duration::from_secs(10), &ALL, || {
        router_next_hops(&c, ip)
    });

    // The router stops forwarding the nodes' echo packets (nftables in its namespace): its
    // bfdd still answers and its own echo still loops through the nodes; ours die there.
    let nft = |args: &str| {
        let argv: Vec<&str> = std::iter::once("nft").chain(args.split(' ')).collect();
        c.lab.router().ns().exec_ok(argv).expect("nft");
    };
    // Each node's session's Down events on the router: the session comes back Up within a
    // round trip of going Down (a new state is sent at once), too briefly to be seen in a
    // sampled status, so the router's own count of them tells.
    let down_events = || -> Vec<Option<u64>> {
        let peers: serde_json::Value =
            serde_json::from_str(&vtysh(&c, "show bfd peers counters json")).unwrap_or_default();
        ALL.iter()
            .map(|&i| {
                let addr = node_addr(&c, i).to_string();
                peers.as_array().and_then(|a| {
                    a.iter()
                        .find(|p| p["peer"] == addr.as_str())
                        .and_then(|p| p["session-down"].as_u64())
                })
            })
            .collect()
    };
    let before = down_events();
    assert!(
        before.iter().all(Option::is_some),
        "the router counts every node's Down events: {before:?}\n{}",
        vtysh(&c, "show bfd peers counters json")
    );
    nft("add table inet flb_echo");
    nft("add chain inet flb_echo forwarded { type filter hook forward priority 0 ; }");
    nft("add rule inet flb_echo forwarded udp dport 3785 drop");
    let start = Instant::now();
    let mut down_after: Vec<Option<Duration>> = vec![None; ALL.len()];
    while down_after.iter().any(Option::is_none) && start.elapsed() < Duration::from_secs(5) {
        for ((slot, now), then) in down_after.iter_mut().zip(down_events()).zip(&before) {
            if slot.is_none() && now > *then {
                *slot = Some(start.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("router drops the nodes' echo -> BFD sessions Down after {down_after:?}");
    let took = down_after
        .iter()
        .map(|d| d.expect("every node's session went Down within 5 s"))
        .max()
        .unwrap_or_default();
    for i in ALL {
        let diag = frr_bfd_field(&c, node_addr(&c, i), "remote-diagnostic");
        assert_eq!(
            diag.as_deref(),
            Some("echo function failed"),
            "node{i}: the speaker went Down because of echo:\n{}",
            vtysh(&c, "show bfd peers")
        );
    }
    println!(
        "FRR show bfd peers after the failure:\n{}",
        vtysh(&c, "show bfd peers")
    );
    assert!(
        took < CONTROL_DETECTION,
        "{took:?}: detected no faster than control packets would"
    );
    wait_hops("router withdraws", Duration::from_secs(5), &[], || {
        router_next_hops(&c, ip)
    });

    nft("delete table inet flb_echo");
    wait_established(&c, &ALL, Duration::from_secs(30));
    for i in ALL {
        eventually(
            &format!("node{i}: echo active again"),
            Duration::from_secs(20),
            || (speaker_bfd(&c, i)["echoActive"] == true).then_some(()),
        );
    }
    wait_hops("router RIB back", Duration::from_secs(10), &ALL, || {
        router_next_hops(&c, ip)
    });
}

fn strict_mode_holds_bgp_until_bfd_is_up(router: RouterKind) {
    let c = Cluster::start(ClusterOptions {
        router_bfd: Some(BfdTimers::new(50, 3)),
        ..bgp_options(router)
    })
    .expect("cluster");
    // The router drops BFD control packets: our BFD sessions cannot come Up (nftables in the
    // router's namespace only).
    let nft = |args: &str| {
        let argv: Vec<&str> = std::iter::once("nft").chain(args.split(' ')).collect();
        c.lab.router().ns().exec_ok(argv).expect("nft");
    };
    nft("add table inet flb_strict");
    nft("add chain inet flb_strict in { type filter hook input priority 0 ; }");
    nft("add rule inet flb_strict in udp dport 3784 drop");
    apply_example_with(&c, STRICT_PROFILE, "strict");
    for i in ALL {
        eventually(
            &format!("node{i} holding in OpenSent after the router's OPEN"),
            Duration::from_secs(20),
            || {
                let p = speaker_peer(&c, i)?;
                (p["state"] == "OpenSent"
                    && p["lastError"]
                        .as_str()
                        .is_some_and(|e| e.contains("strict mode")))
                .then_some(())
            },
        );
    }
    let held = speaker_peer(&c, 1).expect("status");
    println!("node1 held: {held}");
    assert!(
        held["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("strict mode")),
        "{held}"
    );
    assert_eq!(held["bfd"]["strictMode"], true, "{held}");
    // Held for a while (less than the 9 s hold time, after which the router would give up
    // and start over): never Established on either end.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        for i in ALL {
            let router = frr_bgp_state(&c, node_addr(&c, i));
            assert!(
                router.as_deref() != Some("Established") && !speaker_established(&c, i),
                "node{i} established while BFD is down (router: {router:?})"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "router while BFD is down:\n{}\n{}",
        bgpd_vtysh(&c, "show bgp summary").unwrap_or_default(),
        bgpd_vtysh(&c, &format!("show bgp neighbors {}", node_addr(&c, 1)))
            .unwrap_or_default()
            .lines()
            .take(12)
            .collect::<Vec<_>>()
            .join("\n")
    );

    let start = Instant::now();
    nft("delete table inet flb_strict");
    wait_established(&c, &ALL, Duration::from_secs(30));
    println!(
        "BFD packets let through -> BFD Up and all 3 sessions Established after {:?}",
        start.elapsed()
    );
    // FRR 8.4's bgpd re-registers its BFD session with the connection's source address once
    // the BGP session is up; bfdd replaces the session, so each speaker sees BFD go Down once
    // right after Established, tears BGP down (Cease / BFD Down) and comes back within a
    // second or two. It settles for good.
    std::thread::sleep(Duration::from_secs(3));
    wait_established(&c, &ALL, Duration::from_secs(30));
    for i in ALL {
        eventually(&format!("node{i} BFD Up"), Duration::from_secs(10), || {
            c.router_bfd_up(node_addr(&c, i)).then_some(())
        });
    }
    println!("router after BFD Up:\n{}", vtysh(&c, "show bgp summary"));
    let router_log = c.frr.as_ref().map(|f| f.bgpd().log()).unwrap_or_default();
    let cap74: Vec<&str> = router_log
        .lines()
        .filter(|l| l.contains("capability code: 74"))
        .collect();
    println!("router bgpd log:\n{}", cap74.join("\n"));
    assert!(!cap74.is_empty(), "the speakers' OPENs carry capability 74");
    let log = c.speaker(1).expect("speaker").log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| {
            [
                "strict mode",
                "BGP session",
                "NOTIFICATION",
                "BFD session state",
            ]
            .iter()
            .any(|w| l.contains(w))
        })
        .collect();
    println!("speaker 1 log:\n{}", lines.join("\n"));
    let held_at = log.find("holding the session in OpenSent");
    let up_at = log.find("BGP session established");
    assert!(
        matches!((held_at, up_at), (Some(h), Some(u)) if h < u),
        "the speaker logs the hold before Established"
    );
}

#[test]
fn echo_mode_up_and_failure_detected_through_echo_frr() {
    with_router(
        "echo_mode_up_and_failure_detected_through_echo_frr",
        RouterKind::Frr,
        FRR_TOOLS,
        echo_mode_up_and_failure_detected_through_echo,
    );
}

#[test]
fn strict_mode_holds_bgp_until_bfd_is_up_frr() {
    with_router(
        "strict_mode_holds_bgp_until_bfd_is_up_frr",
        RouterKind::Frr,
        FRR_TOOLS,
        strict_mode_holds_bgp_until_bfd_is_up,
    );
}
