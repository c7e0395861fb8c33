//! `bench-rollout`: what planned operations (and a crash and an API server outage) cost the
//! clients of a layer 2 and a BGP Service, with ferrolb's hitless operations and with a mode
//! that behaves like MetalLB (Cease on SIGTERM, break-before-make, no hand-over:
//! `--hitless-operations=false`, graceful restart off), side by side in the same run.
//!
//! Clients: HTTP probes every 10 ms, each on a new connection (LAN client → L2 address,
//! upstream client → L2 and BGP addresses), and one long-lived connection per Service. Each
//! node's echo server stands in for the Service's backends on that node, so a connection
//! whose packets move to another node is reset: a broken long-lived connection is an address
//! (or a route's ECMP share) that moved while the connection lived.

pub mod bpffs;
pub mod lab;
pub mod phases;
pub mod stream;
pub mod summary;

use lab::RolloutLab;
use phases::{LeaderExit, PhaseReport};
use std::time::Duration;

/// What to run.
#[derive(Clone, Debug)]
pub struct RolloutBench {
    /// How long the API server stays down in its phase.
    pub outage: Duration,
    /// Skip the MetalLB-like mode.
    pub hitless_only: bool,
}

/// One mode's phases.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModeReport {
    pub mode: String,
    pub phases: Vec<PhaseReport>,
}

/// Both modes.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RolloutReport {
    pub probe_interval_ms: u64,
    pub modes: Vec<ModeReport>,
}

/// Runs every phase in one lab with `hitless` operations on or off.
pub fn run_mode(hitless: bool, outage: Duration) -> anyhow::Result<ModeReport> {
    let progress = |what: &str| eprintln!("bench-rollout (hitless {hitless}): {what}");
    progress("starting the lab");
    let mut lab = RolloutLab::start(hitless)?;
    progress("rolling restart");
    let mut phases = vec![phases::rolling_restart(&mut lab)?];
    progress("drain");
    let (drain, node) = phases::drain(&mut lab)?;
    phases.push(drain);
    phases.push(phases::undrain(&mut lab, node)?);
    progress("controller failover");
    phases.push(phases::controller_failover(&mut lab, LeaderExit::Kill, "during-failover")?.0);
    phases.push(
        phases::controller_failover(&mut lab, LeaderExit::Terminate, "during-controller-update")?.0,
    );
    progress("API server outage");
    phases.push(phases::apiserver_outage(&mut lab, outage, "after-outage")?.0);
    progress("crash and failback");
    let (crash, failback) = phases::crash_and_failback(&mut lab)?;
    phases.push(crash);
    phases.push(failback);
    Ok(ModeReport {
        mode: if hitless {
            "ferrolb (hitless operations)".into()
        } else {
            "MetalLB-like (--hitless-operations=false, no graceful restart)".into()
        },
        phases,
    })
}

/// Runs the benchmark: ferrolb's mode, then the MetalLB-like one, each in a fresh lab.
pub fn run(opts: &RolloutBench) -> anyhow::Result<RolloutReport> {
    let mut modes = vec![run_mode(true, opts.outage)?];
    if !opts.hitless_only {
        modes.push(run_mode(false, opts.outage)?);
    }
    Ok(RolloutReport {
        probe_interval_ms: u64::try_from(lab::PROBE_EVERY.as_millis()).unwrap_or(u64::MAX),
        modes,
    })
}

impl std::fmt::Display for RolloutReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "bench-rollout: probes every {} ms on new connections (LAN -> L2, upstream -> L2, \
             upstream -> BGP) and one long-lived connection per Service",
            self.probe_interval_ms
        )?;
        let Some(first) = self.modes.first() else {
            return Ok(());
        };
        for (i, phase) in first.phases.iter().enumerate() {
            writeln!(f, "\n{}", phase.phase)?;
            for mode in &self.modes {
                let Some(p) = mode.phases.get(i) else {
                    continue;
                };
                let fig = &p.figures;
                writeln!(
                    f,
                    "  {:<64} probes {:>6} failed {:>4} longest gap {:>8.1} ms  connections broken {}",
                    mode.mode,
                    fig.probes_sent(),
                    fig.probes_failed(),
                    fig.longest_gap_ms(),
                    fig.connections_broken()
                )?;
                for (label, pf) in &fig.probes {
                    if pf.failed > 0 || pf.node_changes > 0 {
                        writeln!(
                            f,
                            "      {label}: {} failed, longest gap {:.1} ms, serving node changed {} times",
                            pf.failed, pf.longest_gap_ms, pf.node_changes
                        )?;
                    }
                }
                for c in fig.connections.iter().filter(|c| c.broken > 0) {
                    writeln!(f, "      {} broke: {}", c.connection, c.breaks.join("; "))?;
                }
                if !p.facts.is_empty() {
                    let facts: Vec<String> =
                        p.facts.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    writeln!(f, "      {}", facts.join(" "))?;
                }
            }
        }
        Ok(())
    }
}
