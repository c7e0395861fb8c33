//! Metrics of the layer 2 announcer and its elections.

use super::deltas::CounterDeltas;
use super::labels::{FamilyLabels, InterfaceLabels};
use crate::layer2::announcer::L2CounterValues;
use ferrolb_speaker_core::layer2::carrier::LinkReport;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;

/// The announcer's counters, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum L2Counter {
    GarpSent,
    UnsolicitedNaSent,
    ArpAnswered,
    NdpAnswered,
    Errors,
    KernelLeaseLapses,
    HandoversObserved,
    HandoversTimedOut,
    HandoverMicros,
}

/// Layer 2 metrics.
#[derive(Default)]
pub struct Layer2Metrics {
    /// Gratuitous ARP / unsolicited NA sent, per family.
    pub gratuitous_sent: Family<FamilyLabels, Counter>,
    /// ARP requests / Neighbor Solicitations answered, per family.
    pub requests_answered: Family<FamilyLabels, Counter>,
    /// Layer 2 socket or send errors.
    pub errors: Counter,
    /// Kernel responder lease renewals that came too late.
    pub kernel_lease_lapses: Counter,
    /// Layer 2 owner changes seen by this node.
    pub election_changes: Counter,
    /// Make-before-break hand-overs ended by seeing the new owner's announcement.
    pub handovers_observed: Counter,
    /// Make-before-break hand-overs ended by their window.
    pub handovers_timed_out: Counter,
    /// Seconds this node answered for addresses after losing them to a live node (summed).
    pub handover_answering_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
    /// 1 when an interface this node can announce on has carrier, 0 when it has none.
    pub interface_carrier: Family<InterfaceLabels, Gauge>,
    deltas: CounterDeltas<(), L2Counter>,
}

impl Layer2Metrics {
    /// Sets the carrier gauge to this node's report; interfaces no longer in it go.
    pub(crate) fn observe_carrier(&self, report: &[LinkReport]) {
        self.interface_carrier.clear();
        for l in report {
            self.interface_carrier
                .get_or_create(&InterfaceLabels {
                    interface: l.name.clone(),
                })
                .set(i64::from(l.carrier));
        }
    }

    pub(crate) fn register(r: &mut Registry) -> Self {
        let m = Self::default();
        r.register(
            "gratuitous_sent",
            "Gratuitous ARP (ipv4) and unsolicited Neighbor Advertisements (ipv6) sent",
            m.gratuitous_sent.clone(),
        );
        r.register(
            "requests_answered",
            "ARP requests (ipv4) and Neighbor Solicitations (ipv6) answered",
            m.requests_answered.clone(),
        );
        r.register(
            "l2_errors",
            "Layer 2 socket and send errors",
            m.errors.clone(),
        );
        r.register(
            "l2_kernel_lease_lapses",
            "Times the in-kernel responder's lease ran out before the speaker renewed it (the sockets answered meanwhile)",
            m.kernel_lease_lapses.clone(),
        );
        r.register(
            "election_changes",
            "Layer 2 owner changes seen by this node",
            m.election_changes.clone(),
        );
        r.register(
            "l2_handovers_observed",
            "Addresses lost to a live node whose hand-over ended when the new owner's gratuitous ARP / unsolicited NA was seen",
            m.handovers_observed.clone(),
        );
        r.register(
            "l2_handovers_timed_out",
            "Addresses lost to a live node whose hand-over ended by its 500 ms window",
            m.handovers_timed_out.clone(),
        );
        r.register(
            "l2_handover_answering_seconds",
            "Time this node kept answering for addresses after losing them to a live node, summed over hand-overs (divide by the hand-over count for the mean both-answering window)",
            m.handover_answering_seconds.clone(),
        );
        r.register(
            "l2_interface_carrier",
            "1 when an interface this node can announce on in layer 2 has carrier, 0 when it has none (a node without carrier on the interfaces an L2Advertisement selects is not eligible for its addresses)",
            m.interface_carrier.clone(),
        );
        m
    }

    /// Copies the announcer's counters in.
    pub fn observe(&self, now: L2CounterValues) {
        let values = BTreeMap::from([
            (L2Counter::GarpSent, now.garp_sent),
            (L2Counter::UnsolicitedNaSent, now.unsolicited_na_sent),
            (L2Counter::ArpAnswered, now.arp_requests_answered),
            (L2Counter::NdpAnswered, now.ndp_solicitations_answered),
            (L2Counter::Errors, now.errors),
            (L2Counter::KernelLeaseLapses, now.kernel_lease_lapses),
            (L2Counter::HandoversObserved, now.handovers_observed),
            (L2Counter::HandoversTimedOut, now.handovers_timed_out),
            (L2Counter::HandoverMicros, now.handover_micros),
        ]);
        for (counter, grown) in self.deltas.advance((), values) {
            match counter {
                L2Counter::GarpSent => self.gratuitous_sent.get_or_create(&FamilyLabels::ipv4()),
                L2Counter::UnsolicitedNaSent => {
                    self.gratuitous_sent.get_or_create(&FamilyLabels::ipv6())
                }
                L2Counter::ArpAnswered => {
                    self.requests_answered.get_or_create(&FamilyLabels::ipv4())
                }
                L2Counter::NdpAnswered => {
                    self.requests_answered.get_or_create(&FamilyLabels::ipv6())
                }
                L2Counter::Errors => {
                    self.errors.inc_by(grown);
                    continue;
                }
                L2Counter::KernelLeaseLapses => {
                    self.kernel_lease_lapses.inc_by(grown);
                    continue;
                }
                L2Counter::HandoversObserved => {
                    self.handovers_observed.inc_by(grown);
                    continue;
                }
                L2Counter::HandoversTimedOut => {
                    self.handovers_timed_out.inc_by(grown);
                    continue;
                }
                L2Counter::HandoverMicros => {
                    // Microseconds to seconds; exact in f64 for any realistic sum.
                    self.handover_answering_seconds.inc_by(grown as f64 / 1e6);
                    continue;
                }
            }
            .inc_by(grown);
        }
    }
}
