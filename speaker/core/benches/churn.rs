//! The speaker's pass under endpoint churn, in process: 50,000 Services and 200,000 endpoints
//! (see `fixtures`; `FERROLB_BENCH_SERVICES` overrides the Services), one EndpointSlice
//! changing every 10 ms (100 changes/s, `FERROLB_CHURN_RATE`) for 20 s
//! (`FERROLB_CHURN_SECONDS`), each followed by a pass of [`IncrementalPass`] as the executor
//! runs it.
//!
//! Prints the pass's CPU time as a share of one core (this thread's run time from
//! /proc/thread-self/schedstat over the wall time), change→plan latency percentiles, and
//! VmRSS / VmHWM. The reference in the same run is the full pass (every pass before the pass
//! kept its state), timed over a few passes: at 100 changes/s it would need that time 100
//! times a second.
//!
//! The executor's bookkeeping is in the figures: it keeps its own lists of the Services and
//! EndpointSlices ([`Mirror`]) and updates them by the changed objects before each pass.
//! In process: watch delivery, the executor's own work on the plan (announcer, BGP manager,
//! status) and sending BGP UPDATEs are not in these figures.

mod fixtures;

use ferrolb_speaker_core::pass::{IncrementalPass, Mirror, owner_changes, pass};
use fixtures::{Cluster, ENDPOINTS_PER_SERVICE, NODES, rss_kib, services, slice};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// This thread's CPU time so far.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns = stat
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    // `cargo bench` passes `--bench`; this harness has no options of its own.
    let count = services();
    let rate = env_or("FERROLB_CHURN_RATE", 100).max(1);
    let seconds = env_or("FERROLB_CHURN_SECONDS", 20).max(1);
    let cluster = Cluster::new(count);
    let mut slices = cluster.slices.clone();
    let (objects_rss, _) = rss_kib();

    // The reference: full passes over the same view.
    let reference_passes = 3;
    let started = Instant::now();
    for _ in 0..reference_passes {
        let view = cluster.view(&cluster.services, &slices);
        black_box(pass(&view, Some(&cluster.alive), Some(&cluster.config)));
    }
    let full = started.elapsed() / reference_passes;
    let (_, full_hwm) = rss_kib();

    // The executor's lists, keyed by position in the fixture (a store's key in the speaker).
    let mut service_list = Mirror::new();
    service_list.reset(cluster.services.iter().cloned().enumerate());
    let mut slice_list = Mirror::new();
    slice_list.reset(slices.iter().cloned().enumerate());

    let mut incremental = IncrementalPass::new();
    let started = Instant::now();
    let primed = incremental.pass(
        &cluster.view(service_list.objects(), slice_list.objects()),
        Some(&cluster.alive),
        Some(&cluster.config),
    );
    let priming = started.elapsed();
    // The owners of the last settled pass, kept as the executor keeps them.
    let mut owners = primed
        .announce
        .and_then(|a| a.owner_changes)
        .map(|c| c.owners)
        .unwrap_or_default();

    let interval = Duration::from_secs(1) / u32::try_from(rate).unwrap_or(u32::MAX);
    let changes = rate * seconds;
    let mut latencies = Vec::with_capacity(usize::try_from(changes).unwrap_or(0));
    let mut keeping = Duration::ZERO;
    let mut passing = Duration::ZERO;
    let cpu_before = thread_cpu();
    let start = Instant::now();
    for k in 0..changes {
        let due = start + interval * u32::try_from(k).unwrap_or(u32::MAX);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let n = usize::try_from(k).unwrap_or(0) + 1;
        let i = n.wrapping_mul(7919) % count;
        let changed = slice(i, n);
        let t0 = Instant::now();
        slices[i] = changed.clone();
        // The executor brings its list up to date by the changed object.
        slice_list.set(i, Some(changed));
        let t1 = Instant::now();
        let view = cluster.view_with_owners(service_list.objects(), slice_list.objects(), &owners);
        let plan = incremental.pass(&view, Some(&cluster.alive), Some(&cluster.config));
        let t2 = Instant::now();
        if let Some(changes) = plan.announce.and_then(|a| a.owner_changes) {
            owners = changes.owners;
        }
        latencies.push(t2 - t0);
        keeping += t1 - t0;
        passing += t2 - t1;
    }
    let wall = start.elapsed();
    let cpu = thread_cpu().saturating_sub(cpu_before);
    let (rss, hwm) = rss_kib();

    let view = cluster.view_with_owners(service_list.objects(), slice_list.objects(), &owners);
    let plan = incremental.pass(&view, Some(&cluster.alive), Some(&cluster.config));
    assert_eq!(
        plan,
        pass(&view, Some(&cluster.alive), Some(&cluster.config)),
        "after the churn the incremental pass plans what the full one does"
    );
    // What the pass and the executor spare themselves on every change, timed alone: owner
    // changes compared over every layer 2 address, and copying the stores' whole lists.
    let desired = &plan.announce.as_ref().expect("configured").desired;
    let repeat = 20;
    let started = Instant::now();
    for _ in 0..repeat {
        black_box(owner_changes(&desired.l2_owners, &owners, &cluster.me));
    }
    let owners_cost = started.elapsed() / repeat;
    let started = Instant::now();
    for _ in 0..repeat {
        black_box((cluster.services.clone(), slices.clone()));
    }
    let lists_cost = started.elapsed() / repeat;

    latencies.sort_unstable();
    let mean = latencies.iter().sum::<Duration>() / u32::try_from(latencies.len()).unwrap_or(1);
    let share = cpu.as_secs_f64() / wall.as_secs_f64() * 100.0;
    println!(
        "speaker churn (in process): {count} Services, {} endpoints, {NODES} nodes, {changes} \
         EndpointSlice changes at {rate}/s over {wall:.2?}",
        count * ENDPOINTS_PER_SERVICE
    );
    println!(
        "  incremental pass: CPU {cpu:.2?} = {share:.2} % of one core (target < 10 %); \
         change->plan p50 {:.2?} p99 {:.2?} max {:.2?} mean {mean:.2?} (target p99 < 100 ms)",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
    );
    println!(
        "  wall time per change: updating the executor's lists {:.2?}, the pass itself {:.2?} \
         ({:.2} % of one core at {rate}/s)",
        keeping / u32::try_from(changes).unwrap_or(1),
        passing / u32::try_from(changes).unwrap_or(1),
        passing.as_secs_f64() / wall.as_secs_f64() * 100.0,
    );
    println!(
        "  reference, full pass: {full:.2?} per change ({:.0} % of one core needed at {rate}/s); \
         full / incremental mean = {:.0}x; first incremental pass (priming) {priming:.2?}",
        full.as_secs_f64() * rate as f64 * 100.0,
        full.as_secs_f64() / mean.as_secs_f64(),
    );
    println!(
        "  alone: owner changes over all {} layer 2 addresses {owners_cost:.2?} (the incremental \
         pass compares the changed ones only); copying the stores' whole lists and letting them \
         go {lists_cost:.2?} (the executor updates its own lists instead)",
        desired.l2_owners.len()
    );
    println!(
        "  VmRSS {rss} KiB, VmHWM {hwm} KiB at the end (objects, kept index and plan); the \
         objects alone {objects_rss} KiB; VmHWM after the full passes {full_hwm} KiB"
    );
}
