//! The node's network interfaces and their addresses, from rtnetlink, and which of them layer 2
//! announcements use.
//!
//! [`InterfaceWatcher`] subscribes to the kernel's link and address notifications
//! (`RTNLGRP_LINK`, `RTNLGRP_IPV4_IFADDR`, `RTNLGRP_IPV6_IFADDR`) *before* it dumps the current
//! state, and re-dumps the whole table after every burst of notifications (and at once on a
//! link notification, so a lost carrier reaches the layer 2 election without the debounce).
//! Re-dumping instead of patching the table from individual messages is the level-triggered
//! choice: a lost or reordered notification (netlink multicast can drop under load, `ENOBUFS`)
//! can never leave a stale entry, and a table of a few dozen links costs microseconds to read.
//!
//! Interface choice ([`choose_interfaces`]) is a pure function: an `L2Advertisement` that names
//! interfaces gets exactly those that exist and can announce; otherwise every interface that
//! can announce except the virtual ones that never carry external traffic, matched by glob
//! patterns ([`DEFAULT_EXCLUDE_PATTERNS`], configurable).
//!
//! An interface can announce ([`Link::announceable`]) when it is up, not loopback, Ethernet
//! with a MAC, has ARP on (no `IFF_NOARP`) and is nobody's member (no `IFLA_MASTER`): frames
//! of a bond, team or bridge member belong to its master, so the master answers, once, with its
//! own MAC; answering on the members too would send one reply per member, from MACs the
//! network may not expect (MetalLB internal/layer2/announcer.go updateInterfaces skips
//! interfaces with a `master` and with the NOARP flag).

use ferrolb_speaker_core::layer2::carrier::LinkReport;
use ferrolb_speaker_core::layer2::frames::MacAddr;
use futures::{StreamExt, TryStreamExt};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkInfo, LinkLayerType, LinkMessage};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::{Handle, MulticastGroup};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Interfaces never chosen automatically: container, CNI, tunnel and kube-proxy devices whose
/// traffic never leaves the node on a shared L2 segment. Answering ARP there is useless at best
/// and confusing at worst (a pod on the node could learn the VIP at a veth).
pub const DEFAULT_EXCLUDE_PATTERNS: &[&str] = &[
    "cni*",
    "docker*",
    "veth*",
    "kube-ipvs0",
    "flannel*",
    "cali*",
    "cilium*",
    "vxlan*",
    "tunl*",
    "lxc*",
    "dummy*",
    "nodelocaldns",
];

/// How long the watcher waits after a notification for more before re-dumping: an interface
/// coming up produces a burst (link, IPv4 address, IPv6 link-local, flags) within milliseconds.
const DEBOUNCE: Duration = Duration::from_millis(30);

/// Errors talking to rtnetlink.
#[derive(Debug, thiserror::Error)]
pub enum InterfaceError {
    /// The netlink socket could not be opened or bound.
    #[error("opening the rtnetlink socket: {0}")]
    Socket(#[from] std::io::Error),
    /// A dump request failed.
    #[error("rtnetlink dump: {0}")]
    Netlink(#[from] rtnetlink::Error),
}

/// One link as layer 2 mode needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Hardware address, when the link has a 6-byte one (Ethernet and friends).
    pub mac: Option<MacAddr>,
    /// Administratively up (`IFF_UP`). Carrier is not required: a link that loses carrier and
    /// gets it back must not lose its announcements in between.
    pub up: bool,
    /// Carrier, and the link operationally up (`IFF_LOWER_UP` and `IFF_RUNNING`): the link can
    /// pass frames. `IFF_LOWER_UP` alone turns on as soon as the driver sees carrier, while the
    /// kernel activates the link's queue (until then every frame sent through it is dropped)
    /// only a little later, when it also sets the operational state behind `IFF_RUNNING`; a node
    /// that took its addresses back in between would have its answers dropped. Announcing does
    /// not require carrier, but it is reported to the other speakers, whose election passes over
    /// a node without carrier on the interfaces an advertisement selects (`link_reports`).
    pub carrier: bool,
    /// `IFF_LOOPBACK`.
    pub loopback: bool,
    /// Whether the link layer is Ethernet (`ARPHRD_ETHER`); ARP and NDP as we speak them need it.
    pub ethernet: bool,
    /// The rtnetlink `IFLA_INFO_KIND` (`veth`, `bridge`, `vlan`, …), when the driver reports one.
    pub kind: Option<String>,
    /// `IFF_NOARP`: the link does not do ARP (`ip link set … arp off`).
    pub noarp: bool,
    /// Index of the link's master (`IFLA_MASTER`): the bond, team, bridge or VRF it belongs to.
    pub master: Option<u32>,
    /// Addresses on the link with their prefix lengths, tentative (DAD in progress) ones
    /// excluded.
    pub addresses: Vec<(IpAddr, u8)>,
}

impl Link {
    /// The first IPv6 link-local address, the source of every NDP message we send.
    pub fn link_local_v6(&self) -> Option<Ipv6Addr> {
        self.addresses.iter().find_map(|(ip, _)| match ip {
            IpAddr::V6(v6) if v6.is_unicast_link_local() => Some(*v6),
            _ => None,
        })
    }

    /// Whether ARP / NDP can run on the link at all.
    pub fn usable(&self) -> bool {
        self.up && !self.loopback && self.ethernet && self.mac.is_some()
    }

    /// Whether addresses are announced on the link: usable, ARP not turned off, and not a
    /// member of another link (see the module documentation).
    pub fn announceable(&self) -> bool {
        self.usable() && !self.noarp && self.master.is_none()
    }
}

/// All links of the node by index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceTable {
    /// Links by index.
    pub links: BTreeMap<u32, Link>,
}

impl InterfaceTable {
    /// The link called `name`.
    pub fn by_name(&self, name: &str) -> Option<&Link> {
        self.links.values().find(|l| l.name == name)
    }
}

/// Whether `name` matches the glob `pattern`: `*` is any run of characters, `?` is one
/// character, everything else matches itself. Interface names are at most 15 bytes, so the
/// simple backtracking matcher is plenty.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    // Every pass matches each announced address's candidate interfaces against the patterns:
    // ASCII (every interface name in practice) needs no copy.
    if pattern.is_ascii() && name.is_ascii() {
        return glob_match_units(pattern.as_bytes(), name.as_bytes(), b'*', b'?');
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob_match_units(&p, &n, '*', '?')
}

/// [`glob_match`] over characters (or bytes) with `star_unit` and `any` as its wildcards.
fn glob_match_units<T: Copy + PartialEq>(p: &[T], n: &[T], star_unit: T, any: T) -> bool {
    let (mut pi, mut ni) = (0, 0);
    // Position of the last `*` in the pattern and the name position it matched up to.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(c) if *c == star_unit => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(c) if *c == any || *c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == star_unit)
}

/// Whether automatic choice excludes `name`.
pub fn excluded(name: &str, exclude_patterns: &[String]) -> bool {
    exclude_patterns.iter().any(|p| glob_match(p, name))
}

/// The default exclusion patterns as owned strings, for configuration structs.
pub fn default_exclude_patterns() -> Vec<String> {
    DEFAULT_EXCLUDE_PATTERNS
        .iter()
        .map(|s| (*s).to_string())
        .collect()
}

/// The links an IP is announced on, sorted by name.
///
/// - `requested` non-empty (`L2Advertisement.interfaces`): exactly those names that exist and
///   are announceable; the exclusion patterns do not apply, the user asked for them.
/// - `requested` empty: every announceable link whose name matches no exclusion pattern.
pub fn choose_interfaces<'a>(
    table: &'a InterfaceTable,
    requested: &[String],
    exclude_patterns: &[String],
) -> Vec<&'a Link> {
    let mut out: Vec<&Link> = table
        .links
        .values()
        .filter(|l| l.announceable())
        .filter(|l| {
            if requested.is_empty() {
                !excluded(&l.name, exclude_patterns)
            } else {
                requested.contains(&l.name)
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// What this speaker reports to the others about its interfaces: every announceable link (the
/// exclusion patterns aside, since an advertisement naming an interface ignores them) with its
/// carrier and whether the automatic choice uses it, sorted by name.
pub fn link_reports(table: &InterfaceTable, exclude_patterns: &[String]) -> Vec<LinkReport> {
    let mut out: Vec<LinkReport> = table
        .links
        .values()
        .filter(|l| l.announceable())
        .map(|l| LinkReport {
            name: l.name.clone(),
            carrier: l.carrier,
            automatic: !excluded(&l.name, exclude_patterns),
        })
        .collect();
    out.sort();
    out
}

fn link_from_message(msg: &LinkMessage) -> Link {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        mac: None,
        up: msg.header.flags.contains(LinkFlags::Up),
        carrier: msg.header.flags.contains(LinkFlags::LowerUp)
            && msg.header.flags.contains(LinkFlags::Running),
        loopback: msg.header.flags.contains(LinkFlags::Loopback),
        noarp: msg.header.flags.contains(LinkFlags::Noarp),
        master: None,
        ethernet: msg.header.link_layer_type == LinkLayerType::Ether,
        kind: None,
        addresses: Vec::new(),
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => link.name.clone_from(name),
            LinkAttribute::Controller(index) => link.master = Some(*index),
            LinkAttribute::Address(bytes) => {
                link.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(MacAddr);
            }
            LinkAttribute::LinkInfo(infos) => {
                link.kind = infos.iter().find_map(|i| match i {
                    LinkInfo::Kind(kind) => Some(kind.to_string()),
                    _ => None,
                });
            }
            _ => {}
        }
    }
    link
}

/// The address of an `RTM_NEWADDR`, unless it is still tentative (an address in DAD cannot be
/// used as a source, and a link-local one in DAD would make our NAs go out from `::`).
fn address_from_message(msg: &AddressMessage) -> Option<(u32, IpAddr, u8)> {
    if msg.header.flags.contains(AddressHeaderFlags::Tentative) {
        return None;
    }
    // IFA_LOCAL is the interface's own address on point-to-point links, where IFA_ADDRESS is
    // the peer; elsewhere both are equal, and IPv6 only sends IFA_ADDRESS.
    let mut address = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(ip) => address = Some(*ip),
            AddressAttribute::Address(ip) if address.is_none() => address = Some(*ip),
            _ => {}
        }
    }
    Some((msg.header.index, address?, msg.header.prefix_len))
}

/// Reads every link and address of the current network namespace.
pub async fn dump(handle: &Handle) -> Result<InterfaceTable, InterfaceError> {
    let mut table = InterfaceTable::default();
    let mut links = handle.link().get().execute();
    while let Some(msg) = links.try_next().await? {
        let link = link_from_message(&msg);
        table.links.insert(link.index, link);
    }
    // An unspecified family dumps IPv4 and IPv6 addresses together.
    let mut addresses = handle.address().get().execute();
    while let Some(msg) = addresses.try_next().await? {
        if let Some((index, ip, len)) = address_from_message(&msg)
            && let Some(link) = table.links.get_mut(&index)
        {
            link.addresses.push((ip, len));
        }
    }
    for link in table.links.values_mut() {
        link.addresses.sort();
        link.addresses.dedup();
    }
    Ok(table)
}

/// Whether a notification is about a link (not an address).
fn is_link_change(message: &NetlinkMessage<RouteNetlinkMessage>) -> bool {
    matches!(
        message.payload,
        NetlinkPayload::InnerMessage(
            RouteNetlinkMessage::NewLink(_) | RouteNetlinkMessage::DelLink(_)
        )
    )
}

/// Hands a freshly read table to the subscribers when it differs from the last one.
fn publish(tx: &watch::Sender<InterfaceTable>, dumped: Result<InterfaceTable, InterfaceError>) {
    match dumped {
        Ok(table) => {
            tx.send_if_modified(|old| {
                let changed = *old != table;
                if changed {
                    tracing::debug!(links = table.links.len(), "interfaces changed");
                    *old = table;
                }
                changed
            });
        }
        Err(error) => tracing::warn!(%error, "re-reading interfaces failed"),
    }
}

/// A running subscription to link and address changes. Dropping it stops the background task.
pub struct InterfaceWatcher {
    rx: watch::Receiver<InterfaceTable>,
    task: JoinHandle<()>,
    connection: JoinHandle<()>,
}

impl InterfaceWatcher {
    /// Subscribes, dumps the current table, and keeps it up to date in the background. Must be
    /// called inside a tokio runtime; works in whichever network namespace the calling thread
    /// is in when the netlink socket is opened.
    pub async fn start() -> Result<Self, InterfaceError> {
        let (connection, handle, mut messages) = rtnetlink::new_multicast_connection(&[
            MulticastGroup::Link,
            MulticastGroup::Ipv4Ifaddr,
            MulticastGroup::Ipv6Ifaddr,
        ])?;
        let connection = tokio::spawn(connection);
        let initial = dump(&handle).await?;
        let (tx, rx) = watch::channel(initial);
        let task = tokio::spawn(async move {
            while let Some((first, _)) = messages.next().await {
                // A link change may be a lost carrier, which the layer 2 election waits for
                // (a node without carrier leaves it): read the table at once as well, not
                // only after the burst.
                if is_link_change(&first) {
                    publish(&tx, dump(&handle).await);
                }
                // Drain the rest of the burst, then read the whole truth once.
                let deadline = tokio::time::sleep(DEBOUNCE);
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        _ = &mut deadline => break,
                        more = messages.next() => if more.is_none() { return },
                    }
                }
                publish(&tx, dump(&handle).await);
            }
            tracing::warn!("rtnetlink notification stream ended");
        });
        Ok(InterfaceWatcher {
            rx,
            task,
            connection,
        })
    }

    /// The table, updated on every change.
    pub fn subscribe(&self) -> watch::Receiver<InterfaceTable> {
        self.rx.clone()
    }

    /// The current table.
    pub fn current(&self) -> InterfaceTable {
        self.rx.borrow().clone()
    }
}

impl Drop for InterfaceWatcher {
    fn drop(&mut self) {
        self.task.abort();
        self.connection.abort();
    }
}

/// An up Ethernet link with a MAC derived from its index, for tests of interface choice.
#[cfg(test)]
pub(crate) fn test_link(index: u32, name: &str) -> Link {
    Link {
        index,
        name: name.into(),
        mac: Some(MacAddr([2, 0, 0, 0, 0, index as u8])),
        up: true,
        carrier: true,
        loopback: false,
        ethernet: true,
        kind: None,
        noarp: false,
        master: None,
        addresses: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::test_link as link;
    use super::*;

    fn table(links: Vec<Link>) -> InterfaceTable {
        InterfaceTable {
            links: links.into_iter().map(|l| (l.index, l)).collect(),
        }
    }

    fn names(links: Vec<&Link>) -> Vec<&str> {
        links.iter().map(|l| l.name.as_str()).collect()
    }

    #[test]
    fn glob() {
        assert!(glob_match("veth*", "veth1234"));
        assert!(glob_match("veth*", "veth"));
        assert!(!glob_match("veth*", "eth0"));
        assert!(glob_match("kube-ipvs0", "kube-ipvs0"));
        // `?` is one character, also where a character takes several bytes.
        assert!(glob_match("br-?", "br-é"));
        assert!(glob_match("é*0", "éth0"));
        assert!(!glob_match("br-?", "br-éé"));
        assert!(!glob_match("kube-ipvs0", "kube-ipvs01"));
        assert!(glob_match("*", ""));
        assert!(glob_match("e?h*", "eth0"));
        assert!(glob_match("*0", "eth0"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(glob_match("*a*", "bab"));
        assert!(!glob_match("?", ""));
        assert!(glob_match("**x", "abx"));
    }

    #[test]
    fn automatic_choice_skips_virtual_down_loopback_and_macless() {
        let mut lo = link(1, "lo");
        lo.loopback = true;
        let mut down = link(3, "eth1");
        down.up = false;
        let mut tun = link(4, "wg0");
        tun.mac = None;
        tun.ethernet = false;
        let t = table(vec![
            lo,
            link(2, "eth0"),
            down,
            tun,
            link(5, "veth9a8b"),
            link(6, "cni0"),
            link(7, "kube-ipvs0"),
            link(8, "flannel.1"),
            link(9, "cali1234"),
            link(10, "cilium_host"),
            link(11, "vxlan.calico"),
            link(12, "tunl0"),
            link(13, "lxc_health"),
            link(14, "dummy0"),
            link(15, "nodelocaldns"),
            link(16, "docker0"),
            link(17, "bond0"),
            link(18, "br-lan"),
            link(19, "ens3.100"),
        ]);
        let ex = default_exclude_patterns();
        assert_eq!(
            names(choose_interfaces(&t, &[], &ex)),
            ["bond0", "br-lan", "ens3.100", "eth0"]
        );
        // Custom patterns replace the defaults.
        assert_eq!(
            names(choose_interfaces(&t, &[], &["e*".into(), "b*".into()])).len(),
            12
        );
    }

    #[test]
    fn explicit_interfaces_ignore_exclusions_but_need_a_usable_link() {
        let mut down = link(3, "eth1");
        down.up = false;
        let t = table(vec![link(2, "eth0"), down, link(5, "veth0")]);
        let ex = default_exclude_patterns();
        let want: Vec<String> = vec!["veth0".into(), "eth1".into(), "missing".into()];
        assert_eq!(names(choose_interfaces(&t, &want, &ex)), ["veth0"]);
    }

    /// MetalLB internal/layer2/announcer.go updateInterfaces: an interface with a master
    /// (bond, team, bridge member) or with the NOARP flag gets no responder; its master does.
    #[test]
    fn members_of_a_master_and_noarp_links_are_skipped() {
        let mut bond = link(2, "bond0");
        bond.kind = Some("bond".into());
        let mut slave_a = link(3, "eth0");
        slave_a.master = Some(2);
        let mut slave_b = link(4, "eth1");
        slave_b.master = Some(2);
        let mut bridge = link(5, "br-lan");
        bridge.kind = Some("bridge".into());
        let mut port = link(6, "eth2");
        port.master = Some(5);
        let mut noarp = link(7, "eth3");
        noarp.noarp = true;
        let t = table(vec![
            bond,
            slave_a,
            slave_b,
            bridge,
            port,
            noarp,
            link(8, "eth4"),
        ]);
        let ex = default_exclude_patterns();
        assert_eq!(
            names(choose_interfaces(&t, &[], &ex)),
            ["bond0", "br-lan", "eth4"]
        );
        // Named explicitly they are still not used: a member's frames are its master's, and a
        // NOARP link does not answer ARP.
        let want: Vec<String> = ["eth0", "eth2", "eth3", "bond0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(names(choose_interfaces(&t, &want, &ex)), ["bond0"]);
    }

    #[test]
    fn reports_list_announceable_links_with_carrier_and_automatic_choice() {
        let mut eth0 = link(1, "eth0");
        eth0.carrier = false;
        let mut down = link(2, "eth9");
        down.up = false;
        let t = table(vec![eth0, down, link(3, "cni0"), link(4, "mgmt0")]);
        let reports = link_reports(&t, &default_exclude_patterns());
        let got: Vec<(&str, bool, bool)> = reports
            .iter()
            .map(|r| (r.name.as_str(), r.carrier, r.automatic))
            .collect();
        assert_eq!(
            got,
            [
                ("cni0", true, false),
                ("eth0", false, true),
                ("mgmt0", true, true)
            ]
        );
    }

    #[test]
    fn link_local_is_found() {
        let mut l = link(2, "eth0");
        l.addresses = vec![
            ("fd00:200::1".parse().expect("ip"), 64),
            ("fe80::1".parse().expect("ip"), 64),
        ];
        assert_eq!(l.link_local_v6(), Some("fe80::1".parse().expect("ip")));
    }
}
