//! The chaos report: faults injected by kind, the longest unavailability clients saw per kind,
//! the longest time two MACs answered for one address, and every invariant violation with its
//! time and the seed that replays it.

use super::invariants::{FaultRecord, Outage, Violation};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Clone, Debug, Serialize)]
pub struct ChaosReport {
    pub seed: u64,
    pub duration_s: u64,
    pub nodes: u8,
    /// The command that replays this run.
    pub replay: String,
    pub faults_by_kind: BTreeMap<String, usize>,
    /// Per fault kind: the longest window of failed probes attributed to it.
    pub longest_unavailability_ms: BTreeMap<String, u64>,
    /// The longest window in which two MACs answered ARP for one address.
    pub longest_dual_answer_ms: u64,
    pub probes_sent: usize,
    pub probes_failed: usize,
    pub arp_requests: usize,
    pub service_samples: usize,
    pub router_samples: usize,
    pub violations: Vec<Violation>,
    /// Fault kinds this machine cannot inject, and why.
    pub not_available: Vec<String>,
    pub faults: Vec<FaultRecord>,
    pub outages: Vec<Outage>,
}

impl ChaosReport {
    pub fn new(seed: u64, duration_s: u64, nodes: u8) -> ChaosReport {
        ChaosReport {
            seed,
            duration_s,
            nodes,
            replay: format!(
                "ferrolb-e2e chaos --duration {duration_s} --seed {seed} --nodes {nodes}"
            ),
            faults_by_kind: BTreeMap::new(),
            longest_unavailability_ms: BTreeMap::new(),
            longest_dual_answer_ms: 0,
            probes_sent: 0,
            probes_failed: 0,
            arp_requests: 0,
            service_samples: 0,
            router_samples: 0,
            violations: Vec::new(),
            not_available: Vec::new(),
            faults: Vec::new(),
            outages: Vec::new(),
        }
    }

    /// Fills the per-kind figures from the faults and outages.
    pub fn summarise(&mut self) {
        for f in &self.faults {
            *self.faults_by_kind.entry(f.kind.name().into()).or_default() += 1;
        }
        for o in &self.outages {
            let kind = o.fault.map_or("unattributed", |k| k.name());
            let e = self
                .longest_unavailability_ms
                .entry(kind.into())
                .or_default();
            *e = (*e).max(o.lasted_ms);
        }
        self.violations.sort_by_key(|v| (v.at_ms, v.invariant));
    }
}

impl fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "chaos: {} s, seed {}, {} nodes ({} faults)",
            self.duration_s,
            self.seed,
            self.nodes,
            self.faults.len()
        )?;
        writeln!(
            f,
            "faults injected by kind (longest unavailability seen by clients):"
        )?;
        for (kind, n) in &self.faults_by_kind {
            let longest = self
                .longest_unavailability_ms
                .get(kind)
                .map_or("none".to_string(), |ms| format!("{ms} ms"));
            writeln!(f, "  {kind:<18} {n:>4}   {longest}")?;
        }
        if let Some(ms) = self.longest_unavailability_ms.get("unattributed") {
            writeln!(f, "  unattributed outage: longest {ms} ms")?;
        }
        for n in &self.not_available {
            writeln!(f, "  not available: {n}")?;
        }
        writeln!(
            f,
            "longest window with two MACs answering ARP: {} ms",
            self.longest_dual_answer_ms
        )?;
        writeln!(
            f,
            "observed: {} probes ({} failed), {} ARP requests, {} Service samples, {} router samples",
            self.probes_sent,
            self.probes_failed,
            self.arp_requests,
            self.service_samples,
            self.router_samples
        )?;
        writeln!(f, "fault log:")?;
        for r in &self.faults {
            writeln!(
                f,
                "  {:>6.1}-{:<6.1} s  #{:<3} {:<18} {}",
                r.start.as_secs_f64(),
                r.end.as_secs_f64(),
                r.id,
                r.kind.name(),
                r.detail
            )?;
        }
        if self.violations.is_empty() {
            writeln!(f, "invariant violations: none")?;
        } else {
            writeln!(f, "invariant violations: {}", self.violations.len())?;
            for v in &self.violations {
                writeln!(
                    f,
                    "  t={:.1}s invariant {} ({} ms): {}  [seed {}]",
                    v.at_ms as f64 / 1000.0,
                    v.invariant.number(),
                    v.lasted_ms,
                    v.detail,
                    self.seed
                )?;
            }
        }
        write!(f, "replay: {}", self.replay)
    }
}
