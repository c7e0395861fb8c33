//! A pass skips the Services the last pass settled (`settled.rs`). These tests hold it to the
//! pass that decides every Service: both are run over the same history, one handed the same
//! `Arc` for an unchanged Service (as the watch cache does), the other a new one each pass (so
//! it never skips), and every pass must report the same.

use super::*;
use crate::stores::NamespaceLabels;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// A Service of the generated cluster, as the fields that matter to allocation.
#[derive(Clone, Debug)]
struct Shape {
    sharing_key: Option<&'static str>,
    port: i32,
    local: bool,
    wants_wan: bool,
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        prop::option::of(prop::sample::select(vec!["k1", "k2"])),
        prop::sample::select(vec![80, 443]),
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(sharing_key, port, local, wants_wan)| Shape {
            sharing_key,
            port,
            local,
            wants_wan,
        })
}

/// One step of the history.
#[derive(Clone, Debug)]
enum Step {
    /// A pass; its status writes land afterwards.
    Pass,
    /// Service `i` (modulo the count) gets another shape.
    Change(usize, Shape),
    /// Service `i` is deleted or created again.
    Toggle(usize),
    /// The `lan` pool changes size.
    Resize(u8),
    /// The Namespace of the Services gets another label value.
    Relabel(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Pass),
        2 => (0usize..8, shape()).prop_map(|(i, s)| Step::Change(i, s)),
        1 => (0usize..8).prop_map(Step::Toggle),
        1 => (1u8..5).prop_map(Step::Resize),
        1 => (0u8..2).prop_map(Step::Relabel),
    ]
}

fn build(name: &str, s: &Shape, version: u64) -> Service {
    let mut svc = lb(name);
    svc.metadata.resource_version = Some(version.to_string());
    if let Some(k) = s.sharing_key {
        svc = svc.annotation("ferrolb.io/allow-shared-ip", k);
    }
    if s.wants_wan {
        svc = svc.annotation("ferrolb.io/address-pool", "wan");
    }
    let spec = svc.spec.get_or_insert_default();
    spec.ports = Some(vec![k8s_openapi::api::core::v1::ServicePort {
        port: s.port,
        ..Default::default()
    }]);
    if s.local {
        spec.external_traffic_policy = Some("Local".into());
    }
    svc
}

/// The cluster as the API server holds it.
struct Cluster {
    /// Per Service slot: its current object, `None` while deleted.
    services: Vec<Option<Arc<Service>>>,
    lan_size: u8,
    /// Label `team` of the Namespace, which the `lan` pool selects on.
    team: u8,
    /// Label `note` of the Namespace, which no pool reads.
    note: u8,
    version: u64,
}

impl Cluster {
    fn pools(&self) -> Vec<IPAddressPool> {
        let last = format!("10.200.10.{}", self.lan_size);
        // Only for the Namespace labelled team=0: relabelling it takes the pool away.
        let mut lan = pool("lan", &[&format!("10.200.10.1-{last}")]);
        lan.spec.service_allocation = Some(ferrolb_api::pool::ServiceAllocation {
            namespace_selectors: vec![LabelSelector {
                match_labels: Some(BTreeMap::from([("team".to_string(), "0".to_string())])),
                ..LabelSelector::default()
            }],
            ..Default::default()
        });
        let mut wan = pool("wan", &["10.200.11.1-10.200.11.1"]);
        wan.spec.auto_assign = false;
        vec![lan, wan]
    }

    fn labels(&self) -> NamespaceLabels {
        BTreeMap::from([(
            "apps".to_string(),
            Arc::new(BTreeMap::from([
                ("team".to_string(), self.team.to_string()),
                ("note".to_string(), self.note.to_string()),
            ])),
        )])
    }

    fn next_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    /// Lands a pass's status writes as the API server would: a new version of each Service.
    fn land(&mut self, writes: &[StatusWrite]) {
        for w in writes {
            let StatusWrite::Service { key, ips, pool } = w else {
                continue;
            };
            let version = self.next_version();
            let slot = self
                .services
                .iter_mut()
                .flatten()
                .find(|s| s.metadata.name.as_deref() == Some(key.name.as_str()));
            let Some(svc) = slot else { continue };
            let mut next = (**svc).clone();
            next.metadata.resource_version = Some(version.to_string());
            let ips: Vec<String> = ips.iter().map(ToString::to_string).collect();
            let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
            next = next.ingress(&ips);
            let annotations = next.metadata.annotations.get_or_insert_default();
            for k in [
                "ferrolb.io/ip-allocated-from-pool",
                "metallb.io/ip-allocated-from-pool",
            ] {
                match pool {
                    Some(p) => annotations.insert(k.into(), p.clone()),
                    None => annotations.remove(k),
                };
            }
            *svc = Arc::new(next);
        }
    }
}

fn pass_over(core: &mut Core, cluster: &Cluster, services: &[Arc<Service>]) -> PassOutcome {
    let inputs = Inputs {
        pools: cluster.pools(),
        ..Inputs::default()
    };
    core.pass(
        services,
        Config::build(&inputs).map(Arc::new),
        &cluster.labels(),
        PassContext {
            class_policy: ferrolb_api::service::ClassPolicy::OursOrUnset,
            leader: true,
            now: Instant::now(),
        },
    )
}

/// What a pass reports, without the count of allocations timed (which skipping lowers).
fn reported(out: &PassOutcome) -> (Vec<StatusWrite>, Vec<Ev>, Vec<&'static str>) {
    (
        out.status_writes.clone(),
        out.events.iter().map(seen).collect(),
        out.metrics.allocation_failures.clone(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_pass_that_skips_settled_services_reports_what_deciding_every_one_reports(
        shapes in prop::collection::vec(shape(), 2..8),
        steps in prop::collection::vec(step(), 1..24),
    ) {
        let mut cluster = Cluster {
            services: Vec::new(),
            lan_size: 2,
            team: 0,
            note: 0,
            version: 0,
        };
        for (i, s) in shapes.iter().enumerate() {
            let version = cluster.next_version();
            cluster.services.push(Some(Arc::new(build(&format!("s{i}"), s, version))));
        }
        let (mut skipping, mut deciding) = (Core::default(), Core::default());
        // Every history ends with passes until nothing is written, so each ends settled.
        let settle = std::iter::repeat_n(Step::Pass, 4);
        for step in steps.into_iter().chain(settle) {
            let n = cluster.services.len();
            match step {
                Step::Pass => {
                    let same: Vec<Arc<Service>> =
                        cluster.services.iter().flatten().cloned().collect();
                    let copies: Vec<Arc<Service>> =
                        same.iter().map(|s| Arc::new((**s).clone())).collect();
                    let a = pass_over(&mut skipping, &cluster, &same);
                    let b = pass_over(&mut deciding, &cluster, &copies);
                    prop_assert_eq!(reported(&a), reported(&b));
                    cluster.land(&a.status_writes);
                }
                Step::Change(i, s) => {
                    let version = cluster.next_version();
                    if let Some(svc) = cluster.services[i % n].as_mut() {
                        // A user's change: the status and the pool annotation stay.
                        let mut next = build(&format!("s{}", i % n), &s, version);
                        next.status = svc.status.clone();
                        for (k, v) in svc.metadata.annotations.iter().flatten() {
                            if k.ends_with("/ip-allocated-from-pool") {
                                next = next.annotation(k, v);
                            }
                        }
                        *svc = Arc::new(next);
                    }
                }
                Step::Toggle(i) => {
                    let version = cluster.next_version();
                    let slot = &mut cluster.services[i % n];
                    *slot = match slot {
                        Some(_) => None,
                        None => Some(Arc::new(build(
                            &format!("s{}", i % n),
                            &shapes[i % n],
                            version,
                        ))),
                    };
                }
                Step::Resize(size) => cluster.lan_size = size,
                Step::Relabel(team) => cluster.team = team,
            }
        }
    }
}

/// A Service with nothing but a port.
const PLAIN: Shape = Shape {
    sharing_key: None,
    port: 80,
    local: false,
    wants_wan: false,
};

/// Three plain Services, `s0` to `s2`, and a `lan` pool of `lan_size` addresses.
fn three_services(lan_size: u8) -> Cluster {
    let mut cluster = Cluster {
        services: Vec::new(),
        lan_size,
        team: 0,
        note: 0,
        version: 0,
    };
    for i in 0..3 {
        let version = cluster.next_version();
        cluster
            .services
            .push(Some(Arc::new(build(&format!("s{i}"), &PLAIN, version))));
    }
    cluster
}

/// A pass over the cluster as it is; its status writes land afterwards.
fn pass_and_land(core: &mut Core, cluster: &mut Cluster) -> PassOutcome {
    let services: Vec<Arc<Service>> = cluster.services.iter().flatten().cloned().collect();
    let out = pass_over(core, cluster, &services);
    cluster.land(&out.status_writes);
    out
}

/// The skipping is not vacuous: an unchanged cluster is not decided again, and a change of the
/// configuration or of a Namespace's labels decides every Service again.
#[test]
fn settled_services_are_decided_again_only_when_an_input_changes() {
    let mut cluster = three_services(4);
    let mut core = Core::default();
    let pass = |core: &mut Core, cluster: &mut Cluster| {
        let out = pass_and_land(core, cluster);
        (out.metrics.allocate_seconds.len(), out.status_writes.len())
    };
    // Allocated and written; then decided once more as the written versions arrive; then
    // settled.
    assert_eq!(pass(&mut core, &mut cluster).0, 3, "new Services");
    assert_eq!(pass(&mut core, &mut cluster), (3, 0), "written versions");
    assert_eq!(pass(&mut core, &mut cluster), (0, 0), "settled");
    assert_eq!(pass(&mut core, &mut cluster), (0, 0), "still settled");

    // One Service changes: only it is decided again.
    let version = cluster.next_version();
    if let Some(s) = cluster.services[1].as_mut() {
        let mut next = (**s).clone();
        next.metadata.resource_version = Some(version.to_string());
        *s = Arc::new(next);
    }
    assert_eq!(pass(&mut core, &mut cluster), (1, 0), "one changed Service");

    // Any label: the pass does not know which ones the pools read.
    cluster.note = 1;
    assert_eq!(
        pass(&mut core, &mut cluster),
        (3, 0),
        "Namespace labels changed"
    );
    assert_eq!(pass(&mut core, &mut cluster), (0, 0), "settled again");

    cluster.lan_size = 3;
    assert_eq!(pass(&mut core, &mut cluster).0, 3, "configuration changed");

    core.reset_for_leadership();
    assert_eq!(pass(&mut core, &mut cluster).0, 3, "leadership taken again");
}

/// A pass finds the Services that are gone without looking up every name while the settled
/// and deciding Services account for every allocation (`Core::gone`); once they do not, a
/// deleted settled Service's address is freed in time for a new Service of the same pass.
#[test]
fn a_settled_service_deleted_frees_its_address_for_the_same_pass() {
    let mut cluster = three_services(3);
    let mut core = Core::default();
    for _ in 0..3 {
        pass_and_land(&mut core, &mut cluster);
    }
    let held = |cluster: &Cluster, i: usize| -> Vec<String> {
        cluster.services[i]
            .as_ref()
            .map(|s| ingress_ips(s).iter().map(ToString::to_string).collect())
            .unwrap_or_default()
    };
    let freed = held(&cluster, 1);
    assert_eq!(freed.len(), 1, "s1 holds one of the three addresses");

    // The pool is full: s3 gets an address only if s1's is released before s3 is decided.
    cluster.services[1] = None;
    let version = cluster.next_version();
    cluster
        .services
        .push(Some(Arc::new(build("s3", &PLAIN, version))));
    let out = pass_and_land(&mut core, &mut cluster);
    assert!(
        out.metrics.allocation_failures.is_empty(),
        "s3 waited: {:?}",
        out.metrics.allocation_failures
    );
    assert_eq!(held(&cluster, 3), freed, "s3 got s1's address");
}
