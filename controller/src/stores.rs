//! What the controller reads besides Services and the configuration CRDs (both cached with
//! `ferrolb_runtime::store`): Namespace labels, for pool namespace selectors.

use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::Store;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Labels of every Namespace, by name, as a pass reads them (shared with the requests of its
/// Services).
pub type NamespaceLabels = BTreeMap<String, Arc<BTreeMap<String, String>>>;

/// Labels of every cached Namespace.
pub fn namespace_labels(namespaces: &Store<Namespace>) -> NamespaceLabels {
    namespaces
        .state()
        .iter()
        .filter_map(|ns| {
            let name = ns.metadata.name.clone()?;
            Some((
                name,
                Arc::new(ns.metadata.labels.clone().unwrap_or_default()),
            ))
        })
        .collect()
}
