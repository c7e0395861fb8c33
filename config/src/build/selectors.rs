//! Selector lists: parsing with field paths, rejecting repeated selectors, expressions and
//! values, and deciding whether two lists can select one node.

use super::{Ctx, Obj};
use crate::selector::{Requirement, Selector};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use std::collections::BTreeMap;

/// Parses every selector of `list` (at `field`, e.g. `spec.nodeSelectors`), reporting each bad
/// one with its full path, and repeats as MetalLB's `validateLabelSelectorDuplicate`
/// (internal/config/config.go) rejects them. Returns only the valid ones.
pub fn parse_list(
    ctx: &mut Ctx,
    obj: &Obj<'_>,
    field: &str,
    list: &[LabelSelector],
) -> Vec<Selector> {
    report_repeats(ctx, obj, field, list);
    let mut out = Vec::with_capacity(list.len());
    for (i, sel) in list.iter().enumerate() {
        match Selector::parse(sel) {
            Ok(s) => out.push(s),
            Err((path, message)) => ctx.error(obj, &format!("{field}[{i}].{path}"), message),
        }
    }
    out
}

/// A requirement as MetalLB compares them: values are a set (their order does not matter), the
/// order of requirements in a selector does.
type Normalized<'a> = (&'a str, &'a str, Vec<&'a str>);

/// A selector as MetalLB compares them: its labels and its normalized requirements.
type NormalizedSelector<'a> = (Option<&'a BTreeMap<String, String>>, Vec<Normalized<'a>>);

fn normalize(req: &LabelSelectorRequirement) -> Normalized<'_> {
    let mut values: Vec<&str> = req.values.iter().flatten().map(String::as_str).collect();
    values.sort_unstable();
    (req.key.as_str(), req.operator.as_str(), values)
}

/// Reports a value repeated in one requirement, a requirement repeated in one selector, and a
/// selector repeated in the list (same labels and same requirements).
fn report_repeats(ctx: &mut Ctx, obj: &Obj<'_>, field: &str, list: &[LabelSelector]) {
    let mut seen: Vec<NormalizedSelector<'_>> = Vec::new();
    for (i, sel) in list.iter().enumerate() {
        let exprs = sel.match_expressions.as_deref().unwrap_or_default();
        let mut normalized = Vec::with_capacity(exprs.len());
        for (j, req) in exprs.iter().enumerate() {
            let at = format!("{field}[{i}].matchExpressions[{j}]");
            let values = req.values.as_deref().unwrap_or_default();
            for (k, value) in values.iter().enumerate() {
                if let Some(first) = values[..k].iter().position(|v| v == value) {
                    ctx.error(
                        obj,
                        &format!("{at}.values[{k}]"),
                        format!(
                            "{value:?} is listed twice (also values[{first}]); list each value once"
                        ),
                    );
                }
            }
            let n = normalize(req);
            if let Some(first) = normalized.iter().position(|m| *m == n) {
                ctx.error(
                    obj,
                    &at,
                    format!("repeats matchExpressions[{first}]; list each requirement once"),
                );
            }
            normalized.push(n);
        }
        let labels = sel.match_labels.as_ref().filter(|l| !l.is_empty());
        let key = (labels, normalized);
        if let Some(first) = seen.iter().position(|s| *s == key) {
            ctx.error(
                obj,
                &format!("{field}[{i}]"),
                format!("repeats {field}[{first}]; list each selector once"),
            );
        }
        seen.push(key);
    }
}

/// Whether some label set could satisfy both lists (each list: any one selector must match; an
/// empty list matches everything).
///
/// The rule: two lists may overlap unless every pair of selectors, one from each list, is
/// provably disjoint. Two selectors are provably disjoint when one key carries contradicting
/// requirements: `In` sets with no common value, `In` against `DoesNotExist`, `Exists` against
/// `DoesNotExist`, or `In` against a `NotIn` that excludes every value of the `In`. Anything we
/// cannot prove disjoint is treated as overlapping, so conflicts are never missed; the price is
/// that selectors disjoint only through real node labels (say `zone=a` vs `rack=7`) still count
/// as overlapping.
pub fn lists_may_overlap(a: &[Selector], b: &[Selector]) -> bool {
    let everything = [Selector::everything()];
    let a = if a.is_empty() { &everything[..] } else { a };
    let b = if b.is_empty() { &everything[..] } else { b };
    a.iter().any(|x| b.iter().any(|y| !provably_disjoint(x, y)))
}

fn provably_disjoint(a: &Selector, b: &Selector) -> bool {
    // Contradictions inside one selector make it match nothing, which is disjoint too.
    let all: Vec<&Requirement> = a.requirements.iter().chain(&b.requirements).collect();
    all.iter()
        .enumerate()
        .any(|(i, x)| all[i + 1..].iter().any(|y| contradict(x, y)))
}

fn contradict(x: &Requirement, y: &Requirement) -> bool {
    use Requirement::*;
    match (x, y) {
        (In(k1, v1), In(k2, v2)) => k1 == k2 && v1.is_disjoint(v2),
        (In(k1, _), DoesNotExist(k2))
        | (DoesNotExist(k2), In(k1, _))
        | (Exists(k1), DoesNotExist(k2))
        | (DoesNotExist(k2), Exists(k1)) => k1 == k2,
        (In(k1, v), NotIn(k2, w)) | (NotIn(k2, w), In(k1, v)) => k1 == k2 && v.is_subset(w),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn sel(reqs: Vec<Requirement>) -> Selector {
        Selector { requirements: reqs }
    }
    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn different_values_of_one_key_are_disjoint() {
        let a = [sel(vec![Requirement::In("zone".into(), set(&["a"]))])];
        let b = [sel(vec![Requirement::In("zone".into(), set(&["b"]))])];
        assert!(!lists_may_overlap(&a, &b));
        assert!(lists_may_overlap(&a, &[]), "empty list is every node");
        let c = [sel(vec![Requirement::In("rack".into(), set(&["7"]))])];
        assert!(lists_may_overlap(&a, &c), "different keys could both hold");
        let d = [sel(vec![Requirement::NotIn(
            "zone".into(),
            set(&["a", "c"]),
        )])];
        assert!(!lists_may_overlap(&a, &d));
        let e = [sel(vec![Requirement::DoesNotExist("zone".into())])];
        assert!(!lists_may_overlap(&a, &e));
    }

    fn requirement() -> impl Strategy<Value = Requirement> {
        let key = prop::sample::select(vec!["k1", "k2"]).prop_map(String::from);
        let vals = prop::collection::btree_set(
            prop::sample::select(vec!["a", "b", "c"]).prop_map(String::from),
            1..3,
        );
        prop_oneof![
            (key.clone(), vals.clone()).prop_map(|(k, v)| Requirement::In(k, v)),
            (key.clone(), vals).prop_map(|(k, v)| Requirement::NotIn(k, v)),
            key.clone().prop_map(Requirement::Exists),
            key.prop_map(Requirement::DoesNotExist),
        ]
    }

    /// Every label set over keys k1, k2 with values a, b, c (or absent).
    fn all_label_sets() -> Vec<BTreeMap<String, String>> {
        let choices = [None, Some("a"), Some("b"), Some("c")];
        let mut out = Vec::new();
        for x in choices {
            for y in choices {
                let mut m = BTreeMap::new();
                if let Some(v) = x {
                    m.insert("k1".to_string(), v.to_string());
                }
                if let Some(v) = y {
                    m.insert("k2".to_string(), v.to_string());
                }
                out.push(m);
            }
        }
        out
    }

    proptest! {
        /// Soundness: whenever we call two selectors disjoint, no label set matches both.
        #[test]
        fn disjoint_means_no_common_node(
            a in prop::collection::vec(requirement(), 0..3),
            b in prop::collection::vec(requirement(), 0..3),
        ) {
            let (a, b) = (sel(a), sel(b));
            if provably_disjoint(&a, &b) {
                for labels in all_label_sets() {
                    prop_assert!(!(a.matches(&labels) && b.matches(&labels)), "{labels:?}");
                }
            }
        }
    }
}
