//! One reconciliation pass at 50,000 LoadBalancer Services. The controller runs a pass after
//! every burst of watch events, and a pass looks at every Service: in a burst of creates it is
//! paid again and again, beside the status writes. Two cases, each after a first pass that
//! allocated for every Service and a second that saw the statuses it wrote:
//! - `settled`: nothing changed since (every Service is settled);
//! - `100_new`: 100 more Services arrived, a burst's typical step.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ferrolb_api::service::ClassPolicy;
use ferrolb_api::{IPAddressPool, IPAddressPoolSpec};
use ferrolb_config::{Config, Inputs};
use ferrolb_controller::reconciler::{Core, PassContext, PassOutcome, StatusWrite};
use ferrolb_controller::service::status_patch;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use kube::api::ObjectMeta;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SERVICES: usize = 50_000;
const NEW: usize = 100;

fn service(i: usize) -> Arc<Service> {
    Arc::new(Service {
        metadata: ObjectMeta {
            namespace: Some("default".into()),
            name: Some(format!("bench-{i:05}")),
            uid: Some(format!("uid-{i}")),
            resource_version: Some("1".into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ports: Some(vec![ServicePort {
                port: 80,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

fn config() -> Arc<Config> {
    let mut pool = IPAddressPool::new(
        "bench",
        IPAddressPoolSpec {
            // Data only: written into statuses, never used on a network.
            addresses: vec!["10.200.0.0/16".into()],
            auto_assign: true,
            ..IPAddressPoolSpec::default()
        },
    );
    pool.metadata.namespace = Some("ferrolb-system".into());
    let inputs = Inputs {
        pools: vec![pool],
        ..Inputs::default()
    };
    Arc::new(Config::build(&inputs).expect("bench configuration"))
}

/// Runs a pass over `services` with `config`, as the leader.
fn run(core: &mut Core, services: &[Arc<Service>], config: &Arc<Config>) -> PassOutcome {
    core.pass(
        services,
        Ok(config.clone()),
        &BTreeMap::new(),
        PassContext {
            class_policy: ClassPolicy::OursOrUnset,
            leader: true,
            now: Instant::now(),
        },
    )
}

/// Runs a pass; how many Service statuses it writes.
fn pass(core: &mut Core, services: &[Arc<Service>], config: &Arc<Config>) -> usize {
    run(core, services, config)
        .status_writes
        .iter()
        .filter(|w| matches!(w, StatusWrite::Service { .. }))
        .count()
}

/// The Services as the watch brings them back after `core`'s pass wrote their statuses.
fn allocated(
    core: &mut Core,
    services: &[Arc<Service>],
    config: &Arc<Config>,
) -> Vec<Arc<Service>> {
    let out = run(core, services, config);
    let mut written: HashMap<String, Value> = HashMap::new();
    for w in out.status_writes {
        if let StatusWrite::Service { key, ips, pool } = w {
            written.insert(key.name, status_patch(&ips, pool.as_deref()));
        }
    }
    assert_eq!(written.len(), services.len());
    services
        .iter()
        .map(|svc| {
            let mut svc = Service::clone(svc);
            let patch = &written[svc.metadata.name.as_deref().unwrap_or_default()];
            let annotations = serde_json::from_value(patch["metadata"]["annotations"].clone())
                .expect("annotations");
            svc.metadata.annotations = Some(annotations);
            svc.status = Some(serde_json::from_value(patch["status"].clone()).expect("status"));
            Arc::new(svc)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let config = config();
    let fresh: Vec<Arc<Service>> = (0..SERVICES).map(service).collect();
    let mut settled = Core::default();
    let services = allocated(&mut settled, &fresh, &config);
    assert_eq!(pass(&mut settled, &services, &config), 0);
    let mut grown = services.clone();
    grown.extend((SERVICES..SERVICES + NEW).map(service));

    let mut group = c.benchmark_group("pass_50k");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("settled", |b| {
        b.iter(|| black_box(pass(&mut settled, &services, &config)))
    });
    group.bench_function("100_new", |b| {
        b.iter_batched(
            || {
                let mut core = Core::default();
                pass(&mut core, &fresh, &config);
                pass(&mut core, &services, &config);
                core
            },
            |mut core| {
                assert_eq!(pass(&mut core, &grown, &config), NEW);
                core
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
