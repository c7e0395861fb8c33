//! The public BFD API: a level-triggered set of sessions keyed by BGPPeer, their states as
//! watch channels, status and counters.

use super::runtime::{self, BfdCounters, Command, SessionHandle, SessionSpec};
use ferrolb_api::status::BfdSessionStatus;
use ferrolb_config::BfdProfile;
use ferrolb_runtime::sync::lock;
use ferrolb_speaker_core::bfd::fsm::Timers;
use ferrolb_speaker_core::bfd::packet::BfdState;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tracing::warn;

/// One desired BFD session: towards a BGP peer, with its profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BfdPeer {
    /// The peer's address (the BGPPeer's `peerAddress`).
    pub peer: IpAddr,
    /// Our source address (`sourceAddress`); unspecified lets the kernel choose.
    pub local: Option<IpAddr>,
    /// Multihop (RFC 5883, port 4784) for `ebgpMultiHop` peers; single hop otherwise.
    pub multihop: bool,
    /// The validated BFDProfile.
    pub profile: BfdProfile,
}

/// A configuration the BFD manager cannot honour as given (returned by
/// [`BfdManager::apply`], and logged).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum BfdProblem {
    /// Echo mode requested for a session echo cannot run on (IPv6, or multihop where RFC
    /// 5883 §3 rules echo out). Decision: the session runs without echo (asynchronous mode
    /// still detects failures, within the profile's detection time) rather than not at all.
    #[error(
        "BFDProfile {profile}: spec.echoMode applies to single-hop IPv4 sessions only; the \
         session for BGPPeer {peer} ({reason}) runs without echo"
    )]
    EchoNotApplicable {
        /// `namespace/name` of the BFDProfile.
        profile: String,
        /// `namespace/name` of the BGPPeer.
        peer: String,
        /// Why: `IPv6 peer` or `ebgpMultiHop`.
        reason: &'static str,
    },
    /// Source and peer address of different families: no session.
    #[error(
        "BGPPeer {peer}: sourceAddress {local} and peerAddress {address} are of different \
         address families; no BFD session (use a source address of the peer's family)"
    )]
    FamilyMismatch {
        /// `namespace/name` of the BGPPeer.
        peer: String,
        /// Peer address.
        address: IpAddr,
        /// Source address.
        local: IpAddr,
    },
    /// A detect multiplier of 0 cannot be sent (RFC 5880 §6.8.6 makes receivers discard it).
    #[error(
        "BFDProfile {profile}: spec.detectMultiplier is 0 (accepted: 1-255); no BFD session \
         for BGPPeer {peer}"
    )]
    ZeroMultiplier {
        /// `namespace/name` of the BFDProfile.
        profile: String,
        /// `namespace/name` of the BGPPeer.
        peer: String,
    },
}

/// The BFD sessions of this speaker, driven by a dedicated thread.
///
/// Dropping it without [`BfdManager::shutdown`] stops the thread at once without sending
/// AdminDown, like a crash: peers notice within their detection time.
#[derive(Debug)]
pub struct BfdManager {
    commands: mpsc::UnboundedSender<Command>,
    thread: Option<std::thread::JoinHandle<()>>,
    sessions: Mutex<BTreeMap<String, (BfdPeer, Arc<SessionHandle>)>>,
}

impl BfdManager {
    /// Spawns the BFD thread and binds its receive sockets (UDP 3784 and 4784, IPv4 and
    /// IPv6). The thread is spawned from the calling thread and a thread inherits its
    /// creator's network namespace, so every BFD socket lives in the caller's namespace.
    pub fn start() -> std::io::Result<BfdManager> {
        let (commands, rx) = mpsc::unbounded_channel();
        let thread = runtime::spawn(rx)?;
        Ok(BfdManager {
            commands,
            thread: Some(thread),
            sessions: Mutex::new(BTreeMap::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, (BfdPeer, Arc<SessionHandle>)>> {
        // A panic while holding the lock leaves a map that is still consistent.
        lock(&self.sessions)
    }

    /// Sets the whole desired set of sessions, keyed by BGPPeer `namespace/name`. Unchanged
    /// peers keep their session; removed ones send AdminDown and are dropped; changed timers
    /// are negotiated with a Poll Sequence; a changed address starts a new session. Returns
    /// what could not be honoured as given (also logged).
    pub fn apply(&self, peers: BTreeMap<String, BfdPeer>) -> Vec<BfdProblem> {
        let mut problems = Vec::new();
        let mut sessions = self.lock();
        let mut next = BTreeMap::new();
        let mut desired = BTreeMap::new();
        for (key, peer) in peers {
            let Some(spec) = spec_for(&key, &peer, &mut problems) else {
                continue;
            };
            let handle = sessions
                .get(&key)
                .map_or_else(|| Arc::new(SessionHandle::new()), |(_, h)| h.clone());
            desired.insert(key.clone(), (spec, handle.clone()));
            next.insert(key, (peer, handle));
        }
        // Removed sessions read AdminDown as soon as apply returns; the BFD thread sends
        // the AdminDown packets a moment later.
        for (key, (_, handle)) in sessions.iter() {
            if !next.contains_key(key) {
                handle.state.send_replace(BfdState::AdminDown);
            }
        }
        *sessions = next;
        if self.commands.send(Command::Apply(desired)).is_err() {
            warn!("BFD thread is gone; sessions are not running");
        }
        drop(sessions);
        for p in &problems {
            warn!("{p}");
        }
        problems
    }

    /// The state of the session of BGPPeer `key` (`namespace/name`), updated the moment it
    /// changes. `None` when no such session is desired. After the peer is removed the channel
    /// shows AdminDown and then closes. When the remote takes the session AdminDown the
    /// channel shows AdminDown too (the protocol state is Down): only Up → Down is a failure.
    pub fn subscribe(&self, key: &str) -> Option<watch::Receiver<BfdState>> {
        self.lock().get(key).map(|(_, h)| h.state.subscribe())
    }

    /// State and detection time of every session, by BGPPeer key.
    pub fn status(&self) -> BTreeMap<String, BfdSessionStatus> {
        self.lock()
            .iter()
            .map(|(k, (p, h))| {
                (
                    k.clone(),
                    BfdSessionStatus {
                        state: h.state.borrow().to_string(),
                        detection_time_ms: h.detection_ms.load(Ordering::Relaxed),
                        echo_active: h.echo_active.load(Ordering::Relaxed),
                        strict_mode: p.profile.strict_mode,
                    },
                )
            })
            .collect()
    }

    /// Counters of every session, by BGPPeer key. The counters of a session live as long as
    /// its key stays in the desired set.
    pub fn counters(&self) -> BTreeMap<String, Arc<BfdCounters>> {
        self.lock()
            .iter()
            .map(|(k, (_, h))| (k.clone(), h.counters.clone()))
            .collect()
    }

    /// Sends AdminDown to every peer, then stops the thread. Blocks for at most about half a
    /// second (the first AdminDown packet goes at once).
    pub fn shutdown(mut self) {
        let _ = self.commands.send(Command::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for BfdManager {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            // Closing the command channel ends the loop without AdminDown.
            let (closed, _) = mpsc::unbounded_channel();
            drop(std::mem::replace(&mut self.commands, closed));
            let _ = t.join();
        }
    }
}

/// The session a peer asks for, or `None` when it cannot run; problems are appended.
fn spec_for(key: &str, peer: &BfdPeer, problems: &mut Vec<BfdProblem>) -> Option<SessionSpec> {
    let profile = format!("{}/{}", peer.profile.namespace, peer.profile.name);
    if let Some(local) = peer.local
        && local.is_ipv4() != peer.peer.is_ipv4()
    {
        problems.push(BfdProblem::FamilyMismatch {
            peer: key.to_string(),
            address: peer.peer,
            local,
        });
        return None;
    }
    if peer.profile.detect_multiplier == 0 {
        problems.push(BfdProblem::ZeroMultiplier {
            profile,
            peer: key.to_string(),
        });
        return None;
    }
    let echo_blocker = if peer.multihop {
        Some("ebgpMultiHop")
    } else if peer.peer.is_ipv6() {
        Some("IPv6 peer")
    } else {
        None
    };
    let echo = match (peer.profile.echo_mode, echo_blocker) {
        (false, _) => None,
        (true, None) => Some(peer.profile.echo_interval),
        (true, Some(reason)) => {
            problems.push(BfdProblem::EchoNotApplicable {
                profile,
                peer: key.to_string(),
                reason,
            });
            None
        }
    };
    Some(SessionSpec {
        peer: peer.peer,
        local: peer.local,
        multihop: peer.multihop,
        timers: Timers {
            desired_min_tx: peer.profile.transmit_interval,
            required_min_rx: peer.profile.receive_interval,
            detect_mult: peer.profile.detect_multiplier,
        },
        passive: peer.profile.passive_mode,
        minimum_ttl: peer.profile.minimum_ttl,
        echo,
    })
}

#[cfg(test)]
mod tests;
