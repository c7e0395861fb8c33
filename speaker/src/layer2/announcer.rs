//! The layer 2 announcer: level-triggered application of "these IPs are mine" to ARP / NDP.
//!
//! [`Announcer::set_desired`] takes the whole set of IPs this node owns (each with the
//! interfaces its `L2Advertisement` names, or none for automatic choice) and applies the
//! difference against what is in force:
//!
//! - **gain** of (interface, IP): the interface's sockets are opened if it had no IP yet, the
//!   IP is added to the set the listeners answer for (and, for IPv6, its solicited-node
//!   multicast group joined), and a gratuitous ARP (IPv4) or unsolicited NA with the Override
//!   flag (IPv6) is sent at once and repeated on [`ANNOUNCE_SCHEDULE`];
//! - **while owned**: requests / solicitations for it are answered with the interface's MAC;
//! - **loss**: the IP leaves the answer set synchronously, before `set_desired` returns, and
//!   its pending repetitions are cancelled; an interface left without IPs has its sockets
//!   closed.
//!
//! Interface changes from rtnetlink (an interface appearing, going up, changing MAC, getting a
//! link-local address) go through the same reconciliation, so an interface that appears later
//! is used as soon as the kernel reports it.
//!
//! The decision logic is [`AnnouncerCore`], generic over an [`L2Backend`] and driven with an
//! explicit clock, so it is unit-tested with a fake backend; [`SocketBackend`] is the real one.

use super::arp::ArpSocket;
use super::interfaces::{
    InterfaceError, InterfaceTable, InterfaceWatcher, Link, choose_interfaces,
    default_exclude_patterns,
};
use super::kernel_responder::{KernelResponder, TcxLink};
use super::ndp::NdpSocket;
use ferrolb_api::status::{Announcement, AnnouncementMode};
use ferrolb_speaker_core::desired::L2Announcement;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

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
}

/// A copy of [`L2Counters`] at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct L2CounterValues {
    /// See [`L2Counters::garp_sent`].
    pub garp_sent: u64,
    /// See [`L2Counters::unsolicited_na_sent`].
    pub unsolicited_na_sent: u64,
    /// See [`L2Counters::arp_requests_answered`].
    pub arp_requests_answered: u64,
    /// See [`L2Counters::ndp_solicitations_answered`].
    pub ndp_solicitations_answered: u64,
    /// See [`L2Counters::errors`].
    pub errors: u64,
    /// See [`L2Counters::kernel_lease_lapses`].
    pub kernel_lease_lapses: u64,
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
        }
    }
}

fn bump(counter: &AtomicU64) {
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
        }
    }

    /// The backend (tests inspect the fake one).
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Replaces the desired set (level-triggered) and applies the difference at `now`.
    /// `wall` stamps newly gained IPs for the status API.
    pub fn set_desired(&mut self, desired: Vec<DesiredIp>, now: Instant, wall: SystemTime) {
        let next = merge_by_ip(desired)
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
        self.desired = next;
        self.reconcile(now);
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
        for (ip, wanted) in &self.desired {
            for link in choose_interfaces(&self.table, &wanted.interfaces, &self.exclude_patterns) {
                out.entry(link.name.clone())
                    .or_insert_with(|| (link.clone(), BTreeSet::new()))
                    .1
                    .insert(*ip);
            }
        }
        out
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
        let next = self.pending.first().map(|(t, _, _)| *t);
        match (next, self.retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Schedules the gratuitous announcements of every IP in force again, as for a gain: a
    /// successor that answered for us while presuming us down hands the IPs back
    /// ([`ferrolb_speaker_core::membership::heartbeat`]), and caches must point back here.
    pub fn reannounce(&mut self, now: Instant) {
        for (name, (_, ips)) in &self.applied {
            for ip in ips {
                for offset in ANNOUNCE_SCHEDULE {
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

/// A listener thread's handle: dropping it tells the thread to stop. The thread exits within
/// [`super::arp::STOP_POLL`] and closes the socket then; it answers nothing in the meantime,
/// because whoever drops the handle has emptied the owned set first (see
/// [`IfaceSockets`]'s `Drop`).
struct Listener<S> {
    socket: Arc<S>,
    stop: Arc<AtomicBool>,
}

impl<S> Drop for Listener<S> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Stack size of a listener thread: it holds one receive buffer (1500 bytes at most) and
/// formats the odd log line; the default 2 MiB would only be address space, but there is no
/// reason to reserve it.
const LISTENER_STACK: usize = 128 * 1024;

/// Starts a listener thread named `name` running `serve` until `stop` is set.
fn spawn_listener(
    name: String,
    serve: impl FnOnce() -> std::io::Result<()> + Send + 'static,
    counters: Arc<L2Counters>,
    interface: String,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(name)
        .stack_size(LISTENER_STACK)
        .spawn(move || {
            if let Err(error) = serve() {
                bump(&counters.errors);
                tracing::error!(%error, %interface, "layer 2 listener stopped");
            }
        })
        .map(|_detached| ())
}

/// The in-kernel responder attached to one interface, with the handle that writes its maps.
struct KernelAttachment {
    responder: Arc<KernelResponder>,
    _link: TcxLink,
}

/// The sockets and listener threads of one interface.
struct IfaceSockets {
    link: Link,
    owned: Arc<RwLock<BTreeSet<IpAddr>>>,
    link_local: Arc<RwLock<Option<Ipv6Addr>>>,
    arp: Option<Listener<ArpSocket>>,
    ndp: Option<Listener<NdpSocket>>,
    /// Present while the kernel answers here; every owned address is then also in its maps.
    kernel: Option<KernelAttachment>,
    /// Attaching the kernel responder failed here; the socket answers (not retried until the
    /// interface's state is rebuilt).
    kernel_failed: bool,
}

impl IfaceSockets {
    /// Removes addresses from the kernel responder's maps (a no-op without one).
    fn kernel_stop(&self, ips: impl IntoIterator<Item = IpAddr>) -> Result<(), L2Error> {
        let Some(k) = &self.kernel else { return Ok(()) };
        let mut first_error = None;
        for ip in ips {
            if let Err(source) = k.responder.stop_answering(self.link.index, ip) {
                first_error.get_or_insert(L2Error::Socket {
                    what: "removing an address from the kernel responder",
                    interface: self.link.name.clone(),
                    source,
                });
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for IfaceSockets {
    fn drop(&mut self) {
        // Stop answering synchronously, whatever the path that drops us (last IP lost, device
        // replaced): the listener threads check this set on every frame and only notice their
        // stop flag on their next wake-up; the kernel responder's entries go before its link
        // is closed (the fields drop after this body).
        let owned = std::mem::take(&mut *self.owned.write().unwrap_or_else(|p| p.into_inner()));
        if let Err(error) = self.kernel_stop(owned) {
            tracing::error!(%error, "layer 2: could not stop the kernel responder's answers");
        }
    }
}

/// Who answers ARP requests and Neighbor Solicitations for owned addresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum L2Responder {
    /// The in-kernel eBPF responder (`kernel_responder.rs`) where the kernel (≥ 6.6) and the
    /// speaker's capabilities (`CAP_BPF`, `CAP_NET_ADMIN`) allow it, the sockets elsewhere and
    /// for what it leaves to them.
    #[default]
    Auto,
    /// Always the userspace sockets (`AF_PACKET` for ARP, ICMPv6 for NDP).
    Socket,
}

/// Whether the kernel responder is in use (with the thread renewing its lease), not yet tried,
/// or unavailable.
enum KernelState {
    Untried,
    Ready {
        responder: Arc<KernelResponder>,
        _renewer: LeaseRenewer,
    },
    Unavailable,
}

/// How long the kernel responder answers without hearing from the speaker, by default: below
/// the gossip's detection time (~0.25 s), so a stopped or starved speaker's node goes quiet by
/// the time the others elect a new owner, as it would with userspace sockets. With heartbeats
/// the speaker sets it below their detection time instead ([`AnnouncerConfig::kernel_lease`]).
pub const KERNEL_LEASE: Duration = Duration::from_millis(200);
/// Renewals per lease: five ride out a scheduling hiccup. A lapse is not silence either: the
/// program then leaves requests to the sockets, which answer while the speaker runs.
const KERNEL_LEASE_RENEWALS: u32 = 5;

/// The thread renewing the kernel responder's lease; dropping it stops the thread (the lease
/// then runs out within its length).
struct LeaseRenewer {
    stop: Arc<AtomicBool>,
}

impl LeaseRenewer {
    /// Renews once now, then five times per `lease` from a thread of its own: a thread, not a
    /// tokio task, so that only the speaker process being stopped or starved — not a busy
    /// runtime — lets the lease run out.
    fn start(
        responder: Arc<KernelResponder>,
        lease: Duration,
        counters: Arc<L2Counters>,
    ) -> std::io::Result<Self> {
        let renew_every = lease / KERNEL_LEASE_RENEWALS;
        responder.renew_lease(lease)?;
        let mut expires = Instant::now() + lease;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("ferrolb-l2-lease".into())
            .stack_size(LISTENER_STACK)
            .spawn(move || {
                if let Err(error) = crate::thread_priority::favour_current_thread() {
                    tracing::debug!(%error, "layer 2: the lease thread keeps the default priority");
                }
                let mut failing = false;
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(renew_every);
                    let now = Instant::now();
                    if now > expires {
                        bump(&counters.kernel_lease_lapses);
                    }
                    match responder.renew_lease(lease) {
                        Ok(()) => {
                            failing = false;
                            expires = now + lease;
                        }
                        Err(error) if !failing => {
                            failing = true;
                            tracing::error!(%error, "layer 2: renewing the kernel responder's lease failed; it stops answering until a renewal succeeds (the sockets answer meanwhile)");
                        }
                        Err(_) => {}
                    }
                }
            })?;
        Ok(LeaseRenewer { stop })
    }
}

impl Drop for LeaseRenewer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The real backend: per interface an ARP socket while it has IPv4 addresses to answer for and
/// an NDP socket while it has IPv6 ones, each read by its own thread (why threads and not tokio
/// tasks: `arp.rs`, "Latency").
pub struct SocketBackend {
    ifaces: BTreeMap<String, IfaceSockets>,
    counters: Arc<L2Counters>,
    kernel: KernelState,
    kernel_lease: Duration,
    /// Interfaces kept open while owning nothing ([`L2Backend::set_standby`]).
    standby: BTreeMap<String, Standby>,
}

impl SocketBackend {
    /// A backend with no sockets yet, answering as `responder` says (the kernel responder with
    /// a lease of `kernel_lease`).
    pub fn new(counters: Arc<L2Counters>, responder: L2Responder, kernel_lease: Duration) -> Self {
        SocketBackend {
            ifaces: BTreeMap::new(),
            counters,
            kernel_lease,
            standby: BTreeMap::new(),
            kernel: match responder {
                L2Responder::Auto => KernelState::Untried,
                L2Responder::Socket => KernelState::Unavailable,
            },
        }
    }

    /// The kernel responder, loaded on first use; `None` when it cannot be (said once).
    fn kernel_responder(&mut self) -> Option<Arc<KernelResponder>> {
        if let KernelState::Untried = self.kernel {
            let loaded = KernelResponder::load().and_then(|k| {
                let k = Arc::new(k);
                let renewer =
                    LeaseRenewer::start(k.clone(), self.kernel_lease, self.counters.clone())?;
                Ok((k, renewer))
            });
            self.kernel = match loaded {
                Ok((k, renewer)) => {
                    tracing::info!(
                        "layer 2: ARP requests and Neighbor Solicitations for owned IPs are answered in the kernel (eBPF on tc ingress)"
                    );
                    KernelState::Ready {
                        responder: k,
                        _renewer: renewer,
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "layer 2: the in-kernel responder cannot be loaded (it needs Linux 6.6 or later and CAP_BPF + CAP_NET_ADMIN); ARP and NDP are answered from userspace");
                    KernelState::Unavailable
                }
            };
        }
        match &self.kernel {
            KernelState::Ready { responder, .. } => Some(responder.clone()),
            KernelState::Untried | KernelState::Unavailable => None,
        }
    }

    /// ARP requests and Neighbor Solicitations the kernel responder has answered (0, 0 without
    /// one).
    pub fn kernel_answered(&self) -> (u64, u64) {
        match &self.kernel {
            KernelState::Ready { responder, .. } => {
                (responder.arp_answered(), responder.ndp_answered())
            }
            KernelState::Untried | KernelState::Unavailable => (0, 0),
        }
    }

    /// Interfaces where the kernel answers.
    pub fn kernel_interfaces(&self) -> Vec<String> {
        self.ifaces
            .iter()
            .filter(|(_, s)| s.kernel.is_some())
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Solicited-node groups joined per interface (for tests and debugging).
    pub fn joined_groups(&self) -> BTreeMap<String, Vec<Ipv6Addr>> {
        self.ifaces
            .iter()
            .filter_map(|(name, s)| Some((name.clone(), s.ndp.as_ref()?.socket.joined_groups())))
            .collect()
    }

    fn open_arp(&self, s: &IfaceSockets) -> Result<Listener<ArpSocket>, L2Error> {
        let link = &s.link;
        let mac = link.mac.unwrap_or_default();
        let err = |what, source| L2Error::Socket {
            what,
            interface: link.name.clone(),
            source,
        };
        let socket =
            Arc::new(ArpSocket::open(link.index, mac).map_err(|e| err("opening ARP socket", e))?);
        let stop = Arc::new(AtomicBool::new(false));
        let (sock, owned, counters, flag) = (
            socket.clone(),
            s.owned.clone(),
            self.counters.clone(),
            stop.clone(),
        );
        let serve = move || {
            let owns = |ip: std::net::Ipv4Addr| {
                owned
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(&IpAddr::V4(ip))
            };
            let answered = |_| bump(&counters.arp_requests_answered);
            sock.serve_blocking(&flag, owns, answered)
        };
        spawn_listener(
            format!("arp-{}", link.name),
            serve,
            self.counters.clone(),
            link.name.clone(),
        )
        .map_err(|e| err("starting the ARP listener thread", e))?;
        Ok(Listener { socket, stop })
    }

    fn open_ndp(&self, s: &IfaceSockets) -> Result<Listener<NdpSocket>, L2Error> {
        let link = &s.link;
        let mac = link.mac.unwrap_or_default();
        let err = |what, source| L2Error::Socket {
            what,
            interface: link.name.clone(),
            source,
        };
        let socket = Arc::new(
            NdpSocket::open(&link.name, link.index, mac)
                .map_err(|e| err("opening NDP socket", e))?,
        );
        let stop = Arc::new(AtomicBool::new(false));
        let (sock, owned, link_local, counters, flag) = (
            socket.clone(),
            s.owned.clone(),
            s.link_local.clone(),
            self.counters.clone(),
            stop.clone(),
        );
        let serve = move || {
            let owns = |ip: Ipv6Addr| {
                owned
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(&IpAddr::V6(ip))
            };
            let source = || *link_local.read().unwrap_or_else(|p| p.into_inner());
            let answered = |_| bump(&counters.ndp_solicitations_answered);
            sock.serve_blocking(&flag, owns, source, answered)
        };
        spawn_listener(
            format!("ndp-{}", link.name),
            serve,
            self.counters.clone(),
            link.name.clone(),
        )
        .map_err(|e| err("starting the NDP listener thread", e))?;
        Ok(Listener { socket, stop })
    }
}

impl L2Backend for SocketBackend {
    fn set_standby(&mut self, standby: &BTreeMap<String, Standby>) -> Result<(), L2Error> {
        self.standby = standby.clone();
        // Interfaces neither ready for a takeover nor owning anything close.
        let idle: Vec<String> = self
            .ifaces
            .iter()
            .filter(|(name, s)| {
                !standby.contains_key(*name)
                    && s.owned.read().unwrap_or_else(|p| p.into_inner()).is_empty()
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in idle {
            self.ifaces.remove(&name);
        }
        // The ready ones open what they lack, keeping what they own.
        let mut first_error = None;
        for s in standby.values() {
            let owned = self
                .ifaces
                .get(&s.link.name)
                .map(|i| i.owned.read().unwrap_or_else(|p| p.into_inner()).clone())
                .unwrap_or_default();
            if let Err(e) = self.set_owned(&s.link, &owned) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn set_owned(&mut self, link: &Link, ips: &BTreeSet<IpAddr>) -> Result<(), L2Error> {
        let (ready_v4, ready_v6) = self
            .standby
            .get(&link.name)
            .filter(|s| s.link.index == link.index)
            .map_or((false, false), |s| (s.v4, s.v6));
        if ips.is_empty() && !ready_v4 && !ready_v6 {
            // Dropping the interface's state empties its owned set first (the listener threads
            // check it on every frame), then tells the threads to stop.
            self.ifaces.remove(&link.name);
            return Ok(());
        }
        if self
            .ifaces
            .get(&link.name)
            .is_some_and(|s| s.link.index != link.index || s.link.mac != link.mac)
        {
            self.ifaces.remove(&link.name);
        }
        let s = self
            .ifaces
            .entry(link.name.clone())
            .or_insert_with(|| IfaceSockets {
                link: link.clone(),
                owned: Arc::default(),
                link_local: Arc::default(),
                arp: None,
                ndp: None,
                kernel: None,
                kernel_failed: false,
            });
        s.link = link.clone();
        *s.link_local.write().unwrap_or_else(|p| p.into_inner()) = link.link_local_v6();
        let old = s.owned.read().unwrap_or_else(|p| p.into_inner()).clone();

        // Losses first, synchronously.
        let keep: BTreeSet<IpAddr> = old.intersection(ips).copied().collect();
        *s.owned.write().unwrap_or_else(|p| p.into_inner()) = keep.clone();
        let mut first_error = s.kernel_stop(old.difference(ips).copied()).err();
        if let Some(Listener { socket: ndp, .. }) = &s.ndp {
            for lost in old.difference(ips) {
                if let IpAddr::V6(v6) = lost
                    && let Err(source) = ndp.leave(*v6)
                {
                    first_error.get_or_insert(L2Error::Socket {
                        what: "leaving solicited-node group",
                        interface: link.name.clone(),
                        source,
                    });
                }
            }
        }
        let want_v4 = ready_v4 || ips.iter().any(IpAddr::is_ipv4);
        let want_v6 = ready_v6 || ips.iter().any(IpAddr::is_ipv6);
        if !want_v4 {
            s.arp = None;
        }
        if !want_v6 {
            s.ndp = None;
        }
        let s = self.ifaces.get(&link.name).ok_or_else(|| L2Error::Socket {
            what: "interface state",
            interface: link.name.clone(),
            source: std::io::Error::other("vanished"),
        })?;
        let arp = if want_v4 && s.arp.is_none() {
            Some(self.open_arp(s)?)
        } else {
            None
        };
        let ndp = if want_v6 && s.ndp.is_none() {
            Some(self.open_ndp(s)?)
        } else {
            None
        };
        let attach = s.kernel.is_none() && !s.kernel_failed;
        let responder = if attach {
            self.kernel_responder()
        } else {
            None
        };
        let Some(s) = self.ifaces.get_mut(&link.name) else {
            return Ok(());
        };
        let mut attached_now = false;
        if let Some(responder) = responder {
            match responder.attach(link.index) {
                Ok(tcx) => {
                    attached_now = true;
                    tracing::debug!(interface = %link.name, "layer 2: kernel responder attached");
                    s.kernel = Some(KernelAttachment {
                        responder,
                        _link: tcx,
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, interface = %link.name, "layer 2: attaching the kernel responder failed; ARP and NDP are answered from userspace on this interface");
                    s.kernel_failed = true;
                }
            }
        }
        if arp.is_some() {
            s.arp = arp;
        }
        if ndp.is_some() {
            s.ndp = ndp;
        }

        // Gains: join the group, then answer.
        let mut owned = keep;
        for gained in ips.difference(&old) {
            match gained {
                IpAddr::V4(_) => {
                    owned.insert(*gained);
                }
                IpAddr::V6(v6) => {
                    let joined = s.ndp.as_ref().map(|l| l.socket.join(*v6));
                    match joined {
                        Some(Ok(())) => {
                            owned.insert(*gained);
                        }
                        Some(Err(source)) => {
                            first_error.get_or_insert(L2Error::Socket {
                                what: "joining solicited-node group",
                                interface: link.name.clone(),
                                source,
                            });
                        }
                        None => {}
                    }
                }
            }
        }
        // What the sockets answer from now on goes into the kernel responder's map too (all of
        // it on a freshly attached one). The sockets answer whatever the map does not hold, so
        // a failed insert degrades to the userspace path rather than to silence.
        if let Some(k) = &s.kernel {
            let mac = link.mac.unwrap_or_default();
            let add: Vec<IpAddr> = if attached_now {
                owned.iter().copied().collect()
            } else {
                owned.difference(&old).copied().collect()
            };
            for ip in add {
                if let Err(source) = k.responder.answer(link.index, ip, mac) {
                    first_error.get_or_insert(L2Error::Socket {
                        what: "adding an address to the kernel responder",
                        interface: link.name.clone(),
                        source,
                    });
                }
            }
        }
        *s.owned.write().unwrap_or_else(|p| p.into_inner()) = owned;
        first_error.map_or(Ok(()), Err)
    }

    fn announce(&mut self, link: &Link, ip: IpAddr) -> Result<(), L2Error> {
        let Some(s) = self.ifaces.get(&link.name) else {
            return Ok(());
        };
        let result = match ip {
            IpAddr::V4(v4) => match &s.arp {
                Some(arp) => arp.socket.send_gratuitous(v4),
                None => return Ok(()),
            },
            IpAddr::V6(v6) => match &s.ndp {
                Some(ndp) => {
                    let src = *s.link_local.read().unwrap_or_else(|p| p.into_inner());
                    ndp.socket.send_unsolicited(v6, src)
                }
                None => return Ok(()),
            },
        };
        result.map_err(|source| L2Error::Socket {
            what: "sending announcement",
            interface: link.name.clone(),
            source,
        })
    }
}

/// Configuration of the announcer.
#[derive(Clone, Debug)]
pub struct AnnouncerConfig {
    /// Glob patterns of interfaces automatic choice skips.
    pub exclude_patterns: Vec<String>,
    /// Who answers ARP requests.
    pub responder: L2Responder,
    /// How long the kernel responder keeps answering without the speaker renewing its lease:
    /// below the time the other speakers take to replace this one.
    pub kernel_lease: Duration,
}

impl Default for AnnouncerConfig {
    fn default() -> Self {
        AnnouncerConfig {
            exclude_patterns: default_exclude_patterns(),
            responder: L2Responder::Auto,
            kernel_lease: KERNEL_LEASE,
        }
    }
}

/// The running announcer: a handle to the core, a task following interface changes and a task
/// sending scheduled announcements. Dropping it stops everything and closes every socket.
pub struct Announcer {
    core: Arc<Mutex<AnnouncerCore<SocketBackend>>>,
    wake: Arc<Notify>,
    counters: Arc<L2Counters>,
    tasks: Vec<JoinHandle<()>>,
    _watcher: InterfaceWatcher,
}

impl Announcer {
    /// Starts the announcer in the current network namespace, with nothing to announce. Must
    /// be called inside a tokio runtime.
    pub async fn start(config: AnnouncerConfig) -> Result<Self, L2Error> {
        let watcher = InterfaceWatcher::start().await?;
        let counters = Arc::new(L2Counters::default());
        let mut core = AnnouncerCore::new(
            SocketBackend::new(counters.clone(), config.responder, config.kernel_lease),
            config.exclude_patterns,
            counters.clone(),
        );
        core.set_interfaces(watcher.current(), Instant::now());
        let core = Arc::new(Mutex::new(core));
        let wake = Arc::new(Notify::new());

        let mut tables = watcher.subscribe();
        let (c, w) = (core.clone(), wake.clone());
        let follow = tokio::spawn(async move {
            while tables.changed().await.is_ok() {
                let table = tables.borrow_and_update().clone();
                c.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .set_interfaces(table, Instant::now());
                w.notify_one();
            }
        });

        let (c, w) = (core.clone(), wake.clone());
        let timers = tokio::spawn(async move {
            loop {
                let next = c
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .poll(Instant::now());
                match next {
                    Some(at) => {
                        tokio::select! {
                            _ = tokio::time::sleep_until(at.into()) => {}
                            _ = w.notified() => {}
                        }
                    }
                    None => w.notified().await,
                }
            }
        });

        Ok(Announcer {
            core,
            wake,
            counters,
            tasks: vec![follow, timers],
            _watcher: watcher,
        })
    }

    fn core(&self) -> std::sync::MutexGuard<'_, AnnouncerCore<SocketBackend>> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// [`Announcer::set_desired`], also replacing the IPs this node would take over next,
    /// whose interfaces are kept ready ([`AnnouncerCore::set_standby`]).
    pub fn set_desired_and_standby<I, D, J, E>(&self, desired: I, standby: J)
    where
        I: IntoIterator<Item = D>,
        D: Into<DesiredIp>,
        J: IntoIterator<Item = E>,
        E: Into<DesiredIp>,
    {
        let standby = standby.into_iter().map(Into::into).collect();
        self.core().set_standby(standby);
        self.set_desired(desired);
    }

    /// Replaces the set of IPs this node announces. Losses stop being answered before this
    /// returns; gains are announced before it returns too, and then on
    /// [`ANNOUNCE_SCHEDULE`]. Must be called inside the runtime the announcer was started in.
    pub fn set_desired<I, D>(&self, desired: I)
    where
        I: IntoIterator<Item = D>,
        D: Into<DesiredIp>,
    {
        let desired = desired.into_iter().map(Into::into).collect();
        let mut core = self.core();
        let now = Instant::now();
        core.set_desired(desired, now, SystemTime::now());
        // Send the announcements due now (a gain's first gratuitous ARP / NA: the failover
        // itself) from here rather than from the timer task, so they do not wait for that task
        // to be scheduled; the task is woken for the later repetitions.
        core.poll(now);
        drop(core);
        self.wake.notify_one();
    }

    /// Announces every IP in force again now and on [`ANNOUNCE_SCHEDULE`]
    /// ([`AnnouncerCore::reannounce`]).
    pub fn reannounce(&self) {
        let mut core = self.core();
        let now = Instant::now();
        core.reannounce(now);
        core.poll(now);
        drop(core);
        self.wake.notify_one();
    }

    /// The announcements in force, for `/api/v1/status`.
    pub fn snapshot(&self) -> Vec<Announcement> {
        self.core().snapshot()
    }

    /// Interfaces with open sockets and the IPs answered there.
    pub fn in_force(&self) -> BTreeMap<String, BTreeSet<IpAddr>> {
        self.core().in_force()
    }

    /// Solicited-node groups joined per interface.
    pub fn joined_groups(&self) -> BTreeMap<String, Vec<Ipv6Addr>> {
        self.core().backend().joined_groups()
    }

    /// Counter values for metrics (answers from the kernel responder included).
    pub fn counters(&self) -> L2CounterValues {
        let mut values = self.counters.values();
        let (arp, ndp) = self.core().backend().kernel_answered();
        values.arp_requests_answered += arp;
        values.ndp_solicitations_answered += ndp;
        values
    }

    /// Interfaces where ARP and NDP are answered in the kernel ([`super::kernel_responder`]).
    pub fn kernel_responder_interfaces(&self) -> Vec<String> {
        self.core().backend().kernel_interfaces()
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        // Close every socket now rather than when the aborted tasks release the core.
        let mut core = self.core();
        core.desired.clear();
        core.standby.clear();
        core.reconcile(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    fn link(index: u32, name: &str) -> Link {
        Link {
            index,
            name: name.into(),
            mac: Some(MacAddr([2, 0, 0, 0, 0, index as u8])),
            up: true,
            loopback: false,
            ethernet: true,
            kind: None,
            addresses: vec![],
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
        assert_eq!(c.backend().sent.len() - before, 2 * ANNOUNCE_SCHEDULE.len());
        // Nothing owned and nothing to take over: nothing kept ready.
        c.set_desired(Vec::new(), t1, SystemTime::now());
        assert!(ready(&c).is_empty());
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
