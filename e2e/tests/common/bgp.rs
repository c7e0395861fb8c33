//! BGP helpers shared by the end-to-end tests against routing daemons: a cluster peering with
//! the lab router, next hops as the router (BIRD, FRR, GoBGP) and its kernel see them,
//! sessions on both ends.

use super::*;
use ferrolb_e2e::cluster::{Cluster, ClusterOptions, EXAMPLE_BGP_PASSWORD, RouterKind};
use ferrolb_e2e::lab;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// deploy/examples/bgp.yaml.
pub const BGP_EXAMPLE: &str = include_str!("../../../deploy/examples/bgp.yaml");

/// The BGPPeer of the example, as named in the speakers' status.
pub const PEER: &str = "ferrolb-system/router";

/// Nodes of [`bgp_cluster`].
pub const NODES: usize = 3;

/// Three nodes, `router` peering with every node (the example's password) and a client
/// behind the router.
pub fn bgp_options(router: RouterKind) -> ClusterOptions {
    ClusterOptions {
        nodes: NODES as u8,
        bird: true,
        bird_password: Some(EXAMPLE_BGP_PASSWORD.into()),
        upstream_client: true,
        router,
        ..ClusterOptions::default()
    }
}

/// Starts `opts` and applies the BGP example.
pub fn start_bgp(opts: ClusterOptions) -> Cluster {
    let c = Cluster::start(opts).expect("cluster");
    c.apply_yaml(BGP_EXAMPLE).expect("apply bgp example");
    c
}

/// A three-node cluster with `router` peering with every node (the example's password), a
/// client behind the router, and the BGP example applied.
pub fn bgp_cluster(router: RouterKind) -> Cluster {
    start_bgp(bgp_options(router))
}

pub fn node_addr(c: &Cluster, i: usize) -> IpAddr {
    IpAddr::V4(c.lab.node(i).v4())
}

/// Node index (1-based) of a lab node address.
pub fn node_of(c: &Cluster, addr: &str) -> Option<usize> {
    (1..=NODES).find(|&i| node_addr(c, i).to_string() == addr)
}

/// State of the example peer in speaker `i`'s status API.
pub fn speaker_peer(c: &Cluster, i: usize) -> Option<serde_json::Value> {
    let st = c.get_json(c.speaker_http(i), "/api/v1/status").ok()?;
    st["bgpPeers"]
        .as_array()?
        .iter()
        .find(|p| p["name"].as_str() == Some(PEER))
        .cloned()
}

pub fn speaker_established(c: &Cluster, i: usize) -> bool {
    speaker_peer(c, i).is_some_and(|p| p["state"].as_str() == Some("Established"))
}

/// Whether the router's session with node `i` (IPv4) is Established.
pub fn router_established(c: &Cluster, i: usize) -> bool {
    if let Some(b) = &c.bird {
        return b.is_established(&format!("node{i}v4"));
    }
    if let Some(f) = &c.frr {
        return f.is_established(node_addr(c, i));
    }
    if let Some(g) = &c.gobgp {
        return g.is_established(node_addr(c, i));
    }
    panic!("no router daemon")
}

/// Waits until the router and the speakers of `nodes` agree the sessions are Established.
pub fn wait_established(c: &Cluster, nodes: &[usize], timeout: Duration) {
    for &i in nodes {
        eventually(
            &format!("session router <-> node{i} Established on both ends"),
            timeout,
            || (router_established(c, i) && speaker_established(c, i)).then_some(()),
        );
    }
}

/// `via ADDR` next hops in text (BIRD `show route`, `ip route`), as node indices, sorted.
pub fn via_nodes(c: &Cluster, text: &str) -> Vec<usize> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut nodes: Vec<usize> = words
        .windows(2)
        .filter(|w| w[0] == "via")
        .filter_map(|w| node_of(c, w[1].trim_end_matches(',')))
        .collect();
    nodes.sort_unstable();
    nodes
}

pub fn prefix(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}/32"),
        IpAddr::V6(a) => format!("{a}/128"),
    }
}

/// `birdc show route <prefix> all`.
pub fn bird_route(c: &Cluster, ip: IpAddr) -> String {
    let b = c.bird.as_ref().expect("bird");
    b.birdc(&format!("show route {} all", prefix(ip)))
        .unwrap_or_default()
}

/// Next hops of `ip` in BIRD's RIB (one route per session), as node indices.
pub fn bird_next_hops(c: &Cluster, ip: IpAddr) -> Vec<usize> {
    via_nodes(c, &bird_route(c, ip))
}

/// `ip route show <prefix>` in the router namespace.
pub fn kernel_route(c: &Cluster, ip: IpAddr) -> String {
    let fam = if ip.is_ipv4() { "-4" } else { "-6" };
    c.lab
        .router()
        .ns()
        .exec(["ip", fam, "route", "show", &prefix(ip)])
        .map(|o| o.stdout)
        .unwrap_or_default()
}

/// Next hops of `ip` in the router's kernel table, as node indices.
pub fn kernel_next_hops(c: &Cluster, ip: IpAddr) -> Vec<usize> {
    via_nodes(c, &kernel_route(c, ip))
}

/// Waits until `f` reports exactly `want`; returns the elapsed time.
pub fn wait_hops(
    what: &str,
    timeout: Duration,
    want: &[usize],
    mut f: impl FnMut() -> Vec<usize>,
) -> Duration {
    let start = Instant::now();
    let mut last = Vec::new();
    while start.elapsed() < timeout {
        last = f();
        if last == want {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what}: next hops {last:?}, want {want:?} (after {timeout:?})");
}

/// `curl http://IP/` from the client behind the router: the echo server's `<node> <client>`.
pub fn curl_upstream(c: &Cluster, ip: IpAddr) -> Option<String> {
    let out = c
        .lab
        .upstream_client()
        .ns()
        .curl(ip, 80, "/", Duration::from_secs(2))
        .expect("curl");
    out.success().then(|| out.stdout.trim().to_string())
}

pub fn delete_service(c: &Cluster, name: &str) {
    use k8s_openapi::api::core::v1::Service;
    use kube::api::{Api, DeleteParams};
    let api: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let name = name.to_string();
    c.run(async move { api.delete(&name, &DeleteParams::default()).await })
        .expect("runtime")
        .expect("delete service");
}

/// A Cluster-policy IPv4 Service `name`; returns its address.
pub fn service(c: &Cluster, name: &str, local: bool) -> IpAddr {
    let mut svc = lb_service(name, &[]);
    if local && let Some(spec) = svc.spec.as_mut() {
        spec.external_traffic_policy = Some("Local".into());
    }
    create_service(c, &svc);
    let ip = wait_ips(c, name, 1, Duration::from_secs(20))[0];
    let pool: ipnet::IpNet = "10.200.100.0/24".parse().expect("net");
    assert!(pool.contains(&ip), "{ip} is not from bgp-pool");
    ip
}

/// Every node of [`bgp_cluster`].
pub const ALL: [usize; 3] = [1, 2, 3];

/// The tools a scenario needs with `router`.
pub fn router_tools(router: RouterKind) -> &'static [&'static str] {
    match router {
        RouterKind::Bird => &["bird", "birdc", "curl"],
        RouterKind::Frr => &["vtysh", "/usr/lib/frr/bgpd", "/usr/lib/frr/zebra", "curl"],
        RouterKind::Gobgp => &["gobgpd", "gobgp"],
    }
}

/// Next hops of `ip` (IPv4) in the router daemon's RIB, as node indices.
pub fn router_next_hops(c: &Cluster, ip: IpAddr) -> Vec<usize> {
    if c.bird.is_some() {
        return bird_next_hops(c, ip);
    }
    if let Some(f) = &c.frr {
        let text = f
            .vtysh(&format!("show ip bgp {}", prefix(ip)))
            .unwrap_or_default();
        return via_nodes_frr(c, &text);
    }
    if c.gobgp.is_some() {
        return gobgp_next_hops(c, ip);
    }
    panic!("no router daemon")
}

/// Whether the router daemon installs its best paths in the router's kernel (BIRD and FRR
/// do; gobgpd does not), so that the upstream client can reach announced addresses.
pub fn router_routes_traffic(c: &Cluster) -> bool {
    c.gobgp.is_none()
}

/// Node next hops in FRR's `show ip bgp P` (path lines start with the next hop) or
/// `show ip route P` (`* ADDR, via eth0`).
pub fn via_nodes_frr(c: &Cluster, text: &str) -> Vec<usize> {
    let mut nodes: Vec<usize> = text
        .lines()
        .filter_map(|l| {
            let l = l.trim_start().trim_start_matches('*').trim_start();
            let first = l.split_whitespace().next()?.trim_end_matches(',');
            // Path lines: "10.200.0.11 from 10.200.0.11 (10.200.0.11)"; route lines:
            // "10.200.0.11, via eth0, weight 1".
            let is_path = l.contains(" from ") || l.contains(", via ");
            if is_path { node_of(c, first) } else { None }
        })
        .collect();
    nodes.sort_unstable();
    nodes.dedup();
    nodes
}

/// Next hops of `ip` in `gobgp global rib` (the word after the prefix), as node indices.
pub fn gobgp_next_hops(c: &Cluster, ip: IpAddr) -> Vec<usize> {
    let g = c.gobgp.as_ref().expect("gobgp");
    let pfx = prefix(ip);
    let rib = g.rib(ip.is_ipv6()).unwrap_or_default();
    let mut nodes: Vec<usize> = rib
        .lines()
        .filter(|l| l.split_whitespace().any(|w| w == pfx))
        .filter_map(|l| {
            let mut w = l.split_whitespace().skip_while(|w| *w != pfx);
            w.next();
            node_of(c, w.next()?)
        })
        .collect();
    nodes.sort_unstable();
    nodes
}

/// Runs `scenario` against `router` when `tools` are here (skipping with a printed reason
/// otherwise; failing in CI).
pub fn with_router(test: &str, router: RouterKind, tools: &[&str], scenario: fn(RouterKind)) {
    if lab::tools_or_skip(test, tools) {
        scenario(router);
    }
}
