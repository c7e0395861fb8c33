//! What the loop shares with the HTTP API: the last plan's results, the announcer's live
//! snapshot, the metrics and readiness.

use crate::http::StatusSource;
use crate::layer2::announcer::Announcer;
use crate::metrics::Metrics;
use ferrolb_api::status::{
    Announcement, BgpPeerStatus, MembershipView, NotAnnouncedAddress, SpeakerStatus,
};
use ferrolb_runtime::ConfigTracker;
use ferrolb_runtime::http::Health;
use ferrolb_runtime::sync::lock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// What the status API reports besides the announcer's own snapshot.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) config: ConfigTracker,
    pub(crate) membership: MembershipView,
    pub(crate) bgp_peers: Vec<BgpPeerStatus>,
    pub(crate) bgp_errors: Vec<String>,
    /// Addresses advertised over BGP, with since-when.
    pub(crate) bgp_announcements: Vec<Announcement>,
    /// Addresses no node announces, with the reason (the same on every speaker).
    pub(crate) not_announced: Vec<NotAnnouncedAddress>,
}

/// State shared by the loop and the HTTP API.
pub struct Shared {
    node: String,
    state: Mutex<State>,
    pub(crate) metrics: Metrics,
    ready: AtomicBool,
    announcer: Mutex<Option<Arc<Announcer>>>,
}

impl Shared {
    pub(crate) fn new(node: &str) -> Self {
        Self {
            node: node.to_string(),
            state: Mutex::new(State::default()),
            metrics: Metrics::new(),
            ready: AtomicBool::new(false),
            announcer: Mutex::new(None),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub(crate) fn set_announcer(&self, announcer: Arc<Announcer>) {
        *lock(&self.announcer) = Some(announcer);
    }

    pub(crate) fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    fn announcer(&self) -> Option<Arc<Announcer>> {
        lock(&self.announcer).clone()
    }
}

impl Health for Shared {
    fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    fn metrics_text(&self) -> String {
        if let Some(a) = self.announcer() {
            let counters = a.counters();
            self.metrics.metallb.observe_layer2(&counters);
            self.metrics.layer2.observe(counters);
        }
        self.metrics.encode()
    }
}

impl StatusSource for Shared {
    fn status(&self) -> SpeakerStatus {
        let st = self.state();
        let announcer = self.announcer();
        SpeakerStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            node: self.node.clone(),
            ready: self.ready(),
            config: st.config.status().clone(),
            membership: st.membership.clone(),
            announcements: announcer
                .as_ref()
                .map(|a| a.snapshot())
                .unwrap_or_default()
                .into_iter()
                .chain(st.bgp_announcements.iter().cloned())
                .collect(),
            bgp_peers: st.bgp_peers.clone(),
            kernel_responder_interfaces: announcer
                .map(|a| a.kernel_responder_interfaces())
                .unwrap_or_default(),
            not_announced: st.not_announced.clone(),
        }
    }
}
