//! BGPPeer `localASN`, `dualStackAddressFamily` and `vrf` end to end: the in-memory API
//! server, the controller and the speakers in network namespaces, and a real routing daemon in
//! the router namespace configured for what the field asks (BIRD, FRR, GoBGP). Needs root and
//! the daemons (scripts/install-test-deps.sh).
//!
//! - `localASN`: the router expects the node's session from AS 65010 (not `myASN` 64512); the
//!   session comes up only if our OPEN carries it, the router shows it as the neighbour's AS,
//!   and the AS_PATH of our routes is 65010 alone (FRR's `local-as .. no-prepend replace-as`).
//! - Address families: the router offers IPv4 and IPv6 on the IPv4 session; by default only
//!   IPv4 is negotiated (we do not offer IPv6), with `dualStackAddressFamily: true` both are.
//! - `vrf`: extra links built by the test from node namespaces to the router
//!   (10.200.250.0/24, which the lab does not use), enslaved to a VRF device `red` on the nodes
//!   that have it; a node without the VRF reports it (BGPSessionState, event) and its other
//!   sessions stay up. On a kernel built without VRF support (`CONFIG_NET_VRF`), the nodes'
//!   link itself is named `red`: SO_BINDTODEVICE binds to it as it binds to a VRF master, and
//!   the session can only come up through that binding (without it the connection would leave
//!   over the LAN, from an address the router does not peer with in that session), and the
//!   part a real VRF device adds is reported as skipped.

mod common;

use common::bgp::*;
use common::*;
use ferrolb_e2e::cluster::{
    Cluster, ClusterOptions, EXAMPLE_BGP_PASSWORD, NODE_ASN, ROUTER_ASN, RouterKind,
};
use ferrolb_e2e::lab::{self, BgpPeer, Bird, Frr, Gobgp, GobgpConfig};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// The AS the speakers present with `localASN`.
const LOCAL_ASN: u32 = 65010;

/// The BGP example's BGPPeer with `extra` spec lines added after `peerASN`.
fn example_with(extra: &str) -> String {
    let at = "  peerASN: 64500\n";
    assert!(
        BGP_EXAMPLE.contains(at),
        "the BGP example names peerASN 64500"
    );
    BGP_EXAMPLE.replace(at, &format!("{at}{extra}"))
}

/// One node, no router daemon yet (each test configures its own).
fn one_node(router: RouterKind) -> ClusterOptions {
    ClusterOptions {
        nodes: 1,
        bird: false,
        router,
        ..ClusterOptions::default()
    }
}

/// Starts the router daemon of `c`'s kind with `peers` (and nothing else).
fn start_router(c: &mut Cluster, router: RouterKind, peers: Vec<BgpPeer>) {
    let id = c.lab.router().v4();
    let ns = c.lab.router().ns();
    match router {
        RouterKind::Bird => {
            let mut cfg = lab::BirdConfig::new(id, ROUTER_ASN);
            for p in peers {
                cfg = cfg.peer(p);
            }
            c.bird = Some(Bird::start(ns, &cfg).expect("start BIRD"));
        }
        RouterKind::Frr => {
            let mut cfg = lab::FrrConfig::new("router", id, ROUTER_ASN);
            for p in peers {
                cfg = cfg.peer(p);
            }
            c.frr = Some(Frr::start(ns, &cfg).expect("start FRR"));
        }
        RouterKind::Gobgp => {
            let mut cfg = GobgpConfig::new(id, ROUTER_ASN);
            for p in peers {
                cfg = cfg.peer(p);
            }
            c.gobgp = Some(Gobgp::start(ns, &cfg).expect("start GoBGP"));
        }
    }
}

/// The router's view of its session with `addr` (BIRD protocol `name`): `birdc show protocols
/// all`, `vtysh show bgp neighbors .. json`, `gobgp neighbor ..`.
fn router_session(c: &Cluster, name: &str, addr: IpAddr) -> String {
    if let Some(b) = &c.bird {
        return b
            .birdc(&format!("show protocols all {name}"))
            .unwrap_or_default();
    }
    if let Some(f) = &c.frr {
        return f
            .vtysh(&format!("show bgp neighbors {addr} json"))
            .unwrap_or_default();
    }
    if let Some(g) = &c.gobgp {
        return g.gobgp(&format!("neighbor {addr}")).unwrap_or_default();
    }
    panic!("no router daemon")
}

/// The router's session with `addr` as people read it (FRR's text rather than its JSON).
fn router_session_shown(c: &Cluster, name: &str, addr: IpAddr) -> String {
    match &c.frr {
        Some(f) => f
            .vtysh(&format!("show bgp neighbors {addr}"))
            .unwrap_or_default(),
        None => router_session(c, name, addr),
    }
}

/// Whether the router has the session with `addr` (BIRD protocol `name`) Established.
fn router_up(c: &Cluster, name: &str, addr: IpAddr) -> bool {
    if let Some(b) = &c.bird {
        return b.is_established(name);
    }
    if let Some(f) = &c.frr {
        return f.is_established(addr);
    }
    if let Some(g) = &c.gobgp {
        return g.is_established(addr);
    }
    panic!("no router daemon")
}

/// (neighbour AS, families both sides negotiated) as the router reports them.
fn router_negotiated(c: &Cluster, name: &str, addr: IpAddr) -> (Option<u32>, Vec<String>) {
    let text = router_session(c, name, addr);
    if c.bird.is_some() {
        // "Neighbor AS: 65010", and the "AF announced:" line of the neighbour's capabilities
        // (BIRD opens a channel only for a family both announced; ours are all offered).
        let asn = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Neighbor AS:"))
            .and_then(|v| v.trim().parse().ok());
        let neighbor_caps = text
            .split("Neighbor capabilities")
            .nth(1)
            .unwrap_or_default();
        let fams = neighbor_caps
            .lines()
            .find_map(|l| l.trim().strip_prefix("AF announced:"))
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        return (asn, fams);
    }
    if c.frr.is_some() {
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let n = &v[addr.to_string()];
        let asn = n["remoteAs"].as_u64().and_then(|a| u32::try_from(a).ok());
        let mut fams: Vec<String> = n["neighborCapabilities"]["multiprotocolExtensions"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(_, v)| v["advertisedAndReceived"].as_bool() == Some(true))
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        fams.sort();
        return (asn, fams);
    }
    // gobgp: "BGP neighbor is 10.200.0.11, remote AS 65010" and under "multiprotocol:" lines
    // such as "ipv4-unicast:  advertised and received".
    let asn = text
        .lines()
        .find_map(|l| l.split("remote AS ").nth(1))
        .and_then(|v| {
            v.split(|ch: char| !ch.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        });
    let mut fams: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.ends_with("advertised and received"))
        .filter_map(|l| l.split(':').next())
        .filter(|f| f.ends_with("-unicast"))
        .map(str::to_string)
        .collect();
    fams.sort();
    (asn, fams)
}

/// The AS_PATH of `ip`'s route at the router (one path), as text.
fn router_as_path(c: &Cluster, ip: IpAddr) -> Option<String> {
    if c.bird.is_some() {
        let route = bird_route(c, ip);
        return route
            .lines()
            .find_map(|l| l.trim().strip_prefix("BGP.as_path:"))
            .map(|p| p.trim().to_string());
    }
    if let Some(f) = &c.frr {
        let text = f.vtysh(&format!("show ip bgp {} json", prefix(ip))).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        return v["paths"][0]["aspath"]["string"]
            .as_str()
            .map(str::to_string);
    }
    let g = c.gobgp.as_ref()?;
    // "*> 10.200.100.0/32  10.200.0.11  65010  00:00:03  [{Origin: i} ...]": the words
    // between the next hop and the age.
    let pfx = prefix(ip);
    let rib = g.rib(false).ok()?;
    let line = rib
        .lines()
        .find(|l| l.split_whitespace().any(|w| w == pfx))?;
    let words: Vec<&str> = line
        .split_whitespace()
        .skip_while(|w| *w != pfx)
        .skip(2)
        .take_while(|w| {
            w.chars()
                .all(|ch| ch.is_ascii_digit() || ch == '{' || ch == '}')
        })
        .collect();
    Some(words.join(" "))
}

/// `localASN` presented to the router, then both address families only with
/// `dualStackAddressFamily`.
fn local_asn_and_families(router: RouterKind) {
    let mut c = Cluster::start(one_node(router)).expect("cluster");
    let node = IpAddr::V4(c.lab.node(1).v4());
    // The router expects AS 65010 from the node and offers both families on the session.
    start_router(
        &mut c,
        router,
        vec![
            BgpPeer::new("node1v4", node, LOCAL_ASN)
                .passive(true)
                .families(true, true)
                .password(EXAMPLE_BGP_PASSWORD),
        ],
    );
    c.apply_yaml(&example_with(&format!("  localASN: {LOCAL_ASN}\n")))
        .expect("apply the BGP example with localASN");
    eventually(
        "session with localASN Established at the router and the speaker",
        Duration::from_secs(30),
        || (router_up(&c, "node1v4", node) && speaker_established(&c, 1)).then_some(()),
    );
    println!(
        "router's session:\n{}",
        router_session_shown(&c, "node1v4", node)
    );
    let (asn, fams) = router_negotiated(&c, "node1v4", node);
    assert_eq!(asn, Some(LOCAL_ASN), "the router sees localASN as our AS");
    assert_eq!(fams.len(), 1, "only IPv4 negotiated by default: {fams:?}");
    assert!(fams[0].contains("4"), "IPv4 negotiated: {fams:?}");
    let status = speaker_peer(&c, 1).expect("speaker status");
    assert_eq!(status["localASN"].as_u64(), Some(u64::from(LOCAL_ASN)));

    // Our routes carry localASN alone in their AS_PATH (replace-as).
    let ip = service(&c, "web", false);
    let path = eventually(
        "the Service's route at the router",
        Duration::from_secs(15),
        || router_as_path(&c, ip),
    );
    println!("AS_PATH of {ip} at the router: {path}");
    assert_eq!(path, LOCAL_ASN.to_string());

    // The BGPSessionState reports the AS in use.
    let state = eventually(
        "BGPSessionState with localASN",
        Duration::from_secs(10),
        || {
            session_states(&c)?
                .into_iter()
                .find(|s| s.bgp_status == "Established")
        },
    );
    assert_eq!(state.local_asn, Some(LOCAL_ASN), "{state:?}");

    // dualStackAddressFamily: true: the session is reopened offering both families.
    c.apply_yaml(&example_with(&format!(
        "  localASN: {LOCAL_ASN}\n  dualStackAddressFamily: true\n"
    )))
    .expect("apply dualStackAddressFamily");
    let fams = eventually(
        "both families negotiated with dualStackAddressFamily",
        Duration::from_secs(30),
        || {
            let (_, fams) = router_negotiated(&c, "node1v4", node);
            (fams.len() == 2 && router_up(&c, "node1v4", node)).then_some(fams)
        },
    );
    println!(
        "with dualStackAddressFamily: {fams:?}\n{}",
        router_session_shown(&c, "node1v4", node)
    );
}

#[test]
fn local_asn_and_families_bird() {
    with_router(
        "local_asn_and_families_bird",
        RouterKind::Bird,
        router_tools(RouterKind::Bird),
        local_asn_and_families,
    );
}

#[test]
fn local_asn_and_families_frr() {
    with_router(
        "local_asn_and_families_frr",
        RouterKind::Frr,
        router_tools(RouterKind::Frr),
        local_asn_and_families,
    );
}

#[test]
fn local_asn_and_families_gobgp() {
    with_router(
        "local_asn_and_families_gobgp",
        RouterKind::Gobgp,
        router_tools(RouterKind::Gobgp),
        local_asn_and_families,
    );
}

/// Every BGPSessionState's status in ferrolb-system.
fn session_states(c: &Cluster) -> Option<Vec<ferrolb_api::BGPSessionStateStatus>> {
    use kube::api::{Api, ListParams};
    let api: Api<ferrolb_api::BGPSessionState> =
        Api::namespaced(c.client.clone(), "ferrolb-system");
    let list = c
        .run(async move { api.list(&ListParams::default()).await })
        .ok()?
        .ok()?;
    Some(list.items.into_iter().filter_map(|o| o.status).collect())
}

/// The BGPSessionState of the BGPPeer `peer` (by name) on node `node` (by name).
fn session_state(
    c: &Cluster,
    peer: &str,
    node: &str,
) -> Option<ferrolb_api::BGPSessionStateStatus> {
    use kube::api::{Api, ListParams};
    let api: Api<ferrolb_api::BGPSessionState> =
        Api::namespaced(c.client.clone(), "ferrolb-system");
    let lp =
        ListParams::default().labels(&format!("{}={peer}", ferrolb_api::bgp_status::PEER_LABEL));
    let list = c.run(async move { api.list(&lp).await }).ok()?.ok()?;
    list.items
        .into_iter()
        .filter_map(|o| o.status)
        .find(|s| s.node == node)
}

/// Notes of the events with `reason` in ferrolb-system.
fn event_notes(c: &Cluster, reason: &str) -> Vec<String> {
    use k8s_openapi::api::events::v1::Event;
    use kube::api::{Api, ListParams};
    let api: Api<Event> = Api::namespaced(c.client.clone(), "ferrolb-system");
    let Ok(Ok(list)) = c.run(async move { api.list(&ListParams::default()).await }) else {
        return vec![];
    };
    list.items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.note)
        .collect()
}

/// The VRF the tests create on the nodes that have one.
const VRF: &str = "red";
/// The router's address the VRF sessions go to, on its loopback, routed in each node's VRF
/// over the node's own link.
const VRF_ROUTER: Ipv4Addr = Ipv4Addr::new(10, 200, 250, 254);

/// Node `i`'s address on its VRF link (10.200.250.4(i-1)+2/30; the router has +1).
fn vrf_node_addr(i: usize) -> Ipv4Addr {
    let base = u8::try_from(4 * (i - 1)).expect("few nodes");
    Ipv4Addr::new(10, 200, 250, base + 2)
}

fn vrf_router_addr(i: usize) -> Ipv4Addr {
    let base = u8::try_from(4 * (i - 1)).expect("few nodes");
    Ipv4Addr::new(10, 200, 250, base + 1)
}

/// What the VRF test adds to the lab's namespaces, removed on drop (also when the test fails;
/// the lab's namespaces go at teardown anyway, with every link inside them).
struct VrfLinks {
    router_ns: String,
    /// (node namespace, router-side link name) of each link made.
    links: Vec<(String, String)>,
    router_address: bool,
}

impl VrfLinks {
    fn new(c: &Cluster) -> Self {
        VrfLinks {
            router_ns: c.lab.router().name().to_string(),
            links: vec![],
            router_address: false,
        }
    }

    fn ip_in(ns: &str, args: &[&str]) -> Result<String, String> {
        let mut argv = vec!["-n", ns];
        argv.extend_from_slice(args);
        lab::netns::ip(argv).map_err(|e| e.to_string())
    }

    /// The router's loopback address of the VRF sessions.
    fn add_router_address(&mut self) {
        let cidr = format!("{VRF_ROUTER}/32");
        Self::ip_in(&self.router_ns, &["addr", "add", &cidr, "dev", "lo"])
            .expect("router VRF address");
        self.router_address = true;
    }

    /// A VRF `red` in node `i`'s namespace with a veth to the router enslaved to it, and the
    /// route to [`VRF_ROUTER`] in the VRF. Without kernel VRF support, the node's end of the
    /// veth is itself named `red` ([`Binding::DeviceOnly`]).
    fn add_node(&mut self, c: &Cluster, i: usize) -> Result<Binding, String> {
        let node_ns = c.lab.node(i).name().to_string();
        let binding = match Self::ip_in(
            &node_ns,
            &["link", "add", VRF, "type", "vrf", "table", "1001"],
        ) {
            Ok(_) => Binding::Vrf,
            Err(e) if e.contains("Unknown device type") => Binding::DeviceOnly(e),
            Err(e) => return Err(e),
        };
        let r_link = format!("vrfr{i}");
        let n_link = match binding {
            Binding::Vrf => format!("vrfn{i}"),
            Binding::DeviceOnly(_) => VRF.to_string(),
        };
        Self::ip_in(
            &self.router_ns,
            &[
                "link", "add", &r_link, "type", "veth", "peer", "name", &n_link, "netns", &node_ns,
            ],
        )?;
        self.links.push((node_ns.clone(), r_link.clone()));
        let r_cidr = format!("{}/30", vrf_router_addr(i));
        let n_cidr = format!("{}/30", vrf_node_addr(i));
        let via = vrf_router_addr(i).to_string();
        let dst = format!("{VRF_ROUTER}/32");
        Self::ip_in(&self.router_ns, &["addr", "add", &r_cidr, "dev", &r_link])?;
        Self::ip_in(&self.router_ns, &["link", "set", &r_link, "up"])?;
        if binding == Binding::Vrf {
            Self::ip_in(&node_ns, &["link", "set", VRF, "up"])?;
            Self::ip_in(&node_ns, &["link", "set", &n_link, "master", VRF])?;
        }
        Self::ip_in(&node_ns, &["addr", "add", &n_cidr, "dev", &n_link])?;
        Self::ip_in(&node_ns, &["link", "set", &n_link, "up"])?;
        match binding {
            Binding::Vrf => {
                Self::ip_in(&node_ns, &["route", "add", "vrf", VRF, &dst, "via", &via])?;
            }
            // No route in the default table: a socket bound to the link reaches the router's
            // address on it (the kernel treats a destination it has no route for through the
            // bound device as on-link), an unbound one follows the default table to the LAN.
            Binding::DeviceOnly(_) => {}
        }
        Ok(binding)
    }
}

impl Drop for VrfLinks {
    fn drop(&mut self) {
        for (node_ns, r_link) in &self.links {
            // Deleting one end of a veth deletes both.
            let _ = Self::ip_in(&self.router_ns, &["link", "del", r_link]);
            let _ = Self::ip_in(node_ns, &["link", "del", VRF]);
        }
        if self.router_address {
            let cidr = format!("{VRF_ROUTER}/32");
            let _ = Self::ip_in(&self.router_ns, &["addr", "del", &cidr, "dev", "lo"]);
        }
    }
}

/// What the node's `red` is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Binding {
    /// A VRF device enslaving the node's link.
    Vrf,
    /// The node's link itself (the kernel cannot make VRF devices: the error).
    DeviceOnly(String),
}

/// The router's peers for the VRF sessions of nodes `with_vrf`.
fn vrf_router_peers(with_vrf: &[usize]) -> Vec<BgpPeer> {
    with_vrf
        .iter()
        .map(|&i| {
            BgpPeer::new(
                format!("vrfnode{i}"),
                IpAddr::V4(vrf_node_addr(i)),
                NODE_ASN,
            )
            .passive(true)
        })
        .collect()
}

/// A BGPPeer in VRF `red` (every node) and an advertisement of the example's pool to it.
fn vrf_peer_yaml() -> String {
    format!(
        "apiVersion: ferrolb.io/v1beta1\nkind: BGPPeer\nmetadata:\n  name: router-red\n  \
         namespace: ferrolb-system\nspec:\n  myASN: {NODE_ASN}\n  peerASN: {ROUTER_ASN}\n  \
         peerAddress: {VRF_ROUTER}\n  vrf: {VRF}\n  holdTime: 9s\n---\n\
         apiVersion: ferrolb.io/v1beta1\nkind: BGPAdvertisement\nmetadata:\n  name: vrf-routes\n  \
         namespace: ferrolb-system\nspec:\n  ipAddressPools: [bgp-pool]\n  peers: [router-red]\n"
    )
}

const VRF_PEER: &str = "ferrolb-system/router-red";

/// The VRF session of speaker `i` in its status API.
fn speaker_vrf_peer(c: &Cluster, i: usize) -> Option<serde_json::Value> {
    let st = c.get_json(c.speaker_http(i), "/api/v1/status").ok()?;
    st["bgpPeers"]
        .as_array()?
        .iter()
        .find(|p| p["name"].as_str() == Some(VRF_PEER))
        .cloned()
}

/// Sessions in VRF `red` from node1 and node2 (which have it) come up with their VRF
/// addresses as next hops; node3 lacks the VRF: its session stays down, reported in its
/// BGPSessionState and an event naming the VRF and node3, and its default-VRF session stays
/// up.
fn vrf_sessions(router: RouterKind) {
    let mut c = Cluster::start(ClusterOptions {
        bird: false,
        ..bgp_options(router)
    })
    .expect("cluster");
    let mut links = VrfLinks::new(&c);
    links.add_router_address();
    let with_vrf = [1, 2];
    for i in with_vrf {
        let binding = links.add_node(&c, i).expect("VRF link");
        if let Binding::DeviceOnly(e) = binding {
            let why = format!(
                "the kernel cannot create a VRF device ({e}); node{i}'s session is bound to a \
                 plain link named {VRF} instead"
            );
            // Not a missing install step but the machine's kernel (CI's too): no CI can
            // build one, so the binding is proven on the plain link and the gap is printed.
            eprintln!("SKIPPED (part) {why}");
        }
    }
    // The lab's router peers (default VRF) plus one per VRF link.
    let id = c.lab.router().v4();
    let ns = c.lab.router().ns();
    match router {
        RouterKind::Bird => {
            let mut cfg = c.bird_config();
            for p in vrf_router_peers(&with_vrf) {
                cfg = cfg.peer(p);
            }
            c.bird = Some(Bird::start(ns, &cfg).expect("start BIRD"));
        }
        RouterKind::Frr => {
            let mut cfg = c.frr_config();
            for p in vrf_router_peers(&with_vrf) {
                cfg = cfg.peer(p);
            }
            c.frr = Some(Frr::start(ns, &cfg).expect("start FRR"));
        }
        RouterKind::Gobgp => panic!("the VRF test runs with BIRD and FRR (router {id})"),
    }
    c.apply_yaml(BGP_EXAMPLE).expect("apply the BGP example");
    c.apply_yaml(&vrf_peer_yaml()).expect("apply the VRF peer");

    // Other peers are unaffected: every node's default-VRF session is up.
    wait_established(&c, &ALL, Duration::from_secs(30));

    // node3 has no VRF red: its session stays down and says why, by status and event.
    let without: Vec<usize> = ALL
        .iter()
        .copied()
        .filter(|i| !with_vrf.contains(i))
        .collect();
    for &i in &without {
        let node = c.lab.node(i).name().to_string();
        let st = eventually(
            &format!("{node} reports VRF {VRF} missing"),
            Duration::from_secs(20),
            || {
                let s = session_state(&c, "router-red", &node)?;
                (!s.message.is_empty()).then_some(s)
            },
        );
        println!("BGPSessionState of router-red on {node}: {st:?}");
        assert_eq!(st.vrf, VRF);
        assert_ne!(st.bgp_status, "Established");
        assert!(
            st.message
                .contains(&format!("VRF {VRF} does not exist on node {node}")),
            "{st:?}"
        );
        let p = speaker_vrf_peer(&c, i).expect("VRF peer in the speaker status");
        assert_eq!(p["vrfMissing"].as_bool(), Some(true), "{p}");
        let note = eventually(
            &format!("VRFNotFound event for {node}"),
            Duration::from_secs(20),
            || {
                event_notes(&c, ferrolb_api::events::VRF_NOT_FOUND)
                    .into_iter()
                    .find(|n| n.contains(&format!("node {node}")))
            },
        );
        println!("event: {note}");
        assert!(note.contains(&format!("VRF {VRF}")), "{note}");
        assert!(speaker_established(&c, i), "node{i}'s default-VRF session");
    }

    // node1 and node2 have it: sessions in the VRF, from their VRF addresses.
    for &i in &with_vrf {
        let name = format!("vrfnode{i}");
        let addr = IpAddr::V4(vrf_node_addr(i));
        eventually(
            &format!("VRF session of node{i} Established at both ends"),
            Duration::from_secs(30),
            || {
                (router_up(&c, &name, addr)
                    && speaker_vrf_peer(&c, i)?["state"].as_str() == Some("Established"))
                .then_some(())
            },
        );
        println!(
            "router's VRF session with node{i}:\n{}",
            router_session_shown(&c, &name, addr)
        );
        // The speaker writes its BGPSessionState after the session came up, not with it.
        let node = c.lab.node(i).name().to_string();
        let st = eventually(
            &format!("node{i}'s BGPSessionState of router-red shows the session Established"),
            Duration::from_secs(20),
            || session_state(&c, "router-red", &node).filter(|s| s.bgp_status == "Established"),
        );
        assert_eq!((st.vrf.as_str(), st.message.as_str()), (VRF, ""));
    }
    {
        // The same prefixes as the default-VRF peer, with the VRF addresses as next hops.
        let ip = service(&c, "web", false);
        let want: Vec<String> = with_vrf
            .iter()
            .map(|&i| vrf_node_addr(i).to_string())
            .collect();
        let text = eventually(
            "the Service's routes over the VRF sessions",
            Duration::from_secs(15),
            || {
                let text = if c.bird.is_some() {
                    bird_route(&c, ip)
                } else {
                    c.frr
                        .as_ref()?
                        .vtysh(&format!("show ip bgp {}", prefix(ip)))
                        .ok()?
                };
                want.iter()
                    .all(|a| text.contains(a.as_str()))
                    .then_some(text)
            },
        );
        println!("{text}");
        wait_hops(
            "default-VRF next hops",
            Duration::from_secs(10),
            &ALL,
            || router_next_hops(&c, ip),
        );
    }
    drop(links);
}

#[test]
fn vrf_sessions_bird() {
    with_router(
        "vrf_sessions_bird",
        RouterKind::Bird,
        router_tools(RouterKind::Bird),
        vrf_sessions,
    );
}

#[test]
fn vrf_sessions_frr() {
    with_router(
        "vrf_sessions_frr",
        RouterKind::Frr,
        router_tools(RouterKind::Frr),
        vrf_sessions,
    );
}
