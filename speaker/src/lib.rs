//! ferrolb speaker library.
//!
//! The modules here are the speaker's pure core: plain data in, decisions out. Kubernetes
//! watches, sockets, netlink and BGP sessions live around them and only translate.

pub mod bfd;
pub mod bgp;
pub mod desired;
pub mod election;
pub mod eligibility;
pub mod http;
pub mod index;
pub mod layer2;
pub mod membership;
pub mod metrics;
pub mod run;
pub mod status_objects;
pub mod stores;
pub mod thread_priority;
