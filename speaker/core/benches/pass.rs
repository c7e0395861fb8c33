//! The speaker pass at cluster scale (see `fixtures`): 50,000 Services, 200,000 endpoints, 100
//! nodes (`FERROLB_BENCH_SERVICES` overrides the Services, to see how a pass scales).
//!
//! - `speaker_pass/full_*`: the whole pass from the objects, as every pass was before the
//!   pass kept its state: the reference. `speaker_pass/index_*` and `speaker_pass/desired_*`
//!   are its two halves (converting the objects into the index; deciding every IP).
//! - `speaker_pass/incremental_one_endpoint_change_*`: [`IncrementalPass`] kept over the same
//!   view, one EndpointSlice changed (its endpoints moved to other nodes) before each pass;
//!   updating the executor's own object lists ([`Mirror`]) by that slice is inside.

mod fixtures;

use criterion::{Criterion, criterion_group};
use ferrolb_speaker_core::desired::{Modes, desired_announcements_in};
use ferrolb_speaker_core::pass::{IncrementalPass, Mirror, index_of, pass};
use fixtures::{Cluster, ENDPOINTS_PER_SERVICE, NODES, rss_kib, services, slice};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn bench(c: &mut Criterion) {
    let count = services();
    let cluster = Cluster::new(count);
    let view = cluster.view(&cluster.services, &cluster.slices);
    let first = Instant::now();
    let plan = pass(&view, Some(&cluster.alive), Some(&cluster.config));
    let first = first.elapsed();
    let announce = plan.announce.as_ref().expect("a configuration");
    println!(
        "speaker pass: {count} Services, {} endpoints, {NODES} nodes: this node answers for {} \
         layer 2 addresses, advertises {} BGP prefixes, {} addresses unannounced; first pass \
         {first:?}",
        count * ENDPOINTS_PER_SERVICE,
        announce.desired.layer2.len(),
        announce.desired.bgp.len(),
        announce.desired.not_announced.len()
    );
    assert_eq!(announce.desired.bgp.len(), count / 2, "every BGP Service");
    assert!(announce.desired.not_announced.is_empty());

    let mut group = c.benchmark_group("speaker_pass");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    let size = format!("{count}_services_{NODES}_nodes");
    group.bench_function(format!("full_{size}"), |b| {
        b.iter(|| {
            black_box(pass(
                black_box(&view),
                Some(&cluster.alive),
                Some(&cluster.config),
            ))
        })
    });
    group.bench_function(format!("index_{size}"), |b| {
        b.iter(|| black_box(index_of(black_box(&view), cluster.config.clone())))
    });
    let mut index = index_of(&view, cluster.config.clone());
    index.set_members_alive(Some(cluster.alive.clone()));
    group.bench_function(format!("desired_{size}"), |b| {
        b.iter(|| {
            black_box(desired_announcements_in(
                black_box(&index),
                &cluster.me,
                Modes::ALL,
            ))
        })
    });
    drop(index);

    let mut incremental = IncrementalPass::new();
    // The executor's lists, keyed by position in the fixture (a store's key in the speaker).
    let mut service_list = Mirror::new();
    service_list.reset(cluster.services.iter().cloned().enumerate());
    let mut slice_list = Mirror::new();
    slice_list.reset(cluster.slices.iter().cloned().enumerate());
    let primed = incremental.pass(
        &cluster.view(service_list.objects(), slice_list.objects()),
        Some(&cluster.alive),
        Some(&cluster.config),
    );
    assert_eq!(
        primed, plan,
        "the incremental pass plans what the full one does"
    );
    let (rss, hwm) = rss_kib();
    println!("speaker pass: VmRSS {rss} KiB, VmHWM {hwm} KiB after the first passes");
    // The owners of the last settled pass, kept as the executor keeps them.
    let mut owners = primed
        .announce
        .and_then(|a| a.owner_changes)
        .map(|c| c.owners)
        .unwrap_or_default();
    let mut changed = 0usize;
    group.sample_size(100);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function(format!("incremental_one_endpoint_change_{size}"), |b| {
        b.iter(|| {
            // A different Service each time, its endpoints moved on by one node.
            changed += 1;
            let i = changed.wrapping_mul(7919) % count;
            slice_list.set(i, Some(slice(i, changed)));
            let view =
                cluster.view_with_owners(service_list.objects(), slice_list.objects(), &owners);
            let plan = incremental.pass(&view, Some(&cluster.alive), Some(&cluster.config));
            if let Some(changes) = plan.announce.and_then(|a| a.owner_changes) {
                owners = changes.owners;
            }
        })
    });
    group.finish();
    let view = cluster.view_with_owners(service_list.objects(), slice_list.objects(), &owners);
    assert_eq!(
        incremental.pass(&view, Some(&cluster.alive), Some(&cluster.config)),
        pass(&view, Some(&cluster.alive), Some(&cluster.config)),
        "after {changed} changes the incremental pass still plans what the full one does"
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
