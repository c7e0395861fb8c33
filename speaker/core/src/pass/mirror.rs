//! A list of a cache's objects that the executor keeps in step with the cache by the keys that
//! changed, so a pass gets every object without the cache copying them all each time (at
//! 50,000 Services and their EndpointSlices that copy, and letting go of it, cost more than the
//! incremental pass itself).
//!
//! Positions are stable: an update replaces its object in place, an addition goes to the end,
//! and a removal moves the last object into the hole — which [`IncrementalPass`]'s comparison
//! by position sees as that object having moved, not changed.
//!
//! [`IncrementalPass`]: super::IncrementalPass

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

/// The list, and where each key's object is in it.
#[derive(Debug)]
pub struct Mirror<Key, K> {
    objects: Vec<Arc<K>>,
    keys: Vec<Key>,
    positions: HashMap<Key, usize>,
}

impl<Key, K> Default for Mirror<Key, K> {
    fn default() -> Self {
        Self {
            objects: Vec::new(),
            keys: Vec::new(),
            positions: HashMap::new(),
        }
    }
}

impl<Key: Hash + Eq + Clone, K> Mirror<Key, K> {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every object, each once.
    pub fn objects(&self) -> &[Arc<K>] {
        &self.objects
    }

    /// Replaces the list with the cache's whole content (after a relist, or at first).
    pub fn reset(&mut self, all: impl IntoIterator<Item = (Key, Arc<K>)>) {
        self.objects.clear();
        self.keys.clear();
        self.positions.clear();
        for (key, obj) in all {
            self.set(key, Some(obj));
        }
    }

    /// Brings one key up to date: `Some` is its object now, `None` that it is gone.
    pub fn set(&mut self, key: Key, now: Option<Arc<K>>) {
        match (self.positions.get(&key).copied(), now) {
            (Some(at), Some(obj)) => self.objects[at] = obj,
            (None, Some(obj)) => {
                self.positions.insert(key.clone(), self.objects.len());
                self.objects.push(obj);
                self.keys.push(key);
            }
            (Some(at), None) => {
                self.positions.remove(&key);
                self.objects.swap_remove(at);
                self.keys.swap_remove(at);
                if let Some(moved) = self.keys.get(at) {
                    self.positions.insert(moved.clone(), at);
                }
            }
            (None, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn contents(m: &Mirror<u8, (u8, u32)>) -> BTreeMap<u8, u32> {
        m.objects().iter().map(|o| (o.0, o.1)).collect()
    }

    #[test]
    fn a_removal_moves_the_last_object_into_the_hole() {
        let mut m = Mirror::new();
        for k in 0..3u8 {
            m.set(k, Some(Arc::new((k, 0u32))));
        }
        m.set(0, None);
        let order: Vec<u8> = m.objects().iter().map(|o| o.0).collect();
        assert_eq!(order, vec![2, 1]);
        m.set(2, Some(Arc::new((2, 7))));
        assert_eq!(
            m.objects()[0].1,
            7,
            "the moved object is found where it went"
        );
    }

    proptest! {
        /// After any sequence of updates, removals and resets the list holds exactly what a
        /// map fed the same changes holds, each object once.
        #[test]
        fn holds_what_the_cache_holds(
            steps in proptest::collection::vec((0u8..24, proptest::option::of(0u32..5), 0u8..40), 0..200)
        ) {
            let mut m = Mirror::new();
            let mut cache = BTreeMap::new();
            for (key, value, reset) in steps {
                match value {
                    Some(v) => cache.insert(key, v),
                    None => cache.remove(&key),
                };
                if reset == 0 {
                    m.reset(cache.iter().map(|(&k, &v)| (k, Arc::new((k, v)))));
                } else {
                    m.set(key, value.map(|v| Arc::new((key, v))));
                }
                prop_assert_eq!(contents(&m), cache.clone());
                prop_assert_eq!(m.objects().len(), cache.len());
            }
        }
    }
}
