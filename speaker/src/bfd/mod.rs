//! Bidirectional Forwarding Detection (RFC 5880, single hop RFC 5881, multihop RFC 5883).
//!
//! - [`ferrolb_speaker_core::bfd`]: the Control packet codec and the session state machine
//!   (pure; time is an argument).
//! - `runtime`: sockets and the dedicated thread that drives every session.
//! - `manager`: the public, level-triggered API the BGP sessions use.
//!
//! All BFD I/O and timers run on one dedicated OS thread with its own current-thread tokio
//! runtime, so busy Kubernetes or BGP work on the speaker's main runtime cannot delay a
//! packet: 50 ms × 3 sessions must hold on a loaded two-core node.
//!
//! - `echo_socket` and `neighbor`: the Echo function's packet socket and the peer's
//!   link-layer address (a profile with `echoMode`, IPv4 single hop; see `echo_socket` for
//!   why echo packets need a packet socket).
//!
//! Not implemented: Demand mode (we never ask for it; a remote's is honoured), echo over IPv6
//! or multihop (RFC 5883 §3: no echo over multiple hops; such a session runs without echo and
//! [`BfdManager::apply`] reports [`BfdProblem::EchoNotApplicable`]) and authentication.
//! Authenticated packets are discarded (RFC 5880 §6.8.6, no authentication configured).

mod echo_socket;
pub(crate) mod manager;
mod neighbor;
mod runtime;

pub use ferrolb_speaker_core::bfd::BfdState;
pub use manager::{BfdManager, BfdPeer, BfdProblem};
pub use runtime::BfdCounters;
