//! Identifiers the server makes up: object uids and the randomness behind `generateName`
//! suffixes.

use std::sync::atomic::{AtomicU64, Ordering};

static SEED: AtomicU64 = AtomicU64::new(0);

/// A non-cryptographic random number (uids and generateName only need uniqueness).
pub fn next_random() -> u64 {
    let mut s = SEED.load(Ordering::Relaxed);
    if s == 0 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9);
        s = t ^ (u64::from(std::process::id()) << 32) | 1;
    }
    // splitmix64 over an atomically advanced counter.
    let z = SEED
        .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
        .wrapping_add(s)
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A random (version 4 layout) uid, as `metadata.uid` carries.
pub fn new_uid() -> String {
    let (a, b) = (next_random(), next_random());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}
