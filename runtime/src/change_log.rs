//! Which objects of a cache changed since a reader last asked: the keys its watch applied or
//! deleted, or "everything" after a relist. With it a loop can bring its own list of a large
//! cache up to date by the changed objects alone, instead of copying the whole cache (100,000
//! `Arc`s for 50,000 Services and their EndpointSlices) on every pass.

use crate::sync::lock;
use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::Event;
use std::collections::HashSet;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// What changed since the last [`ChangeLog::take`].
pub struct Changes<K: Resource>
where
    K::DynamicType: Eq + Hash + Clone,
{
    /// The cache was (re)filled as a whole: a reader must re-read all of it. True for the
    /// first take, before anything was read.
    pub relisted: bool,
    /// Objects applied or deleted since; look each up in the cache (absent: deleted).
    pub keys: HashSet<ObjectRef<K>>,
}

/// The change log of one cache, shared by its watch task (which records) and a reader.
pub struct ChangeLog<K: Resource>
where
    K::DynamicType: Eq + Hash + Clone,
{
    pending: Arc<Mutex<Changes<K>>>,
}

impl<K: Resource> Clone for ChangeLog<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    fn clone(&self) -> Self {
        Self {
            pending: self.pending.clone(),
        }
    }
}

impl<K: Resource> Default for ChangeLog<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    fn default() -> Self {
        Self {
            pending: Arc::new(Mutex::new(Changes {
                relisted: true,
                keys: HashSet::new(),
            })),
        }
    }
}

impl<K> ChangeLog<K>
where
    K: Resource,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    /// A log whose first take says "relisted".
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything recorded since the last take; the log starts empty again.
    pub fn take(&self) -> Changes<K> {
        let mut pending = lock(&self.pending);
        Changes {
            relisted: std::mem::take(&mut pending.relisted),
            keys: std::mem::take(&mut pending.keys),
        }
    }

    /// Records what a watch event did to the cache, after the reflector applied it. Objects of
    /// a relist reach the cache only with its end (`InitDone`), which replaces the cache as a
    /// whole: the keys recorded before it are then moot.
    pub fn record(&self, event: &Event<K>) {
        let mut pending = lock(&self.pending);
        match event {
            Event::Apply(obj) | Event::Delete(obj) => {
                if !pending.relisted {
                    pending.keys.insert(ObjectRef::from_obj(obj));
                }
            }
            Event::InitDone => {
                pending.relisted = true;
                pending.keys.clear();
            }
            Event::Init | Event::InitApply(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;

    fn svc(name: &str) -> Service {
        let mut s = Service::default();
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some("default".into());
        s
    }

    #[test]
    fn the_first_take_is_a_relist_then_only_changed_keys() {
        let log = ChangeLog::<Service>::new();
        // Before anything was read a reader must read everything; keys add nothing then.
        log.record(&Event::Apply(svc("a")));
        let first = log.take();
        assert!(first.relisted);
        assert!(first.keys.is_empty());

        log.record(&Event::Apply(svc("a")));
        log.record(&Event::Delete(svc("b")));
        log.record(&Event::Apply(svc("a")));
        let second = log.take();
        assert!(!second.relisted);
        let names: HashSet<String> = second.keys.iter().map(|k| k.name.clone()).collect();
        assert_eq!(names, HashSet::from(["a".to_string(), "b".to_string()]));

        let third = log.take();
        assert!(!third.relisted && third.keys.is_empty());
    }

    #[test]
    fn a_relist_replaces_the_keys_and_is_seen_once() {
        let log = ChangeLog::<Service>::new();
        log.take();
        log.record(&Event::Apply(svc("a")));
        log.record(&Event::Init);
        log.record(&Event::InitApply(svc("c")));
        log.record(&Event::InitDone);
        // Changes after a relist that nobody has read yet are covered by it.
        log.record(&Event::Apply(svc("d")));
        let after = log.take();
        assert!(after.relisted);
        assert!(after.keys.is_empty());
        log.record(&Event::Apply(svc("d")));
        let next = log.take();
        assert!(!next.relisted);
        assert_eq!(next.keys.len(), 1);
    }
}
