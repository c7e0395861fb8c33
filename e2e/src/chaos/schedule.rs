//! The fault schedule: pure and seeded, so a seed replays the same faults at the same offsets.
//! Faults overlap (several nodes faulted at once, a control-plane fault during a node fault),
//! within limits that keep the question the run asks answerable: at most a minority of the
//! nodes is faulted at once (the rest must carry every Service), one control-plane fault at a
//! time, and no fault that writes to the API server while it is down (it could not be made).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::time::Duration;

/// What a fault does. Node faults name a node (1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// SIGKILL of a speaker; it is started again at the repair.
    SpeakerKill,
    /// SIGSTOP of a speaker; SIGCONT at the repair.
    SpeakerStop,
    /// A node's link taken down in the switch; up again at the repair.
    LinkDown,
    /// Packet loss and delay (`tc netem`) on a node's link in the switch.
    Netem,
    /// SIGKILL of a controller replica; started again at the repair.
    ControllerKill,
    /// The API server stopped (keeping its state) and started again at the repair.
    #[serde(rename = "apiserver-restart")]
    ApiServerRestart,
    /// The API server ends every open watch (SIGUSR1).
    DroppedWatches,
    /// The API server answers the next 20 requests with 500 (SIGUSR2).
    #[serde(rename = "injected-500s")]
    Injected500s,
    /// The router (BIRD) killed and started again at once.
    RouterRestart,
    /// A Service created in the churn pool, and the oldest churn Service deleted.
    ServiceChurn,
    /// The endpoints of the `externalTrafficPolicy: Local` BGP Service moved to other nodes.
    EndpointMove,
    /// The churn pool shrunk, removed, or restored.
    PoolChurn,
}

impl FaultKind {
    pub const ALL: [FaultKind; 12] = [
        FaultKind::SpeakerKill,
        FaultKind::SpeakerStop,
        FaultKind::LinkDown,
        FaultKind::Netem,
        FaultKind::ControllerKill,
        FaultKind::ApiServerRestart,
        FaultKind::DroppedWatches,
        FaultKind::Injected500s,
        FaultKind::RouterRestart,
        FaultKind::ServiceChurn,
        FaultKind::EndpointMove,
        FaultKind::PoolChurn,
    ];

    /// Kebab-case name, as in the report.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::SpeakerKill => "speaker-kill",
            FaultKind::SpeakerStop => "speaker-stop",
            FaultKind::LinkDown => "link-down",
            FaultKind::Netem => "netem",
            FaultKind::ControllerKill => "controller-kill",
            FaultKind::ApiServerRestart => "apiserver-restart",
            FaultKind::DroppedWatches => "dropped-watches",
            FaultKind::Injected500s => "injected-500s",
            FaultKind::RouterRestart => "router-restart",
            FaultKind::ServiceChurn => "service-churn",
            FaultKind::EndpointMove => "endpoint-move",
            FaultKind::PoolChurn => "pool-churn",
        }
    }

    /// Whether the fault takes one node out (its speaker or its link).
    pub fn takes_node_out(self) -> bool {
        matches!(
            self,
            FaultKind::SpeakerKill | FaultKind::SpeakerStop | FaultKind::LinkDown
        )
    }

    /// Whether the fault targets one node.
    pub fn is_node_fault(self) -> bool {
        self.takes_node_out() || self == FaultKind::Netem
    }

    /// Whether the fault stops part of the control plane (controller, API server).
    pub fn is_control_plane(self) -> bool {
        matches!(
            self,
            FaultKind::ControllerKill | FaultKind::ApiServerRestart
        )
    }

    /// Whether the fault writes objects to the API server.
    pub fn writes_objects(self) -> bool {
        matches!(
            self,
            FaultKind::ServiceChurn | FaultKind::EndpointMove | FaultKind::PoolChurn
        )
    }

    /// Relative frequency in the schedule.
    fn weight(self) -> u32 {
        match self {
            FaultKind::SpeakerKill | FaultKind::SpeakerStop | FaultKind::LinkDown => 3,
            FaultKind::Netem | FaultKind::ServiceChurn | FaultKind::EndpointMove => 2,
            FaultKind::ControllerKill | FaultKind::PoolChurn => 2,
            FaultKind::ApiServerRestart | FaultKind::RouterRestart => 1,
            FaultKind::DroppedWatches | FaultKind::Injected500s => 1,
        }
    }
}

/// One fault: injected at `at`, repaired at `at + hold` (zero for instant faults).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScheduledFault {
    /// Sequence number in the schedule.
    pub id: usize,
    pub kind: FaultKind,
    /// Offset from the start of the run.
    pub at: Duration,
    /// How long the fault lasts before its repair.
    pub hold: Duration,
    /// The node (1-based) for node faults and the controller replica for a controller kill;
    /// for pool churn the step (0 shrink, 1 remove, 2 restore); 0 otherwise.
    pub target: usize,
    /// Extra parameter: endpoint nodes as a bit set for an endpoint move, netem loss percent.
    pub param: u32,
}

impl ScheduledFault {
    /// When the fault is repaired.
    pub fn end(&self) -> Duration {
        self.at + self.hold
    }

    fn overlaps(&self, at: Duration, end: Duration) -> bool {
        self.at < end && at < self.end()
    }
}

/// The parameters of a schedule.
#[derive(Clone, Copy, Debug)]
pub struct ScheduleSpec {
    pub duration: Duration,
    pub seed: u64,
    pub nodes: usize,
    /// Controller replicas running.
    pub controller_replicas: usize,
}

/// No fault starts in the first and last seconds: the run starts from a served state and every
/// fault is repaired before the settle period.
const QUIET_START: Duration = Duration::from_secs(2);
const QUIET_END: Duration = Duration::from_secs(4);

/// The seeded schedule, sorted by start.
pub fn schedule(spec: ScheduleSpec) -> Vec<ScheduledFault> {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut out: Vec<ScheduledFault> = Vec::new();
    let Some(last_end) = spec.duration.checked_sub(QUIET_END) else {
        return out;
    };
    let total_weight: u32 = FaultKind::ALL.iter().map(|k| k.weight()).sum();
    // At most this many nodes out at once: a majority always carries the Services.
    let max_nodes_out = spec.nodes.saturating_sub(1) / 2;
    let mut at = QUIET_START;
    let mut pool_step = 0usize;
    while at < last_end {
        let mut pick = rng.random_range(0..total_weight);
        let mut kind = FaultKind::SpeakerKill;
        for k in FaultKind::ALL {
            if pick < k.weight() {
                kind = k;
                break;
            }
            pick -= k.weight();
        }
        let hold = match kind {
            FaultKind::RouterRestart
            | FaultKind::ServiceChurn
            | FaultKind::EndpointMove
            | FaultKind::DroppedWatches
            | FaultKind::Injected500s => Duration::ZERO,
            FaultKind::PoolChurn => Duration::ZERO,
            FaultKind::ApiServerRestart => Duration::from_millis(rng.random_range(1000..4000)),
            _ => Duration::from_millis(rng.random_range(1000..6000)),
        };
        let end = (at + hold).min(last_end);
        let hold = end - at;
        let overlapping: Vec<&ScheduledFault> = out
            .iter()
            .filter(|f| f.overlaps(at, end.max(at + Duration::from_millis(1))))
            .collect();
        // Objects are not written while the API server is down or answering 500s (the
        // 20 injected ones are spent well within a second by the components and observers).
        let apiserver_down = overlapping
            .iter()
            .any(|f| f.kind == FaultKind::ApiServerRestart)
            || out
                .iter()
                .any(|f| f.kind == FaultKind::Injected500s && at < f.at + Duration::from_secs(2));
        let admissible = match kind {
            k if k.is_node_fault() => {
                let busy: Vec<usize> = overlapping
                    .iter()
                    .filter(|f| f.kind.is_node_fault())
                    .map(|f| f.target)
                    .collect();
                let out_now = overlapping
                    .iter()
                    .filter(|f| f.kind.takes_node_out())
                    .count();
                let free: Vec<usize> = (1..=spec.nodes).filter(|n| !busy.contains(n)).collect();
                if free.is_empty() || (k.takes_node_out() && out_now >= max_nodes_out) {
                    None
                } else {
                    Some(free[rng.random_range(0..free.len())])
                }
            }
            k if k.is_control_plane() => {
                let busy = overlapping.iter().any(|f| f.kind.is_control_plane())
                    || overlapping.iter().any(|f| f.kind.writes_objects());
                let target = if k == FaultKind::ControllerKill {
                    rng.random_range(0..spec.controller_replicas.max(1))
                } else {
                    0
                };
                (!busy).then_some(target)
            }
            FaultKind::RouterRestart => {
                let busy = out
                    .iter()
                    .any(|f| f.kind == FaultKind::RouterRestart && at < f.at + RESTART_SPACING);
                (!busy).then_some(0)
            }
            FaultKind::PoolChurn => {
                let step = pool_step % 3;
                (!apiserver_down).then_some(step)
            }
            _ => (!apiserver_down).then_some(0),
        };
        if let Some(target) = admissible {
            let param = match kind {
                FaultKind::Netem => rng.random_range(2..15),
                FaultKind::EndpointMove => endpoint_set(&mut rng, spec.nodes),
                _ => 0,
            };
            if kind == FaultKind::PoolChurn {
                pool_step += 1;
            }
            out.push(ScheduledFault {
                id: out.len(),
                kind,
                at,
                hold,
                target,
                param,
            });
        }
        at += Duration::from_millis(rng.random_range(300..2500));
    }
    out
}

/// Router restarts at least this far apart: each one withdraws every BGP route until the
/// sessions are back, and back-to-back restarts would only measure the same outage twice.
const RESTART_SPACING: Duration = Duration::from_secs(15);

/// One or two nodes as a bit set (bit `n - 1` for node `n`).
fn endpoint_set(rng: &mut StdRng, nodes: usize) -> u32 {
    let nodes = nodes.clamp(1, 31);
    let a = rng.random_range(0..nodes);
    let b = rng.random_range(0..nodes);
    (1 << a) | (1 << b)
}

/// The nodes (1-based) in an endpoint bit set.
pub fn endpoint_nodes(set: u32) -> Vec<usize> {
    (0..32)
        .filter(|b| set & (1 << b) != 0)
        .map(|b| b + 1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(seed: u64) -> ScheduleSpec {
        ScheduleSpec {
            duration: Duration::from_secs(120),
            seed,
            nodes: 5,
            controller_replicas: 2,
        }
    }

    #[test]
    fn a_seed_replays_the_same_schedule() {
        assert_eq!(schedule(spec(7)), schedule(spec(7)));
        assert_ne!(schedule(spec(7)), schedule(spec(8)));
    }

    #[test]
    fn faults_overlap_within_the_limits() {
        for seed in 0..50 {
            let s = schedule(spec(seed));
            assert!(s.len() > 20, "seed {seed}: only {} faults", s.len());
            for f in &s {
                assert!(f.at >= QUIET_START && f.end() <= Duration::from_secs(116));
                let at_once: Vec<&ScheduledFault> = s
                    .iter()
                    .filter(|g| g.at <= f.at && f.at < g.end())
                    .collect();
                let out = at_once.iter().filter(|g| g.kind.takes_node_out()).count();
                assert!(out <= 2, "seed {seed}: {out} nodes out at {:?}", f.at);
                let mut nodes: Vec<usize> = at_once
                    .iter()
                    .filter(|g| g.kind.is_node_fault())
                    .map(|g| g.target)
                    .collect();
                let n = nodes.len();
                nodes.dedup();
                nodes.sort_unstable();
                nodes.dedup();
                assert_eq!(nodes.len(), n, "seed {seed}: a node faulted twice at once");
                let control = at_once.iter().filter(|g| g.kind.is_control_plane()).count();
                assert!(
                    control <= 1,
                    "seed {seed}: two control-plane faults at once"
                );
                if f.kind.writes_objects() {
                    assert!(
                        !at_once
                            .iter()
                            .any(|g| g.kind == FaultKind::ApiServerRestart),
                        "seed {seed}: {:?} while the API server is down",
                        f.kind
                    );
                }
            }
        }
    }

    #[test]
    fn several_faults_overlap_and_every_kind_occurs() {
        let s = schedule(spec(1));
        let overlapping = s
            .iter()
            .filter(|f| {
                s.iter()
                    .any(|g| g.id != f.id && g.at <= f.at && f.at < g.end())
            })
            .count();
        assert!(overlapping > 5, "only {overlapping} overlapping faults");
        let mut kinds: Vec<FaultKind> = (0..10)
            .flat_map(|seed| schedule(spec(seed)))
            .map(|f| f.kind)
            .collect();
        kinds.sort();
        kinds.dedup();
        assert_eq!(kinds, FaultKind::ALL.to_vec());
    }

    #[test]
    fn json_names_are_the_report_names() {
        for k in FaultKind::ALL {
            let json = serde_json::to_value(k).expect("json");
            assert_eq!(json, k.name(), "{k:?}");
        }
    }

    #[test]
    fn endpoint_sets_name_existing_nodes() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..100 {
            let nodes = endpoint_nodes(endpoint_set(&mut rng, 5));
            assert!(!nodes.is_empty() && nodes.len() <= 2);
            assert!(nodes.iter().all(|&n| (1..=5).contains(&n)));
        }
    }

    #[test]
    fn a_run_too_short_for_faults_has_none() {
        let mut s = spec(1);
        s.duration = Duration::from_secs(5);
        assert!(schedule(s).is_empty());
    }
}
