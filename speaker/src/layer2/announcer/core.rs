//! The announcer's decisions: which (interface, IP) pairs to answer for and when to send
//! gratuitous announcements, from the desired set and the interface table. Generic over an
//! [`L2Backend`] and driven with an explicit clock, so it is unit-tested with a fake backend.

use crate::layer2::interfaces::{InterfaceError, InterfaceTable, Link, choose_interfaces};
use ferrolb_api::status::{Announcement, AnnouncementMode};
use ferrolb_speaker_core::desired::L2Announcement;
use ferrolb_speaker_core::layer2::handover::{HandoverEnd, HandoverEnded, Handovers, Owners};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// When announcements for a gained IP are sent, relative to the gain.
///
/// - 0 s: at once, the failover itself.
/// - 0.5 s: covers a first frame lost on a busy or still-converging segment (a switch port
///   that was just learning, an STP topology change).
/// - 2 s: Linux ignores a second update of a neighbour entry within `locktime` (1 s by default)
///   of the previous one, so if the old owner answered a request just before dying, our first
///   gratuitous ARP can be ignored by Linux clients; this one lands after that window.
/// - 5 s: slow hosts and caches in the middle of a probe cycle.
///
/// Four frames per IP and interface are negligible traffic even for hundreds of IPs.
pub const ANNOUNCE_SCHEDULE: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_millis(500),
    Duration::from_secs(2),
    Duration::from_secs(5),
];

/// When announcements are sent again after a successor that presumed this node down hands
/// its addresses back (a reclaim), relative to the request.
///
/// The successor's own gratuitous announcement may reach the clients a few milliseconds after
/// ours: its pass acting on the presumption can still be running when the presumption is
/// revoked. Caches would then point at the successor until our next frame; the 50 ms and
/// 200 ms repeats bound that to tens of milliseconds instead of the gain schedule's 500 ms.
/// The rest is [`ANNOUNCE_SCHEDULE`].
pub const RECLAIM_SCHEDULE: [Duration; 6] = [
    Duration::ZERO,
    Duration::from_millis(50),
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(2),
    Duration::from_secs(5),
];

/// How long after a failed socket operation the announcer tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Errors of the layer 2 runtime.
#[derive(Debug, thiserror::Error)]
pub enum L2Error {
    /// A socket could not be opened or configured on an interface.
    #[error("{what} on interface {interface}: {source}")]
    Socket {
        /// What failed.
        what: &'static str,
        /// The interface.
        interface: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Interface discovery failed.
    #[error(transparent)]
    Interfaces(#[from] InterfaceError),
}

/// One IP this node must announce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredIp {
    /// The address.
    pub ip: IpAddr,
    /// Interfaces to announce on; empty means automatic choice.
    pub interfaces: Vec<String>,
    /// Services using it (`namespace/name`), for the status API.
    pub services: Vec<String>,
}

impl From<(IpAddr, Vec<String>)> for DesiredIp {
    fn from((ip, interfaces): (IpAddr, Vec<String>)) -> Self {
        DesiredIp {
            ip,
            interfaces,
            services: Vec::new(),
        }
    }
}

impl From<L2Announcement> for DesiredIp {
    fn from(a: L2Announcement) -> Self {
        DesiredIp {
            ip: a.ip,
            interfaces: a.interfaces,
            services: a.services,
        }
    }
}

impl From<&L2Announcement> for DesiredIp {
    fn from(a: &L2Announcement) -> Self {
        a.clone().into()
    }
}

/// Counters of the layer 2 runtime, for metrics. Monotonic.
#[derive(Debug, Default)]
pub struct L2Counters {
    /// Gratuitous ARP announcements sent (each is one request and one reply frame).
    pub garp_sent: AtomicU64,
    /// Unsolicited Neighbor Advertisements sent.
    pub unsolicited_na_sent: AtomicU64,
    /// ARP requests answered.
    pub arp_requests_answered: AtomicU64,
    /// Neighbor Solicitations answered.
    pub ndp_solicitations_answered: AtomicU64,
    /// Announcements or socket operations that failed.
    pub errors: AtomicU64,
    /// Renewals of the kernel responder's lease that came after it had run out (the sockets
    /// answered meanwhile): how often the lease is too short for this host's scheduling.
    pub kernel_lease_lapses: AtomicU64,
    /// Hand-overs ended by seeing the new owner's announcement on the wire.
    pub handovers_observed: AtomicU64,
    /// Hand-overs ended by their window running out.
    pub handovers_timed_out: AtomicU64,
    /// Microseconds spent answering for addresses after losing them to another node, summed
    /// over the hand-overs that ended by observation or timeout: the both-answering windows.
    pub handover_micros: AtomicU64,
}

/// A copy of `L2Counters` at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct L2CounterValues {
    /// See `L2Counters::garp_sent`.
    pub garp_sent: u64,
    /// See `L2Counters::unsolicited_na_sent`.
    pub unsolicited_na_sent: u64,
    /// See `L2Counters::arp_requests_answered`.
    pub arp_requests_answered: u64,
    /// See `L2Counters::ndp_solicitations_answered`.
    pub ndp_solicitations_answered: u64,
    /// See `L2Counters::errors`.
    pub errors: u64,
    /// See `L2Counters::kernel_lease_lapses`.
    pub kernel_lease_lapses: u64,
    /// See `L2Counters::handovers_observed`.
    pub handovers_observed: u64,
    /// See `L2Counters::handovers_timed_out`.
    pub handovers_timed_out: u64,
    /// See `L2Counters::handover_micros`.
    pub handover_micros: u64,
}

impl L2Counters {
    /// The current values.
    pub fn values(&self) -> L2CounterValues {
        L2CounterValues {
            garp_sent: self.garp_sent.load(Ordering::Relaxed),
            unsolicited_na_sent: self.unsolicited_na_sent.load(Ordering::Relaxed),
            arp_requests_answered: self.arp_requests_answered.load(Ordering::Relaxed),
            ndp_solicitations_answered: self.ndp_solicitations_answered.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            kernel_lease_lapses: self.kernel_lease_lapses.load(Ordering::Relaxed),
            handovers_observed: self.handovers_observed.load(Ordering::Relaxed),
            handovers_timed_out: self.handovers_timed_out.load(Ordering::Relaxed),
            handover_micros: self.handover_micros.load(Ordering::Relaxed),
        }
    }
}

pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What the announcer needs from the sockets, so that the decisions can be tested without them.
pub trait L2Backend {
    /// Makes `link` answer for exactly `ips`: opens what is missing, joins/leaves multicast
    /// groups, and closes the interface's sockets when `ips` is empty. Removals must take
    /// effect before it returns.
    fn set_owned(&mut self, link: &Link, ips: &BTreeSet<IpAddr>) -> Result<(), L2Error>;
    /// Sends one gratuitous ARP (IPv4) or unsolicited NA (IPv6) for `ip` on `link`.
    fn announce(&mut self, link: &Link, ip: IpAddr) -> Result<(), L2Error>;
    /// Keeps these interfaces ready to answer (sockets open, kernel responder attached) even
    /// while they own nothing, and lets the others close once they own nothing. Called before
    /// the `set_owned` calls of the same change.
    fn set_standby(&mut self, standby: &BTreeMap<String, Standby>) -> Result<(), L2Error>;
}

/// An interface kept ready for addresses this node would take over, and their families.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standby {
    /// The interface.
    pub link: Link,
    /// An IPv4 address would be announced here (an ARP socket is needed).
    pub v4: bool,
    /// An IPv6 address would be announced here (an NDP socket is needed).
    pub v6: bool,
}

#[derive(Clone, Debug)]
struct Wanted {
    interfaces: Vec<String>,
    services: Vec<String>,
    since: SystemTime,
}

/// The announcer's state and decisions, without sockets or clocks of its own.
pub struct AnnouncerCore<B> {
    backend: B,
    exclude_patterns: Vec<String>,
    desired: BTreeMap<IpAddr, Wanted>,
    /// IPs this node would take over next, with their requested interfaces (empty: automatic).
    standby: BTreeMap<IpAddr, Vec<String>>,
    table: InterfaceTable,
    /// What the backend has been told, per interface name.
    applied: BTreeMap<String, (Link, BTreeSet<IpAddr>)>,
    /// Pending announcements: (due, interface, IP).
    pending: BTreeSet<(Instant, String, IpAddr)>,
    retry_at: Option<Instant>,
    counters: Arc<L2Counters>,
    /// Make-before-break for addresses lost to a live node ([`Handovers`]).
    handovers: Handovers,
    /// The interfaces of the addresses being handed over, answered there until the end.
    handing_over: BTreeMap<IpAddr, Vec<String>>,
    /// The election's owner of every layer 2 address, for the hand-overs.
    owners: Arc<Owners>,
    /// This node's name and whether lost addresses are handed over (`--hitless-operations`).
    hand_over: Option<String>,
}

impl<B: L2Backend> AnnouncerCore<B> {
    /// A core with nothing desired and no interfaces known.
    pub fn new(backend: B, exclude_patterns: Vec<String>, counters: Arc<L2Counters>) -> Self {
        AnnouncerCore {
            backend,
            exclude_patterns,
            desired: BTreeMap::new(),
            standby: BTreeMap::new(),
            table: InterfaceTable::default(),
            applied: BTreeMap::new(),
            pending: BTreeSet::new(),
            retry_at: None,
            counters,
            handovers: Handovers::new(),
            handing_over: BTreeMap::new(),
            owners: Arc::default(),
            hand_over: None,
        }
    }

    /// Hands addresses lost to another live node over make-before-break
    /// ([`ferrolb_speaker_core::layer2::handover`]); `node` is this node's name. Without this
    /// call a lost address stops being answered at once.
    pub fn set_make_before_break(&mut self, node: &str) {
        self.hand_over = Some(node.to_string());
    }

    /// Replaces the election's owner of every layer 2 address. Takes effect with the next
    /// [`AnnouncerCore::set_desired`]. Shared with the pass that decided it, which updates
    /// its own copy in place once this one is let go.
    pub fn set_owners(&mut self, owners: Arc<Owners>) {
        self.owners = owners;
    }

    /// The backend (tests inspect the fake one).
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend, for what only it can do (the kernel responder's hand-over).
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Replaces the desired set (level-triggered) and applies the difference at `now`.
    /// `wall` stamps newly gained IPs for the status API.
    pub fn set_desired(&mut self, desired: Vec<DesiredIp>, now: Instant, wall: SystemTime) {
        let next: BTreeMap<IpAddr, Wanted> = merge_by_ip(desired)
            .into_iter()
            .map(|(ip, (interfaces, services))| {
                let since = self.desired.get(&ip).map_or(wall, |w| w.since);
                let wanted = Wanted {
                    interfaces,
                    services,
                    since,
                };
                (ip, wanted)
            })
            .collect();
        let before: BTreeSet<IpAddr> = self.desired.keys().copied().collect();
        let owned: BTreeSet<IpAddr> = next.keys().copied().collect();
        let me = self.hand_over.clone().unwrap_or_default();
        let ended = self.handovers.update(
            &before,
            &owned,
            &self.owners,
            &me,
            self.hand_over.is_some(),
            now,
        );
        for ip in before.difference(&owned) {
            if self.handovers.is_releasing(*ip)
                && let Some(wanted) = self.desired.get(ip)
            {
                self.start_handing_over(*ip, wanted.interfaces.clone());
            }
        }
        self.desired = next;
        self.finish_handovers(ended, now);
        self.reconcile(now);
    }

    /// Keeps answering for `ip` on `interfaces` while it is handed over, silently: its
    /// repetitions are cancelled, so that no announcement of ours follows the new owner's.
    fn start_handing_over(&mut self, ip: IpAddr, interfaces: Vec<String>) {
        self.pending.retain(|(_, _, p)| *p != ip);
        tracing::info!(%ip, "layer 2: lost to another node; answering until it has announced");
        self.handing_over.insert(ip, interfaces);
    }

    /// Records ended hand-overs; a regained address is announced again, as the new owner may
    /// have pointed caches to itself meanwhile.
    fn finish_handovers(&mut self, ended: Vec<HandoverEnded>, now: Instant) {
        for e in ended {
            self.handing_over.remove(&e.ip);
            let ms = e.lasted.as_secs_f64() * 1000.0;
            let to = e.to.as_deref().unwrap_or("its next owner");
            match e.how {
                HandoverEnd::Observed | HandoverEnd::TimedOut => {
                    let counter = if e.how == HandoverEnd::Observed {
                        &self.counters.handovers_observed
                    } else {
                        &self.counters.handovers_timed_out
                    };
                    bump(counter);
                    let micros = u64::try_from(e.lasted.as_micros()).unwrap_or(u64::MAX);
                    self.counters
                        .handover_micros
                        .fetch_add(micros, Ordering::Relaxed);
                    tracing::info!(ip = %e.ip, %to, answered_after_loss_ms = ms, how = e.how.code(), "layer 2: handed over");
                }
                HandoverEnd::Regained => {
                    tracing::info!(ip = %e.ip, "layer 2: regained during its hand-over; announcing it again");
                    for name in self
                        .applied
                        .iter()
                        .filter(|(_, (_, ips))| ips.contains(&e.ip))
                        .map(|(n, _)| n.clone())
                        .collect::<Vec<_>>()
                    {
                        for offset in ANNOUNCE_SCHEDULE {
                            self.pending.insert((now + offset, name.clone(), e.ip));
                        }
                    }
                }
                HandoverEnd::NoSuccessor => {
                    tracing::info!(ip = %e.ip, %to, "layer 2: hand-over ended, no node takes the address");
                }
            }
        }
    }

    /// Another node announced `ip` on the wire (its gratuitous ARP or unsolicited NA, from
    /// another MAC): a hand-over of it ends shortly after ([`Self::poll`] ends it). Whether it
    /// was being handed over.
    pub fn observed_elsewhere(&mut self, ip: IpAddr, now: Instant) -> bool {
        self.handovers.observed(ip, now)
    }

    /// Gives every owned address up make-before-break: each is answered, silently, until its
    /// next owner's announcement is seen or the hand-over window ends ([`Self::poll`] ends
    /// them). For a speaker leaving the membership, which cannot know the next owners.
    pub fn hand_over_all(&mut self, now: Instant) {
        let owned: BTreeSet<IpAddr> = self.desired.keys().copied().collect();
        self.handovers.release_all(&owned, now);
        let desired = std::mem::take(&mut self.desired);
        for (ip, wanted) in desired {
            self.start_handing_over(ip, wanted.interfaces);
        }
        self.standby.clear();
        self.reconcile(now);
    }

    /// How many addresses are being handed over.
    pub fn handovers_in_progress(&self) -> usize {
        self.handing_over.len()
    }

    /// Replaces the IPs this node would take over next (the successor's, see
    /// [`ferrolb_speaker_core::desired::Desired::l2_standby`]): their interfaces are kept ready, so that a
    /// takeover needs no socket to open nor program to attach — attaching to tcx waits for an
    /// RCU grace period, tens of milliseconds on a busy host. Takes effect with the next
    /// [`AnnouncerCore::set_desired`] (one reconciliation for both, so that an address moving
    /// from ready to owned never sees its interface closed in between).
    pub fn set_standby(&mut self, standby: Vec<DesiredIp>) {
        self.standby = merge_by_ip(standby)
            .into_iter()
            .map(|(ip, (interfaces, _))| (ip, interfaces))
            .collect();
    }

    /// The interfaces to keep ready, with the families they would serve: those of the
    /// addresses this node would take over, and those of `target` (about to own addresses,
    /// which must not be closed as idle first).
    fn ready_target(
        &self,
        target: &BTreeMap<String, (Link, BTreeSet<IpAddr>)>,
    ) -> BTreeMap<String, Standby> {
        let mut out: BTreeMap<String, Standby> = BTreeMap::new();
        let owned = target
            .values()
            .flat_map(|(link, ips)| ips.iter().map(move |ip| (link, *ip)));
        let standby = self.standby.iter().flat_map(|(ip, interfaces)| {
            choose_interfaces(&self.table, interfaces, &self.exclude_patterns)
                .into_iter()
                .map(move |link| (link, *ip))
        });
        for (link, ip) in owned.chain(standby) {
            let s = out.entry(link.name.clone()).or_insert_with(|| Standby {
                link: link.clone(),
                v4: false,
                v6: false,
            });
            s.v4 |= ip.is_ipv4();
            s.v6 |= ip.is_ipv6();
        }
        out
    }

    /// Replaces the interface table and applies the difference at `now`.
    pub fn set_interfaces(&mut self, table: InterfaceTable, now: Instant) {
        self.table = table;
        self.reconcile(now);
    }

    /// The (interface → IPs) assignment the desired set and interface table call for.
    fn target(&self) -> BTreeMap<String, (Link, BTreeSet<IpAddr>)> {
        let mut out: BTreeMap<String, (Link, BTreeSet<IpAddr>)> = BTreeMap::new();
        let wanted = self
            .desired
            .iter()
            .map(|(ip, w)| (ip, &w.interfaces))
            .chain(self.handing_over.iter());
        for (ip, interfaces) in wanted {
            for link in choose_interfaces(&self.table, interfaces, &self.exclude_patterns) {
                out.entry(link.name.clone())
                    .or_insert_with(|| (link.clone(), BTreeSet::new()))
                    .1
                    .insert(*ip);
            }
        }
        out
    }

    /// Gives every address and every standby interface up at once, closing every socket: the
    /// announcer is going away.
    pub fn release_all(&mut self, now: Instant) {
        self.desired.clear();
        self.standby.clear();
        self.handing_over.clear();
        self.handovers = Handovers::new();
        self.reconcile(now);
    }

    fn reconcile(&mut self, now: Instant) {
        let target = self.target();
        // Readiness is an optimisation: a failure costs a slower takeover, so it is counted
        // and logged but does not hold up the announcements.
        if let Err(error) = self.backend.set_standby(&self.ready_target(&target)) {
            bump(&self.counters.errors);
            tracing::warn!(%error, "layer 2: keeping an interface ready for a takeover failed");
        }
        let names: BTreeSet<String> = self.applied.keys().chain(target.keys()).cloned().collect();
        let mut failed = false;
        for name in names {
            let old = self.applied.get(&name);
            let new = target.get(&name);
            let (link, ips) = match (old, new) {
                (_, Some((link, ips))) => (link.clone(), ips.clone()),
                (Some((link, _)), None) => (link.clone(), BTreeSet::new()),
                (None, None) => continue,
            };
            // A new index or MAC is a new device as far as the sockets go: everything on it
            // is a gain again.
            let same_device = old.is_some_and(|(l, _)| l.index == link.index && l.mac == link.mac);
            let old_ips = match old {
                Some((_, ips)) if same_device => ips.clone(),
                _ => BTreeSet::new(),
            };
            let unchanged = same_device && old.is_some_and(|(l, _)| *l == link) && old_ips == ips;
            if unchanged {
                continue;
            }
            // Cancel repetitions for what is lost before anything else.
            for lost in old_ips.difference(&ips) {
                self.pending
                    .retain(|(_, n, ip)| !(n == &name && ip == lost));
                tracing::info!(ip = %lost, interface = %name, "layer 2: stopped announcing");
            }
            if !same_device && let Some((old_link, _)) = old {
                // Close the sockets of the old device before opening on the new one.
                if let Err(error) = self.backend.set_owned(old_link, &BTreeSet::new()) {
                    tracing::warn!(%error, "closing layer 2 sockets failed");
                }
            }
            match self.backend.set_owned(&link, &ips) {
                Ok(()) => {
                    for gained in ips.difference(&old_ips) {
                        tracing::info!(ip = %gained, interface = %name, "layer 2: announcing");
                        for offset in ANNOUNCE_SCHEDULE {
                            self.pending.insert((now + offset, name.clone(), *gained));
                        }
                    }
                    if ips.is_empty() {
                        self.applied.remove(&name);
                    } else {
                        self.applied.insert(name, (link, ips));
                    }
                }
                Err(error) => {
                    bump(&self.counters.errors);
                    tracing::warn!(%error, "layer 2: applying announcements failed; will retry");
                    failed = true;
                    // Whatever the backend managed, losses must not be answered: tell it the
                    // intersection, which only removes.
                    let keep: BTreeSet<IpAddr> = old_ips.intersection(&ips).copied().collect();
                    if same_device && keep != old_ips {
                        let _ = self.backend.set_owned(&link, &keep);
                        self.applied.insert(name, (link, keep));
                    } else if !same_device {
                        self.applied.remove(&name);
                    }
                }
            }
        }
        self.retry_at = failed.then(|| now + RETRY_AFTER);
    }

    /// Sends the announcements due at `now` and returns when to call again.
    pub fn poll(&mut self, now: Instant) -> Option<Instant> {
        let expired = self.handovers.expire(now);
        if !expired.is_empty() {
            self.finish_handovers(expired, now);
            self.reconcile(now);
        }
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            self.reconcile(now);
        }
        while let Some(first) = self.pending.first().cloned() {
            if first.0 > now {
                break;
            }
            self.pending.remove(&first);
            let (_, name, ip) = first;
            let Some((link, _)) = self.applied.get(&name) else {
                continue;
            };
            match self.backend.announce(link, ip) {
                Ok(()) => match ip {
                    IpAddr::V4(_) => bump(&self.counters.garp_sent),
                    IpAddr::V6(_) => bump(&self.counters.unsolicited_na_sent),
                },
                Err(error) => {
                    bump(&self.counters.errors);
                    tracing::warn!(%error, %ip, interface = %name, "layer 2: announcement failed");
                }
            }
        }
        [
            self.pending.first().map(|(t, _, _)| *t),
            self.retry_at,
            self.handovers.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Schedules the gratuitous announcements of every IP in force again, on [`RECLAIM_SCHEDULE`]: a
    /// successor that answered for us while presuming us down hands the IPs back
    /// ([`ferrolb_speaker_core::membership::heartbeat`]), and caches must point back here.
    pub fn reannounce(&mut self, now: Instant) {
        for (name, (_, ips)) in &self.applied {
            for ip in ips.iter().filter(|ip| !self.handing_over.contains_key(ip)) {
                for offset in RECLAIM_SCHEDULE {
                    self.pending.insert((now + offset, name.clone(), *ip));
                }
            }
        }
    }

    /// The announcements in force, for the status API.
    pub fn snapshot(&self) -> Vec<Announcement> {
        self.desired
            .iter()
            .map(|(ip, wanted)| Announcement {
                ip: *ip,
                services: wanted.services.clone(),
                mode: AnnouncementMode::Layer2,
                interfaces: self
                    .applied
                    .iter()
                    .filter(|(_, (_, ips))| ips.contains(ip))
                    .map(|(name, _)| name.clone())
                    .collect(),
                peers: Vec::new(),
                since: rfc3339(wanted.since),
            })
            .collect()
    }

    /// Interfaces the backend currently has sockets on, with their IPs.
    pub fn in_force(&self) -> BTreeMap<String, BTreeSet<IpAddr>> {
        self.applied
            .iter()
            .map(|(name, (_, ips))| (name.clone(), ips.clone()))
            .collect()
    }
}

/// Merges the entries of each IP: the same IP can be listed more than once (Services sharing
/// it, several advertisements). Gives, per IP, the union of the requested interfaces — empty
/// (automatic choice) as soon as one entry is automatic — and the union of the services.
fn merge_by_ip(entries: Vec<DesiredIp>) -> BTreeMap<IpAddr, (Vec<String>, Vec<String>)> {
    let mut merged: BTreeMap<IpAddr, (Option<BTreeSet<String>>, BTreeSet<String>)> =
        BTreeMap::new();
    for d in entries {
        let auto = d.interfaces.is_empty();
        let entry = merged
            .entry(d.ip)
            .or_insert_with(|| (Some(BTreeSet::new()), BTreeSet::new()));
        match (&mut entry.0, auto) {
            (Some(_), true) => entry.0 = None,
            (Some(set), false) => set.extend(d.interfaces),
            (None, _) => {}
        }
        entry.1.extend(d.services);
    }
    merged
        .into_iter()
        .map(|(ip, (interfaces, services))| {
            let interfaces = interfaces.unwrap_or_default().into_iter().collect();
            (ip, (interfaces, services.into_iter().collect()))
        })
        .collect()
}

/// A time as RFC 3339 UTC with second precision (`2026-11-03T12:34:56Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer2::interfaces::{default_exclude_patterns, test_link as link};
    use ferrolb_speaker_core::layer2::frames::MacAddr;

    #[derive(Default)]
    struct Fake {
        owned: BTreeMap<String, BTreeSet<IpAddr>>,
        sent: Vec<(String, IpAddr)>,
        fail_open: BTreeSet<String>,
        standby: BTreeMap<String, Standby>,
    }

    impl L2Backend for Fake {
        fn set_owned(&mut self, link: &Link, ips: &BTreeSet<IpAddr>) -> Result<(), L2Error> {
            if !ips.is_empty() && self.fail_open.contains(&link.name) {
                return Err(L2Error::Socket {
                    what: "opening",
                    interface: link.name.clone(),
                    source: std::io::Error::other("fake"),
                });
            }
            if ips.is_empty() {
                self.owned.remove(&link.name);
            } else {
                self.owned.insert(link.name.clone(), ips.clone());
            }
            Ok(())
        }

        fn announce(&mut self, link: &Link, ip: IpAddr) -> Result<(), L2Error> {
            self.sent.push((link.name.clone(), ip));
            Ok(())
        }

        fn set_standby(&mut self, standby: &BTreeMap<String, Standby>) -> Result<(), L2Error> {
            self.standby = standby.clone();
            Ok(())
        }
    }

    fn table(links: &[Link]) -> InterfaceTable {
        InterfaceTable {
            links: links.iter().map(|l| (l.index, l.clone())).collect(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn core() -> AnnouncerCore<Fake> {
        AnnouncerCore::new(
            Fake::default(),
            default_exclude_patterns(),
            Arc::new(L2Counters::default()),
        )
    }

    fn auto(ips: &[&str]) -> Vec<DesiredIp> {
        ips.iter().map(|s| (ip(s), vec![]).into()).collect()
    }

    #[test]
    fn gains_answer_and_announce_on_schedule() {
        let t0 = Instant::now();
        let mut c = core();
        c.set_interfaces(table(&[link(2, "eth0"), link(3, "veth1")]), t0);
        c.set_desired(
            auto(&["10.200.0.10", "fd00:200::10"]),
            t0,
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(
            c.backend().owned,
            BTreeMap::from([(
                "eth0".to_string(),
                BTreeSet::from([ip("10.200.0.10"), ip("fd00:200::10")])
            )])
        );
        // Nothing is sent before the first poll; then everything due at t0.
        assert!(c.backend().sent.is_empty());
        let next = c.poll(t0);
        assert_eq!(c.backend().sent.len(), 2);
        assert_eq!(next, Some(t0 + ANNOUNCE_SCHEDULE[1]));
        // Walk the schedule: 4 announcements per (interface, IP) in total.
        let mut at = next;
        while let Some(t) = at {
            at = c.poll(t);
        }
        assert_eq!(c.backend().sent.len(), 2 * ANNOUNCE_SCHEDULE.len());
        let v = c.counters.values();
        assert_eq!((v.garp_sent, v.unsolicited_na_sent), (4, 4));
        // Level-triggered: the same set again changes nothing and schedules nothing.
        c.set_desired(
            auto(&["10.200.0.10", "fd00:200::10"]),
            t0 + Duration::from_secs(9),
            SystemTime::now(),
        );
        assert_eq!(c.poll(t0 + Duration::from_secs(9)), None);
        // `since` is kept from the first gain.
        assert!(
            c.snapshot()
                .iter()
                .all(|a| a.since == "1970-01-01T00:00:00Z")
        );
    }

    #[test]
    fn takeover_interfaces_stay_ready_through_the_takeover_and_reannounce_repeats() {
        let t0 = Instant::now();
        let mut c = core();
        c.set_interfaces(
            table(&[link(2, "eth0"), link(3, "eth1"), link(4, "veth1")]),
            t0,
        );
        let ready = |c: &AnnouncerCore<Fake>| -> Vec<(String, bool, bool)> {
            c.backend()
                .standby
                .values()
                .map(|s| (s.link.name.clone(), s.v4, s.v6))
                .collect()
        };
        // Successor of one IPv4 address (automatic interfaces) and one IPv6 address on eth1:
        // ready, but nothing answered or announced.
        c.set_standby(vec![
            (ip("10.200.0.10"), vec![]).into(),
            (ip("fd00:200::10"), vec!["eth1".to_string()]).into(),
        ]);
        c.set_desired(Vec::new(), t0, SystemTime::now());
        assert_eq!(
            ready(&c),
            [("eth0".into(), true, false), ("eth1".into(), true, true)]
        );
        assert!(c.backend().owned.is_empty());
        assert_eq!(c.poll(t0), None);
        // The takeover: owned now, no longer standby; the interface stays ready throughout
        // (the backend is told before `set_owned`, in the same reconciliation).
        c.set_standby(Vec::new());
        c.set_desired(auto(&["10.200.0.10"]), t0, SystemTime::now());
        assert_eq!(
            ready(&c),
            [("eth0".into(), true, false), ("eth1".into(), true, false)]
        );
        assert_eq!(c.backend().owned.len(), 2);
        c.poll(t0);
        assert_eq!(c.backend().sent.len(), 2);
        // A reclaim repeats the whole schedule for every address in force.
        let mut at = Some(t0);
        while let Some(t) = at {
            at = c.poll(t);
        }
        let before = c.backend().sent.len();
        let t1 = t0 + Duration::from_secs(10);
        c.reannounce(t1);
        let mut at = Some(t1);
        while let Some(t) = at {
            at = c.poll(t);
        }
        assert_eq!(c.backend().sent.len() - before, 2 * RECLAIM_SCHEDULE.len());
        // Nothing owned and nothing to take over: nothing kept ready.
        c.set_desired(Vec::new(), t1, SystemTime::now());
        assert!(ready(&c).is_empty());
        assert!(c.backend().owned.is_empty());
    }

    fn owners(list: &[(&str, Option<&str>)]) -> Arc<Owners> {
        Arc::new(
            list.iter()
                .map(|(i, o)| (ip(i), o.map(str::to_string)))
                .collect(),
        )
    }

    #[test]
    fn an_address_lost_to_a_live_node_is_answered_silently_until_it_announces() {
        let t0 = Instant::now();
        let mut c = core();
        c.set_make_before_break("a");
        c.set_interfaces(table(&[link(2, "eth0")]), t0);
        c.set_desired(auto(&["10.200.0.10", "10.200.0.11"]), t0, SystemTime::now());
        c.poll(t0);
        let sent = c.backend().sent.len();
        // 10 moves to b (alive), 11 to nobody.
        c.set_owners(owners(&[("10.200.0.10", Some("b")), ("10.200.0.11", None)]));
        let t1 = t0 + Duration::from_millis(100);
        c.set_desired(Vec::new(), t1, SystemTime::now());
        assert_eq!(
            c.backend().owned["eth0"],
            BTreeSet::from([ip("10.200.0.10")]),
            "still answered while handed over; the ownerless one stops at once"
        );
        assert_eq!(c.handovers_in_progress(), 1);
        assert!(c.snapshot().is_empty(), "not reported as announced");
        // No announcement of ours follows the loss, and the window bounds the wait.
        assert_eq!(
            c.poll(t1),
            Some(t1 + ferrolb_speaker_core::layer2::handover::HANDOVER_WINDOW)
        );
        c.reannounce(t1);
        c.poll(t1);
        assert_eq!(c.backend().sent.len(), sent);
        // b's gratuitous ARP seen on the wire: stops shortly after.
        let seen = t1 + Duration::from_millis(4);
        let after = ferrolb_speaker_core::layer2::handover::AFTER_SEEN;
        assert!(c.observed_elsewhere(ip("10.200.0.10"), seen));
        assert_eq!(c.poll(seen), Some(seen + after));
        assert!(!c.backend().owned.is_empty());
        c.poll(seen + after);
        assert!(c.backend().owned.is_empty());
        let v = c.counters.values();
        assert_eq!((v.handovers_observed, v.handovers_timed_out), (1, 0));
        let micros = (Duration::from_millis(4) + after).as_micros();
        assert_eq!(u128::from(v.handover_micros), micros);
        assert_eq!(c.poll(t1 + Duration::from_secs(10)), None);
        assert_eq!(c.backend().sent.len(), sent);
    }

    #[test]
    fn a_hand_over_nobody_confirms_ends_with_its_window_and_a_regain_announces_again() {
        let window = ferrolb_speaker_core::layer2::handover::HANDOVER_WINDOW;
        let t0 = Instant::now();
        let mut c = core();
        c.set_make_before_break("a");
        c.set_interfaces(table(&[link(2, "eth0")]), t0);
        c.set_desired(auto(&["10.200.0.10"]), t0, SystemTime::now());
        let mut at = c.poll(t0);
        while let Some(t) = at {
            at = c.poll(t);
        }
        let sent = c.backend().sent.len();
        c.set_owners(owners(&[("10.200.0.10", Some("b"))]));
        let t1 = t0 + Duration::from_secs(10);
        c.set_desired(Vec::new(), t1, SystemTime::now());
        assert_eq!(c.poll(t1 + window / 2), Some(t1 + window));
        assert_eq!(c.poll(t1 + window), None);
        assert!(c.backend().owned.is_empty());
        assert_eq!(c.counters.values().handovers_timed_out, 1);
        // Lost again, and regained before the new owner announced: announced again at once.
        c.set_owners(owners(&[("10.200.0.10", Some("a"))]));
        c.set_desired(auto(&["10.200.0.10"]), t1 + window, SystemTime::now());
        c.poll(t1 + window);
        let t2 = t1 + Duration::from_secs(20);
        c.set_owners(owners(&[("10.200.0.10", Some("b"))]));
        c.set_desired(Vec::new(), t2, SystemTime::now());
        c.set_owners(owners(&[("10.200.0.10", Some("a"))]));
        c.set_desired(auto(&["10.200.0.10"]), t2, SystemTime::now());
        c.poll(t2);
        assert_eq!(
            c.backend().sent.len(),
            sent + 2,
            "gain after the timeout, then the regain"
        );
        assert_eq!(c.counters.values().handovers_timed_out, 1);
    }

    #[test]
    fn without_make_before_break_and_when_leaving() {
        let t0 = Instant::now();
        let mut c = core();
        c.set_interfaces(table(&[link(2, "eth0")]), t0);
        c.set_desired(auto(&["10.200.0.10", "10.200.0.11"]), t0, SystemTime::now());
        c.set_owners(owners(&[("10.200.0.10", Some("b"))]));
        // MetalLB-like: a loss to a live node stops at once.
        c.set_desired(auto(&["10.200.0.11"]), t0, SystemTime::now());
        assert_eq!(
            c.backend().owned["eth0"],
            BTreeSet::from([ip("10.200.0.11")])
        );
        // Leaving: everything stays answered until seen elsewhere or the window ends.
        c.set_make_before_break("a");
        c.hand_over_all(t0);
        assert_eq!(c.handovers_in_progress(), 1);
        assert_eq!(
            c.backend().owned["eth0"],
            BTreeSet::from([ip("10.200.0.11")])
        );
        assert!(c.observed_elsewhere(ip("10.200.0.11"), t0));
        c.poll(t0 + ferrolb_speaker_core::layer2::handover::AFTER_SEEN);
        assert_eq!(c.handovers_in_progress(), 0);
        assert!(c.backend().owned.is_empty());
    }

    #[test]
    fn losses_stop_at_once_and_cancel_repetitions() {
        let t0 = Instant::now();
        let mut c = core();
        c.set_interfaces(table(&[link(2, "eth0")]), t0);
        c.set_desired(auto(&["10.200.0.10", "10.200.0.11"]), t0, SystemTime::now());
        c.poll(t0);
        c.set_desired(
            auto(&["10.200.0.11"]),
            t0 + Duration::from_millis(100),
            SystemTime::now(),
        );
        assert_eq!(
            c.backend().owned["eth0"],
            BTreeSet::from([ip("10.200.0.11")])
        );
        let mut at = Some(t0);
        while let Some(t) = at {
            at = c.poll(t);
        }
        let for_lost = c
            .backend()
            .sent
            .iter()
            .filter(|(_, i)| *i == ip("10.200.0.10"))
            .count();
        assert_eq!(for_lost, 1, "only the immediate announcement went out");
        // Losing the last IP closes the interface.
        c.set_desired(Vec::<DesiredIp>::new(), t0, SystemTime::now());
        assert!(c.backend().owned.is_empty());
        assert!(c.in_force().is_empty());
        assert!(c.snapshot().is_empty());
    }

    #[test]
    fn explicit_interfaces_and_late_interfaces() {
        let t0 = Instant::now();
        let mut c = core();
        c.set_interfaces(table(&[link(2, "eth0")]), t0);
        c.set_desired(
            vec![DesiredIp {
                ip: ip("10.200.0.10"),
                interfaces: vec!["eth1".into()],
                services: vec!["default/web".into()],
            }],
            t0,
            SystemTime::now(),
        );
        assert!(c.backend().owned.is_empty());
        assert_eq!(c.snapshot()[0].interfaces, Vec::<String>::new());
        // eth1 appears later: used at once, announced.
        let t1 = t0 + Duration::from_secs(1);
        c.set_interfaces(table(&[link(2, "eth0"), link(4, "eth1")]), t1);
        assert_eq!(c.in_force().keys().collect::<Vec<_>>(), ["eth1"]);
        c.poll(t1);
        assert_eq!(c.backend().sent, [("eth1".to_string(), ip("10.200.0.10"))]);
        let snap = c.snapshot();
        assert_eq!(snap[0].interfaces, ["eth1"]);
        assert_eq!(snap[0].services, ["default/web"]);
        assert_eq!(snap[0].mode, AnnouncementMode::Layer2);
        // It goes down: sockets closed, pending repetitions dropped.
        let mut down = link(4, "eth1");
        down.up = false;
        c.set_interfaces(table(&[link(2, "eth0"), down]), t1);
        assert!(c.backend().owned.is_empty());
        assert_eq!(c.poll(t1 + Duration::from_secs(10)), None);
        assert_eq!(c.backend().sent.len(), 1);
    }

    #[test]
    fn new_mac_is_a_new_device_and_is_announced_again() {
        let t0 = Instant::now();
        let mut c = core();
        c.set_interfaces(table(&[link(2, "eth0")]), t0);
        c.set_desired(auto(&["10.200.0.10"]), t0, SystemTime::now());
        let mut at = c.poll(t0);
        while let Some(t) = at {
            at = c.poll(t);
        }
        let mut changed = link(2, "eth0");
        changed.mac = Some(MacAddr([2, 9, 9, 9, 9, 9]));
        c.set_interfaces(table(&[changed]), t0 + Duration::from_secs(10));
        c.poll(t0 + Duration::from_secs(10));
        assert_eq!(c.backend().sent.len(), ANNOUNCE_SCHEDULE.len() + 1);
    }

    #[test]
    fn failures_are_retried() {
        let t0 = Instant::now();
        let mut c = core();
        c.backend.fail_open.insert("eth0".into());
        c.set_interfaces(table(&[link(2, "eth0")]), t0);
        c.set_desired(auto(&["10.200.0.10"]), t0, SystemTime::now());
        assert!(c.in_force().is_empty());
        assert_eq!(c.poll(t0), Some(t0 + RETRY_AFTER));
        assert_eq!(c.counters.values().errors, 1);
        c.backend.fail_open.clear();
        c.poll(t0 + RETRY_AFTER);
        assert_eq!(c.in_force().len(), 1);
        assert_eq!(c.backend().sent.len(), 1);
    }

    #[test]
    fn duplicate_ips_merge_services_and_interfaces() {
        let t0 = Instant::now();
        let mut c = core();
        c.set_interfaces(
            table(&[link(2, "eth0"), link(3, "eth1"), link(4, "eth2")]),
            t0,
        );
        let d = |ifs: &[&str], svc: &str| DesiredIp {
            ip: ip("10.200.0.10"),
            interfaces: ifs.iter().map(|s| s.to_string()).collect(),
            services: vec![svc.into()],
        };
        c.set_desired(
            vec![d(&["eth1"], "a/x"), d(&["eth2"], "a/y")],
            t0,
            SystemTime::now(),
        );
        let snap = c.snapshot();
        assert_eq!(snap.len(), 1);
        assert_eq!(snap[0].interfaces, ["eth1", "eth2"]);
        assert_eq!(snap[0].services, ["a/x", "a/y"]);
        c.set_desired(
            vec![d(&["eth1"], "a/x"), d(&[], "a/y")],
            t0,
            SystemTime::now(),
        );
        assert_eq!(c.snapshot()[0].interfaces, ["eth0", "eth1", "eth2"]);
    }

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00Z");
    }
}
