//! The one rule by which monotonic counters kept by the runtime components (plain atomics that
//! know nothing about Prometheus) become Prometheus counters: each observation adds what grew
//! since the previous one, per source. A source whose counters went down was replaced (a
//! reconnected session, a restarted membership) and counts from zero again, so nothing it
//! counted is lost and nothing is counted twice.

use ferrolb_runtime::sync::lock;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// The last values seen per source `S`, each a set of counters named by `C`.
pub(crate) struct CounterDeltas<S, C> {
    last: Mutex<BTreeMap<S, BTreeMap<C, u64>>>,
}

impl<S: Ord, C: Ord + Clone> Default for CounterDeltas<S, C> {
    fn default() -> Self {
        Self {
            last: Mutex::new(BTreeMap::new()),
        }
    }
}

impl<S: Ord, C: Ord + Clone> CounterDeltas<S, C> {
    /// Records `now` for `source` and returns how much each counter grew since the last call.
    pub(crate) fn advance(&self, source: S, now: BTreeMap<C, u64>) -> Vec<(C, u64)> {
        let mut last = lock(&self.last);
        let before = last.remove(&source).unwrap_or_default();
        let replaced = before
            .iter()
            .any(|(c, was)| now.get(c).is_none_or(|n| n < was));
        let grown = now
            .iter()
            .map(|(c, &n)| {
                let was = if replaced {
                    0
                } else {
                    before.get(c).copied().unwrap_or(0)
                };
                (c.clone(), n - was)
            })
            .collect();
        last.insert(source, now);
        grown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&'static str, u64)]) -> BTreeMap<&'static str, u64> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn growth_since_the_last_observation_per_source() {
        let d = CounterDeltas::default();
        assert_eq!(
            d.advance("p", values(&[("a", 3), ("b", 1)])),
            vec![("a", 3), ("b", 1)]
        );
        assert_eq!(
            d.advance("p", values(&[("a", 5), ("b", 1)])),
            vec![("a", 2), ("b", 0)]
        );
        // Another source is counted on its own.
        assert_eq!(d.advance("q", values(&[("a", 1)])), vec![("a", 1)]);
    }

    #[test]
    fn a_replaced_source_counts_from_zero_again() {
        let d = CounterDeltas::default();
        d.advance("p", values(&[("a", 7), ("b", 2)]));
        // `b` went down: the source was replaced; all of its new counts are new.
        assert_eq!(
            d.advance("p", values(&[("a", 9), ("b", 1)])),
            vec![("a", 9), ("b", 1)]
        );
        // A counter that disappeared means the same.
        assert_eq!(d.advance("p", values(&[("b", 4)])), vec![("b", 4)]);
    }

    #[test]
    fn a_counter_seen_for_the_first_time_counts_whole() {
        let d = CounterDeltas::default();
        d.advance("p", values(&[("a", 1)]));
        assert_eq!(
            d.advance("p", values(&[("a", 1), ("c", 2)])),
            vec![("a", 0), ("c", 2)]
        );
    }
}
