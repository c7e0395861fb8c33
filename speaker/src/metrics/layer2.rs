//! Metrics of the layer 2 announcer and its elections.

use super::deltas::CounterDeltas;
use super::labels::FamilyLabels;
use crate::layer2::announcer::L2CounterValues;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
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
    deltas: CounterDeltas<(), L2Counter>,
}

impl Layer2Metrics {
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
            }
            .inc_by(grown);
        }
    }
}
