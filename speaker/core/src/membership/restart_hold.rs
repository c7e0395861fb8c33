//! Holding the addresses of a speaker that restarts in place.
//!
//! A speaker stopped for a restart on a node that stays (a DaemonSet rolling update) leaves
//! its in-kernel responder answering for the node's addresses under a hand-over lease
//! (`ferrolb-speaker`, `layer2/handover_pin.rs`). The other speakers must not take those
//! addresses meanwhile, although the gossip soon declares the stopped process down and its
//! heartbeats stop: the departing speaker tells every member "restarting, hold for N"
//! ([`super::heartbeat::Message::Restarting`]) and each keeps counting that node alive in the
//! election until
//! - a new process of that node joins the gossip (it adopts the addresses itself), or
//! - the hold runs out (the successor never came back): the node then counts as down and its
//!   addresses fail over as after a crash — at the moment the kernel responder's lease, of the
//!   same length, stops the node answering.
//!
//! A hold is capped at [`MAX_RESTART_HOLD`], so a forged or stale message cannot keep a dead
//! node's addresses silent for long (the datagrams are authenticated in any case).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The longest hold a member grants, whatever the message asks.
pub const MAX_RESTART_HOLD: Duration = Duration::from_secs(120);

/// The restarting speakers this member holds alive, with when each hold ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestartHolds {
    until: BTreeMap<String, Instant>,
}

impl RestartHolds {
    /// No holds.
    pub fn new() -> Self {
        RestartHolds::default()
    }

    /// `node` announced its restart at `now`, asking to be held for `hold`.
    pub fn hold(&mut self, node: &str, hold: Duration, now: Instant) {
        self.until
            .insert(node.to_string(), now + hold.min(MAX_RESTART_HOLD));
    }

    /// A new process of `node` joined the gossip: its hold ends. Whether there was one.
    pub fn rejoined(&mut self, node: &str) -> bool {
        self.until.remove(node).is_some()
    }

    /// Ends the holds that ran out at `now`; returns their nodes.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let due: Vec<String> = self
            .until
            .iter()
            .filter(|(_, until)| now >= **until)
            .map(|(n, _)| n.clone())
            .collect();
        for n in &due {
            self.until.remove(n);
        }
        due
    }

    /// The nodes held alive.
    pub fn held(&self) -> impl Iterator<Item = &str> {
        self.until.keys().map(String::as_str)
    }

    /// When the next hold runs out.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.until.values().min().copied()
    }

    /// The alive set the election reads: what the gossip (and heartbeats) see alive, plus the
    /// held nodes.
    pub fn alive_with_holds(&self, alive: &BTreeSet<String>) -> BTreeSet<String> {
        alive
            .iter()
            .cloned()
            .chain(self.until.keys().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_restarting_node_stays_alive_until_it_rejoins() {
        let t0 = Instant::now();
        let mut h = RestartHolds::new();
        h.hold("b", Duration::from_secs(15), t0);
        // The gossip declared b down: the election still counts it.
        assert_eq!(
            h.alive_with_holds(&names(&["a", "c"])),
            names(&["a", "b", "c"])
        );
        assert!(h.expire(t0 + Duration::from_secs(14)).is_empty());
        assert!(h.rejoined("b"));
        assert!(!h.rejoined("b"));
        assert_eq!(h.alive_with_holds(&names(&["a", "c"])), names(&["a", "c"]));
        assert_eq!(h.next_expiry(), None);
    }

    #[test]
    fn a_successor_that_never_comes_back_fails_over_when_the_hold_ends() {
        let t0 = Instant::now();
        let mut h = RestartHolds::new();
        h.hold("b", Duration::from_secs(15), t0);
        h.hold("c", Duration::from_secs(5), t0);
        assert_eq!(h.next_expiry(), Some(t0 + Duration::from_secs(5)));
        assert_eq!(h.expire(t0 + Duration::from_secs(5)), ["c"]);
        assert_eq!(h.held().collect::<Vec<_>>(), ["b"]);
        assert_eq!(h.expire(t0 + Duration::from_secs(15)), ["b"]);
        assert_eq!(h.alive_with_holds(&names(&["a"])), names(&["a"]));
    }

    #[test]
    fn holds_are_capped_and_renewed_by_a_later_restart() {
        let t0 = Instant::now();
        let mut h = RestartHolds::new();
        h.hold("b", Duration::from_secs(3600), t0);
        assert_eq!(h.next_expiry(), Some(t0 + MAX_RESTART_HOLD));
        let t1 = t0 + Duration::from_secs(100);
        h.hold("b", Duration::from_secs(15), t1);
        assert_eq!(h.next_expiry(), Some(t1 + Duration::from_secs(15)));
    }
}
