//! L2Advertisements and BGPAdvertisements: pool, peer and community references resolved (a name
//! of no object is a warning: MetalLB accepts it and the object may come later), lists without
//! repeats, aggregation lengths checked against the pools, localPref agreeing between
//! advertisements of the same routes, defaults applied.

use super::{Ctx, Obj, kinds, known_list, report_duplicates, selectors};
use crate::Inputs;
use crate::community::{self, parse_community};
use crate::model::{
    BgpAdvertisement, CommunityValue, IpFamily, L2Advertisement, NodePreference, Peer, Pool,
};
use crate::selector::Selector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::{BTreeMap, BTreeSet};

/// What references resolve against. Names come from the inputs, not only from valid objects,
/// so an advertisement naming a pool that has its own errors is not reported a second time.
pub struct Refs<'a> {
    pool_names: BTreeSet<&'a str>,
    /// Labels of every pool in the inputs, by name, for `ipAddressPoolSelectors`.
    pool_labels: Vec<(&'a str, BTreeMap<String, String>)>,
    peer_names: BTreeSet<&'a str>,
    pools: &'a BTreeMap<String, Pool>,
    peers: &'a BTreeMap<String, Peer>,
    communities: &'a BTreeMap<String, CommunityValue>,
}

impl<'a> Refs<'a> {
    pub fn new(
        inputs: &'a Inputs,
        pools: &'a BTreeMap<String, Pool>,
        peers: &'a BTreeMap<String, Peer>,
        communities: &'a BTreeMap<String, CommunityValue>,
    ) -> Self {
        Refs {
            pool_names: inputs
                .pools
                .iter()
                .filter_map(|p| p.metadata.name.as_deref())
                .collect(),
            pool_labels: inputs
                .pools
                .iter()
                .filter_map(|p| {
                    let name = p.metadata.name.as_deref()?;
                    Some((name, p.metadata.labels.clone().unwrap_or_default()))
                })
                .collect(),
            peer_names: inputs
                .peers
                .iter()
                .filter_map(|p| p.metadata.name.as_deref())
                .collect(),
            pools,
            peers,
            communities,
        }
    }
}

/// The pools an advertisement selects: named ones plus those matched by a selector; both empty
/// means every pool. Unknown names and bad selectors are reported.
fn resolve_pools(
    ctx: &mut Ctx,
    refs: &Refs<'_>,
    obj: &Obj<'_>,
    names: &[String],
    pool_selectors: &[LabelSelector],
) -> Vec<String> {
    report_duplicates(ctx, obj, "spec.ipAddressPools", names);
    let parsed: Vec<Selector> =
        selectors::parse_list(ctx, obj, "spec.ipAddressPoolSelectors", pool_selectors);
    if names.is_empty() && pool_selectors.is_empty() {
        return refs.pool_names.iter().map(|n| n.to_string()).collect();
    }
    let mut out = BTreeSet::new();
    for (i, name) in names.iter().enumerate() {
        if refs.pool_names.contains(name.as_str()) {
            out.insert(name.clone());
        } else {
            // MetalLB skips names of no pool (setL2AdvertisementsToPools,
            // setBGPAdvertisementsToPools): the pool may be created later.
            ctx.warn(
                obj,
                &format!("spec.ipAddressPools[{i}]"),
                format!(
                    "no IPAddressPool named {name:?} ({}), so nothing is announced for it until \
                     a pool of that name exists",
                    known_list(refs.pool_names.iter().copied())
                ),
            );
        }
    }
    for (name, labels) in &refs.pool_labels {
        if parsed.iter().any(|s| s.matches(labels)) {
            out.insert(name.to_string());
        }
    }
    // Legal (a matching pool may be added later) but most likely a label typo.
    if names.is_empty()
        && !parsed.is_empty()
        && parsed.len() == pool_selectors.len()
        && out.is_empty()
    {
        ctx.warn(
            obj,
            "spec.ipAddressPoolSelectors",
            "match no IPAddressPool, so nothing is advertised until a pool with matching labels \
             exists; check the labels of your pools",
        );
    }
    out.into_iter().collect()
}

pub fn build_l2(
    ctx: &mut Ctx,
    refs: &Refs<'_>,
    inputs: &[ferrolb_api::L2Advertisement],
) -> Vec<L2Advertisement> {
    let objs: Vec<Obj<'_>> = inputs
        .iter()
        .map(|a| Obj::new(kinds::L2, &a.metadata))
        .collect();
    ctx.check_names(&objs, false, "names must be unique within a namespace");
    let mut out: Vec<L2Advertisement> = inputs
        .iter()
        .zip(&objs)
        .map(|(input, obj)| {
            let spec = &input.spec;
            L2Advertisement {
                namespace: obj.namespace.to_string(),
                name: obj.name.to_string(),
                pools: resolve_pools(
                    ctx,
                    refs,
                    obj,
                    &spec.ip_address_pools,
                    &spec.ip_address_pool_selectors,
                ),
                node_selectors: selectors::parse_list(
                    ctx,
                    obj,
                    "spec.nodeSelectors",
                    &spec.node_selectors,
                ),
                interfaces: spec.interfaces.clone(),
                service_selectors: selectors::parse_list(
                    ctx,
                    obj,
                    "spec.serviceSelectors",
                    &spec.service_selectors,
                ),
                preferred_nodes: node_preferences(ctx, obj, &spec.preferred_node_selectors),
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

pub fn build_bgp(
    ctx: &mut Ctx,
    refs: &Refs<'_>,
    inputs: &[ferrolb_api::BGPAdvertisement],
) -> Vec<BgpAdvertisement> {
    let objs: Vec<Obj<'_>> = inputs
        .iter()
        .map(|a| Obj::new(kinds::BGP_ADV, &a.metadata))
        .collect();
    ctx.check_names(&objs, false, "names must be unique within a namespace");
    let mut out: Vec<BgpAdvertisement> = inputs
        .iter()
        .zip(&objs)
        .map(|(input, obj)| build_one_bgp(ctx, refs, obj, &input.spec))
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

fn build_one_bgp(
    ctx: &mut Ctx,
    refs: &Refs<'_>,
    obj: &Obj<'_>,
    spec: &ferrolb_api::BGPAdvertisementSpec,
) -> BgpAdvertisement {
    let pools = resolve_pools(
        ctx,
        refs,
        obj,
        &spec.ip_address_pools,
        &spec.ip_address_pool_selectors,
    );
    let node_selectors =
        selectors::parse_list(ctx, obj, "spec.nodeSelectors", &spec.node_selectors);
    let aggregation_length = aggregation(
        ctx,
        refs,
        obj,
        "spec.aggregationLength",
        spec.aggregation_length,
        IpFamily::V4,
        &pools,
    );
    let aggregation_length_v6 = aggregation(
        ctx,
        refs,
        obj,
        "spec.aggregationLengthV6",
        spec.aggregation_length_v6,
        IpFamily::V6,
        &pools,
    );
    report_duplicates(ctx, obj, "spec.communities", &spec.communities);
    let service_selectors =
        selectors::parse_list(ctx, obj, "spec.serviceSelectors", &spec.service_selectors);
    if !spec.service_selectors.is_empty() {
        check_aggregation_without_service_selectors(ctx, obj, spec);
    }
    let communities = resolve_communities(ctx, refs, obj, &spec.communities);
    report_duplicates(ctx, obj, "spec.peers", &spec.peers);
    for (i, name) in spec.peers.iter().enumerate() {
        if !refs.peer_names.contains(name.as_str()) {
            // MetalLB keeps the name as given: the peer may be created later. The name stays in
            // the list, so the routes are not sent to every peer meanwhile.
            ctx.warn(
                obj,
                &format!("spec.peers[{i}]"),
                format!(
                    "no BGPPeer named {name:?} ({}), so these routes are sent to no session \
                     for it until a peer of that name exists",
                    known_list(refs.peer_names.iter().copied())
                ),
            );
        }
    }
    let mut peers = spec.peers.clone();
    peers.sort();
    peers.dedup();
    if let Some(local_pref) = spec.local_pref {
        warn_local_pref_unused(ctx, refs, obj, local_pref, &peers, &node_selectors);
    }
    BgpAdvertisement {
        namespace: obj.namespace.to_string(),
        name: obj.name.to_string(),
        pools,
        aggregation_length,
        aggregation_length_v6,
        local_pref: spec.local_pref,
        communities,
        node_selectors,
        peers,
        service_selectors,
    }
}

/// `preferredNodeSelectors`: each weight within 1–100 (the range of MetalLB's CRD), each
/// preference a valid selector. Invalid entries are reported and left out.
fn node_preferences(
    ctx: &mut Ctx,
    obj: &Obj<'_>,
    list: &[ferrolb_api::PreferredNodeSelector],
) -> Vec<NodePreference> {
    let mut out = Vec::with_capacity(list.len());
    for (i, p) in list.iter().enumerate() {
        let field = format!("spec.preferredNodeSelectors[{i}]");
        let weight = u32::try_from(p.weight)
            .ok()
            .filter(|w| (1..=100).contains(w));
        if weight.is_none() {
            ctx.error(
                obj,
                &format!("{field}.weight"),
                format!("{} is out of range; accepted: 1 to 100", p.weight),
            );
        }
        let selector = match Selector::parse(&p.preference) {
            Ok(s) => Some(s),
            Err((path, message)) => {
                ctx.error(obj, &format!("{field}.preference.{path}"), message);
                None
            }
        };
        if let (Some(weight), Some(selector)) = (weight, selector) {
            out.push(NodePreference { weight, selector });
        }
    }
    out
}

/// MetalLB internal/config/config.go bgpAdvertisementFromCR: `serviceSelectors` only with the
/// default aggregation lengths, because a route aggregating several addresses would carry
/// Services the selectors do not match.
fn check_aggregation_without_service_selectors(
    ctx: &mut Ctx,
    obj: &Obj<'_>,
    spec: &ferrolb_api::BGPAdvertisementSpec,
) {
    for (field, value, full) in [
        ("spec.aggregationLength", spec.aggregation_length, 32),
        ("spec.aggregationLengthV6", spec.aggregation_length_v6, 128),
    ] {
        if let Some(v) = value.filter(|v| *v != full) {
            ctx.error(
                obj,
                field,
                format!(
                    "{v} cannot be combined with spec.serviceSelectors: an aggregated route \
                     would also carry Services the selectors do not match; leave it unset (or \
                     {full}), or remove the service selectors"
                ),
            );
        }
    }
}

/// Checks an aggregation length: within the family's width, and, by MetalLB's rule
/// (`validateBGPAdvPerPool`, internal/config/config.go), not shorter than the prefix of the
/// largest CIDR block of any entry of a selected pool (an entry `first-last` splits into
/// blocks as MetalLB's `ParseCIDR` summarizes it). A length between that and a smaller block's
/// prefix is accepted, as MetalLB does, with a warning: routes for that block then cover
/// addresses outside the entry.
fn aggregation(
    ctx: &mut Ctx,
    refs: &Refs<'_>,
    obj: &Obj<'_>,
    field: &str,
    value: Option<i32>,
    family: IpFamily,
    pools: &[String],
) -> u8 {
    let bits = crate::address::family_bits(family);
    let Some(v) = value else { return bits };
    let Some(len) = u8::try_from(v).ok().filter(|l| *l <= bits) else {
        ctx.error(
            obj,
            field,
            format!("{v} is out of range; accepted: 0 to {bits} (default {bits})"),
        );
        return bits;
    };
    for name in pools {
        let Some(pool) = refs.pools.get(name) else {
            continue;
        };
        for range in pool.ranges.iter().filter(|r| r.family() == family) {
            let blocks = range.blocks();
            let Some(largest) = blocks.iter().min_by_key(|b| b.prefix_len) else {
                continue;
            };
            let needed = largest.prefix_len;
            if len < needed {
                let shape = if range.prefix_len.is_some() {
                    format!("the prefix /{needed} of {:?}", range.text)
                } else {
                    format!(
                        "/{needed}, the prefix of {}, the largest CIDR block of {:?},",
                        largest.describe(family),
                        range.text
                    )
                };
                ctx.error(
                    obj,
                    field,
                    format!(
                        "{len} is shorter than {shape} in IPAddressPool {name}; a /{len} route would \
                         attract traffic for addresses outside the pool: use at least {needed}"
                    ),
                );
            } else if let Some(small) = blocks.iter().find(|b| b.prefix_len > len) {
                ctx.warn(
                    obj,
                    field,
                    format!(
                        "{len} is shorter than /{}, the prefix of {}, a CIDR block of {:?} in \
                         IPAddressPool {name}: its /{len} route also covers addresses outside \
                         the entry (MetalLB accepts this as long as the entry's largest block, \
                         /{needed}, fits)",
                        small.prefix_len,
                        small.describe(family),
                        range.text
                    ),
                );
            }
        }
    }
    len
}

fn resolve_communities(
    ctx: &mut Ctx,
    refs: &Refs<'_>,
    obj: &Obj<'_>,
    entries: &[String],
) -> Vec<CommunityValue> {
    let mut out = BTreeSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let field = format!("spec.communities[{i}]");
        if let Some(v) = refs.communities.get(entry.trim()) {
            out.insert(*v);
            continue;
        }
        match parse_community(entry) {
            Ok(v) => {
                out.insert(v);
            }
            // A value with ':' was meant as a literal; report the literal's problem.
            Err(message) if entry.contains(':') => ctx.error(obj, &field, message),
            Err(_) => ctx.error(
                obj,
                &field,
                format!(
                    "{entry:?} is neither a community value ({}) nor the name of an entry of a \
                     Community resource; {}",
                    community::ACCEPTED,
                    known_list(refs.communities.keys().map(String::as_str))
                ),
            ),
        }
    }
    out.into_iter().collect()
}

/// LOCAL_PREF is only sent on iBGP sessions: warn when every peer the advertisement can use, on
/// any node it applies to, is eBGP.
fn warn_local_pref_unused(
    ctx: &mut Ctx,
    refs: &Refs<'_>,
    obj: &Obj<'_>,
    local_pref: u32,
    peer_names: &[String],
    node_selectors: &[Selector],
) {
    let relevant: Vec<&Peer> = refs
        .peers
        .values()
        .filter(|p| peer_names.is_empty() || peer_names.contains(&p.name))
        .filter(|p| selectors::lists_may_overlap(&p.node_selectors, node_selectors))
        .collect();
    if !relevant.is_empty() && relevant.iter().all(|p| !p.is_ibgp()) {
        let names: Vec<&str> = relevant.iter().map(|p| p.name.as_str()).collect();
        ctx.warn(
            obj,
            "spec.localPref",
            format!(
                "localPref {local_pref} has no effect: LOCAL_PREF is only sent on iBGP sessions, \
                 and every peer this advertisement reaches ({}) is eBGP",
                names.join(", ")
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::model::CommunityValue;
    use crate::{Config, Inputs, Severity};
    use ferrolb_api::{
        BGPAdvertisement, BGPAdvertisementSpec, L2Advertisement, L2AdvertisementSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
    use std::collections::BTreeMap;

    fn bgp(spec: BGPAdvertisementSpec) -> BGPAdvertisement {
        BGPAdvertisement {
            metadata: meta("adv"),
            spec,
        }
    }

    fn l2(spec: L2AdvertisementSpec) -> L2Advertisement {
        L2Advertisement {
            metadata: meta("l2"),
            spec,
        }
    }

    fn labelled(
        name: &str,
        addresses: &[&str],
        key: &str,
        value: &str,
    ) -> ferrolb_api::IPAddressPool {
        let mut p = pool(name, addresses);
        p.metadata.labels = Some(BTreeMap::from([(key.to_string(), value.to_string())]));
        p
    }

    fn bad_operator() -> LabelSelector {
        LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "a".into(),
                    operator: "Exists".into(),
                    values: None,
                },
                LabelSelectorRequirement {
                    key: "b".into(),
                    operator: "in".into(),
                    values: Some(vec!["x".into()]),
                },
            ]),
        }
    }

    #[test]
    fn pools_resolve_by_name_selector_or_all() {
        let pools = vec![
            labelled("a", &["10.0.0.0/24"], "announce", "l2"),
            labelled("b", &["10.0.1.0/24"], "announce", "bgp"),
            pool("c", &["10.0.2.0/24"]),
        ];
        let inputs = Inputs {
            pools,
            l2_advertisements: vec![l2(L2AdvertisementSpec {
                ip_address_pools: vec!["c".into()],
                ip_address_pool_selectors: vec![LabelSelector {
                    match_labels: Some(BTreeMap::from([("announce".into(), "l2".into())])),
                    match_expressions: None,
                }],
                ..Default::default()
            })],
            bgp_advertisements: vec![bgp(BGPAdvertisementSpec::default())],
            ..Default::default()
        };
        let config = Config::build(&inputs).expect("valid");
        assert_eq!(config.l2_advertisements[0].pools, vec!["a", "c"]);
        assert_eq!(config.bgp_advertisements[0].pools, vec!["a", "b", "c"]);
        assert_eq!(config.bgp_advertisements[0].aggregation_length, 32);
        assert_eq!(config.bgp_advertisements[0].aggregation_length_v6, 128);
    }

    /// MetalLB skips pool names of no pool and keeps peer names as given
    /// (setL2AdvertisementsToPools, setBGPAdvertisementsToPools; TestParse "different local
    /// pref - different peers & same nodes" names peers that do not exist): warnings, and an
    /// advertisement limited to a missing peer stays limited to it.
    #[test]
    fn unknown_pool_and_peer_references_are_warnings() {
        let inputs = Inputs {
            pools: vec![pool("a", &["10.0.0.0/24"])],
            peers: vec![peer("router", "10.0.0.1")],
            bgp_advertisements: vec![bgp(BGPAdvertisementSpec {
                ip_address_pools: vec!["a".into(), "missing".into()],
                peers: vec!["rotuer".into()],
                ..Default::default()
            })],
            l2_advertisements: vec![l2(L2AdvertisementSpec {
                ip_address_pools: vec!["nope".into()],
                ..Default::default()
            })],
            ..Default::default()
        };
        let config = Config::build(&inputs).expect("references to missing objects are warnings");
        assert_eq!(
            config
                .warnings
                .iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>(),
            vec![
                "L2Advertisement ferrolb-system/l2: spec.ipAddressPools[0]: no IPAddressPool named \
                 \"nope\" (known: a), so nothing is announced for it until a pool of that name \
                 exists",
                "BGPAdvertisement ferrolb-system/adv: spec.ipAddressPools[1]: no IPAddressPool \
                 named \"missing\" (known: a), so nothing is announced for it until a pool of \
                 that name exists",
                "BGPAdvertisement ferrolb-system/adv: spec.peers[0]: no BGPPeer named \"rotuer\" \
                 (known: router), so these routes are sent to no session for it until a peer of \
                 that name exists",
            ]
        );
        assert!(config.l2_advertisements[0].pools.is_empty());
        assert_eq!(config.bgp_advertisements[0].pools, vec!["a"]);
        assert_eq!(config.bgp_advertisements[0].peers, vec!["rotuer"]);
    }

    /// MetalLB internal/config/config.go l2AdvertisementFromCR and bgpAdvertisementFromCR:
    /// validateDuplicate on ipAddressPools, communities and peers, and
    /// validateLabelSelectorDuplicate on the selector lists (TestParse "duplicate ip address
    /// pools - in L2 adv", "duplicate peers - in BGP adv", "duplicate community literal - in BGP
    /// adv", "use duplicate match labels in node selectors", "use duplicate match expression
    /// values in node selector", "use duplicate match expression in ip pool selector - in BGP
    /// adv").
    #[test]
    fn repeated_entries_are_errors() {
        let zone = |v: &str| LabelSelector {
            match_labels: Some(BTreeMap::from([("zone".into(), v.into())])),
            match_expressions: None,
        };
        let host = |values: &[&str]| LabelSelectorRequirement {
            key: "kubernetes.io/hostname".into(),
            operator: "In".into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        };
        let inputs = Inputs {
            pools: vec![pool("a", &["10.0.0.0/24"])],
            peers: vec![peer("router", "10.0.0.1")],
            l2_advertisements: vec![l2(L2AdvertisementSpec {
                ip_address_pools: vec!["a".into(), "a".into()],
                node_selectors: vec![zone("a"), zone("b"), zone("a")],
                ..Default::default()
            })],
            bgp_advertisements: vec![bgp(BGPAdvertisementSpec {
                communities: vec!["1:1".into(), "1:1".into()],
                peers: vec!["router".into(), "router".into()],
                ip_address_pool_selectors: vec![LabelSelector {
                    match_labels: None,
                    match_expressions: Some(vec![host(&["x", "x"])]),
                }],
                node_selectors: vec![LabelSelector {
                    match_labels: None,
                    match_expressions: Some(vec![
                        host(&["first", "second"]),
                        host(&["second", "first"]),
                    ]),
                }],
                ..Default::default()
            })],
            ..Default::default()
        };
        assert_eq!(
            lines(&inputs),
            vec![
                "L2Advertisement ferrolb-system/l2: spec.ipAddressPools[1]: \"a\" is listed twice \
                 (also spec.ipAddressPools[0]); list each entry once",
                "L2Advertisement ferrolb-system/l2: spec.nodeSelectors[2]: repeats \
                 spec.nodeSelectors[0]; list each selector once",
                "BGPAdvertisement ferrolb-system/adv: spec.ipAddressPoolSelectors[0].\
                 matchExpressions[0].values[1]: \"x\" is listed twice (also values[0]); list each \
                 value once",
                "BGPAdvertisement ferrolb-system/adv: spec.nodeSelectors[0].matchExpressions[1]: \
                 repeats matchExpressions[0]; list each requirement once",
                "BGPAdvertisement ferrolb-system/adv: spec.communities[1]: \"1:1\" is listed twice \
                 (also spec.communities[0]); list each entry once",
                "BGPAdvertisement ferrolb-system/adv: spec.peers[1]: \"router\" is listed twice \
                 (also spec.peers[0]); list each entry once",
            ]
        );
    }

    #[test]
    fn invalid_selectors_have_full_paths() {
        let inputs = Inputs {
            l2_advertisements: vec![l2(L2AdvertisementSpec {
                ip_address_pool_selectors: vec![bad_operator()],
                node_selectors: vec![LabelSelector::default(), bad_operator()],
                ..Default::default()
            })],
            ..Default::default()
        };
        let msg = "unknown operator \"in\"; accepted: In, NotIn, Exists, DoesNotExist";
        assert_eq!(
            lines(&inputs),
            vec![
                format!(
                    "L2Advertisement ferrolb-system/l2: spec.ipAddressPoolSelectors[0].matchExpressions[1].operator: {msg}"
                ),
                format!(
                    "L2Advertisement ferrolb-system/l2: spec.nodeSelectors[1].matchExpressions[1].operator: {msg}"
                ),
            ]
        );
    }

    #[test]
    fn communities_resolve_and_bad_ones_are_reported() {
        let inputs = Inputs {
            communities: vec![ferrolb_api::Community {
                metadata: meta("c"),
                spec: ferrolb_api::CommunitySpec {
                    communities: vec![ferrolb_api::CommunityAlias {
                        name: "no-export".into(),
                        value: "65535:65281".into(),
                    }],
                },
            }],
            bgp_advertisements: vec![bgp(BGPAdvertisementSpec {
                communities: vec![
                    "no-export".into(),
                    "1:70000".into(),
                    "no-advertise".into(),
                    "large:1:2:3".into(),
                ],
                ..Default::default()
            })],
            ..Default::default()
        };
        assert_eq!(
            lines(&inputs),
            vec![
                "BGPAdvertisement ferrolb-system/adv: spec.communities[1]: \"1:70000\" is not a valid \
                 community; expected AA:NN with two numbers 0-65535, or large:A:B:C with three \
                 numbers 0-4294967295",
                "BGPAdvertisement ferrolb-system/adv: spec.communities[2]: \"no-advertise\" is neither \
                 a community value (AA:NN with two numbers 0-65535, or large:A:B:C with three \
                 numbers 0-4294967295) nor the name of an entry of a Community resource; known: \
                 no-export",
            ]
        );
        let mut ok = inputs.clone();
        ok.bgp_advertisements[0].spec.communities = vec![
            "large:1:2:3".into(),
            "no-export".into(),
            "65535:65281".into(),
        ];
        let config = Config::build(&ok).expect("valid");
        assert_eq!(
            config.bgp_advertisements[0].communities,
            vec![
                CommunityValue::Standard(0xffff_ff01),
                CommunityValue::Large(1, 2, 3)
            ]
        );
    }

    /// MetalLB validateBGPAdvPerPool: an aggregation length shorter than the prefix of an
    /// entry's largest CIDR block is rejected (TestParse "bad aggregation length (incompatible
    /// with CIDR)", "aggregation length by range", "aggregation length by range, too wide").
    #[test]
    fn aggregation_lengths() {
        let inputs = |v4: i32, v6: i32| Inputs {
            pools: vec![
                pool("a", &["10.0.0.0/25", "fd00::/120"]),
                pool("b", &["10.0.1.200-10.0.1.239"]),
            ],
            bgp_advertisements: vec![bgp(BGPAdvertisementSpec {
                aggregation_length: Some(v4),
                aggregation_length_v6: Some(v6),
                ..Default::default()
            })],
            ..Default::default()
        };
        assert_eq!(
            lines(&inputs(33, -1)),
            vec![
                "BGPAdvertisement ferrolb-system/adv: spec.aggregationLength: 33 is out of range; accepted: 0 to 32 (default 32)",
                "BGPAdvertisement ferrolb-system/adv: spec.aggregationLengthV6: -1 is out of range; accepted: 0 to 128 (default 128)",
            ]
        );
        // 10.0.1.200-10.0.1.239 splits into 10.0.1.200/29, 10.0.1.208/28, 10.0.1.224/28.
        assert_eq!(
            lines(&inputs(27, 112)),
            vec![
                "BGPAdvertisement ferrolb-system/adv: spec.aggregationLength: 27 is shorter than \
                 /28, the prefix of 10.0.1.208/28, the largest CIDR block of \
                 \"10.0.1.200-10.0.1.239\", in IPAddressPool b; a /27 route would attract traffic \
                 for addresses outside the pool: use at least 28",
                "BGPAdvertisement ferrolb-system/adv: spec.aggregationLengthV6: 112 is shorter than \
                 the prefix /120 of \"fd00::/120\" in IPAddressPool a; a /112 route would attract \
                 traffic for addresses outside the pool: use at least 120",
            ]
        );
        assert!(lines(&inputs(24, 120))[0].contains("24 is shorter than the prefix /25"));
        // At 28 every block but 10.0.1.200/29 fits; MetalLB accepts it, ferrolb warns.
        let config = Config::build(&inputs(28, 120)).expect("valid");
        assert_eq!(
            config
                .warnings
                .iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>(),
            vec![
                "BGPAdvertisement ferrolb-system/adv: spec.aggregationLength: 28 is shorter than \
                 /29, the prefix of 10.0.1.200/29, a CIDR block of \"10.0.1.200-10.0.1.239\" in \
                 IPAddressPool b: its /28 route also covers addresses outside the entry (MetalLB \
                 accepts this as long as the entry's largest block, /28, fits)"
            ]
        );
        assert!(
            Config::build(&inputs(29, 128))
                .expect("valid")
                .warnings
                .is_empty()
        );
    }

    #[test]
    fn local_pref_with_only_ebgp_peers_is_a_warning() {
        let mut ibgp = peer("ibgp", "10.0.0.2");
        ibgp.spec.peer_asn = Some(64512);
        ibgp.spec.node_selectors = vec![LabelSelector {
            match_labels: Some(BTreeMap::from([("zone".into(), "b".into())])),
            match_expressions: None,
        }];
        let inputs = Inputs {
            peers: vec![peer("ebgp", "10.0.0.1"), ibgp],
            bgp_advertisements: vec![bgp(BGPAdvertisementSpec {
                local_pref: Some(100),
                node_selectors: vec![LabelSelector {
                    match_labels: Some(BTreeMap::from([("zone".into(), "a".into())])),
                    match_expressions: None,
                }],
                ..Default::default()
            })],
            ..Default::default()
        };
        let config = Config::build(&inputs).expect("a warning is not an error");
        assert_eq!(config.warnings.len(), 1);
        assert_eq!(config.warnings[0].severity, Severity::Warning);
        assert_eq!(
            config.warnings[0].to_string(),
            "BGPAdvertisement ferrolb-system/adv: spec.localPref: localPref 100 has no effect: \
             LOCAL_PREF is only sent on iBGP sessions, and every peer this advertisement reaches \
             (ebgp) is eBGP"
        );
        // On every node: the iBGP peer can share a node with the advertisement, so no warning.
        let mut everywhere = inputs.clone();
        everywhere.bgp_advertisements[0].spec.node_selectors.clear();
        assert!(
            Config::build(&everywhere)
                .expect("valid")
                .warnings
                .is_empty()
        );
    }

    #[test]
    fn selectors_matching_no_pool_warn() {
        let inputs = Inputs {
            pools: vec![labelled("a", &["10.0.0.0/24"], "announce", "l2")],
            l2_advertisements: vec![l2(L2AdvertisementSpec {
                ip_address_pool_selectors: vec![LabelSelector {
                    match_labels: Some(BTreeMap::from([("anounce".into(), "l2".into())])),
                    match_expressions: None,
                }],
                ..Default::default()
            })],
            ..Default::default()
        };
        let config = Config::build(&inputs).expect("a warning is not an error");
        assert_eq!(
            config
                .warnings
                .iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>(),
            vec![
                "L2Advertisement ferrolb-system/l2: spec.ipAddressPoolSelectors: match no \
                 IPAddressPool, so nothing is advertised until a pool with matching labels exists; \
                 check the labels of your pools"
            ]
        );
    }

    #[test]
    fn missing_and_duplicate_names() {
        let mut unnamed = peer("x", "10.0.0.9");
        unnamed.metadata.name = None;
        let mut dup = peer("router", "10.0.0.2");
        dup.metadata.namespace = Some("other".into());
        let inputs = Inputs {
            peers: vec![peer("router", "10.0.0.1"), dup, unnamed],
            ..Default::default()
        };
        assert_eq!(
            lines(&inputs),
            vec![
                "BGPPeer other/router: metadata.name: \"router\" is already used by BGPPeer \
                 ferrolb-system/router; BGPAdvertisements refer to peers by name only, so names \
                 must be unique across all namespaces",
                "BGPPeer ferrolb-system/: metadata.name: is missing; every object needs a name",
            ]
        );
    }

    fn match_label(key: &str, value: &str) -> LabelSelector {
        LabelSelector {
            match_labels: Some(BTreeMap::from([(key.into(), value.into())])),
            match_expressions: None,
        }
    }

    /// MetalLB api/v1beta1 L2AdvertisementSpec and BGPAdvertisementSpec: `serviceSelectors`
    /// and, on L2Advertisement, `preferredNodeSelectors` (weight and preference).
    #[test]
    fn service_and_preferred_node_selectors_are_kept() {
        let inputs = Inputs {
            pools: vec![pool("a", &["10.0.0.0/24"])],
            l2_advertisements: vec![l2(L2AdvertisementSpec {
                service_selectors: vec![match_label("tier", "web")],
                preferred_node_selectors: vec![
                    ferrolb_api::PreferredNodeSelector {
                        weight: 100,
                        preference: match_label("zone", "primary"),
                    },
                    ferrolb_api::PreferredNodeSelector {
                        weight: 1,
                        preference: LabelSelector::default(),
                    },
                ],
                ..Default::default()
            })],
            bgp_advertisements: vec![bgp(BGPAdvertisementSpec {
                service_selectors: vec![match_label("tier", "db")],
                ..Default::default()
            })],
            ..Default::default()
        };
        let config = Config::build(&inputs).expect("valid");
        let l2 = &config.l2_advertisements[0];
        let web = BTreeMap::from([("tier".to_string(), "web".to_string())]);
        assert_eq!(l2.service_selectors.len(), 1);
        assert!(l2.service_selectors[0].matches(&web));
        let prefs: Vec<u32> = l2.preferred_nodes.iter().map(|p| p.weight).collect();
        assert_eq!(prefs, [100, 1]);
        let primary = BTreeMap::from([("zone".to_string(), "primary".to_string())]);
        assert!(l2.preferred_nodes[0].selector.matches(&primary));
        assert!(!l2.preferred_nodes[0].selector.matches(&web));
        // An empty preference matches every node.
        assert!(l2.preferred_nodes[1].selector.matches(&BTreeMap::new()));
        let bgp = &config.bgp_advertisements[0];
        assert_eq!(bgp.service_selectors.len(), 1);
        assert!(!bgp.service_selectors[0].matches(&web));
    }

    /// Weights 1–100 as MetalLB's CRD (api/v1beta1 PreferredNodeSelector, kubebuilder Minimum=1
    /// Maximum=100); a bad preference selector is an error (MetalLB internal/config
    /// preferred_node_test.go "invalid label selector operator").
    #[test]
    fn preferred_node_weights_and_selectors_are_checked() {
        let pref = |weight: i32, preference: LabelSelector| ferrolb_api::PreferredNodeSelector {
            weight,
            preference,
        };
        let inputs = Inputs {
            l2_advertisements: vec![l2(L2AdvertisementSpec {
                preferred_node_selectors: vec![
                    pref(0, LabelSelector::default()),
                    pref(101, LabelSelector::default()),
                    pref(50, bad_operator()),
                    pref(100, LabelSelector::default()),
                ],
                service_selectors: vec![bad_operator()],
                ..Default::default()
            })],
            ..Default::default()
        };
        let msg = "unknown operator \"in\"; accepted: In, NotIn, Exists, DoesNotExist";
        assert_eq!(
            lines(&inputs),
            vec![
                format!(
                    "L2Advertisement ferrolb-system/l2: spec.serviceSelectors[0].matchExpressions[1].operator: {msg}"
                ),
                "L2Advertisement ferrolb-system/l2: spec.preferredNodeSelectors[0].weight: 0 is out of range; accepted: 1 to 100".to_string(),
                "L2Advertisement ferrolb-system/l2: spec.preferredNodeSelectors[1].weight: 101 is out of range; accepted: 1 to 100".to_string(),
                format!(
                    "L2Advertisement ferrolb-system/l2: spec.preferredNodeSelectors[2].preference.matchExpressions[1].operator: {msg}"
                ),
            ]
        );
    }

    /// MetalLB internal/config/config.go bgpAdvertisementFromCR: "serviceSelectors and
    /// aggregationLength are mutually exclusive" (an explicit 32 / 128 is the default and
    /// allowed).
    #[test]
    fn bgp_service_selectors_need_default_aggregation() {
        let inputs = |v4: Option<i32>, v6: Option<i32>| Inputs {
            pools: vec![pool("a", &["10.0.0.0/24", "fd00::/64"])],
            bgp_advertisements: vec![bgp(BGPAdvertisementSpec {
                aggregation_length: v4,
                aggregation_length_v6: v6,
                service_selectors: vec![match_label("tier", "web")],
                ..Default::default()
            })],
            ..Default::default()
        };
        assert_eq!(
            lines(&inputs(Some(24), Some(64))),
            vec![
                "BGPAdvertisement ferrolb-system/adv: spec.aggregationLength: 24 cannot be combined \
                 with spec.serviceSelectors: an aggregated route would also carry Services the \
                 selectors do not match; leave it unset (or 32), or remove the service selectors",
                "BGPAdvertisement ferrolb-system/adv: spec.aggregationLengthV6: 64 cannot be \
                 combined with spec.serviceSelectors: an aggregated route would also carry Services \
                 the selectors do not match; leave it unset (or 128), or remove the service \
                 selectors",
            ]
        );
        assert!(Config::build(&inputs(Some(32), Some(128))).is_ok());
        assert!(Config::build(&inputs(None, None)).is_ok());
        // Without service selectors, aggregation is fine.
        let mut plain = inputs(Some(24), None);
        plain.bgp_advertisements[0].spec.service_selectors.clear();
        assert!(Config::build(&plain).is_ok());
    }
}
