//! Fuzzes manifest files as `ferrolb-controller validate` and `migrate` read them: see
//! `ferrolb_controller::fuzz::config_manifest`. Run from `fuzz/`:
//! `cargo +nightly fuzz run config_manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrolb_controller::fuzz::config_manifest(data));
