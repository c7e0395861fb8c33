//! The ARP prober lives in the library (the chaos run uses it too).
pub use ferrolb_e2e::arp_probe::*;
