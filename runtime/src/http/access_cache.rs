//! A small, bounded cache of access decisions. Prometheus scrapes every few seconds with the
//! same token; without the cache every scrape would cost the API server a TokenReview and a
//! SubjectAccessReview. Entries live a short time, so a revoked token or a removed binding
//! stops working within that time.
//!
//! Keys are a SHA-256 of the token and the path: the cache never holds a token.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A cache key: SHA-256 over the token, a separator and the request path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AccessKey([u8; 32]);

impl AccessKey {
    /// The key of `token` asking for `path`.
    pub fn new(token: &str, path: &str) -> Self {
        let mut h = Sha256::new();
        h.update(token.as_bytes());
        // A byte no header value or path holds, so ("ab", "/c") and ("a", "b/c") differ.
        h.update([0u8]);
        h.update(path.as_bytes());
        Self(h.finalize().into())
    }
}

/// Entries of type `V`, each valid for `ttl` after it was stored, at most `capacity` of them.
#[derive(Debug)]
pub struct AccessCache<V> {
    entries: HashMap<AccessKey, (Instant, V)>,
    ttl: Duration,
    capacity: usize,
}

impl<V: Clone> AccessCache<V> {
    /// An empty cache.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            ttl,
            capacity: capacity.max(1),
        }
    }

    /// The value stored for `key` less than `ttl` before `now`.
    pub fn get(&self, key: &AccessKey, now: Instant) -> Option<V> {
        let (stored, value) = self.entries.get(key)?;
        (now.saturating_duration_since(*stored) < self.ttl).then(|| value.clone())
    }

    /// Stores `value` for `key` at `now`. When the cache is full, expired entries go first,
    /// then the oldest one.
    pub fn insert(&mut self, key: AccessKey, value: V, now: Instant) {
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            let ttl = self.ttl;
            self.entries
                .retain(|_, (stored, _)| now.saturating_duration_since(*stored) < ttl);
            if self.entries.len() >= self.capacity
                && let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (stored, _))| *stored)
                    .map(|(k, _)| *k)
            {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(key, (now, value));
    }

    /// Number of entries held (expired ones included until they are pushed out).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(10);

    #[test]
    fn keys_depend_on_token_and_path_and_not_on_their_split() {
        assert_eq!(
            AccessKey::new("t", "/metrics"),
            AccessKey::new("t", "/metrics")
        );
        assert_ne!(
            AccessKey::new("t", "/metrics"),
            AccessKey::new("u", "/metrics")
        );
        assert_ne!(
            AccessKey::new("t", "/metrics"),
            AccessKey::new("t", "/api/v1/status")
        );
        assert_ne!(AccessKey::new("ab", "/c"), AccessKey::new("a", "b/c"));
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let t0 = Instant::now();
        let mut c = AccessCache::new(TTL, 8);
        let k = AccessKey::new("t", "/metrics");
        c.insert(k, true, t0);
        assert_eq!(c.get(&k, t0), Some(true));
        assert_eq!(c.get(&k, t0 + TTL - Duration::from_millis(1)), Some(true));
        assert_eq!(c.get(&k, t0 + TTL), None);
        assert_eq!(c.get(&AccessKey::new("other", "/metrics"), t0), None);
    }

    #[test]
    fn a_full_cache_drops_expired_entries_then_the_oldest() {
        let t0 = Instant::now();
        let mut c = AccessCache::new(TTL, 3);
        let key = |i: u32| AccessKey::new(&format!("token-{i}"), "/metrics");
        c.insert(key(0), 0, t0);
        c.insert(key(1), 1, t0 + Duration::from_secs(1));
        c.insert(key(2), 2, t0 + Duration::from_secs(2));
        // Nothing has expired: the oldest (0) goes.
        c.insert(key(3), 3, t0 + Duration::from_secs(3));
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&key(0), t0 + Duration::from_secs(3)), None);
        assert_eq!(c.get(&key(1), t0 + Duration::from_secs(3)), Some(1));
        // At 12 s, 1 and 2 have expired: both go, 3 stays.
        let later = t0 + Duration::from_secs(12);
        c.insert(key(4), 4, later);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&key(3), later), Some(3));
        assert_eq!(c.get(&key(4), later), Some(4));
        // Replacing a key never evicts another.
        c.insert(key(4), 40, later);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&key(4), later), Some(40));
    }
}
