//! Metrics of the gossip membership and the heartbeats.

use super::deltas::CounterDeltas;
use crate::membership::MembershipCounterValues;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;

/// The membership's counters, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum MembershipCounter {
    AuthFailures,
    PresumedDown,
    Revoked,
}

/// Membership metrics.
#[derive(Default)]
pub struct MembershipMetrics {
    /// Alive members of the membership (including this node).
    pub members: Gauge,
    /// Changes of the alive set.
    pub changes: Counter,
    /// Membership datagrams dropped for failed authentication.
    pub auth_failures: Counter,
    /// Speakers presumed down for missing heartbeats.
    pub heartbeat_presumed_down: Counter,
    /// Heartbeat presumptions revoked.
    pub heartbeat_revoked: Counter,
    deltas: CounterDeltas<(), MembershipCounter>,
}

impl MembershipMetrics {
    pub(crate) fn register(r: &mut Registry) -> Self {
        let m = Self::default();
        r.register(
            "membership_members",
            "Alive members, this node included",
            m.members.clone(),
        );
        r.register(
            "membership_changes",
            "Changes of the alive set",
            m.changes.clone(),
        );
        r.register(
            "membership_auth_failures",
            "Gossip and heartbeat datagrams dropped for failed authentication",
            m.auth_failures.clone(),
        );
        r.register(
            "heartbeat_presumed_down",
            "Speakers this node presumed down for missing heartbeats, taking over their layer 2 addresses before the gossip confirmed",
            m.heartbeat_presumed_down.clone(),
        );
        r.register(
            "heartbeat_revoked",
            "Presumptions revoked: the speaker beat again, or the gossip did not confirm it down in time",
            m.heartbeat_revoked.clone(),
        );
        m
    }

    /// Copies the membership's counters in (a restarted membership counts from zero again).
    pub fn observe(&self, now: MembershipCounterValues) {
        let values = BTreeMap::from([
            (MembershipCounter::AuthFailures, now.auth_failures),
            (MembershipCounter::PresumedDown, now.heartbeat_presumed_down),
            (MembershipCounter::Revoked, now.heartbeat_revoked),
        ]);
        for (counter, grown) in self.deltas.advance((), values) {
            match counter {
                MembershipCounter::AuthFailures => &self.auth_failures,
                MembershipCounter::PresumedDown => &self.heartbeat_presumed_down,
                MembershipCounter::Revoked => &self.heartbeat_revoked,
            }
            .inc_by(grown);
        }
    }

    /// Sets the member count.
    pub fn set_members(&self, alive: usize) {
        self.members.set(i64::try_from(alive).unwrap_or(i64::MAX));
    }
}
