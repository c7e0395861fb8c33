//! Fuzzes a datagram on the membership socket, before and after authentication: see
//! `ferrolb_speaker::fuzz::membership_datagram`. Run from `fuzz/`:
//! `cargo +nightly fuzz run membership_datagram`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrolb_speaker::fuzz::membership_datagram(data));
