//! JSON types of the HTTP status API (`/api/v1/status`, `/api/v1/services/{ns}/{name}`) served
//! by the controller and the speaker. Field names are camelCase like Kubernetes objects.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// A configuration problem, naming the object and the field.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigProblem {
    /// Kind of the object, e.g. `IPAddressPool`.
    pub kind: String,
    /// Namespace of the object (empty for cluster-scoped objects or files without one).
    pub namespace: String,
    /// Name of the object.
    pub name: String,
    /// Path of the field, e.g. `spec.addresses[1]`.
    pub field: String,
    /// What was wrong and what would be accepted.
    pub message: String,
}

/// Validity of the configuration in force.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigStatus {
    /// Whether the latest configuration seen was valid. When false, the last valid one is still
    /// in force and `errors` says what is wrong with the latest.
    pub valid: bool,
    /// Whether any valid configuration has been loaded yet.
    pub loaded: bool,
    /// Errors of the latest configuration.
    #[serde(default)]
    pub errors: Vec<ConfigProblem>,
    /// Warnings of the configuration in force.
    #[serde(default)]
    pub warnings: Vec<ConfigProblem>,
    /// API groups the configuration kinds are read from (`ferrolb.io`, `metallb.io`).
    #[serde(default)]
    pub groups: Vec<String>,
}

/// Usage of one pool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolUsage {
    /// Namespace of the pool.
    pub namespace: String,
    /// Name of the pool.
    pub name: String,
    /// The pool's address ranges as written.
    pub addresses: Vec<String>,
    /// Whether the pool is used for automatic assignment.
    pub auto_assign: bool,
    /// Assigned IPv4 addresses.
    #[serde(rename = "assignedIPv4")]
    pub assigned_ipv4: u64,
    /// Free IPv4 addresses.
    #[serde(rename = "availableIPv4")]
    pub available_ipv4: u64,
    /// Assigned IPv6 addresses.
    #[serde(rename = "assignedIPv6")]
    pub assigned_ipv6: u64,
    /// Free IPv6 addresses, saturated at the largest u64.
    #[serde(rename = "availableIPv6")]
    pub available_ipv6: u64,
}

/// The addresses of one Service, or why it has none.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub name: String,
    /// Assigned addresses (one per family at most).
    pub ips: Vec<IpAddr>,
    /// Pool the addresses came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Sharing key, when the Service may share its addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharing_key: Option<String>,
    /// Why the Service has no address, when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `/api/v1/status` of the controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControllerStatus {
    /// ferrolb version.
    pub version: String,
    /// Whether the first full sync is done.
    pub ready: bool,
    /// Whether this replica holds the leader lease and writes.
    pub leader: bool,
    /// Configuration validity.
    pub config: ConfigStatus,
    /// Every pool of the configuration in force.
    pub pools: Vec<PoolUsage>,
    /// Every LoadBalancer Service ferrolb handles.
    pub services: Vec<ServiceAllocation>,
}

/// How an address is announced.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AnnouncementMode {
    /// ARP / NDP from one elected node.
    Layer2,
    /// BGP from every eligible node.
    Bgp,
}

/// One address this node announces.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Announcement {
    /// The address.
    pub ip: IpAddr,
    /// Services (`namespace/name`) using the address.
    pub services: Vec<String>,
    /// How it is announced.
    pub mode: AnnouncementMode,
    /// Interfaces it is announced on (layer 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
    /// Peers it is advertised to (BGP).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    /// When this node started announcing it (RFC 3339).
    pub since: String,
}

/// A member of the speakers' gossip membership as this node sees it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// Node name.
    pub node: String,
    /// Gossip address.
    pub address: String,
    /// Whether the member is considered alive.
    pub alive: bool,
}

/// Membership as this node sees it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MembershipView {
    /// Whether gossip membership is enabled; when not, node liveness is the Node Ready
    /// condition.
    pub enabled: bool,
    /// Known members.
    pub members: Vec<Member>,
}

/// State of one BFD session.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BfdSessionStatus {
    /// `AdminDown`, `Down`, `Init` or `Up`.
    pub state: String,
    /// Detection time in force, in milliseconds.
    pub detection_time_ms: u64,
    /// The Echo function runs: our echo packets loop through the peer and come back
    /// (profile `echoMode`, the peer asks for echo packets, and its address is resolved).
    #[serde(default)]
    pub echo_active: bool,
    /// The profile's `strictMode`: the BGP session waits for this BFD session to be Up
    /// before it is established.
    #[serde(default)]
    pub strict_mode: bool,
}

/// State of one BGP session of this node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpPeerStatus {
    /// `namespace/name` of the BGPPeer.
    pub name: String,
    /// Peer address and port.
    pub address: String,
    /// RFC 4271 state: Idle, Connect, Active, OpenSent, OpenConfirm or Established.
    pub state: String,
    /// Seconds since the session was established, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<u64>,
    /// Last error seen on the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Last NOTIFICATION sent or received, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_notification: Option<String>,
    /// Prefixes currently advertised to the peer.
    pub prefixes_advertised: u64,
    /// UPDATE messages sent.
    pub updates_sent: u64,
    /// UPDATE messages received.
    pub updates_received: u64,
    /// BFD session, when the peer has a BFD profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<BfdSessionStatus>,
    /// The AS number this node presents to the peer (`localASN`, or else `myASN`).
    #[serde(default, rename = "localASN")]
    pub local_asn: u32,
    /// The VRF the session is opened in; unset for the default VRF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrf: Option<String>,
    /// The VRF device does not exist on this node, so the session stays down.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub vrf_missing: bool,
    /// The node's interface of an unnumbered session (`interface`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// The router's link-local address discovered on `interface`, with the interface as scope
    /// (`fe80::1%eth1`); unset while none is discovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neighbour: Option<String>,
    /// Why the last discovery on `interface` found no neighbour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neighbour_error: Option<String>,
}

/// `/api/v1/status` of a speaker.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpeakerStatus {
    /// ferrolb version.
    pub version: String,
    /// Node this speaker runs on.
    pub node: String,
    /// Whether the first full sync is done.
    pub ready: bool,
    /// Configuration validity.
    pub config: ConfigStatus,
    /// Membership view.
    pub membership: MembershipView,
    /// Addresses this node announces.
    pub announcements: Vec<Announcement>,
    /// BGP sessions of this node.
    pub bgp_peers: Vec<BgpPeerStatus>,
    /// Interfaces where ARP requests for announced addresses are answered inside the kernel
    /// (eBPF on tc ingress); on the others the speaker's `AF_PACKET` socket answers.
    #[serde(default)]
    pub kernel_responder_interfaces: Vec<String>,
    /// Addresses of handled Services that no node announces, with the reason. Every speaker
    /// computes the same list (it does not depend on the node asking), so any speaker answers
    /// "why does no node announce this address?".
    #[serde(default)]
    pub not_announced: Vec<NotAnnouncedAddress>,
    /// The interfaces this node can announce on in layer 2, with their carrier, as its speaker
    /// reports them to the other speakers (a node none of whose interfaces selected by an
    /// L2Advertisement has carrier is not eligible for that advertisement's addresses).
    #[serde(default)]
    pub interfaces: Vec<InterfaceCarrier>,
    /// Layer 2 addresses this node would be eligible for but does not announce, because the
    /// interfaces the L2Advertisements select have no carrier here.
    #[serde(default)]
    pub no_carrier: Vec<NoCarrierAddress>,
}

/// One interface a speaker can announce on, and whether it has carrier.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceCarrier {
    pub name: String,
    /// The link has carrier (`IFF_LOWER_UP`).
    pub carrier: bool,
    /// Used by L2Advertisements without `interfaces` (matches no exclusion pattern).
    pub automatic: bool,
}

/// A layer 2 address this node does not announce for lack of carrier.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NoCarrierAddress {
    pub ip: String,
    /// Services (`namespace/name`) using it.
    pub services: Vec<String>,
    /// Why, e.g. "interface eth0 has no carrier".
    pub message: String,
}

/// An address no node announces, and why.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotAnnouncedAddress {
    pub ip: String,
    /// Services (`namespace/name`) using it.
    pub services: Vec<String>,
    /// `NoPool`, `NoAdvertisement`, `ModeDisabled`, `NoMatchingAdvertisement`,
    /// `SharedIPWithServiceSelectors`, `NoServingEndpoint` or `NoEligibleNode`.
    pub reason: String,
    /// The reason in words, with where to look.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_with_camel_case_names() {
        let s = PoolUsage {
            namespace: "ferrolb-system".into(),
            name: "lan".into(),
            addresses: vec!["10.200.10.0/24".into()],
            auto_assign: true,
            assigned_ipv4: 2,
            available_ipv4: 254,
            assigned_ipv6: 0,
            available_ipv6: 0,
        };
        let v = serde_json::to_value(&s).expect("serialize");
        assert_eq!(v["assignedIPv4"], 2);
        assert_eq!(v["autoAssign"], true);
        let back: PoolUsage = serde_json::from_value(v).expect("deserialize");
        assert_eq!(back, s);
    }
}
