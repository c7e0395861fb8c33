//! The observers: clients probing every Service address over HTTP, the Service statuses read
//! from the API server, the router's table read from BIRD. ARP replies are recorded by
//! [`crate::arp_probe`]. None of them asks a ferrolb component about itself.

use super::invariants::{PROBE_TIMEOUT, ProbeSample, RouterSample, ServiceSample};
use crate::cluster::{Cluster, ns_runtime};
use crate::fixtures::ingress_ips;
use anyhow::bail;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every observer samples this often.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// HTTP GET probes to one target every [`SAMPLE_EVERY`], from a lab namespace.
pub struct HttpProber {
    rt: Option<tokio::runtime::Runtime>,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<(Instant, bool)>>>,
}

impl HttpProber {
    pub fn start(ns: &str, target: SocketAddr) -> anyhow::Result<HttpProber> {
        if !crate::lab::topology::is_lab_addr(target.ip()) {
            bail!("{target} is not a lab address");
        }
        let rt = ns_runtime(ns)?;
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (stop2, samples2) = (stop.clone(), samples.clone());
        rt.spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !stop2.load(Ordering::Relaxed) {
                tick.tick().await;
                let at = Instant::now();
                let ok = tokio::time::timeout(PROBE_TIMEOUT, probe_once(target))
                    .await
                    .unwrap_or(false);
                samples2
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((at, ok));
            }
        });
        Ok(HttpProber {
            rt: Some(rt),
            stop,
            samples,
        })
    }

    /// The samples so far, as offsets from `t0`.
    pub fn samples(&self, t0: Instant) -> Vec<ProbeSample> {
        self.samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(at, _)| *at >= t0)
            .map(|&(at, ok)| ProbeSample { at: at - t0, ok })
            .collect()
    }

    /// Whether a probe sent after `after` succeeded.
    pub fn succeeded_since(&self, after: Instant) -> bool {
        self.samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|&(at, ok)| at >= after && ok)
    }
}

impl Drop for HttpProber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// One GET answered by an echo server (any node: every node serves every Service).
async fn probe_once(target: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(target).await else {
        return false;
    };
    if stream
        .write_all(b"GET / HTTP/1.0\r\nHost: chaos\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = Vec::new();
    if stream.read_to_end(&mut buf).await.is_err() {
        return false;
    }
    let text = String::from_utf8_lossy(&buf);
    text.starts_with("HTTP/1.") && text.contains(" 200 ")
}

/// Every Service's addresses in `default`, or `None` when the API server does not answer
/// within a sample period.
pub fn sample_services(c: &Cluster, t0: Instant) -> ServiceSample {
    let at = Instant::now();
    let api: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let list = c
        .run(async move {
            tokio::time::timeout(Duration::from_millis(500), api.list(&Default::default())).await
        })
        .ok()
        .and_then(Result::ok)
        .and_then(Result::ok);
    ServiceSample {
        at: at.saturating_duration_since(t0),
        addresses: list.map(|l| {
            l.items
                .iter()
                .filter_map(|s| Some((s.metadata.name.clone()?, ingress_ips(s))))
                .collect()
        }),
    }
}

/// BIRD's routes (`show route`): next hops (node numbers) per host route.
pub fn sample_router(c: &Cluster, t0: Instant, nodes: &BTreeMap<IpAddr, usize>) -> RouterSample {
    let at = Instant::now();
    let hops = c
        .bird
        .as_ref()
        .and_then(|b| b.birdc("show route").ok())
        .map(|text| parse_bird_routes(&text, nodes));
    RouterSample {
        at: at.saturating_duration_since(t0),
        hops,
    }
}

/// Parses `birdc show route`: a line starting with a prefix opens a route, `via ADDR` on it
/// or the lines after it (further paths of the same prefix) add a next hop. Host routes only
/// (/32, /128), keyed by address; next hops mapped to node numbers with `nodes`.
pub fn parse_bird_routes(
    text: &str,
    nodes: &BTreeMap<IpAddr, usize>,
) -> BTreeMap<IpAddr, BTreeSet<usize>> {
    let mut out: BTreeMap<IpAddr, BTreeSet<usize>> = BTreeMap::new();
    let mut current: Option<IpAddr> = None;
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            current = line
                .split_whitespace()
                .next()
                .and_then(|w| w.parse::<ipnet::IpNet>().ok())
                .filter(|n| n.prefix_len() == n.max_prefix_len())
                .map(|n| n.addr());
            if let Some(ip) = current {
                out.entry(ip).or_default();
            }
        }
        let Some(ip) = current else { continue };
        let words: Vec<&str> = line.split_whitespace().collect();
        for w in words.windows(2).filter(|w| w[0] == "via") {
            if let Some(n) = w[1]
                .trim_end_matches(',')
                .parse::<IpAddr>()
                .ok()
                .and_then(|a| nodes.get(&a))
            {
                out.entry(ip).or_default().insert(*n);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bird_routes_with_several_paths() {
        let text = "Table master4:
10.200.100.0/32      unicast [node1v4 03:40:01.123] * (100) [AS64512i]
\tvia 10.200.0.11 on eth0
                     unicast [node2v4 03:40:01.456] (100) [AS64512i]
\tvia 10.200.0.12 on eth0
10.200.100.1/32      unicast [node3v4 03:40:01.123] * (100) [AS64512i]
\tvia 10.200.0.13 on eth0
10.200.0.0/24        unicast [direct1 03:40:00] * (240)
\tdev eth0
";
        let nodes: BTreeMap<IpAddr, usize> = (1..=3)
            .map(|i| (format!("10.200.0.1{i}").parse().expect("ip"), i))
            .collect();
        let routes = parse_bird_routes(text, &nodes);
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(routes[&ip("10.200.100.0")], BTreeSet::from([1, 2]));
        assert_eq!(routes[&ip("10.200.100.1")], BTreeSet::from([3]));
        assert_eq!(routes.len(), 2);
    }
}
