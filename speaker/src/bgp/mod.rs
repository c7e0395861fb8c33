//! The native BGP speaker's I/O: per-peer sessions and the peer manager that turns the desired
//! announcements into sessions and UPDATEs. The codec and the RFC 4271 state machine are pure
//! and live in [`ferrolb_speaker_core::bgp`].
//!
//! - `framing`: the core codec as a `tokio_util` codec.
//! - `session`: one tokio task per peer; timers, Adj-RIB-Out diffs.
//! - `socket`: the session's TCP connection (TTL, source address, TCP MD5).
//! - `neighbour`: an unnumbered peer's link-local address, discovered on its interface.
//! - [`manager`]: starts/stops/reconfigures sessions from config and desired state.
//! - [`restart_marker_file`]: the restart marker a speaker restarting in place leaves for the
//!   next process.

pub(crate) mod framing;
pub mod manager;
pub(crate) mod neighbour;
pub mod restart_marker_file;
pub(crate) mod session;
pub(crate) mod socket;
