//! The announcer the speaker holds: the core over the socket backend behind a lock, the tokio
//! tasks that follow interface changes and send the scheduled announcements.

use super::core::{AnnouncerCore, DesiredIp, L2CounterValues, L2Counters, L2Error};
use super::lease::KERNEL_LEASE;
use super::socket::{L2Responder, SocketBackend};
use crate::layer2::interfaces::{InterfaceWatcher, default_exclude_patterns};
use ferrolb_api::status::Announcement;
use ferrolb_runtime::sync::lock;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};
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

        Ok(Announcer {
            core,
            wake,
            counters,
            tasks: vec![follow, timers],
            _watcher: watcher,
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

    /// Announces every IP in force again now and on [`ANNOUNCE_SCHEDULE`](super::ANNOUNCE_SCHEDULE)
    /// (`AnnouncerCore::reannounce`).
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
