//! Services a pass can skip: those whose last decision left nothing to do and whose inputs are
//! unchanged since.
//!
//! A Service's decision depends on its object, the labels of its Namespace, the configuration
//! and the addresses it holds. The addresses it holds change only by its own decision (another
//! Service's release, sharing or allocation never takes them), so while the other three stay the
//! same, deciding again gives the same outcome: keep what it has, write nothing. At 50,000
//! Services that re-deciding was half of the controller's CPU in a burst of creations.

use crate::stores::NamespaceLabels;
use k8s_openapi::api::core::v1::Service;
use std::collections::HashMap;
use std::sync::Arc;

/// Versions of Services, as the watch cache holds them: the cache replaces an object's `Arc`
/// on every change, so the same allocation is the same version. Each is found by its address
/// and holds its `Arc`, which keeps the allocation from being reused by another object while
/// it is recorded. Hashed with foldhash: every pass looks up and inserts every Service, and
/// addresses chosen by the allocator give an attacker nothing to flood with.
type Versions = HashMap<usize, Arc<Service>, foldhash::fast::RandomState>;

/// The settled Services of the last pass and the Namespace labels they were decided with.
#[derive(Debug, Default)]
pub struct Settled {
    objects: Versions,
    labels: NamespaceLabels,
}

impl Settled {
    /// Forgets every settled Service: the configuration or the allocation table changed.
    pub fn clear(&mut self) {
        self.objects.clear();
    }

    /// Starts a pass with `labels`; a change of any Namespace's labels unsettles everything
    /// (pools select Services by them).
    pub fn start_pass(&mut self, labels: &NamespaceLabels) -> NextSettled {
        if &self.labels != labels {
            self.objects.clear();
            self.labels = labels.clone();
        }
        NextSettled(Versions::with_capacity_and_hasher(
            self.objects.len(),
            foldhash::fast::RandomState::default(),
        ))
    }

    /// Whether this version of the Service was settled by the last pass.
    pub fn contains(&self, svc: &Arc<Service>) -> bool {
        self.objects.contains_key(&Arc::as_ptr(svc).addr())
    }

    /// Ends a pass: the Services it settled or skipped are the settled ones now; the versions it
    /// did not see are dropped.
    pub fn finish_pass(&mut self, next: NextSettled) {
        self.objects = next.0;
    }
}

/// The Services settled in the pass under way.
#[derive(Debug)]
pub struct NextSettled(Versions);

impl NextSettled {
    /// Records that this version of the Service needs nothing until an input changes.
    pub fn insert(&mut self, svc: &Arc<Service>) {
        self.0.insert(Arc::as_ptr(svc).addr(), svc.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;
    use std::collections::BTreeMap;

    fn svc(name: &str) -> Arc<Service> {
        Arc::new(Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            ..Service::default()
        })
    }

    #[test]
    fn only_the_same_version_of_an_object_stays_settled() {
        let mut settled = Settled::default();
        let (a, b) = (svc("a"), svc("b"));
        let mut next = settled.start_pass(&NamespaceLabels::new());
        next.insert(&a);
        next.insert(&b);
        settled.finish_pass(next);
        assert!(settled.contains(&a) && settled.contains(&b));
        // An equal object in another allocation is another version of it.
        assert!(!settled.contains(&svc("a")));

        // A pass that carries only `a` forgets `b`.
        let mut next = settled.start_pass(&NamespaceLabels::new());
        next.insert(&a);
        settled.finish_pass(next);
        assert!(settled.contains(&a) && !settled.contains(&b));
    }

    #[test]
    fn a_namespace_label_change_or_a_clear_unsettles_everything() {
        let mut settled = Settled::default();
        let a = svc("a");
        let mut next = settled.start_pass(&NamespaceLabels::new());
        next.insert(&a);
        settled.finish_pass(next);

        let same = settled.start_pass(&NamespaceLabels::new());
        assert!(settled.contains(&a), "same labels");
        settled.finish_pass(same);

        let mut labels = NamespaceLabels::new();
        labels.insert(
            "default".into(),
            Arc::new(BTreeMap::from([("team".into(), "a".into())])),
        );
        let _next = settled.start_pass(&labels);
        assert!(!settled.contains(&a), "labels changed");

        let mut next = settled.start_pass(&labels);
        next.insert(&a);
        settled.finish_pass(next);
        assert!(settled.contains(&a));
        settled.clear();
        assert!(!settled.contains(&a), "cleared");
    }
}
