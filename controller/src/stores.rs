//! What the controller reads besides Services and the configuration CRDs (both cached with
//! `ferrolb_runtime::store`): Namespace labels, for pool namespace selectors.

use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::Store;
use std::collections::BTreeMap;

/// Labels of every cached Namespace, by name.
pub fn namespace_labels(
    namespaces: &Store<Namespace>,
) -> BTreeMap<String, BTreeMap<String, String>> {
    namespaces
        .state()
        .iter()
        .filter_map(|ns| {
            let name = ns.metadata.name.clone()?;
            Some((name, ns.metadata.labels.clone().unwrap_or_default()))
        })
        .collect()
}
