//! The membership driver: starts, re-keys, re-seeds and stops the gossip membership as the key
//! Secret and the Node objects change, and keeps the settle latch of the running one.

use super::MembershipOptions;
use crate::membership::{Membership, MembershipConfig};
use ferrolb_api::status::MembershipView;
use ferrolb_speaker_core::layer2::carrier::LinkReport;
use ferrolb_speaker_core::pass::{Settling, internal_ips};
use k8s_openapi::api::core::v1::Node;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

/// What to do with the membership, given what runs and what the cluster holds now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// (Re)start with the key: none runs, or it runs with another key.
    Start,
    /// Keep it; refresh its seeds (nodes come and go).
    Reseed,
    /// The key is gone: leave, and fall back to the Node Ready condition.
    Stop,
    /// There is a key but this Node has no InternalIP yet: nothing to bind to.
    WaitForAddress,
}

/// The membership's lifecycle as a function of the running key, the Secret's key and this
/// node's address.
pub(crate) fn step(running: Option<&[u8]>, key: Option<&[u8]>, my_ip: Option<IpAddr>) -> Step {
    match (key, my_ip) {
        (None, _) => Step::Stop,
        (Some(_), None) => Step::WaitForAddress,
        (Some(k), Some(_)) if running != Some(k) => Step::Start,
        (Some(_), Some(_)) => Step::Reseed,
    }
}

struct Running {
    membership: Membership,
    key: Vec<u8>,
    started: Instant,
    latched: bool,
}

/// Drives the gossip membership of one speaker.
pub(crate) struct MembershipDriver {
    options: MembershipOptions,
    node: String,
    namespace: String,
    running: Option<Running>,
    warned_no_key: bool,
    /// Alive set and reclaim counter of the running membership, or of nothing (never change).
    pub(crate) alive: watch::Receiver<BTreeSet<String>>,
    pub(crate) reclaims: watch::Receiver<u64>,
    /// Every node's links report, from the running membership (or of nothing).
    pub(crate) links: watch::Receiver<LinksByNode>,
    no_alive: watch::Receiver<BTreeSet<String>>,
    no_reclaims: watch::Receiver<u64>,
    no_links: watch::Receiver<LinksByNode>,
    _idle: (
        watch::Sender<BTreeSet<String>>,
        watch::Sender<u64>,
        watch::Sender<LinksByNode>,
    ),
}

/// Links reports by node name.
pub(crate) type LinksByNode = BTreeMap<String, Vec<LinkReport>>;

impl MembershipDriver {
    pub(crate) fn new(options: MembershipOptions, node: &str, namespace: &str) -> Self {
        let (alive_tx, no_alive) = watch::channel(BTreeSet::new());
        let (reclaims_tx, no_reclaims) = watch::channel(0u64);
        let (links_tx, no_links) = watch::channel(BTreeMap::new());
        Self {
            options,
            node: node.to_string(),
            namespace: namespace.to_string(),
            running: None,
            warned_no_key: false,
            alive: no_alive.clone(),
            reclaims: no_reclaims.clone(),
            links: no_links.clone(),
            no_alive,
            no_reclaims,
            no_links,
            _idle: (alive_tx, reclaims_tx, links_tx),
        }
    }

    /// Name of the key Secret and its data key.
    pub(crate) fn secret(&self) -> (&str, &str) {
        (&self.options.secret, &self.options.secret_key)
    }

    /// Whether a membership runs.
    pub(crate) fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// The running membership.
    pub(crate) fn membership(&self) -> Option<&Membership> {
        self.running.as_ref().map(|r| &r.membership)
    }

    /// Follows the key (`None`: no Secret or no such key) and the Node objects.
    pub(crate) async fn follow(&mut self, key: Option<Vec<u8>>, nodes: &[Arc<Node>]) {
        let me = nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(self.node.as_str()));
        let my_ip = me.and_then(|n| internal_ips(n).into_iter().next());
        let seeds: Vec<SocketAddr> = nodes
            .iter()
            .filter(|n| n.metadata.name.as_deref() != Some(self.node.as_str()))
            .filter_map(|n| internal_ips(n).into_iter().next())
            .map(|ip| SocketAddr::new(ip, self.options.port))
            .collect();
        let running_key = self.running.as_ref().map(|r| r.key.as_slice());
        match step(running_key, key.as_deref(), my_ip) {
            Step::Start => {
                if let (Some(key), Some(ip)) = (key, my_ip) {
                    self.start(key, ip, seeds).await;
                }
            }
            Step::Reseed => {
                if let Some(r) = &self.running {
                    r.membership.set_seeds(seeds);
                }
            }
            Step::Stop => {
                if self.running.is_some() || !self.warned_no_key {
                    tracing::warn!(
                        secret = %self.options.secret,
                        key = %self.options.secret_key,
                        namespace = %self.namespace,
                        "membership key Secret (or its key) not found; node liveness is the Node Ready condition only, so failover waits for the node controller"
                    );
                    self.warned_no_key = true;
                }
                self.leave().await;
            }
            Step::WaitForAddress => {
                tracing::warn!(node = %self.node, "no InternalIP on this node's Node object; membership waits")
            }
        }
    }

    async fn start(&mut self, key: Vec<u8>, ip: IpAddr, seeds: Vec<SocketAddr>) {
        self.leave().await;
        let cfg = MembershipConfig {
            node_name: self.node.clone(),
            bind: SocketAddr::new(ip, self.options.port),
            advertise: None,
            seeds,
            key: key.clone(),
            timers: self.options.timers.clone(),
            heartbeat: self.options.heartbeat.clone(),
        };
        match Membership::start(cfg).await {
            Ok(m) => {
                self.alive = m.alive();
                self.reclaims = m.reclaims();
                self.links = m.links();
                self.running = Some(Running {
                    membership: m,
                    key,
                    started: Instant::now(),
                    latched: false,
                });
                tracing::info!("membership started");
            }
            Err(e) => {
                tracing::error!(error = %e, "membership could not start; using Node Ready only")
            }
        }
    }

    /// The alive set for a pass (`None` without a running membership).
    pub(crate) fn alive_now(&mut self) -> Option<BTreeSet<String>> {
        self.running
            .as_ref()
            .map(|_| self.alive.borrow_and_update().clone())
    }

    /// Every node's links report for a pass (`None` without a running membership: the others
    /// could not learn this node's carrier, so nobody's counts).
    pub(crate) fn links_now(&mut self) -> Option<LinksByNode> {
        self.running
            .as_ref()
            .map(|_| self.links.borrow_and_update().clone())
    }

    /// The settle gate's input for a pass.
    pub(crate) fn settling(&self) -> Option<Settling> {
        self.running.as_ref().map(|r| Settling {
            latched: r.latched,
            elapsed: r.started.elapsed(),
        })
    }

    /// Keeps the gate open once a pass found the membership settled.
    pub(crate) fn latch(&mut self, settled: bool) {
        if let Some(r) = self.running.as_mut() {
            r.latched |= settled;
        }
    }

    /// The membership as the status API shows it.
    pub(crate) fn view(&self) -> MembershipView {
        match &self.running {
            Some(r) => r.membership.view(),
            None => MembershipView {
                enabled: false,
                members: Vec::new(),
            },
        }
    }

    /// Stops for a restart in place: the others hold this node's addresses for `hold`
    /// ([`Membership::restart`]), if a membership runs.
    pub(crate) async fn restart(&mut self, hold: std::time::Duration) {
        if let Some(old) = self.running.take() {
            old.membership.restart(hold).await;
        }
        self.alive = self.no_alive.clone();
        self.reclaims = self.no_reclaims.clone();
        self.links = self.no_links.clone();
    }

    /// Leaves the membership (announcing it to the others), if one runs.
    pub(crate) async fn leave(&mut self) {
        if let Some(old) = self.running.take() {
            old.membership.leave().await;
        }
        self.alive = self.no_alive.clone();
        self.reclaims = self.no_reclaims.clone();
        self.links = self.no_links.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 200, 1, 1)));

    #[test]
    fn a_key_and_an_address_start_the_membership() {
        assert_eq!(step(None, Some(b"k1"), IP), Step::Start);
    }

    #[test]
    fn a_new_key_restarts_it_and_the_same_key_only_reseeds() {
        assert_eq!(step(Some(b"k1"), Some(b"k2"), IP), Step::Start);
        assert_eq!(step(Some(b"k1"), Some(b"k1"), IP), Step::Reseed);
    }

    #[test]
    fn without_a_key_it_stops_whatever_runs() {
        assert_eq!(step(Some(b"k1"), None, IP), Step::Stop);
        assert_eq!(step(None, None, None), Step::Stop);
    }

    #[test]
    fn without_an_address_it_waits() {
        assert_eq!(step(None, Some(b"k1"), None), Step::WaitForAddress);
    }
}
