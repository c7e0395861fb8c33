//! How long a cache's watch waits before it retries after an error (the API server away,
//! a dropped connection). kube's default (800 ms doubling to 30 s, as client-go's reflector)
//! leaves a component blind for up to half a minute after an API server returns from an
//! outage; the addresses keep being served meanwhile, but a Service created or changed then
//! waits. These waits are shorter — at most 5 s — with ±25 % jitter so that every node's
//! speaker does not come back in the same instant, and they start over only after the watch
//! has worked for a while, so a flapping API server still gets longer waits.

use kube::runtime::utils::{Backoff, ResetTimerBackoff};
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// The first wait.
const FIRST: Duration = Duration::from_millis(250);
/// The longest wait.
const LONGEST: Duration = Duration::from_secs(5);
/// How long a watch must work before the waits start over from [`FIRST`].
const RESET_AFTER: Duration = Duration::from_secs(30);

/// Doubling waits from [`FIRST`] to [`LONGEST`], jittered.
#[derive(Clone, Debug)]
pub struct Doubling {
    next: Duration,
}

impl Default for Doubling {
    fn default() -> Self {
        Doubling { next: FIRST }
    }
}

impl Iterator for Doubling {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let base = self.next;
        self.next = (self.next * 2).min(LONGEST);
        Some(jittered(base, random_unit()))
    }
}

impl Backoff for Doubling {
    fn reset(&mut self) {
        self.next = FIRST;
    }
}

/// `base` scaled by a factor in [0.75, 1.25) chosen by `unit` in [0, 1).
fn jittered(base: Duration, unit: f64) -> Duration {
    base.mul_f64(0.75 + unit.clamp(0.0, 1.0) * 0.5)
}

/// A number in [0, 1) from the standard library's per-instance random hash keys.
fn random_unit() -> f64 {
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// The backoff every cache of the components uses.
pub fn watch_backoff() -> ResetTimerBackoff<Doubling> {
    ResetTimerBackoff::new(Doubling::default(), RESET_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_five_seconds_within_the_jitter() {
        let waits: Vec<Duration> = Doubling::default().take(8).collect();
        let bases = [250, 500, 1000, 2000, 4000, 5000, 5000, 5000];
        for (w, base) in waits.iter().zip(bases) {
            let base = Duration::from_millis(base);
            assert!(
                *w >= base.mul_f64(0.75) && *w < base.mul_f64(1.25),
                "{w:?} outside the jitter of {base:?}"
            );
        }
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Doubling::default();
        for _ in 0..5 {
            b.next();
        }
        b.reset();
        let first = b.next().expect("a wait");
        assert!(first < FIRST.mul_f64(1.25));
    }

    #[test]
    fn jitter_spans_a_quarter_either_way() {
        let base = Duration::from_secs(4);
        assert_eq!(jittered(base, 0.0), Duration::from_secs(3));
        assert_eq!(jittered(base, 0.5), Duration::from_secs(4));
        assert!(jittered(base, 0.999_999) < Duration::from_secs(5));
    }
}
