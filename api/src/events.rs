//! Reasons of the Kubernetes events ferrolb records. Operators grep for these.

/// An address was assigned to a Service.
pub const IP_ALLOCATED: &str = "IPAllocated";
/// A Service's address was released (Service changed, or the address became invalid).
pub const IP_RELEASED: &str = "IPReleased";
/// A Service could not get an address; the message says why.
pub const ALLOCATION_FAILED: &str = "AllocationFailed";
/// A configuration object was rejected; the last valid configuration stays in force.
pub const CONFIG_INVALID: &str = "ConfigInvalid";
/// A configuration object produced a warning but was accepted.
pub const CONFIG_WARNING: &str = "ConfigWarning";
/// A pool was removed or shrunk while Services still hold addresses from it.
pub const POOL_IN_USE: &str = "PoolInUse";
/// A BGPPeer's `vrf` names a VRF device that does not exist on a node, so that node's
/// session stays down.
pub const VRF_NOT_FOUND: &str = "VRFNotFound";
/// A node took over announcing a Service address in layer 2 mode.
pub const NODE_ASSIGNED: &str = "nodeAssigned";
/// The node announcing a Service address in layer 2 stopped: the interfaces the
/// L2Advertisements select have no carrier there (the message names them).
pub const NO_CARRIER: &str = "NoCarrier";
/// A Service uses an annotation under MetalLB's deprecated `metallb.universe.tf/` prefix
/// (MetalLB's reason, spelled as MetalLB spells it).
pub const DEPRECATED_ANNOTATION: &str = "deprecatedAnnotation";
