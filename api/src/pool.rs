//! `IPAddressPool`: the addresses ferrolb may hand out.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

fn default_true() -> bool {
    true
}

/// A set of IP addresses the controller may assign to LoadBalancer Services.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "IPAddressPool",
    namespaced,
    status = "IPAddressPoolStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "ippool",
    category = "ferrolb",
    doc = "IPAddressPool is a set of IP addresses that ferrolb may assign to LoadBalancer Services.",
    printcolumn(name = "Addresses", type_ = "string", json_path = ".spec.addresses"),
    printcolumn(
        name = "Auto Assign",
        type_ = "boolean",
        json_path = ".spec.autoAssign"
    ),
    printcolumn(
        name = "Avoid Buggy IPs",
        type_ = "boolean",
        json_path = ".spec.avoidBuggyIPs"
    ),
    printcolumn(
        name = "Used IPv4",
        type_ = "integer",
        json_path = ".status.assignedIPv4"
    ),
    printcolumn(
        name = "Free IPv4",
        type_ = "integer",
        json_path = ".status.availableIPv4"
    ),
    printcolumn(
        name = "Used IPv6",
        type_ = "integer",
        json_path = ".status.assignedIPv6"
    ),
    printcolumn(
        name = "Free IPv6",
        type_ = "integer",
        json_path = ".status.availableIPv6"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolSpec {
    /// Address ranges of the pool. Each entry is a CIDR (`192.168.10.0/24`, `fc00:f853::/120`)
    /// or an inclusive range `start-end` (`192.168.10.5-192.168.10.20`) of one family.
    /// Required; pools must not overlap.
    pub addresses: Vec<String>,
    /// Whether the controller may pick addresses from this pool for Services that do not ask
    /// for it by name or address. Default: true.
    #[serde(default = "default_true")]
    pub auto_assign: bool,
    /// Skip IPv4 addresses ending in `.0` and `.255`, which some buggy consumer equipment drops.
    /// Default: false.
    #[serde(default, rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,
    /// Restricts which Services may get addresses from this pool and in which order pools are
    /// tried. Default: every Service, no priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_allocation: Option<ServiceAllocation>,
}

/// Which Services a pool serves, and how it ranks against other pools.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// Order among pools with a serviceAllocation that admit a Service: positive numbers are
    /// tried first, lowest first; 0 or unset comes after every positive priority. Pools with a
    /// serviceAllocation are tried before pools without one. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Namespaces whose Services may use the pool. Default: empty, meaning any namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Label selectors on Namespaces whose Services may use the pool (any one must match).
    /// Default: empty, meaning any namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_selectors: Vec<LabelSelector>,
    /// Label selectors on Services that may use the pool (any one must match).
    /// Default: empty, meaning any Service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
}

/// Usage of a pool, written by the controller. Counts saturate at the largest int64 for very
/// large IPv6 pools instead of overflowing.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolStatus {
    /// IPv4 addresses of the pool assigned to Services.
    #[serde(default, rename = "assignedIPv4")]
    pub assigned_ipv4: i64,
    /// IPv6 addresses of the pool assigned to Services.
    #[serde(default, rename = "assignedIPv6")]
    pub assigned_ipv6: i64,
    /// IPv4 addresses of the pool still free.
    #[serde(default, rename = "availableIPv4")]
    pub available_ipv4: i64,
    /// IPv6 addresses of the pool still free (saturated at the largest int64).
    #[serde(default, rename = "availableIPv6")]
    pub available_ipv6: i64,
}
