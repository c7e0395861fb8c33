//! The calls a component makes before its caches start (discovering the API groups, ensuring
//! the membership key Secret) wait for the API server instead of ending the process: a
//! component restarted while the API server is away (its node rebooted during a control-plane
//! outage) would otherwise crash-loop, and the kubelet's back-off (up to five minutes) would
//! keep it down long after the API server returned.

use crate::process::StopSignal;
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// The first wait between attempts; it doubles up to [`LONGEST_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(200);
/// The longest wait between attempts.
const LONGEST_WAIT: Duration = Duration::from_secs(5);

/// Calls `call` until it succeeds, waiting longer after each failure (logged with `what`);
/// `None` when the component is asked to stop meanwhile.
pub async fn until_ok<T, E, F, Fut>(what: &str, stop: &mut StopSignal, mut call: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Display,
{
    let mut wait = FIRST_WAIT;
    loop {
        match call().await {
            Ok(v) => return Some(v),
            Err(e) => tracing::warn!(error = %e, retry_in = ?wait, "{what} failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = &mut *stop => return None,
        }
        wait = (wait * 2).min(LONGEST_WAIT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn retries_until_the_call_succeeds() {
        let (_tx, mut stop) = tokio::sync::oneshot::channel();
        let calls = AtomicU32::new(0);
        let got = until_ok("the call", &mut stop, || async {
            let n = calls.fetch_add(1, Ordering::Relaxed);
            if n < 2 {
                Err(format!("failure {n}"))
            } else {
                Ok(n)
            }
        })
        .await;
        assert_eq!(got, Some(2));
        assert_eq!(calls.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn a_stop_ends_the_wait() {
        let (tx, mut stop) = tokio::sync::oneshot::channel();
        let _ = tx.send(());
        let got: Option<()> =
            until_ok("the call", &mut stop, || async { Err::<(), _>("down") }).await;
        assert_eq!(got, None);
    }
}
