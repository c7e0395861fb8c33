//! Fuzzes a Service's allocation annotations as the controller reads and allocates them: see
//! `ferrolb_controller::fuzz::service_annotations`. Run from `fuzz/`:
//! `cargo +nightly fuzz run service_annotations`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrolb_controller::fuzz::service_annotations(data));
