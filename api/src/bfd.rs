//! `BFDProfile`: Bidirectional Forwarding Detection timers for BGP sessions.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// BFD settings a `BGPPeer` refers to by name through `bfdProfile`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "BFDProfile",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    shortname = "bfd",
    category = "ferrolb",
    doc = "BFDProfile holds Bidirectional Forwarding Detection settings for BGP sessions.",
    printcolumn(
        name = "Passive Mode",
        type_ = "boolean",
        json_path = ".spec.passiveMode"
    ),
    printcolumn(
        name = "Transmit Interval",
        type_ = "integer",
        json_path = ".spec.transmitInterval"
    ),
    printcolumn(
        name = "Receive Interval",
        type_ = "integer",
        json_path = ".spec.receiveInterval"
    ),
    printcolumn(
        name = "Multiplier",
        type_ = "integer",
        json_path = ".spec.detectMultiplier"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BFDProfileSpec {
    /// Minimum interval, in milliseconds, at which this system can receive control packets.
    /// Range 10–60000. Default: 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_interval: Option<u32>,
    /// Minimum interval, in milliseconds, at which this system wants to send control packets.
    /// Range 10–60000. Default: 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transmit_interval: Option<u32>,
    /// Number of missed packets after which the session is declared down. Range 2–255.
    /// Default: 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detect_multiplier: Option<u32>,
    /// Interval, in milliseconds, of echo packets. Range 10–60000. Default: 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo_interval: Option<u32>,
    /// Enable BFD echo mode (RFC 5880 §6.4): besides control packets, this node sends echo
    /// packets addressed to itself through the peer, whose forwarding loops them back, and
    /// loops the peer's back when it forwards IPv4. IPv4 single-hop sessions only. Default:
    /// false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo_mode: Option<bool>,
    /// Wait for the peer to start the session instead of sending first. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive_mode: Option<bool>,
    /// For multihop sessions, the minimum TTL accepted on incoming packets. Range 1–254.
    /// Default: 254.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_ttl: Option<u32>,
    /// BFD strict mode (draft-ietf-idr-bgp-bfd-strict-mode), a ferrolb extension: BGP
    /// sessions using this profile announce the BFD Strict-Mode capability (code 74) and are
    /// not established until their BFD session is Up. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_mode: Option<bool>,
}
