//! Fuzzes what the in-memory API server parses from a request (selectors, patch bodies,
//! protobuf envelopes): see `ferrolb_e2e::fuzz::apiserver_request`. Run from `fuzz/`:
//! `cargo +nightly fuzz run apiserver_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrolb_e2e::fuzz::apiserver_request(data));
