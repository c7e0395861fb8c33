//! End-to-end benchmarks: they print figures, they do not pass or fail on wall time.

pub mod addressed_service;
pub mod bfd;
pub mod bgp;
pub mod controller;
pub mod failover;
pub mod membership;
pub mod prober;
pub mod rollout;
pub mod speaker_churn;
pub mod stats;
pub mod watch_cost;
