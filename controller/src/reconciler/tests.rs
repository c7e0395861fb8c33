//! Table tests of the pure pass: a view (pools, Services, leadership, what an earlier pass saw)
//! in, the status writes, events and metric updates out.

use super::*;
use crate::allocator::RequestError;
use ferrolb_api::{IPAddressPool, IPAddressPoolSpec};
use ferrolb_config::Inputs;
use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, ServiceSpec, ServiceStatus,
};
use kube::api::ObjectMeta;
use std::collections::BTreeMap;

mod skipping;
use std::sync::Arc;

const NS: &str = "ferrolb-system";

fn pool(name: &str, addresses: &[&str]) -> IPAddressPool {
    let mut p = IPAddressPool::new(
        name,
        IPAddressPoolSpec {
            addresses: addresses.iter().map(|a| (*a).to_string()).collect(),
            auto_assign: true,
            ..IPAddressPoolSpec::default()
        },
    );
    p.metadata.namespace = Some(NS.into());
    p
}

/// A `type: LoadBalancer` Service in namespace `apps` with no class and no status.
fn lb(name: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            namespace: Some("apps".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            resource_version: Some("1".into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

trait ServiceExt {
    fn annotation(self, key: &str, value: &str) -> Self;
    /// The pool annotation under both spellings ferrolb writes.
    fn allocated_from(self, pool: &str) -> Self;
    fn ingress(self, ips: &[&str]) -> Self;
    fn type_(self, type_: &str) -> Self;
    fn family_policy(self, policy: &str) -> Self;
}

impl ServiceExt for Service {
    fn allocated_from(self, pool: &str) -> Self {
        self.annotation("ferrolb.io/ip-allocated-from-pool", pool)
            .annotation("metallb.io/ip-allocated-from-pool", pool)
    }
    fn annotation(mut self, key: &str, value: &str) -> Self {
        self.metadata
            .annotations
            .get_or_insert_default()
            .insert(key.into(), value.into());
        self
    }
    fn ingress(mut self, ips: &[&str]) -> Self {
        self.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(
                    ips.iter()
                        .map(|ip| LoadBalancerIngress {
                            ip: Some((*ip).into()),
                            ..LoadBalancerIngress::default()
                        })
                        .collect(),
                ),
            }),
            ..ServiceStatus::default()
        });
        self
    }
    fn type_(mut self, type_: &str) -> Self {
        self.spec.get_or_insert_default().type_ = Some(type_.into());
        self
    }
    fn family_policy(mut self, policy: &str) -> Self {
        self.spec.get_or_insert_default().ip_family_policy = Some(policy.into());
        self
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// A status write of `ips` from pool `lan` (none: cleared, without pool annotation).
fn set_ips(name: &str, ips: &[&str]) -> StatusWrite {
    StatusWrite::Service {
        key: ServiceKey::new("apps", name),
        ips: ips.iter().map(|s| ip(s)).collect(),
        pool: (!ips.is_empty()).then(|| "lan".to_string()),
    }
}

fn pool_status(name: &str, assigned_ipv4: i64, available_ipv4: i64) -> StatusWrite {
    StatusWrite::Pool {
        namespace: NS.into(),
        name: name.into(),
        status: IPAddressPoolStatus {
            assigned_ipv4,
            available_ipv4,
            ..IPAddressPoolStatus::default()
        },
    }
}

fn gauges(name: &str, in_use_v4: i64, total_v4: i64) -> Vec<PoolAddresses> {
    vec![
        PoolAddresses {
            pool: name.into(),
            family: "ipv4",
            in_use: in_use_v4,
            total: total_v4,
        },
        PoolAddresses {
            pool: name.into(),
            family: "ipv6",
            in_use: 0,
            total: 0,
        },
    ]
}

/// An event as the tests compare it: kind, reason, `Kind namespace/name` it is about, note.
type Ev = (EventKind, &'static str, String, String);

fn ev(kind: EventKind, reason: &'static str, regarding: &str, note: &str) -> Ev {
    (kind, reason, regarding.to_string(), note.to_string())
}

fn seen(e: &Event) -> Ev {
    let r = &e.regarding;
    (
        e.kind,
        e.reason,
        format!(
            "{} {}/{}",
            r.kind.as_deref().unwrap_or_default(),
            r.namespace.as_deref().unwrap_or_default(),
            r.name.as_deref().unwrap_or_default()
        ),
        e.note.clone(),
    )
}

struct Case {
    name: &'static str,
    pools: Vec<IPAddressPool>,
    /// Services of an earlier pass on the same core (its outcome is not checked).
    before: Option<Vec<Service>>,
    services: Vec<Service>,
    leader: bool,
    status_writes: Vec<StatusWrite>,
    events: Vec<Ev>,
    failures: Vec<&'static str>,
    config_rejected: bool,
    config_valid: bool,
    pool_addresses: Vec<PoolAddresses>,
    /// Allocations timed (one per Service the allocator was asked about).
    allocations: usize,
    /// A changed pool status is held back by the rate limit (`again_after` is set).
    pool_status_waits: bool,
}

impl Default for Case {
    fn default() -> Self {
        Self {
            name: "",
            pools: vec![pool("lan", &["10.200.10.1-10.200.10.2"])],
            before: None,
            services: Vec::new(),
            leader: true,
            status_writes: Vec::new(),
            events: Vec::new(),
            failures: Vec::new(),
            config_rejected: false,
            config_valid: true,
            pool_addresses: gauges("lan", 0, 2),
            allocations: 0,
            pool_status_waits: false,
        }
    }
}

fn run_pass(
    core: &mut Core,
    pools: &[IPAddressPool],
    services: &[Service],
    leader: bool,
) -> PassOutcome {
    let inputs = Inputs {
        pools: pools.to_vec(),
        ..Inputs::default()
    };
    let services: Vec<Arc<Service>> = services.iter().cloned().map(Arc::new).collect();
    core.pass(
        &services,
        Config::build(&inputs).map(Arc::new),
        &BTreeMap::new(),
        PassContext {
            class_policy: ferrolb_api::service::ClassPolicy::OursOrUnset,
            leader,
            now: Instant::now(),
        },
    )
}

fn check(case: Case) {
    let mut core = Core::default();
    if let Some(before) = &case.before {
        run_pass(&mut core, &case.pools, before, case.leader);
    }
    let out = run_pass(&mut core, &case.pools, &case.services, case.leader);
    let name = case.name;
    assert_eq!(
        out.status_writes, case.status_writes,
        "{name}: status writes"
    );
    assert_eq!(
        out.events.iter().map(seen).collect::<Vec<_>>(),
        case.events,
        "{name}: events"
    );
    assert_eq!(
        out.metrics.allocation_failures, case.failures,
        "{name}: failures"
    );
    assert_eq!(
        out.metrics.config_rejected, case.config_rejected,
        "{name}: config_rejected"
    );
    assert_eq!(
        out.metrics.config_valid, case.config_valid,
        "{name}: config_valid"
    );
    assert_eq!(
        out.metrics.pool_addresses, case.pool_addresses,
        "{name}: pool gauges"
    );
    assert_eq!(
        out.metrics.allocate_seconds.len(),
        case.allocations,
        "{name}: allocations"
    );
    assert_eq!(
        out.again_after.is_some(),
        case.pool_status_waits,
        "{name}: again_after"
    );
}

#[test]
fn passes() {
    use EventKind::{Normal, Warning};
    let cases = vec![
        Case {
            name: "a new Service gets the first free address",
            services: vec![lb("a")],
            status_writes: vec![set_ips("a", &["10.200.10.1"]), pool_status("lan", 1, 1)],
            events: vec![ev(
                Normal,
                reasons::IP_ALLOCATED,
                "Service apps/a",
                "assigned 10.200.10.1 from pool lan",
            )],
            pool_addresses: gauges("lan", 1, 2),
            allocations: 1,
            ..Case::default()
        },
        Case {
            name: "a Service whose status already holds its address is not written again",
            services: vec![lb("a").ingress(&["10.200.10.2"]).allocated_from("lan")],
            status_writes: vec![pool_status("lan", 1, 1)],
            pool_addresses: gauges("lan", 1, 2),
            allocations: 1,
            ..Case::default()
        },
        Case {
            // MetalLB controller/service.go convergeBalancer writes
            // metallb.io/ip-allocated-from-pool; a Service allocated without it (by an older
            // controller) gets it once, with its unchanged status.
            name: "a Service whose status lacks the pool annotation gets it",
            services: vec![
                lb("a")
                    .ingress(&["10.200.10.2"])
                    .annotation("metallb.io/ip-allocated-from-pool", "lan"),
            ],
            status_writes: vec![set_ips("a", &["10.200.10.2"]), pool_status("lan", 1, 1)],
            pool_addresses: gauges("lan", 1, 2),
            allocations: 1,
            ..Case::default()
        },
        Case {
            name: "an annotation-only write is not repeated when the server drops it",
            before: Some(vec![lb("a").ingress(&["10.200.10.2"])]),
            services: vec![{
                let mut a = lb("a").ingress(&["10.200.10.2"]);
                a.metadata.resource_version = Some("2".into());
                a
            }],
            pool_addresses: gauges("lan", 1, 2),
            allocations: 1,
            ..Case::default()
        },
        Case {
            // MetalLB controller/main.go SetBalancer: Warning `deprecatedAnnotation` "Service
            // uses deprecated annotation <key>" for each metallb.universe.tf key, when the
            // Service is written.
            name: "deprecated annotations are reported when the Service is written",
            services: vec![
                lb("a").annotation("metallb.universe.tf/address-pool", "lan"),
                lb("b")
                    .annotation("metallb.universe.tf/address-pool", "lan")
                    .ingress(&["10.200.10.2"])
                    .allocated_from("lan"),
            ],
            status_writes: vec![set_ips("a", &["10.200.10.1"]), pool_status("lan", 2, 0)],
            events: vec![
                ev(
                    Normal,
                    reasons::IP_ALLOCATED,
                    "Service apps/a",
                    "assigned 10.200.10.1 from pool lan",
                ),
                ev(
                    Warning,
                    reasons::DEPRECATED_ANNOTATION,
                    "Service apps/a",
                    "Service uses deprecated annotation metallb.universe.tf/address-pool; use \
                     metallb.io/address-pool instead",
                ),
            ],
            pool_addresses: gauges("lan", 2, 2),
            allocations: 2,
            ..Case::default()
        },
        Case {
            // MetalLB controller/main.go SetBalancer: an error names the annotation as spelled.
            name: "a failure names the annotation as the user spelled it",
            services: vec![lb("a").annotation("metallb.universe.tf/loadBalancerIPs", "nope")],
            status_writes: vec![pool_status("lan", 0, 2)],
            events: vec![ev(
                Warning,
                reasons::ALLOCATION_FAILED,
                "Service apps/a",
                "metallb.universe.tf/loadBalancerIPs: \"nope\" is not an IP address; expected \
                 up to one IPv4 and one IPv6 address separated by a comma",
            )],
            failures: vec!["invalid_service"],
            ..Case::default()
        },
        Case {
            name: "a full pool fails the third Service",
            services: vec![lb("a"), lb("b"), lb("c")],
            status_writes: vec![
                set_ips("a", &["10.200.10.1"]),
                set_ips("b", &["10.200.10.2"]),
                pool_status("lan", 2, 0),
            ],
            events: vec![
                ev(
                    Normal,
                    reasons::IP_ALLOCATED,
                    "Service apps/a",
                    "assigned 10.200.10.1 from pool lan",
                ),
                ev(
                    Normal,
                    reasons::IP_ALLOCATED,
                    "Service apps/b",
                    "assigned 10.200.10.2 from pool lan",
                ),
                ev(
                    Warning,
                    reasons::ALLOCATION_FAILED,
                    "Service apps/c",
                    "no free IPv4 address for apps/c; pools tried: lan (10.200.10.1-10.200.10.2)",
                ),
            ],
            failures: vec!["exhausted"],
            pool_addresses: gauges("lan", 2, 2),
            allocations: 3,
            ..Case::default()
        },
        Case {
            name: "a failure already reported is not reported again",
            before: Some(vec![lb("a"), lb("b"), lb("c")]),
            services: vec![
                lb("a").ingress(&["10.200.10.1"]).allocated_from("lan"),
                lb("b").ingress(&["10.200.10.2"]).allocated_from("lan"),
                lb("c"),
            ],
            pool_addresses: gauges("lan", 2, 2),
            allocations: 3,
            ..Case::default()
        },
        Case {
            name: "an unreadable Service's status is left alone; its failure has its reason",
            services: vec![lb("a").ingress(&["10.200.10.1"]).family_policy("Dual")],
            status_writes: vec![pool_status("lan", 0, 2)],
            events: vec![ev(
                Warning,
                reasons::ALLOCATION_FAILED,
                "Service apps/a",
                "spec.ipFamilyPolicy \"Dual\" is unknown; accepted: SingleStack, \
                 PreferDualStack, RequireDualStack",
            )],
            failures: vec!["exhausted"],
            ..Case::default()
        },
        Case {
            name: "an address in no pool the Service may use",
            services: vec![lb("a").annotation("ferrolb.io/loadBalancerIPs", "10.200.11.1")],
            status_writes: vec![pool_status("lan", 0, 2)],
            events: vec![ev(
                Warning,
                reasons::ALLOCATION_FAILED,
                "Service apps/a",
                "10.200.11.1 (ferrolb.io/loadBalancerIPs) is not in any pool that admits \
                 apps/a; pools: lan (10.200.10.1-10.200.10.2)",
            )],
            failures: vec!["requested_ip"],
            allocations: 1,
            ..Case::default()
        },
        Case {
            name: "a pool that does not exist",
            services: vec![lb("a").annotation("metallb.io/address-pool", "wan")],
            status_writes: vec![pool_status("lan", 0, 2)],
            events: vec![ev(
                Warning,
                reasons::ALLOCATION_FAILED,
                "Service apps/a",
                "annotation metallb.io/address-pool names pool wan, which does not exist; \
                 pools: lan (10.200.10.1-10.200.10.2)",
            )],
            failures: vec!["requested_pool"],
            allocations: 1,
            ..Case::default()
        },
        Case {
            name: "a Service that is no longer a LoadBalancer releases and clears its address; \
                   the pool status written a moment ago waits",
            before: Some(vec![lb("a")]),
            services: vec![lb("a").ingress(&["10.200.10.1"]).type_("ClusterIP")],
            status_writes: vec![set_ips("a", &[])],
            pool_status_waits: true,
            events: vec![ev(
                Normal,
                reasons::IP_RELEASED,
                "Service apps/a",
                "released 10.200.10.1 (no longer a ferrolb LoadBalancer Service)",
            )],
            ..Case::default()
        },
        Case {
            name: "a NodePort Service carrying a load balancer status it never got from us \
                   (MetalLB controller/service.go convergeBalancer clears any Service that is \
                   not a LoadBalancer) is cleared, address and pool annotations; one with \
                   nothing to clear is not written",
            services: vec![
                lb("a")
                    .ingress(&["10.200.10.1"])
                    .allocated_from("lan")
                    .type_("NodePort"),
                lb("b").type_("NodePort"),
            ],
            status_writes: vec![set_ips("a", &[]), pool_status("lan", 0, 2)],
            ..Case::default()
        },
        Case {
            name: "an invalid configuration is reported and nothing is allocated",
            pools: vec![pool("lan", &["nope"])],
            services: vec![lb("a")],
            events: vec![ev(
                Warning,
                reasons::CONFIG_INVALID,
                "IPAddressPool ferrolb-system/lan",
                CONFIG_INVALID_NOTE,
            )],
            config_rejected: true,
            config_valid: false,
            pool_addresses: Vec::new(),
            ..Case::default()
        },
        Case {
            name: "a follower loads the configuration but writes nothing",
            services: vec![lb("a")],
            leader: false,
            pool_addresses: Vec::new(),
            ..Case::default()
        },
    ];
    for case in cases {
        check(case);
    }
}

const CONFIG_INVALID_NOTE: &str = "spec.addresses[0]: \"nope\" is neither a CIDR nor a range; \
     expected a CIDR such as 192.168.10.0/24 or fc00::/120, or a range first-last of one family \
     such as 192.168.10.5-192.168.10.20 (the last valid configuration stays in force)";

#[test]
fn status_api_reports_the_failure_message() {
    let mut core = Core::default();
    let pools = [pool("lan", &["10.200.10.1-10.200.10.2"])];
    run_pass(&mut core, &pools, &[lb("a"), lb("b"), lb("c")], true);
    let c = core.service("apps", "c").expect("known to the allocator");
    assert_eq!(
        c.error.as_deref(),
        Some("no free IPv4 address for apps/c; pools tried: lan (10.200.10.1-10.200.10.2)")
    );
}

/// Every failure's label: the values are part of the exported metric.
#[test]
fn metric_reasons() {
    use crate::allocator::{AllocError, Incompatibility, IpFamilyPolicy, UnknownProtocol};
    use ferrolb_config::IpFamily;
    let svc = ServiceKey::new("apps", "a");
    let src = "ferrolb.io/loadBalancerIPs".to_string();
    let alloc = |e: AllocError| ServiceFailure::Allocation(e);
    let request = |e: RequestError| ServiceFailure::Request(e);
    let table = [
        (
            alloc(AllocError::UnknownPool {
                pool: "wan".into(),
                source: src.clone(),
                known: vec![],
            }),
            "requested_pool",
        ),
        (
            alloc(AllocError::PoolDoesNotAdmit {
                pool: "lan".into(),
                source: src.clone(),
                service: svc.clone(),
            }),
            "requested_pool",
        ),
        (
            alloc(AllocError::RequestedIpNotInPool {
                ip: ip("10.200.11.1"),
                source: src.clone(),
                service: svc.clone(),
                requested_pool: None,
                pools: vec![],
            }),
            "requested_ip",
        ),
        (
            alloc(AllocError::RequestedIpsInDifferentPools {
                source: src.clone(),
                first: (ip("10.200.10.1"), "a".into()),
                second: (ip("fd00:200::1"), "b".into()),
            }),
            "invalid_service",
        ),
        (
            alloc(AllocError::RequestedIpUnusable {
                ip: ip("10.200.10.0"),
                pool: "lan".into(),
            }),
            "invalid_service",
        ),
        (
            alloc(AllocError::RequestedFamily {
                ip: ip("fd00:200::1"),
                source: src.clone(),
                policy: IpFamilyPolicy::SingleStack,
                families: vec![IpFamily::V4],
            }),
            "invalid_service",
        ),
        (
            alloc(AllocError::RequestedFamily {
                ip: ip("fd00:200::1"),
                source: src.clone(),
                policy: IpFamilyPolicy::RequireDualStack,
                families: vec![IpFamily::V4],
            }),
            "exhausted",
        ),
        (
            alloc(AllocError::RequireDualStackOneIp {
                source: src.clone(),
            }),
            "exhausted",
        ),
        (
            alloc(AllocError::IpInUse {
                ip: ip("10.200.10.1"),
                holder: ServiceKey::new("apps", "b"),
                why: Incompatibility::SelectorsDiffer,
            }),
            "sharing",
        ),
        (
            alloc(AllocError::NoPool {
                service: svc.clone(),
            }),
            "no_pool",
        ),
        (
            alloc(AllocError::Exhausted {
                service: svc.clone(),
                policy: IpFamilyPolicy::SingleStack,
                families: vec![IpFamily::V4],
                pools: vec![],
            }),
            "exhausted",
        ),
        (
            request(RequestError::UnknownIpFamilyPolicy("Dual".into())),
            "exhausted",
        ),
        (
            request(RequestError::UnknownIpFamily("IPv5".into())),
            "invalid_service",
        ),
        (
            request(RequestError::InvalidPort {
                index: 0,
                port: 70000,
            }),
            "invalid_service",
        ),
        (
            request(RequestError::PortProtocol {
                index: 1,
                protocol: UnknownProtocol("QUIC".into()),
            }),
            "invalid_service",
        ),
        (
            request(RequestError::EmptyPoolAnnotation {
                key: "ferrolb.io/address-pool".into(),
            }),
            "invalid_service",
        ),
        (
            request(RequestError::IpsAskedTwice { key: src.clone() }),
            "invalid_service",
        ),
        (
            request(RequestError::NotAnIp {
                location: src.clone(),
                value: "nope".into(),
            }),
            "invalid_service",
        ),
        (
            request(RequestError::TwoOfOneFamily {
                location: src.clone(),
                first: ip("10.200.10.1"),
                second: ip("10.200.10.2"),
            }),
            "invalid_service",
        ),
    ];
    for (failure, label) in table {
        assert_eq!(failure.metric_reason(), label, "{failure}");
    }
}

/// The request errors' messages, whole: users read them in events and the status API.
#[test]
fn request_error_messages() {
    use crate::allocator::UnknownProtocol;
    let table = [
        (
            RequestError::InvalidPort {
                index: 2,
                port: 70000,
            },
            "spec.ports[2].port 70000 is not a valid port",
        ),
        (
            RequestError::PortProtocol {
                index: 1,
                protocol: UnknownProtocol("QUIC".into()),
            },
            "spec.ports[1]: port protocol \"QUIC\" is unknown; accepted: TCP, UDP, SCTP",
        ),
        (
            RequestError::UnknownIpFamily("IPv5".into()),
            "spec.ipFamilies: \"IPv5\" is unknown; accepted: IPv4, IPv6",
        ),
        (
            RequestError::TwoOfOneFamily {
                location: "spec.loadBalancerIP".into(),
                first: ip("10.200.10.1"),
                second: ip("10.200.10.2"),
            },
            "spec.loadBalancerIP: 10.200.10.1 and 10.200.10.2 are both IPv4; at most one \
             address per family",
        ),
        (
            RequestError::NotAnIp {
                location: "ferrolb.io/loadBalancerIPs".into(),
                value: "nope".into(),
            },
            "ferrolb.io/loadBalancerIPs: \"nope\" is not an IP address; expected up to one IPv4 \
             and one IPv6 address separated by a comma",
        ),
        (
            RequestError::IpsAskedTwice {
                key: "metallb.io/loadBalancerIPs".into(),
            },
            "annotation metallb.io/loadBalancerIPs and spec.loadBalancerIP are both set; use \
             only metallb.io/loadBalancerIPs",
        ),
        (
            RequestError::EmptyPoolAnnotation {
                key: "ferrolb.io/address-pool".into(),
            },
            "annotation ferrolb.io/address-pool is empty; expected the name of a pool",
        ),
    ];
    for (e, message) in table {
        assert_eq!(e.to_string(), message);
    }
}

/// A Service with a sharing key and port.
fn keyed(name: &str, key: &str, port: i32) -> Service {
    let mut s = lb(name).annotation("ferrolb.io/allow-shared-ip", key);
    s.spec.get_or_insert_default().ports = Some(vec![k8s_openapi::api::core::v1::ServicePort {
        port,
        ..Default::default()
    }]);
    s
}

/// MetalLB controller/main.go SetBalancer: when a Service's allocation key changes or it gives
/// its address up, every Service is processed again (SyncStateReprocessAll), so one waiting
/// for an address gets it. ferrolb reaches that fixed point within the pass, whatever the
/// names sort to: here the waiting `a` sorts before the holder `b`, whose change makes room.
#[test]
fn a_waiting_service_gets_the_room_a_holder_makes_in_the_same_pass() {
    use EventKind::Warning;
    let lan = pool("lan", &["10.200.10.1-10.200.10.2"]);
    // Only for Services that ask for it.
    let mut wan = pool("wan", &["10.200.11.1-10.200.11.1"]);
    wan.spec.auto_assign = false;
    let holder_c = || lb("c").ingress(&["10.200.10.2"]).allocated_from("lan");
    let cases: Vec<(&str, Service, Service, Service, &str)> = vec![
        (
            "the holder moves to another pool (an address freed)",
            lb("a"),
            lb("b").ingress(&["10.200.10.1"]).allocated_from("lan"),
            lb("b")
                .ingress(&["10.200.10.1"])
                .allocated_from("lan")
                .annotation("ferrolb.io/address-pool", "wan"),
            "10.200.10.1",
        ),
        (
            "the holder takes the waiting Service's sharing key",
            keyed("a", "k", 80),
            lb("b").ingress(&["10.200.10.1"]).allocated_from("lan"),
            lb("b")
                .ingress(&["10.200.10.1"])
                .allocated_from("lan")
                .annotation("ferrolb.io/allow-shared-ip", "k"),
            "10.200.10.1",
        ),
        (
            "the holder's ports stop colliding",
            keyed("a", "k", 80),
            keyed("b", "k", 80)
                .ingress(&["10.200.10.1"])
                .allocated_from("lan"),
            keyed("b", "k", 443)
                .ingress(&["10.200.10.1"])
                .allocated_from("lan"),
            "10.200.10.1",
        ),
        (
            "the holder's backend (traffic policy) now matches",
            keyed("a", "k", 80),
            {
                let mut b = keyed("b", "k", 443)
                    .ingress(&["10.200.10.1"])
                    .allocated_from("lan");
                b.spec.get_or_insert_default().external_traffic_policy = Some("Local".into());
                b
            },
            keyed("b", "k", 443)
                .ingress(&["10.200.10.1"])
                .allocated_from("lan"),
            "10.200.10.1",
        ),
    ];
    for (name, a, b_before, mut b_after, want) in cases {
        let pools = [lan.clone(), wan.clone()];
        let mut core = Core::default();
        let first = run_pass(&mut core, &pools, &[a.clone(), b_before, holder_c()], true);
        assert!(
            first.events.iter().any(|e| e.kind == Warning
                && e.reason == reasons::ALLOCATION_FAILED
                && e.regarding.name.as_deref() == Some("a")),
            "{name}: a waits first: {:?}",
            first.events
        );
        b_after.metadata.resource_version = Some("2".into());
        let out = run_pass(&mut core, &pools, &[a, b_after, holder_c()], true);
        let a_write = out.status_writes.iter().find_map(|w| match w {
            StatusWrite::Service { key, ips, pool } if key.name == "a" => {
                Some((ips.clone(), pool.clone()))
            }
            _ => None,
        });
        assert_eq!(
            a_write,
            Some((vec![ip(want)], Some("lan".to_string()))),
            "{name}: {:?}",
            out.status_writes
        );
        assert!(
            !out.events
                .iter()
                .any(|e| e.reason == reasons::ALLOCATION_FAILED),
            "{name}: a failure reported for a Service that got its address in the pass: {:?}",
            out.events
        );
        assert_eq!(
            core.service("apps", "a").and_then(|s| s.error),
            None,
            "{name}"
        );
    }
}

/// A BGPPeer in the configuration namespace with `password` fields merged into its spec.
fn bgp_peer(name: &str, address: &str, password: serde_json::Value) -> ferrolb_api::BGPPeer {
    let mut spec = serde_json::json!({
        "myASN": 64512,
        "peerASN": 64513,
        "peerAddress": address,
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), password.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "ferrolb.io/v1beta1",
        "kind": "BGPPeer",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }))
    .expect("BGPPeer")
}

#[test]
fn the_status_document_never_holds_a_bgp_password() {
    const LITERAL: &str = "pw-literal-0c7e21";
    const REJECTED: &str = "pw-rejected-both-set-5d9a";
    let mut core = Core::default();
    let ctx = || PassContext {
        class_policy: ferrolb_api::service::ClassPolicy::OursOrUnset,
        leader: true,
        now: Instant::now(),
    };
    let services: Vec<Arc<Service>> = vec![Arc::new(lb("a"))];
    let valid = Inputs {
        pools: vec![pool("lan", &["10.200.10.1-10.200.10.2"])],
        peers: vec![
            bgp_peer(
                "literal",
                "10.200.0.1",
                serde_json::json!({"password": LITERAL}),
            ),
            bgp_peer(
                "from-secret",
                "10.200.0.2",
                serde_json::json!({"passwordSecret": {"name": "router-pw"}}),
            ),
        ],
        ..Inputs::default()
    };
    core.pass(
        &services,
        Config::build(&valid).map(Arc::new),
        &BTreeMap::new(),
        ctx(),
    );
    // Then an invalid configuration whose error is about a password.
    let mut invalid = valid.clone();
    invalid.peers.push(bgp_peer(
        "both",
        "10.200.0.3",
        serde_json::json!({"password": REJECTED, "passwordSecret": {"name": "router-pw"}}),
    ));
    core.pass(
        &services,
        Config::build(&invalid).map(Arc::new),
        &BTreeMap::new(),
        ctx(),
    );

    let status = core.status("test", true, true);
    assert!(!status.config.valid && !status.config.errors.is_empty());
    assert_eq!(status.services.len(), 1, "the allocation is reported");
    let mut json = serde_json::to_string(&status).expect("json");
    json.push_str(
        &serde_json::to_string(&core.service("apps", "a").expect("service")).expect("json"),
    );
    for secret in [LITERAL, REJECTED] {
        assert!(!json.contains(secret), "{secret} in the status: {json}");
    }
}
