//! Prometheus metrics of the speaker. Counters kept by the runtime components (announcer, BGP
//! sessions) are copied in as deltas when the loop refreshes, so each component keeps plain
//! atomics and knows nothing about Prometheus.

use crate::layer2::announcer::L2CounterValues;
use crate::membership::MembershipCounterValues;
use ferrolb_runtime::sync::lock;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Mutex;

/// Label of per-mode metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabels {
    /// `layer2` or `bgp`.
    pub mode: String,
}

/// Label of the addresses announced nowhere.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotAnnouncedLabels {
    /// `NoPool`, `NoAdvertisement`, `ModeDisabled`, `NoMatchingAdvertisement`,
    /// `SharedIPWithServiceSelectors`, `NoServingEndpoint` or `NoEligibleNode`.
    pub reason: String,
}

/// Label of per-family metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FamilyLabels {
    /// `ipv4` or `ipv6`.
    pub family: String,
}

/// Label of per-peer metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    /// `namespace/name` of the BGPPeer.
    pub peer: String,
}

/// Labels of NOTIFICATION counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    /// `namespace/name` of the BGPPeer.
    pub peer: String,
    /// `sent` or `received`.
    pub direction: String,
    /// Error code (RFC 4271 §4.5), e.g. `6` for Cease.
    pub code: String,
    /// Error subcode, e.g. `2` for Administrative Shutdown.
    pub subcode: String,
}

/// BGP counters of one session as last copied into the metrics.
#[derive(Clone, Debug, Default)]
struct BgpCounterValues {
    updates_sent: u64,
    updates_received: u64,
    notifications: std::collections::BTreeMap<crate::bgp::session::NotificationKey, u64>,
}

impl BgpCounterValues {
    /// Whether every counter of `self` is at most the one in `now` (else the session was
    /// replaced and counts from zero).
    fn not_after(&self, now: &BgpCounterValues) -> bool {
        self.updates_sent <= now.updates_sent
            && self.updates_received <= now.updates_received
            && self
                .notifications
                .iter()
                .all(|(k, v)| now.notifications.get(k).is_some_and(|n| v <= n))
    }
}

/// Every metric the speaker exports.
pub struct Metrics {
    registry: Registry,
    /// Addresses this node announces, per mode.
    pub announced: Family<ModeLabels, Gauge>,
    /// Assigned addresses no node announces, per reason (cluster-wide: every speaker computes
    /// the same numbers).
    pub not_announced: Family<NotAnnouncedLabels, Gauge>,
    /// Gratuitous ARP / unsolicited NA sent, per family.
    pub gratuitous_sent: Family<FamilyLabels, Counter>,
    /// ARP requests / Neighbor Solicitations answered, per family.
    pub requests_answered: Family<FamilyLabels, Counter>,
    /// Layer 2 socket or send errors.
    pub l2_errors: Counter,
    /// Kernel responder lease renewals that came too late.
    pub l2_kernel_lease_lapses: Counter,
    /// Alive members of the membership (including this node).
    pub members: Gauge,
    /// Changes of the alive set.
    pub membership_changes: Counter,
    /// Layer 2 owner changes seen by this node.
    pub election_changes: Counter,
    /// Membership datagrams dropped for failed authentication.
    pub membership_auth_failures: Counter,
    /// Speakers presumed down for missing heartbeats.
    pub heartbeat_presumed_down: Counter,
    /// Heartbeat presumptions revoked.
    pub heartbeat_revoked: Counter,
    /// 1 when the BGP session is Established.
    pub bgp_session_up: Family<PeerLabels, Gauge>,
    /// UPDATE messages sent.
    pub bgp_updates_sent: Family<PeerLabels, Counter>,
    /// UPDATE messages received.
    pub bgp_updates_received: Family<PeerLabels, Counter>,
    /// NOTIFICATION messages by direction (the last one's code is in the status API).
    pub bgp_notifications: Family<NotificationLabels, Counter>,
    /// Prefixes advertised to the peer.
    pub bgp_prefixes_advertised: Family<PeerLabels, Gauge>,
    /// 1 when the BFD session protecting the peer is Up.
    pub bfd_session_up: Family<PeerLabels, Gauge>,
    /// BFD control packets sent.
    pub bfd_packets_sent: Family<PeerLabels, Counter>,
    /// BFD control packets received.
    pub bfd_packets_received: Family<PeerLabels, Counter>,
    /// BFD session state changes.
    pub bfd_state_changes: Family<PeerLabels, Counter>,
    /// 1 when the latest configuration is valid.
    pub config_valid: Gauge,
    last_bfd: Mutex<std::collections::HashMap<String, [u64; 3]>>,
    last_l2: Mutex<L2CounterValues>,
    last_membership: Mutex<MembershipCounterValues>,
    last_bgp: Mutex<std::collections::HashMap<String, BgpCounterValues>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric under the `ferrolb_speaker` prefix.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("ferrolb_speaker");
        let m = Self {
            announced: Family::default(),
            not_announced: Family::default(),
            gratuitous_sent: Family::default(),
            requests_answered: Family::default(),
            l2_errors: Counter::default(),
            l2_kernel_lease_lapses: Counter::default(),
            members: Gauge::default(),
            membership_changes: Counter::default(),
            election_changes: Counter::default(),
            membership_auth_failures: Counter::default(),
            heartbeat_presumed_down: Counter::default(),
            heartbeat_revoked: Counter::default(),
            last_membership: Mutex::new(MembershipCounterValues::default()),
            bgp_session_up: Family::default(),
            bgp_updates_sent: Family::default(),
            bgp_updates_received: Family::default(),
            bgp_notifications: Family::default(),
            bgp_prefixes_advertised: Family::default(),
            bfd_session_up: Family::default(),
            bfd_packets_sent: Family::default(),
            bfd_packets_received: Family::default(),
            bfd_state_changes: Family::default(),
            last_bfd: Mutex::new(std::collections::HashMap::new()),
            config_valid: Gauge::default(),
            last_l2: Mutex::new(L2CounterValues::default()),
            last_bgp: Mutex::new(std::collections::HashMap::new()),
            registry: Registry::default(),
        };
        r.register(
            "announced_ips",
            "Addresses this node announces",
            m.announced.clone(),
        );
        r.register(
            "not_announced_ips",
            "Assigned addresses that no node announces, by reason (the same on every speaker)",
            m.not_announced.clone(),
        );
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
            m.l2_errors.clone(),
        );
        r.register(
            "l2_kernel_lease_lapses",
            "Times the in-kernel responder's lease ran out before the speaker renewed it (the sockets answered meanwhile)",
            m.l2_kernel_lease_lapses.clone(),
        );
        r.register(
            "membership_members",
            "Alive members, this node included",
            m.members.clone(),
        );
        r.register(
            "membership_changes",
            "Changes of the alive set",
            m.membership_changes.clone(),
        );
        r.register(
            "election_changes",
            "Layer 2 owner changes seen by this node",
            m.election_changes.clone(),
        );
        r.register(
            "membership_auth_failures",
            "Gossip and heartbeat datagrams dropped for failed authentication",
            m.membership_auth_failures.clone(),
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
        r.register(
            "bgp_session_up",
            "1 when the session is Established",
            m.bgp_session_up.clone(),
        );
        r.register(
            "bgp_updates_sent",
            "UPDATE messages sent",
            m.bgp_updates_sent.clone(),
        );
        r.register(
            "bgp_updates_received",
            "UPDATE messages received",
            m.bgp_updates_received.clone(),
        );
        r.register(
            "bgp_notifications",
            "NOTIFICATION messages by direction, code and subcode",
            m.bgp_notifications.clone(),
        );
        r.register(
            "bgp_prefixes_advertised",
            "Prefixes advertised to the peer",
            m.bgp_prefixes_advertised.clone(),
        );
        r.register(
            "bfd_session_up",
            "1 when the BFD session protecting the BGP peer is Up",
            m.bfd_session_up.clone(),
        );
        r.register(
            "bfd_packets_sent",
            "BFD control packets sent",
            m.bfd_packets_sent.clone(),
        );
        r.register(
            "bfd_packets_received",
            "BFD control packets received",
            m.bfd_packets_received.clone(),
        );
        r.register(
            "bfd_state_changes",
            "BFD session state changes",
            m.bfd_state_changes.clone(),
        );
        r.register(
            "config_valid",
            "1 when the latest configuration is valid",
            m.config_valid.clone(),
        );
        Self { registry: r, ..m }
    }

    /// Copies the announcer's counters in (as deltas since the last call).
    pub fn observe_l2(&self, now: L2CounterValues) {
        let mut last = lock(&self.last_l2);
        let v4 = FamilyLabels {
            family: "ipv4".into(),
        };
        let v6 = FamilyLabels {
            family: "ipv6".into(),
        };
        self.gratuitous_sent
            .get_or_create(&v4)
            .inc_by(now.garp_sent.saturating_sub(last.garp_sent));
        self.gratuitous_sent.get_or_create(&v6).inc_by(
            now.unsolicited_na_sent
                .saturating_sub(last.unsolicited_na_sent),
        );
        self.requests_answered.get_or_create(&v4).inc_by(
            now.arp_requests_answered
                .saturating_sub(last.arp_requests_answered),
        );
        self.requests_answered.get_or_create(&v6).inc_by(
            now.ndp_solicitations_answered
                .saturating_sub(last.ndp_solicitations_answered),
        );
        self.l2_errors
            .inc_by(now.errors.saturating_sub(last.errors));
        self.l2_kernel_lease_lapses.inc_by(
            now.kernel_lease_lapses
                .saturating_sub(last.kernel_lease_lapses),
        );
        *last = now;
    }

    /// Copies the membership's counters in (as deltas; a restarted membership starts again
    /// from zero).
    pub fn observe_membership(&self, now: MembershipCounterValues) {
        let mut last = lock(&self.last_membership);
        if now.auth_failures < last.auth_failures
            || now.heartbeat_presumed_down < last.heartbeat_presumed_down
            || now.heartbeat_revoked < last.heartbeat_revoked
        {
            *last = MembershipCounterValues::default();
        }
        self.membership_auth_failures
            .inc_by(now.auth_failures - last.auth_failures);
        self.heartbeat_presumed_down
            .inc_by(now.heartbeat_presumed_down - last.heartbeat_presumed_down);
        self.heartbeat_revoked
            .inc_by(now.heartbeat_revoked - last.heartbeat_revoked);
        *last = now;
    }

    /// Copies the BGP sessions' counters in (as deltas since the last call, per peer).
    pub fn observe_bgp(
        &self,
        sessions: &[(String, std::sync::Arc<crate::bgp::session::SessionCounters>)],
    ) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut last = lock(&self.last_bgp);
        for (peer, c) in sessions {
            let now = BgpCounterValues {
                updates_sent: c.updates_sent.load(Relaxed),
                updates_received: c.updates_received.load(Relaxed),
                notifications: c.notifications_by_code(),
            };
            // A reconnected session starts its counters again from zero.
            let before = last
                .get(peer)
                .filter(|b| b.not_after(&now))
                .cloned()
                .unwrap_or_default();
            let labels = PeerLabels { peer: peer.clone() };
            self.bgp_updates_sent
                .get_or_create(&labels)
                .inc_by(now.updates_sent - before.updates_sent);
            self.bgp_updates_received
                .get_or_create(&labels)
                .inc_by(now.updates_received - before.updates_received);
            for (&(direction, code, subcode), &n) in &now.notifications {
                let was = before
                    .notifications
                    .get(&(direction, code, subcode))
                    .copied()
                    .unwrap_or(0);
                let l = NotificationLabels {
                    peer: peer.clone(),
                    direction: direction.name().into(),
                    code: code.to_string(),
                    subcode: subcode.to_string(),
                };
                self.bgp_notifications.get_or_create(&l).inc_by(n - was);
            }
            last.insert(peer.clone(), now);
        }
    }

    /// Copies the BFD sessions' counters in (as deltas since the last call, per peer).
    pub fn observe_bfd(
        &self,
        sessions: &std::collections::BTreeMap<String, std::sync::Arc<crate::bfd::BfdCounters>>,
    ) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut last = lock(&self.last_bfd);
        for (peer, c) in sessions {
            let now = [
                c.packets_sent.load(Relaxed),
                c.packets_received.load(Relaxed),
                c.state_changes.load(Relaxed),
            ];
            // A session created anew counts from zero again.
            let before = last
                .get(peer)
                .copied()
                .filter(|b| b.iter().zip(now.iter()).all(|(b, n)| b <= n))
                .unwrap_or_default();
            let labels = PeerLabels { peer: peer.clone() };
            for (i, family) in [
                &self.bfd_packets_sent,
                &self.bfd_packets_received,
                &self.bfd_state_changes,
            ]
            .into_iter()
            .enumerate()
            {
                family.get_or_create(&labels).inc_by(now[i] - before[i]);
            }
            last.insert(peer.clone(), now);
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        ferrolb_runtime::telemetry::encode_metrics(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l2_counters_are_copied_as_deltas() {
        let m = Metrics::new();
        m.observe_l2(L2CounterValues {
            garp_sent: 3,
            arp_requests_answered: 5,
            ..Default::default()
        });
        m.observe_l2(L2CounterValues {
            garp_sent: 4,
            arp_requests_answered: 9,
            ..Default::default()
        });
        let text = m.encode();
        assert!(
            text.contains(r#"ferrolb_speaker_gratuitous_sent_total{family="ipv4"} 4"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ferrolb_speaker_requests_answered_total{family="ipv4"} 9"#),
            "{text}"
        );
    }

    #[test]
    fn bgp_notifications_are_counted_by_code_and_survive_a_new_session() {
        use crate::bgp::session::{Direction, SessionCounters};
        use ferrolb_speaker_core::bgp::codec::Notification;
        use std::sync::Arc;
        let m = Metrics::new();
        let first = Arc::new(SessionCounters::default());
        first.count_notification(Direction::Received, &Notification::hold_timer_expired());
        first.count_notification(Direction::Sent, &Notification::cease_admin_shutdown());
        first.count_notification(Direction::Sent, &Notification::cease_admin_shutdown());
        m.observe_bgp(&[("ns/p".into(), first.clone())]);
        m.observe_bgp(&[("ns/p".into(), first)]);
        // The session is replaced: its counters start from zero and are added, not lost.
        let second = Arc::new(SessionCounters::default());
        second.count_notification(Direction::Sent, &Notification::cease_bfd_down());
        second.count_notification(Direction::Sent, &Notification::cease_admin_shutdown());
        m.observe_bgp(&[("ns/p".into(), second)]);
        let text = m.encode();
        for line in [
            r#"ferrolb_speaker_bgp_notifications_total{peer="ns/p",direction="received",code="4",subcode="0"} 1"#,
            r#"ferrolb_speaker_bgp_notifications_total{peer="ns/p",direction="sent",code="6",subcode="2"} 3"#,
            r#"ferrolb_speaker_bgp_notifications_total{peer="ns/p",direction="sent",code="6",subcode="10"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
