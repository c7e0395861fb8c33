//! Bidirectional Forwarding Detection (RFC 5880, single hop RFC 5881, multihop RFC 5883):
//! the pure half.
//!
//! - [`packet`]: the Control packet codec.
//! - [`fsm`]: the session state machine and timer arithmetic (time is an argument).
//!
//! Sockets and the dedicated thread that drives the sessions live in `ferrolb-speaker`.

pub mod fsm;
pub mod packet;

pub use packet::BfdState;
