//! ferrolb-api: the types every ferrolb component and its users share.
//!
//! * CRD types of the `ferrolb.io/v1beta1` group. Kinds and field names follow MetalLB's, so a
//!   MetalLB manifest migrates by changing its `apiVersion`.
//! * Annotation keys (with MetalLB's spellings as aliases), the load balancer class, event reasons.
//! * The JSON types of the HTTP status API both binaries serve.
//! * The Service vocabulary both binaries share ([`service`]): key, traffic policy, which
//!   Services ferrolb handles, their ingress addresses.
//!
//! This crate does no I/O.

// kube's `printcolumn(...)` attributes repeat `type_ = "integer"` etc. by design; clippy reads
// the repetition as a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

pub mod annotations;
pub mod bfd;
pub mod bgp;
pub mod bgp_status;
pub mod community;
pub mod configuration_state;
pub mod crds;
pub mod events;
pub mod l2;
pub mod l2_status;
pub mod pool;
pub mod service;
pub mod status;

/// API group of every ferrolb CRD.
pub const GROUP: &str = "ferrolb.io";
/// API version of every ferrolb CRD.
pub const VERSION: &str = "v1beta1";
/// `apiVersion` string of ferrolb objects.
pub const API_VERSION: &str = "ferrolb.io/v1beta1";
/// MetalLB API group; `validate` accepts its objects as equivalents of ours.
pub const METALLB_GROUP: &str = "metallb.io";

pub use bfd::{BFDProfile, BFDProfileSpec};
pub use bgp::{BGPAdvertisement, BGPAdvertisementSpec, BGPPeer, BGPPeerSpec, DynamicAsn};
pub use bgp_status::{
    BGPSessionState, BGPSessionStateStatus, ServiceBGPStatus, ServiceBGPStatusStatus,
};
pub use community::{Community, CommunityAlias, CommunitySpec};
pub use configuration_state::{
    ConfigurationState, ConfigurationStateSpec, ConfigurationStateStatus,
};
pub use l2::{L2Advertisement, L2AdvertisementSpec, PreferredNodeSelector};
pub use l2_status::{InterfaceInfo, ServiceL2Status, ServiceL2StatusStatus};
pub use pool::{IPAddressPool, IPAddressPoolSpec, IPAddressPoolStatus, ServiceAllocation};
