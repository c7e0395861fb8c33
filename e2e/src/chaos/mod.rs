//! `ferrolb-e2e chaos`: ferrolb on the lab under a seeded schedule of overlapping faults,
//! judged from outside the components by invariants checked every 100 ms.
//!
//! - [`schedule`]: the pure, seeded fault schedule;
//! - [`faults`]: the executors (signals, links, netem, restarts, churn);
//! - [`observers`]: clients, the API server's Service statuses, the router's table (ARP
//!   replies: [`crate::arp_probe`]);
//! - [`invariants`]: pure checks over the recorded observations;
//! - [`report`]: what the run found.

pub mod faults;
pub mod invariants;
pub mod lab;
pub mod observers;
pub mod report;
pub mod schedule;

use crate::arp_probe::ArpProber;
use crate::cluster::Cluster;
use anyhow::{Context, bail};
use invariants::{
    ArpSample, CheckInput, FaultRecord, Invariant, Observations, Plane, ProbeSeries, ServiceFacts,
    Violation,
};
use observers::{HttpProber, SAMPLE_EVERY, sample_router, sample_services};
use report::ChaosReport;
use schedule::{ScheduleSpec, ScheduledFault, schedule};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// After the last fault's repair and the run's end, this long for everything to converge; the
/// invariants keep being checked meanwhile.
pub const SETTLE: Duration = Duration::from_secs(20);
/// The final state is judged on the samples of this last stretch of the settle period.
const FINAL_WINDOW: Duration = Duration::from_secs(2);

/// What to run.
#[derive(Clone, Debug)]
pub struct ChaosOptions {
    pub duration: Duration,
    pub seed: u64,
    pub nodes: u8,
}

/// A client and what it probes.
struct Client {
    label: String,
    plane: Plane,
    local: bool,
    prober: HttpProber,
}

/// Runs the chaos: deploys, injects the schedule while observing, settles, checks every
/// invariant, tears down and checks nothing is left behind.
pub fn run(opts: &ChaosOptions) -> anyhow::Result<ChaosReport> {
    if opts.nodes < 3 {
        bail!(
            "--nodes {}: at least 3 (a majority must carry the Services while one is faulted)",
            opts.nodes
        );
    }
    let plan = schedule(ScheduleSpec {
        duration: opts.duration,
        seed: opts.seed,
        nodes: usize::from(opts.nodes),
        controller_replicas: lab::CONTROLLER_REPLICAS,
    });
    let mut report = ChaosReport::new(opts.seed, opts.duration.as_secs(), opts.nodes);
    let (mut cluster, mut services) = lab::deploy(opts.nodes)?;
    let outcome = run_deployed(&mut cluster, &mut services, &plan, opts, &mut report);
    // Teardown, whatever happened: every process by PID, then the namespaces.
    let leftovers = teardown(cluster);
    outcome?;
    let end_ms = report_end_ms(opts);
    for what in leftovers {
        report.violations.push(Violation {
            invariant: Invariant::Convergence,
            at_ms: end_ms,
            lasted_ms: 0,
            detail: format!("left behind after teardown: {what}"),
        });
    }
    report.summarise();
    Ok(report)
}

fn report_end_ms(opts: &ChaosOptions) -> u64 {
    u64::try_from((opts.duration + SETTLE).as_millis()).unwrap_or(u64::MAX)
}

fn run_deployed(
    c: &mut Cluster,
    services: &mut Vec<ServiceFacts>,
    plan: &[ScheduledFault],
    opts: &ChaosOptions,
    report: &mut ChaosReport,
) -> anyhow::Result<()> {
    let initial = lab::wait_addresses(c, services, Duration::from_secs(90))?;
    let nodes = usize::from(opts.nodes);
    let node_addrs: BTreeMap<IpAddr, usize> = (1..=nodes)
        .flat_map(|i| c.lab.node(i).addrs().into_iter().map(move |a| (a, i)))
        .collect();
    let bgp_addresses: BTreeMap<IpAddr, String> = services
        .iter()
        .filter(|s| s.plane == Plane::Bgp)
        .flat_map(|s| {
            initial
                .get(&s.name)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|ip| (ip, s.name.clone()))
        })
        .collect();
    wait_router(c, &bgp_addresses, &node_addrs, nodes)?;
    let netem = faults::netem_available(c);
    if let Err(why) = &netem {
        let n = plan
            .iter()
            .filter(|f| f.kind == schedule::FaultKind::Netem)
            .count();
        report.not_available.push(format!(
            "netem: this kernel has no tc netem ({why}); {n} netem faults of the schedule not injected"
        ));
    }
    let (clients, arp) = start_observers(c, services, &initial)?;

    let t0 = Instant::now();
    let mut obs = Observations::default();
    obs.endpoints.insert(
        lab::LOCAL_SERVICE.into(),
        vec![(Duration::ZERO, BTreeSet::from([1, 2]))],
    );
    let mut changes = faults::Changes::default();
    // (when, repair?, fault index), in order; a repair after its injection at equal times.
    let mut actions: Vec<(Duration, bool, usize)> = plan
        .iter()
        .enumerate()
        .flat_map(|(i, f)| {
            let mut v = vec![(f.at, false, i)];
            if !f.hold.is_zero() {
                v.push((f.end(), true, i));
            }
            v
        })
        .collect();
    actions.sort();
    let mut next = 0;
    let mut injected: BTreeMap<usize, (Duration, String)> = BTreeMap::new();
    let mut records: Vec<FaultRecord> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let end = opts.duration + SETTLE;
    loop {
        let tick = Instant::now();
        let now = tick - t0;
        while let Some(&(at, repair, i)) = actions.get(next) {
            if at > now {
                break;
            }
            next += 1;
            let f = &plan[i];
            if repair {
                let Some((start, detail)) = injected.remove(&i) else {
                    continue;
                };
                if let Err(e) = faults::repair(c, f) {
                    errors.push(format!("{e:#}"));
                }
                records.push(faults::record(f, start, t0.elapsed(), detail));
            } else if f.kind == schedule::FaultKind::Netem && netem.is_err() {
                continue;
            } else {
                let start = t0.elapsed();
                match faults::inject(c, f, start, &mut changes) {
                    Ok(detail) if f.hold.is_zero() => {
                        records.push(faults::record(f, start, t0.elapsed(), detail));
                    }
                    Ok(detail) => {
                        injected.insert(i, (start, detail));
                    }
                    Err(e) => errors.push(format!(
                        "{} #{} at {:.1} s not injected: {e:#}",
                        f.kind.name(),
                        f.id,
                        start.as_secs_f64()
                    )),
                }
            }
        }
        if now >= end {
            break;
        }
        obs.services.push(sample_services(c, t0));
        obs.router.push(sample_router(c, t0, &node_addrs));
        let spent = tick.elapsed();
        if let Some(rest) = SAMPLE_EVERY.checked_sub(spent) {
            std::thread::sleep(rest);
        }
    }
    for e in &errors {
        tracing::warn!("{e}");
    }

    // What the faults changed, for the checks.
    let mut all_services = services.clone();
    all_services.extend(changes.churn_services.iter().cloned());
    if let Some(e) = obs.endpoints.get_mut(lab::LOCAL_SERVICE) {
        e.extend(changes.endpoints.iter().cloned());
    }
    obs.churn_pool = changes.churn_pool.clone();
    for client in &clients {
        obs.probes.push(ProbeSeries {
            label: client.label.clone(),
            plane: client.plane,
            local: client.local,
            samples: client.prober.samples(t0),
        });
    }
    drop(clients);
    for (ip, prober) in arp {
        let run = prober
            .finish()
            .with_context(|| format!("ARP prober for {ip}"))?;
        let samples = run
            .probes
            .iter()
            .filter(|p| p.at >= t0)
            .map(|p| ArpSample {
                at: p.at - t0,
                macs: p.replies.iter().map(|(_, m)| m.clone()).collect(),
            })
            .collect();
        obs.arp.insert(IpAddr::V4(ip), samples);
    }

    records.sort_by_key(|r| r.start);
    let input = CheckInput {
        services: &all_services,
        faults: &records,
        obs: &obs,
        nodes,
    };
    let mut violations = invariants::check_assignment(&input);
    violations.extend(invariants::check_exclusive(&input));
    let (arp_violations, longest_dual) = invariants::check_single_answerer(&input);
    violations.extend(arp_violations);
    violations.extend(invariants::check_next_hops(&input, &bgp_addresses));
    let (probe_violations, outages) = invariants::check_reachability(&input);
    violations.extend(probe_violations);
    violations.extend(check_converged(c, &input, &initial, &bgp_addresses, end));
    for e in errors {
        violations.push(Violation {
            invariant: Invariant::Convergence,
            at_ms: 0,
            lasted_ms: 0,
            detail: format!("fault executor: {e}"),
        });
    }

    report.longest_dual_answer_ms = u64::try_from(longest_dual.as_millis()).unwrap_or(u64::MAX);
    report.probes_sent = obs.probes.iter().map(|p| p.samples.len()).sum();
    report.probes_failed = obs
        .probes
        .iter()
        .map(|p| p.samples.iter().filter(|s| !s.ok).count())
        .sum();
    report.arp_requests = obs.arp.values().map(Vec::len).sum();
    report.service_samples = obs.services.len();
    report.router_samples = obs.router.len();
    report.violations = violations;
    report.faults = records;
    report.outages = outages;
    *services = all_services;
    Ok(())
}

/// Waits until the router routes every BGP address via its eligible nodes (all nodes; the
/// Local Service: nodes 1 and 2).
fn wait_router(
    c: &Cluster,
    bgp: &BTreeMap<IpAddr, String>,
    node_addrs: &BTreeMap<IpAddr, usize>,
    nodes: usize,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let sample = sample_router(c, Instant::now(), node_addrs);
        let ready = sample.hops.as_ref().is_some_and(|table| {
            bgp.iter().all(|(ip, name)| {
                let want: BTreeSet<usize> = if name == lab::LOCAL_SERVICE {
                    BTreeSet::from([1, 2])
                } else {
                    (1..=nodes).collect()
                };
                table.get(ip) == Some(&want)
            })
        });
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the router does not route the BGP Services via their nodes: {:?}",
                sample.hops
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

type ArpProbers = Vec<(std::net::Ipv4Addr, ArpProber)>;

/// HTTP clients for every TCP Service address (LAN client for layer 2, the client behind the
/// router for BGP) and an ARP prober for every layer 2 IPv4 address; returns once every
/// client has been served.
fn start_observers(
    c: &Cluster,
    services: &[ServiceFacts],
    initial: &BTreeMap<String, Vec<IpAddr>>,
) -> anyhow::Result<(Vec<Client>, ArpProbers)> {
    let lan = c.lab.lan_client();
    let upstream = c.lab.upstream_client();
    let mut clients = Vec::new();
    let mut arp_targets = BTreeSet::new();
    for s in services {
        for ip in initial.get(&s.name).into_iter().flatten() {
            if let (Plane::L2, IpAddr::V4(v4)) = (s.plane, ip) {
                arp_targets.insert(*v4);
            }
            if s.name == "shared-udp" {
                continue;
            }
            let (ns, from) = match s.plane {
                Plane::L2 => (lan.ns().name(), "LAN client"),
                Plane::Bgp => (upstream.ns().name(), "upstream client"),
            };
            clients.push(Client {
                label: format!("{from} -> {} {ip}", s.name),
                plane: s.plane,
                local: s.local,
                prober: HttpProber::start(ns, SocketAddr::new(*ip, 80))?,
            });
        }
    }
    let netns = PathBuf::from(crate::lab::netns::NETNS_RUN_DIR).join(lan.ns().name());
    let mac = lan.mac(lan.iface()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut arp = Vec::new();
    for ip in arp_targets {
        let p = ArpProber::start(netns.clone(), lan.iface(), &mac, lan.v4(), ip, SAMPLE_EVERY)
            .with_context(|| format!("ARP prober for {ip}"))?;
        arp.push((ip, p));
    }
    let from = Instant::now();
    let deadline = from + Duration::from_secs(30);
    while !clients.iter().all(|cl| cl.prober.succeeded_since(from)) {
        if Instant::now() > deadline {
            let failing: Vec<&str> = clients
                .iter()
                .filter(|cl| !cl.prober.succeeded_since(from))
                .map(|cl| cl.label.as_str())
                .collect();
            bail!("clients not served before the faults start: {failing:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok((clients, arp))
}

/// Invariant 6, before teardown: at the end of the settle period every Service has its
/// addresses (the static ones those they started with: a fresh start keeps them), the router
/// routes each BGP address via exactly its eligible nodes, one MAC answers for each layer 2
/// address, every client is served, and every component runs.
fn check_converged(
    c: &Cluster,
    input: &CheckInput<'_>,
    initial: &BTreeMap<String, Vec<IpAddr>>,
    bgp: &BTreeMap<IpAddr, String>,
    end: Duration,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let at_ms = u64::try_from(end.as_millis()).unwrap_or(u64::MAX);
    let mut fail = |detail: String| {
        out.push(Violation {
            invariant: Invariant::Convergence,
            at_ms,
            lasted_ms: 0,
            detail,
        });
    };
    let from = end.saturating_sub(FINAL_WINDOW);
    let obs = input.obs;
    match obs.services.iter().rev().find_map(|s| s.addresses.as_ref()) {
        None => fail("no Service sample at the end".into()),
        Some(addrs) => {
            let pool = obs.churn_pool.last().is_none_or(|&(_, p)| p);
            for s in input.services.iter().filter(|s| s.deleted.is_none()) {
                let now = addrs.get(&s.name).cloned().unwrap_or_default();
                match initial.get(&s.name) {
                    Some(first) if *first != now => fail(format!(
                        "{} ends with {now:?}, started with {first:?}",
                        s.name
                    )),
                    None if pool && now.is_empty() => {
                        fail(format!("{} ends without an address", s.name))
                    }
                    _ => {}
                }
            }
        }
    }
    let final_endpoints = obs
        .endpoints
        .get(lab::LOCAL_SERVICE)
        .and_then(|e| e.last())
        .map(|(_, n)| n.clone())
        .unwrap_or_default();
    match obs.router.iter().rev().find_map(|s| s.hops.as_ref()) {
        None => fail("no router sample at the end".into()),
        Some(table) => {
            for (ip, name) in bgp {
                let want: BTreeSet<usize> = if name == lab::LOCAL_SERVICE {
                    final_endpoints.clone()
                } else {
                    (1..=input.nodes).collect()
                };
                let have = table.get(ip).cloned().unwrap_or_default();
                if have != want {
                    fail(format!(
                        "router routes {ip} ({name}) via nodes {have:?}, not {want:?}"
                    ));
                }
            }
        }
    }
    for (ip, samples) in &obs.arp {
        let macs: BTreeSet<&String> = samples
            .iter()
            .filter(|s| s.at >= from)
            .flat_map(|s| s.macs.iter())
            .collect();
        if macs.len() != 1 {
            fail(format!("{ip} answered by {macs:?} at the end"));
        }
    }
    for p in &obs.probes {
        let failed = p.samples.iter().filter(|s| s.at >= from && !s.ok).count();
        if failed > 0 {
            fail(format!("{}: {failed} probes failed at the end", p.label));
        }
    }
    for i in 1..=input.nodes {
        if !c.speaker(i).is_some_and(|p| p.is_running()) {
            fail(format!("node{i}'s speaker is not running at the end"));
        }
    }
    for r in 0..lab::CONTROLLER_REPLICAS {
        if !c.controller_replica(r).is_some_and(|p| p.is_running()) {
            fail(format!("controller replica {r} is not running at the end"));
        }
    }
    if !c.apiserver().is_some_and(|p| p.is_running()) {
        fail("the API server is not running at the end".into());
    }
    out
}

/// Drops the deployment and reports what is left: processes it started (by PID) still alive,
/// namespaces of the lab still present (with them would go their routes, qdiscs and the
/// speakers' eBPF programs).
fn teardown(c: Cluster) -> Vec<String> {
    let mut pids: Vec<(String, i32)> = Vec::new();
    for i in 1..=c.lab.nodes().len() {
        if let Some(p) = c.speaker(i) {
            pids.push((format!("node{i}'s speaker"), p.pid()));
        }
    }
    for r in 0..lab::CONTROLLER_REPLICAS {
        if let Some(p) = c.controller_replica(r) {
            pids.push((format!("controller replica {r}"), p.pid()));
        }
    }
    if let Some(p) = c.apiserver() {
        pids.push(("the API server".into(), p.pid()));
    }
    if let Some(b) = &c.bird {
        pids.push(("BIRD".into(), b.process().pid()));
    }
    let prefix = c.lab.prefix().to_string();
    drop(c);
    let mut left = Vec::new();
    for (what, pid) in pids {
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        if alive {
            left.push(format!("{what} (pid {pid})"));
        }
    }
    let netns = std::fs::read_dir(crate::lab::netns::NETNS_RUN_DIR)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("{prefix}-")))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    left.extend(netns.into_iter().map(|n| format!("network namespace {n}")));
    left
}
