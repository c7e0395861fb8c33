//! Unnumbered BGP (BGPPeer `interface`) against FRR's `neighbor IFACE interface`: the test
//! builds a point-to-point veth between the node's namespace and the router's with no IPv4
//! address on it (IPv6 link-local addresses only), starts FRR in the router namespace with an
//! unnumbered neighbour on its end (Router Advertisements on, extended next hop), and applies a
//! BGPPeer naming the node's end. Needs root and FRR (scripts/install-test-deps.sh).
//!
//! Proven: before the link exists the session reports that no neighbour is discovered; then
//! the speaker discovers the router's link-local address, the session is Established at both
//! ends with the extended next hop capability, FRR's RIB holds the Service's IPv4 /32 with the
//! node's link-local IPv6 next hop, the router's kernel routes it `via inet6 fe80::…`, and the
//! client behind the router reaches the Service over the link. Then both ends get a global
//! IPv6 address on the link and the router resets the session: IPv4 and IPv6 routes carry the
//! node's global address and its link-local one (32 octets), and an IPv6 Service is reached
//! too.

mod common;

use common::bgp::*;
use common::*;
use ferrolb_e2e::cluster::{Cluster, ClusterOptions, NODE_ASN, ROUTER_ASN, RouterKind};
use ferrolb_e2e::lab::{self, Frr};
use std::net::IpAddr;
use std::time::Duration;

/// The router's end of the link.
const ROUTER_LINK: &str = "unr1";
/// The node's end of the link, named in the BGPPeer.
const NODE_LINK: &str = "unn1";
/// Global addresses given to the link's ends in the second part.
const ROUTER_GLOBAL: &str = "fd00:200:77::1/64";
const NODE_GLOBAL: &str = "fd00:200:77::11/64";
/// The BGPPeer's name and its `namespace/name` in the speaker's status.
const PEER_NAME: &str = "unnumbered";
const PEER_FULL: &str = "ferrolb-system/unnumbered";

fn ip_in(ns: &str, args: &[&str]) -> Result<String, String> {
    let mut argv = vec!["-n", ns];
    argv.extend_from_slice(args);
    lab::netns::ip(argv).map_err(|e| e.to_string())
}

/// The veth between node1 and the router, removed on drop (also when the test fails; the
/// lab's namespaces go at teardown anyway, with every link inside them).
struct Link {
    router_ns: String,
    made: bool,
}

impl Link {
    /// Both ends up with IPv6 (link-local only: no address is added) and reverse-path
    /// filtering off (the client's packets arrive over the link, the node's answers leave over
    /// the LAN); the node takes no route from the router's advertisements.
    fn create(c: &Cluster) -> Result<Link, String> {
        let router_ns = c.lab.router().name().to_string();
        let node = c.lab.node(1);
        let node_ns = node.name().to_string();
        ip_in(
            &router_ns,
            &[
                "link",
                "add",
                ROUTER_LINK,
                "type",
                "veth",
                "peer",
                "name",
                NODE_LINK,
                "netns",
                &node_ns,
            ],
        )?;
        let link = Link {
            router_ns: router_ns.clone(),
            made: true,
        };
        for (ns, dev) in [(c.lab.router().ns(), ROUTER_LINK), (node.ns(), NODE_LINK)] {
            for (k, v) in [
                (format!("net.ipv6.conf.{dev}.disable_ipv6"), "0"),
                (format!("net.ipv6.conf.{dev}.accept_dad"), "0"),
                (format!("net.ipv6.conf.{dev}.accept_ra"), "0"),
                (format!("net.ipv4.conf.{dev}.rp_filter"), "0"),
                ("net.ipv4.conf.all.rp_filter".to_string(), "0"),
            ] {
                ns.sysctl(&k, v).map_err(|e| e.to_string())?;
            }
        }
        ip_in(&router_ns, &["link", "set", ROUTER_LINK, "up"])?;
        ip_in(&node_ns, &["link", "set", NODE_LINK, "up"])?;
        Ok(link)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if self.made {
            // Deleting one end of a veth deletes both.
            let _ = ip_in(&self.router_ns, &["link", "del", ROUTER_LINK]);
        }
    }
}

/// The IPv6 link-local address of `dev` in namespace `ns`.
fn link_local(ns: &str, dev: &str) -> Option<String> {
    let out = ip_in(
        ns,
        &["-6", "-o", "addr", "show", "dev", dev, "scope", "link"],
    )
    .ok()?;
    let word = out
        .split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)?;
    Some(word.split('/').next()?.to_string())
}

/// FRR with one unnumbered neighbour on [`ROUTER_LINK`]: Router Advertisements every second
/// (how FRR's neighbour finds its address), both families, extended next hop (which `interface`
/// neighbours have anyway).
fn frr_config(c: &Cluster) -> lab::FrrConfig {
    let mut cfg = lab::FrrConfig::new("router", c.lab.router().v4(), ROUTER_ASN);
    cfg.extra = format!(
        "interface {ROUTER_LINK}\n ipv6 nd ra-interval 1\n no ipv6 nd suppress-ra\n!\n\
         router bgp {ROUTER_ASN}\n neighbor {ROUTER_LINK} interface remote-as {NODE_ASN}\n \
         neighbor {ROUTER_LINK} timers 3 9\n neighbor {ROUTER_LINK} timers connect 2\n \
         neighbor {ROUTER_LINK} capability extended-nexthop\n address-family ipv4 unicast\n  \
         neighbor {ROUTER_LINK} activate\n exit-address-family\n address-family ipv6 unicast\n  \
         neighbor {ROUTER_LINK} activate\n exit-address-family\n!\n"
    );
    cfg
}

/// The example's pool and advertisement, and an unnumbered BGPPeer on node1's end of the
/// link.
fn peer_yaml() -> String {
    format!(
        "apiVersion: ferrolb.io/v1beta1\nkind: BGPPeer\nmetadata:\n  name: {PEER_NAME}\n  \
         namespace: ferrolb-system\nspec:\n  myASN: {NODE_ASN}\n  peerASN: {ROUTER_ASN}\n  \
         interface: {NODE_LINK}\n  holdTime: 9s\n  connectTime: 2s\n---\n\
         apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: bgp-pool\n  \
         namespace: ferrolb-system\nspec:\n  addresses:\n    - 10.200.100.0/24\n    - \
         fd00:200:0:101::/120\n---\n\
         apiVersion: ferrolb.io/v1beta1\nkind: BGPAdvertisement\nmetadata:\n  name: \
         unnumbered-routes\n  namespace: ferrolb-system\nspec:\n  ipAddressPools:\n    - \
         bgp-pool\n  peers:\n    - {PEER_NAME}\n"
    )
}

/// The unnumbered session in speaker 1's status API.
fn speaker_session(c: &Cluster) -> Option<serde_json::Value> {
    let st = c.get_json(c.speaker_http(1), "/api/v1/status").ok()?;
    st["bgpPeers"]
        .as_array()?
        .iter()
        .find(|p| p["name"].as_str() == Some(PEER_FULL))
        .cloned()
}

/// The BGPSessionState of the unnumbered peer on node1.
fn session_state(c: &Cluster) -> Option<ferrolb_api::BGPSessionStateStatus> {
    use kube::api::{Api, ListParams};
    let api: Api<ferrolb_api::BGPSessionState> =
        Api::namespaced(c.client.clone(), "ferrolb-system");
    let lp = ListParams::default().labels(&format!(
        "{}={PEER_NAME}",
        ferrolb_api::bgp_status::PEER_LABEL
    ));
    let node = c.lab.node(1).name().to_string();
    let list = c.run(async move { api.list(&lp).await }).ok()?.ok()?;
    list.items
        .into_iter()
        .filter_map(|o| o.status)
        .find(|s| s.node == node)
}

/// An IPv6-only Service `name` from the pool's IPv6 range; returns its address.
fn service_v6(c: &Cluster, name: &str) -> IpAddr {
    let mut svc = lb_service(name, &[]);
    if let Some(spec) = svc.spec.as_mut() {
        spec.ip_families = Some(vec!["IPv6".into()]);
        spec.ip_family_policy = Some("SingleStack".into());
    }
    create_service(c, &svc);
    let ip = wait_ips(c, name, 1, Duration::from_secs(20))[0];
    assert!(ip.is_ipv6(), "{ip}");
    ip
}

fn frr_established(frr: &Frr) -> bool {
    frr.vtysh(&format!("show bgp neighbors {ROUTER_LINK} json"))
        .map(|o| {
            let compact: String = o.chars().filter(|c| !c.is_whitespace()).collect();
            compact.contains("\"bgpState\":\"Established\"")
        })
        .unwrap_or(false)
}

fn unnumbered_against_frr(_router: RouterKind) {
    let c = Cluster::start(ClusterOptions {
        nodes: 1,
        bird: false,
        upstream_client: true,
        router: RouterKind::Frr,
        ..ClusterOptions::default()
    })
    .expect("cluster");
    c.apply_yaml(&peer_yaml())
        .expect("apply the unnumbered peer");

    // No link yet: nothing to discover, and the status says so.
    let waiting = eventually(
        "BGPSessionState says no neighbour is discovered",
        Duration::from_secs(20),
        || session_state(&c).filter(|s| s.message.contains("does not exist")),
    );
    println!("before the link: {waiting:?}");
    assert_eq!(waiting.interface, NODE_LINK);
    assert_eq!(waiting.peer, "");
    assert_ne!(waiting.bgp_status, "Established");
    assert_eq!(
        waiting.message,
        format!(
            "no neighbour discovered on {NODE_LINK}: the interface does not exist on this node"
        )
    );

    let link = Link::create(&c).expect("point-to-point link");
    let router_ns = c.lab.router().name().to_string();
    let node_ns = c.lab.node(1).name().to_string();
    let (router_ll, node_ll) = eventually(
        "link-local addresses on both ends",
        Duration::from_secs(10),
        || {
            Some((
                link_local(&router_ns, ROUTER_LINK)?,
                link_local(&node_ns, NODE_LINK)?,
            ))
        },
    );
    println!("router {router_ll}%{ROUTER_LINK}, node {node_ll}%{NODE_LINK}");
    // Only link-local addresses on the link: no IPv4 at all.
    let v4 = ip_in(&node_ns, &["-4", "-o", "addr", "show", "dev", NODE_LINK]).expect("ip addr");
    assert!(v4.trim().is_empty(), "IPv4 on the node's link: {v4}");

    let frr = Frr::start(c.lab.router().ns(), &frr_config(&c)).expect("start FRR");
    eventually(
        "the unnumbered session Established at both ends",
        Duration::from_secs(40),
        || {
            (frr_established(&frr) && speaker_session(&c)?["state"].as_str() == Some("Established"))
                .then_some(())
        },
    );
    let neighbors = frr
        .vtysh(&format!("show bgp neighbors {ROUTER_LINK}"))
        .expect("vtysh");
    println!("FRR show bgp neighbors {ROUTER_LINK}:\n{neighbors}");
    assert!(
        neighbors.contains(&node_ll),
        "FRR's neighbour is the node's link-local address"
    );
    assert!(
        neighbors.contains("Extended nexthop: advertised and received"),
        "extended next hop negotiated"
    );

    // The speaker and its BGPSessionState name the router by its link-local address, scoped.
    let scoped = format!("{router_ll}%{NODE_LINK}");
    let p = speaker_session(&c).expect("session in the speaker status");
    println!("speaker status: {p}");
    assert_eq!(p["interface"].as_str(), Some(NODE_LINK));
    assert_eq!(p["neighbour"].as_str(), Some(scoped.as_str()));
    let st = eventually(
        "BGPSessionState Established with the neighbour",
        Duration::from_secs(20),
        || session_state(&c).filter(|s| s.bgp_status == "Established"),
    );
    println!("BGPSessionState: {st:?}");
    assert_eq!(
        (st.peer.as_str(), st.interface.as_str(), st.message.as_str()),
        (scoped.as_str(), NODE_LINK, "")
    );

    // The Service's IPv4 address reaches the router with the node's link-local next hop.
    let ip = service(&c, "web", false);
    let pfx = prefix(ip);
    let rib = eventually(
        "FRR's RIB holds the Service's /32",
        Duration::from_secs(20),
        || {
            frr.vtysh(&format!("show bgp ipv4 unicast {pfx}"))
                .ok()
                .filter(|t| t.contains(&node_ll))
        },
    );
    println!("FRR show bgp ipv4 unicast {pfx}:\n{rib}");
    assert!(
        rib.contains(&format!("{node_ll} from {ROUTER_LINK}")),
        "IPv6 link-local next hop learned over the interface"
    );
    let kernel = eventually(
        "the router's kernel routes the Service via inet6",
        Duration::from_secs(20),
        || {
            let r = kernel_route(&c, ip);
            r.contains("via inet6 fe80::").then_some(r)
        },
    );
    println!("ip route show {pfx} (router):\n{kernel}");
    assert!(
        kernel.contains(&format!("via inet6 {node_ll} dev {ROUTER_LINK}")),
        "{kernel}"
    );
    let answer = eventually(
        "the upstream client reaches the Service over the unnumbered link",
        Duration::from_secs(20),
        || curl_upstream(&c, ip),
    );
    println!("curl http://{ip}/ from the upstream client: {answer}");
    assert!(
        answer.starts_with(c.lab.node(1).name()),
        "answered by node1: {answer}"
    );
    // The router forwards over the link, not the LAN: its route names the link only.
    let got = c
        .lab
        .router()
        .ns()
        .exec(["ip", "-4", "route", "get", &ip.to_string()])
        .map(|o| o.stdout)
        .unwrap_or_default();
    println!("ip route get {ip} (router): {got}");
    assert!(got.contains(ROUTER_LINK), "{got}");
    assert!(matches!(ip, IpAddr::V4(_)));

    // A global address on the link: after a reset, both next hops, in both families.
    ip_in(
        &router_ns,
        &[
            "-6",
            "addr",
            "add",
            ROUTER_GLOBAL,
            "dev",
            ROUTER_LINK,
            "nodad",
        ],
    )
    .expect("router global address");
    ip_in(
        &node_ns,
        &["-6", "addr", "add", NODE_GLOBAL, "dev", NODE_LINK, "nodad"],
    )
    .expect("node global address");
    let node_global = NODE_GLOBAL.split('/').next().expect("address");
    frr.vtysh(&format!("clear bgp {ROUTER_LINK}"))
        .expect("reset the session");
    let ip6 = service_v6(&c, "web6");
    let (rib4, rib6) = eventually(
        "both families with the global and the link-local next hop",
        Duration::from_secs(40),
        || {
            let rib4 = frr
                .vtysh(&format!("show bgp ipv4 unicast {pfx} json"))
                .ok()?;
            let rib6 = frr
                .vtysh(&format!("show bgp ipv6 unicast {} json", prefix(ip6)))
                .ok()?;
            [&rib4, &rib6]
                .iter()
                .all(|t| t.contains(node_global) && t.contains(&node_ll))
                .then_some((rib4, rib6))
        },
    );
    for (what, pfx) in [("ipv4", pfx.clone()), ("ipv6", prefix(ip6))] {
        let text = frr
            .vtysh(&format!("show bgp {what} unicast {pfx}"))
            .expect("vtysh");
        println!("FRR show bgp {what} unicast {pfx} (global + link-local):\n{text}");
    }
    assert!(rib4.contains("\"link-local\""), "{rib4}");
    assert!(rib6.contains("\"link-local\""), "{rib6}");
    println!(
        "ip route show {pfx} (router): {}\nip -6 route show {} (router): {}",
        kernel_route(&c, ip),
        prefix(ip6),
        kernel_route(&c, ip6)
    );
    for target in [ip, ip6] {
        let answer = eventually(
            &format!("the upstream client reaches {target} over the link"),
            Duration::from_secs(20),
            || curl_upstream(&c, target),
        );
        println!("curl {target} port 80 from the upstream client: {answer}");
        assert!(answer.starts_with(c.lab.node(1).name()), "{answer}");
    }
    drop(frr);
    drop(link);
}

#[test]
fn unnumbered_peering_with_frr() {
    with_router(
        "unnumbered_peering_with_frr",
        RouterKind::Frr,
        router_tools(RouterKind::Frr),
        unnumbered_against_frr,
    );
}
