//! Fuzzes the BFD Control packet decoder and the session it feeds: see
//! `ferrolb_speaker_core::fuzz::bfd_decode`. Run from `fuzz/`: `cargo +nightly fuzz run bfd_decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrolb_speaker_core::fuzz::bfd_decode(data));
