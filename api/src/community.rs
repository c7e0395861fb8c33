//! `Community`: names for BGP community values.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Names for BGP community values, usable in `BGPAdvertisement.communities`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "Community",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    category = "ferrolb",
    doc = "Community gives names to BGP community values."
)]
#[serde(rename_all = "camelCase")]
pub struct CommunitySpec {
    /// The named communities.
    #[serde(default)]
    pub communities: Vec<CommunityAlias>,
}

/// One named community.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommunityAlias {
    /// The name used in `BGPAdvertisement.communities`.
    pub name: String,
    /// The value: `AA:NN` (two 16-bit numbers) or `large:A:B:C` (three 32-bit numbers).
    pub value: String,
}
