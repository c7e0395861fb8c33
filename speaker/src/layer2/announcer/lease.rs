//! The kernel responder's lease: the eBPF program answers only while the speaker keeps renewing
//! it, so a stopped or starved speaker's node goes quiet.

use super::core::{L2Counters, bump};
use crate::layer2::kernel_responder::KernelResponder;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long the kernel responder answers without hearing from the speaker, by default: below
/// the gossip's detection time (~0.25 s), so a stopped or starved speaker's node goes quiet by
/// the time the others elect a new owner, as it would with userspace sockets. With heartbeats
/// the speaker sets it below their detection time instead ([`super::AnnouncerConfig::kernel_lease`]).
pub const KERNEL_LEASE: Duration = Duration::from_millis(200);
/// Renewals per lease: five ride out a scheduling hiccup. A lapse is not silence either: the
/// program then leaves requests to the sockets, which answer while the speaker runs.
const KERNEL_LEASE_RENEWALS: u32 = 5;

/// Stack size of the lease thread: it renews and logs, like a listener thread, and needs as
/// little.
const LEASE_THREAD_STACK: usize = 128 * 1024;

/// The thread renewing the kernel responder's lease; dropping it stops the thread (the lease
/// then runs out within its length).
pub(super) struct LeaseRenewer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LeaseRenewer {
    /// Renews once now, then five times per `lease` from a thread of its own: a thread, not a
    /// tokio task, so that only the speaker process being stopped or starved — not a busy
    /// runtime — lets the lease run out.
    pub(super) fn start(
        responder: Arc<KernelResponder>,
        lease: Duration,
        counters: Arc<L2Counters>,
    ) -> std::io::Result<Self> {
        let renew_every = lease / KERNEL_LEASE_RENEWALS;
        responder.renew_lease(lease)?;
        let mut expires = Instant::now() + lease;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ferrolb-l2-lease".into())
            .stack_size(LEASE_THREAD_STACK)
            .spawn(move || {
                if let Err(error) = crate::thread_priority::favour_current_thread() {
                    tracing::debug!(%error, "layer 2: the lease thread keeps the default priority");
                }
                let mut failing = false;
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(renew_every);
                    if flag.load(Ordering::Relaxed) {
                        break;
                    }
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
        Ok(LeaseRenewer {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops renewing and waits for the thread (at most one renewal period): after this, the
    /// lease is whatever the caller sets, never overwritten by a late renewal.
    pub(super) fn stop_and_join(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for LeaseRenewer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
