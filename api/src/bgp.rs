//! `BGPPeer` and `BGPAdvertisement`: BGP sessions and what is advertised over them.

use k8s_openapi::api::core::v1::SecretReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Advertise the addresses of the selected pools over BGP.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "BGPAdvertisement",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    shortname = "bgpadv",
    category = "ferrolb",
    doc = "BGPAdvertisement advertises the addresses of the selected pools to BGP peers.",
    printcolumn(
        name = "IPAddressPools",
        type_ = "string",
        json_path = ".spec.ipAddressPools"
    ),
    printcolumn(name = "Peers", type_ = "string", json_path = ".spec.peers"),
    printcolumn(name = "Local Pref", type_ = "integer", json_path = ".spec.localPref")
)]
#[serde(rename_all = "camelCase")]
pub struct BGPAdvertisementSpec {
    /// Prefix length used for IPv4 routes: 32 advertises each address on its own, shorter
    /// lengths aggregate addresses into one route. Range 0–32, and not shorter than the pool's
    /// CIDR. Default: 32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation_length: Option<i32>,
    /// Prefix length used for IPv6 routes. Range 0–128, and not shorter than the pool's CIDR.
    /// Default: 128.
    #[serde(
        default,
        rename = "aggregationLengthV6",
        skip_serializing_if = "Option::is_none"
    )]
    pub aggregation_length_v6: Option<i32>,
    /// BGP LOCAL_PREF attribute of the routes; only sent on iBGP sessions. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<u32>,
    /// BGP communities attached to the routes: `AA:NN` (standard), `large:A:B:C` (large), or
    /// the name of an entry of a `Community` resource. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<String>,
    /// Names of the pools advertised. Default: empty; when both this and
    /// `ipAddressPoolSelectors` are empty, every pool is advertised.
    #[serde(
        default,
        rename = "ipAddressPools",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ip_address_pools: Vec<String>,
    /// Label selectors on pools advertised (any one must match). Default: empty.
    #[serde(
        default,
        rename = "ipAddressPoolSelectors",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Label selectors on Nodes that advertise (any one must match). Default: empty, meaning
    /// every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,
    /// Names of the `BGPPeer`s the routes are sent to. Default: empty, meaning every peer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    /// Label selectors on Services advertised through this advertisement (any one must match).
    /// Default: empty, meaning every Service of the selected pools. Only with the default
    /// aggregation lengths (32 and 128): a route covering several addresses cannot follow
    /// which Services match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
}

/// Whether a peer's AS is the same as ours or another, when its number is not fixed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DynamicAsn {
    /// The peer uses our AS number (iBGP).
    Internal,
    /// The peer uses any AS number other than ours (eBGP).
    External,
}

/// A BGP router the speakers open sessions to.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "BGPPeer",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    shortname = "bgppeer",
    category = "ferrolb",
    doc = "BGPPeer is a BGP router that speakers on the selected nodes open sessions to.",
    printcolumn(name = "Address", type_ = "string", json_path = ".spec.peerAddress"),
    printcolumn(name = "Interface", type_ = "string", json_path = ".spec.interface"),
    printcolumn(name = "ASN", type_ = "integer", json_path = ".spec.peerASN"),
    printcolumn(name = "My ASN", type_ = "integer", json_path = ".spec.myASN"),
    printcolumn(name = "BFD Profile", type_ = "string", json_path = ".spec.bfdProfile"),
    printcolumn(
        name = "Multi Hops",
        type_ = "boolean",
        json_path = ".spec.ebgpMultiHop"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerSpec {
    /// Our AS number, 1–4294967295. Required.
    #[serde(rename = "myASN")]
    pub my_asn: u32,
    /// The AS number presented to this peer instead of `myASN`, 1–4294967295 (MetalLB's
    /// `localASN`, FRR's `local-as <ASN> no-prepend replace-as`): the OPEN carries it and the
    /// AS_PATH of our routes is this AS alone. For eBGP sessions only; it must differ from
    /// `myASN`. Default: unset, `myASN` is presented.
    #[serde(default, rename = "localASN", skip_serializing_if = "Option::is_none")]
    pub local_asn: Option<u32>,
    /// The peer's AS number, 1–4294967295. Exactly one of `peerASN` and `dynamicASN` is set.
    #[serde(default, rename = "peerASN", skip_serializing_if = "Option::is_none")]
    pub peer_asn: Option<u32>,
    /// Accept any peer AS of this kind instead of a fixed `peerASN`: `internal` (same as
    /// `myASN`) or `external` (any other).
    #[serde(
        default,
        rename = "dynamicASN",
        skip_serializing_if = "Option::is_none"
    )]
    pub dynamic_asn: Option<DynamicAsn>,
    /// The peer's IPv4 or IPv6 address. Exactly one of `peerAddress` and `interface` is set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub peer_address: String,
    /// Unnumbered peering (MetalLB's `interface`, FRR's `neighbor IFACE interface`): the name
    /// of the node's interface on a point-to-point link to the router. The speaker discovers
    /// the router's IPv6 link-local address on it (its Router Advertisements, or the answer to
    /// an all-nodes ping), opens the session to that address with the interface's scope, and
    /// offers both families: IPv4 routes travel with an IPv6 next hop (RFC 8950 extended next
    /// hop). Exactly one of `peerAddress` and `interface` is set; not with `sourceAddress`,
    /// `ebgpMultiHop` or `bfdProfile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Local address the session is opened from. Default: chosen by the kernel's routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<String>,
    /// TCP port of the peer. Default: 179.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_port: Option<u16>,
    /// Proposed hold time, a duration such as `90s`; 0 disables keepalives, otherwise at least
    /// 3s. Default: 90s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<String>,
    /// Interval between keepalives; must be less than the hold time. Default: a third of the
    /// hold time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<String>,
    /// Interval between connection attempts, whole seconds from 1s to 65535s (as MetalLB's
    /// `connectTime`); an attempt still unanswered after it is abandoned for the next one.
    /// Default: unset, retrying 1s after a failure, doubling up to 30s, with each attempt
    /// given up after 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_time: Option<String>,
    /// BGP router ID, an IPv4 address. Default: the node's IPv4 address.
    #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,
    /// Label selectors on Nodes that open this session (any one must match). Default: empty,
    /// meaning every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,
    /// TCP MD5 (RFC 2385) password of the session. Mutually exclusive with `passwordSecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Secret of type `kubernetes.io/basic-auth` in the speaker's namespace whose `password`
    /// key holds the TCP MD5 password. Mutually exclusive with `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretReference>,
    /// Name of the `BFDProfile` used for this session. Default: no BFD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd_profile: Option<String>,
    /// The peer is more than one hop away (eBGP multihop): send with TTL 255 instead of 1.
    /// Default: false.
    #[serde(default)]
    pub ebgp_multi_hop: bool,
    /// Announce the graceful restart capability (RFC 4724, with RFC 8538 notifications): when
    /// the router announces it too, a speaker restarting in place (a rolling update) leaves
    /// its routes in the router, marked stale, until it has announced them again. Default:
    /// false.
    #[serde(default)]
    pub enable_graceful_restart: bool,
    /// How long the router keeps this node's routes while its speaker restarts (the restart
    /// time of the graceful restart capability), a duration of whole seconds from 1s to
    /// 4095s. Used with `enableGracefulRestart`. Default: 120s. (ferrolb.io only.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_restart_time: Option<String>,
    /// Do not use multiprotocol BGP: IPv4 routes go over IPv4 sessions and IPv6 routes over
    /// IPv6 sessions only, whatever `dualStackAddressFamily` says. Since the default is the
    /// peer address's family alone, this only matters with `dualStackAddressFamily` (kept for
    /// MetalLB, where it is deprecated). Default: false.
    #[serde(default, rename = "disableMP")]
    pub disable_mp: bool,
    /// Offer both address families on this session (multiprotocol IPv4 and IPv6 unicast), so
    /// IPv4 routes go over an IPv6 session and the reverse. Default: false, the session offers
    /// and carries only the family of `peerAddress` (as MetalLB).
    #[serde(default)]
    pub dual_stack_address_family: bool,
    /// Name of the Linux VRF device the session is opened in: the socket is bound to it
    /// (SO_BINDTODEVICE), so the source address and next hop come from the VRF's interfaces.
    /// A node without a VRF of that name keeps the session down and reports it (BGPSessionState,
    /// event). Not with `bfdProfile` (BFD runs in the default VRF only). Default: unset, the
    /// default VRF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrf: Option<String>,
}
