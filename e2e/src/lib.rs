//! ferrolb end-to-end test harness.

// `deny`, not `forbid`: the ARP prober alone opens raw packet sockets through libc (the
// gratuitous ARP capture uses its socket functions).
#![deny(unsafe_code)]

pub mod apiserver;
#[allow(unsafe_code)]
pub mod arp_probe;
pub mod bench;
pub mod chaos;
pub mod cluster;
pub mod credentials;
pub mod endpoints;
pub mod fixtures;
pub mod fuzz;
pub mod garp_capture;
pub mod image;
pub use ferrolb_lab as lab;
pub mod lab_tls;
pub mod labcmd;
pub mod private_file;
pub mod tools;
pub mod workload;
