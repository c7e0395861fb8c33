//! How long a cache's watch waits before it retries after an error (the API server away,
//! a dropped connection). kube's default (800 ms doubling to 30 s, as client-go's reflector)
//! leaves a component blind for up to half a minute after an API server returns from an
//! outage; the addresses keep being served meanwhile, but a Service created or changed then
//! waits. These waits are shorter — at most 5 s — with ±25 % jitter so that every node's
//! speaker does not come back in the same instant. They start over when the watch delivers
//! an event (the server answered) or after 30 s without an error; a server that fails every
//! request keeps the longest wait.
//!
//! One error is not a failure: `410 Gone` on a watch (its resourceVersion older than the
//! server's history, as after an API server restart or an etcd compaction) is the server
//! answering, and telling the watcher to list again. kube's `StreamBackoff` waits after it
//! like after any error — by then the waits have doubled through the outage, so a speaker
//! stayed blind up to 5 s more after the server was back. [`paced`] lists again at once.

use futures::{Stream, StreamExt};
use kube::runtime::utils::{Backoff, ResetTimerBackoff};
use kube::runtime::watcher;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// The first wait.
const FIRST: Duration = Duration::from_millis(250);
/// The longest wait.
const LONGEST: Duration = Duration::from_secs(5);
/// A wait this long after the last one starts over from [`FIRST`].
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

/// `stream` (a watcher's, or a reflector's over one) with the waits of [`watch_backoff`]
/// after its errors: an error is passed on at once and the wait comes before the next item
/// is asked for. An event, or a `410 Gone` (see the module's comment), starts the waits over
/// and costs none.
pub fn paced<S, T>(stream: S) -> impl Stream<Item = Result<T, watcher::Error>> + Send
where
    S: Stream<Item = Result<T, watcher::Error>> + Send + 'static,
    T: Send + 'static,
{
    paced_by(stream, watch_backoff())
}

fn paced_by<S, T, B>(stream: S, backoff: B) -> impl Stream<Item = Result<T, watcher::Error>> + Send
where
    S: Stream<Item = Result<T, watcher::Error>> + Send + 'static,
    T: Send + 'static,
    B: Backoff + 'static,
{
    struct Pace<S, B> {
        stream: std::pin::Pin<Box<S>>,
        backoff: B,
        wait: Option<Duration>,
    }
    let start = Pace {
        stream: Box::pin(stream),
        backoff,
        wait: None,
    };
    futures::stream::unfold(start, |mut pace| async move {
        if let Some(wait) = pace.wait.take() {
            tokio::time::sleep(wait).await;
        }
        let item = pace.stream.next().await?;
        match &item {
            Err(e) if !is_gone(e) => pace.wait = pace.backoff.next(),
            _ => pace.backoff.reset(),
        }
        Some((item, pace))
    })
}

/// A watch answered `410 Gone`: the watcher lists again next.
fn is_gone(e: &watcher::Error) -> bool {
    matches!(e, watcher::Error::WatchError(status) if status.code == 410)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

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

    /// A backoff of fixed 1 s waits that counts its resets.
    struct Fixed {
        resets: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }
    impl Iterator for Fixed {
        type Item = Duration;
        fn next(&mut self) -> Option<Duration> {
            Some(Duration::from_secs(1))
        }
    }
    impl Backoff for Fixed {
        fn reset(&mut self) {
            self.resets
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn status(code: u16) -> watcher::Error {
        watcher::Error::WatchError(Status::failure("test", "Test").with_code(code).boxed())
    }

    /// How long after the start each item of `items` came out of [`paced_by`].
    async fn arrivals(items: Vec<Result<u8, watcher::Error>>) -> (Vec<Duration>, usize) {
        let resets = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let backoff = Fixed {
            resets: resets.clone(),
        };
        let start = tokio::time::Instant::now();
        let times = paced_by(futures::stream::iter(items), backoff)
            .map(|_| start.elapsed())
            .collect()
            .await;
        (times, resets.load(std::sync::atomic::Ordering::Relaxed))
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_waits_before_the_next_item_not_before_itself() {
        let (times, resets) = arrivals(vec![Err(status(500)), Ok(1), Ok(2)]).await;
        assert_eq!(
            times,
            [
                Duration::ZERO,
                Duration::from_secs(1),
                Duration::from_secs(1)
            ]
        );
        assert_eq!(resets, 2, "every event starts the waits over");
    }

    #[tokio::test(start_paused = true)]
    async fn a_gone_watch_lists_again_at_once() {
        let (times, resets) = arrivals(vec![Err(status(410)), Ok(1)]).await;
        assert_eq!(times, [Duration::ZERO, Duration::ZERO]);
        assert_eq!(resets, 2, "the 410 starts the waits over");
    }

    #[tokio::test(start_paused = true)]
    async fn errors_that_are_not_gone_each_wait() {
        let (times, _) = arrivals(vec![Err(status(500)), Err(status(403)), Ok(1)]).await;
        assert_eq!(
            times,
            [
                Duration::ZERO,
                Duration::from_secs(1),
                Duration::from_secs(2)
            ]
        );
    }
}
