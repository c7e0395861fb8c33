//! Polling helpers: wait until a condition holds, with a timeout.

use std::time::{Duration, Instant};

use crate::{LabError, Result};

/// Default polling interval: short, because lab events (sessions, ARP) happen in ms.
pub const POLL: Duration = Duration::from_millis(100);

/// Polls `cond` every [`POLL`] until it returns `true` or `timeout` passes.
/// `what` names the condition in the timeout error.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Result<()> {
    wait_for(what, timeout, || cond().then_some(())).map(|_| ())
}

/// Polls `probe` until it yields `Some(value)` or `timeout` passes. The probe is
/// always tried at least once, and once more right at the deadline.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return Ok(v);
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return Err(LabError::Timeout {
                what: what.to_string(),
                after: timeout,
            });
        }
        std::thread::sleep(POLL.min(timeout - elapsed));
    }
}

/// Async variant of [`wait_until`] for tokio code; `cond` must not block for long.
pub async fn wait_until_async<F, Fut>(what: &str, timeout: Duration, mut cond: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if cond().await {
            return Ok(());
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return Err(LabError::Timeout {
                what: what.to_string(),
                after: timeout,
            });
        }
        tokio::time::sleep(POLL.min(timeout - elapsed)).await;
    }
}
