//! Bodies of the fuzz targets in `fuzz/` that exercise this crate's decoders of untrusted
//! input (BGP and BFD from peers, ARP and NDP frames from the segment). Each body takes the raw
//! input, runs the decoder as the speaker does and panics when an invariant breaks; the fuzz
//! targets call them, and `tests.rs` replays every seed and crash reproducer of
//! `fuzz/seeds/<target>/` through them on stable Rust, so a regression fails `cargo test`.
//!
//! Not for production code paths: the panics are the point.

mod bfd;
mod bgp;
mod layer2;

pub use bfd::bfd_decode;
pub use bgp::bgp_decode;
pub use layer2::layer2_frame;

#[cfg(test)]
mod tests;
