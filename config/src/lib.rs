//! ferrolb-config: turns ferrolb's configuration resources into a validated [`Config`], or into
//! every error at once, each naming the object and field, what was wrong and what is accepted.
//!
//! Pure: no Kubernetes client, no I/O besides parsing text handed in.

#![forbid(unsafe_code)]

pub mod address;
mod build;
pub mod community;
pub mod duration;
pub mod error;
pub mod manifests;
pub mod model;
pub mod selector;

pub use build::{BuildReport, MAX_REPORTED_OVERLAPS};
pub use error::{ConfigError, Severity};
pub use model::{
    AddressRange, BfdProfile, BgpAdvertisement, CommunityValue, IpFamily, L2Advertisement,
    NodePreference, Peer, PeerAddress, PeerAsn, PeerPassword, Pool,
};
pub use selector::Selector;

use std::collections::BTreeMap;

/// The raw resources a configuration is built from.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// IPAddressPools.
    pub pools: Vec<ferrolb_api::IPAddressPool>,
    /// L2Advertisements.
    pub l2_advertisements: Vec<ferrolb_api::L2Advertisement>,
    /// BGPAdvertisements.
    pub bgp_advertisements: Vec<ferrolb_api::BGPAdvertisement>,
    /// BGPPeers.
    pub peers: Vec<ferrolb_api::BGPPeer>,
    /// BFDProfiles.
    pub bfd_profiles: Vec<ferrolb_api::BFDProfile>,
    /// Communities.
    pub communities: Vec<ferrolb_api::Community>,
}

/// A validated configuration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    /// Pools by name.
    pub pools: BTreeMap<String, Pool>,
    /// Layer 2 advertisements, sorted by namespace/name.
    pub l2_advertisements: Vec<L2Advertisement>,
    /// BGP advertisements, sorted by namespace/name.
    pub bgp_advertisements: Vec<BgpAdvertisement>,
    /// Peers by name.
    pub peers: BTreeMap<String, Peer>,
    /// BFD profiles by name.
    pub bfd_profiles: BTreeMap<String, BfdProfile>,
    /// Problems that did not make the configuration invalid.
    pub warnings: Vec<ConfigError>,
}
