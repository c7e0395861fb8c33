//! The real layer 2 backend: per interface an ARP socket while it has IPv4 addresses to answer
//! for and an NDP socket while it has IPv6 ones, each read by its own thread, and the in-kernel
//! responder in front of them where it can be loaded.

use super::core::{L2Backend, L2Counters, L2Error, Standby, bump};
use super::lease::LeaseRenewer;
use crate::layer2::arp::ArpSocket;
use crate::layer2::interfaces::Link;
use crate::layer2::kernel_responder::{KernelResponder, TcxLink};
use crate::layer2::ndp::NdpSocket;
use ferrolb_runtime::sync::{read, write};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// A listener thread's handle: dropping it tells the thread to stop. The thread exits within
/// [`crate::layer2::arp::STOP_POLL`] and closes the socket then; it answers nothing in the meantime,
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
    /// Pinned on a hand-over to the next process; otherwise only held.
    link: TcxLink,
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
    /// The kernel responder here was pinned for the next process: its entries stay.
    handed_over: bool,
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
        let owned = std::mem::take(&mut *write(&self.owned));
        if self.handed_over {
            return;
        }
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
        renewer: LeaseRenewer,
    },
    Unavailable,
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
    /// Told of each owned address another MAC announced (a hand-over's end).
    announced_elsewhere: AnnouncedElsewhere,
}

/// What the listener threads call with an owned address another MAC announced.
pub type AnnouncedElsewhere = Arc<dyn Fn(IpAddr) + Send + Sync>;

/// Why the kernel responder cannot be left answering for the next process.
#[derive(Debug, thiserror::Error)]
pub enum HandOverError {
    /// The kernel responder is not in use here.
    #[error("the in-kernel responder is not in use")]
    NoKernelResponder,
    /// An owned address is answered from userspace on this interface.
    #[error("interface {0} answers from userspace only")]
    UserspaceOnly(String),
    /// Setting the lease or pinning failed.
    #[error("{what}: {source}")]
    Io {
        /// What failed.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl SocketBackend {
    /// A backend with no sockets yet, answering as `responder` says (the kernel responder with
    /// a lease of `kernel_lease`).
    pub fn new(
        counters: Arc<L2Counters>,
        responder: L2Responder,
        kernel_lease: Duration,
        announced_elsewhere: AnnouncedElsewhere,
    ) -> Self {
        SocketBackend {
            announced_elsewhere,
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
                        renewer,
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

    /// Leaves the kernel responder answering for every owned address after this process
    /// exits (`handover_pin.rs`): the lease renewals stop, the lease is set to `hold`, and the
    /// link of every interface owning an address is pinned under `node_dir`. Returns the
    /// interfaces pinned. On error nothing stays pinned and the lease is renewed as before.
    pub fn hand_over_to_next_process(
        &mut self,
        hold: Duration,
        node_dir: &std::path::Path,
    ) -> Result<Vec<String>, HandOverError> {
        use crate::layer2::handover_pin::link_pin;
        let KernelState::Ready { responder, .. } = &self.kernel else {
            return Err(HandOverError::NoKernelResponder);
        };
        let responder = responder.clone();
        let owning: Vec<String> = self
            .ifaces
            .iter()
            .filter(|(_, s)| !read(&s.owned).is_empty())
            .map(|(n, _)| n.clone())
            .collect();
        if let Some(name) = owning.iter().find(|n| {
            self.ifaces
                .get(n.as_str())
                .is_none_or(|s| s.kernel.is_none())
        }) {
            return Err(HandOverError::UserspaceOnly(name.clone()));
        }
        let io = |what: String| move |source| HandOverError::Io { what, source };
        std::fs::create_dir_all(node_dir)
            .map_err(io(format!("creating {}", node_dir.display())))?;
        // Stop the renewals first, so none overwrites the hold.
        if let KernelState::Ready { renewer, .. } =
            std::mem::replace(&mut self.kernel, KernelState::Unavailable)
        {
            renewer.stop_and_join();
        }
        let mut pinned: Vec<std::path::PathBuf> = Vec::new();
        let result = responder
            .renew_lease(hold)
            .map_err(io("setting the hand-over lease".into()))
            .and_then(|()| {
                for name in &owning {
                    let Some(k) = self.ifaces.get(name).and_then(|s| s.kernel.as_ref()) else {
                        continue;
                    };
                    let path = link_pin(node_dir, name);
                    // A pin of an earlier process not yet adopted: replaced by ours.
                    let _ = std::fs::remove_file(&path);
                    k.link
                        .pin(&path)
                        .map_err(io(format!("pinning {}", path.display())))?;
                    pinned.push(path);
                }
                Ok(())
            });
        match result {
            Ok(()) => {
                for s in self.ifaces.values_mut() {
                    s.handed_over = s.kernel.is_some();
                }
                Ok(owning)
            }
            Err(e) => {
                crate::layer2::handover_pin::unpin(&pinned);
                match LeaseRenewer::start(
                    responder.clone(),
                    self.kernel_lease,
                    self.counters.clone(),
                ) {
                    Ok(renewer) => {
                        self.kernel = KernelState::Ready { responder, renewer };
                    }
                    Err(error) => {
                        tracing::error!(%error, "layer 2: the kernel responder's lease cannot be renewed again; the sockets answer");
                    }
                }
                Err(e)
            }
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
        let (sock, owned, counters, flag, elsewhere) = (
            socket.clone(),
            s.owned.clone(),
            self.counters.clone(),
            stop.clone(),
            self.announced_elsewhere.clone(),
        );
        let serve = move || {
            let owns = |ip: std::net::Ipv4Addr| read(&owned).contains(&IpAddr::V4(ip));
            let answered = |_| bump(&counters.arp_requests_answered);
            let announced = |ip| elsewhere(IpAddr::V4(ip));
            sock.serve_blocking(&flag, owns, answered, announced)
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
        let (sock, owned, link_local, counters, flag, elsewhere) = (
            socket.clone(),
            s.owned.clone(),
            s.link_local.clone(),
            self.counters.clone(),
            stop.clone(),
            self.announced_elsewhere.clone(),
        );
        let serve = move || {
            let owns = |ip: Ipv6Addr| read(&owned).contains(&IpAddr::V6(ip));
            let source = || *read(&link_local);
            let answered = |_| bump(&counters.ndp_solicitations_answered);
            let announced = |ip| elsewhere(IpAddr::V6(ip));
            sock.serve_blocking(&flag, owns, source, answered, announced)
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
            .filter(|(name, s)| !standby.contains_key(*name) && read(&s.owned).is_empty())
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
                .map(|i| read(&i.owned).clone())
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
                handed_over: false,
            });
        s.link = link.clone();
        *write(&s.link_local) = link.link_local_v6();
        let old = read(&s.owned).clone();

        // Losses first, synchronously.
        let keep: BTreeSet<IpAddr> = old.intersection(ips).copied().collect();
        *write(&s.owned) = keep.clone();
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
                        link: tcx,
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
        *write(&s.owned) = owned;
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
                    let src = *read(&s.link_local);
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
