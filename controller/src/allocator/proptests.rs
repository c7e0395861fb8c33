//! Properties over random pools, Services and operation sequences.

use super::sharing;
use super::testutil::*;
use super::*;
use ferrolb_config::IpFamily::{V4, V6};
use ferrolb_config::{Config, Pool};
use proptest::prelude::*;
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
struct PoolSpec {
    v4_len: u8,
    v6: bool,
    auto_assign: bool,
    avoid_buggy: bool,
    priority: Option<i32>,
    only_ns_a: bool,
}

fn pool_spec() -> impl Strategy<Value = PoolSpec> {
    (
        2u8..10,
        any::<bool>(),
        prop::bool::weighted(0.8),
        any::<bool>(),
        prop::option::of(0i32..3),
        prop::bool::weighted(0.3),
    )
        .prop_map(
            |(v4_len, v6, auto_assign, avoid_buggy, priority, only_ns_a)| PoolSpec {
                v4_len,
                v6,
                auto_assign,
                avoid_buggy,
                priority,
                only_ns_a,
            },
        )
}

/// Pool `i` starts at 10.i.0.252 so small pools cross a .255/.0 boundary.
fn build_pool(i: usize, s: &PoolSpec) -> Pool {
    let first = format!("10.{i}.0.252");
    let last = ferrolb_config::model::u128_to_ip(
        ferrolb_config::model::ip_to_u128(ip(&first)) + u128::from(s.v4_len) - 1,
        V4,
    );
    let v4 = format!("{first}-{last}");
    let v6 = format!("fd00:{i}::/125");
    let mut ranges = vec![v4.as_str()];
    if s.v6 {
        ranges.push(v6.as_str());
    }
    let mut p = pool(&format!("p{i}"), &ranges);
    p.auto_assign = s.auto_assign;
    p.avoid_buggy_ips = s.avoid_buggy;
    p.priority = s.priority;
    if s.only_ns_a {
        p.namespaces = vec!["a".into()];
    }
    p
}

fn build_config(specs: &[PoolSpec]) -> Config {
    config(
        specs
            .iter()
            .enumerate()
            .map(|(i, s)| build_pool(i, s))
            .collect(),
    )
}

fn service(idx: usize) -> impl Strategy<Value = ServiceRequest> {
    (
        any::<bool>(),
        prop::option::of(prop::sample::select(vec!["k1", "k2"])),
        prop::sample::select(vec![
            ServicePort::tcp(80),
            ServicePort::tcp(443),
            ServicePort::udp(53),
        ]),
        prop::option::of(prop::sample::select(vec!["x", "y"])),
        0usize..5,
        prop::option::weighted(0.2, prop::sample::select(vec!["p0", "p1", "ghost"])),
        prop::option::weighted(0.2, (0usize..3, 0u8..6, any::<bool>())),
    )
        .prop_map(move |(ns_a, key, port, local, fam, pool_req, ip_req)| {
            let mut r = svc(if ns_a { "a" } else { "b" }, &format!("s{idx}")).ports(&[port]);
            if let Some(k) = key {
                r = r.key(k);
            }
            if let Some(app) = local {
                r = r.local(app);
            }
            r = match fam {
                0 => r,
                1 => r.families(IpFamilyPolicy::SingleStack, &[V6]),
                2 => r.families(IpFamilyPolicy::PreferDualStack, &[V4, V6]),
                3 => r.families(IpFamilyPolicy::PreferDualStack, &[V6, V4]),
                _ => r.families(IpFamilyPolicy::RequireDualStack, &[V4, V6]),
            };
            if let Some(p) = pool_req {
                r = r.pool(p);
            }
            if let Some((pool_idx, offset, v6)) = ip_req {
                let addr = if v6 {
                    format!("fd00:{pool_idx}::{offset}")
                } else {
                    format!("10.{pool_idx}.0.{}", 252 + u16::from(offset))
                };
                // 10.x.0.256+ is not an address: fold it into the next /24.
                let addr = addr.replace(".256", ".255").replace(".257", ".255");
                r = r.ips(&[&addr]);
            }
            r
        })
}

#[derive(Clone, Debug)]
enum Op {
    Allocate(usize),
    Release(usize),
    SwitchConfig,
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..n).prop_map(Op::Allocate),
        1 => (0..n).prop_map(Op::Release),
        1 => Just(Op::SwitchConfig),
    ]
}

#[derive(Clone, Debug)]
struct Scenario {
    configs: [Config; 2],
    services: Vec<ServiceRequest>,
    ops: Vec<Op>,
}

const SERVICES: usize = 10;

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(pool_spec(), 1..4),
        prop::collection::vec(pool_spec(), 1..4),
        (0..SERVICES).map(service).collect::<Vec<_>>(),
        prop::collection::vec(op(SERVICES), 1..40),
    )
        .prop_map(|(a, b, services, ops)| Scenario {
            configs: [build_config(&a), build_config(&b)],
            services,
            ops,
        })
}

/// The allocator after a scenario, every outcome, and the live requests by index.
type Run = (Allocator, Vec<Outcome>, BTreeMap<usize, ServiceRequest>);

/// Runs the operations like a reconciler would (feeding each outcome back as `current`) and
/// checks the per-outcome properties. Returns the outcomes and the live requests.
fn run(s: &Scenario) -> Result<Run, TestCaseError> {
    let mut which = 0;
    let mut a = Allocator::new(s.configs[0].clone());
    let mut live: BTreeMap<usize, ServiceRequest> = BTreeMap::new();
    let mut outcomes = Vec::new();
    for op in &s.ops {
        match op {
            Op::Allocate(i) => {
                let mut req = s.services[*i].clone();
                req.current = live.get(i).map(|r| r.current.clone()).unwrap_or_default();
                let out = a.allocate(&req);
                check_outcome(&a, &req, &out)?;
                req.current = out.ips.clone();
                live.insert(*i, req);
                outcomes.push(out);
            }
            Op::Release(i) => {
                a.release(&s.services[*i].key);
                live.remove(i);
            }
            Op::SwitchConfig => {
                which = 1 - which;
                a.set_config(s.configs[which].clone());
            }
        }
        check_no_incompatible_sharing(&a)?;
    }
    Ok((a, outcomes, live))
}

/// Every address given is in one pool that contains it, admits the Service, allows it under
/// avoidBuggyIPs, and honours the requested pool and addresses.
fn check_outcome(a: &Allocator, req: &ServiceRequest, out: &Outcome) -> Result<(), TestCaseError> {
    prop_assert_eq!(out.ips.is_empty(), out.error.is_some(), "{:?}", out);
    let mut pools = Vec::new();
    for ip in &out.ips {
        let pool = a.config().pools.values().find(|p| p.contains(*ip));
        prop_assert!(pool.is_some(), "{} outside every pool", ip);
        let pool = pool.expect("checked");
        prop_assert!(
            plan::admits(pool, req),
            "{} from {} which does not admit {}",
            ip,
            pool.name,
            req.key
        );
        prop_assert!(pool.is_usable(*ip));
        if let Some(rp) = &req.requested_pool {
            prop_assert_eq!(&rp.value, &pool.name);
        }
        if let Some(ri) = &req.requested_ips {
            prop_assert!(ri.value.contains(ip));
        }
        pools.push(pool.name.clone());
    }
    pools.dedup();
    prop_assert!(
        pools.len() <= 1,
        "addresses from several pools: {:?}",
        pools
    );
    let mut fams: Vec<_> = out.ips.iter().map(ferrolb_config::IpFamily::of).collect();
    fams.dedup();
    prop_assert_eq!(fams.len(), out.ips.len(), "two addresses of one family");
    Ok(())
}

fn check_no_incompatible_sharing(a: &Allocator) -> Result<(), TestCaseError> {
    for (ip, holding) in a.table.holdings() {
        for (i, x) in holding.holders.iter().enumerate() {
            for y in &holding.holders[i + 1..] {
                let sx = &a.table.service(x).expect("holder has an entry").sharing;
                let sy = &a.table.service(y).expect("holder has an entry").sharing;
                prop_assert!(
                    sharing::check(sx, sy).is_ok() && sharing::check(sy, sx).is_ok(),
                    "{} held by incompatible {} and {}",
                    ip,
                    x,
                    y
                );
            }
        }
        // The free-address index agrees with the holdings.
        let n = ferrolb_config::model::ip_to_u128(*ip);
        prop_assert!(a.table.held(ferrolb_config::IpFamily::of(ip)).contains(n));
    }
    let total = a.table.held(V4).len() + a.table.held(V6).len();
    prop_assert_eq!(total, a.table.holdings().count() as u128);
    Ok(())
}

/// Reconciles every live Service until nothing changes; returns the number of passes.
fn converge(a: &mut Allocator, live: &mut BTreeMap<usize, ServiceRequest>) -> usize {
    for pass in 1..=6 {
        let mut changed = false;
        for req in live.values_mut() {
            let out = a.allocate(req);
            changed |= out.changed();
            req.current = out.ips;
        }
        if !changed {
            return pass;
        }
    }
    usize::MAX
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// No address is ever held by incompatible Services, and every address handed out is in a
    /// pool that admits its Service (checked after every operation inside `run`).
    #[test]
    fn allocations_are_valid_and_sharing_is_compatible(s in scenario()) {
        run(&s)?;
    }

    /// Allocation is deterministic: the same operations give the same outcomes, and restoring
    /// does not depend on the order Services are listed in.
    #[test]
    fn allocation_is_deterministic(s in scenario()) {
        let (a1, o1, live) = run(&s)?;
        let (a2, o2, _) = run(&s)?;
        prop_assert_eq!(o1, o2);
        prop_assert_eq!(a1.allocations(), a2.allocations());
        let mut fwd = Allocator::new(a1.config().clone());
        let mut rev = Allocator::new(a1.config().clone());
        let c1 = fwd.restore(live.values().cloned());
        let c2 = rev.restore(live.values().rev().cloned());
        prop_assert_eq!(c1, c2);
        prop_assert_eq!(fwd.allocations(), rev.allocations());
        prop_assert_eq!(fwd.usage(), rev.usage());
    }

    /// Once converged, restoring every status into a fresh allocator and reconciling everything
    /// (in reverse order) moves no address and changes nothing; so does reconciling again.
    #[test]
    fn restore_then_reconcile_is_idempotent(s in scenario()) {
        let (mut a, _, mut live) = run(&s)?;
        let passes = converge(&mut a, &mut live);
        prop_assert!(passes <= 4, "did not converge: {} passes", passes);
        check_no_incompatible_sharing(&a)?;
        let mut b = Allocator::new(a.config().clone());
        let conflicts = b.restore(live.values().cloned());
        prop_assert!(conflicts.is_empty(), "{:?}", conflicts);
        prop_assert_eq!(a.usage(), b.usage());
        for req in live.values().rev() {
            let out = b.allocate(req);
            prop_assert!(!out.changed(), "{}: {:?}", req.key, out);
            prop_assert_eq!(&out.ips, &req.current);
        }
        prop_assert_eq!(a.allocations(), b.allocations());
    }
}
