//! BGP graceful restart end to end (RFC 4724, RFC 8538): one node peering with a router
//! (BIRD 2, FRR bgpd, gobgpd) that acts as a graceful restart helper.
//!
//! Each test runs, on one small lab, the three ways a speaker stops:
//! (a) a restart in place (SIGTERM, then a new process): the router keeps the route via the
//!     node the whole time, marked stale, refreshes it after the new session's End-of-RIB,
//!     and flushes a prefix whose Service was deleted while the speaker was down;
//! (c) with `--hitless-operations=false`: the route is dropped at once (Cease);
//! (b) the node drained (labelled `node.kubernetes.io/exclude-from-external-load-balancers`,
//!     then SIGTERM): the route is withdrawn while the session is still up, then the
//!     session closes with a Cease and the router keeps nothing.
//!
//! Needs root (CI runs it as root) and the daemons (scripts/install-test-deps.sh).

mod common;

use common::bgp::*;
use common::*;
use ferrolb_e2e::cluster::{Cluster, ClusterOptions, NODE_ASN, ROUTER_ASN, RouterKind};
use ferrolb_e2e::lab::daemons::{BgpPeer, Bird, BirdConfig, Frr, FrrConfig, Gobgp, GobgpConfig};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The BGPPeer (graceful restart on, 30 s restart time), a pool and an advertisement.
const CONFIG: &str = "\
apiVersion: ferrolb.io/v1beta1
kind: BGPPeer
metadata:
  name: router
  namespace: ferrolb-system
spec:
  myASN: 64512
  peerASN: 64500
  peerAddress: 10.200.0.1
  holdTime: 9s
  enableGracefulRestart: true
  gracefulRestartTime: 30s
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata:
  name: bgp-pool
  namespace: ferrolb-system
spec:
  addresses:
    - 10.200.100.0/24
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata:
  name: bgp-routes
  namespace: ferrolb-system
spec:
  ipAddressPools:
    - bgp-pool
";

/// Where the speakers of one test keep their restart markers (never the host's /run).
fn marker_dir(router: RouterKind) -> PathBuf {
    std::env::temp_dir().join(format!("ferrolb-gr-{router:?}-{}", std::process::id()))
}

fn marker_file(dir: &Path, c: &Cluster) -> PathBuf {
    dir.join(format!("bgp-restart-{}", c.lab.node(1).name()))
}

/// One node and the router as a graceful restart helper for its IPv4 session.
fn gr_cluster(router: RouterKind, dir: &Path) -> Cluster {
    let mut c = Cluster::start(ClusterOptions {
        nodes: 1,
        bird: false,
        router,
        speaker_args: vec!["--restart-marker-dir".into(), dir.display().to_string()],
        ..ClusterOptions::default()
    })
    .expect("cluster");
    let peer = BgpPeer::new("node1v4", node_addr(&c, 1), NODE_ASN)
        .passive(true)
        .graceful_restart(true);
    let ns = c.lab.router().ns().clone();
    let router_id = c.lab.router().v4();
    match router {
        RouterKind::Bird => {
            // `error wait time 1,5` inside the protocol (as the lab's own BIRD): after a Cease
            // BIRD's default refuses the peer for a minute or more.
            let text = BirdConfig::new(router_id, ROUTER_ASN)
                .peer(peer)
                .render()
                .expect("bird config");
            let mut cfg = BirdConfig::new(router_id, ROUTER_ASN);
            for line in text.lines().skip_while(|l| !l.starts_with("protocol bgp ")) {
                cfg.extra.push_str(line);
                cfg.extra.push('\n');
                if line.starts_with("protocol bgp ") {
                    cfg.extra.push_str("  error wait time 1,5;\n");
                }
            }
            c.bird = Some(Bird::start(&ns, &cfg).expect("bird"));
        }
        RouterKind::Frr => {
            let cfg = FrrConfig::new("router", router_id, ROUTER_ASN).peer(peer);
            c.frr = Some(Frr::start(&ns, &cfg).expect("frr"));
        }
        RouterKind::Gobgp => {
            let cfg = GobgpConfig::new(router_id, ROUTER_ASN).peer(peer);
            c.gobgp = Some(Gobgp::start(&ns, &cfg).expect("gobgp"));
        }
    }
    c.apply_yaml(CONFIG).expect("apply config");
    c
}

/// The router's view of the route to `ip`: BIRD `show route all`, FRR `show bgp … json`,
/// GoBGP `gobgp global rib … -j`.
fn route_text(c: &Cluster, ip: IpAddr) -> String {
    let p = prefix(ip);
    if let Some(b) = &c.bird {
        return b.birdc(&format!("show route {p} all")).unwrap_or_default();
    }
    if let Some(f) = &c.frr {
        return f
            .vtysh(&format!("show bgp ipv4 unicast {p} json"))
            .unwrap_or_default();
    }
    if let Some(g) = &c.gobgp {
        return g
            .gobgp(&format!("global rib -a ipv4 {p} -j"))
            .unwrap_or_default();
    }
    panic!("no router daemon")
}

/// Next hops of `ip` at the router, as node indices. GoBGP's text RIB leaves stale paths
/// out of the columns `router_next_hops` reads, so its JSON is read instead (paths' NEXT_HOP).
fn next_hops(c: &Cluster, ip: IpAddr) -> Vec<usize> {
    if c.gobgp.is_none() {
        return router_next_hops(c, ip);
    }
    let json: serde_json::Value =
        serde_json::from_str(&route_text(c, ip)).unwrap_or(serde_json::Value::Null);
    let mut nodes: Vec<usize> = json[prefix(ip).as_str()]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|path| path["attrs"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| node_of(c, a["nexthop"].as_str()?))
        .collect();
    nodes.sort_unstable();
    nodes
}

/// Whether the router holds `text` (its view of one route, [`route_text`]) as stale, in
/// graceful restart helper mode: FRR and GoBGP mark the path `"stale": true`; BIRD prints no
/// flag on the route and says it of the session instead (`Neighbor graceful restart active`
/// with its restart timer, until the End-of-RIB).
fn route_stale(c: &Cluster, text: &str) -> bool {
    if c.bird.is_some() {
        return router_session(c).contains("Neighbor graceful restart active");
    }
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    compact.contains("\"stale\":true")
}

/// The router's description of its session with node 1 (state, last error).
fn router_session(c: &Cluster) -> String {
    if let Some(b) = &c.bird {
        return b.birdc("show protocols all node1v4").unwrap_or_default();
    }
    if let Some(f) = &c.frr {
        return f
            .vtysh(&format!("show bgp neighbors {} json", node_addr(c, 1)))
            .unwrap_or_default();
    }
    if let Some(g) = &c.gobgp {
        return g
            .gobgp(&format!("neighbor {}", node_addr(c, 1)))
            .unwrap_or_default();
    }
    panic!("no router daemon")
}

fn speaker_stopped(c: &Cluster, within: Duration) {
    let p = c.speaker(1).expect("speaker running");
    p.terminate().expect("SIGTERM");
    p.wait_timeout(within).expect("speaker exits after SIGTERM");
}

fn scenario(router: RouterKind) {
    let dir = marker_dir(router);
    let _ = std::fs::remove_dir_all(&dir);
    let mut c = gr_cluster(router, &dir);
    wait_established(&c, &[1], Duration::from_secs(30));
    let web = service(&c, "web", false);
    let gone = service(&c, "gone", false);
    for ip in [web, gone] {
        wait_hops("route via node1", Duration::from_secs(15), &[1], || {
            next_hops(&c, ip)
        });
    }
    println!("{router:?} before the restart:\n{}", route_text(&c, web));

    // (a) Planned restart: SIGTERM, the Service "gone" deleted while the speaker is down,
    // then a new speaker process.
    speaker_stopped(&c, Duration::from_secs(5));
    let marker = std::fs::read_to_string(marker_file(&dir, &c)).expect("restart marker written");
    println!("restart marker:\n{marker}");
    assert!(
        marker.contains("peer ferrolb-system/router 10.200.0.1 30"),
        "{marker}"
    );
    // The router holds both routes, stale, while no speaker runs.
    let held = eventually(
        "router marks the routes stale",
        Duration::from_secs(5),
        || {
            let t = route_text(&c, web);
            route_stale(&c, &t).then_some(t)
        },
    );
    println!("{router:?} while the speaker is down:\n{held}");
    println!("{router:?} session while down:\n{}", router_session(&c));
    assert_eq!(next_hops(&c, web), vec![1]);
    assert_eq!(next_hops(&c, gone), vec![1]);
    delete_service(&c, "gone");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(next_hops(&c, web), vec![1], "kept while down");
    c.start_speaker(1).expect("speaker restarts");
    let start = Instant::now();
    // Until the new session's End-of-RIB: "web" never leaves, "gone" is flushed, and "web"
    // is no longer stale.
    loop {
        assert_eq!(
            next_hops(&c, web),
            vec![1],
            "route via node1 dropped {:?} after the restart",
            start.elapsed()
        );
        let text = route_text(&c, web);
        if next_hops(&c, gone).is_empty() && !route_stale(&c, &text) {
            println!(
                "{router:?} after End-of-RIB ({:?} after the new speaker started):\n{text}",
                start.elapsed()
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(25),
            "stale route not refreshed or deleted prefix not flushed: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !marker_file(&dir, &c).exists(),
        "the new speaker took the marker"
    );
    let log = c.speaker(1).expect("speaker").log();
    assert!(
        log.contains("announcing the graceful restart Restart State bit"),
        "{log}"
    );
    wait_established(&c, &[1], Duration::from_secs(10));

    // (c) Hitless operations off: SIGTERM drops the route at once.
    c.start_speaker_with(1, &["--hitless-operations=false"])
        .expect("speaker restarts");
    wait_established(&c, &[1], Duration::from_secs(30));
    wait_hops("route via node1", Duration::from_secs(15), &[1], || {
        next_hops(&c, web)
    });
    let stop = Instant::now();
    speaker_stopped(&c, Duration::from_secs(5));
    let took = wait_hops(
        "route dropped after a Cease",
        Duration::from_secs(3),
        &[],
        || next_hops(&c, web),
    );
    println!(
        "{router:?} hitless off: route gone {:?} after SIGTERM; session:\n{}",
        took.min(stop.elapsed()),
        router_session(&c)
    );
    assert!(!marker_file(&dir, &c).exists(), "no marker without hitless");

    // (b) Node leaving: excluded from load balancers, then SIGTERM. The withdrawal comes
    // while the session is still up, the Cease after it.
    c.start_speaker(1).expect("speaker restarts");
    wait_established(&c, &[1], Duration::from_secs(30));
    wait_hops("route via node1", Duration::from_secs(15), &[1], || {
        next_hops(&c, web)
    });
    let node = c.lab.node(1).name().to_string();
    label_node(
        &c,
        &node,
        "node.kubernetes.io/exclude-from-external-load-balancers",
        Some(""),
    );
    wait_hops("route withdrawn", Duration::from_secs(10), &[], || {
        next_hops(&c, web)
    });
    assert!(
        router_established(&c, 1),
        "withdrawn by UPDATE, session still up: {}",
        router_session(&c)
    );
    speaker_stopped(&c, Duration::from_secs(5));
    eventually("router session down", Duration::from_secs(5), || {
        (!router_established(&c, 1)).then_some(())
    });
    println!("{router:?} node leaving, session:\n{}", router_session(&c));
    assert!(next_hops(&c, web).is_empty());
    assert!(!marker_file(&dir, &c).exists(), "no marker when leaving");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bird_keeps_routes_through_a_restart_and_drops_them_when_leaving() {
    with_router(
        "bird_keeps_routes_through_a_restart_and_drops_them_when_leaving",
        RouterKind::Bird,
        router_tools(RouterKind::Bird),
        scenario,
    );
}

#[test]
fn frr_keeps_routes_through_a_restart_and_drops_them_when_leaving() {
    with_router(
        "frr_keeps_routes_through_a_restart_and_drops_them_when_leaving",
        RouterKind::Frr,
        router_tools(RouterKind::Frr),
        scenario,
    );
}

#[test]
fn gobgp_keeps_routes_through_a_restart_and_drops_them_when_leaving() {
    with_router(
        "gobgp_keeps_routes_through_a_restart_and_drops_them_when_leaving",
        RouterKind::Gobgp,
        router_tools(RouterKind::Gobgp),
        scenario,
    );
}
