//! Metrics of what the speaker announces and of its configuration.

use super::labels::{ModeLabels, NotAnnouncedLabels};
use ferrolb_runtime::groups::GroupsGauge;
use ferrolb_speaker_core::desired::{Desired, NotAnnouncedReason};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Announcement and configuration metrics.
#[derive(Default)]
pub struct AnnouncementMetrics {
    /// Addresses this node announces, per mode.
    pub announced: Family<ModeLabels, Gauge>,
    /// Assigned addresses no node announces, per reason (cluster-wide: every speaker computes
    /// the same numbers).
    pub not_announced: Family<NotAnnouncedLabels, Gauge>,
    /// 1 when the latest configuration is valid.
    pub config_valid: Gauge,
    /// The API groups the configuration is read from.
    pub config_groups: GroupsGauge,
}

impl AnnouncementMetrics {
    pub(crate) fn register(r: &mut Registry) -> Self {
        let m = Self {
            config_groups: GroupsGauge::register(r),
            ..Self::default()
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
            "config_valid",
            "1 when the latest configuration is valid",
            m.config_valid.clone(),
        );
        m
    }

    /// Sets the gauges from one pass's desired state (every reason, zero included).
    pub fn observe(&self, desired: &Desired) {
        for reason in NotAnnouncedReason::ALL {
            let count = desired
                .not_announced
                .iter()
                .filter(|n| n.reason == reason)
                .count();
            self.not_announced
                .get_or_create(&NotAnnouncedLabels {
                    reason: reason.code().to_string(),
                })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        for (mode, count) in [("layer2", desired.layer2.len()), ("bgp", desired.bgp.len())] {
            self.announced
                .get_or_create(&ModeLabels { mode: mode.into() })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }
}
