//! Unit tests: one or more per allocation rule.

use super::testutil::*;
use super::*;
use ferrolb_config::IpFamily::{V4, V6};
use ferrolb_config::Selector;
use ferrolb_config::selector::Requirement;
use std::collections::BTreeSet;

fn alloc(a: &mut Allocator, req: &ServiceRequest) -> Vec<IpAddr> {
    let out = a.allocate(req);
    assert_eq!(out.error, None, "{}", req.key);
    out.ips
}

fn err(a: &mut Allocator, req: &ServiceRequest) -> String {
    let out = a.allocate(req);
    assert!(out.ips.is_empty(), "{:?}", out.ips);
    out.error.map(|e| e.to_string()).expect("an error")
}

fn selector(key: &str, value: &str) -> Selector {
    Selector {
        requirements: vec![Requirement::In(
            key.into(),
            BTreeSet::from([value.to_string()]),
        )],
    }
}

/// MetalLB internal/allocator/allocator.go `sortPools` and `Allocate`: pools with a
/// serviceAllocation first, a positive priority before 0 or none; pools without a
/// serviceAllocation only after them. `getFreeIPsFromPool`: a pool's ranges in the order written.
#[test]
fn pools_by_priority_then_name_ranges_in_written_order() {
    // No serviceAllocation: after every pool with one, whatever its name.
    let none_a = pool("a-none", &["10.0.4.0/31"]);
    let mut b10 = pool("b10", &["10.0.3.0/31"]);
    b10.priority = Some(10);
    let mut c5 = pool("c5", &["10.0.2.1-10.0.2.1"]);
    c5.priority = Some(5);
    // Same priority as c5: name breaks the tie. Ranges are tried in the order written.
    let mut d5 = pool("d5", &["10.0.1.9-10.0.1.9", "10.0.1.5-10.0.1.5"]);
    d5.priority = Some(5);
    // Priority 0 is the lowest, like a serviceAllocation without one (written empty here).
    let mut z0 = pool("z0", &["10.0.5.0-10.0.5.0"]);
    z0.priority = Some(0);
    let mut e_empty = pool("e-empty", &["10.0.6.0-10.0.6.0"]);
    e_empty.service_allocation = true;
    let mut a = Allocator::new(config(vec![none_a, b10, c5, d5, z0, e_empty]));
    let got: Vec<(Vec<IpAddr>, Option<String>)> = (0..9)
        .map(|i| {
            let o = a.allocate(&svc("default", &format!("s{i}")));
            (o.ips, o.pool)
        })
        .collect();
    let want = [
        ("10.0.2.1", "c5"),
        ("10.0.1.9", "d5"),
        ("10.0.1.5", "d5"),
        ("10.0.3.0", "b10"),
        ("10.0.3.1", "b10"),
        ("10.0.6.0", "e-empty"),
        ("10.0.5.0", "z0"),
        ("10.0.4.0", "a-none"),
        ("10.0.4.1", "a-none"),
    ];
    for ((ips, pool), (w_ip, w_pool)) in got.iter().zip(want) {
        assert_eq!(
            (ips.as_slice(), pool.as_deref()),
            ([ip(w_ip)].as_slice(), Some(w_pool))
        );
    }
    let e = err(&mut a, &svc("default", "full"));
    assert!(
        e.starts_with("no free IPv4 address for default/full; pools tried: c5 ("),
        "{e}"
    );
}

#[test]
fn namespace_and_service_selectors_restrict_pools() {
    let mut by_name = pool("by-name", &["10.0.1.0/30"]);
    by_name.namespaces = vec!["team".into()];
    by_name.priority = Some(1);
    let mut by_ns_label = pool("by-ns-label", &["10.0.2.0/30"]);
    by_ns_label.namespace_selectors = vec![selector("tier", "gold")];
    by_ns_label.priority = Some(2);
    let mut by_svc_label = pool("by-svc-label", &["10.0.3.0/30"]);
    by_svc_label.service_selectors = vec![selector("expose", "yes")];
    by_svc_label.priority = Some(3);
    let mut a = Allocator::new(config(vec![by_name, by_ns_label, by_svc_label]));

    assert_eq!(alloc(&mut a, &svc("team", "x")), vec![ip("10.0.1.0")]);
    let mut gold = svc("other", "x");
    gold.namespace_labels = labels(&[("tier", "gold")]).into();
    assert_eq!(alloc(&mut a, &gold), vec![ip("10.0.2.0")]);
    let mut exposed = svc("other", "y");
    exposed.service_labels = labels(&[("expose", "yes")]);
    assert_eq!(alloc(&mut a, &exposed), vec![ip("10.0.3.0")]);
    let e = err(&mut a, &svc("other", "z"));
    assert!(
        e.starts_with("no pool with autoAssign admits other/z"),
        "{e}"
    );
}

#[test]
fn auto_assign_false_pools_only_on_request() {
    let mut manual = pool("manual", &["10.0.9.0/30"]);
    manual.auto_assign = false;
    let mut a = Allocator::new(config(vec![manual]));
    assert!(err(&mut a, &svc("d", "auto")).contains("no pool with autoAssign admits d/auto"));
    assert_eq!(
        alloc(&mut a, &svc("d", "by-pool").pool("manual")),
        vec![ip("10.0.9.0")]
    );
    assert_eq!(
        alloc(&mut a, &svc("d", "by-ip").ips(&["10.0.9.3"])),
        vec![ip("10.0.9.3")]
    );
}

#[test]
fn avoid_buggy_ips_skips_zero_and_255() {
    let mut p = pool("lan", &["10.0.0.254-10.0.1.1"]);
    p.avoid_buggy_ips = true;
    let mut a = Allocator::new(config(vec![p]));
    assert_eq!(alloc(&mut a, &svc("d", "a")), vec![ip("10.0.0.254")]);
    assert_eq!(alloc(&mut a, &svc("d", "b")), vec![ip("10.0.1.1")]);
    let e = err(&mut a, &svc("d", "c").ips(&["10.0.0.255"]));
    assert_eq!(
        e,
        "10.0.0.255 ends in .0 or .255 and pool lan has avoidBuggyIPs"
    );
    let usage = a.pool_usage("lan").expect("pool");
    assert_eq!(
        (usage.v4.size, usage.v4.assigned, usage.v4.available),
        (4, 2, 0)
    );
}

#[test]
fn requested_ip_outside_every_admitting_pool() {
    let mut b = pool("b", &["10.2.0.0/24"]);
    b.namespaces = vec!["elsewhere".into()];
    let mut a = Allocator::new(config(vec![pool("a", &["10.1.0.0/24"]), b]));
    let e = err(&mut a, &svc("default", "web").ips(&["10.0.0.5"]));
    assert_eq!(
        e,
        "10.0.0.5 (ferrolb.io/loadBalancerIPs) is not in any pool that admits default/web; \
         pools: a (10.1.0.0/24)"
    );
    // In a pool, but one that does not admit the Service.
    let e = err(&mut a, &svc("default", "web").ips(&["10.2.0.5"]));
    assert!(e.starts_with("10.2.0.5 (ferrolb.io/loadBalancerIPs) is not in any pool that admits"));
    // With a requested pool, the address must be in that pool.
    let e = err(
        &mut a,
        &svc("elsewhere", "web").ips(&["10.1.0.5"]).pool("b"),
    );
    assert_eq!(
        e,
        "10.1.0.5 (ferrolb.io/loadBalancerIPs) is not in pool b; pools: b (10.2.0.0/24)"
    );
    assert_eq!(
        alloc(
            &mut a,
            &svc("elsewhere", "web").ips(&["10.2.0.5"]).pool("b")
        ),
        vec![ip("10.2.0.5")]
    );
}

#[test]
fn requested_pool_unknown_or_not_admitting() {
    let mut b = pool("b", &["10.2.0.0/24"]);
    b.namespaces = vec!["elsewhere".into()];
    let mut a = Allocator::new(config(vec![pool("a", &["10.1.0.0/24"]), b]));
    let e = err(&mut a, &svc("default", "web").pool("nope"));
    assert_eq!(
        e,
        "annotation ferrolb.io/address-pool names pool nope, which does not exist; pools: \
         a (10.1.0.0/24), b (10.2.0.0/24)"
    );
    let e = err(&mut a, &svc("default", "web").pool("b"));
    assert!(
        e.starts_with("pool b (annotation ferrolb.io/address-pool) does not admit default/web"),
        "{e}"
    );
}

#[test]
fn ipv6_only_service_and_family_order() {
    let mut a = Allocator::new(config(vec![
        pool("v4", &["10.0.0.0/30"]),
        pool("dual", &["10.0.1.0/30", "fd00::/126"]),
    ]));
    let v6 = svc("d", "v6").families(IpFamilyPolicy::SingleStack, &[V6]);
    let out = a.allocate(&v6);
    assert_eq!(
        (out.ips, out.pool.as_deref()),
        (vec![ip("fd00::")], Some("dual"))
    );
    let dual = svc("d", "dual").families(IpFamilyPolicy::RequireDualStack, &[V6, V4]);
    assert_eq!(alloc(&mut a, &dual), vec![ip("fd00::1"), ip("10.0.1.0")]);
    let e = err(&mut a, &svc("d", "x").ips(&["fd00::2"]));
    assert_eq!(
        e,
        "ferrolb.io/loadBalancerIPs asks for fd00::2 (IPv6) but the Service is SingleStack IPv4"
    );
}

#[test]
fn prefer_dual_stack_takes_both_from_one_pool_else_first_family() {
    let mut v4 = pool("v4", &["10.0.0.0/30"]);
    v4.priority = Some(1);
    let mut a = Allocator::new(config(vec![v4.clone()]));
    let prefer = svc("d", "p").families(IpFamilyPolicy::PreferDualStack, &[V4, V6]);
    let out = a.allocate(&prefer);
    assert_eq!(
        (out.ips, out.pool.as_deref()),
        (vec![ip("10.0.0.0")], Some("v4"))
    );

    // A dual pool anywhere in the same tier wins for a fresh Service (MetalLB
    // allocator.go findBestPoolForService)…
    let mut dual = pool("dual", &["10.0.1.0/30", "fd00::/126"]);
    dual.priority = Some(2);
    let mut a = Allocator::new(config(vec![v4.clone(), dual]));
    assert_eq!(alloc(&mut a, &prefer), vec![ip("10.0.1.0"), ip("fd00::")]);
    // …and a single-stack one still gets the better pool.
    assert_eq!(alloc(&mut a, &svc("d", "single")), vec![ip("10.0.0.0")]);

    // A pool without serviceAllocation is only tried when no pool with one can serve the
    // Service at all (allocator.go Allocate): the pinned v4 pool's single address wins.
    let mut a = Allocator::new(config(vec![
        v4,
        pool("dual", &["10.0.1.0/30", "fd00::/126"]),
    ]));
    assert_eq!(alloc(&mut a, &prefer), vec![ip("10.0.0.0")]);
}

#[test]
fn require_dual_stack_fails_without_a_dual_pool() {
    let mut a = Allocator::new(config(vec![
        pool("v4", &["10.0.0.0/30"]),
        pool("v6", &["fd00::/126"]),
    ]));
    let req = svc("d", "r").families(IpFamilyPolicy::RequireDualStack, &[V4, V6]);
    let e = err(&mut a, &req);
    assert!(
        e.starts_with("ipFamilyPolicy RequireDualStack: no pool admitting d/r has free IPv4 and IPv6 addresses; pools tried: v4 (10.0.0.0/30), v6 (fd00::/126)"),
        "{e}"
    );
    let e = err(&mut a, &req.clone().ips(&["10.0.0.1"]));
    assert!(
        e.contains("RequireDualStack needs an IPv4 and an IPv6 address"),
        "{e}"
    );
    let e = err(&mut a, &req.ips(&["10.0.0.1", "fd00::1"]));
    assert!(
        e.contains("10.0.0.1 is in pool v4 but fd00::1 is in pool v6"),
        "{e}"
    );
}

fn shared_pool() -> Allocator {
    Allocator::new(config(vec![pool("lan", &["10.0.0.0/29"])]))
}

#[test]
fn sharing_accepted_same_key_disjoint_ports() {
    let mut a = shared_pool();
    let web = svc("default", "web")
        .key("k")
        .ports(&[ServicePort::tcp(80)]);
    let dns = svc("default", "dns")
        .key("k")
        .ports(&[ServicePort::udp(53), ServicePort::tcp(53)]);
    assert_eq!(alloc(&mut a, &web), vec![ip("10.0.0.0")]);
    // Automatic choice prefers the shared address over the free 10.0.0.1.
    assert_eq!(alloc(&mut a, &dns), vec![ip("10.0.0.0")]);
    assert_eq!(a.holders_of(&ip("10.0.0.0")).len(), 2);
    assert_eq!(a.pool_usage("lan").map(|u| u.v4.assigned), Some(1));
    // Both Local with the same selector share too.
    let l1 = svc("default", "l1")
        .key("j")
        .ports(&[ServicePort::tcp(80)])
        .local("app");
    let l2 = svc("default", "l2")
        .key("j")
        .ports(&[ServicePort::tcp(81)])
        .local("app");
    assert_eq!(alloc(&mut a, &l1), vec![ip("10.0.0.1")]);
    assert_eq!(alloc(&mut a, &l2), vec![ip("10.0.0.1")]);
}

#[test]
fn sharing_refused_names_the_holder_and_why() {
    let mut a = shared_pool();
    let web = svc("default", "web")
        .key("k")
        .ports(&[ServicePort::tcp(80)]);
    assert_eq!(alloc(&mut a, &web), vec![ip("10.0.0.0")]);

    let clash = svc("default", "clash")
        .key("k")
        .ports(&[ServicePort::tcp(80)]);
    let e = err(&mut a, &clash.clone().ips(&["10.0.0.0"]));
    assert_eq!(
        e,
        "10.0.0.0 is used by default/web and cannot be shared: ports TCP/80 collide"
    );
    // Without a requested address it simply gets a free one.
    assert_eq!(alloc(&mut a, &clash), vec![ip("10.0.0.1")]);

    let other_key = svc("default", "other")
        .key("j")
        .ports(&[ServicePort::tcp(81)])
        .ips(&["10.0.0.0"]);
    assert!(err(&mut a, &other_key).contains("sharing keys differ"));
    let no_key = svc("default", "nokey")
        .ports(&[ServicePort::tcp(81)])
        .ips(&["10.0.0.0"]);
    assert!(err(&mut a, &no_key).contains("has no ferrolb.io/allow-shared-ip"));

    let l1 = svc("default", "l1")
        .key("l")
        .ports(&[ServicePort::tcp(80)])
        .local("a");
    let l1_ip = alloc(&mut a, &l1);
    let l2 = svc("default", "l2")
        .key("l")
        .ports(&[ServicePort::tcp(81)])
        .local("b");
    let l2_ip = alloc(&mut a, &l2);
    assert_ne!(
        l1_ip, l2_ip,
        "Local Services with different selectors must not share"
    );
    let e = err(&mut a, &l2.clone().ips(&[&l1_ip[0].to_string()]));
    assert!(e.contains("selectors differ"), "{e}");
    let cluster = svc("default", "c").key("l").ports(&[ServicePort::tcp(82)]);
    let e = err(&mut a, &cluster.ips(&[&l1_ip[0].to_string()]));
    assert!(
        e.contains("externalTrafficPolicy differs (Cluster vs the holder's Local)"),
        "{e}"
    );
}

#[test]
fn sharing_change_that_breaks_compatibility_moves_the_changed_service() {
    let mut a = shared_pool();
    let web = svc("default", "web")
        .key("k")
        .ports(&[ServicePort::tcp(80)]);
    let api = svc("default", "api")
        .key("k")
        .ports(&[ServicePort::tcp(443)]);
    alloc(&mut a, &web);
    assert_eq!(alloc(&mut a, &api), vec![ip("10.0.0.0")]);
    let api_now_80 = api.ports(&[ServicePort::tcp(80)]);
    let out = a.allocate(&api_now_80);
    assert_eq!(out.ips, vec![ip("10.0.0.1")]);
    assert_eq!(
        out.released
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec!["10.0.0.0 is used by default/web and cannot be shared: ports TCP/80 collide"]
    );
    assert_eq!(a.ips_of(&web.key), &[ip("10.0.0.0")]);
}

#[test]
fn pool_shrunk_under_an_allocated_address() {
    let mut a = Allocator::new(config(vec![pool("lan", &["10.0.0.0/28"])]));
    let reqs: Vec<ServiceRequest> = (0..10).map(|i| svc("d", &format!("s{i}"))).collect();
    for r in &reqs {
        alloc(&mut a, r);
    }
    assert_eq!(a.ips_of(&reqs[9].key), &[ip("10.0.0.9")]);
    a.set_config(config(vec![pool("lan", &["10.0.0.0/29", "10.0.0.12/30"])]));
    let out = a.allocate(&reqs[9]);
    assert_eq!(out.ips, vec![ip("10.0.0.12")]);
    assert_eq!(out.released.len(), 1);
    assert_eq!(
        out.released[0].to_string(),
        "pool lan no longer contains 10.0.0.9"
    );
    assert!(out.pool_deleted.is_empty());
    assert!(out.changed());
    // Still-valid neighbours do not move.
    assert!(!a.allocate(&reqs[3]).changed());
}

#[test]
fn pool_deleted_is_reported_separately() {
    let mut a = Allocator::new(config(vec![
        pool("old", &["10.0.0.0/30"]),
        pool("new", &["10.0.1.0/30"]),
    ]));
    let r = svc("d", "s").pool("old");
    assert_eq!(alloc(&mut a, &r), vec![ip("10.0.0.0")]);
    a.set_config(config(vec![pool("new", &["10.0.1.0/30"])]));
    let out = a.allocate(&svc("d", "s"));
    assert_eq!(out.ips, vec![ip("10.0.1.0")]);
    assert_eq!(out.pool_deleted, vec![(ip("10.0.0.0"), "old".to_string())]);
    assert_eq!(
        out.released[0].to_string(),
        "pool old was deleted while 10.0.0.0 was in use"
    );
}

#[test]
fn config_change_keeps_still_valid_allocations() {
    let mut a = Allocator::new(config(vec![pool("lan", &["10.0.0.0/24"])]));
    let reqs: Vec<ServiceRequest> = (0..5).map(|i| svc("d", &format!("s{i}"))).collect();
    let before: Vec<Vec<IpAddr>> = reqs.iter().map(|r| alloc(&mut a, r)).collect();
    let mut better = pool("better", &["10.9.0.0/24"]);
    better.priority = Some(0);
    let mut lan = pool("lan", &["10.0.0.0/24"]);
    lan.auto_assign = false; // no longer automatic, but still valid for those who have it
    a.set_config(config(vec![lan, better]));
    for (r, b) in reqs.iter().zip(&before) {
        let out = a.allocate(r);
        assert_eq!(&out.ips, b);
        assert!(!out.changed(), "{out:?}");
    }
    assert_eq!(alloc(&mut a, &svc("d", "new")), vec![ip("10.9.0.0")]);
    assert_eq!(a.pool_usage("lan").map(|u| u.v4.assigned), Some(5));
}

#[test]
fn pool_annotation_change_moves_the_address() {
    let mut a = Allocator::new(config(vec![
        pool("a", &["10.0.0.0/30"]),
        pool("b", &["10.0.1.0/30"]),
    ]));
    assert_eq!(alloc(&mut a, &svc("d", "s")), vec![ip("10.0.0.0")]);
    let out = a.allocate(&svc("d", "s").pool("b"));
    assert_eq!(out.ips, vec![ip("10.0.1.0")]);
    assert_eq!(
        out.released[0].to_string(),
        "annotation ferrolb.io/address-pool changed to b, which does not contain 10.0.0.0"
    );
    let out = a.allocate(&svc("d", "s").pool("b").ips(&["10.0.1.2"]));
    assert_eq!(out.ips, vec![ip("10.0.1.2")]);
    assert_eq!(
        out.released[0].to_string(),
        "ferrolb.io/loadBalancerIPs no longer lists 10.0.1.0"
    );
}

#[test]
fn serviceallocation_change_releases_with_reason() {
    let mut a = Allocator::new(config(vec![
        pool("a", &["10.0.0.0/30"]),
        pool("b", &["10.0.1.0/30"]),
    ]));
    assert_eq!(alloc(&mut a, &svc("d", "s")), vec![ip("10.0.0.0")]);
    let mut restricted = pool("a", &["10.0.0.0/30"]);
    restricted.namespaces = vec!["other".into()];
    a.set_config(config(vec![restricted, pool("b", &["10.0.1.0/30"])]));
    let out = a.allocate(&svc("d", "s"));
    assert_eq!(out.ips, vec![ip("10.0.1.0")]);
    assert!(
        out.released[0]
            .to_string()
            .starts_with("pool a no longer admits d/s")
    );
    let mut buggy = pool("b", &["10.0.1.0/30"]);
    buggy.avoid_buggy_ips = true;
    a.set_config(config(vec![buggy]));
    let out = a.allocate(&svc("d", "s"));
    assert_eq!(out.ips, vec![ip("10.0.1.1")]);
    assert_eq!(
        out.released[0].to_string(),
        "10.0.1.0 ends in .0 or .255 and pool b now has avoidBuggyIPs"
    );
}

#[test]
fn family_policy_changes_add_and_drop_addresses() {
    let mut a = Allocator::new(config(vec![pool("dual", &["10.0.0.0/30", "fd00::/126"])]));
    assert_eq!(alloc(&mut a, &svc("d", "s")), vec![ip("10.0.0.0")]);
    let prefer = svc("d", "s").families(IpFamilyPolicy::PreferDualStack, &[V4, V6]);
    let out = a.allocate(&prefer);
    assert_eq!(
        (out.ips, out.added),
        (vec![ip("10.0.0.0"), ip("fd00::")], vec![ip("fd00::")])
    );
    let out = a.allocate(&svc("d", "s").families(IpFamilyPolicy::SingleStack, &[V6]));
    assert_eq!(out.ips, vec![ip("fd00::")]);
    assert_eq!(
        out.released[0].to_string(),
        "10.0.0.0 is IPv4 but the Service is SingleStack IPv6"
    );
}

#[test]
fn release_keeps_shared_addresses_while_a_holder_remains() {
    let mut a = shared_pool();
    let web = svc("default", "web")
        .key("k")
        .ports(&[ServicePort::tcp(80)]);
    let api = svc("default", "api")
        .key("k")
        .ports(&[ServicePort::tcp(443)]);
    alloc(&mut a, &web);
    alloc(&mut a, &api);
    assert_eq!(a.release(&web.key), Vec::<IpAddr>::new());
    assert_eq!(alloc(&mut a, &svc("d", "x")), vec![ip("10.0.0.1")]);
    assert_eq!(a.release(&api.key), vec![ip("10.0.0.0")]);
    assert_eq!(a.ips_of(&api.key), &[] as &[IpAddr]);
    assert_eq!(alloc(&mut a, &svc("d", "y")), vec![ip("10.0.0.0")]);
    assert_eq!(
        a.pool_usage("lan").map(|u| (u.v4.assigned, u.v4.available)),
        Some((2, 6))
    );
}

#[test]
fn restore_records_out_of_pool_addresses_as_held() {
    let mut a = Allocator::new(config(vec![pool("lan", &["10.0.0.0/30"])]));
    let metallb = svc("d", "old").current(&[ip("192.168.1.1")]);
    assert!(a.restore([metallb.clone()]).is_empty());
    assert_eq!(a.holders_of(&ip("192.168.1.1")), vec![metallb.key.clone()]);
    // A pool that now contains it cannot give it to anyone else.
    a.set_config(config(vec![
        pool("lan", &["10.0.0.0/30"]),
        pool("more", &["192.168.1.1-192.168.1.2"]),
    ]));
    assert_eq!(a.pool_usage("more").map(|u| u.v4.assigned), Some(1));
    let mut other = svc("d", "new").pool("more");
    assert_eq!(alloc(&mut a, &other), vec![ip("192.168.1.2")]);
    // Without that pool, the Service itself is told its address is in no pool and moves.
    a.set_config(config(vec![pool("lan", &["10.0.0.0/30"])]));
    let out = a.allocate(&metallb);
    assert_eq!(out.ips, vec![ip("10.0.0.0")]);
    assert_eq!(
        out.released[0].to_string(),
        "192.168.1.1 is not in any pool"
    );
    other.requested_pool = None;
    assert!(
        a.allocate(&other).released[0]
            .to_string()
            .contains("192.168.1.2")
    );
}

#[test]
fn restore_conflict_first_key_keeps_the_address() {
    let mut a = shared_pool();
    let b = svc("d", "b").current(&[ip("10.0.0.3")]);
    let x = svc("d", "a").current(&[ip("10.0.0.3")]);
    let conflicts = a.restore([b.clone(), x.clone()]);
    assert_eq!(conflicts.len(), 1);
    assert_eq!(
        (
            conflicts[0].service.name.as_str(),
            conflicts[0].holder.name.as_str()
        ),
        ("b", "a")
    );
    assert!(!a.allocate(&x).changed());
    let out = a.allocate(&b);
    assert_eq!(out.ips, vec![ip("10.0.0.0")]);
    assert_eq!(
        out.released[0].to_string(),
        "10.0.0.3 is used by d/a and cannot be shared: the Service has no ferrolb.io/allow-shared-ip annotation"
    );
}

#[test]
fn allocate_adopts_status_of_unknown_service() {
    let mut a = shared_pool();
    let out = a.allocate(&svc("d", "s").current(&[ip("10.0.0.5")]));
    assert_eq!(out.ips, vec![ip("10.0.0.5")]);
    assert!(!out.changed());
}

/// 1,000 Services of mixed shapes; restoring their statuses into a fresh allocator and
/// reconciling them all (in another order) moves nothing.
#[test]
fn restore_of_1000_services_moves_zero_ips() {
    let mut p1 = pool("dual", &["10.10.0.0/22", "fd00:10::/118"]);
    p1.priority = Some(1);
    p1.avoid_buggy_ips = true;
    let mut p2 = pool("team", &["10.20.0.0/22"]);
    p2.namespaces = vec!["team".into()];
    p2.priority = Some(0);
    let cfg = config(vec![p1, p2, pool("v6", &["fd00:20::/64"])]);
    let mut a = Allocator::new(cfg.clone());
    let mut reqs: Vec<ServiceRequest> = (0..1000)
        .map(|i| {
            let ns = if i % 3 == 0 { "team" } else { "default" };
            let mut r = svc(ns, &format!("s{i}")).ports(&[ServicePort::tcp(8000 + (i % 7) as u16)]);
            if i % 5 == 0 {
                r = r.key("shared");
            }
            match i % 4 {
                1 => r.families(IpFamilyPolicy::PreferDualStack, &[V4, V6]),
                2 => r.families(IpFamilyPolicy::SingleStack, &[V6]),
                _ => r,
            }
        })
        .collect();
    for r in &mut reqs {
        let out = a.allocate(r);
        assert!(out.error.is_none(), "{:?}", out.error);
        r.current = out.ips;
    }
    let mut b = Allocator::new(cfg);
    assert!(b.restore(reqs.iter().rev().cloned()).is_empty());
    for r in reqs.iter().rev() {
        let out = b.allocate(r);
        assert_eq!(out.ips, r.current, "{}", r.key);
        assert!(!out.changed(), "{}: {out:?}", r.key);
    }
    assert_eq!(a.usage(), b.usage());
    assert_eq!(a.allocations(), b.allocations());
}

#[test]
fn usage_counts_saturate_for_large_ipv6_pools() {
    let mut a = Allocator::new(config(vec![pool("big", &["fd00::/64", "10.0.0.0/24"])]));
    alloc(
        &mut a,
        &svc("d", "s").families(IpFamilyPolicy::SingleStack, &[V6]),
    );
    let u = a.pool_usage("big").expect("pool");
    assert_eq!(u.v6.size, 1u128 << 64);
    assert_eq!(u.v6.available, (1u128 << 64) - 1);
    assert_eq!(u.v6.available_u64(), u64::MAX);
    alloc(
        &mut a,
        &svc("d", "t").families(IpFamilyPolicy::SingleStack, &[V6]),
    );
    let u = a.pool_usage("big").expect("pool");
    assert_eq!(
        (u.v6.assigned_u64(), u.v6.available_u64()),
        (2, u64::MAX - 1)
    );
    assert_eq!((u.v4.assigned, u.v4.available), (0, 256));
    let mut a = Allocator::new(config(vec![pool("huge", &["fd00::/32"])]));
    alloc(
        &mut a,
        &svc("d", "s").families(IpFamilyPolicy::SingleStack, &[V6]),
    );
    let st = a.usage_status();
    assert_eq!((st[0].assigned_ipv6, st[0].available_ipv6), (1, u64::MAX));
}

#[test]
fn allocations_list_reports_errors() {
    let mut a = shared_pool();
    alloc(&mut a, &svc("d", "ok").key("k"));
    err(&mut a, &svc("d", "bad").pool("nope"));
    let list = a.allocations();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].name, "bad");
    assert!(list[0].error.as_deref().is_some_and(|e| e.contains("nope")));
    assert_eq!(
        (list[1].ips.clone(), list[1].sharing_key.as_deref()),
        (vec![ip("10.0.0.0")], Some("k"))
    );
}

/// MetalLB controller/service.go convergeBalancer: an address pair its pool no longer holds
/// fails `Assign`, the Service is cleared and gets a new pair from the best pool with room
/// (allocator.go findBestPoolForService). ferrolb does the same for both dual-stack policies;
/// without any pool that has a pair, PreferDualStack keeps the address it still has.
#[test]
fn dual_stack_service_whose_pool_loses_a_family_moves_to_a_pair() {
    let a_both = pool("a", &["10.0.0.0/30", "fd00::/126"]);
    let b_both = pool("b", &["10.0.1.0/30", "fd00:1::/126"]);
    for policy in [
        IpFamilyPolicy::PreferDualStack,
        IpFamilyPolicy::RequireDualStack,
    ] {
        let req = svc("d", "s").families(policy, &[V4, V6]);
        let mut a = Allocator::new(config(vec![a_both.clone(), b_both.clone()]));
        assert_eq!(alloc(&mut a, &req), vec![ip("10.0.0.0"), ip("fd00::")]);
        a.set_config(config(vec![pool("a", &["10.0.0.0/30"]), b_both.clone()]));
        let out = a.allocate(&req);
        assert_eq!(out.ips, vec![ip("10.0.1.0"), ip("fd00:1::")], "{policy}");
        assert_eq!(out.pool.as_deref(), Some("b"));
        let why: Vec<String> = out.released.iter().map(ToString::to_string).collect();
        assert_eq!(
            why,
            [
                "pool a no longer contains fd00::".to_string(),
                format!(
                    "ipFamilyPolicy {policy}: pool a has no free IPv6 address to pair with \
                     10.0.0.0"
                ),
            ]
        );
    }

    // No pool with a pair: PreferDualStack keeps its IPv4 address; RequireDualStack fails.
    let mut a = Allocator::new(config(vec![a_both.clone()]));
    let prefer = svc("d", "p").families(IpFamilyPolicy::PreferDualStack, &[V4, V6]);
    assert_eq!(alloc(&mut a, &prefer), vec![ip("10.0.0.0"), ip("fd00::")]);
    a.set_config(config(vec![pool("a", &["10.0.0.0/30"])]));
    assert_eq!(alloc(&mut a, &prefer), vec![ip("10.0.0.0")]);
    let mut a = Allocator::new(config(vec![a_both]));
    let require = svc("d", "r").families(IpFamilyPolicy::RequireDualStack, &[V4, V6]);
    assert_eq!(alloc(&mut a, &require), vec![ip("10.0.0.0"), ip("fd00::")]);
    a.set_config(config(vec![pool("a", &["10.0.0.0/30"])]));
    assert!(err(&mut a, &require).starts_with("ipFamilyPolicy RequireDualStack: no pool"));
}
