//! Bidirectional Forwarding Detection (RFC 5880, single hop RFC 5881, multihop RFC 5883):
//! the pure half.
//!
//! - [`packet`]: the Control packet codec.
//! - [`fsm`]: the session state machine and timer arithmetic (time is an argument).
//! - [`echo`]: the Echo function's payload and its send/detect decisions.
//! - [`echo_frame`]: the IPv4/UDP headers of echo packets, written and read by the speaker
//!   on packet sockets.
//!
//! Sockets and the dedicated thread that drives the sessions live in `ferrolb-speaker`.

pub mod echo;
pub mod echo_frame;
pub mod fsm;
pub mod packet;

pub use packet::BfdState;
