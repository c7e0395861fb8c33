//! Make-before-break for planned moves of a layer 2 address.
//!
//! When the election moves an address away from a node that is still alive (the old owner
//! restarted and takes it back, this node is drained by the exclude label, a nodeSelector
//! changed), both nodes are healthy, yet the new owner needs a moment before it answers: its
//! pass runs when the change reaches it, its responder is readied, its first gratuitous
//! announcement goes out. A node that stopped answering the instant its own pass said "no
//! longer mine" left that moment unanswered (about 40 ms in the lab). So the old owner keeps
//! answering — without announcing — until it sees the new owner has taken over: a gratuitous
//! ARP or unsolicited Neighbor Advertisement for the address from another MAC on the wire
//! (the new owner sends it right after its responder is ready), or [`HANDOVER_WINDOW`] at the
//! latest. While both answer, a client may get two replies to one request; both are from
//! healthy nodes that forward the traffic, and the new owner's announcement has already told
//! every cache where the address lives.
//!
//! A crash needs none of this: the dead owner answers nothing, and the survivor takes over at
//! once. Nor does an address that no node owns any more (nothing to hand over to), nor the
//! MetalLB-like mode (`--hitless-operations=false`), where a lost address stops at once.
//!
//! [`Handovers`] holds the releases in progress as plain data over explicit instants; the
//! announcer (`ferrolb-speaker`, `layer2/announcer/core.rs`) keeps answering for
//! [`Handovers::answering`] and tells it what the wire showed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The longest an old owner keeps answering for an address it lost to a live node. The new
/// owner's announcement normally ends the hand-over within milliseconds; the window only
/// bounds the case where that frame is lost or the new owner is slow to start answering (its
/// membership still settling, a busy host). Half a second is several times the longest
/// takeover measured in the lab (tens of milliseconds) and short enough that a client that
/// happened to resolve the address from the old owner in the meantime is re-pointed by the new
/// owner's repetition at 0.5 s ([`crate::layer2`]'s announcer schedule).
pub const HANDOVER_WINDOW: Duration = Duration::from_millis(500);

/// How long the old owner goes on answering after it saw the new owner's announcement: almost
/// not at all. The new owner installs its responder before it announces, so from its first
/// gratuitous ARP/NA on it answers every request; a longer overlap would let both answer one
/// request, and a client taking the later reply could flip back to the old MAC. The
/// millisecond only lets replies already on their way out leave first.
pub const AFTER_SEEN: Duration = Duration::from_millis(1);

/// Who the election names as an address's owner now, as the hand-over needs it.
pub type Owners = BTreeMap<IpAddr, Option<String>>;

/// Why a hand-over ended, i.e. why this node stopped answering for the address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum HandoverEnd {
    /// The new owner's gratuitous announcement was seen on the wire.
    Observed,
    /// [`HANDOVER_WINDOW`] passed without seeing it.
    TimedOut,
    /// The address became this node's again.
    Regained,
    /// No node owns the address any more, or its owner changed back and forth to none: nothing
    /// left to hand over to.
    NoSuccessor,
}

impl HandoverEnd {
    /// A stable name for metrics and logs.
    pub fn code(self) -> &'static str {
        match self {
            HandoverEnd::Observed => "observed",
            HandoverEnd::TimedOut => "timed_out",
            HandoverEnd::Regained => "regained",
            HandoverEnd::NoSuccessor => "no_successor",
        }
    }
}

/// A finished hand-over: how long this node answered after losing the address, and why it
/// stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandoverEnded {
    /// The address.
    pub ip: IpAddr,
    /// The node it went to (as last named by the election).
    pub to: Option<String>,
    /// From the loss to the end: the longest both nodes can have answered together.
    pub lasted: Duration,
    /// Why it ended.
    pub how: HandoverEnd,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Releasing {
    to: Option<String>,
    since: Instant,
    /// When answering ends: [`HANDOVER_WINDOW`] after the loss, or [`AFTER_SEEN`] after the
    /// new owner's announcement if that comes first.
    until: Instant,
    /// The new owner's announcement was seen.
    seen: bool,
}

/// The addresses this node is handing over, each with its successor and deadline.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Handovers {
    releasing: BTreeMap<IpAddr, Releasing>,
}

impl Handovers {
    /// No hand-over in progress.
    pub fn new() -> Self {
        Handovers::default()
    }

    /// A new owned set. `before` are the addresses this node owned until now, `owned` the
    /// ones it owns from now on, `owners` the election's owner of every address (`me` is this
    /// node). An address lost to another node starts a hand-over when `make_before_break` is
    /// on; one lost to no node, or with it off, is released at once (it is simply not added).
    /// Hand-overs in progress end when the address is owned again or nobody owns it any more,
    /// and follow a change of successor without restarting their window.
    pub fn update(
        &mut self,
        before: &BTreeSet<IpAddr>,
        owned: &BTreeSet<IpAddr>,
        owners: &Owners,
        me: &str,
        make_before_break: bool,
        now: Instant,
    ) -> Vec<HandoverEnded> {
        let successor = |ip: &IpAddr| -> Option<String> {
            owners
                .get(ip)
                .cloned()
                .flatten()
                .filter(|o| o.as_str() != me)
        };
        let mut ended = Vec::new();
        let ips: Vec<IpAddr> = self.releasing.keys().copied().collect();
        for ip in ips {
            let how = if owned.contains(&ip) {
                Some(HandoverEnd::Regained)
            } else if !make_before_break || successor(&ip).is_none() {
                Some(HandoverEnd::NoSuccessor)
            } else {
                None
            };
            match how {
                Some(how) => ended.extend(self.end(ip, how, now)),
                None => {
                    if let Some(r) = self.releasing.get_mut(&ip) {
                        r.to = successor(&ip);
                    }
                }
            }
        }
        if make_before_break {
            for ip in before.difference(owned) {
                if let Some(to) = successor(ip) {
                    self.releasing.entry(*ip).or_insert(Releasing {
                        to: Some(to),
                        since: now,
                        until: now + HANDOVER_WINDOW,
                        seen: false,
                    });
                }
            }
        }
        ended
    }

    /// Hands every address of `owned` over to whichever node takes it next (this node is
    /// leaving the membership, so it cannot know which): each is answered until its new
    /// owner's announcement is seen, or for [`HANDOVER_WINDOW`].
    pub fn release_all(&mut self, owned: &BTreeSet<IpAddr>, now: Instant) {
        for ip in owned {
            self.releasing.entry(*ip).or_insert(Releasing {
                to: None,
                since: now,
                until: now + HANDOVER_WINDOW,
                seen: false,
            });
        }
    }

    /// Another node announced `ip` on the wire: if it was being handed over, it ends
    /// [`AFTER_SEEN`] from now (or at its window, if sooner); whether it was.
    pub fn observed(&mut self, ip: IpAddr, now: Instant) -> bool {
        match self.releasing.get_mut(&ip) {
            Some(r) => {
                if !r.seen {
                    r.seen = true;
                    r.until = r.until.min(now + AFTER_SEEN);
                }
                true
            }
            None => false,
        }
    }

    /// Ends the hand-overs due at `now`: [`HandoverEnd::Observed`] for those whose new owner
    /// was seen, [`HandoverEnd::TimedOut`] for the others.
    pub fn expire(&mut self, now: Instant) -> Vec<HandoverEnded> {
        let due: Vec<(IpAddr, bool)> = self
            .releasing
            .iter()
            .filter(|(_, r)| now >= r.until)
            .map(|(ip, r)| (*ip, r.seen))
            .collect();
        due.into_iter()
            .filter_map(|(ip, seen)| {
                let how = if seen {
                    HandoverEnd::Observed
                } else {
                    HandoverEnd::TimedOut
                };
                self.end(ip, how, now)
            })
            .collect()
    }

    /// The addresses still answered while handed over.
    pub fn answering(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.releasing.keys().copied()
    }

    /// Whether `ip` is being handed over.
    pub fn is_releasing(&self, ip: IpAddr) -> bool {
        self.releasing.contains_key(&ip)
    }

    /// Whether no hand-over is in progress.
    pub fn is_empty(&self) -> bool {
        self.releasing.is_empty()
    }

    /// When the next window closes.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.releasing.values().map(|r| r.until).min()
    }

    fn end(&mut self, ip: IpAddr, how: HandoverEnd, now: Instant) -> Option<HandoverEnded> {
        let r = self.releasing.remove(&ip)?;
        Some(HandoverEnded {
            ip,
            to: r.to,
            lasted: now.saturating_duration_since(r.since),
            how,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn set(ips: &[&str]) -> BTreeSet<IpAddr> {
        ips.iter().map(|s| ip(s)).collect()
    }

    fn owners(list: &[(&str, Option<&str>)]) -> Owners {
        list.iter()
            .map(|(i, o)| (ip(i), o.map(str::to_string)))
            .collect()
    }

    #[test]
    fn a_planned_move_answers_until_the_new_owner_is_seen() {
        let t0 = Instant::now();
        let mut h = Handovers::new();
        let ended = h.update(
            &set(&["10.200.0.10", "10.200.0.11"]),
            &set(&["10.200.0.11"]),
            &owners(&[("10.200.0.10", Some("b")), ("10.200.0.11", Some("a"))]),
            "a",
            true,
            t0,
        );
        assert!(ended.is_empty());
        assert_eq!(h.answering().collect::<Vec<_>>(), [ip("10.200.0.10")]);
        assert_eq!(h.next_deadline(), Some(t0 + HANDOVER_WINDOW));
        // Another address announced by someone else is no business of ours.
        assert!(!h.observed(ip("10.200.0.99"), t0));
        let t1 = t0 + Duration::from_millis(7);
        assert!(h.observed(ip("10.200.0.10"), t1));
        // Seen again: the end does not move.
        assert!(h.observed(ip("10.200.0.10"), t1 + Duration::from_millis(5)));
        assert_eq!(h.next_deadline(), Some(t1 + AFTER_SEEN));
        assert!(
            h.expire(t1 + AFTER_SEEN - Duration::from_millis(1))
                .is_empty()
        );
        assert_eq!(
            h.expire(t1 + AFTER_SEEN),
            [HandoverEnded {
                ip: ip("10.200.0.10"),
                to: Some("b".into()),
                lasted: Duration::from_millis(7) + AFTER_SEEN,
                how: HandoverEnd::Observed,
            }]
        );
        assert!(h.is_empty());
        assert_eq!(h.next_deadline(), None);
    }

    #[test]
    fn the_window_bounds_a_hand_over_nobody_confirms() {
        let t0 = Instant::now();
        let mut h = Handovers::new();
        h.update(
            &set(&["10.200.0.10"]),
            &set(&[]),
            &owners(&[("10.200.0.10", Some("b"))]),
            "a",
            true,
            t0,
        );
        assert!(
            h.expire(t0 + HANDOVER_WINDOW - Duration::from_millis(1))
                .is_empty()
        );
        assert!(h.is_releasing(ip("10.200.0.10")));
        let ended = h.expire(t0 + HANDOVER_WINDOW);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].how, HandoverEnd::TimedOut);
        assert_eq!(ended[0].lasted, HANDOVER_WINDOW);
        assert!(h.is_empty());
    }

    #[test]
    fn no_successor_or_mode_off_releases_at_once() {
        let t0 = Instant::now();
        let mut h = Handovers::new();
        // Nobody eligible: nothing to hand over to.
        h.update(
            &set(&["10.200.0.10"]),
            &set(&[]),
            &owners(&[("10.200.0.10", None)]),
            "a",
            true,
            t0,
        );
        assert!(h.is_empty());
        // Unknown to the election (the Service went away).
        h.update(
            &set(&["10.200.0.10"]),
            &set(&[]),
            &Owners::new(),
            "a",
            true,
            t0,
        );
        assert!(h.is_empty());
        // MetalLB-like: break before make.
        h.update(
            &set(&["10.200.0.10"]),
            &set(&[]),
            &owners(&[("10.200.0.10", Some("b"))]),
            "a",
            false,
            t0,
        );
        assert!(h.is_empty());
    }

    #[test]
    fn hand_overs_follow_the_election() {
        let t0 = Instant::now();
        let mut h = Handovers::new();
        let a = ip("10.200.0.10");
        h.update(
            &set(&["10.200.0.10"]),
            &set(&[]),
            &owners(&[("10.200.0.10", Some("b"))]),
            "a",
            true,
            t0,
        );
        // The successor changes: the window is not restarted.
        let t1 = t0 + Duration::from_millis(100);
        assert!(
            h.update(
                &set(&[]),
                &set(&[]),
                &owners(&[("10.200.0.10", Some("c"))]),
                "a",
                true,
                t1
            )
            .is_empty()
        );
        assert_eq!(h.next_deadline(), Some(t0 + HANDOVER_WINDOW));
        // It comes back to us: regained, answered as an owned address again.
        let t2 = t0 + Duration::from_millis(200);
        let ended = h.update(
            &set(&[]),
            &set(&["10.200.0.10"]),
            &owners(&[("10.200.0.10", Some("a"))]),
            "a",
            true,
            t2,
        );
        assert_eq!(
            ended,
            [HandoverEnded {
                ip: a,
                to: Some("c".into()),
                lasted: Duration::from_millis(200),
                how: HandoverEnd::Regained
            }]
        );
        // Lost again, then nobody owns it: stops at once.
        h.update(
            &set(&["10.200.0.10"]),
            &set(&[]),
            &owners(&[("10.200.0.10", Some("b"))]),
            "a",
            true,
            t2,
        );
        let ended = h.update(
            &set(&[]),
            &set(&[]),
            &owners(&[("10.200.0.10", None)]),
            "a",
            true,
            t2,
        );
        assert_eq!(ended[0].how, HandoverEnd::NoSuccessor);
        // Lost again, then the mode is turned off: stops at once.
        h.update(
            &set(&["10.200.0.10"]),
            &set(&[]),
            &owners(&[("10.200.0.10", Some("b"))]),
            "a",
            true,
            t2,
        );
        let ended = h.update(
            &set(&[]),
            &set(&[]),
            &owners(&[("10.200.0.10", Some("b"))]),
            "a",
            false,
            t2,
        );
        assert_eq!(ended[0].how, HandoverEnd::NoSuccessor);
        assert!(h.is_empty());
    }

    #[test]
    fn a_leaving_node_hands_everything_over_and_keeps_its_first_deadline() {
        let t0 = Instant::now();
        let mut h = Handovers::new();
        h.update(
            &set(&["10.200.0.10"]),
            &set(&["10.200.0.11"]),
            &owners(&[("10.200.0.10", Some("b"))]),
            "a",
            true,
            t0,
        );
        let t1 = t0 + Duration::from_millis(300);
        h.release_all(&set(&["10.200.0.11", "fd00:200::10"]), t1);
        assert_eq!(h.answering().count(), 3);
        assert_eq!(h.next_deadline(), Some(t0 + HANDOVER_WINDOW));
        assert_eq!(h.expire(t0 + HANDOVER_WINDOW).len(), 1);
        assert!(h.observed(ip("fd00:200::10"), t1 + Duration::from_millis(3)));
        let ended = h.expire(t1 + Duration::from_millis(3) + AFTER_SEEN);
        assert_eq!(
            ended
                .iter()
                .map(|e| (e.to.clone(), e.how))
                .collect::<Vec<_>>(),
            [(None, HandoverEnd::Observed)]
        );
        assert_eq!(h.expire(t1 + HANDOVER_WINDOW).len(), 1);
        assert!(h.is_empty());
    }
}
