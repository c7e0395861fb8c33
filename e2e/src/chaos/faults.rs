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
use std::time::{Duration, Instant};

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
            let (mut facts, after) = past_injected_500s(|| create_churn_service(c, &name))?;
            facts.created = now + after;
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
                let ((), after) = past_injected_500s(|| delete_service(c, &old))?;
                changes.churn_services[oldest].deleted = Some(now + after);
                detail.push_str(&format!(", deleted {old}"));
            }
            Ok(detail)
        }
        FaultKind::EndpointMove => {
            let nodes: BTreeSet<usize> = endpoint_nodes(f.param)
                .into_iter()
                .filter(|&x| x <= c.lab.nodes().len())
                .collect();
            let ((), after) = past_injected_500s(|| set_endpoints(c, LOCAL_SERVICE, &nodes))?;
            changes.endpoints.push((now + after, nodes.clone()));
            Ok(format!("{LOCAL_SERVICE} endpoints on nodes {nodes:?}"))
        }
        FaultKind::PoolChurn => {
            let (present, after) = past_injected_500s(|| churn_pool_step(c, n))?;
            changes.churn_pool.push((now + after, present));
            Ok(match n {
                0 => "churn-pool shrunk".into(),
                1 => "churn-pool removed".into(),
                _ => "churn-pool restored".into(),
            })
        }
    }
}

/// Runs one of the executor's own API writes again while the API server answers it with a 500:
/// the injected 500s are a fault aimed at the components, and the executor's write, made
/// meanwhile, must still happen. Returns the result and when, after the first try, the try
/// that got through began: the change happened then, not when it was first tried. At most 40
/// tries 50 ms apart (a fault answers 20 requests with 500, whoever makes them).
fn past_injected_500s<T>(
    mut write: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<(T, Duration)> {
    let first = Instant::now();
    let mut tries = 1;
    loop {
        let began = first.elapsed();
        match write() {
            Ok(v) => return Ok((v, began)),
            Err(e) if tries < 40 && answered_500(&e) => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether the API server answered with 500 (Internal Server Error).
fn answered_500(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        matches!(cause.downcast_ref::<kube::Error>(), Some(kube::Error::Api(s)) if s.code == 500)
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(code: u16) -> anyhow::Error {
        anyhow::Error::from(kube::Error::Api(
            kube::core::Status::failure("injected fault: internal error", "InternalError")
                .with_code(code)
                .boxed(),
        ))
        .context("writing the EndpointSlice")
    }

    #[test]
    fn a_write_answered_500_is_made_again_until_it_gets_through() {
        let mut answers = vec![Ok(7), Err(answered(500)), Err(answered(500))];
        let (v, began) = past_injected_500s(|| answers.pop().expect("a third try at most"))
            .expect("the third try gets through");
        assert_eq!(v, 7);
        assert!(began >= Duration::from_millis(100), "{began:?}");
        assert!(answers.is_empty());
    }

    #[test]
    fn other_failures_are_not_tried_again_and_500s_not_forever() {
        let mut tries = 0;
        let r: anyhow::Result<((), Duration)> = past_injected_500s(|| {
            tries += 1;
            Err(answered(404))
        });
        assert!(r.is_err() && tries == 1);
        let mut tries = 0;
        let r: anyhow::Result<((), Duration)> = past_injected_500s(|| {
            tries += 1;
            Err(answered(500))
        });
        assert!(r.is_err());
        assert_eq!(tries, 40);
    }
}
