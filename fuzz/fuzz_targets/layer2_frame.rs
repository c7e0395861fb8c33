//! Fuzzes the layer 2 responders' ARP and NDP parsing on arbitrary Ethernet frames: see
//! `ferrolb_speaker_core::fuzz::layer2_frame`. Run from `fuzz/`:
//! `cargo +nightly fuzz run layer2_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrolb_speaker_core::fuzz::layer2_frame(data));
