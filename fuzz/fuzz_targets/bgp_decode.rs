//! Fuzzes the BGP wire decoder: see `ferrolb_speaker_core::fuzz::bgp_decode` for the input
//! layout and the invariants. Run from `fuzz/`: `cargo +nightly fuzz run bgp_decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrolb_speaker_core::fuzz::bgp_decode(data));
