//! Metrics of the BFD sessions protecting BGP peers.

use super::deltas::CounterDeltas;
use super::labels::PeerLabels;
use crate::bfd::BfdCounters;
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
enum BfdCounter {
    PacketsSent,
    PacketsReceived,
    StateChanges,
    EchoPacketsSent,
    EchoPacketsReceived,
}

/// BFD metrics.
#[derive(Default)]
pub struct BfdMetrics {
    /// 1 when the BFD session protecting the peer is Up.
    pub session_up: Family<PeerLabels, Gauge>,
    /// BFD control packets sent.
    pub packets_sent: Family<PeerLabels, Counter>,
    /// BFD control packets received.
    pub packets_received: Family<PeerLabels, Counter>,
    /// BFD session state changes.
    pub state_changes: Family<PeerLabels, Counter>,
    /// 1 while the session's Echo function runs.
    pub echo_active: Family<PeerLabels, Gauge>,
    /// Echo packets sent (to ourselves, through the peer).
    pub echo_packets_sent: Family<PeerLabels, Counter>,
    /// Our echo packets that came back.
    pub echo_packets_received: Family<PeerLabels, Counter>,
    deltas: CounterDeltas<String, BfdCounter>,
}

impl BfdMetrics {
    pub(crate) fn register(r: &mut Registry) -> Self {
        let m = Self::default();
        r.register(
            "bfd_session_up",
            "1 when the BFD session protecting the BGP peer is Up",
            m.session_up.clone(),
        );
        r.register(
            "bfd_packets_sent",
            "BFD control packets sent",
            m.packets_sent.clone(),
        );
        r.register(
            "bfd_packets_received",
            "BFD control packets received",
            m.packets_received.clone(),
        );
        r.register(
            "bfd_state_changes",
            "BFD session state changes",
            m.state_changes.clone(),
        );
        r.register(
            "bfd_echo_active",
            "1 while the BFD Echo function runs for the peer's session",
            m.echo_active.clone(),
        );
        r.register(
            "bfd_echo_packets_sent",
            "BFD echo packets sent (addressed to this node, looped back by the peer)",
            m.echo_packets_sent.clone(),
        );
        r.register(
            "bfd_echo_packets_received",
            "BFD echo packets of this node that came back through the peer",
            m.echo_packets_received.clone(),
        );
        m
    }

    /// Sets the per-session gauge from the BGP sessions' status (the BFD state is part of it).
    pub fn observe_status(&self, sessions: &[BgpPeerStatus]) {
        for p in sessions {
            if let Some(bfd) = &p.bfd {
                self.session_up
                    .get_or_create(&PeerLabels {
                        peer: p.name.clone(),
                    })
                    .set(i64::from(bfd.state == "Up"));
                self.echo_active
                    .get_or_create(&PeerLabels {
                        peer: p.name.clone(),
                    })
                    .set(i64::from(bfd.echo_active));
            }
        }
    }

    /// Copies the sessions' counters in (a session created anew counts from zero again).
    pub fn observe(&self, sessions: &BTreeMap<String, Arc<BfdCounters>>) {
        for (peer, c) in sessions {
            let values = BTreeMap::from([
                (BfdCounter::PacketsSent, c.packets_sent.load(Relaxed)),
                (
                    BfdCounter::PacketsReceived,
                    c.packets_received.load(Relaxed),
                ),
                (BfdCounter::StateChanges, c.state_changes.load(Relaxed)),
                (
                    BfdCounter::EchoPacketsSent,
                    c.echo_packets_sent.load(Relaxed),
                ),
                (
                    BfdCounter::EchoPacketsReceived,
                    c.echo_packets_received.load(Relaxed),
                ),
            ]);
            let labels = PeerLabels { peer: peer.clone() };
            for (counter, grown) in self.deltas.advance(peer.clone(), values) {
                match counter {
                    BfdCounter::PacketsSent => &self.packets_sent,
                    BfdCounter::PacketsReceived => &self.packets_received,
                    BfdCounter::StateChanges => &self.state_changes,
                    BfdCounter::EchoPacketsSent => &self.echo_packets_sent,
                    BfdCounter::EchoPacketsReceived => &self.echo_packets_received,
                }
                .get_or_create(&labels)
                .inc_by(grown);
            }
        }
    }
}
