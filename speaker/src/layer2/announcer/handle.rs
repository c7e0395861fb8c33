//! The announcer the speaker holds: the core over the socket backend behind a lock, the tokio
//! tasks that follow interface changes and send the scheduled announcements.

use super::core::{AnnouncerCore, DesiredIp, L2CounterValues, L2Counters, L2Error};
use super::lease::KERNEL_LEASE;
use super::socket::{HandOverError, L2Responder, SocketBackend};
use crate::layer2::interfaces::{InterfaceWatcher, default_exclude_patterns};
use ferrolb_api::status::Announcement;
use ferrolb_runtime::sync::lock;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

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
    /// This node's name when addresses lost to a live node are handed over make-before-break
    /// (`--hitless-operations`); `None` stops answering a lost address at once.
    pub make_before_break: Option<String>,
    /// This node's directory of pinned responders in bpffs (`handover_pin.rs`): what a
    /// previous process left there is adopted, and a restart in place pins there.
    pub handover_dir: Option<PathBuf>,
}

impl Default for AnnouncerConfig {
    fn default() -> Self {
        AnnouncerConfig {
            exclude_patterns: default_exclude_patterns(),
            responder: L2Responder::Auto,
            kernel_lease: KERNEL_LEASE,
            make_before_break: None,
            handover_dir: None,
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
    watcher: InterfaceWatcher,
    handover_dir: Option<PathBuf>,
    /// Pins a previous process of this node left, removed once this one answers itself.
    predecessor: Mutex<Vec<PathBuf>>,
}

impl Announcer {
    /// Starts the announcer in the current network namespace, with nothing to announce. Must
    /// be called inside a tokio runtime.
    pub async fn start(config: AnnouncerConfig) -> Result<Self, L2Error> {
        let watcher = InterfaceWatcher::start().await?;
        let counters = Arc::new(L2Counters::default());
        let (elsewhere_tx, mut elsewhere) = tokio::sync::mpsc::unbounded_channel();
        let announced_elsewhere = Arc::new(move |ip: IpAddr| {
            let _ = elsewhere_tx.send(ip);
        });
        let mut core = AnnouncerCore::new(
            SocketBackend::new(
                counters.clone(),
                config.responder,
                config.kernel_lease,
                announced_elsewhere,
            ),
            config.exclude_patterns,
            counters.clone(),
        );
        if let Some(node) = &config.make_before_break {
            core.set_make_before_break(node);
        }
        core.set_interfaces(watcher.current(), Instant::now());
        let predecessor = config
            .handover_dir
            .as_deref()
            .map(crate::layer2::handover_pin::predecessor_pins)
            .unwrap_or_default();
        if !predecessor.is_empty() {
            tracing::info!(pins = ?predecessor, "layer 2: the previous process left its responder answering; adopting its addresses");
        }
        let core = Arc::new(Mutex::new(core));
        let wake = Arc::new(Notify::new());

        let mut tables = watcher.subscribe();
        let (c, w) = (core.clone(), wake.clone());
        let follow = tokio::spawn(async move {
            while tables.changed().await.is_ok() {
                let table = tables.borrow_and_update().clone();
                lock(&c).set_interfaces(table, Instant::now());
                w.notify_one();
            }
        });

        let (c, w) = (core.clone(), wake.clone());
        let timers = tokio::spawn(async move {
            loop {
                let next = lock(&c).poll(Instant::now());
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

        let (c, w) = (core.clone(), wake.clone());
        let observe = tokio::spawn(async move {
            while let Some(ip) = elsewhere.recv().await {
                if lock(&c).observed_elsewhere(ip, Instant::now()) {
                    w.notify_one();
                }
            }
        });

        Ok(Announcer {
            core,
            wake,
            counters,
            tasks: vec![follow, timers, observe],
            watcher,
            handover_dir: config.handover_dir,
            predecessor: Mutex::new(predecessor),
        })
    }

    fn core(&self) -> std::sync::MutexGuard<'_, AnnouncerCore<SocketBackend>> {
        lock(&self.core)
    }

    /// [`Announcer::set_desired`], also replacing the IPs this node would take over next,
    /// whose interfaces are kept ready (`AnnouncerCore::set_standby`).
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
    /// [`ANNOUNCE_SCHEDULE`](super::ANNOUNCE_SCHEDULE). Must be called inside the runtime the announcer was started in.
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

    /// Replaces the election's owner of every layer 2 address (for hand-overs of lost ones);
    /// takes effect with the next [`Announcer::set_desired`].
    pub fn set_owners(&self, owners: Arc<ferrolb_speaker_core::layer2::handover::Owners>) {
        self.core().set_owners(owners);
    }

    /// Removes the pins of the previous process's responder (`handover_pin.rs`), once this
    /// process answers for its addresses itself.
    pub fn release_predecessor(&self) {
        let pins = std::mem::take(&mut *lock(&self.predecessor));
        crate::layer2::handover_pin::unpin(&pins);
    }

    /// Leaves the kernel responder answering for every owned address for `hold` after this
    /// process exits (`SocketBackend::hand_over_to_next_process`); returns the interfaces.
    pub fn hand_over_to_next_process(&self, hold: Duration) -> Result<Vec<String>, HandOverError> {
        let Some(dir) = &self.handover_dir else {
            return Err(HandOverError::Io {
                what: "no hand-over directory".into(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        };
        self.core()
            .backend_mut()
            .hand_over_to_next_process(hold, dir)
    }

    /// Hands every owned address over make-before-break (`AnnouncerCore::hand_over_all`) and
    /// waits until each one's next owner has announced it or its window has passed.
    pub async fn hand_over_all(&self) {
        {
            let mut core = self.core();
            let now = Instant::now();
            core.hand_over_all(now);
            core.poll(now);
        }
        self.wake.notify_one();
        let deadline = tokio::time::Instant::now()
            + ferrolb_speaker_core::layer2::handover::HANDOVER_WINDOW
            + Duration::from_millis(100);
        while self.core().handovers_in_progress() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Announces every IP in force again now and on [`RECLAIM_SCHEDULE`](super::core::RECLAIM_SCHEDULE)
    /// (`AnnouncerCore::reannounce`).
    pub fn reannounce(&self) {
        let mut core = self.core();
        let now = Instant::now();
        core.reannounce(now);
        core.poll(now);
        drop(core);
        self.wake.notify_one();
    }

    /// The node's interfaces, updated on every change (carrier included).
    pub fn interfaces(&self) -> tokio::sync::watch::Receiver<crate::layer2::InterfaceTable> {
        self.watcher.subscribe()
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

    /// Interfaces where ARP and NDP are answered in the kernel ([`crate::layer2::kernel_responder`]).
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
        self.core().release_all(Instant::now());
    }
}
