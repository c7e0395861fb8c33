//! What the server has sent on watches, by resource: how many watches were opened, how many
//! object events (ADDED/MODIFIED/DELETED, initial ones included) and BOOKMARKs they carried,
//! and the bytes of each. Benchmarks read it to measure what a change costs the
//! server as a function of how many clients watch.
//!
//! Lines are counted when the watch hands them to its response stream: a client that goes
//! away mid-line is still counted, which is the server's work either way.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// Counters of one resource; shared by every watch of it.
#[derive(Debug, Default)]
pub struct WatchCounter {
    watches: AtomicU64,
    events: AtomicU64,
    event_bytes: AtomicU64,
    bookmarks: AtomicU64,
    bookmark_bytes: AtomicU64,
}

impl WatchCounter {
    /// One object event line of `len` bytes sent.
    pub fn event(&self, len: usize) {
        self.events.fetch_add(1, Ordering::Relaxed);
        self.event_bytes.fetch_add(len as u64, Ordering::Relaxed);
    }

    /// One BOOKMARK line of `len` bytes sent.
    pub fn bookmark(&self, len: usize) {
        self.bookmarks.fetch_add(1, Ordering::Relaxed);
        self.bookmark_bytes.fetch_add(len as u64, Ordering::Relaxed);
    }

    fn totals(&self) -> WatchTotals {
        WatchTotals {
            watches: self.watches.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            event_bytes: self.event_bytes.load(Ordering::Relaxed),
            bookmarks: self.bookmarks.load(Ordering::Relaxed),
            bookmark_bytes: self.bookmark_bytes.load(Ordering::Relaxed),
        }
    }
}

/// Totals of one resource at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WatchTotals {
    /// Watches opened.
    pub watches: u64,
    /// ADDED/MODIFIED/DELETED lines sent.
    pub events: u64,
    /// Bytes of those lines.
    pub event_bytes: u64,
    /// BOOKMARK lines sent.
    pub bookmarks: u64,
    /// Bytes of those lines.
    pub bookmark_bytes: u64,
}

impl WatchTotals {
    /// What was sent between `earlier` and `self`.
    pub fn since(&self, earlier: &WatchTotals) -> WatchTotals {
        WatchTotals {
            watches: self.watches.saturating_sub(earlier.watches),
            events: self.events.saturating_sub(earlier.events),
            event_bytes: self.event_bytes.saturating_sub(earlier.event_bytes),
            bookmarks: self.bookmarks.saturating_sub(earlier.bookmarks),
            bookmark_bytes: self.bookmark_bytes.saturating_sub(earlier.bookmark_bytes),
        }
    }
}

/// Counters of every resource watched so far, by `group/resource` (`core/services` for the
/// core group).
#[derive(Debug, Default)]
pub struct WatchStats {
    by_resource: Mutex<BTreeMap<String, Arc<WatchCounter>>>,
}

impl WatchStats {
    /// The counter of `resource`, with one more watch opened on it.
    pub fn open(&self, resource: String) -> Arc<WatchCounter> {
        let counter = match self.by_resource.lock() {
            Ok(mut m) => m.entry(resource).or_default().clone(),
            // A panic elsewhere while holding the lock: count into a detached counter rather
            // than fail the watch.
            Err(_) => Arc::default(),
        };
        counter.watches.fetch_add(1, Ordering::Relaxed);
        counter
    }

    /// Totals by resource now.
    pub fn totals(&self) -> BTreeMap<String, WatchTotals> {
        match self.by_resource.lock() {
            Ok(m) => m.iter().map(|(k, c)| (k.clone(), c.totals())).collect(),
            Err(_) => BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_resource_and_subtracts() {
        let stats = WatchStats::default();
        let a = stats.open("core/services".into());
        let b = stats.open("core/services".into());
        let n = stats.open("core/nodes".into());
        a.event(100);
        b.event(100);
        n.bookmark(40);
        let before = stats.totals();
        a.event(7);
        let after = stats.totals();
        let svc = after["core/services"];
        assert_eq!(
            svc,
            WatchTotals {
                watches: 2,
                events: 3,
                event_bytes: 207,
                bookmarks: 0,
                bookmark_bytes: 0,
            }
        );
        assert_eq!(
            (
                after["core/nodes"].bookmarks,
                after["core/nodes"].bookmark_bytes
            ),
            (1, 40)
        );
        let delta = svc.since(&before["core/services"]);
        assert_eq!((delta.events, delta.event_bytes, delta.watches), (1, 7, 0));
    }
}
