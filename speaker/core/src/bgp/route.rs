//! The attributes of one advertised route: what the desired state computes per (prefix, peer)
//! and what the UPDATE builders put on the wire. One type, so the session's Adj-RIB-Out can
//! group prefixes by identical attributes without a translation step.

use ferrolb_config::CommunityValue;

/// Path attributes of one prefix towards one peer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteAttributes {
    /// LOCAL_PREF (sent on iBGP sessions only; the session decides).
    pub local_pref: Option<u32>,
    /// Communities and large communities, sorted and deduplicated.
    pub communities: Vec<CommunityValue>,
}
