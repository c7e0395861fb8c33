//! The address plan and the [`Lab`] builder (see the module docs of
//! [the crate docs](crate) for the picture and the table).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};
use rand::Rng;

pub use crate::addr::{LAB_V4, LAB_V6, ensure_lab_addr, is_lab_addr};
use crate::netns;
use crate::ns::Netns;
use crate::{LabError, Result, cleanup, log_dir_for, registry, root};

/// The LAN (bridge `br-lan`).
pub const LAN_V4: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 200, 0, 0), 24);
pub const LAN_V6: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 0), 64);
/// The upstream network behind the router (bridge `br-up`).
pub const UPSTREAM_V4: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 200, 1, 0), 24);
pub const UPSTREAM_V6: Ipv6Net =
    Ipv6Net::new_assert(Ipv6Addr::new(0xfd00, 0x200, 0, 1, 0, 0, 0, 0), 64);
/// The optional management network (bridge `br-mgmt`, [`LabBuilder::management_network`]).
pub const MGMT_V4: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 200, 2, 0), 24);
pub const MGMT_V6: Ipv6Net =
    Ipv6Net::new_assert(Ipv6Addr::new(0xfd00, 0x200, 0, 2, 0, 0, 0, 0), 64);
/// Reserved for service IPs (IPAddressPools in tests); never assigned to a host.
pub const SERVICE_V4: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 200, 10, 0), 24);
pub const SERVICE_V6: Ipv6Net =
    Ipv6Net::new_assert(Ipv6Addr::new(0xfd00, 0x200, 0, 0x10, 0, 0, 0, 0), 64);

/// Conventional AS numbers for BGP tests.
pub const ROUTER_ASN: u32 = 64500;
pub const NODE_ASN: u32 = 64512;

/// Host numbers on the LAN (last IPv4 octet; same digits in the IPv6 host part).
pub const ROUTER_HOST: u8 = 1;
pub const CONTROL_PLANE_HOST: u8 = 2;
pub const LAN_CLIENT_HOST: u8 = 5;
/// Node *i* is host `NODE_HOST_BASE + i`.
pub const NODE_HOST_BASE: u8 = 10;
pub const MAX_NODES: u8 = 99;
/// Host numbers on the upstream network.
pub const UPSTREAM_ROUTER_HOST: u8 = 1;
pub const UPSTREAM_CLIENT_HOST: u8 = 2;

/// Bridges in the switch namespace.
pub const LAN_BRIDGE: &str = "br-lan";
pub const UPSTREAM_BRIDGE: &str = "br-up";
pub const MGMT_BRIDGE: &str = "br-mgmt";
/// Name of the management network's interface in the control plane and node namespaces.
pub const MGMT_IFACE: &str = "mgmt0";

/// Longest prefix such that `<prefix>-uclient` still fits in 15 characters.
pub const MAX_PREFIX_LEN: usize = 7;

/// IPv4 address `host` in `net` (a /24 of the plan).
pub fn v4_host(net: Ipv4Net, host: u8) -> Ipv4Addr {
    let o = net.network().octets();
    Ipv4Addr::new(o[0], o[1], o[2], host)
}

/// IPv6 address for `host` in `net` (a /64): the host's decimal digits read as
/// hex, so host 11 is `…::11`, matching the IPv4 address `….11`.
pub fn v6_host(net: Ipv6Net, host: u8) -> Ipv6Addr {
    let last = u16::from_str_radix(&host.to_string(), 16).unwrap_or(u16::from(host));
    let mut s = net.network().segments();
    s[7] = last;
    Ipv6Addr::from(s)
}

/// The L2 segments of the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Network {
    Lan,
    Upstream,
    /// Only with [`LabBuilder::management_network`]: the control plane and the nodes.
    Management,
}

impl Network {
    pub fn v4(self) -> Ipv4Net {
        match self {
            Network::Lan => LAN_V4,
            Network::Upstream => UPSTREAM_V4,
            Network::Management => MGMT_V4,
        }
    }

    pub fn v6(self) -> Ipv6Net {
        match self {
            Network::Lan => LAN_V6,
            Network::Upstream => UPSTREAM_V6,
            Network::Management => MGMT_V6,
        }
    }

    pub fn bridge(self) -> &'static str {
        match self {
            Network::Lan => LAN_BRIDGE,
            Network::Upstream => UPSTREAM_BRIDGE,
            Network::Management => MGMT_BRIDGE,
        }
    }
}

/// What a namespace is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Holds the bridges; no addresses.
    Switch,
    ControlPlane,
    /// 1-based node index.
    Node(u8),
    Router,
    LanClient,
    UpstreamClient,
}

impl Role {
    /// Namespace suffix (`<prefix>-<name>`).
    pub fn name(self) -> String {
        match self {
            Role::Switch => "lan".into(),
            Role::ControlPlane => "cp".into(),
            Role::Node(i) => format!("node{i}"),
            Role::Router => "router".into(),
            Role::LanClient => "client".into(),
            Role::UpstreamClient => "uclient".into(),
        }
    }
}

/// One interface of a host on one network.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub network: Network,
    /// Interface name inside the host namespace (`eth0`, `eth1`).
    pub iface: String,
    /// The veth peer's name in the switch namespace (a bridge port).
    pub switch_port: String,
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
}

impl Attachment {
    pub fn v4_net(&self) -> Ipv4Net {
        self.network.v4()
    }

    pub fn v6_net(&self) -> Ipv6Net {
        self.network.v6()
    }
}

/// A namespace with addresses: control plane, node, router or client.
#[derive(Debug, Clone)]
pub struct Host {
    role: Role,
    ns: Netns,
    attachments: Vec<Attachment>,
}

impl Host {
    pub fn role(&self) -> Role {
        self.role
    }

    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// Full namespace name.
    pub fn name(&self) -> &str {
        self.ns.name()
    }

    pub fn attachments(&self) -> &[Attachment] {
        &self.attachments
    }

    /// The attachment on `network`, if any.
    pub fn on(&self, network: Network) -> Option<&Attachment> {
        self.attachments.iter().find(|a| a.network == network)
    }

    fn primary(&self) -> &Attachment {
        // Every host is built with at least one attachment (see LabBuilder::build).
        &self.attachments[0]
    }

    /// Primary (first) interface name: the management network's ([`MGMT_IFACE`]) on the
    /// control plane and the nodes of a lab with one, else the host's only or LAN interface.
    pub fn iface(&self) -> &str {
        &self.primary().iface
    }

    /// Primary IPv4 address.
    pub fn v4(&self) -> Ipv4Addr {
        self.primary().v4
    }

    /// Primary IPv6 address.
    pub fn v6(&self) -> Ipv6Addr {
        self.primary().v6
    }

    /// All addresses of the host.
    pub fn addrs(&self) -> Vec<IpAddr> {
        self.attachments
            .iter()
            .flat_map(|a| [IpAddr::V4(a.v4), IpAddr::V6(a.v6)])
            .collect()
    }

    /// MAC address of `iface` (`ip -br link`).
    pub fn mac(&self, iface: &str) -> Result<String> {
        self.ns.mac(iface)
    }
}

/// Builder of a [`Lab`]. Defaults: 3 nodes, a LAN client, an upstream client,
/// random prefix, SIGINT/SIGTERM handler installed.
#[derive(Debug, Clone)]
pub struct LabBuilder {
    nodes: u8,
    lan_client: bool,
    upstream_client: bool,
    prefix: Option<String>,
    signal_handler: bool,
    router_service_onlink: bool,
    management_network: bool,
}

impl Default for LabBuilder {
    fn default() -> Self {
        LabBuilder {
            nodes: 3,
            lan_client: true,
            upstream_client: true,
            prefix: None,
            signal_handler: true,
            router_service_onlink: false,
            management_network: false,
        }
    }
}

impl LabBuilder {
    /// Number of node namespaces (0..=99).
    pub fn nodes(mut self, n: u8) -> Self {
        self.nodes = n;
        self
    }

    /// A client on the LAN (L2 tests).
    pub fn lan_client(mut self, yes: bool) -> Self {
        self.lan_client = yes;
        self
    }

    /// A client behind the router on the upstream network (BGP tests).
    pub fn upstream_client(mut self, yes: bool) -> Self {
        self.upstream_client = yes;
        self
    }

    /// Fixed prefix (≤ 7 chars, `[a-z0-9]`) instead of a random one. Leftover
    /// namespaces `<prefix>-*` from an earlier crashed run are removed first.
    pub fn prefix(mut self, p: impl Into<String>) -> Self {
        self.prefix = Some(p.into());
        self
    }

    /// Install the SIGINT/SIGTERM teardown handler (default true); see
    /// [`cleanup::install_signal_handler`].
    pub fn signal_handler(mut self, yes: bool) -> Self {
        self.signal_handler = yes;
        self
    }

    /// Give the router the service range on-link on its LAN interface, so it
    /// reaches L2-announced service IPs by ARP/NDP (default false: the router
    /// then only knows service IPs it learns by BGP).
    pub fn router_service_onlink(mut self, yes: bool) -> Self {
        self.router_service_onlink = yes;
        self
    }

    /// A third network, `br-mgmt` (10.200.2.0/24, fd00:200:0:2::/64), attaching the control
    /// plane and every node on [`MGMT_IFACE`] (default false). It becomes their primary
    /// attachment, so [`Host::v4`] / [`Host::v6`] — the API server's address, the Nodes'
    /// InternalIP and with it the speakers' membership — are on it, while the LAN (`eth0`,
    /// where the LAN client and the router sit) carries only what is announced there.
    pub fn management_network(mut self, yes: bool) -> Self {
        self.management_network = yes;
        self
    }

    /// Creates everything. On error, whatever was created is torn down again.
    pub fn build(self) -> Result<Lab> {
        root::require_root()?;
        root::require_tool("ip")?;
        if self.nodes > MAX_NODES {
            return Err(LabError::Config(format!(
                "at most {MAX_NODES} nodes, got {}",
                self.nodes
            )));
        }
        match cleanup::reap_stale() {
            Ok(c) if !c.is_empty() => tracing::info!(runs = ?c, "cleaned up stale lab runs"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cleaning stale lab runs failed"),
        }
        if self.signal_handler {
            cleanup::install_signal_handler()?;
        }
        let prefix = match &self.prefix {
            Some(p) => {
                validate_prefix(p)?;
                if cleanup::is_registered(p) {
                    return Err(LabError::InvalidName {
                        name: p.clone(),
                        reason: "a lab with this prefix is running in this process".into(),
                    });
                }
                let removed = cleanup::remove_namespaces_with_prefix(p)?;
                if !removed.is_empty() {
                    tracing::info!(?removed, "removed leftover namespaces of prefix {p}");
                }
                p.clone()
            }
            None => random_prefix()?,
        };
        let log_dir = registry::register_run(&prefix)?;
        let switch = Netns::new(&prefix, &Role::Switch.name(), &log_dir);
        let mut lab = Lab {
            prefix,
            log_dir,
            switch,
            control_plane: None,
            router: None,
            nodes: Vec::new(),
            lan_client: None,
            upstream_client: None,
        };
        // From here on, `lab` going out of scope on `?` tears down what exists.
        self.populate(&mut lab)?;
        tracing::info!(prefix = %lab.prefix, nodes = self.nodes, "lab ready");
        Ok(lab)
    }

    fn populate(&self, lab: &mut Lab) -> Result<()> {
        let prefix = lab.prefix.clone();
        let host = |role: Role, atts: Vec<(Network, u8)>| -> Host {
            let ns = Netns::new(&prefix, &role.name(), &lab.log_dir);
            // The data networks are eth0, eth1, … in order; the management network is mgmt0,
            // so a host's LAN interface has the same name with or without it.
            let mut eth = 0;
            let attachments = atts
                .into_iter()
                .map(|(network, n)| Attachment {
                    network,
                    iface: if network == Network::Management {
                        MGMT_IFACE.to_string()
                    } else {
                        eth += 1;
                        format!("eth{}", eth - 1)
                    },
                    switch_port: match network {
                        Network::Lan => role.name(),
                        Network::Upstream => format!("{}-up", role.name()),
                        Network::Management => format!("{}-m", role.name()),
                    },
                    v4: v4_host(network.v4(), n),
                    v6: v6_host(network.v6(), n),
                })
                .collect();
            Host {
                role,
                ns,
                attachments,
            }
        };
        let router = host(
            Role::Router,
            vec![
                (Network::Lan, ROUTER_HOST),
                (Network::Upstream, UPSTREAM_ROUTER_HOST),
            ],
        );
        // With a management network it comes first: the primary address is the one the
        // cluster uses (API server, InternalIP, membership).
        let with_mgmt = |lan: Vec<(Network, u8)>, n: u8| {
            if self.management_network {
                [vec![(Network::Management, n)], lan].concat()
            } else {
                lan
            }
        };
        let cp = host(
            Role::ControlPlane,
            with_mgmt(vec![(Network::Lan, CONTROL_PLANE_HOST)], CONTROL_PLANE_HOST),
        );
        let nodes: Vec<Host> = (1..=self.nodes)
            .map(|i| {
                let n = NODE_HOST_BASE + i;
                host(Role::Node(i), with_mgmt(vec![(Network::Lan, n)], n))
            })
            .collect();
        let client = self
            .lan_client
            .then(|| host(Role::LanClient, vec![(Network::Lan, LAN_CLIENT_HOST)]));
        let uclient = self.upstream_client.then(|| {
            host(
                Role::UpstreamClient,
                vec![(Network::Upstream, UPSTREAM_CLIENT_HOST)],
            )
        });

        // The switch: bridges only. IPv6 off so bridges/ports send no DAD, RS or MLD noise.
        create_ns(&lab.switch)?;
        lab.switch.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
        lab.switch
            .sysctl("net.ipv6.conf.default.disable_ipv6", "1")?;
        let mut networks = vec![Network::Lan, Network::Upstream];
        if self.management_network {
            networks.push(Network::Management);
        }
        for net in networks {
            let br = net.bridge();
            // STP off and no multicast snooping: ports forward at once and NDP
            // multicast is flooded even though nobody runs an MLD querier.
            lab.switch.ip([
                "link",
                "add",
                br,
                "type",
                "bridge",
                "stp_state",
                "0",
                "forward_delay",
                "0",
                "mcast_snooping",
                "0",
            ])?;
            lab.switch.ip(["link", "set", br, "up"])?;
        }
        // br_netfilter (if loaded on the host) would send bridged frames through
        // iptables; the sysctl exists only when the module is loaded.
        let _ = lab.switch.sysctl("net.bridge.bridge-nf-call-iptables", "0");
        let _ = lab
            .switch
            .sysctl("net.bridge.bridge-nf-call-ip6tables", "0");

        lab.router = Some(router);
        lab.control_plane = Some(cp);
        lab.nodes = nodes;
        lab.lan_client = client;
        lab.upstream_client = uclient;

        let hosts: Vec<Host> = lab.hosts().cloned().collect();
        for h in &hosts {
            create_ns(h.ns())?;
            // Before any interface exists, so they inherit it from `default`.
            h.ns().sysctl("net.ipv6.conf.all.accept_dad", "0")?;
            h.ns().sysctl("net.ipv6.conf.default.accept_dad", "0")?;
            if h.role == Role::Router {
                h.ns().sysctl("net.ipv4.ip_forward", "1")?;
                h.ns().sysctl("net.ipv6.conf.all.forwarding", "1")?;
            }
            for a in &h.attachments {
                attach(&lab.switch, h, a)?;
            }
        }
        for h in &hosts {
            add_routes(h, self.router_service_onlink)?;
        }
        for h in &hosts {
            for a in &h.attachments {
                wait_carrier(h, &a.iface)?;
            }
        }
        Ok(())
    }
}

fn validate_prefix(p: &str) -> Result<()> {
    let ok = !p.is_empty()
        && p.len() <= MAX_PREFIX_LEN
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(LabError::InvalidName {
            name: p.to_string(),
            reason: format!("prefix must be 1..={MAX_PREFIX_LEN} chars of a-z0-9"),
        })
    }
}

/// `flb` + 4 random chars, not used by any namespace or log dir yet.
pub(crate) fn random_prefix() -> Result<String> {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let existing = netns::list()?;
    let mut rng = rand::rng();
    for _ in 0..100 {
        let tail: String = (0..4)
            .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
            .collect();
        let p = format!("flb{tail}");
        let dash = format!("{p}-");
        if !existing.iter().any(|n| n.starts_with(&dash)) && !log_dir_for(&p).exists() {
            return Ok(p);
        }
    }
    Err(LabError::Config(
        "could not find an unused lab prefix".into(),
    ))
}

pub(crate) fn create_ns(ns: &Netns) -> Result<()> {
    // Registered first: if creation half-succeeds, teardown still finds it.
    registry::register_ns(ns.prefix(), ns.name())?;
    netns::add(ns.name())?;
    ns.ip(["link", "set", "lo", "up"])?;
    Ok(())
}

/// veth from the switch straight into the host namespace: nothing touches the
/// root namespace, and interface names only need to be unique per namespace.
fn attach(switch: &Netns, h: &Host, a: &Attachment) -> Result<()> {
    let br = a.network.bridge();
    switch.ip([
        "link",
        "add",
        &a.switch_port,
        "type",
        "veth",
        "peer",
        "name",
        &a.iface,
        "netns",
        h.name(),
    ])?;
    switch.ip(["link", "set", &a.switch_port, "master", br, "up"])?;
    let ns = h.ns();
    ns.sysctl(&format!("net.ipv6.conf.{}.accept_dad", a.iface), "0")?;
    ns.ip([
        "addr",
        "add",
        &format!("{}/{}", a.v4, a.v4_net().prefix_len()),
        "dev",
        &a.iface,
    ])?;
    ns.ip([
        "-6",
        "addr",
        "add",
        &format!("{}/{}", a.v6, a.v6_net().prefix_len()),
        "dev",
        &a.iface,
        "nodad",
    ])?;
    ns.ip(["link", "set", &a.iface, "up"])?;
    Ok(())
}

fn add_routes(h: &Host, router_service_onlink: bool) -> Result<()> {
    let ns = h.ns();
    let via = |net: Network| {
        (
            v4_host(net.v4(), ROUTER_HOST).to_string(),
            v6_host(net.v6(), ROUTER_HOST).to_string(),
        )
    };
    let lab_routes = |gw: (String, String)| -> Result<()> {
        ns.ip(["-4", "route", "add", &LAB_V4.to_string(), "via", &gw.0])?;
        ns.ip(["-6", "route", "add", &LAB_V6.to_string(), "via", &gw.1])?;
        Ok(())
    };
    let onlink = |iface: &str| -> Result<()> {
        ns.ip(["-4", "route", "add", &SERVICE_V4.to_string(), "dev", iface])?;
        ns.ip(["-6", "route", "add", &SERVICE_V6.to_string(), "dev", iface])?;
        Ok(())
    };
    match h.role {
        Role::Router => {
            if router_service_onlink {
                onlink(h.iface())?;
            }
        }
        Role::UpstreamClient => lab_routes(via(Network::Upstream))?,
        Role::LanClient => {
            lab_routes(via(Network::Lan))?;
            onlink(h.iface())?;
        }
        Role::ControlPlane | Role::Node(_) => lab_routes(via(Network::Lan))?,
        Role::Switch => {}
    }
    Ok(())
}

fn wait_carrier(h: &Host, iface: &str) -> Result<()> {
    let ns = h.ns().clone();
    let what = format!("{iface} in {} to come up", h.name());
    // /sys is per mount namespace, not per thread (so in_netns cannot read the
    // namespace's /sys/class/net): ask `ip` instead.
    crate::wait_until(&what, Duration::from_secs(5), || {
        ns.ip(["-br", "link", "show", "dev", iface])
            .map(|o| o.split_whitespace().nth(1) == Some("UP"))
            .unwrap_or(false)
    })
}

/// A running lab. Dropping it stops every process started in it and deletes
/// every namespace (logs are kept if the thread is panicking or
/// `FERROLB_LAB_KEEP_LOGS` is set).
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    log_dir: PathBuf,
    switch: Netns,
    control_plane: Option<Host>,
    router: Option<Host>,
    nodes: Vec<Host>,
    lan_client: Option<Host>,
    upstream_client: Option<Host>,
}

impl Lab {
    pub fn builder() -> LabBuilder {
        LabBuilder::default()
    }

    /// The run prefix, e.g. `flbk3x9`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `/tmp/ferrolb-lab-<prefix>`: logs, daemon configs and sockets.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// The switch namespace holding the bridges.
    pub fn switch(&self) -> &Netns {
        &self.switch
    }

    /// The control-plane host (API server goes here).
    ///
    /// # Panics
    /// Only if called on a lab whose build failed half-way, which `build` never returns.
    pub fn control_plane(&self) -> &Host {
        self.control_plane
            .as_ref()
            .unwrap_or_else(|| panic!("lab {} has no control plane", self.prefix))
    }

    /// The router (LAN `eth0`, upstream `eth1`).
    pub fn router(&self) -> &Host {
        self.router
            .as_ref()
            .unwrap_or_else(|| panic!("lab {} has no router", self.prefix))
    }

    pub fn nodes(&self) -> &[Host] {
        &self.nodes
    }

    /// Node `i` (1-based, like its name).
    ///
    /// # Panics
    /// If the lab has fewer than `i` nodes.
    pub fn node(&self, i: usize) -> &Host {
        i.checked_sub(1)
            .and_then(|k| self.nodes.get(k))
            .unwrap_or_else(|| {
                panic!(
                    "lab {} has {} nodes, no node{i}",
                    self.prefix,
                    self.nodes.len()
                )
            })
    }

    pub fn try_lan_client(&self) -> Option<&Host> {
        self.lan_client.as_ref()
    }

    /// # Panics
    /// If built with `lan_client(false)`.
    pub fn lan_client(&self) -> &Host {
        self.try_lan_client()
            .unwrap_or_else(|| panic!("lab {} was built without a LAN client", self.prefix))
    }

    pub fn try_upstream_client(&self) -> Option<&Host> {
        self.upstream_client.as_ref()
    }

    /// # Panics
    /// If built with `upstream_client(false)`.
    pub fn upstream_client(&self) -> &Host {
        self.try_upstream_client()
            .unwrap_or_else(|| panic!("lab {} was built without an upstream client", self.prefix))
    }

    /// Every host (not the switch): router, control plane, nodes, clients.
    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        self.router
            .iter()
            .chain(self.control_plane.iter())
            .chain(self.nodes.iter())
            .chain(self.lan_client.iter())
            .chain(self.upstream_client.iter())
    }

    /// Every namespace name of the lab, switch included.
    pub fn namespaces(&self) -> Vec<String> {
        std::iter::once(self.switch.name().to_string())
            .chain(self.hosts().map(|h| h.name().to_string()))
            .collect()
    }

    /// PIDs of processes started in this lab that are still running.
    pub fn live_pids(&self) -> Vec<i32> {
        cleanup::live_pids(&self.prefix)
    }

    /// Service IP ranges reserved for pools.
    pub fn service_v4(&self) -> Ipv4Net {
        SERVICE_V4
    }

    pub fn service_v6(&self) -> Ipv6Net {
        SERVICE_V6
    }

    /// Tears down now and reports errors (Drop can only log them).
    pub fn teardown(self) -> Result<()> {
        let r = cleanup::teardown_run(&self.prefix, keep_logs());
        // Drop will find nothing registered any more.
        drop(self);
        r
    }
}

pub(crate) fn keep_logs() -> bool {
    std::thread::panicking() || std::env::var_os("FERROLB_LAB_KEEP_LOGS").is_some()
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = cleanup::teardown_run(&self.prefix, keep_logs()) {
            tracing::error!(prefix = %self.prefix, error = %e, "lab teardown failed");
            eprintln!("ferrolb-lab: teardown of {} failed: {e}", self.prefix);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_plan() {
        assert_eq!(v4_host(LAN_V4, 11), Ipv4Addr::new(10, 200, 0, 11));
        assert_eq!(
            v6_host(LAN_V6, 11),
            "fd00:200::11".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            v6_host(UPSTREAM_V6, 2),
            "fd00:200:0:1::2".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(SERVICE_V6.to_string(), "fd00:200:0:10::/64");
        assert_eq!(UPSTREAM_V6.to_string(), "fd00:200:0:1::/64");
        for net in [LAN_V4, UPSTREAM_V4, SERVICE_V4] {
            assert!(LAB_V4.contains(&net));
        }
        for net in [LAN_V6, UPSTREAM_V6, SERVICE_V6] {
            assert!(LAB_V6.contains(&net));
        }
    }

    #[test]
    fn lab_addr_guard() {
        assert!(is_lab_addr("10.200.3.4".parse().unwrap()));
        assert!(is_lab_addr("fd00:200:0:ff::1".parse().unwrap()));
        // The third group is inside the /48: fd00:200:1:: is *outside* the lab.
        assert!(!is_lab_addr("fd00:200:1::1".parse().unwrap()));
        assert!(is_lab_addr("127.0.0.1".parse().unwrap()));
        assert!(!is_lab_addr("10.201.0.1".parse().unwrap()));
        assert!(!is_lab_addr("8.8.8.8".parse().unwrap()));
        assert!(!is_lab_addr("fd00:201::1".parse().unwrap()));
    }

    #[test]
    fn names_fit() {
        let longest = format!(
            "{}-{}",
            "a".repeat(MAX_PREFIX_LEN),
            Role::UpstreamClient.name()
        );
        assert!(longest.len() <= netns::IFNAME_MAX);
        assert!(format!("flbxxxx-{}", Role::Node(MAX_NODES).name()).len() <= 15);
        assert!(validate_prefix("flb0a1z").is_ok());
        assert!(validate_prefix("FLB").is_err());
        assert!(validate_prefix("toolongx").is_err());
    }
}
