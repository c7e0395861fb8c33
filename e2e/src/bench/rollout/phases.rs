//! The operations, each measured as one window of client figures plus its own facts.

use super::lab::{RolloutLab, WindowFigures};
use anyhow::{Context, anyhow, bail};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long a speaker may take to come back and serve as before.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// The controller's leader Lease duration (the controller's default).
pub const LEASE: Duration = Duration::from_secs(15);

/// One operation's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PhaseReport {
    pub phase: String,
    #[serde(flatten)]
    pub figures: WindowFigures,
    /// What the operation itself measured (times, nodes, addresses moved).
    pub facts: BTreeMap<String, serde_json::Value>,
}

impl PhaseReport {
    fn new(phase: &str, figures: WindowFigures) -> Self {
        PhaseReport {
            phase: phase.into(),
            figures,
            facts: BTreeMap::new(),
        }
    }

    fn fact(mut self, name: &str, value: impl serde::Serialize) -> Self {
        self.facts.insert(
            name.into(),
            serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
        );
        self
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

/// Stops node `i`'s speaker with SIGTERM as a kubelet does and waits for it to exit.
fn terminate_speaker(lab: &mut RolloutLab, i: usize) -> anyhow::Result<()> {
    let p = lab
        .cluster
        .speaker(i)
        .ok_or_else(|| anyhow!("node{i} runs no speaker"))?;
    p.terminate().map_err(|e| anyhow!("SIGTERM node{i}: {e}"))?;
    p.wait_timeout(Duration::from_secs(30))
        .map_err(|e| anyhow!("node{i}'s speaker did not exit after SIGTERM: {e}"))?;
    lab.cluster.drop_speaker(i);
    Ok(())
}

/// SIGKILLs node `i`'s speaker (a crash).
fn kill_speaker(lab: &mut RolloutLab, i: usize) -> anyhow::Result<Instant> {
    let p = lab
        .cluster
        .speaker(i)
        .ok_or_else(|| anyhow!("node{i} runs no speaker"))?;
    p.kill().map_err(|e| anyhow!("SIGKILL node{i}: {e}"))?;
    let at = Instant::now();
    let _ = p.wait_timeout(Duration::from_secs(5));
    lab.cluster.drop_speaker(i);
    Ok(at)
}

/// Addresses of `before` that are not the same now.
fn moved(
    before: &BTreeMap<String, Vec<std::net::IpAddr>>,
    after: &BTreeMap<String, Vec<std::net::IpAddr>>,
) -> Vec<String> {
    before
        .iter()
        .filter(|(name, ips)| after.get(*name) != Some(ips))
        .map(|(name, ips)| format!("{name} {ips:?} -> {:?}", after.get(name)))
        .collect()
}

/// (1) Every speaker restarted one after the other, as a DaemonSet update does: SIGTERM,
/// the new process, ready, then the next node.
pub fn rolling_restart(lab: &mut RolloutLab) -> anyhow::Result<PhaseReport> {
    let (figures, per_node) = lab.window(|lab| {
        let mut per_node = Vec::new();
        for i in 1..=3 {
            let start = Instant::now();
            terminate_speaker(lab, i)?;
            lab.cluster.start_speaker(i)?;
            lab.wait_speaker_ready(i, READY_WITHIN)?;
            per_node.push(ms(start.elapsed()));
            // A DaemonSet's minReadySeconds between nodes.
            std::thread::sleep(Duration::from_secs(2));
        }
        Ok(per_node)
    })?;
    Ok(
        PhaseReport::new("rolling restart of every speaker", figures)
            .fact("restart_to_ready_ms", per_node),
    )
}

/// (2) The node answering for the layer 2 address is drained: excluded by label, then its
/// speaker stopped. Returns the node too.
pub fn drain(lab: &mut RolloutLab) -> anyhow::Result<(PhaseReport, usize)> {
    let node = lab.l2_owner(Duration::from_secs(10))?;
    let (figures, (moved_after, withdrawn_after)) = lab.window(|lab| {
        let start = Instant::now();
        lab.set_excluded(node, true)?;
        let moved_after = lab
            .cluster
            .wait_single_announcer(std::net::IpAddr::V4(lab.l2_ip), Some(node), READY_WITHIN)
            .map(|_| start.elapsed())?;
        let deadline = Instant::now() + READY_WITHIN;
        while lab.router_routes_via(node) {
            if Instant::now() > deadline {
                bail!("the router still routes via drained node{node}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let withdrawn_after = start.elapsed();
        terminate_speaker(lab, node)?;
        std::thread::sleep(Duration::from_secs(2));
        Ok((moved_after, withdrawn_after))
    })?;
    Ok((
        PhaseReport::new("drain of one node", figures)
            .fact("node", format!("node{node}"))
            .fact("l2_moved_after_ms", ms(moved_after))
            .fact("bgp_withdrawn_after_ms", ms(withdrawn_after)),
        node,
    ))
}

/// The drained node returns: its speaker starts and the label goes.
pub fn undrain(lab: &mut RolloutLab, node: usize) -> anyhow::Result<PhaseReport> {
    let (figures, ()) = lab.window(|lab| {
        lab.cluster.start_speaker(node)?;
        lab.set_excluded(node, false)?;
        lab.wait_speaker_ready(node, READY_WITHIN)?;
        Ok(())
    })?;
    Ok(PhaseReport::new("return of the drained node", figures).fact("node", format!("node{node}")))
}

/// How the controller leader goes away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaderExit {
    /// SIGKILL: a crash; the standby waits out the Lease.
    Kill,
    /// SIGTERM: a rolling update; the leader releases its Lease.
    Terminate,
}

/// What a controller failover did.
#[derive(Clone, Debug)]
pub struct ControllerFailover {
    pub old_leader: String,
    pub new_leader: Option<String>,
    /// Exit of the leader → the Lease names another holder.
    pub leader_changed_after: Option<Duration>,
    /// A Service created right after the exit: creation → address.
    pub new_service_address_after: Duration,
    /// Services whose addresses changed (target: none).
    pub addresses_moved: Vec<String>,
}

/// (3) The controller leader exits; a Service is created at once; the killed replica comes
/// back as its Deployment restarts it.
pub fn controller_failover(
    lab: &mut RolloutLab,
    exit: LeaderExit,
    new_service: &str,
) -> anyhow::Result<(PhaseReport, ControllerFailover)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        if let Some(l) = lab.controller_leader()? {
            break l;
        }
        if Instant::now() > deadline {
            bail!("no controller replica holds the leader Lease");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let replica: usize = leader
        .strip_prefix("controller-")
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| anyhow!("unexpected leader identity {leader}"))?;
    let before = lab.service_addresses()?;
    let (figures, outcome) = lab.window(|lab| {
        let p = lab
            .cluster
            .controller_replica(replica)
            .ok_or_else(|| anyhow!("controller replica {replica} is not running"))?;
        match exit {
            LeaderExit::Kill => p.kill(),
            LeaderExit::Terminate => p.terminate(),
        }
        .map_err(|e| anyhow!("stopping controller-{replica}: {e}"))?;
        let exited = Instant::now();
        p.wait_timeout(Duration::from_secs(10))
            .map_err(|e| anyhow!("controller-{replica} did not exit: {e}"))?;
        lab.cluster.drop_controller_replica(replica);
        let (_, address_after) =
            lab.create_l2_service_and_wait(new_service, LEASE + Duration::from_secs(30))?;
        let mut new_leader = None;
        let mut changed_after = None;
        let until = Instant::now() + LEASE + Duration::from_secs(10);
        while Instant::now() < until {
            if let Some(l) = lab.controller_leader()?.filter(|l| *l != leader) {
                new_leader = Some(l);
                changed_after = Some(exited.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        lab.cluster
            .start_controller_replica(replica)
            .context("restarting the stopped replica")?;
        Ok((new_leader, changed_after, address_after))
    })?;
    let (new_leader, leader_changed_after, new_service_address_after) = outcome;
    let after = lab.service_addresses()?;
    let result = ControllerFailover {
        old_leader: leader,
        new_leader,
        leader_changed_after,
        new_service_address_after,
        addresses_moved: moved(&before, &after),
    };
    let name = match exit {
        LeaderExit::Kill => "SIGKILL of the controller leader",
        LeaderExit::Terminate => "SIGTERM of the controller leader (its rolling update)",
    };
    let report = PhaseReport::new(name, figures)
        .fact("old_leader", &result.old_leader)
        .fact("new_leader", &result.new_leader)
        .fact(
            "leader_changed_after_ms",
            result.leader_changed_after.map(ms),
        )
        .fact("lease_ms", ms(LEASE))
        .fact(
            "new_service_address_after_ms",
            ms(result.new_service_address_after),
        )
        .fact("addresses_moved", &result.addresses_moved);
    Ok((report, result))
}

/// What the API server outage did.
#[derive(Clone, Debug)]
pub struct ApiserverOutage {
    /// The node whose speaker was SIGKILLed during the outage (it answered for the layer 2
    /// address).
    pub killed: usize,
    /// Kill → the LAN client served by another node.
    pub l2_takeover: Option<Duration>,
    /// The router's next hops for the BGP address late in the outage.
    pub bgp_next_hops_during: Vec<usize>,
    /// API server back → a new Service has its address and one node answers for it.
    pub reconciled_after: Duration,
    /// Services whose addresses changed (target: none).
    pub addresses_moved: Vec<String>,
}

/// (4) The API server stops for `outage`; a third of the way in, the speaker answering for
/// the layer 2 address is SIGKILLed, and two thirds in its kubelet restarts it (it cannot
/// sync until the API server is back). After the API server returns, a new Service shows
/// that everything reconciles without a restart.
pub fn apiserver_outage(
    lab: &mut RolloutLab,
    outage: Duration,
    new_service: &str,
) -> anyhow::Result<(PhaseReport, ApiserverOutage)> {
    let killed = lab.l2_owner(Duration::from_secs(10))?;
    let before = lab.service_addresses()?;
    let (figures, (takeover, hops, reconciled)) = lab.window(|lab| {
        let start = Instant::now();
        lab.cluster.stop_apiserver()?;
        std::thread::sleep((outage / 3).saturating_sub(start.elapsed()));
        let kill_at = kill_speaker(lab, killed)?;
        let takeover = lab
            .l2_served_elsewhere(kill_at, killed, Duration::from_secs(5))
            .map(|t| t.saturating_duration_since(kill_at));
        std::thread::sleep((outage * 2 / 3).saturating_sub(start.elapsed()));
        lab.cluster.start_speaker(killed)?;
        std::thread::sleep(
            outage
                .saturating_sub(Duration::from_secs(1))
                .saturating_sub(start.elapsed()),
        );
        let hops = lab.router_next_hops();
        std::thread::sleep(outage.saturating_sub(start.elapsed()));
        lab.cluster.start_apiserver()?;
        let back = Instant::now();
        let (ip, _) = lab.create_l2_service_and_wait(new_service, Duration::from_secs(60))?;
        let addressed = back.elapsed();
        lab.cluster.wait_single_announcer(
            std::net::IpAddr::V4(ip),
            None,
            Duration::from_secs(60),
        )?;
        let reconciled = back.elapsed();
        lab.wait_speaker_ready(killed, READY_WITHIN)?;
        Ok((takeover, hops, (addressed, reconciled)))
    })?;
    let (addressed, reconciled) = reconciled;
    let after = lab.service_addresses()?;
    let result = ApiserverOutage {
        killed,
        l2_takeover: takeover,
        bgp_next_hops_during: hops,
        reconciled_after: reconciled,
        addresses_moved: moved(&before, &after),
    };
    let report = PhaseReport::new(
        "API server down with a speaker SIGKILLed in the middle",
        figures,
    )
    .fact("outage_ms", ms(outage))
    .fact("killed", format!("node{killed}"))
    .fact("l2_takeover_ms", result.l2_takeover.map(ms))
    .fact(
        "bgp_next_hops_late_in_outage",
        result
            .bgp_next_hops_during
            .iter()
            .map(|i| format!("node{i}"))
            .collect::<Vec<_>>(),
    )
    .fact("new_service_address_after_return_ms", ms(addressed))
    .fact("reconciled_after_ms", ms(result.reconciled_after))
    .fact("addresses_moved", &result.addresses_moved);
    Ok((report, result))
}

/// (5) A crash of the speaker answering for the layer 2 address (the reference takeover),
/// then its restart taking the address back; two windows.
pub fn crash_and_failback(lab: &mut RolloutLab) -> anyhow::Result<(PhaseReport, PhaseReport)> {
    let node = lab.l2_owner(Duration::from_secs(10))?;
    let (crash_figures, takeover) = lab.window(|lab| {
        let at = kill_speaker(lab, node)?;
        let takeover = lab
            .l2_served_elsewhere(at, node, Duration::from_secs(5))
            .map(|t| t.saturating_duration_since(at));
        std::thread::sleep(Duration::from_secs(2));
        Ok(takeover)
    })?;
    let crash = PhaseReport::new("speaker crash (reference takeover)", crash_figures)
        .fact("node", format!("node{node}"))
        .fact("l2_takeover_ms", takeover.map(ms));
    let (figures, back_after) = lab.window(|lab| {
        let start = Instant::now();
        lab.cluster.start_speaker(node)?;
        lab.wait_speaker_ready(node, READY_WITHIN)?;
        Ok(start.elapsed())
    })?;
    let failback = PhaseReport::new("a restarted speaker taking its addresses back", figures)
        .fact("node", format!("node{node}"))
        .fact("ready_after_ms", ms(back_after));
    Ok((crash, failback))
}
