//! ferrolb speaker: the executor.
//!
//! The speaker's decisions are pure functions in `ferrolb-speaker-core`; this crate carries
//! them out. It owns the I/O: the Kubernetes watches and stores, the membership driver and its
//! gossip sockets, layer 2 sockets and the eBPF responder, BGP sessions and their sockets, the
//! BFD runtime, the status object writers, metrics and the HTTP API.

pub mod bfd;
pub mod bgp;
pub mod fuzz;
pub(crate) mod http;
pub mod layer2;
pub mod membership;
pub(crate) mod metrics;
pub mod run;
pub(crate) mod status_objects;
pub mod stores;
pub(crate) mod thread_priority;
