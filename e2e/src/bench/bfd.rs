//! How fast the router drops a failed node's routes: with BFD at 300 ms × 3 and 50 ms × 3,
//! and without BFD (the BGP hold time), side by side in the same lab.
//!
//! Setup per configuration: the lab with three nodes, the controller and the speakers, the
//! router (BIRD or FRR, peering with every node with the BGP example's password, BFD on the
//! router's side with the configuration's timers), the BGP example applied (its BGPPeer
//! naming a BFDProfile with the same timers, or none) and one Cluster-policy Service, so the
//! router's kernel holds a route with three next hops. Each trial fails one node — freezes
//! its speaker (SIGSTOP) or takes its link down — and measures the time until that node's
//! next hop leaves the router's kernel route (polled every few milliseconds), then repairs
//! the node and waits for the route to have all three next hops again. Victims rotate over
//! the three nodes. The hold time is the example's 9 s (MetalLB's default is 90 s, which
//! would only scale the no-BFD column).

use crate::bench::stats::percentile;
use crate::cluster::{Cluster, ClusterOptions, EXAMPLE_BGP_PASSWORD, RouterKind};
use crate::lab::daemons::BfdTimers;
use anyhow::{Context, anyhow};
use serde::Serialize;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const BGP_EXAMPLE: &str = include_str!("../../../deploy/examples/bgp.yaml");
/// The first address of the example's bgp-pool: the bench's only Service gets it.
const SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 100, 0);
const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: bench
  namespace: default
spec:
  type: LoadBalancer
  selector:
    app: bench
  ports:
    - port: 80
";
const NODES: usize = 3;

/// How a node fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// SIGSTOP of the node's speaker (a hung process: its sockets stay open).
    Freeze,
    /// The node's LAN link goes down.
    LinkDown,
}

impl std::str::FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "freeze" => Ok(Fault::Freeze),
            "link-down" => Ok(Fault::LinkDown),
            _ => Err(format!("unknown fault {s:?}: freeze or link-down")),
        }
    }
}

/// Options.
#[derive(Clone, Debug)]
pub struct BfdBench {
    /// Trials per configuration.
    pub trials: usize,
    /// The router daemon (BIRD or FRR).
    pub router: RouterKind,
    /// How nodes fail.
    pub fault: Fault,
    /// Skip the configuration without BFD (each of its trials takes a hold time).
    pub skip_hold_time: bool,
}

/// One configuration's figures.
#[derive(Debug, Serialize)]
pub struct ConfigFigures {
    /// `BFD 50 ms x 3`, `no BFD (hold time 9 s)`.
    pub name: String,
    /// Detection time the configuration promises, ms.
    pub expected_ms: u64,
    /// Each trial's withdraw time, ms.
    pub samples_ms: Vec<f64>,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile (nearest rank: the maximum for fewer than 100 trials), ms.
    pub p99_ms: f64,
}

/// The report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `BIRD` or `FRR`.
    pub router: String,
    /// How nodes failed.
    pub fault: Fault,
    /// Trials per configuration.
    pub trials: usize,
    /// One entry per configuration, fastest first.
    pub configs: Vec<ConfigFigures>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "Router withdraw time after a node failure ({:?}), {} trials each, router {}",
            self.fault, self.trials, self.router
        )?;
        writeln!(
            f,
            "  {:<26} {:>10} {:>10} {:>10}   samples (ms)",
            "configuration", "expected", "p50", "p99"
        )?;
        for c in &self.configs {
            let samples: Vec<String> = c.samples_ms.iter().map(|s| format!("{s:.0}")).collect();
            writeln!(
                f,
                "  {:<26} {:>8} ms {:>7.0} ms {:>7.0} ms   {}",
                c.name,
                c.expected_ms,
                c.p50_ms,
                c.p99_ms,
                samples.join(" ")
            )?;
        }
        if let (Some(slow), Some(fast)) = (self.configs.last(), self.configs.first())
            && fast.p50_ms > 0.0
            && self.configs.len() > 1
        {
            writeln!(
                f,
                "  ratio p50 {} / {}: {:.1}",
                slow.name,
                fast.name,
                slow.p50_ms / fast.p50_ms
            )?;
        }
        Ok(())
    }
}

/// Runs every configuration. Blocking: call it off any async runtime.
pub fn run(opts: &BfdBench) -> anyhow::Result<Report> {
    if !matches!(opts.router, RouterKind::Bird | RouterKind::Frr) {
        return Err(anyhow!("BFD needs BIRD or FRR as the router"));
    }
    let mut configs: Vec<(String, Option<BfdTimers>, u64)> = vec![
        ("BFD 50 ms x 3".into(), Some(BfdTimers::new(50, 3)), 150),
        ("BFD 300 ms x 3".into(), Some(BfdTimers::new(300, 3)), 900),
    ];
    if !opts.skip_hold_time {
        configs.push(("no BFD (hold time 9 s)".into(), None, 9000));
    }
    let mut out = Vec::new();
    for (name, timers, expected_ms) in configs {
        eprintln!("== {name}");
        let samples = run_config(opts, timers).with_context(|| name.clone())?;
        let samples_ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        let ms = |p| percentile(&samples, p).map_or(0.0, |d| d.as_secs_f64() * 1e3);
        out.push(ConfigFigures {
            name,
            expected_ms,
            p50_ms: ms(50.0),
            p99_ms: ms(99.0),
            samples_ms,
        });
    }
    Ok(Report {
        router: match opts.router {
            RouterKind::Bird => "BIRD".into(),
            _ => "FRR".into(),
        },
        fault: opts.fault,
        trials: opts.trials,
        configs: out,
    })
}

/// The BGP example, its BGPPeer naming BFDProfile `bench` with `timers` when given.
fn manifests(timers: Option<BfdTimers>) -> String {
    let mut yaml = String::new();
    match timers {
        Some(t) => {
            yaml.push_str(&format!(
                "apiVersion: ferrolb.io/v1beta1\nkind: BFDProfile\nmetadata:\n  name: bench\n  namespace: ferrolb-system\nspec:\n  receiveInterval: {}\n  transmitInterval: {}\n  detectMultiplier: {}\n---\n",
                t.receive_ms, t.transmit_ms, t.multiplier
            ));
            yaml.push_str(
                &BGP_EXAMPLE.replace("  holdTime: 9s\n", "  holdTime: 9s\n  bfdProfile: bench\n"),
            );
        }
        None => yaml.push_str(BGP_EXAMPLE),
    }
    yaml.push_str("\n---\n");
    yaml.push_str(SERVICE);
    yaml
}

/// Next hops (node addresses) of the Service's route in the router's kernel.
fn kernel_hops(c: &Cluster) -> Vec<Ipv4Addr> {
    let pfx = format!("{SERVICE_IP}/32");
    let text = c
        .lab
        .router()
        .ns()
        .exec(["ip", "-4", "route", "show", pfx.as_str()])
        .map(|o| o.stdout)
        .unwrap_or_default();
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == "via")
        .filter_map(|w| w[1].parse().ok())
        .collect()
}

/// Waits until the route has every node as next hop and, with BFD, every node's BFD session
/// is Up at the router (else a failure would only be seen at the hold time).
fn wait_all_hops(c: &Cluster, bfd: bool, timeout: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let hops = kernel_hops(c);
        let bfd_up =
            !bfd || (1..=NODES).all(|i| c.router_bfd_up(std::net::IpAddr::V4(c.lab.node(i).v4())));
        if hops.len() == NODES && bfd_up {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(anyhow!(
                "the router's route to {SERVICE_IP} has next hops {hops:?} (BFD up everywhere: {bfd_up}) after {timeout:?}, want {NODES}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn set_fault(c: &Cluster, node: usize, fault: Fault, on: bool) -> anyhow::Result<()> {
    match fault {
        Fault::Freeze => {
            let p = c
                .speaker(node)
                .ok_or_else(|| anyhow!("no speaker on node{node}"))?;
            if on { p.pause() } else { p.resume() }.map_err(|e| anyhow!("{e}"))
        }
        Fault::LinkDown => {
            let n = c.lab.node(node);
            let state = if on { "down" } else { "up" };
            n.ns()
                .ip(["link", "set", n.iface(), state])
                .map(|_| ())
                .map_err(|e| anyhow!("{e}"))
        }
    }
}

fn run_config(opts: &BfdBench, timers: Option<BfdTimers>) -> anyhow::Result<Vec<Duration>> {
    let c = Cluster::start(ClusterOptions {
        nodes: NODES as u8,
        bird: true,
        bird_password: Some(EXAMPLE_BGP_PASSWORD.into()),
        router: opts.router,
        router_bfd: timers,
        ..ClusterOptions::default()
    })?;
    c.apply_yaml(&manifests(timers))?;
    wait_all_hops(&c, timers.is_some(), Duration::from_secs(60))?;
    let mut samples = Vec::new();
    for trial in 0..opts.trials {
        let victim = trial % NODES + 1;
        let addr = c.lab.node(victim).v4();
        let start = Instant::now();
        set_fault(&c, victim, opts.fault, true)?;
        let took = loop {
            if !kernel_hops(&c).contains(&addr) {
                break start.elapsed();
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = set_fault(&c, victim, opts.fault, false);
                return Err(anyhow!(
                    "node{victim} still a next hop 30 s after the fault"
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        eprintln!(
            "  trial {}: node{victim} withdrawn after {:.0} ms",
            trial + 1,
            took.as_secs_f64() * 1e3
        );
        samples.push(took);
        set_fault(&c, victim, opts.fault, false)?;
        wait_all_hops(&c, timers.is_some(), Duration::from_secs(60))?;
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_name_the_profile_only_with_bfd() {
        let with = manifests(Some(BfdTimers::new(50, 3)));
        assert!(with.contains("bfdProfile: bench"), "{with}");
        assert!(with.contains("receiveInterval: 50"), "{with}");
        assert!(with.contains("kind: Service"), "{with}");
        let without = manifests(None);
        assert!(!without.contains("bfdProfile"), "{without}");
        assert!(!without.contains("kind: BFDProfile"), "{without}");
    }
}
