//! Metrics of the BGP sessions.

use super::deltas::CounterDeltas;
use super::labels::{NotificationLabels, PeerLabels};
use crate::bgp::session::{NotificationKey, SessionCounters};
use ferrolb_api::status::BgpPeerStatus;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

/// A session's counters, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum BgpCounter {
    UpdatesSent,
    UpdatesReceived,
    Notifications(NotificationKey),
}

/// BGP metrics.
#[derive(Default)]
pub struct BgpMetrics {
    /// 1 when the BGP session is Established.
    pub session_up: Family<PeerLabels, Gauge>,
    /// UPDATE messages sent.
    pub updates_sent: Family<PeerLabels, Counter>,
    /// UPDATE messages received.
    pub updates_received: Family<PeerLabels, Counter>,
    /// NOTIFICATION messages by direction (the last one's code is in the status API).
    pub notifications: Family<NotificationLabels, Counter>,
    /// Prefixes advertised to the peer.
    pub prefixes_advertised: Family<PeerLabels, Gauge>,
    deltas: CounterDeltas<String, BgpCounter>,
}

impl BgpMetrics {
    pub(crate) fn register(r: &mut Registry) -> Self {
        let m = Self::default();
        r.register(
            "bgp_session_up",
            "1 when the session is Established",
            m.session_up.clone(),
        );
        r.register(
            "bgp_updates_sent",
            "UPDATE messages sent",
            m.updates_sent.clone(),
        );
        r.register(
            "bgp_updates_received",
            "UPDATE messages received",
            m.updates_received.clone(),
        );
        r.register(
            "bgp_notifications",
            "NOTIFICATION messages by direction, code and subcode",
            m.notifications.clone(),
        );
        r.register(
            "bgp_prefixes_advertised",
            "Prefixes advertised to the peer",
            m.prefixes_advertised.clone(),
        );
        m
    }

    /// Sets the per-session gauges from the sessions' status.
    pub fn observe_status(&self, sessions: &[BgpPeerStatus]) {
        for p in sessions {
            let labels = PeerLabels {
                peer: p.name.clone(),
            };
            self.session_up
                .get_or_create(&labels)
                .set(i64::from(p.state == "Established"));
            self.prefixes_advertised
                .get_or_create(&labels)
                .set(i64::try_from(p.prefixes_advertised).unwrap_or(i64::MAX));
        }
    }

    /// Copies the sessions' counters in (a reconnected session counts from zero again).
    pub fn observe(&self, sessions: &[(String, Arc<SessionCounters>)]) {
        for (peer, c) in sessions {
            let mut values = BTreeMap::from([
                (BgpCounter::UpdatesSent, c.updates_sent.load(Relaxed)),
                (
                    BgpCounter::UpdatesReceived,
                    c.updates_received.load(Relaxed),
                ),
            ]);
            values.extend(
                c.notifications_by_code()
                    .into_iter()
                    .map(|(k, n)| (BgpCounter::Notifications(k), n)),
            );
            let labels = PeerLabels { peer: peer.clone() };
            for (counter, grown) in self.deltas.advance(peer.clone(), values) {
                match counter {
                    BgpCounter::UpdatesSent => self.updates_sent.get_or_create(&labels),
                    BgpCounter::UpdatesReceived => self.updates_received.get_or_create(&labels),
                    BgpCounter::Notifications((direction, code, subcode)) => {
                        self.notifications.get_or_create(&NotificationLabels {
                            peer: peer.clone(),
                            direction: direction.name().into(),
                            code: code.to_string(),
                            subcode: subcode.to_string(),
                        })
                    }
                }
                .inc_by(grown);
            }
        }
    }
}
