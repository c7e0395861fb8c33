//! What one measured window of probes and long-lived connections amounts to (pure).

use crate::bench::prober::Sample;
use std::time::{Duration, Instant};

/// One prober's figures over a window.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ProbeFigures {
    /// Probes sent (each a new TCP connection and one HTTP request).
    pub sent: usize,
    /// Probes that failed (no answer within the probe's bounds).
    pub failed: usize,
    /// The longest time between two successes with failures between them (zero when none
    /// failed), in milliseconds.
    pub longest_gap_ms: f64,
    /// How many times the serving node changed from one success to the next.
    pub node_changes: usize,
}

/// The figures of `samples` sent in `[from, to]`.
pub fn probe_figures(samples: &[Sample], from: Instant, to: Instant) -> ProbeFigures {
    let window: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= from && s.at <= to)
        .collect();
    let mut figures = ProbeFigures {
        sent: window.len(),
        failed: window.iter().filter(|s| s.node.is_none()).count(),
        ..ProbeFigures::default()
    };
    let mut last_ok: Option<&Sample> = None;
    let mut failed_since = false;
    let mut longest = Duration::ZERO;
    for s in &window {
        match (&s.node, last_ok) {
            (None, _) => failed_since = true,
            (Some(node), prev) => {
                // Failures before the window's first success count from the window's start.
                let since = prev.map_or(from, |p| p.at);
                if failed_since {
                    longest = longest.max(s.at - since);
                }
                if let Some(p) = prev
                    && p.node.as_deref() != Some(node.as_str())
                {
                    figures.node_changes += 1;
                }
                last_ok = Some(s);
                failed_since = false;
            }
        }
    }
    // Failures up to the window's end: the gap runs to its end.
    if failed_since && let Some(p) = last_ok {
        longest = longest.max(to - p.at);
    } else if failed_since {
        longest = to - from;
    }
    figures.longest_gap_ms = longest.as_secs_f64() * 1e3;
    figures
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(t0: Instant, nodes: &[Option<&str>]) -> Vec<Sample> {
        nodes
            .iter()
            .enumerate()
            .map(|(i, n)| Sample {
                at: t0 + Duration::from_millis(10 * i as u64),
                node: n.map(str::to_string),
            })
            .collect()
    }

    #[test]
    fn counts_failures_gaps_and_node_changes() {
        let t0 = Instant::now();
        let s = samples(
            t0,
            &[Some("a"), None, None, Some("b"), Some("b"), None, Some("b")],
        );
        let f = probe_figures(&s, t0, t0 + Duration::from_millis(60));
        assert_eq!(f.sent, 7);
        assert_eq!(f.failed, 3);
        assert_eq!(f.node_changes, 1);
        assert!(
            (f.longest_gap_ms - 30.0).abs() < 1e-6,
            "{}",
            f.longest_gap_ms
        );
    }

    #[test]
    fn failures_before_the_first_success_count_from_the_window_start() {
        let t0 = Instant::now();
        let s = samples(t0, &[None, Some("b"), Some("b")]);
        let f = probe_figures(&s, t0, t0 + Duration::from_millis(20));
        assert_eq!(f.failed, 1);
        assert!(
            (f.longest_gap_ms - 10.0).abs() < 1e-6,
            "{}",
            f.longest_gap_ms
        );
    }

    #[test]
    fn a_window_without_failures_has_no_gap() {
        let t0 = Instant::now();
        let s = samples(t0, &[Some("a"), Some("a"), Some("a")]);
        let f = probe_figures(&s, t0, t0 + Duration::from_millis(20));
        assert_eq!((f.sent, f.failed, f.node_changes), (3, 0, 0));
        assert_eq!(f.longest_gap_ms, 0.0);
    }

    #[test]
    fn failures_at_the_end_run_to_the_window_end() {
        let t0 = Instant::now();
        let s = samples(t0, &[Some("a"), None, None]);
        let f = probe_figures(&s, t0, t0 + Duration::from_millis(50));
        assert_eq!(f.failed, 2);
        assert!((f.longest_gap_ms - 50.0).abs() < 1e-6);
        let only_outside =
            probe_figures(&s, t0 + Duration::from_secs(1), t0 + Duration::from_secs(2));
        assert_eq!(only_outside, ProbeFigures::default());
    }
}
