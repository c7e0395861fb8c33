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
//! Not implemented: Demand mode (we never ask for it; a remote's is honoured), the Echo
//! function and authentication. A BFDProfile with `echoMode: true` makes
//! [`BfdManager::apply`] return [`BfdProblem::EchoNotSupported`] and the session runs
//! without echo (we advertise Required Min Echo RX 0, so the peer sends none): asynchronous
//! mode still detects failures within the profile's detection time, and refusing the session
//! would leave the BGP peer without any fast detection. Authenticated packets are discarded
//! (RFC 5880 §6.8.6, no authentication configured).

pub(crate) mod manager;
mod runtime;

pub use ferrolb_speaker_core::bfd::BfdState;
pub use manager::{BfdManager, BfdPeer, BfdProblem};
pub use runtime::BfdCounters;
