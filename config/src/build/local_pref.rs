//! BGPAdvertisements that send the same route must agree on its LOCAL_PREF, as MetalLB's
//! `BGPAdvertisementsHaveCompatibleLocalPref` (internal/config/config.go) requires: a route
//! carries one LOCAL_PREF, so two advertisements of one pool with different values would
//! leave the value to chance.
//!
//! Two advertisements cannot send the same route when their aggregation lengths differ for the
//! pool's families, when both name peers and no peer is in both lists, or when their
//! nodeSelectors share no node. MetalLB decides the last from the Nodes of the cluster; the
//! configuration here has no Nodes, so selectors that provably share no node are fine, selectors
//! that certainly share every node they select (one selects every node, or both are the same)
//! are an error, and selectors that may or may not share a node get a warning.

use super::{Ctx, Obj, kinds, selectors};
use crate::model::{BgpAdvertisement, IpFamily, Pool};
use std::collections::BTreeMap;

pub fn check(ctx: &mut Ctx, pools: &BTreeMap<String, Pool>, advs: &[BgpAdvertisement]) {
    for (j, later) in advs.iter().enumerate() {
        for earlier in &advs[..j] {
            check_pair(ctx, pools, earlier, later);
        }
    }
}

fn check_pair(
    ctx: &mut Ctx,
    pools: &BTreeMap<String, Pool>,
    earlier: &BgpAdvertisement,
    later: &BgpAdvertisement,
) {
    // MetalLB's BGPAdvertisement has 0 for "not set".
    let (a, b) = (
        earlier.local_pref.unwrap_or(0),
        later.local_pref.unwrap_or(0),
    );
    if a == b {
        return;
    }
    if !earlier.peers.is_empty()
        && !later.peers.is_empty()
        && !earlier.peers.iter().any(|p| later.peers.contains(p))
    {
        return;
    }
    let Some(pool) = earlier
        .pools
        .iter()
        .filter(|p| later.pools.contains(p))
        .filter_map(|p| pools.get(p))
        .find(|pool| !aggregation_differs(earlier, later, pool))
    else {
        return;
    };
    let certainly_shared = earlier.node_selectors.is_empty()
        || later.node_selectors.is_empty()
        || earlier.node_selectors == later.node_selectors;
    let obj = Obj {
        kind: kinds::BGP_ADV,
        namespace: &later.namespace,
        name: &later.name,
    };
    let other = Obj {
        kind: kinds::BGP_ADV,
        namespace: &earlier.namespace,
        name: &earlier.name,
    }
    .describe();
    let shown = |v: Option<u32>| v.map_or_else(|| "unset".to_string(), |v| v.to_string());
    let what = format!(
        "localPref {} differs from {} ({other}), which advertises the same routes of \
         IPAddressPool {} with the same aggregation lengths",
        shown(later.local_pref),
        shown(earlier.local_pref),
        pool.name
    );
    if certainly_shared {
        ctx.error(
            &obj,
            "spec.localPref",
            format!(
                "{what} to the same peers from the same nodes; a route has one LOCAL_PREF: use \
                 the same localPref, or make the peers, nodeSelectors or aggregation lengths differ"
            ),
        );
    } else if selectors::lists_may_overlap(&earlier.node_selectors, &later.node_selectors) {
        ctx.warn(
            &obj,
            "spec.localPref",
            format!(
                "{what} to the same peers; on a node that both nodeSelectors select, which \
                 LOCAL_PREF is sent is undefined (MetalLB rejects this when such a node exists)"
            ),
        );
    }
}

/// MetalLB's `isAggrLengthDifferent`: the routes differ when the aggregation length of every
/// family the pool has differs.
fn aggregation_differs(a: &BgpAdvertisement, b: &BgpAdvertisement, pool: &Pool) -> bool {
    let (v4, v6) = (pool.has_family(IpFamily::V4), pool.has_family(IpFamily::V6));
    let differs4 = a.aggregation_length != b.aggregation_length;
    let differs6 = a.aggregation_length_v6 != b.aggregation_length_v6;
    match (v4, v6) {
        (false, false) => true,
        (true, false) => differs4,
        (false, true) => differs6,
        (true, true) => differs4 && differs6,
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::{Config, Inputs};
    use ferrolb_api::{BGPAdvertisement, BGPAdvertisementSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use std::collections::BTreeMap;

    fn adv(name: &str, spec: BGPAdvertisementSpec) -> BGPAdvertisement {
        BGPAdvertisement {
            metadata: meta(name),
            spec,
        }
    }

    fn pref(v: u32) -> BGPAdvertisementSpec {
        BGPAdvertisementSpec {
            local_pref: Some(v),
            ..Default::default()
        }
    }

    fn on(label: (&str, &str)) -> Vec<LabelSelector> {
        vec![LabelSelector {
            match_labels: Some(BTreeMap::from([(label.0.into(), label.1.into())])),
            match_expressions: None,
        }]
    }

    fn inputs(a: BGPAdvertisementSpec, b: BGPAdvertisementSpec) -> Inputs {
        Inputs {
            pools: vec![pool("pool1", &["10.20.30.0/24"])],
            bgp_advertisements: vec![adv("a1", a), adv("a2", b)],
            ..Default::default()
        }
    }

    /// MetalLB TestParse "different local pref - same peers and nodes".
    #[test]
    fn different_local_pref_for_the_same_routes_is_an_error() {
        assert_eq!(
            lines(&inputs(pref(100), pref(200))),
            vec![
                "BGPAdvertisement ferrolb-system/a2: spec.localPref: localPref 200 differs from 100 \
                 (BGPAdvertisement ferrolb-system/a1), which advertises the same routes of \
                 IPAddressPool pool1 with the same aggregation lengths to the same peers from the \
                 same nodes; a route has one LOCAL_PREF: use the same localPref, or make the \
                 peers, nodeSelectors or aggregation lengths differ"
            ]
        );
        // MetalLB's 0 is "unset": unset against 100 conflicts too.
        assert_eq!(
            lines(&inputs(BGPAdvertisementSpec::default(), pref(100))).len(),
            1
        );
    }

    /// MetalLB TestParse "different local pref - different ipv4 aggregation length", "…
    /// different aggregation lengths", "… same peers & different nodes", "… different peers &
    /// same nodes".
    #[test]
    fn routes_that_cannot_be_the_same_may_differ() {
        let mut agg = pref(100);
        agg.aggregation_length = Some(24);
        assert!(Config::build(&inputs(agg, pref(200))).is_ok());

        let (mut n1, mut n2) = (pref(100), pref(200));
        n1.node_selectors = on(("node", "node1"));
        n2.node_selectors = on(("node", "node2"));
        let config = Config::build(&inputs(n1, n2)).expect("disjoint nodes");
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);

        let (mut p1, mut p2) = (pref(100), pref(200));
        p1.peers = vec!["peer1".into()];
        p2.peers = vec!["peer2".into()];
        assert!(Config::build(&inputs(p1, p2)).is_ok());
    }

    /// A dual-stack pool: only both lengths differing makes the routes differ (MetalLB
    /// isAggrLengthDifferent).
    #[test]
    fn dual_stack_pools_need_both_lengths_to_differ() {
        let dual = |a: BGPAdvertisementSpec, b: BGPAdvertisementSpec| {
            let mut i = inputs(a, b);
            i.pools = vec![pool("pool1", &["10.20.30.0/24", "fd00::/120"])];
            i
        };
        let mut v4_only = pref(100);
        v4_only.aggregation_length = Some(24);
        assert!(Config::build(&dual(v4_only.clone(), pref(200))).is_err());
        let mut both = v4_only;
        both.aggregation_length_v6 = Some(120);
        assert!(Config::build(&dual(both, pref(200))).is_ok());
    }

    /// Selectors on different labels may or may not share a node: MetalLB decides from the
    /// cluster's Nodes, ferrolb has none here, so it warns.
    #[test]
    fn selectors_that_may_share_a_node_warn() {
        let (mut a, mut b) = (pref(100), pref(200));
        a.node_selectors = on(("zone", "a"));
        b.node_selectors = on(("rack", "7"));
        let config = Config::build(&inputs(a, b)).expect("a warning only");
        assert_eq!(
            config
                .warnings
                .iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>(),
            vec![
                "BGPAdvertisement ferrolb-system/a2: spec.localPref: localPref 200 differs from 100 \
                 (BGPAdvertisement ferrolb-system/a1), which advertises the same routes of \
                 IPAddressPool pool1 with the same aggregation lengths to the same peers; on a \
                 node that both nodeSelectors select, which LOCAL_PREF is sent is undefined \
                 (MetalLB rejects this when such a node exists)"
            ]
        );
    }
}
