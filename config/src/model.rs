//! The validated, normalized configuration every other component consumes.
//!
//! Everything here has been checked by [`crate::Config::build`]: ranges are parsed and
//! non-overlapping, references resolve, defaults are filled in. Consumers never re-validate.

use crate::selector::Selector;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// IP address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpFamily {
    /// Family of an address.
    pub fn of(ip: &IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    /// The name Kubernetes uses in `spec.ipFamilies`.
    pub fn k8s_name(self) -> &'static str {
        match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        }
    }
}

/// Converts an address to a number, so ranges of both families share arithmetic.
pub fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Converts a number back to an address of `family`. IPv4 numbers are truncated to 32 bits;
/// callers only pass numbers taken from a range of that family.
pub fn u128_to_ip(n: u128, family: IpFamily) -> IpAddr {
    match family {
        IpFamily::V4 => IpAddr::V4(Ipv4Addr::from((n & 0xffff_ffff) as u32)),
        IpFamily::V6 => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

/// An inclusive range of addresses of one family, as one entry of `spec.addresses`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressRange {
    /// First address.
    pub first: IpAddr,
    /// Last address (inclusive).
    pub last: IpAddr,
    /// Prefix length when the entry was written as a CIDR.
    pub prefix_len: Option<u8>,
    /// The entry as written.
    pub text: String,
}

impl AddressRange {
    /// Family of the range.
    pub fn family(&self) -> IpFamily {
        IpFamily::of(&self.first)
    }

    /// First address as a number.
    pub fn start(&self) -> u128 {
        ip_to_u128(self.first)
    }

    /// Last address as a number.
    pub fn end(&self) -> u128 {
        ip_to_u128(self.last)
    }

    /// Number of addresses, saturating at `u128::MAX` (only `::/0` would need one more).
    pub fn size(&self) -> u128 {
        (self.end() - self.start()).saturating_add(1)
    }

    /// Whether `ip` lies in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        IpFamily::of(&ip) == self.family() && (self.start()..=self.end()).contains(&ip_to_u128(ip))
    }

    /// Whether two ranges share an address.
    pub fn overlaps(&self, other: &AddressRange) -> bool {
        self.family() == other.family()
            && self.start() <= other.end()
            && other.start() <= self.end()
    }
}

/// An IP address pool.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    /// Namespace of the IPAddressPool.
    pub namespace: String,
    /// Name of the IPAddressPool; names are unique across the configuration.
    pub name: String,
    /// Labels of the IPAddressPool (advertisements select pools by label).
    pub labels: BTreeMap<String, String>,
    /// Address ranges in the order written.
    pub ranges: Vec<AddressRange>,
    /// Used for automatic assignment.
    pub auto_assign: bool,
    /// Skip IPv4 addresses ending in .0 and .255.
    pub avoid_buggy_ips: bool,
    /// Whether `spec.serviceAllocation` is present, even empty: pools with one that admit a
    /// Service are tried before pools without one (MetalLB's pinned pools).
    pub service_allocation: bool,
    /// `spec.serviceAllocation.priority`: among pools with a serviceAllocation, a positive
    /// value is tried first, lowest first; 0, negative or unset come after every positive one.
    pub priority: Option<i32>,
    /// Namespaces allowed by name (empty: no restriction by name).
    pub namespaces: Vec<String>,
    /// Namespace label selectors (empty: no restriction by labels).
    pub namespace_selectors: Vec<Selector>,
    /// Service label selectors (empty: every Service).
    pub service_selectors: Vec<Selector>,
}

impl Pool {
    /// A pool of `ranges` with every default, as an IPAddressPool with only `spec.addresses`
    /// builds.
    pub fn with_ranges(namespace: &str, name: &str, ranges: Vec<AddressRange>) -> Pool {
        Pool {
            namespace: namespace.into(),
            name: name.into(),
            labels: BTreeMap::new(),
            ranges,
            auto_assign: true,
            avoid_buggy_ips: false,
            service_allocation: false,
            priority: None,
            namespaces: vec![],
            namespace_selectors: vec![],
            service_selectors: vec![],
        }
    }

    /// Whether `ip` belongs to the pool.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip))
    }

    /// Whether the pool has addresses of `family`.
    pub fn has_family(&self, family: IpFamily) -> bool {
        self.ranges.iter().any(|r| r.family() == family)
    }

    /// Number of addresses of `family` (before `avoidBuggyIPs`), saturating.
    pub fn size(&self, family: IpFamily) -> u128 {
        self.ranges
            .iter()
            .filter(|r| r.family() == family)
            .fold(0u128, |acc, r| acc.saturating_add(r.size()))
    }

    /// Whether `ip` may be handed out at all (`avoidBuggyIPs` excludes .0 and .255).
    pub fn is_usable(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) if self.avoid_buggy_ips => {
                let last = v4.octets()[3];
                last != 0 && last != 255
            }
            _ => true,
        }
    }

    /// Whether a Service in `namespace` (whose Namespace carries `namespace_labels`) with
    /// `service_labels` may use this pool according to `serviceAllocation`.
    pub fn admits(
        &self,
        namespace: &str,
        namespace_labels: &BTreeMap<String, String>,
        service_labels: &BTreeMap<String, String>,
    ) -> bool {
        let by_name = self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == namespace);
        let by_labels = crate::selector::any_matches(&self.namespace_selectors, namespace_labels);
        let by_service = crate::selector::any_matches(&self.service_selectors, service_labels);
        by_name && by_labels && by_service
    }
}

/// A layer 2 advertisement with its pool references resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct L2Advertisement {
    /// Namespace of the L2Advertisement.
    pub namespace: String,
    /// Name of the L2Advertisement.
    pub name: String,
    /// Names of the pools it announces.
    pub pools: Vec<String>,
    /// Node selectors (empty: every node).
    pub node_selectors: Vec<Selector>,
    /// Interfaces (empty: automatic choice).
    pub interfaces: Vec<String>,
    /// Service selectors (empty: every Service).
    pub service_selectors: Vec<Selector>,
    /// Weighted node preferences for the layer 2 election (empty: none).
    pub preferred_nodes: Vec<NodePreference>,
}

/// A weighted preference for the nodes a selector matches (`preferredNodeSelectors[]`).
#[derive(Clone, Debug, PartialEq)]
pub struct NodePreference {
    /// Weight, 1–100.
    pub weight: u32,
    /// The nodes that get the weight (no requirement: every node).
    pub selector: Selector,
}

/// A BGP community value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CommunityValue {
    /// RFC 1997 community `AA:NN`, stored as `AA << 16 | NN`.
    Standard(u32),
    /// RFC 8092 large community `A:B:C`.
    Large(u32, u32, u32),
}

impl std::fmt::Display for CommunityValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommunityValue::Standard(v) => write!(f, "{}:{}", v >> 16, v & 0xffff),
            CommunityValue::Large(a, b, c) => write!(f, "large:{a}:{b}:{c}"),
        }
    }
}

/// A BGP advertisement with references resolved and defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct BgpAdvertisement {
    /// Namespace of the BGPAdvertisement.
    pub namespace: String,
    /// Name of the BGPAdvertisement.
    pub name: String,
    /// Names of the pools it advertises.
    pub pools: Vec<String>,
    /// IPv4 prefix length (default 32).
    pub aggregation_length: u8,
    /// IPv6 prefix length (default 128).
    pub aggregation_length_v6: u8,
    /// LOCAL_PREF for iBGP sessions.
    pub local_pref: Option<u32>,
    /// Communities, named ones resolved, sorted and deduplicated.
    pub communities: Vec<CommunityValue>,
    /// Node selectors (empty: every node).
    pub node_selectors: Vec<Selector>,
    /// Names of the peers it is sent to (empty: every peer).
    pub peers: Vec<String>,
    /// Service selectors (empty: every Service).
    pub service_selectors: Vec<Selector>,
}

/// How a peer's AS number is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerAsn {
    /// A fixed AS number.
    Fixed(u32),
    /// Whatever the peer says, as long as it equals our AS.
    Internal,
    /// Whatever the peer says, as long as it differs from our AS.
    External,
}

/// Where a peer's TCP MD5 password comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerPassword {
    /// Written in the BGPPeer.
    Literal(String),
    /// The `password` key of a basic-auth Secret.
    Secret {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
    },
}

/// Where a BGP peer is.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeerAddress {
    /// A configured address (`peerAddress`).
    Ip(IpAddr),
    /// Unnumbered (`interface`): the router's IPv6 link-local address, discovered on this
    /// interface of the node.
    Interface(String),
}

impl PeerAddress {
    /// The configured address, if the peer has one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            PeerAddress::Ip(ip) => Some(*ip),
            PeerAddress::Interface(_) => None,
        }
    }

    /// The interface of an unnumbered peer.
    pub fn interface(&self) -> Option<&str> {
        match self {
            PeerAddress::Ip(_) => None,
            PeerAddress::Interface(name) => Some(name),
        }
    }
}

impl std::fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerAddress::Ip(ip) => write!(f, "{ip}"),
            PeerAddress::Interface(name) => write!(f, "interface {name}"),
        }
    }
}

/// A BGP peer with defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Peer {
    /// Namespace of the BGPPeer.
    pub namespace: String,
    /// Name of the BGPPeer.
    pub name: String,
    /// Our AS.
    pub my_asn: u32,
    /// The peer's AS.
    pub peer_asn: PeerAsn,
    /// Where the peer is: its address, or the interface it is discovered on (unnumbered).
    pub address: PeerAddress,
    /// Local address to connect from.
    pub source_address: Option<IpAddr>,
    /// The peer's TCP port (default 179).
    pub port: u16,
    /// Proposed hold time (default 90 s; zero disables keepalives).
    pub hold_time: Duration,
    /// Keepalive interval (default hold time / 3).
    pub keepalive_time: Duration,
    /// Interval between connection attempts (`connectTime`, FRR's `timers connect`); `None`:
    /// the speaker backs off, 1 s doubling to 30 s.
    pub connect_time: Option<Duration>,
    /// Router ID (default: the node's IPv4 address).
    pub router_id: Option<Ipv4Addr>,
    /// Node selectors (empty: every node).
    pub node_selectors: Vec<Selector>,
    /// TCP MD5 password source.
    pub password: Option<PeerPassword>,
    /// Name of the BFD profile.
    pub bfd_profile: Option<String>,
    /// eBGP multihop (TTL 255 instead of 1).
    pub ebgp_multihop: bool,
    /// Announce graceful restart (RFC 4724, RFC 8538).
    pub graceful_restart: bool,
    /// Restart time announced with graceful restart: how long the router keeps our routes
    /// while the speaker restarts (1 s to 4095 s, default 120 s).
    pub graceful_restart_time: Duration,
    /// Do not use multiprotocol BGP across families (wins over `dual_stack`).
    pub disable_mp: bool,
    /// The AS presented to the peer instead of `my_asn` (`localASN`).
    pub local_asn: Option<u32>,
    /// Offer both address families, not only the peer address's (`dualStackAddressFamily`).
    pub dual_stack: bool,
    /// The Linux VRF device the session is opened in (`vrf`); `None`: the default VRF.
    pub vrf: Option<String>,
}

impl Peer {
    /// A peer with every default, as a BGPPeer with only these fields builds (port 179, hold
    /// time 90 s, keepalive 30 s, retries with backoff, every node).
    pub fn with_defaults(
        namespace: &str,
        name: &str,
        my_asn: u32,
        peer_asn: PeerAsn,
        address: IpAddr,
    ) -> Peer {
        Peer {
            namespace: namespace.into(),
            name: name.into(),
            my_asn,
            peer_asn,
            address: PeerAddress::Ip(address),
            source_address: None,
            port: crate::build::peers::DEFAULT_PORT,
            hold_time: crate::build::peers::DEFAULT_HOLD,
            keepalive_time: crate::build::peers::DEFAULT_HOLD / 3,
            connect_time: None,
            router_id: None,
            node_selectors: vec![],
            password: None,
            bfd_profile: None,
            ebgp_multihop: false,
            graceful_restart: false,
            graceful_restart_time: crate::build::peers::DEFAULT_GRACEFUL_RESTART_TIME,
            disable_mp: false,
            local_asn: None,
            dual_stack: false,
            vrf: None,
        }
    }

    /// Whether the session is iBGP (same AS on both ends) — known statically unless the AS is
    /// `External`/`Internal`, which say it directly.
    pub fn is_ibgp(&self) -> bool {
        match self.peer_asn {
            PeerAsn::Fixed(asn) => asn == self.local_asn.unwrap_or(self.my_asn),
            PeerAsn::Internal => true,
            PeerAsn::External => false,
        }
    }
}

/// A BFD profile with defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BfdProfile {
    /// Namespace of the BFDProfile.
    pub namespace: String,
    /// Name of the BFDProfile.
    pub name: String,
    /// Required minimum receive interval (default 300 ms).
    pub receive_interval: Duration,
    /// Desired minimum transmit interval (default 300 ms).
    pub transmit_interval: Duration,
    /// Detection multiplier (default 3).
    pub detect_multiplier: u8,
    /// Echo interval (default 50 ms).
    pub echo_interval: Duration,
    /// Echo mode.
    pub echo_mode: bool,
    /// Passive mode: wait for the peer to send first.
    pub passive_mode: bool,
    /// Minimum TTL accepted on multihop sessions (default 254).
    pub minimum_ttl: u8,
    /// BFD strict mode: BGP sessions with this profile wait for BFD Up before Established
    /// and announce the BFD Strict-Mode capability.
    pub strict_mode: bool,
}
