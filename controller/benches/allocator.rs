//! Allocator throughput and memory: 100,000 automatic allocations from one IPv4 /15 pool and
//! from one IPv6 /64 pool, each from a fresh allocator. Memory is counted by a global allocator
//! wrapper and printed before the timings, for pools of very different sizes.

use criterion::{BatchSize, Criterion, criterion_group};
use ferrolb_config::model::ip_to_u128;
use ferrolb_config::{AddressRange, Config, IpFamily, Pool};
use ferrolb_controller::allocator::{Allocator, IpFamilyPolicy, ServiceRequest};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Counts live heap bytes so the allocator's footprint can be measured.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static CALLS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const N: usize = 100_000;

fn cidr(text: &str) -> AddressRange {
    let (addr, len) = text.split_once('/').expect("bench cidr");
    let first: IpAddr = addr.parse().expect("bench address");
    let len: u32 = len.parse().expect("bench prefix");
    let family = IpFamily::of(&first);
    let bits = if family == IpFamily::V4 { 32 } else { 128 };
    let host_mask = (1u128 << (bits - len)) - 1;
    let last = ferrolb_config::model::u128_to_ip(ip_to_u128(first) | host_mask, family);
    AddressRange {
        first,
        last,
        prefix_len: u8::try_from(len).ok(),
        text: text.into(),
    }
}

fn config(range: &str) -> Config {
    let pool = Pool::with_ranges("ferrolb-system", "bench", vec![cidr(range)]);
    Config {
        pools: [("bench".to_string(), pool)].into(),
        ..Config::default()
    }
}

fn requests(family: IpFamily) -> Vec<ServiceRequest> {
    (0..N)
        .map(|i| {
            let mut r = ServiceRequest::new("default", &format!("svc-{i}"));
            r.ip_family_policy = IpFamilyPolicy::SingleStack;
            r.ip_families = vec![family];
            r
        })
        .collect()
}

fn fill(config: &Config, reqs: &[ServiceRequest]) -> Allocator {
    let mut a = Allocator::new(config.clone());
    for r in reqs {
        let out = a.allocate(r);
        assert!(out.error.is_none(), "{:?}", out.error);
    }
    a
}

/// Nanoseconds this thread has been on a CPU (Linux `schedstat`), so the report is meaningful
/// on a busy machine where wall time includes waiting for a core.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Prints heap bytes held by an allocator after N allocations, for several pool sizes.
fn report_memory() {
    let v4 = requests(IpFamily::V4);
    let v6 = requests(IpFamily::V6);
    for (range, reqs) in [
        ("10.0.0.0/15", &v4),
        ("fd00::/111", &v6),
        ("fd00::/64", &v6),
        ("fd00::/32", &v6),
    ] {
        let cfg = config(range);
        let before = LIVE.load(Ordering::Relaxed);
        let calls_before = CALLS.load(Ordering::Relaxed);
        let start = Instant::now();
        let cpu_start = thread_cpu_ns();
        let a = fill(&cfg, reqs);
        let took = start.elapsed();
        let cpu = match (cpu_start, thread_cpu_ns()) {
            (Some(a), Some(b)) => format!("{:.1?}", Duration::from_nanos(b.saturating_sub(a))),
            _ => "unknown".to_string(),
        };
        let bytes = LIVE.load(Ordering::Relaxed) - before;
        let calls = CALLS.load(Ordering::Relaxed) - calls_before;
        println!(
            "memory: {N} allocations from {range:<12}: {:>6.1} MiB heap ({:.0} B/allocation, {:.1} heap allocations each); one run: {took:.1?} wall, {cpu} on CPU",
            bytes as f64 / (1024.0 * 1024.0),
            bytes as f64 / N as f64,
            calls as f64 / N as f64,
        );
        black_box(a);
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("allocate_100k");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    for (name, range, family) in [
        ("ipv4_slash15", "10.0.0.0/15", IpFamily::V4),
        ("ipv6_slash64", "fd00::/64", IpFamily::V6),
    ] {
        let cfg = config(range);
        let reqs = requests(family);
        group.bench_function(name, |b| {
            b.iter_batched(
                || Allocator::new(cfg.clone()),
                |mut a| {
                    for r in &reqs {
                        black_box(a.allocate(r));
                    }
                    a
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    report_memory();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
