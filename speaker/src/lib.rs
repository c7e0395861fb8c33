//! ferrolb speaker: the executor.
//!
//! The speaker's decisions are pure functions in `ferrolb-speaker-core`; this crate carries
//! them out. It owns the I/O: the Kubernetes watches and stores, the membership driver and its
//! gossip sockets, layer 2 sockets and the eBPF responder, BGP sessions and their sockets, the
//! BFD runtime, the status object writers, metrics and the HTTP API.

pub mod bfd;
pub mod bgp;
pub mod http;
pub mod layer2;
pub mod membership;
pub mod metrics;
pub mod run;
pub mod status_objects;
pub mod stores;
pub mod thread_priority;
