//! Annotation keys and the load balancer class.
//!
//! Every ferrolb annotation is also accepted under MetalLB's two prefixes, so Services annotated
//! for MetalLB keep their addresses and pools after a migration.

use std::collections::BTreeMap;

/// `spec.loadBalancerClass` value that selects ferrolb.
pub const LOAD_BALANCER_CLASS: &str = "ferrolb.io/ferrolb";

/// Our annotation prefix, first in lookup order.
pub const PREFIX: &str = "ferrolb.io/";
/// Prefixes looked up after ours, in this order.
pub const ALIAS_PREFIXES: [&str; 2] = ["metallb.io/", "metallb.universe.tf/"];

/// Comma-separated addresses the Service asks for (at most one per family).
pub const LOAD_BALANCER_IPS: &str = "loadBalancerIPs";
/// Name of the pool the Service asks its addresses from.
pub const ADDRESS_POOL: &str = "address-pool";
/// Services carrying the same key may share an address.
pub const ALLOW_SHARED_IP: &str = "allow-shared-ip";

/// Pool the Service's addresses come from, written by the controller.
pub const IP_ALLOCATED_FROM_POOL: &str = "ip-allocated-from-pool";
/// Prefixes the controller writes its annotations under: ours, and MetalLB's current one so
/// tools that read MetalLB's annotation keep working (MetalLB controller/service.go writes
/// `metallb.io/ip-allocated-from-pool`).
pub const WRITTEN_PREFIXES: [&str; 2] = [PREFIX, "metallb.io/"];
/// MetalLB's deprecated prefix: still read, and each use is reported with a warning event as
/// MetalLB does (controller/main.go SetBalancer, `deprecatedAnnotation`).
pub const DEPRECATED_PREFIX: &str = "metallb.universe.tf/";

/// Label that keeps a node from announcing any Service address.
pub const EXCLUDE_FROM_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// Full key of `name` under ferrolb's prefix, e.g. `ferrolb.io/address-pool`.
pub fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// Every accepted key of `name`, ours first.
pub fn all_keys(name: &str) -> Vec<String> {
    std::iter::once(PREFIX)
        .chain(ALIAS_PREFIXES)
        .map(|p| format!("{p}{name}"))
        .collect()
}

/// Every key `name` is written under, ours first.
pub fn written_keys(name: &str) -> [String; 2] {
    WRITTEN_PREFIXES.map(|p| format!("{p}{name}"))
}

/// Keys of `annotations` under MetalLB's deprecated prefix, sorted.
pub fn deprecated_keys(annotations: &BTreeMap<String, String>) -> Vec<&str> {
    annotations
        .keys()
        .filter(|k| k.starts_with(DEPRECATED_PREFIX))
        .map(String::as_str)
        .collect()
}

/// The value of annotation `name` under the first prefix that has it, with the key it was found
/// under.
pub fn lookup<'a>(
    annotations: &'a BTreeMap<String, String>,
    name: &str,
) -> Option<(String, &'a str)> {
    // The controller looks up several names for every Service on every pass: no key is built
    // for a Service without annotations, and one buffer serves every prefix.
    if annotations.is_empty() {
        return None;
    }
    let mut key = String::with_capacity(32 + name.len());
    for prefix in std::iter::once(PREFIX).chain(ALIAS_PREFIXES) {
        key.clear();
        key.push_str(prefix);
        key.push_str(name);
        if let Some(v) = annotations.get(key.as_str()) {
            return Some((key, v.as_str()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ours_wins_over_aliases() {
        let mut a = BTreeMap::new();
        a.insert(
            "metallb.universe.tf/address-pool".to_string(),
            "old".to_string(),
        );
        assert_eq!(
            lookup(&a, ADDRESS_POOL),
            Some(("metallb.universe.tf/address-pool".to_string(), "old"))
        );
        a.insert("metallb.io/address-pool".to_string(), "mid".to_string());
        assert_eq!(lookup(&a, ADDRESS_POOL).map(|(_, v)| v), Some("mid"));
        a.insert("ferrolb.io/address-pool".to_string(), "new".to_string());
        assert_eq!(lookup(&a, ADDRESS_POOL).map(|(_, v)| v), Some("new"));
    }

    /// MetalLB controller/service.go writes `metallb.io/ip-allocated-from-pool`; ferrolb writes
    /// it beside its own spelling.
    #[test]
    fn pool_annotation_is_written_under_both_spellings() {
        assert_eq!(
            written_keys(IP_ALLOCATED_FROM_POOL),
            [
                "ferrolb.io/ip-allocated-from-pool".to_string(),
                "metallb.io/ip-allocated-from-pool".to_string()
            ]
        );
    }

    /// MetalLB controller/main.go SetBalancer: every key with the `metallb.universe.tf` prefix
    /// is a deprecated annotation.
    #[test]
    fn deprecated_keys_are_metallb_universe_tf_ones() {
        let a: BTreeMap<String, String> = [
            ("metallb.universe.tf/allow-shared-ip", "k"),
            ("metallb.io/address-pool", "p"),
            ("metallb.universe.tf/address-pool", "p"),
            ("example.com/metallb.universe.tf/x", "y"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            deprecated_keys(&a),
            [
                "metallb.universe.tf/address-pool",
                "metallb.universe.tf/allow-shared-ip"
            ]
        );
    }

    #[test]
    fn absent_is_none() {
        assert_eq!(lookup(&BTreeMap::new(), ALLOW_SHARED_IP), None);
        assert_eq!(key(LOAD_BALANCER_IPS), "ferrolb.io/loadBalancerIPs");
    }
}
