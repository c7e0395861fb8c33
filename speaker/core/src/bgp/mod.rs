//! BGP decisions: the wire codec over `netgauze-bgp-pkt` and the RFC 4271 state machine.
//!
//! - [`codec`]: framing checks, NOTIFICATION mapping, message builders; pure functions over
//!   byte buffers.
//! - [`fsm`]: the pure state machine (`step(state, event) -> (state, actions)`).
//! - [`route`]: the attributes of one advertised route, shared by the desired state and the
//!   UPDATE builders.
//! - [`departure`]: a stopping speaker restarts in place (keep routes through graceful
//!   restart) or its node leaves (withdraw, then Cease), read from its Node.
//! - [`restart_marker`]: what the stopping process leaves for the next one, so that it
//!   announces the Restart State bit within the restart time.
//! - [`session_params`]: what a BGPPeer's fields make of one session: the AS in our OPEN
//!   (`localASN`) and the address families offered (`dualStackAddressFamily`, `disableMP`).
//! - [`neighbour`]: unnumbered peering: the router's link-local address among what answered
//!   on the interface, and the IPv6 next hops that name this node.

pub mod codec;
pub mod departure;
pub mod fsm;
pub mod neighbour;
pub mod restart_marker;
pub mod route;
pub mod session_params;

pub use route::RouteAttributes;
