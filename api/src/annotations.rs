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

/// The value of annotation `name` under the first prefix that has it, with the key it was found
/// under.
pub fn lookup<'a>(
    annotations: &'a BTreeMap<String, String>,
    name: &str,
) -> Option<(String, &'a str)> {
    all_keys(name)
        .into_iter()
        .find_map(|k| annotations.get(&k).map(|v| (k, v.as_str())))
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

    #[test]
    fn absent_is_none() {
        assert_eq!(lookup(&BTreeMap::new(), ALLOW_SHARED_IP), None);
        assert_eq!(key(LOAD_BALANCER_IPS), "ferrolb.io/loadBalancerIPs");
    }
}
