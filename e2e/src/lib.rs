//! ferrolb end-to-end test harness.

#![forbid(unsafe_code)]

pub mod apiserver;
pub mod bench;
pub mod cluster;
pub mod credentials;
pub mod endpoints;
pub mod fixtures;
pub mod fuzz;
pub mod image;
pub use ferrolb_lab as lab;
pub mod lab_tls;
pub mod labcmd;
pub mod private_file;
pub mod tools;
pub mod workload;
