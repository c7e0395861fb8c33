//! BGP decisions: the wire codec over `netgauze-bgp-pkt` and the RFC 4271 state machine.
//!
//! - [`codec`]: framing checks, NOTIFICATION mapping, message builders; pure functions over
//!   byte buffers.
//! - [`fsm`]: the pure state machine (`step(state, event) -> (state, actions)`).
//! - [`route`]: the attributes of one advertised route, shared by the desired state and the
//!   UPDATE builders.

pub mod codec;
pub mod fsm;
pub mod route;

pub use route::RouteAttributes;
