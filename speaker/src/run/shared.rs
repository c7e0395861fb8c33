//! What the loop shares with the HTTP API: the last plan's results, the announcer's live
//! snapshot, the metrics and readiness.

use crate::http::StatusSource;
use crate::layer2::announcer::Announcer;
use crate::metrics::Metrics;
use ferrolb_api::status::{
    Announcement, BgpPeerStatus, InterfaceCarrier, MembershipView, NoCarrierAddress,
    NotAnnouncedAddress, SpeakerStatus,
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
    /// This node's announcing interfaces with their carrier.
    pub(crate) interfaces: Vec<InterfaceCarrier>,
    /// Layer 2 addresses this node does not announce for lack of carrier.
    pub(crate) no_carrier: Vec<NoCarrierAddress>,
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
            interfaces: st.interfaces.clone(),
            no_carrier: st.no_carrier.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::manager::{Passwords, PeerManager};
    use crate::membership::{GossipTimers, Membership, MembershipConfig};
    use ferrolb_config::{Config, Inputs};
    use std::net::Ipv4Addr;

    const LITERAL_PASSWORD: &str = "pw-literal-4e1b9d";
    const SECRET_PASSWORD: &str = "pw-from-secret-7a02c3";
    const REJECTED_PASSWORD: &str = "pw-rejected-both-set-91f0";
    const MEMBERSHIP_KEY: &str = "membership-key-c85d2e0f";

    fn bgp_peer(name: &str, port: u16, password: serde_json::Value) -> ferrolb_api::BGPPeer {
        let mut spec = serde_json::json!({
            "myASN": 64512,
            "peerASN": 64513,
            "peerAddress": "127.0.0.1",
            "peerPort": port,
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), password.as_object()) {
            spec.extend(extra.clone());
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "ferrolb.io/v1beta1",
            "kind": "BGPPeer",
            "metadata": {"name": name, "namespace": "ferrolb-system"},
            "spec": spec,
        }))
        .expect("BGPPeer")
    }

    /// The status document of a speaker whose configuration, BGP sessions and membership
    /// all hold secrets, as the loop fills it in.
    #[tokio::test]
    async fn the_status_document_never_holds_a_password_or_the_membership_key() {
        let shared = Shared::new("node-1");
        // Stand-in routers (never answering): the sessions connect to loopback only.
        let mut routers = Vec::new();
        for _ in 0..2 {
            routers.push(
                tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind a stand-in router"),
            );
        }
        let port = |i: usize| routers[i].local_addr().expect("addr").port();

        // A valid configuration with a literal password and a Secret reference.
        let valid = Inputs {
            peers: vec![
                bgp_peer(
                    "literal",
                    port(0),
                    serde_json::json!({"password": LITERAL_PASSWORD}),
                ),
                bgp_peer(
                    "from-secret",
                    port(1),
                    serde_json::json!({"passwordSecret": {"name": "router-pw"}}),
                ),
            ],
            ..Inputs::default()
        };
        let config = Config::build(&valid).expect("valid configuration");
        shared
            .state()
            .config
            .update(Ok(std::sync::Arc::new(config.clone())));
        // Then an invalid one whose error is about the password.
        let mut invalid = valid.clone();
        invalid.peers.push(bgp_peer(
            "both",
            port(0),
            serde_json::json!({
                "password": REJECTED_PASSWORD,
                "passwordSecret": {"name": "router-pw"},
            }),
        ));
        let errors = Config::build(&invalid).expect_err("both password fields");
        shared.state().config.update(Err(errors));

        // The sessions, with the Secret's password resolved.
        let mut manager = PeerManager::new(Some(Ipv4Addr::new(10, 200, 0, 5)));
        let mut passwords = Passwords::new();
        passwords.insert(
            ("ferrolb-system".into(), "router-pw".into()),
            SECRET_PASSWORD.into(),
        );
        let peers: Vec<ferrolb_config::Peer> = config.peers.values().cloned().collect();
        let manager_errors = manager.apply(&peers, &passwords, &[]).await;
        assert!(manager_errors.is_empty(), "{manager_errors:?}");

        // A running membership keyed by the Secret's key.
        let membership = Membership::start(MembershipConfig {
            node_name: "node-1".into(),
            bind: "127.0.0.1:0".parse().expect("addr"),
            advertise: None,
            seeds: vec![],
            key: MEMBERSHIP_KEY.as_bytes().to_vec(),
            timers: GossipTimers::default(),
            heartbeat: None,
        })
        .await
        .expect("membership");
        {
            let mut st = shared.state();
            st.bgp_peers = manager.status();
            st.membership = membership.view();
        }

        let status = shared.status();
        assert_eq!(status.bgp_peers.len(), 2, "both sessions are reported");
        assert!(status.membership.enabled);
        assert!(!status.config.valid && !status.config.errors.is_empty());
        let json = serde_json::to_string(&status).expect("json");
        for secret in [
            LITERAL_PASSWORD,
            SECRET_PASSWORD,
            REJECTED_PASSWORD,
            MEMBERSHIP_KEY,
        ] {
            assert!(!json.contains(secret), "{secret} in the status: {json}");
        }
        let hex: String = MEMBERSHIP_KEY.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(!json.contains(&hex), "the key in hex in the status: {json}");

        manager
            .shutdown(ferrolb_speaker_core::bgp::fsm::StopCause::Shutdown)
            .await;
        membership.leave().await;
    }
}
