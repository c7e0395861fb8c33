//! `L2Advertisement`: which pools are announced with ARP/NDP, from which nodes and interfaces.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Announce the addresses of the selected pools on the local network (ARP for IPv4, NDP for
/// IPv6). One elected node answers for each address.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "L2Advertisement",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    shortname = "l2adv",
    category = "ferrolb",
    doc = "L2Advertisement announces the addresses of the selected pools with ARP (IPv4) and NDP (IPv6).",
    printcolumn(
        name = "IPAddressPools",
        type_ = "string",
        json_path = ".spec.ipAddressPools"
    ),
    printcolumn(name = "Interfaces", type_ = "string", json_path = ".spec.interfaces")
)]
#[serde(rename_all = "camelCase")]
pub struct L2AdvertisementSpec {
    /// Names of the pools announced. Default: empty; when both this and
    /// `ipAddressPoolSelectors` are empty, every pool is announced.
    #[serde(
        default,
        rename = "ipAddressPools",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ip_address_pools: Vec<String>,
    /// Label selectors on pools announced (any one must match). Default: empty.
    #[serde(
        default,
        rename = "ipAddressPoolSelectors",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Label selectors on Nodes that may announce (any one must match). Default: empty, meaning
    /// every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,
    /// Interfaces to announce on. Default: empty, meaning every up, non-loopback interface
    /// except virtual ones that never carry external traffic (cni*, docker*, veth*, …), members
    /// of a bond, team or bridge (their master is announced on instead) and interfaces with ARP
    /// turned off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
    /// Label selectors on Services announced through this advertisement (any one must match).
    /// Default: empty, meaning every Service of the selected pools. A Service with the
    /// `allow-shared-ip` annotation is not announced through an advertisement with service
    /// selectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
    /// Soft preferences among the nodes that may announce: the eligible node with the highest
    /// sum of the weights of the preferences it matches announces; nodes with equal sums fall
    /// back to the usual election. Preferences only rank nodes that `nodeSelectors` already
    /// allow. Default: empty, no preference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferred_node_selectors: Vec<PreferredNodeSelector>,
}

/// A weighted preference for the nodes a label selector matches.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreferredNodeSelector {
    /// Weight added to the score of each node the preference matches, 1–100. Required.
    #[schemars(range(min = 1, max = 100))]
    pub weight: i32,
    /// The nodes that get the weight; an empty selector matches every node. Required.
    pub preference: LabelSelector,
}
