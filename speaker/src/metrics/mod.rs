//! Prometheus metrics of the speaker, one set per subsystem (announcements, layer 2,
//! membership, BGP, BFD), each registering its own under the `ferrolb_speaker` prefix, and
//! MetalLB's names under `metallb`.
//! Counters kept by the runtime components are plain atomics that know nothing about
//! Prometheus; each set copies them in by the one rule of [`deltas`].

mod announcements;
mod bfd;
mod bgp;
mod deltas;
pub mod labels;
mod layer2;
mod membership;
mod metallb;

pub use announcements::AnnouncementMetrics;
pub use bfd::BfdMetrics;
pub use bgp::BgpMetrics;
pub use layer2::Layer2Metrics;
pub use membership::MembershipMetrics;
pub use metallb::MetallbMetrics;

use prometheus_client::registry::Registry;

/// Every metric the speaker exports.
pub struct Metrics {
    registry: Registry,
    /// What this node announces, what no node announces, and the configuration's validity.
    pub announcements: AnnouncementMetrics,
    /// The layer 2 announcer and its elections.
    pub layer2: Layer2Metrics,
    /// The gossip membership and the heartbeats.
    pub membership: MembershipMetrics,
    /// The BGP sessions.
    pub bgp: BgpMetrics,
    /// The BFD sessions.
    pub bfd: BfdMetrics,
    /// MetalLB's names for what its dashboards read.
    pub metallb: MetallbMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates every subsystem's metrics in one registry.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let r = registry.sub_registry_with_prefix("ferrolb_speaker");
        let announcements = AnnouncementMetrics::register(r);
        let layer2 = Layer2Metrics::register(r);
        let membership = MembershipMetrics::register(r);
        let bgp = BgpMetrics::register(r);
        let bfd = BfdMetrics::register(r);
        let metallb = MetallbMetrics::register(registry.sub_registry_with_prefix("metallb"));
        Self {
            announcements,
            layer2,
            membership,
            bgp,
            bfd,
            metallb,
            registry,
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
    use crate::layer2::announcer::L2CounterValues;

    #[test]
    fn l2_counters_are_copied_as_deltas() {
        let m = Metrics::new();
        m.layer2.observe(L2CounterValues {
            garp_sent: 3,
            arp_requests_answered: 5,
            ..Default::default()
        });
        m.layer2.observe(L2CounterValues {
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
        m.bgp.observe(&[("ns/p".into(), first.clone())]);
        m.bgp.observe(&[("ns/p".into(), first)]);
        // The session is replaced: its counters start from zero and are added, not lost.
        let second = Arc::new(SessionCounters::default());
        second.count_notification(Direction::Sent, &Notification::cease_bfd_down());
        second.count_notification(Direction::Sent, &Notification::cease_admin_shutdown());
        m.bgp.observe(&[("ns/p".into(), second)]);
        let text = m.encode();
        for line in [
            r#"ferrolb_speaker_bgp_notifications_total{peer="ns/p",direction="received",code="4",subcode="0"} 1"#,
            r#"ferrolb_speaker_bgp_notifications_total{peer="ns/p",direction="sent",code="6",subcode="2"} 3"#,
            r#"ferrolb_speaker_bgp_notifications_total{peer="ns/p",direction="sent",code="6",subcode="10"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn every_subsystem_registers_its_metrics_under_the_speaker_prefix() {
        use labels::*;
        let m = Metrics::new();
        // Families print nothing until they have a member.
        let peer = PeerLabels {
            peer: "ns/p".into(),
        };
        let v4 = FamilyLabels::ipv4();
        let mode = ModeLabels { mode: "bgp".into() };
        let reason = NotAnnouncedLabels {
            reason: "NoPool".into(),
        };
        let notification = NotificationLabels {
            peer: "ns/p".into(),
            direction: "sent".into(),
            code: "6".into(),
            subcode: "2".into(),
        };
        m.announcements.announced.get_or_create(&mode).set(0);
        m.announcements.not_announced.get_or_create(&reason).set(0);
        for f in [
            &m.bgp.session_up,
            &m.bgp.prefixes_advertised,
            &m.bfd.session_up,
            &m.bfd.echo_active,
        ] {
            f.get_or_create(&peer).set(0);
        }
        m.layer2.gratuitous_sent.get_or_create(&v4).inc_by(0);
        m.layer2.requests_answered.get_or_create(&v4).inc_by(0);
        m.bgp.notifications.get_or_create(&notification).inc_by(0);
        for f in [
            &m.bgp.updates_sent,
            &m.bgp.updates_received,
            &m.bfd.packets_sent,
            &m.bfd.packets_received,
            &m.bfd.state_changes,
            &m.bfd.echo_packets_sent,
            &m.bfd.echo_packets_received,
        ] {
            f.get_or_create(&peer).inc_by(0);
        }
        let text = m.encode();
        for name in [
            "announced_ips",
            "not_announced_ips",
            "config_valid",
            "gratuitous_sent",
            "requests_answered",
            "l2_errors",
            "l2_kernel_lease_lapses",
            "election_changes",
            "membership_members",
            "membership_changes",
            "membership_auth_failures",
            "heartbeat_presumed_down",
            "heartbeat_revoked",
            "bgp_session_up",
            "bgp_updates_sent",
            "bgp_updates_received",
            "bgp_notifications",
            "bgp_prefixes_advertised",
            "bfd_session_up",
            "bfd_packets_sent",
            "bfd_packets_received",
            "bfd_state_changes",
            "bfd_echo_active",
            "bfd_echo_packets_sent",
            "bfd_echo_packets_received",
        ] {
            assert!(
                text.contains(&format!("# HELP ferrolb_speaker_{name} ")),
                "ferrolb_speaker_{name} missing from\n{text}"
            );
        }
    }

    #[test]
    fn a_restarted_membership_counts_from_zero_again() {
        use crate::membership::MembershipCounterValues;
        let m = Metrics::new();
        m.membership.observe(MembershipCounterValues {
            auth_failures: 5,
            heartbeat_presumed_down: 2,
            heartbeat_revoked: 1,
        });
        m.membership.observe(MembershipCounterValues {
            auth_failures: 1,
            heartbeat_presumed_down: 0,
            heartbeat_revoked: 0,
        });
        let text = m.encode();
        assert!(
            text.contains("ferrolb_speaker_membership_auth_failures_total 6"),
            "{text}"
        );
        assert!(
            text.contains("ferrolb_speaker_heartbeat_presumed_down_total 2"),
            "{text}"
        );
    }

    #[test]
    fn metallb_names_and_labels_are_exported_beside_ours() {
        use ferrolb_api::status::BgpPeerStatus;
        use ferrolb_speaker_core::desired::{Desired, L2Announcement};
        use ferrolb_speaker_core::pass::DesiredChanges;
        let m = Metrics::new();
        let desired = Desired {
            layer2: vec![L2Announcement {
                ip: "10.200.9.1".parse().expect("ip"),
                services: vec!["default/web".into()],
                interfaces: vec![],
            }],
            ..Desired::default()
        };
        m.metallb
            .observe_announced(&desired, "node-a", &DesiredChanges::ALL);
        let session = |updates_sent| BgpPeerStatus {
            name: "ferrolb-system/tor".into(),
            address: "[fd00:200::1]:179".into(),
            state: "Established".into(),
            uptime_seconds: None,
            last_error: None,
            last_notification: None,
            prefixes_advertised: 3,
            updates_sent,
            updates_received: 0,
            bfd: None,
            ..Default::default()
        };
        m.metallb.observe_sessions(&[session(4)]);
        m.metallb.observe_sessions(&[session(6)]);
        m.metallb.observe_layer2(&L2CounterValues {
            arp_requests_answered: 5,
            ndp_solicitations_answered: 2,
            garp_sent: 1,
            ..Default::default()
        });
        m.metallb.observe_config(true, false);
        let text = m.encode();
        let lines = [
            r#"metallb_speaker_announced{service="default/web",protocol="layer2",node="node-a",ip="10.200.9.1"} 1"#,
            r#"metallb_bgp_session_up{peer="fd00:200::1:179"} 1"#,
            r#"metallb_bgp_updates_total{peer="fd00:200::1:179"} 6"#,
            r#"metallb_bgp_announced_prefixes_total{peer="fd00:200::1:179"} 3"#,
            "metallb_layer2_requests_received 7",
            "metallb_layer2_responses_sent 7",
            "metallb_layer2_gratuitous_sent 1",
            "metallb_k8s_client_config_loaded_bool 1",
            "metallb_k8s_client_config_stale_bool 1",
        ];
        for line in lines {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        // Only the protocols said to have changed are looked at.
        let bgp_only = DesiredChanges {
            bgp: true,
            ..DesiredChanges::NONE
        };
        m.metallb
            .observe_announced(&Desired::default(), "node-a", &bgp_only);
        assert!(m.encode().contains(lines[0]), "layer 2 kept");
        // A Service no longer announced disappears from the gauge; one added appears.
        let other = Desired {
            layer2: vec![L2Announcement {
                ip: "10.200.9.2".parse().expect("ip"),
                services: vec!["default/db".into()],
                interfaces: vec![],
            }],
            ..Desired::default()
        };
        m.metallb
            .observe_announced(&other, "node-a", &DesiredChanges::ALL);
        let text = m.encode();
        assert!(!text.contains(lines[0]), "{text}");
        assert!(
            text.contains(
                r#"metallb_speaker_announced{service="default/db",protocol="layer2",node="node-a",ip="10.200.9.2"} 1"#
            ),
            "{text}"
        );
        m.metallb
            .observe_announced(&Desired::default(), "node-a", &DesiredChanges::ALL);
        assert!(!m.encode().contains("metallb_speaker_announced{"));
    }
}
