//! HTTP GET prober: from a lab namespace, a GET to a target every interval, each sample saying
//! which node served it (the node's echo server answers with its name), and the two figures a
//! fault is judged by:
//! - *gap*: last success before the fault → first success after it (the outage a client sees);
//! - *takeover*: fault → first success served by another node (how fast the address moved).

use crate::cluster::ns_runtime;
use anyhow::bail;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One probe result.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When the probe was sent.
    pub at: Instant,
    /// The serving node's name on success.
    pub node: Option<String>,
}

/// HTTP GET prober running on a runtime inside a lab namespace.
pub struct Prober {
    rt: Option<tokio::runtime::Runtime>,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
}

impl Prober {
    /// Starts probing `target` every `interval` from namespace `ns` (sockets are opened there).
    pub fn start(ns: &str, target: SocketAddr, interval: Duration) -> anyhow::Result<Prober> {
        if !crate::lab::topology::is_lab_addr(target.ip()) {
            bail!("{target} is not a lab address");
        }
        let rt = ns_runtime(ns)?;
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (stop2, samples2) = (stop.clone(), samples.clone());
        rt.spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !stop2.load(Ordering::Relaxed) {
                tick.tick().await;
                let at = Instant::now();
                let node = probe_once(target, interval).await;
                samples2
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Sample { at, node });
            }
        });
        Ok(Prober {
            rt: Some(rt),
            stop,
            samples,
        })
    }

    /// The samples so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Forgets the samples so far.
    pub fn clear(&self) {
        self.samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Waits until a probe sent after `after` succeeds (served by a node `accept` agrees with);
    /// returns that sample.
    pub fn wait_success(
        &self,
        after: Instant,
        timeout: Duration,
        accept: impl Fn(&str) -> bool,
    ) -> Option<Sample> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self
                .samples()
                .into_iter()
                .find(|s| s.at > after && s.node.as_deref().is_some_and(&accept))
            {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// One GET: connect within `connect_timeout`, the whole exchange within 100 ms (a probe that
/// takes longer counts as failed: a client would have seen a stall).
async fn probe_once(target: SocketAddr, connect_timeout: Duration) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(target))
        .await
        .ok()?
        .ok()?;
    let exchange = async {
        stream
            .write_all(b"GET / HTTP/1.0\r\nHost: probe\r\n\r\n")
            .await
            .ok()?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (_, body) = text.split_once("\r\n\r\n")?;
        body.split_whitespace().next().map(str::to_string)
    };
    tokio::time::timeout(Duration::from_millis(100), exchange)
        .await
        .ok()?
}

/// Gap and takeover of one fault at `fault_at` whose owner was `old`.
pub fn measure(samples: &[Sample], fault_at: Instant, old: &str) -> Option<(Duration, Duration)> {
    let last_before = samples
        .iter()
        .filter(|s| s.at <= fault_at && s.node.is_some())
        .map(|s| s.at)
        .max()?;
    let first_after = samples
        .iter()
        .filter(|s| s.at > fault_at && s.node.is_some())
        .map(|s| s.at)
        .min()?;
    let takeover = samples
        .iter()
        .filter(|s| s.at > fault_at && s.node.as_deref().is_some_and(|n| n != old))
        .map(|s| s.at)
        .min()?;
    Some((first_after - last_before, takeover - fault_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_and_takeover_from_samples() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let s = |ms, n: Option<&str>| Sample {
            at: at(ms),
            node: n.map(str::to_string),
        };
        let samples = vec![
            s(0, Some("node1")),
            s(10, Some("node1")),
            s(20, None),
            s(30, None),
            s(40, Some("node1")),
            s(50, Some("node2")),
        ];
        let (gap, takeover) = measure(&samples, at(15), "node1").expect("measured");
        assert_eq!(gap, Duration::from_millis(30));
        assert_eq!(takeover, Duration::from_millis(35));
        assert!(measure(&samples[..4], at(15), "node1").is_none());
    }
}
