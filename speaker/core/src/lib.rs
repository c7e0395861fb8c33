//! The speaker's decisions, as plain functions over plain data.
//!
//! Everything a speaker decides lives here: the index of the cluster it watches, which nodes
//! may announce an address, which one wins a layer 2 election, the announcements this node
//! owes, what its status objects report, the BGP and BFD state machines and wire codecs, layer
//! 2 frames, the heartbeat watchdog and the authentication of its datagrams. Time is an
//! argument, bytes are slices or buffers, results are values. `ferrolb-speaker` owns the
//! sockets, timers and API writes and only translates between them and these functions.
//!
//! The crate has no tokio, kube client, libc or netlink dependency, so the compiler keeps it
//! free of I/O, and every decision is testable (and fuzzable) without a network or a cluster.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod bfd;
pub mod bgp;
pub mod desired;
pub mod election;
pub mod eligibility;
pub mod fuzz;
pub mod index;
pub mod layer2;
pub mod membership;
pub mod pass;
pub mod pool_lookup;
pub mod status;
