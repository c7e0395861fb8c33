//! The native BGP speaker: wire codec, RFC 4271 state machine, per-peer sessions and the
//! peer manager that turns the desired announcements into sessions and UPDATEs.
//!
//! - [`codec`]: thin layer over `netgauze-bgp-pkt` (framing checks, NOTIFICATION mapping,
//!   message builders).
//! - [`fsm`]: the pure state machine (`step(state, event) -> (state, actions)`).
//! - [`session`]: one tokio task per peer; sockets, timers, Adj-RIB-Out diffs.
//! - [`manager`]: starts/stops/reconfigures sessions from config and desired state.

pub mod codec;
pub mod fsm;
pub mod manager;
pub mod session;
