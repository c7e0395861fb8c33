//! The peer manager: turns (peers that apply to this node, resolved passwords, desired BGP
//! announcements) into running sessions, level-triggered.
//!
//! Every [`PeerManager::apply`] gets the whole current view. Sessions whose configuration is
//! unchanged only receive their new table (they diff it against what they sent); a peer whose
//! configuration changed is reconnected — only that one; peers that disappeared are stopped
//! with a Cease. A peer that cannot be configured (missing Secret, no router ID) is reported;
//! if it already runs with a previous, valid configuration, that session is kept ("never lose
//! what works").

use crate::bfd::{BfdCounters, BfdManager, BfdPeer, BfdProblem};
use crate::bgp::session::{AdjRibOut, SessionConfig, SessionCounters, SessionHandle};
use crate::bgp::socket::MD5_MAX_KEY_LEN;
use ferrolb_api::status::BgpPeerStatus;
use ferrolb_config::{BfdProfile, Peer, PeerPassword};
use ferrolb_speaker_core::bgp::RouteAttributes;
use ferrolb_speaker_core::bgp::fsm::StopCause;
use ferrolb_speaker_core::bgp::restart_marker::MarkerPeer;
use ferrolb_speaker_core::bgp::session_params::presented_as;
use ferrolb_speaker_core::desired::BgpAnnouncement;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// How long `shutdown` and reconfiguration wait for a session to send its Cease and close.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(1);

/// Secret passwords by (namespace, name) of the Secret.
pub type Passwords = BTreeMap<(String, String), String>;

/// Why a peer could not be (re)configured.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ManagerError {
    /// The BGPPeer's password Secret is missing or has no `password` key.
    #[error(
        "BGPPeer {peer}: spec.passwordSecret {namespace}/{name} not found or without a `password` key; the session is not started with a changed password until it exists"
    )]
    MissingSecret {
        /// `namespace/name` of the BGPPeer.
        peer: String,
        /// Secret namespace.
        namespace: String,
        /// Secret name.
        name: String,
    },
    /// Password longer than Linux's TCP MD5 key limit.
    #[error("BGPPeer {peer}: password is {len} bytes; TCP MD5 accepts at most {MD5_MAX_KEY_LEN}")]
    PasswordTooLong {
        /// `namespace/name` of the BGPPeer.
        peer: String,
        /// Its length.
        len: usize,
    },
    /// The BFD session of a peer cannot run as configured.
    #[error(transparent)]
    Bfd(#[from] BfdProblem),
    /// The BFD sockets could not be opened (UDP 3784/4784 taken, no permission).
    #[error("BGPPeer {peer}: BFD cannot start: {reason}; the BGP session runs without BFD")]
    BfdUnavailable {
        /// `namespace/name` of the BGPPeer.
        peer: String,
        /// The operating system's error.
        reason: String,
    },
    /// No router ID configured and the node has no IPv4 address to default to.
    #[error(
        "BGPPeer {peer}: spec.routerID is not set and the node has no IPv4 address to use instead"
    )]
    NoRouterId {
        /// `namespace/name` of the BGPPeer.
        peer: String,
    },
}

/// The node's own addresses (its InternalIPs), the defaults of what a peer leaves unset.
pub use ferrolb_speaker_core::pass::NodeAddresses;

/// Runs one session per peer that applies to this node.
#[derive(Debug)]
pub struct PeerManager {
    node: NodeAddresses,
    /// The configuration's BFD profiles, by name.
    bfd_profiles: BTreeMap<String, BfdProfile>,
    /// Started with the first peer that names a BFD profile.
    bfd: Option<BfdManager>,
    sessions: BTreeMap<String, SessionHandle>,
    /// Peers (`namespace/name`, address) this process restarted towards in place: their first
    /// session announces the Restart State bit.
    restarting: BTreeSet<(String, IpAddr)>,
}

fn secs_u16(d: Duration) -> u16 {
    u16::try_from(d.as_secs()).unwrap_or(u16::MAX)
}

/// Builds a session configuration from a peer (pure; exposed for tests).
pub fn session_config(
    peer: &Peer,
    passwords: &Passwords,
    node: NodeAddresses,
) -> Result<SessionConfig, ManagerError> {
    let full = format!("{}/{}", peer.namespace, peer.name);
    let password = match &peer.password {
        None => None,
        Some(PeerPassword::Literal(p)) => Some(p.clone()),
        Some(PeerPassword::Secret { namespace, name }) => Some(
            passwords
                .get(&(namespace.clone(), name.clone()))
                .cloned()
                .ok_or_else(|| ManagerError::MissingSecret {
                    peer: full.clone(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                })?,
        ),
    };
    if let Some(p) = &password
        && p.len() > MD5_MAX_KEY_LEN
    {
        return Err(ManagerError::PasswordTooLong {
            peer: full,
            len: p.len(),
        });
    }
    let router_id = peer
        .router_id
        .or(node.v4)
        .ok_or_else(|| ManagerError::NoRouterId { peer: full.clone() })?;
    let hold_time = secs_u16(peer.hold_time);
    Ok(SessionConfig {
        name: full,
        local_as: presented_as(peer.my_asn, peer.local_asn),
        peer_as: peer.peer_asn,
        // An unnumbered peer's address is discovered by its session.
        peer_address: peer
            .address
            .ip()
            .unwrap_or(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)),
        interface: peer.address.interface().map(str::to_string),
        port: peer.port,
        source_address: peer.source_address,
        router_id,
        // Config validation keeps hold time 0 or >= 3 s; clamp anyway so the OPEN is legal.
        hold_time: if hold_time == 0 { 0 } else { hold_time.max(3) },
        keepalive_time: secs_u16(peer.keepalive_time),
        // Config validation keeps connectTime at 1 s or more; a zero interval would spin.
        connect_time: peer.connect_time.filter(|d| !d.is_zero()),
        password,
        ebgp_multihop: peer.ebgp_multihop,
        graceful_restart: peer.graceful_restart,
        // Config validation keeps it within 1 s to 4095 s, what the capability carries.
        graceful_restart_time: secs_u16(peer.graceful_restart_time),
        disable_mp: peer.disable_mp,
        dual_stack: peer.dual_stack,
        vrf: peer.vrf.clone(),
        // The node's InternalIPs are in the default VRF: a session in another VRF must not
        // name them as next hops (the other family's falls back to the session's own address,
        // IPv4-mapped, or the router ID).
        next_hop_v6: node.v6.filter(|_| peer.vrf.is_none()),
        next_hop_v4: node.v4.filter(|_| peer.vrf.is_none()),
        // Set by the manager, which knows the configuration's profiles.
        bfd: false,
        bfd_strict: false,
    })
}

/// The table one peer must receive, from the node's desired announcements.
pub fn table_for(peer_name: &str, announcements: &[BgpAnnouncement]) -> AdjRibOut {
    announcements
        .iter()
        .filter_map(|a| {
            a.peers.get(peer_name).map(|attrs| {
                (
                    a.prefix,
                    RouteAttributes {
                        local_pref: attrs.local_pref,
                        communities: attrs.communities.clone(),
                    },
                )
            })
        })
        .collect()
}

impl PeerManager {
    /// A manager with no sessions. `default_router_id` is the node's IPv4 address, used for
    /// peers without `routerID`.
    pub fn new(default_router_id: Option<Ipv4Addr>) -> Self {
        PeerManager {
            node: NodeAddresses {
                v4: default_router_id,
                v6: None,
            },
            bfd_profiles: BTreeMap::new(),
            bfd: None,
            sessions: BTreeMap::new(),
            restarting: BTreeSet::new(),
        }
    }

    /// Peers (`namespace/name`, address) towards which this process restarted in place (from
    /// the restart marker): their first session announces the Restart State bit.
    pub fn set_restarting(&mut self, peers: BTreeSet<(String, IpAddr)>) {
        self.restarting = peers;
    }

    /// Changes the node's addresses (router ID and next-hop defaults); sessions whose
    /// configuration changes with them reconnect on the next [`apply`](Self::apply).
    pub fn set_node_addresses(&mut self, node: NodeAddresses) {
        self.node = node;
    }

    /// Sets the configuration's BFD profiles (by name), which peers refer to; takes effect on
    /// the next [`apply`](Self::apply).
    pub fn set_bfd_profiles(&mut self, profiles: BTreeMap<String, BfdProfile>) {
        self.bfd_profiles = profiles;
    }

    /// The BFD sessions wanted for `peers` (those naming a known profile).
    fn bfd_peers(
        &self,
        peers: &[Peer],
        wanted: &BTreeMap<String, SessionConfig>,
    ) -> BTreeMap<String, BfdPeer> {
        peers
            .iter()
            .filter(|p| wanted.get(&p.name).is_some_and(|c| c.bfd))
            .filter_map(|p| {
                let profile = self.bfd_profiles.get(p.bfd_profile.as_deref()?)?;
                Some((
                    p.name.clone(),
                    BfdPeer {
                        // Config validation keeps BFD off unnumbered peers.
                        peer: p.address.ip()?,
                        local: p.source_address,
                        multihop: p.ebgp_multihop,
                        profile: profile.clone(),
                    },
                ))
            })
            .collect()
    }

    /// Starts the BFD manager if a session wants BFD and it is not running; on failure every
    /// BFD peer is reported and its BGP session runs without BFD.
    fn start_bfd_if_needed(
        &mut self,
        wanted: &mut BTreeMap<String, SessionConfig>,
        errors: &mut Vec<ManagerError>,
    ) {
        if self.bfd.is_some() || !wanted.values().any(|c| c.bfd) {
            return;
        }
        match BfdManager::start() {
            Ok(m) => self.bfd = Some(m),
            Err(e) => {
                for c in wanted.values_mut().filter(|c| c.bfd) {
                    errors.push(ManagerError::BfdUnavailable {
                        peer: c.name.clone(),
                        reason: e.to_string(),
                    });
                    c.bfd = false;
                    // Without BFD there is nothing to wait for: strict mode would keep the
                    // session down for good.
                    c.bfd_strict = false;
                }
            }
        }
    }

    /// Applies the whole current view: `peers` are the peers that apply to this node,
    /// `passwords` the resolved Secret passwords, `announcements` this node's desired BGP
    /// announcements. Returns the peers that could not be configured. Must run inside a tokio
    /// runtime.
    pub async fn apply(
        &mut self,
        peers: &[Peer],
        passwords: &Passwords,
        announcements: &[BgpAnnouncement],
    ) -> Vec<ManagerError> {
        let mut errors = Vec::new();
        let mut wanted: BTreeMap<String, SessionConfig> = BTreeMap::new();
        for peer in peers {
            match session_config(peer, passwords, self.node) {
                Ok(mut c) => {
                    let profile = peer
                        .bfd_profile
                        .as_ref()
                        .and_then(|name| self.bfd_profiles.get(name));
                    c.bfd = profile.is_some();
                    c.bfd_strict = profile.is_some_and(|p| p.strict_mode);
                    wanted.insert(peer.name.clone(), c);
                }
                Err(e) => {
                    warn!(error = %e, "BGP peer not configurable");
                    errors.push(e);
                    // Keep a running session on its last valid configuration.
                    if let Some(h) = self.sessions.get(&peer.name) {
                        wanted.insert(peer.name.clone(), h.config().clone());
                    }
                }
            }
        }

        // BFD first, so that new BGP sessions can watch their BFD session from the start.
        self.start_bfd_if_needed(&mut wanted, &mut errors);
        if let Some(bfd) = &self.bfd {
            let bfd_peers = self.bfd_peers(peers, &wanted);
            errors.extend(bfd.apply(bfd_peers).into_iter().map(ManagerError::from));
        }

        // Stop sessions that are gone or changed, all at once (each bounded).
        let stale: Vec<String> = self
            .sessions
            .iter()
            .filter(|(name, h)| wanted.get(*name) != Some(h.config()))
            .map(|(name, _)| name.clone())
            .collect();
        let mut stopping = Vec::new();
        for name in stale {
            if let Some(h) = self.sessions.remove(&name) {
                let cause = if wanted.contains_key(&name) {
                    info!(peer = %h.config().name, "BGP peer configuration changed; reconnecting");
                    StopCause::Reconfigured
                } else {
                    info!(peer = %h.config().name, "BGP peer removed; stopping session");
                    StopCause::Deconfigured
                };
                stopping.push(h.stop(cause, STOP_TIMEOUT));
            }
        }
        futures::future::join_all(stopping).await;

        for (name, config) in wanted {
            let table = table_for(&name, announcements);
            match self.sessions.get(&name) {
                Some(h) => h.set_table(table),
                None => {
                    let bfd = if config.bfd {
                        self.bfd.as_ref().and_then(|b| b.subscribe(&name))
                    } else {
                        None
                    };
                    // Only the first session of a peer after the restart is a restart.
                    let restarting = self
                        .restarting
                        .remove(&(config.name.clone(), config.peer_address));
                    let h = SessionHandle::spawn_with(config, table, bfd, restarting);
                    self.sessions.insert(name, h);
                }
            }
        }
        errors
    }

    /// The session of a peer (by BGPPeer name).
    pub fn session(&self, name: &str) -> Option<&SessionHandle> {
        self.sessions.get(name)
    }

    /// Status of every session, by peer name, with its BFD session's.
    pub fn status(&self) -> Vec<BgpPeerStatus> {
        let bfd = self
            .bfd
            .as_ref()
            .map(BfdManager::status)
            .unwrap_or_default();
        self.sessions
            .iter()
            .map(|(key, h)| {
                let mut st = h.status();
                st.bfd = bfd.get(key).cloned();
                st
            })
            .collect()
    }

    /// Counters of every BFD session, by BGPPeer `namespace/name` (as the BGP metrics).
    pub fn bfd_counters(&self) -> BTreeMap<String, Arc<BfdCounters>> {
        let Some(bfd) = &self.bfd else {
            return BTreeMap::new();
        };
        let mut by_key = bfd.counters();
        self.sessions
            .iter()
            .filter_map(|(key, h)| Some((h.config().name.clone(), by_key.remove(key)?)))
            .collect()
    }

    /// Counters of every session (`namespace/name`, counters) for metrics.
    pub fn counters(&self) -> Vec<(String, Arc<SessionCounters>)> {
        self.sessions
            .values()
            .map(|h| (h.config().name.clone(), h.counters().clone()))
            .collect()
    }

    /// Withdraws every route from every peer and waits (at most `timeout`) until the
    /// withdrawals are written, so that a Cease sent next cannot overtake them. Returns the
    /// peers that did not get there in time.
    pub async fn withdraw_all(&mut self, timeout: Duration) -> Vec<String> {
        for h in self.sessions.values() {
            h.set_table(AdjRibOut::new());
        }
        let waits = self.sessions.values().map(|h| async move {
            (!h.wait_withdrawn(timeout).await).then(|| h.config().name.clone())
        });
        futures::future::join_all(waits)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Stops every session for `cause`, in parallel, waiting at most [`STOP_TIMEOUT`]: the
    /// NOTIFICATION (or none) each sends follows from the cause and what its session
    /// negotiated ([`StopCause::notification`]). Returns the peers whose session had graceful
    /// restart negotiated as it stopped, with the restart time announced to them: with
    /// [`StopCause::Restart`] those keep our routes until the next process is back.
    pub async fn shutdown(&mut self, cause: StopCause) -> Vec<MarkerPeer> {
        let sessions = std::mem::take(&mut self.sessions);
        let graceful: Vec<MarkerPeer> = sessions
            .values()
            .filter(|h| h.graceful_restart())
            .map(|h| MarkerPeer {
                name: h.config().name.clone(),
                address: h.config().peer_address,
                restart_time: h.config().graceful_restart_time,
            })
            .collect();
        futures::future::join_all(sessions.into_values().map(|h| h.stop(cause, STOP_TIMEOUT)))
            .await;
        // Then AdminDown on every BFD session, so that routers do not read the closing
        // sessions as a failure (RFC 5882 §3.2). It blocks briefly: off the async threads.
        if let Some(bfd) = self.bfd.take() {
            let _ = tokio::task::spawn_blocking(move || bfd.shutdown()).await;
        }
        graceful
    }
}

#[cfg(test)]
mod tests;
