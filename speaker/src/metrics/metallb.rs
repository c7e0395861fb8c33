//! MetalLB's speaker metric names and labels, exported beside ferrolb's own so that dashboards
//! and alerts written for MetalLB keep working after a swap (the mapping is in the README).
//!
//! MetalLB counts layer 2 requests, responses and gratuitous packets per IP; ferrolb's
//! responders (one of them in the kernel) count per address family, so these three are exported
//! without the `ip` label: `sum(...)` queries keep working, `by (ip)` ones do not. MetalLB's
//! Go client exports those counters without the `_total` suffix, which OpenMetrics counters
//! must carry, so they are exported as gauges under MetalLB's exact names.

use super::deltas::CounterDeltas;
use crate::layer2::announcer::L2CounterValues;
use ferrolb_api::status::BgpPeerStatus;
use ferrolb_runtime::metallb_metrics::ConfigGauges;
use ferrolb_runtime::sync::lock;
use ferrolb_speaker_core::desired::Desired;
use ferrolb_speaker_core::pass::DesiredChanges;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

/// (address, `namespace/name` of a Service) pairs announced by one protocol.
type AnnouncedPairs = HashSet<(IpAddr, String)>;

/// Labels of `metallb_speaker_announced`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnnouncedLabels {
    /// `namespace/name` of the Service.
    pub service: String,
    /// `layer2` or `bgp`.
    pub protocol: String,
    /// This node.
    pub node: String,
    /// The announced address.
    pub ip: String,
}

/// Label of MetalLB's per-session BGP metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SessionLabels {
    /// The peer as MetalLB's native speaker names it: `address:port`.
    pub peer: String,
}

/// MetalLB's speaker metrics.
#[derive(Default)]
pub struct MetallbMetrics {
    /// `metallb_speaker_announced`: 1 per Service and address this node announces.
    pub announced: Family<AnnouncedLabels, Gauge>,
    /// `metallb_bgp_session_up`.
    pub bgp_session_up: Family<SessionLabels, Gauge>,
    /// `metallb_bgp_updates_total`: UPDATE messages sent.
    pub bgp_updates: Family<SessionLabels, Counter>,
    /// `metallb_bgp_announced_prefixes_total` (a gauge, as in MetalLB).
    pub bgp_announced_prefixes: Family<SessionLabels, Gauge>,
    /// `metallb_layer2_requests_received`.
    pub layer2_requests_received: Gauge<u64, AtomicU64>,
    /// `metallb_layer2_responses_sent`.
    pub layer2_responses_sent: Gauge<u64, AtomicU64>,
    /// `metallb_layer2_gratuitous_sent`.
    pub layer2_gratuitous_sent: Gauge<u64, AtomicU64>,
    /// `metallb_k8s_client_config_{loaded,stale}_bool`.
    pub config: ConfigGauges,
    updates: CounterDeltas<String, ()>,
    /// What `announced` holds, layer 2 and BGP: a pass replaces only the pairs of a protocol
    /// whose announcements changed, and of those only the ones that differ. (Rebuilding the
    /// whole family formatted and hashed 25,000 BGP addresses again on every layer 2 change.)
    announced_pairs: Mutex<(AnnouncedPairs, AnnouncedPairs)>,
}

impl MetallbMetrics {
    /// Registers every metric in `r`, which must carry the `metallb` prefix.
    pub(crate) fn register(r: &mut Registry) -> Self {
        let m = Self {
            config: ConfigGauges::register(r),
            ..Self::default()
        };
        r.register(
            "speaker_announced",
            "Services being announced from this node. This is desired state, it does not guarantee that the routing protocols have converged.",
            m.announced.clone(),
        );
        r.register(
            "bgp_session_up",
            "BGP session state (1 is up, 0 is down)",
            m.bgp_session_up.clone(),
        );
        r.register(
            "bgp_updates",
            "Number of BGP UPDATE messages sent",
            m.bgp_updates.clone(),
        );
        r.register(
            "bgp_announced_prefixes_total",
            "Number of prefixes currently being advertised on the BGP session",
            m.bgp_announced_prefixes.clone(),
        );
        r.register(
            "layer2_requests_received",
            "Number of layer2 requests received for owned IPs",
            m.layer2_requests_received.clone(),
        );
        r.register(
            "layer2_responses_sent",
            "Number of layer2 responses sent for owned IPs in response to requests",
            m.layer2_responses_sent.clone(),
        );
        r.register(
            "layer2_gratuitous_sent",
            "Number of gratuitous layer2 packets sent for owned IPs as a result of failovers",
            m.layer2_gratuitous_sent.clone(),
        );
        m
    }

    /// Sets `metallb_speaker_announced` from one pass (the addresses this node announces),
    /// for the protocols whose announcements `changed`.
    pub fn observe_announced(&self, desired: &Desired, node: &str, changed: &DesiredChanges) {
        let mut pairs = lock(&self.announced_pairs);
        let (layer2, bgp) = &mut *pairs;
        if changed.layer2 {
            let now = desired
                .layer2
                .iter()
                .flat_map(|a| a.services.iter().map(|s| (a.ip, s.clone())))
                .collect();
            self.replace_announced("layer2", layer2, now, node);
        }
        if changed.bgp {
            let now = desired
                .bgp
                .iter()
                .flat_map(|b| {
                    b.ips
                        .iter()
                        .flat_map(|ip| b.services.iter().map(|s| (*ip, s.clone())))
                })
                .collect();
            self.replace_announced("bgp", bgp, now, node);
        }
    }

    /// Removes the pairs of `last` not in `now` from `announced`, adds those of `now` not in
    /// `last`, and keeps `now` as the last.
    fn replace_announced(
        &self,
        protocol: &str,
        last: &mut AnnouncedPairs,
        now: AnnouncedPairs,
        node: &str,
    ) {
        let labels = |(ip, service): &(IpAddr, String)| AnnouncedLabels {
            service: service.clone(),
            protocol: protocol.into(),
            node: node.into(),
            ip: ip.to_string(),
        };
        for gone in last.difference(&now) {
            self.announced.remove(&labels(gone));
        }
        for new in now.difference(last) {
            self.announced.get_or_create(&labels(new)).set(1);
        }
        *last = now;
    }

    /// Sets the per-session metrics from the sessions' status.
    pub fn observe_sessions(&self, sessions: &[BgpPeerStatus]) {
        for p in sessions {
            // MetalLB formats `address:port` without brackets, IPv6 included.
            let peer = match p.address.parse::<std::net::SocketAddr>() {
                Ok(a) => format!("{}:{}", a.ip(), a.port()),
                Err(_) => p.address.clone(),
            };
            let labels = SessionLabels { peer };
            self.bgp_session_up
                .get_or_create(&labels)
                .set(i64::from(p.state == "Established"));
            self.bgp_announced_prefixes
                .get_or_create(&labels)
                .set(i64::try_from(p.prefixes_advertised).unwrap_or(i64::MAX));
            for ((), grown) in self
                .updates
                .advance(p.name.clone(), BTreeMap::from([((), p.updates_sent)]))
            {
                self.bgp_updates.get_or_create(&labels).inc_by(grown);
            }
        }
    }

    /// Copies the announcer's counters (both families together).
    pub fn observe_layer2(&self, now: &L2CounterValues) {
        let answered = now.arp_requests_answered + now.ndp_solicitations_answered;
        self.layer2_requests_received.set(answered);
        self.layer2_responses_sent.set(answered);
        self.layer2_gratuitous_sent
            .set(now.garp_sent + now.unsolicited_na_sent);
    }

    /// Sets the configuration gauges.
    pub fn observe_config(&self, loaded: bool, valid: bool) {
        self.config.set(loaded, valid);
    }
}
