//! Small statistics helpers for benchmark reports.

use std::time::Duration;

/// The `p`-th percentile (0–100) of `samples` by nearest rank; `None` when empty.
pub fn percentile(samples: &[Duration], p: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Peak resident set size (VmHWM) of a process, in KiB, from `/proc/PID/status`.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// Resident set size (VmRSS) of a process, in KiB, from `/proc/PID/status`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&s, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&s, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&s, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(
            percentile(&[Duration::from_secs(1)], 1.0),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn reads_own_peak_rss() {
        // The peak read after the current size is at least that size.
        let now = rss_kib(std::process::id()).expect("own /proc status");
        let peak = peak_rss_kib(std::process::id()).expect("own /proc status");
        assert!(now > 0 && now <= peak, "VmRSS {now} KiB, VmHWM {peak} KiB");
    }
}
