//! IPAddressPools: address ranges, unique names, no overlaps, serviceAllocation namespaces and
//! selectors without duplicates.

use super::{Ctx, Obj, kinds, selectors};
use crate::address::{self, parse_address_range};
use crate::model::{AddressRange, Pool};
use std::collections::BTreeMap;

pub fn build(ctx: &mut Ctx, inputs: &[ferrolb_api::IPAddressPool]) -> BTreeMap<String, Pool> {
    let objs: Vec<Obj<'_>> = inputs
        .iter()
        .map(|p| Obj::new(kinds::POOL, &p.metadata))
        .collect();
    let keep = ctx.check_names(
        &objs,
        true,
        "pools are referenced by name only, so names must be unique across all namespaces",
    );
    let mut pools = Vec::new();
    for ((input, obj), keep) in inputs.iter().zip(&objs).zip(keep) {
        let built = build_one(ctx, obj, input);
        if keep {
            pools.push(built);
        }
    }
    check_overlaps(ctx, &pools);
    pools
        .into_iter()
        .map(|b| (b.pool.name.clone(), b.pool))
        .collect()
}

/// A pool and, for each of its parsed ranges, the index of its entry in `spec.addresses`
/// (entries that failed to parse have no range).
struct Built<'a> {
    obj: Obj<'a>,
    pool: Pool,
    positions: Vec<usize>,
}

fn build_one<'a>(ctx: &mut Ctx, obj: &Obj<'a>, input: &ferrolb_api::IPAddressPool) -> Built<'a> {
    let spec = &input.spec;
    if spec.addresses.is_empty() {
        ctx.error(
            obj,
            "spec.addresses",
            format!("is empty; list at least one entry: {}", address::ACCEPTED),
        );
    }
    let mut ranges = Vec::with_capacity(spec.addresses.len());
    let mut positions = Vec::with_capacity(spec.addresses.len());
    for (i, text) in spec.addresses.iter().enumerate() {
        match parse_address_range(text) {
            Ok(parsed) => {
                if let Some(warning) = parsed.warning {
                    ctx.warn(obj, &format!("spec.addresses[{i}]"), warning);
                }
                ranges.push(parsed.range);
                positions.push(i);
            }
            Err(message) => ctx.error(obj, &format!("spec.addresses[{i}]"), message),
        }
    }
    let alloc = spec.service_allocation.clone().unwrap_or_default();
    super::report_duplicates(
        ctx,
        obj,
        "spec.serviceAllocation.namespaces",
        &alloc.namespaces,
    );
    let namespace_selectors = selectors::parse_list(
        ctx,
        obj,
        "spec.serviceAllocation.namespaceSelectors",
        &alloc.namespace_selectors,
    );
    let service_selectors = selectors::parse_list(
        ctx,
        obj,
        "spec.serviceAllocation.serviceSelectors",
        &alloc.service_selectors,
    );
    let pool = Pool {
        namespace: obj.namespace.to_string(),
        name: obj.name.to_string(),
        labels: input.metadata.labels.clone().unwrap_or_default(),
        ranges,
        auto_assign: spec.auto_assign,
        avoid_buggy_ips: spec.avoid_buggy_ips,
        service_allocation: spec.service_allocation.is_some(),
        priority: alloc.priority,
        namespaces: alloc.namespaces,
        namespace_selectors,
        service_selectors,
    };
    Built {
        obj: *obj,
        pool,
        positions,
    }
}

/// Most overlapping pairs reported. Pairs can grow with the square of the entries (a million
/// copies of one CIDR); past this many, one more error says the list stops, so the work and
/// the report stay bounded while the configuration is still rejected.
pub const MAX_REPORTED_OVERLAPS: usize = 100;

/// Reports every pair of overlapping entries, within a pool or across pools, once, on the
/// later entry, up to [`MAX_REPORTED_OVERLAPS`]. Sorting by start makes this
/// O(n log n + reported pairs).
fn check_overlaps(ctx: &mut Ctx, pools: &[Built<'_>]) {
    // (pool index, entry index as written in spec.addresses, range)
    let mut entries: Vec<(usize, usize, &AddressRange)> = Vec::new();
    for (pi, built) in pools.iter().enumerate() {
        for (r, ei) in built.pool.ranges.iter().zip(&built.positions) {
            entries.push((pi, *ei, r));
        }
    }
    report_pairs(ctx, pools, entries);
}

fn report_pairs(
    ctx: &mut Ctx,
    pools: &[Built<'_>],
    mut entries: Vec<(usize, usize, &AddressRange)>,
) {
    entries.sort_by_key(|(pi, ei, r)| (r.family(), r.start(), *pi, *ei));
    let mut reported = 0usize;
    for (i, (pa, ea, ra)) in entries.iter().enumerate() {
        for (pb, eb, rb) in &entries[i + 1..] {
            if rb.family() != ra.family() || rb.start() > ra.end() {
                break;
            }
            if reported == MAX_REPORTED_OVERLAPS {
                let (p, e) = (*pb, *eb);
                ctx.error(
                    &pools[p].obj,
                    &format!("spec.addresses[{e}]"),
                    format!(
                        "{:?} overlaps another entry, and so do more entries: only the first \
                         {MAX_REPORTED_OVERLAPS} overlapping pairs are listed; an address may \
                         belong to one pool entry only",
                        rb.text
                    ),
                );
                return;
            }
            reported += 1;
            // Report on the object that comes later in input order, naming the earlier one.
            let ((p1, e1, r1), (p2, e2, r2)) = if (pa, ea) <= (pb, eb) {
                ((pa, ea, ra), (pb, eb, rb))
            } else {
                ((pb, eb, rb), (pa, ea, ra))
            };
            let common = address::describe(
                r1.start().max(r2.start()),
                r1.end().min(r2.end()),
                r1.family(),
            );
            let obj2 = &pools[*p2].obj;
            let other = if p1 == p2 {
                format!("spec.addresses[{e1}] {:?} of the same pool", r1.text)
            } else {
                format!(
                    "{:?} (spec.addresses[{e1}]) of {}",
                    r1.text,
                    pools[*p1].obj.describe()
                )
            };
            ctx.error(
                obj2,
                &format!("spec.addresses[{e2}]"),
                format!(
                    "{:?} overlaps {other} in {common}; an address may belong to one pool entry only",
                    r2.text
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::{Config, Inputs};
    use proptest::prelude::*;

    #[test]
    fn bad_entries_are_all_reported_with_their_index() {
        let inputs = Inputs {
            pools: vec![pool(
                "p",
                &[
                    " 10.0.0.0/24",
                    "bogus",
                    "10.0.1.9-10.0.1.1",
                    "10.0.2.1-fd00::1",
                ],
            )],
            ..Default::default()
        };
        let lines = lines(&inputs);
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert_eq!(
            lines[0],
            "IPAddressPool ferrolb-system/p: spec.addresses[0]: \" 10.0.0.0/24\" has leading or \
             trailing spaces; a CIDR is read without them (MetalLB rejects them too): write \
             \"10.0.0.0/24\""
        );
        assert!(lines[1].starts_with(
            "IPAddressPool ferrolb-system/p: spec.addresses[1]: \"bogus\" is neither a CIDR nor a \
             range; expected a CIDR such as 192.168.10.0/24"
        ));
        assert_eq!(
            lines[2],
            "IPAddressPool ferrolb-system/p: spec.addresses[2]: \"10.0.1.9-10.0.1.1\": start \
             10.0.1.9 is after end 10.0.1.1; write the range as 10.0.1.1-10.0.1.9"
        );
        assert_eq!(
            lines[3],
            "IPAddressPool ferrolb-system/p: spec.addresses[3]: \"10.0.2.1-fd00::1\" mixes an IPv4 \
             start and an IPv6 end; a range must be of one family"
        );
    }

    /// MetalLB reads 10.20.30.40/24 as 10.20.30.0/24 (TestParse "bad aggregation length
    /// (incompatible with CIDR)"): accepted, with a warning, and overlaps are checked on the
    /// network.
    #[test]
    fn host_bits_are_a_warning_and_the_network_counts() {
        let inputs = Inputs {
            pools: vec![pool("p", &["10.20.30.40/24"])],
            ..Default::default()
        };
        let config = Config::build(&inputs).expect("host bits are not an error");
        assert_eq!(config.pools["p"].size(crate::IpFamily::V4), 256);
        assert_eq!(
            config.warnings[0].to_string(),
            "IPAddressPool ferrolb-system/p: spec.addresses[0]: \"10.20.30.40/24\" has host bits \
             set, so it means 10.20.30.0/24 (all 256 addresses of it, as MetalLB reads it); write \
             10.20.30.0/24, or 10.20.30.40/32 for just this address"
        );
        let overlapping = Inputs {
            pools: vec![
                pool("p", &["10.20.30.40/24"]),
                pool("q", &["10.20.30.1/32"]),
            ],
            ..Default::default()
        };
        assert!(lines(&overlapping)[0].contains("overlaps"));
    }

    /// MetalLB internal/config/config.go addressPoolServiceAllocationsFromCR: "duplicate
    /// definition in namespaces field" (TestParse "ip address pool with duplicate namespace
    /// selection").
    #[test]
    fn service_allocation_namespaces_are_listed_once() {
        let mut p = pool("a", &["10.0.0.0/24"]);
        p.spec.service_allocation = Some(ferrolb_api::ServiceAllocation {
            namespaces: vec!["ns1".into(), "ns2".into(), "ns1".into()],
            ..Default::default()
        });
        assert_eq!(
            lines(&Inputs {
                pools: vec![p],
                ..Default::default()
            }),
            vec![
                "IPAddressPool ferrolb-system/a: spec.serviceAllocation.namespaces[2]: \"ns1\" is \
                 listed twice (also spec.serviceAllocation.namespaces[0]); list each entry once"
            ]
        );
    }

    #[test]
    fn empty_addresses_are_rejected() {
        let inputs = Inputs {
            pools: vec![pool("p", &[])],
            ..Default::default()
        };
        let lines = lines(&inputs);
        assert!(
            lines[0].starts_with(
                "IPAddressPool ferrolb-system/p: spec.addresses: is empty; list at least one entry: a CIDR"
            ),
            "{lines:#?}"
        );
    }

    #[test]
    fn overlapping_pools_name_both_and_the_common_range() {
        let inputs = Inputs {
            pools: vec![
                pool("a", &["10.0.0.0/24"]),
                pool("b", &["192.168.0.0/24", "10.0.0.200-10.0.1.5"]),
            ],
            ..Default::default()
        };
        assert_eq!(
            lines(&inputs),
            vec![
                "IPAddressPool ferrolb-system/b: spec.addresses[1]: \"10.0.0.200-10.0.1.5\" overlaps \
                 \"10.0.0.0/24\" (spec.addresses[0]) of IPAddressPool ferrolb-system/a in \
                 10.0.0.200-10.0.0.255; an address may belong to one pool entry only"
                    .to_string()
            ]
        );
    }

    #[test]
    fn overlap_inside_one_pool() {
        let inputs = Inputs {
            pools: vec![pool("a", &["10.0.0.0/24", "10.0.0.7/32"])],
            ..Default::default()
        };
        has(
            &lines(&inputs),
            "IPAddressPool ferrolb-system/a: spec.addresses[1]: \"10.0.0.7/32\" overlaps \
             spec.addresses[0] \"10.0.0.0/24\" of the same pool in 10.0.0.7; an address may \
             belong to one pool entry only",
        );
    }

    #[test]
    fn duplicate_names_across_namespaces() {
        let mut other = pool("a", &["10.0.1.0/24"]);
        other.metadata.namespace = Some("other".into());
        let inputs = Inputs {
            pools: vec![pool("a", &["10.0.0.0/24"]), other],
            ..Default::default()
        };
        assert_eq!(
            lines(&inputs),
            vec![
                "IPAddressPool other/a: metadata.name: \"a\" is already used by IPAddressPool \
                 ferrolb-system/a; pools are referenced by name only, so names must be unique \
                 across all namespaces"
                    .to_string()
            ]
        );
    }

    #[test]
    fn bad_service_allocation_selector_has_its_path() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
            LabelSelector, LabelSelectorRequirement,
        };
        let mut p = pool("a", &["10.0.0.0/24"]);
        p.spec.service_allocation = Some(ferrolb_api::ServiceAllocation {
            service_selectors: vec![LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "app".into(),
                    operator: "Equals".into(),
                    values: Some(vec!["x".into()]),
                }]),
                match_labels: None,
            }],
            ..Default::default()
        });
        has(
            &lines(&Inputs {
                pools: vec![p],
                ..Default::default()
            }),
            "IPAddressPool ferrolb-system/a: spec.serviceAllocation.serviceSelectors[0].\
             matchExpressions[0].operator: unknown operator \"Equals\"; accepted: In, NotIn, \
             Exists, DoesNotExist",
        );
    }

    #[test]
    fn valid_pools_are_normalized() {
        let inputs = Inputs {
            pools: vec![
                pool("a", &["10.0.0.0/24", "fd00::/120"]),
                pool("b", &["10.0.1.0-10.0.1.9"]),
            ],
            ..Default::default()
        };
        let config = Config::build(&inputs).expect("valid");
        assert_eq!(config.pools["a"].size(crate::IpFamily::V4), 256);
        assert_eq!(config.pools["a"].size(crate::IpFamily::V6), 256);
        assert_eq!(config.pools["b"].ranges[0].size(), 10);
    }

    proptest! {
        /// Overlap errors agree with a brute-force check over small ranges.
        #[test]
        fn overlap_detection_matches_brute_force(
            ranges in prop::collection::vec((0u8..40, 0u8..8), 1..6)
        ) {
            let texts: Vec<String> = ranges
                .iter()
                .map(|(s, len)| format!("10.0.0.{s}-10.0.0.{}", s + len))
                .collect();
            let pools: Vec<_> = texts.iter().enumerate()
                .map(|(i, t)| pool(&format!("p{i}"), &[t.as_str()]))
                .collect();
            let mut expected = 0;
            for i in 0..ranges.len() {
                for j in i + 1..ranges.len() {
                    let a: std::collections::BTreeSet<u8> = (ranges[i].0..=ranges[i].0 + ranges[i].1).collect();
                    let b: std::collections::BTreeSet<u8> = (ranges[j].0..=ranges[j].0 + ranges[j].1).collect();
                    if !a.is_disjoint(&b) { expected += 1; }
                }
            }
            let found = match Config::build(&Inputs { pools, ..Default::default() }) {
                Ok(_) => 0,
                Err(e) => e.iter().filter(|e| e.message.contains("overlaps")).count(),
            };
            prop_assert_eq!(found, expected);
        }
    }
}
