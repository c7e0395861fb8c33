//! MetalLB's allocator tests (internal/allocator/allocator_test.go) replayed against ferrolb's
//! allocator: each MetalLB test function is one Rust test, each of its cases one step named
//! after MetalLB's `desc`, run in order on one allocator as MetalLB runs them.
//!
//! MetalLB's allocator calls map onto what a Service asks ferrolb for:
//! - `Assign(ips)`: the Service requests exactly those addresses (`loadBalancerIPs`); its
//!   families are the addresses' families, as a Service's cluster IPs would be;
//! - `AllocateFromPool(pool)`: the Service names the pool (`address-pool`);
//! - `Allocate`: automatic assignment;
//! - `Unassign`: the Service is deleted;
//! - the sharing key is `allow-shared-ip`; the backend key (MetalLB's `BackendKey`: the
//!   selector of a `Local` Service) is `externalTrafficPolicy: Local` with that selector.
//!
//! Every step's verdict (success, and the addresses for `Assign`; or failure) is MetalLB's.
//! Where ferrolb reaches it differently, the step says so. One difference runs through them:
//! a Service whose request fails keeps no address in ferrolb, where MetalLB's `Assign` leaves
//! the previous allocation in place — MetalLB's controller clears it before asking
//! (controller/service.go convergeBalancer), so users see the same either way.

use super::testutil::*;
use super::*;
use ferrolb_config::IpFamily::{V4, V6};
use ferrolb_config::selector::Requirement;
use ferrolb_config::{IpFamily, Pool, Selector};
use std::collections::BTreeSet;

/// The Service's family, as MetalLB's tests pass it (`ipfamily.Family` plus the Service's
/// policy).
#[derive(Clone, Copy, Debug)]
enum Fam {
    /// SingleStack IPv4.
    V4,
    /// SingleStack IPv6.
    V6,
    /// `svcRequireDualStack` with a dual-stack family.
    Require,
    /// `svcPreferDualStack` with a dual-stack family.
    Prefer,
    /// MetalLB's plain `svc` (no policy) given a dual-stack family; a Kubernetes Service cannot
    /// be that, ferrolb reads it as SingleStack with IPv4 first.
    SingleDual,
}

#[derive(Clone, Debug)]
enum Op {
    Assign(Vec<&'static str>),
    FromPool(&'static str),
    Auto,
    Unassign,
}

#[derive(Clone, Debug)]
struct Step {
    desc: String,
    svc: &'static str,
    namespace: &'static str,
    labels: &'static [(&'static str, &'static str)],
    op: Op,
    fam: Fam,
    ports: &'static [&'static str],
    sharing: &'static str,
    backend: &'static str,
    /// MetalLB's `wantErr`.
    want_err: bool,
}

fn step(desc: impl Into<String>, svc: &'static str, op: Op) -> Step {
    Step {
        desc: desc.into(),
        svc,
        namespace: "default",
        labels: &[],
        op,
        fam: Fam::V4,
        ports: &[],
        sharing: "",
        backend: "",
        want_err: false,
    }
}

fn assign(desc: impl Into<String>, svc: &'static str, ips: &[&'static str]) -> Step {
    step(desc, svc, Op::Assign(ips.to_vec()))
}

fn unassign(desc: impl Into<String>, svc: &'static str) -> Step {
    step(desc, svc, Op::Unassign)
}

fn from_pool(desc: impl Into<String>, svc: &'static str, fam: Fam, pool: &'static str) -> Step {
    Step {
        fam,
        ..step(desc, svc, Op::FromPool(pool))
    }
}

fn auto(desc: impl Into<String>, svc: &'static str, fam: Fam) -> Step {
    Step {
        fam,
        ..step(desc, svc, Op::Auto)
    }
}

impl Step {
    fn err(mut self) -> Self {
        self.want_err = true;
        self
    }
    fn shared(mut self, ports: &'static [&'static str], sharing: &'static str) -> Self {
        self.ports = ports;
        self.sharing = sharing;
        self
    }
    fn backend(mut self, backend: &'static str) -> Self {
        self.backend = backend;
        self
    }
    fn meta(
        mut self,
        namespace: &'static str,
        labels: &'static [(&'static str, &'static str)],
    ) -> Self {
        self.namespace = namespace;
        self.labels = labels;
        self
    }

    fn key(&self) -> ServiceKey {
        ServiceKey::new(self.namespace, self.svc)
    }

    fn request(&self) -> ServiceRequest {
        let mut r = svc(self.namespace, self.svc);
        r.service_labels = labels(self.labels);
        r.ports = self.ports.iter().map(|p| port(p)).collect();
        if !self.sharing.is_empty() {
            r = r.key(self.sharing);
        }
        if !self.backend.is_empty() {
            r = r.local(self.backend);
        }
        let (policy, fams) = match (&self.op, self.fam) {
            (Op::Assign(ips), _) => {
                let fams: Vec<IpFamily> = ips.iter().map(|s| IpFamily::of(&ip(s))).collect();
                let policy = if fams.len() == 2 {
                    IpFamilyPolicy::RequireDualStack
                } else {
                    IpFamilyPolicy::SingleStack
                };
                (policy, fams)
            }
            (_, Fam::V4) => (IpFamilyPolicy::SingleStack, vec![V4]),
            (_, Fam::V6) => (IpFamilyPolicy::SingleStack, vec![V6]),
            (_, Fam::Require) => (IpFamilyPolicy::RequireDualStack, vec![V4, V6]),
            (_, Fam::Prefer) => (IpFamilyPolicy::PreferDualStack, vec![V4, V6]),
            (_, Fam::SingleDual) => (IpFamilyPolicy::SingleStack, vec![V4, V6]),
        };
        r = r.families(policy, &fams);
        match &self.op {
            Op::Assign(ips) => r.ips(ips),
            Op::FromPool(pool) => r.pool(pool),
            Op::Auto | Op::Unassign => r,
        }
    }
}

/// `tcp/80` or `udp/53`.
fn port(text: &str) -> ServicePort {
    match text.split_once('/') {
        Some(("udp", n)) => ServicePort::udp(n.parse().expect("test port")),
        Some((_, n)) => ServicePort::tcp(n.parse().expect("test port")),
        None => panic!("test port {text}"),
    }
}

fn selector(key: &str, value: &str) -> Selector {
    Selector {
        requirements: vec![Requirement::In(
            key.into(),
            BTreeSet::from([value.to_string()]),
        )],
    }
}

/// Runs `steps` in order on `a`; addresses handed out automatically must be in `valid`.
/// Returns how many steps ran, each agreeing with MetalLB.
fn replay(test: &str, a: &mut Allocator, steps: &[Step], valid: &[&str]) -> usize {
    for s in steps {
        let name = format!("{test}: {:?}", s.desc);
        if let Op::Unassign = s.op {
            a.release(&s.key());
            continue;
        }
        let out = a.allocate(&s.request());
        if s.want_err {
            assert!(
                out.error.is_some() && out.ips.is_empty(),
                "{name}: should fail: {out:?}"
            );
            continue;
        }
        assert_eq!(out.error, None, "{name}");
        match &s.op {
            Op::Assign(ips) => {
                let want: Vec<IpAddr> = ips.iter().map(|s| ip(s)).collect();
                assert_eq!(out.ips, want, "{name}");
            }
            _ => {
                assert!(!out.ips.is_empty(), "{name}");
                for got in &out.ips {
                    assert!(
                        valid.contains(&got.to_string().as_str()),
                        "{name}: unexpected {got}"
                    );
                }
            }
        }
        // Dual-stack asks get one address per family; single-stack ones one address.
        let want_len = match (&s.op, s.fam) {
            (Op::Assign(ips), _) => ips.len(),
            (_, Fam::Require) => 2,
            (_, Fam::Prefer) => out.ips.len().clamp(1, 2),
            _ => 1,
        };
        assert_eq!(out.ips.len(), want_len, "{name}: {:?}", out.ips);
    }
    steps.len()
}

fn mpool(name: &str, cidrs: &[&str]) -> Pool {
    pool(name, cidrs)
}

/// MetalLB allocator_test.go TestAssignment: explicit addresses, sharing and pool admission.
#[test]
fn test_assignment() {
    let mut test2 = mpool("test2", &["1.2.4.0/24", "1000::4:0/120"]);
    test2.avoid_buggy_ips = true;
    let mut test3 = mpool("test3", &["1.2.5.0/24", "1000::5:0/120"]);
    test3.avoid_buggy_ips = true;
    test3.namespaces = vec!["test-ns1".into()];
    let mut test4 = mpool("test4", &["1.2.6.0/24", "1000::6:0/120"]);
    test4.avoid_buggy_ips = true;
    test4.service_selectors = vec![selector("team", "metallb")];
    let mut test5 = mpool("test5", &["1.2.7.0/24", "1000::7:0/120"]);
    test5.avoid_buggy_ips = true;
    test5.priority = Some(20);
    test5.namespaces = vec!["test-ns1".into()];
    test5.service_selectors = vec![selector("team", "metallb")];
    let mut test6 = mpool("test6", &["1.2.8.0/24", "1000::9:0/120"]);
    test6.avoid_buggy_ips = true;
    test6.priority = Some(20);
    test6.namespaces = vec!["test-ns2".into()];
    test6.service_selectors = vec![selector("foo", "bar")];
    let mut a = Allocator::new(config(vec![
        mpool("test", &["1.2.3.4/31", "1000::4/127"]),
        test2,
        test3,
        test4,
        test5,
        test6,
    ]));
    const TCP80: &[&str] = &["tcp/80"];
    const TCP443: &[&str] = &["tcp/443"];
    const UDP53: &[&str] = &["udp/53"];
    let mut steps = vec![
        assign("assign s1", "s1", &["1.2.3.4"]),
        assign("s1 idempotent reassign", "s1", &["1.2.3.4"]),
        assign("s2 can't grab s1's IP", "s2", &["1.2.3.4"]).err(),
        assign("s2 can get the other IP", "s2", &["1.2.3.5"]),
        assign("s1 now can't grab s2's IP", "s1", &["1.2.3.5"]).err(),
        unassign("s1 frees its IP", "s1"),
        assign("s2 can grab s1's former IP", "s2", &["1.2.3.4"]),
        assign("s1 can now grab s2's former IP", "s1", &["1.2.3.5"]),
        assign("s3 cannot grab a 0 buggy IP", "s3", &["1.2.4.0"]).err(),
        assign("s3 cannot grab a 255 buggy IP", "s3", &["1.2.4.255"]).err(),
        assign("s3 can grab another IP in that pool", "s3", &["1.2.4.254"]),
    ];
    for (v, [s1, s2, s3_other, shared, s3_former]) in [
        (
            4,
            ["1.2.3.4", "1.2.3.5", "1.2.4.254", "1.2.4.3", "1.2.4.254"],
        ),
        (
            6,
            [
                "1000::4",
                "1000::4:5",
                "1000::4:ff",
                "1000::4:3",
                "1000::4:ff",
            ],
        ),
    ] {
        if v == 6 {
            steps.extend([
                assign("ipv6 assign s1", "s1", &[s1]),
                assign("s1 idempotent reassign", "s1", &[s1]),
                assign("s2 can't grab s1's IP", "s2", &[s1]).err(),
                assign("s2 can get the other IP", "s2", &[s2]),
                assign("s1 now can't grab s2's IP", "s1", &[s2]).err(),
                unassign("s1 frees its IP", "s1"),
                assign("s2 can grab s1's former IP", "s2", &[s1]),
                assign("s1 can now grab s2's former IP", "s1", &[s2]),
                assign("s3 can grab another IP in that pool", "s3", &[s3_other]),
            ]);
        }
        steps.extend([
            assign("s4 takes an IP, with sharing", "s4", &[shared])
                .shared(TCP80, "sharing")
                .backend("backend"),
            assign("s4 changes its sharing key in place", "s4", &[shared])
                .shared(TCP80, "share")
                .backend("backend"),
            assign("s3 can't share with s4 (port conflict)", "s3", &[shared])
                .shared(TCP80, "share")
                .backend("backend")
                .err(),
            assign(
                "s3 can't share with s4 (wrong sharing key)",
                "s3",
                &[shared],
            )
            .shared(TCP443, "othershare")
            .backend("backend")
            .err(),
            assign(
                "s3 can't share with s4 (wrong backend key)",
                "s3",
                &[shared],
            )
            .shared(TCP443, "share")
            .backend("otherbackend")
            .err(),
            assign("s3 takes the same IP as s4", "s3", &[shared])
                .shared(TCP443, "share")
                .backend("backend"),
            assign(
                "s3 can change its ports while keeping the same IP",
                "s3",
                &[shared],
            )
            .shared(UDP53, "share")
            .backend("backend"),
            assign(
                "s3 can't change its sharing key while keeping the same IP",
                "s3",
                &[shared],
            )
            .shared(TCP443, "othershare")
            .backend("backend")
            .err(),
            assign(
                "s3 can't change its backend key while keeping the same IP",
                "s3",
                &[shared],
            )
            .shared(TCP443, "share")
            .backend("otherbackend")
            .err(),
            assign("s4 takes s3's former IP", "s4", &[s3_former]),
        ]);
    }
    const TEAM_METALLB: &[(&str, &str)] = &[("team", "metallb")];
    steps.extend([
        unassign("s2 frees its IP", "s2"),
        assign("ip dual-stack assign s1", "s1", &["1.2.3.4", "1000::4"]),
        assign(
            "ip dual-stack assign s1 from different pools",
            "s1",
            &["1.2.4.5", "1000::4"],
        )
        .err(),
        assign(
            "attempt to assign ip from pool pinned on same namespace",
            "s1",
            &["1.2.5.10"],
        )
        .meta("test-ns1", &[]),
        assign(
            "attempt to assign ip from pool pinned on different namespace",
            "s1",
            &["1.2.5.10"],
        )
        .meta("testns-not-exist", &[])
        .err(),
        assign(
            "attempt to assign ip from pool pinned with same service label",
            "s1",
            &["1.2.6.10"],
        )
        .meta("testns-not-exist", TEAM_METALLB),
        assign(
            "attempt to assign ip from pool pinned with different service label",
            "s1",
            &["1.2.6.10"],
        )
        .meta("testns-not-exist", &[("team", "red")])
        .err(),
        assign(
            "attempt to assign ip from pool pinned with namespace and service label",
            "s1",
            &["1.2.7.10"],
        )
        .meta("test-ns1", TEAM_METALLB),
        assign(
            "attempt to assign ip from pool pinned with namespace and incompatible service label",
            "s1",
            &["1.2.8.10"],
        )
        .meta("test-ns2", TEAM_METALLB)
        .err(),
        assign(
            "attempt to assign ip from pool pinned with service label and incompatible namespace",
            "s1",
            &["1.2.8.10"],
        )
        .meta("testns-not-exist", &[("foo", "bar")])
        .err(),
    ]);
    assert_eq!(replay("TestAssignment", &mut a, &steps, &[]), 50);
}

const V4_VALID: [&str; 4] = ["1.2.3.4", "1.2.3.5", "1.2.3.10", "1.2.3.11"];

/// MetalLB allocator_test.go TestPoolAllocation: allocation from a named pool, exhaustion,
/// sharing, dual-stack policies.
#[test]
fn test_pool_allocation() {
    let mut a = Allocator::new(config(vec![
        mpool("not_this_one", &["192.168.0.0/16", "fc00::1:0/112"]),
        mpool(
            "test",
            &["1.2.3.4/31", "1.2.3.10/31", "1000::/127", "2000::/127"],
        ),
        mpool("test2", &["10.20.30.0/24", "fc00::2:0/120"]),
        mpool("test-v4", &["1.2.3.4/31", "1.2.3.10/31"]),
        mpool("test-v6", &["1000::/127", "2000::/127"]),
        mpool(
            "test-dualstack",
            &["1.2.3.4/31", "1.2.3.10/31", "1000::/127", "2000::/127"],
        ),
    ]));
    const TCP80: &[&str] = &["tcp/80"];
    const TCP443: &[&str] = &["tcp/443"];
    let t = |desc: String, svc, fam| from_pool(desc, svc, fam, "test");
    let mut steps = Vec::new();
    for (fam, n) in [(Fam::V4, "IPv4"), (Fam::V6, "IP6"), (Fam::Require, "dual")] {
        for s in ["s1", "s2", "s3", "s4"] {
            steps.push(t(format!("{s} gets an {n}"), s, fam));
        }
        steps.extend([
            t(format!("s5 can't get an {n}"), "s5", fam).err(),
            t(format!("s6 can't get an {n}"), "s6", fam).err(),
            unassign(format!("s1 releases its {n}"), "s1"),
            t(format!("s5 can now grab s1's former {n}"), "s5", fam),
            t(format!("s6 still can't get an {n}"), "s6", fam).err(),
            unassign(
                format!("s5 unassigns in prep for enabling {n} sharing"),
                "s5",
            ),
            t(format!("s5 enables {n} sharing"), "s5", fam).shared(TCP80, "share"),
            t(format!("s6 can get an {n} now, with sharing"), "s6", fam).shared(TCP443, "share"),
        ]);
        if let Fam::V6 = fam {
            steps.extend([
                unassign("s1 clear", "s1"),
                t("s1 get an IPv4".into(), "s1", Fam::V4),
                // MetalLB refuses a family other than the one allocated; ferrolb follows a
                // Service's families, and fails here only because every IPv6 address of
                // test is in use.
                t("s1 get an IPv6".into(), "s1", Fam::V6).err(),
            ]);
        }
        for s in ["s1", "s2", "s3", "s4", "s5", "s6"] {
            steps.push(unassign(format!("{s} clear old {n} address"), s));
        }
    }
    steps.extend([
        t("s1 gets dual-stack IPs".into(), "s1", Fam::Prefer),
        from_pool("s2 gets ipv4 IP", "s2", Fam::V4, "test-v4"),
        from_pool("s3 gets ipv6 IP", "s3", Fam::V6, "test-v6"),
        unassign("s2 clear old ipv4 address", "s2"),
        from_pool("s3 gets dualstack", "s3", Fam::Prefer, "test-dualstack"),
        unassign("s5 unassigned before the nonexistent pool", "s5"),
        from_pool(
            "Allocating from non-existent pool",
            "s5",
            Fam::V4,
            "nonexistentpool",
        )
        .err(),
    ]);
    let valid: Vec<&str> = V4_VALID
        .into_iter()
        .chain(["1000::", "1000::1", "2000::", "2000::1"])
        .collect();
    assert_eq!(replay("TestPoolAllocation", &mut a, &steps, &valid), 64);
}

/// MetalLB allocator_test.go TestAllocation: automatic allocation over two pools, exhaustion,
/// sharing, RequireDualStack.
#[test]
fn test_allocation() {
    let mut a = Allocator::new(config(vec![
        mpool("test1", &["1.2.3.4/31", "1000::4/127"]),
        mpool("test2", &["1.2.3.10/31", "1000::10/127"]),
    ]));
    let steps = allocation_steps(Fam::V4, "IPv4")
        .into_iter()
        .chain(allocation_steps(Fam::V6, "IPv6"))
        .chain(allocation_steps(Fam::Require, "dual-stack IPs"))
        .collect::<Vec<_>>();
    let valid: Vec<&str> = V4_VALID
        .into_iter()
        .chain(["1000::4", "1000::5", "1000::10", "1000::11"])
        .collect();
    assert_eq!(replay("TestAllocation", &mut a, &steps, &valid), 42);
}

fn allocation_steps(fam: Fam, n: &'static str) -> Vec<Step> {
    let mut steps: Vec<Step> = ["s1", "s2", "s3", "s4"]
        .into_iter()
        .map(|s| auto(format!("{s} gets an {n}"), s, fam))
        .collect();
    steps.extend([
        auto(format!("s5 can't get an {n}"), "s5", fam).err(),
        auto(format!("s6 can't get an {n}"), "s6", fam).err(),
        unassign(format!("s1 gives up its {n}"), "s1"),
        auto(format!("s5 can now get an {n}"), "s5", fam).shared(&["tcp/80"], "share"),
        auto(format!("s6 still can't get an {n}"), "s6", fam).err(),
        auto(format!("s6 can get an {n} with sharing"), "s6", fam).shared(&["tcp/443"], "share"),
    ]);
    if !matches!(fam, Fam::Require) {
        for s in ["s1", "s2", "s3", "s4", "s5", "s6"] {
            steps.push(unassign(format!("{s} clear old {n} address"), s));
        }
    }
    steps
}

/// MetalLB allocator_test.go TestBuggyIPs: `avoidBuggyIPs` skips .0 and .255 only where set.
#[test]
fn test_buggy_ips() {
    let mut test3 = mpool("test3", &["1.2.4.0/31"]);
    test3.avoid_buggy_ips = true;
    let mut test4 = mpool("test4", &["1.2.4.254/31"]);
    test4.avoid_buggy_ips = true;
    let mut a = Allocator::new(config(vec![
        mpool("test", &["1.2.3.0/31"]),
        mpool("test2", &["1.2.3.254/31"]),
        test3,
        test4,
    ]));
    let mut steps: Vec<Step> = ["s1", "s2", "s3", "s4", "s5", "s6"]
        .into_iter()
        .map(|s| auto(s, s, Fam::V4))
        .collect();
    steps.push(auto("s7", "s7", Fam::V4).err());
    let valid = [
        "1.2.3.0",
        "1.2.3.1",
        "1.2.3.254",
        "1.2.3.255",
        "1.2.4.1",
        "1.2.4.254",
    ];
    assert_eq!(replay("TestBuggyIPs", &mut a, &steps, &valid), 7);
}

/// MetalLB allocator_test.go TestAutoAssign: pools with `autoAssign: false` are never picked
/// automatically.
#[test]
fn test_auto_assign() {
    let mut test1 = mpool("test1", &["1.2.3.4/31", "1000::4/127"]);
    test1.auto_assign = false;
    let mut a = Allocator::new(config(vec![
        test1,
        mpool("test2", &["1.2.3.10/31", "1000::10/127"]),
    ]));
    let mut steps = Vec::new();
    // MetalLB passes its single-stack Service a dual-stack family here and the two first
    // Services keep their IPv6 addresses; ferrolb reads such a Service as SingleStack IPv4
    // first and gives IPv4 addresses of test2 — the verdicts are the same.
    for fam in [Fam::V4, Fam::V6, Fam::SingleDual] {
        steps.extend([
            auto("s1", "s1", fam),
            auto("s2", "s2", fam),
            auto("s3", "s3", fam).err(),
            auto("s4", "s4", fam).err(),
            auto("s5", "s5", fam).err(),
        ]);
        if let Fam::V4 = fam {
            for s in ["s1", "s2", "s3", "s4", "s5", "s6"] {
                steps.push(unassign("clear old ipv4 addresses", s));
            }
        }
    }
    let valid = ["1.2.3.10", "1.2.3.11", "1000::10", "1000::11"];
    assert_eq!(replay("TestAutoAssign", &mut a, &steps, &valid), 21);
}

/// MetalLB allocator_test.go TestConfigReload: after a configuration change a Service keeps
/// its address (and reports the pool that now holds it) while a pool still contains it.
#[test]
fn test_config_reload() {
    let p = |name: &str, v4: &str, v6: &str| mpool(name, &[v4, v6]);
    let mut buggy = p("test2", "1.2.3.0/31", "1000::/127");
    buggy.avoid_buggy_ips = true;
    /// Description, the new pools, and the pool s1 and s2 are then in (none: released).
    type Case = (
        &'static str,
        Vec<Pool>,
        Option<&'static str>,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            "set same config is no-op",
            vec![p("test", "1.2.3.0/30", "1000::/126")],
            Some("test"),
            Some("test"),
        ),
        (
            "expand pool",
            vec![p("test", "1.2.3.0/24", "1000::/120")],
            Some("test"),
            Some("test"),
        ),
        (
            "shrink pool",
            vec![p("test", "1.2.3.0/30", "1000::/126")],
            Some("test"),
            Some("test"),
        ),
        (
            "can't shrink further, removing the service allocation",
            vec![p("test", "1.2.3.2/31", "1000::0/126")],
            None,
            Some("test"),
        ),
        (
            "can't shrink further ipv6, removing the service allocation",
            vec![p("test", "1.2.3.0/30", "1000::2/127")],
            Some("test"),
            None,
        ),
        (
            "rename the pool",
            vec![p("test2", "1.2.3.0/30", "1000::0/126")],
            Some("test2"),
            Some("test2"),
        ),
        (
            "split pool",
            vec![
                p("test", "1.2.3.0/31", "1000::2/127"),
                p("test2", "1.2.3.2/31", "1000::/127"),
            ],
            Some("test"),
            Some("test2"),
        ),
        (
            "enable buggy IPs not allowed",
            vec![buggy],
            None,
            Some("test2"),
        ),
    ];
    for (desc, pools, want_s1, want_s2) in cases {
        let mut a = Allocator::new(config(vec![
            p("test", "1.2.3.0/30", "1000::/126"),
            p("unused", "1.2.4.0/30", "1001::/126"),
        ]));
        let s1 = svc("default", "s1").ips(&["1.2.3.0"]);
        let s2 = svc("default", "s2")
            .families(IpFamilyPolicy::SingleStack, &[V6])
            .ips(&["1000::"]);
        assert_eq!(a.allocate(&s1).error, None, "{desc}");
        assert_eq!(a.allocate(&s2).error, None, "{desc}");
        a.set_config(config(pools));
        assert_eq!(a.allocate(&s1).pool.as_deref(), want_s1, "{desc}: s1");
        assert_eq!(a.allocate(&s2).pool.as_deref(), want_s2, "{desc}: s2");
    }
}

/// MetalLB allocator_test.go TestPoolCount: a pool's size per family, `avoidBuggyIPs`
/// excluded, a huge IPv6 range saturating at the largest int64 in the pool status.
#[test]
fn test_pool_count() {
    let cases: [(&str, &[&str], bool, i64, i64); 5] = [
        ("BGP /24", &["1.2.3.0/24"], false, 256, 0),
        (
            "BGP /24 and /25",
            &["1.2.3.0/24", "2.3.4.128/25"],
            false,
            384,
            0,
        ),
        (
            "BGP /24 and /25, no buggy IPs",
            &["1.2.3.0/24", "2.3.4.128/25"],
            true,
            381,
            0,
        ),
        (
            "BGP a BIG ipv6 range",
            &["1.2.3.0/24", "2.3.4.128/25", "1000::/64"],
            true,
            381,
            i64::MAX,
        ),
        (
            "ipv4 and ipv6 range",
            &["1.2.3.0/31", "1000::/127"],
            true,
            1,
            2,
        ),
    ];
    for (desc, cidrs, avoid, v4, v6) in cases {
        let mut p = mpool("p", cidrs);
        p.avoid_buggy_ips = avoid;
        let a = Allocator::new(config(vec![p]));
        let u = a.usage_status().pop().expect("one pool");
        let sat = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        assert_eq!(
            (sat(u.available_ipv4), sat(u.available_ipv6)),
            (v4, v6),
            "{desc}"
        );
    }
}

/// MetalLB allocator_test.go TestPoolMetrics: addresses in use count once however many
/// Services share them.
#[test]
fn test_pool_metrics() {
    let mut a = Allocator::new(config(vec![mpool("test", &["1.2.3.4/30", "1000::4/126"])]));
    let counts = |a: &Allocator| {
        a.pool_usage("test")
            .map(|u| (u.v4.available, u.v6.available, u.v4.assigned, u.v6.assigned))
    };
    assert_eq!(counts(&a), Some((4, 4, 0, 0)));
    /// Description, Service, the address and port it asks for (none: deleted), in use after.
    type MetricStep = (
        &'static str,
        &'static str,
        Option<(&'static str, &'static str)>,
        u128,
    );
    let steps: [MetricStep; 10] = [
        ("assign s1", "s1", Some(("1.2.3.4", "")), 1),
        ("assign s2", "s2", Some(("1.2.3.5", "")), 2),
        ("unassign s1", "s1", None, 1),
        ("unassign s2", "s2", None, 0),
        ("assign s1 shared", "s1", Some(("1.2.3.4", "tcp/80")), 1),
        ("assign s2 shared", "s2", Some(("1.2.3.4", "tcp/443")), 1),
        ("assign s3 shared", "s3", Some(("1.2.3.4", "tcp/23")), 1),
        ("unassign s1 shared", "s1", None, 1),
        ("unassign s2 shared", "s2", None, 1),
        ("unassign s3 shared", "s3", None, 0),
    ];
    for (desc, name, assign, in_use) in steps {
        match assign {
            None => {
                a.release(&ServiceKey::new("default", name));
            }
            Some((addr, p)) => {
                let mut r = svc("default", name).ips(&[addr]);
                if !p.is_empty() {
                    r = r.key("key").ports(&[port(p)]);
                }
                assert_eq!(a.allocate(&r).error, None, "{desc}");
            }
        }
        assert_eq!(
            counts(&a),
            Some((4 - in_use, 4, in_use, 0)),
            "TestPoolMetrics: {desc}"
        );
    }
}
