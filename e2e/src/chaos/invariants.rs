//! The invariants, as pure checks over what the observers recorded from outside the
//! components (Service statuses read from the API server, the router's table, ARP replies on
//! the LAN, client probes) and what the fault executor did and when. Every observation is
//! sampled every 100 ms during the run; the checks walk the samples afterwards, so a check
//! never slows the run down and a recorded run can be checked again.
//!
//! A condition that holds too long becomes one violation (an episode: from when it started
//! until it cleared), not one per sample.

use super::schedule::FaultKind;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

/// A probe that takes longer has failed (the observers' timeout). A probe is judged by when
/// it was sent, so a fault that begins or is repaired up to this long after a probe was sent
/// can still fail it: the excused windows start this much before the injection and before
/// the repair.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Invariant 1: an eligible Service has an address within this time.
pub const ASSIGN_BOUND: Duration = Duration::from_secs(2);
/// Invariant 4: a node that stopped being eligible leaves the router's next hops within this
/// time (BFD detects in 300 ms; the rest is slack for the router and the observer).
pub const REMOVAL_BOUND: Duration = Duration::from_secs(1);
/// Invariant 4: what the observation itself may add to a removal: a router sample is the
/// time `birdc` was started, every 100 ms, on a loaded machine.
pub const OBSERVATION_SLACK: Duration = Duration::from_millis(200);
/// Invariant 4: an endpoint change reaches the router within this time.
pub const ENDPOINT_BOUND: Duration = Duration::from_secs(2);
/// Invariant 3: two MACs may answer for an address this long after a takeover.
pub const TAKEOVER_BOUND: Duration = Duration::from_secs(1);
/// Invariant 3: after a node rejoins (link up, speaker resumed) the membership merges and one
/// of the two claimants stops answering within this time.
pub const PARTITION_HEAL: Duration = Duration::from_secs(3);
/// Invariant 4: how long a speaker may act on what it knew before it was cut off from the API
/// server (its link down, its process frozen, or the API server away): its watches retry with
/// doubling waits of at most 5 s ± 25 % (`runtime/src/watch_backoff.rs`), then resume, or on
/// `410 Gone` list again at once. An endpoint change made meanwhile reaches it this long after
/// the cut ends, at the latest.
pub const WATCH_CATCH_UP: Duration = Duration::from_millis(7500);
/// Invariant 4: a node back from a fault (a restarted speaker, a link up) is a next hop again
/// within this time: the speaker starts, reads its configuration, connects, and BIRD (which
/// waits 1-5 s after a session error) accepts the session.
pub const NODE_RECOVERY: Duration = Duration::from_secs(15);
/// Invariant 1: how long after a control-plane fault ends Services may still wait for an
/// address: a killed leader's Lease (15 s) expires before a standby takes over.
pub const CONTROL_PLANE_RECOVERY: Duration = Duration::from_secs(20);
/// Invariant 4: every next hop is back this long after a router restart.
pub const ROUTER_RECOVERY: Duration = Duration::from_secs(15);

/// Which invariant (numbered as in the issue).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Invariant {
    /// 1: addresses assigned in time and kept.
    Assignment,
    /// 2: no address held by two Services that may not share it.
    Exclusive,
    /// 3: at most one MAC answers ARP for an address.
    SingleAnswerer,
    /// 4: the router's next hops are the eligible nodes.
    NextHops,
    /// 5: probes succeed except in windows attributable to a fault.
    Reachability,
    /// 6: convergence and cleanup after the run.
    Convergence,
}

impl Invariant {
    pub fn number(self) -> u8 {
        match self {
            Invariant::Assignment => 1,
            Invariant::Exclusive => 2,
            Invariant::SingleAnswerer => 3,
            Invariant::NextHops => 4,
            Invariant::Reachability => 5,
            Invariant::Convergence => 6,
        }
    }
}

/// One violation: when it started, how long it lasted, what it was.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Violation {
    pub invariant: Invariant,
    /// Offset from the start of the run.
    pub at_ms: u64,
    pub lasted_ms: u64,
    pub detail: String,
}

/// A fault as executed: when it was injected and repaired (offsets from the start).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaultRecord {
    pub id: usize,
    pub kind: FaultKind,
    pub target: usize,
    #[serde(serialize_with = "ser_ms")]
    pub start: Duration,
    #[serde(serialize_with = "ser_ms")]
    pub end: Duration,
    /// What was done (or why it could not be).
    pub detail: String,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(ms(*d))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl FaultRecord {
    fn node_out(&self, node: usize, t: Duration) -> bool {
        self.kind.takes_node_out() && self.target == node && self.start <= t && t < self.end
    }

    /// How long clients may be without service after the injection and after the repair.
    pub fn outage_bound(&self, plane: Plane) -> Option<Duration> {
        match (self.kind, plane) {
            (FaultKind::SpeakerKill | FaultKind::SpeakerStop | FaultKind::LinkDown, _) => {
                Some(Duration::from_secs(3))
            }
            (FaultKind::Netem, _) => Some(Duration::from_secs(2)),
            (FaultKind::RouterRestart, Plane::Bgp) => Some(ROUTER_RECOVERY),
            (FaultKind::EndpointMove, Plane::Bgp) => Some(ENDPOINT_BOUND),
            _ => None,
        }
    }

    /// Intervals in which clients of `target` may fail because of this fault.
    fn excused_outage(&self, target: &ProbeSeries) -> Vec<(Duration, Duration)> {
        let Some(bound) = self.outage_bound(target.plane) else {
            return Vec::new();
        };
        if self.kind == FaultKind::Netem {
            // Loss and delay act for the whole fault.
            return vec![(self.start.saturating_sub(PROBE_TIMEOUT), self.end + bound)];
        }
        // A Local BGP Service may have its endpoints on the faulted node alone: its clients
        // then wait until that node is a next hop again.
        let after_repair = if target.local && self.kind.takes_node_out() {
            NODE_RECOVERY
        } else {
            bound
        };
        // A repair moves addresses too (a node back takes its own again), breaking the
        // connections in flight on the node that stood in.
        vec![
            (self.start.saturating_sub(PROBE_TIMEOUT), self.start + bound),
            (
                self.end.saturating_sub(PROBE_TIMEOUT),
                self.end + after_repair,
            ),
        ]
    }
}

/// Whether an address is reached through layer 2 or BGP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Plane {
    L2,
    Bgp,
}

/// A Service as the run created it.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceFacts {
    pub name: String,
    /// `ferrolb.io/allow-shared-ip`.
    pub share_key: Option<String>,
    pub plane: Plane,
    /// `externalTrafficPolicy: Local` (eligible nodes: those with endpoints).
    pub local: bool,
    /// In the churn pool (which pool churn removes and restores).
    pub churn_pool: bool,
    /// When it was created and deleted (offsets; `None`: never deleted).
    pub created: Duration,
    pub deleted: Option<Duration>,
}

/// One sample of every Service's addresses (`None`: the API server did not answer).
#[derive(Clone, Debug)]
pub struct ServiceSample {
    pub at: Duration,
    pub addresses: Option<BTreeMap<String, Vec<IpAddr>>>,
}

/// One sample of the router's next hops (node numbers) per BGP address (`None`: no answer).
#[derive(Clone, Debug)]
pub struct RouterSample {
    pub at: Duration,
    pub hops: Option<BTreeMap<IpAddr, BTreeSet<usize>>>,
}

/// The MACs that answered one ARP request for `ip`.
#[derive(Clone, Debug)]
pub struct ArpSample {
    pub at: Duration,
    pub macs: BTreeSet<String>,
}

/// One client probe.
#[derive(Clone, Copy, Debug)]
pub struct ProbeSample {
    pub at: Duration,
    pub ok: bool,
}

/// A probed target.
#[derive(Clone, Debug)]
pub struct ProbeSeries {
    pub label: String,
    pub plane: Plane,
    /// A Service with `externalTrafficPolicy: Local`.
    pub local: bool,
    pub samples: Vec<ProbeSample>,
}

/// Everything recorded during a run.
#[derive(Clone, Debug, Default)]
pub struct Observations {
    pub services: Vec<ServiceSample>,
    pub router: Vec<RouterSample>,
    pub arp: BTreeMap<IpAddr, Vec<ArpSample>>,
    pub probes: Vec<ProbeSeries>,
    /// The endpoint nodes of each Local Service over time: (when set, nodes).
    pub endpoints: BTreeMap<String, Vec<(Duration, BTreeSet<usize>)>>,
    /// When the churn pool was removed and restored (or shrunk: changed): (when, present).
    pub churn_pool: Vec<(Duration, bool)>,
}

/// What the checks are given.
pub struct CheckInput<'a> {
    pub services: &'a [ServiceFacts],
    pub faults: &'a [FaultRecord],
    pub obs: &'a Observations,
    pub nodes: usize,
}

/// Episodes of a condition per key.
#[derive(Default)]
struct Episodes {
    open: BTreeMap<String, (Duration, Duration, String)>,
    closed: Vec<(Duration, Duration, String)>,
}

impl Episodes {
    /// The condition holds for `key` at `t` (excused or not).
    fn hold(&mut self, key: &str, t: Duration, detail: impl FnOnce() -> String) {
        match self.open.get_mut(key) {
            Some(e) => e.1 = t,
            None => {
                self.open.insert(key.to_string(), (t, t, detail()));
            }
        }
    }

    /// Closes every episode not held at `t` (keys in `held` stay open).
    fn clear_except(&mut self, held: &BTreeSet<String>) {
        let done: Vec<String> = self
            .open
            .keys()
            .filter(|k| !held.contains(*k))
            .cloned()
            .collect();
        for k in done {
            if let Some(e) = self.open.remove(&k) {
                self.closed.push(e);
            }
        }
    }

    fn finish(mut self, invariant: Invariant) -> Vec<Violation> {
        self.closed.extend(self.open.into_values());
        self.closed
            .into_iter()
            .map(|(from, to, detail)| Violation {
                invariant,
                at_ms: ms(from),
                lasted_ms: ms(to - from),
                detail,
            })
            .collect()
    }
}

fn covered(intervals: &[(Duration, Duration)], t: Duration) -> bool {
    intervals.iter().any(|&(a, b)| a <= t && t <= b)
}

/// Invariant 1: how long after dropped watches or injected 500s Services may still wait for
/// an address (the components retry with waits of at most 5 s).
pub const API_FAULT_RECOVERY: Duration = Duration::from_secs(6);

/// Intervals in which a control-plane fault excuses a Service without an address.
fn control_plane_excuses(faults: &[FaultRecord]) -> Vec<(Duration, Duration)> {
    faults
        .iter()
        .filter(|f| f.kind.is_control_plane())
        .map(|f| {
            let recovery = match f.kind {
                FaultKind::DroppedWatches | FaultKind::Injected500s => API_FAULT_RECOVERY,
                _ => CONTROL_PLANE_RECOVERY,
            };
            (f.start, f.end + recovery)
        })
        .collect()
}

/// Whether the churn pool exists at `t`, and since when it was last (re)configured.
fn churn_pool_at(obs: &Observations, t: Duration) -> (bool, Duration) {
    obs.churn_pool
        .iter()
        .rev()
        .find(|(at, _)| *at <= t)
        .map_or((true, Duration::ZERO), |&(at, present)| (present, at))
}

/// Invariant 1: every eligible Service has an address within [`ASSIGN_BOUND`] of becoming
/// eligible, and keeps it unless its configuration changed.
pub fn check_assignment(input: &CheckInput<'_>) -> Vec<Violation> {
    let excused = control_plane_excuses(input.faults);
    let mut missing = Episodes::default();
    let mut changed = Episodes::default();
    let mut last: BTreeMap<&str, Vec<IpAddr>> = BTreeMap::new();
    for sample in &input.obs.services {
        let Some(addrs) = &sample.addresses else {
            continue;
        };
        let t = sample.at;
        let mut held = BTreeSet::new();
        let mut held_changed = BTreeSet::new();
        for s in input.services {
            let exists = s.created <= t && s.deleted.is_none_or(|d| t < d);
            let (pool, pool_since) = if s.churn_pool {
                churn_pool_at(input.obs, t)
            } else {
                (true, Duration::ZERO)
            };
            let current = addrs.get(&s.name).cloned().unwrap_or_default();
            if exists && pool {
                let since = s.created.max(pool_since);
                if current.is_empty() && t > since + ASSIGN_BOUND && !covered(&excused, t) {
                    missing.hold(&s.name, t, || {
                        format!(
                            "{} has no address {} ms after becoming eligible",
                            s.name,
                            ms(t - since)
                        )
                    });
                    held.insert(s.name.clone());
                }
                // Kept: a changed or lost address needs a configuration change (its pool
                // reconfigured in the last ASSIGN_BOUND).
                if let Some(prev) = last.get(s.name.as_str())
                    && !prev.is_empty()
                    && *prev != current
                    && !(s.churn_pool && t <= pool_since + ASSIGN_BOUND + ASSIGN_BOUND)
                {
                    let key = format!("{}:{prev:?}", s.name);
                    changed.hold(&key, t, || {
                        format!("{} changed address {prev:?} -> {current:?} without a configuration change", s.name)
                    });
                    held_changed.insert(key);
                }
            }
            last.insert(&s.name, current);
        }
        missing.clear_except(&held);
        changed.clear_except(&held_changed);
    }
    let mut v = missing.finish(Invariant::Assignment);
    v.extend(changed.finish(Invariant::Assignment));
    v
}

/// Invariant 2: no address held by two Services unless both allow sharing with the same key.
pub fn check_exclusive(input: &CheckInput<'_>) -> Vec<Violation> {
    let keys: BTreeMap<&str, Option<&str>> = input
        .services
        .iter()
        .map(|s| (s.name.as_str(), s.share_key.as_deref()))
        .collect();
    let mut ep = Episodes::default();
    for sample in &input.obs.services {
        let Some(addrs) = &sample.addresses else {
            continue;
        };
        let mut holders: BTreeMap<IpAddr, Vec<&str>> = BTreeMap::new();
        for (name, ips) in addrs {
            for ip in ips {
                holders.entry(*ip).or_default().push(name);
            }
        }
        let mut held = BTreeSet::new();
        for (ip, names) in holders.iter().filter(|(_, n)| n.len() > 1) {
            let shared: BTreeSet<Option<&str>> = names
                .iter()
                .map(|n| keys.get(n).copied().flatten())
                .collect();
            let may_share = shared.len() == 1 && shared.iter().all(Option::is_some);
            if !may_share {
                let key = ip.to_string();
                ep.hold(&key, sample.at, || format!("{ip} held by {names:?}"));
                held.insert(key);
            }
        }
        ep.clear_except(&held);
    }
    ep.finish(Invariant::Exclusive)
}

/// Intervals in which two MACs may answer: a node isolated or frozen keeps answering (its
/// in-kernel responder does not need the speaker) while the others take over; the run
/// declares these as partitions.
fn partition_windows(faults: &[FaultRecord]) -> Vec<(Duration, Duration)> {
    faults
        .iter()
        .filter(|f| matches!(f.kind, FaultKind::SpeakerStop | FaultKind::LinkDown))
        .map(|f| (f.start, f.end + PARTITION_HEAL))
        .collect()
}

/// Invariant 3: at most one MAC answers ARP for an address, except within [`TAKEOVER_BOUND`]
/// of a takeover or during a declared partition. Also returns the longest window in which
/// two MACs answered.
pub fn check_single_answerer(input: &CheckInput<'_>) -> (Vec<Violation>, Duration) {
    let partitions = partition_windows(input.faults);
    let mut violations = Vec::new();
    let mut longest = Duration::ZERO;
    for (ip, samples) in &input.obs.arp {
        let mut window: Option<(Duration, Duration, BTreeSet<String>)> = None;
        let mut close = |w: (Duration, Duration, BTreeSet<String>), v: &mut Vec<Violation>| {
            let (from, to, macs) = w;
            let lasted = to - from;
            longest = longest.max(lasted);
            let excused = partitions.iter().any(|&(a, b)| a <= from && to <= b);
            if lasted > TAKEOVER_BOUND && !excused {
                v.push(Violation {
                    invariant: Invariant::SingleAnswerer,
                    at_ms: ms(from),
                    lasted_ms: ms(lasted),
                    detail: format!("{ip} answered by {macs:?} for {} ms", ms(lasted)),
                });
            }
        };
        for s in samples {
            if s.macs.len() > 1 {
                match &mut window {
                    Some(w) => {
                        w.1 = s.at;
                        w.2.extend(s.macs.iter().cloned());
                    }
                    None => window = Some((s.at, s.at, s.macs.clone())),
                }
            } else if let Some(w) = window.take() {
                close(w, &mut violations);
            }
        }
        if let Some(w) = window.take() {
            close(w, &mut violations);
        }
    }
    (violations, longest)
}

/// The endpoint nodes of Local Service `name` at `t`, and when they were last set.
fn endpoints_at(
    obs: &Observations,
    name: &str,
    t: Duration,
) -> Option<(Duration, BTreeSet<usize>)> {
    obs.endpoints
        .get(name)?
        .iter()
        .rev()
        .find(|(at, _)| *at <= t)
        .cloned()
}

/// When an endpoint change made at `at` must have reached node `node`'s speaker: within
/// [`ENDPOINT_BOUND`], unless the speaker was cut off from the API server then (its link
/// down, the API server just back, its watches just dropped or answered with 500): then
/// within [`WATCH_CATCH_UP`] of the cut's end. Cuts that follow one another before the
/// watches are back chain: each can cost the watches one more wait.
fn endpoint_news_by(faults: &[FaultRecord], node: usize, at: Duration) -> Duration {
    let mut cuts: Vec<(Duration, Duration)> = faults
        .iter()
        .filter(|f| match f.kind {
            // A frozen speaker reads no watch either; after SIGCONT its watches resume from
            // where their back-off stood, as after its link comes back.
            FaultKind::LinkDown | FaultKind::SpeakerStop => f.target == node,
            FaultKind::ApiServerRestart | FaultKind::DroppedWatches | FaultKind::Injected500s => {
                true
            }
            _ => false,
        })
        .map(|f| (f.start, f.end + WATCH_CATCH_UP))
        .collect();
    cuts = merge(cuts);
    let mut by = at + ENDPOINT_BOUND;
    // Cut off at `at`, or back so recently that its watch may still be waiting.
    if let Some(&(_, end)) = cuts.iter().find(|&&(a, b)| a <= at && at <= b) {
        by = by.max(end);
    }
    by
}

/// Invariant 4: the router's next hops for each BGP address are the eligible nodes — a node
/// that stops being eligible is gone within [`REMOVAL_BOUND`] (endpoint changes:
/// [`ENDPOINT_BOUND`]), and an eligible node is there unless it is recovering from a fault.
pub fn check_next_hops(
    input: &CheckInput<'_>,
    bgp_addresses: &BTreeMap<IpAddr, String>,
) -> Vec<Violation> {
    let mut ep = Episodes::default();
    let by_name: BTreeMap<&str, &ServiceFacts> = input
        .services
        .iter()
        .map(|s| (s.name.as_str(), s))
        .collect();
    for sample in &input.obs.router {
        let Some(table) = &sample.hops else {
            continue;
        };
        let t = sample.at;
        let router_recovering = input.faults.iter().any(|f| {
            f.kind == FaultKind::RouterRestart && f.start <= t && t <= f.end + ROUTER_RECOVERY
        });
        let mut held = BTreeSet::new();
        for (ip, name) in bgp_addresses {
            let Some(svc) = by_name.get(name.as_str()) else {
                continue;
            };
            let hops = table.get(ip).cloned().unwrap_or_default();
            let eps = svc
                .local
                .then(|| endpoints_at(input.obs, name, t))
                .flatten();
            for node in 1..=input.nodes {
                let out_since = input
                    .faults
                    .iter()
                    .filter(|f| f.node_out(node, t))
                    .map(|f| f.start)
                    .max();
                let ep_ok = eps.as_ref().is_none_or(|(_, set)| set.contains(&node));
                let eligible = out_since.is_none() && ep_ok;
                let present = hops.contains(&node);
                if present && !eligible {
                    // How long it has been ineligible: since the fault, or since the
                    // endpoint change that moved it away.
                    let (since, due) = match (out_since, &eps) {
                        (Some(s), _) => (s, s + REMOVAL_BOUND + OBSERVATION_SLACK),
                        (None, Some((at, _))) => (*at, endpoint_news_by(input.faults, node, *at)),
                        (None, None) => (t, t),
                    };
                    if t > due {
                        let key = format!("{ip} extra node{node}");
                        ep.hold(&key, t, || {
                            format!("router routes {ip} ({name}) via node{node}, not eligible for {} ms", ms(t - since))
                        });
                        held.insert(key);
                    }
                }
                if eligible && !present && !router_recovering {
                    let recovering = input.faults.iter().any(|f| {
                        f.kind.is_node_fault()
                            && f.target == node
                            && f.start <= t
                            && t <= f.end + NODE_RECOVERY
                    });
                    let moved = eps
                        .as_ref()
                        .is_some_and(|(at, _)| t <= endpoint_news_by(input.faults, node, *at));
                    if !recovering && !moved {
                        let key = format!("{ip} missing node{node}");
                        ep.hold(&key, t, || {
                            format!(
                                "router lacks node{node} for {ip} ({name}) although it is eligible"
                            )
                        });
                        held.insert(key);
                    }
                }
            }
        }
        ep.clear_except(&held);
    }
    ep.finish(Invariant::NextHops)
}

/// A window in which a probed target failed, attributed to a fault when one explains it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outage {
    pub target: String,
    pub at_ms: u64,
    pub lasted_ms: u64,
    /// The fault kind it is attributed to (`None`: unattributed, a violation).
    pub fault: Option<FaultKind>,
}

/// Invariant 5: every window of failed probes lies inside the excused windows of the faults
/// that can affect its plane. Returns the violations and every outage with its attribution.
pub fn check_reachability(input: &CheckInput<'_>) -> (Vec<Violation>, Vec<Outage>) {
    let mut violations = Vec::new();
    let mut outages = Vec::new();
    for series in &input.obs.probes {
        let excuses: Vec<(Duration, Duration, FaultKind, Duration)> = input
            .faults
            .iter()
            .flat_map(|f| {
                f.excused_outage(series)
                    .into_iter()
                    .map(move |(a, b)| (a, b, f.kind, f.start))
            })
            .collect();
        let merged = merge(excuses.iter().map(|&(a, b, _, _)| (a, b)).collect());
        for (from, to) in failure_windows(&series.samples) {
            let ok = merged.iter().any(|&(a, b)| a <= from && to <= b);
            // Attributed to the most recent fault whose window holds its start.
            let fault = excuses
                .iter()
                .filter(|&&(a, b, _, _)| a <= from && from <= b)
                .max_by_key(|&&(_, _, _, start)| start)
                .map(|&(_, _, k, _)| k);
            let lasted = to - from;
            if !ok {
                violations.push(Violation {
                    invariant: Invariant::Reachability,
                    at_ms: ms(from),
                    lasted_ms: ms(lasted),
                    detail: format!(
                        "{}: probes failed for {} ms outside any fault's bound",
                        series.label,
                        ms(lasted)
                    ),
                });
            }
            outages.push(Outage {
                target: series.label.clone(),
                at_ms: ms(from),
                lasted_ms: ms(lasted),
                fault: if ok { fault } else { None },
            });
        }
    }
    (violations, outages)
}

/// Windows of failed probes: from the first failure to the next success (or the last probe).
pub fn failure_windows(samples: &[ProbeSample]) -> Vec<(Duration, Duration)> {
    let mut out = Vec::new();
    let mut start: Option<Duration> = None;
    for s in samples {
        match (s.ok, start) {
            (false, None) => start = Some(s.at),
            (true, Some(a)) => {
                out.push((a, s.at));
                start = None;
            }
            _ => {}
        }
    }
    if let (Some(a), Some(last)) = (start, samples.last()) {
        out.push((a, last.at));
    }
    out
}

/// Overlapping or touching intervals merged.
fn merge(mut v: Vec<(Duration, Duration)>) -> Vec<(Duration, Duration)> {
    v.sort();
    let mut out: Vec<(Duration, Duration)> = Vec::new();
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn fault(kind: FaultKind, target: usize, start: u64, end: u64) -> FaultRecord {
        FaultRecord {
            id: 0,
            kind,
            target,
            start: s(start),
            end: s(end),
            detail: String::new(),
        }
    }

    fn svc(name: &str, plane: Plane) -> ServiceFacts {
        ServiceFacts {
            name: name.into(),
            share_key: None,
            plane,
            local: false,
            churn_pool: false,
            created: Duration::ZERO,
            deleted: None,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn addrs(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, Vec<IpAddr>>> {
        Some(
            pairs
                .iter()
                .map(|(n, a)| {
                    (
                        n.to_string(),
                        if a.is_empty() { vec![] } else { vec![ip(a)] },
                    )
                })
                .collect(),
        )
    }

    fn input<'a>(
        services: &'a [ServiceFacts],
        faults: &'a [FaultRecord],
        obs: &'a Observations,
    ) -> CheckInput<'a> {
        CheckInput {
            services,
            faults,
            obs,
            nodes: 3,
        }
    }

    #[test]
    fn a_late_address_is_a_violation_unless_the_control_plane_was_down() {
        let services = [svc("a", Plane::L2)];
        let obs = Observations {
            services: (0..40)
                .map(|i| ServiceSample {
                    at: s(i * 100),
                    addresses: addrs(&[("a", if i < 30 { "" } else { "10.200.0.200" })]),
                })
                .collect(),
            ..Observations::default()
        };
        let v = check_assignment(&input(&services, &[], &obs));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].at_ms, 2100);
        let faults = [fault(FaultKind::ApiServerRestart, 0, 0, 1000)];
        assert!(check_assignment(&input(&services, &faults, &obs)).is_empty());
    }

    #[test]
    fn a_changed_address_is_a_violation_unless_its_pool_changed() {
        let mut services = [svc("a", Plane::L2)];
        let obs = Observations {
            services: vec![
                ServiceSample {
                    at: s(0),
                    addresses: addrs(&[("a", "10.200.0.200")]),
                },
                ServiceSample {
                    at: s(100),
                    addresses: None,
                },
                ServiceSample {
                    at: s(200),
                    addresses: addrs(&[("a", "10.200.0.201")]),
                },
                ServiceSample {
                    at: s(300),
                    addresses: addrs(&[("a", "10.200.0.201")]),
                },
            ],
            churn_pool: vec![(s(150), true)],
            ..Observations::default()
        };
        let v = check_assignment(&input(&services, &[], &obs));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("changed address"));
        services[0].churn_pool = true;
        assert!(check_assignment(&input(&services, &[], &obs)).is_empty());
    }

    #[test]
    fn a_removed_pool_makes_its_services_ineligible() {
        let mut a = svc("a", Plane::L2);
        a.churn_pool = true;
        let services = [a];
        let obs = Observations {
            services: (0..50)
                .map(|i| ServiceSample {
                    at: s(i * 100),
                    addresses: addrs(&[("a", if i < 45 { "" } else { "10.200.0.230" })]),
                })
                .collect(),
            churn_pool: vec![(s(0), false), (s(3000), true)],
            ..Observations::default()
        };
        // Eligible from 3 s, addressed at 4.5 s: within the bound? No: 1.5 s.
        assert!(check_assignment(&input(&services, &[], &obs)).is_empty());
    }

    #[test]
    fn sharing_needs_the_same_key_on_both() {
        let mut a = svc("a", Plane::L2);
        let mut b = svc("b", Plane::L2);
        let obs = Observations {
            services: vec![ServiceSample {
                at: s(0),
                addresses: addrs(&[("a", "10.200.0.210"), ("b", "10.200.0.210")]),
            }],
            ..Observations::default()
        };
        assert_eq!(
            check_exclusive(&input(&[a.clone(), b.clone()], &[], &obs)).len(),
            1
        );
        a.share_key = Some("k".into());
        assert_eq!(
            check_exclusive(&input(&[a.clone(), b.clone()], &[], &obs)).len(),
            1
        );
        b.share_key = Some("k".into());
        assert!(check_exclusive(&input(&[a, b], &[], &obs)).is_empty());
    }

    fn arp(at: u64, macs: &[&str]) -> ArpSample {
        ArpSample {
            at: s(at),
            macs: macs.iter().map(|m| m.to_string()).collect(),
        }
    }

    #[test]
    fn two_answerers_beyond_the_takeover_bound_unless_partitioned() {
        let mut samples = vec![arp(0, &["a"])];
        samples.extend((1..=15).map(|i| arp(i * 100, &["a", "b"])));
        samples.push(arp(1600, &["b"]));
        let obs = Observations {
            arp: BTreeMap::from([(ip("10.200.0.200"), samples)]),
            ..Observations::default()
        };
        let (v, longest) = check_single_answerer(&input(&[], &[], &obs));
        assert_eq!(v.len(), 1);
        assert_eq!(longest, s(1400));
        let faults = [fault(FaultKind::SpeakerStop, 1, 50, 1000)];
        let (v, _) = check_single_answerer(&input(&[], &faults, &obs));
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn next_hops_follow_faults_and_endpoints() {
        let services = [svc("b", Plane::Bgp)];
        let addr = ip("10.200.100.1");
        let hops = |at: u64, nodes: &[usize]| RouterSample {
            at: s(at),
            hops: Some(BTreeMap::from([(addr, nodes.iter().copied().collect())])),
        };
        let names = BTreeMap::from([(addr, "b".to_string())]);
        // node2 killed at 1 s, gone from the router at 1.5 s: fine.
        let faults = [fault(FaultKind::SpeakerKill, 2, 1000, 3000)];
        let obs = Observations {
            router: vec![
                hops(0, &[1, 2, 3]),
                hops(1500, &[1, 3]),
                hops(20000, &[1, 2, 3]),
            ],
            ..Observations::default()
        };
        assert!(check_next_hops(&input(&services, &faults, &obs), &names).is_empty());
        // Still there at 2.5 s: too slow.
        let obs = Observations {
            router: vec![hops(0, &[1, 2, 3]), hops(2500, &[1, 2, 3])],
            ..Observations::default()
        };
        let v = check_next_hops(&input(&services, &faults, &obs), &names);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("via node2"));
        // Missing without a fault.
        let obs = Observations {
            router: vec![hops(0, &[1, 3])],
            ..Observations::default()
        };
        let v = check_next_hops(&input(&services, &[], &obs), &names);
        assert!(v[0].detail.contains("lacks node2"), "{v:?}");
        // Local: only endpoint nodes, moves within the endpoint bound.
        let mut local = svc("b", Plane::Bgp);
        local.local = true;
        let services = [local];
        let obs = Observations {
            router: vec![
                hops(0, &[1]),
                hops(1000, &[1]),
                hops(2500, &[2]),
                hops(4000, &[1]),
            ],
            endpoints: BTreeMap::from([(
                "b".to_string(),
                vec![(s(0), BTreeSet::from([1])), (s(1000), BTreeSet::from([2]))],
            )]),
            ..Observations::default()
        };
        let v = check_next_hops(&input(&services, &[], &obs), &names);
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(v.iter().filter(|v| v.at_ms == 4000).count(), 2);
        // A node cut off from the API server when the endpoints moved learns of it once its
        // watch is back: node1's link was down from 0.5 s to 1.5 s.
        let faults = [fault(FaultKind::LinkDown, 1, 500, 1500)];
        let obs = Observations {
            router: vec![hops(0, &[1]), hops(4000, &[1, 2]), hops(9500, &[1, 2])],
            endpoints: BTreeMap::from([(
                "b".to_string(),
                vec![(s(0), BTreeSet::from([1])), (s(1000), BTreeSet::from([2]))],
            )]),
            ..Observations::default()
        };
        let v = check_next_hops(&input(&services, &faults, &obs), &names);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].at_ms, 9500);
        assert!(v[0].detail.contains("via node1"), "{v:?}");
    }

    fn probes(fails: std::ops::Range<u64>) -> ProbeSeries {
        ProbeSeries {
            label: "lan -> l2".into(),
            plane: Plane::L2,
            local: false,
            samples: (0..100)
                .map(|i| ProbeSample {
                    at: s(i * 100),
                    ok: !fails.contains(&i),
                })
                .collect(),
        }
    }

    #[test]
    fn outages_are_attributed_to_faults_within_their_bounds() {
        let obs = Observations {
            probes: vec![probes(20..30)],
            ..Observations::default()
        };
        let (v, outages) = check_reachability(&input(&[], &[], &obs));
        assert_eq!(v.len(), 1);
        assert_eq!(outages[0].lasted_ms, 1000);
        let faults = [fault(FaultKind::SpeakerKill, 1, 1900, 5000)];
        let (v, outages) = check_reachability(&input(&[], &faults, &obs));
        assert!(v.is_empty());
        assert_eq!(outages[0].fault, Some(FaultKind::SpeakerKill));
        // A router restart excuses BGP clients only.
        let faults = [fault(FaultKind::RouterRestart, 0, 1900, 1900)];
        let (v, _) = check_reachability(&input(&[], &faults, &obs));
        assert_eq!(v.len(), 1);
        // Longer than the bound after the fault: a violation.
        let obs = Observations {
            probes: vec![probes(20..70)],
            ..Observations::default()
        };
        let faults = [fault(FaultKind::SpeakerKill, 1, 1900, 1950)];
        let (v, _) = check_reachability(&input(&[], &faults, &obs));
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn a_probe_in_flight_when_a_fault_begins_is_excused() {
        // Sent at 2.0 s, failed: the fault began 300 ms later, within the probe's timeout.
        let obs = Observations {
            probes: vec![probes(20..21)],
            ..Observations::default()
        };
        let faults = [fault(FaultKind::LinkDown, 1, 2300, 4000)];
        let (v, outages) = check_reachability(&input(&[], &faults, &obs));
        assert!(v.is_empty(), "{v:?}");
        assert_eq!(outages[0].fault, Some(FaultKind::LinkDown));
        // A probe sent longer than its timeout before the fault began is not.
        let faults = [fault(FaultKind::LinkDown, 1, 3200, 4000)];
        let (v, _) = check_reachability(&input(&[], &faults, &obs));
        assert_eq!(v.len(), 1, "{v:?}");
    }

    #[test]
    fn a_probe_in_flight_when_a_fault_is_repaired_is_excused() {
        // Sent at 6.0 s, failed: the frozen speaker resumed 1 ms later and took its address
        // back from the node standing in (a run of seed 7 at t = 885.9 s).
        let obs = Observations {
            probes: vec![probes(60..61)],
            ..Observations::default()
        };
        let faults = [fault(FaultKind::SpeakerStop, 1, 500, 6001)];
        let (v, outages) = check_reachability(&input(&[], &faults, &obs));
        assert!(v.is_empty(), "{v:?}");
        assert_eq!(outages[0].fault, Some(FaultKind::SpeakerStop));
        // Sent longer than its timeout before the repair, 3 s after the injection: not.
        let faults = [fault(FaultKind::SpeakerStop, 1, 500, 7100)];
        let (v, _) = check_reachability(&input(&[], &faults, &obs));
        assert_eq!(v.len(), 1, "{v:?}");
    }

    #[test]
    fn a_frozen_speaker_catches_up_on_endpoint_news_after_it_resumes() {
        // Endpoints left node 4 at 10 s while its speaker was frozen (9–12 s): it may route
        // on what it knew until WATCH_CATCH_UP after SIGCONT, not just ENDPOINT_BOUND.
        let at = s(10_000);
        let frozen = [fault(FaultKind::SpeakerStop, 4, 9_000, 12_000)];
        assert_eq!(endpoint_news_by(&frozen, 4, at), s(12_000) + WATCH_CATCH_UP);
        // Another node's freeze does not excuse it.
        assert_eq!(endpoint_news_by(&frozen, 3, at), at + ENDPOINT_BOUND);
    }

    #[test]
    fn failure_windows_run_to_the_next_success() {
        let series = probes(3..5);
        assert_eq!(failure_windows(&series.samples), vec![(s(300), s(500))]);
        let series = probes(98..100);
        assert_eq!(failure_windows(&series.samples), vec![(s(9800), s(9900))]);
    }
}
