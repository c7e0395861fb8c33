//! The fault executors: each fault's injection and repair on the lab, thin calls into
//! [`Cluster`] and the lab's namespaces. What each one did (or why it could not) is recorded
//! with the times the invariants judge it by.

use super::invariants::{FaultRecord, ServiceFacts};
use super::lab::{
    CHURN_LIVE, LOCAL_SERVICE, churn_pool_step, create_churn_service, delete_service, set_endpoints,
};
use super::schedule::{FaultKind, ScheduledFault, endpoint_nodes};
use crate::cluster::Cluster;
use anyhow::{Context, anyhow};
use nix::sys::signal::Signal;
use std::collections::BTreeSet;
use std::time::Duration;

/// Delay added by a netem fault, on both directions of the node's link.
pub const NETEM_DELAY_MS: u32 = 20;

/// What the faults changed that the invariants need to know: Services created and deleted,
/// endpoints moved, the churn pool's presence.
#[derive(Default)]
pub struct Changes {
    pub churn_services: Vec<ServiceFacts>,
    pub endpoints: Vec<(Duration, BTreeSet<usize>)>,
    pub churn_pool: Vec<(Duration, bool)>,
}

/// The switch-side port of node `n`'s link.
fn switch_port(c: &Cluster, n: usize) -> anyhow::Result<String> {
    c.lab
        .node(n)
        .attachments()
        .first()
        .map(|a| a.switch_port.clone())
        .ok_or_else(|| anyhow!("node{n} has no link"))
}

fn netem(c: &Cluster, n: usize, loss: u32, on: bool) -> anyhow::Result<()> {
    let port = switch_port(c, n)?;
    let node = c.lab.node(n);
    let targets = [(c.lab.switch(), port.as_str()), (node.ns(), node.iface())];
    for (ns, dev) in targets {
        let mut argv = vec!["tc".to_string(), "qdisc".into()];
        if on {
            argv.extend(["add", "dev", dev, "root", "netem", "loss"].map(str::to_string));
            argv.push(format!("{loss}%"));
            argv.push("delay".into());
            argv.push(format!("{NETEM_DELAY_MS}ms"));
        } else {
            argv.extend(["del", "dev", dev, "root"].map(str::to_string));
        }
        ns.exec_ok(&argv)
            .map_err(|e| anyhow!("{}: {e}", argv.join(" ")))?;
    }
    Ok(())
}

/// Whether this kernel has `tc netem` (`sch_netem`): tried on node 1's loopback. `Err` says
/// why not; netem faults are then reported as not available, not injected.
pub fn netem_available(c: &Cluster) -> Result<(), String> {
    let ns = c.lab.node(1).ns();
    let add = [
        "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
    ];
    match ns.exec(add) {
        Ok(out) if out.success() => {
            let _ = ns.exec(["tc", "qdisc", "del", "dev", "lo", "root"]);
            Ok(())
        }
        Ok(out) => Err(out.stderr.trim().to_string()),
        Err(e) => Err(e.to_string()),
    }
}

fn link(c: &Cluster, n: usize, up: bool) -> anyhow::Result<()> {
    let port = switch_port(c, n)?;
    c.lab
        .switch()
        .ip(["link", "set", port.as_str(), if up { "up" } else { "down" }])
        .map_err(|e| anyhow!("link {port}: {e}"))?;
    Ok(())
}

/// Injects `f` at offset `now`; returns what was done.
pub fn inject(
    c: &mut Cluster,
    f: &ScheduledFault,
    now: Duration,
    changes: &mut Changes,
) -> anyhow::Result<String> {
    let n = f.target;
    match f.kind {
        FaultKind::SpeakerKill => {
            let p = c
                .speaker(n)
                .ok_or_else(|| anyhow!("node{n}'s speaker is not running"))?;
            p.kill().map_err(|e| anyhow!("{e}"))?;
            c.drop_speaker(n);
            Ok(format!("SIGKILL node{n}'s speaker"))
        }
        FaultKind::SpeakerStop => {
            let p = c
                .speaker(n)
                .ok_or_else(|| anyhow!("node{n}'s speaker is not running"))?;
            p.pause().map_err(|e| anyhow!("{e}"))?;
            Ok(format!("SIGSTOP node{n}'s speaker"))
        }
        FaultKind::LinkDown => {
            link(c, n, false)?;
            Ok(format!("node{n}'s link down"))
        }
        FaultKind::Netem => {
            netem(c, n, f.param, true)?;
            Ok(format!(
                "netem on node{n}'s link: {}% loss, {NETEM_DELAY_MS} ms delay each way",
                f.param
            ))
        }
        FaultKind::ControllerKill => {
            let p = c
                .controller_replica(n)
                .ok_or_else(|| anyhow!("controller replica {n} is not running"))?;
            p.kill().map_err(|e| anyhow!("{e}"))?;
            c.drop_controller_replica(n);
            Ok(format!("SIGKILL controller replica {n}"))
        }
        FaultKind::ApiServerRestart => {
            c.stop_apiserver()?;
            Ok("API server stopped".into())
        }
        FaultKind::DroppedWatches | FaultKind::Injected500s => {
            let (sig, what) = if f.kind == FaultKind::DroppedWatches {
                (Signal::SIGUSR1, "API server dropped every open watch")
            } else {
                (
                    Signal::SIGUSR2,
                    "API server answers the next 20 requests with 500",
                )
            };
            let p = c
                .apiserver()
                .ok_or_else(|| anyhow!("the API server is not running"))?;
            p.signal(sig).map_err(|e| anyhow!("{e}"))?;
            Ok(what.into())
        }
        FaultKind::RouterRestart => {
            c.restart_bird()?;
            Ok("BIRD killed and started again".into())
        }
        FaultKind::ServiceChurn => {
            let name = format!("churn-{}", f.id);
            let mut facts = create_churn_service(c, &name)?;
            facts.created = now;
            changes.churn_services.push(facts);
            let live: Vec<usize> = changes
                .churn_services
                .iter()
                .enumerate()
                .filter(|(_, s)| s.deleted.is_none())
                .map(|(i, _)| i)
                .collect();
            let mut detail = format!("created {name}");
            if live.len() > CHURN_LIVE
                && let Some(&oldest) = live.first()
            {
                let old = changes.churn_services[oldest].name.clone();
                delete_service(c, &old)?;
                changes.churn_services[oldest].deleted = Some(now);
                detail.push_str(&format!(", deleted {old}"));
            }
            Ok(detail)
        }
        FaultKind::EndpointMove => {
            let nodes: BTreeSet<usize> = endpoint_nodes(f.param)
                .into_iter()
                .filter(|&x| x <= c.lab.nodes().len())
                .collect();
            set_endpoints(c, LOCAL_SERVICE, &nodes)?;
            changes.endpoints.push((now, nodes.clone()));
            Ok(format!("{LOCAL_SERVICE} endpoints on nodes {nodes:?}"))
        }
        FaultKind::PoolChurn => {
            let present = churn_pool_step(c, n)?;
            changes.churn_pool.push((now, present));
            Ok(match n {
                0 => "churn-pool shrunk".into(),
                1 => "churn-pool removed".into(),
                _ => "churn-pool restored".into(),
            })
        }
    }
}

/// Repairs `f` (faults with a duration).
pub fn repair(c: &mut Cluster, f: &ScheduledFault) -> anyhow::Result<()> {
    let n = f.target;
    match f.kind {
        FaultKind::SpeakerKill => c.start_speaker(n),
        FaultKind::SpeakerStop => {
            let p = c
                .speaker(n)
                .ok_or_else(|| anyhow!("node{n}'s speaker is gone"))?;
            p.resume().map_err(|e| anyhow!("{e}"))
        }
        FaultKind::LinkDown => link(c, n, true),
        FaultKind::Netem => netem(c, n, f.param, false),
        FaultKind::ControllerKill => c.start_controller_replica(n),
        FaultKind::ApiServerRestart => c.start_apiserver(),
        _ => Ok(()),
    }
    .with_context(|| format!("repairing {} #{}", f.kind.name(), f.id))
}

/// A fault as it was executed.
pub fn record(f: &ScheduledFault, start: Duration, end: Duration, detail: String) -> FaultRecord {
    FaultRecord {
        id: f.id,
        kind: f.kind,
        target: f.target,
        start,
        end,
        detail,
    }
}
