//! Fault injection for reliability tests: drop every open watch, answer the next N
//! requests with 500 or 429 (+Retry-After), hold new watches until released, and counters
//! that let tests prove a fault really happened.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

use super::error::ApiError;

/// What an injected failure answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 500 InternalError.
    InternalError,
    /// 429 TooManyRequests with `Retry-After`.
    TooManyRequests { retry_after_secs: u64 },
}

/// Which requests an injected failure applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultScope {
    /// Every API request (not `/version`, discovery or OpenAPI).
    All,
    /// Only `watch=true` requests.
    Watches,
}

#[derive(Default)]
struct Pending {
    remaining: u64,
    fault: Option<Fault>,
    scope: Option<FaultScope>,
}

/// Shared by the server and every handle clone.
pub struct Faults {
    pending: Mutex<Pending>,
    epoch: watch::Sender<u64>,
    hold: watch::Sender<bool>,
    gone_served: AtomicU64,
    faults_served: AtomicU64,
    watches_started: AtomicU64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            pending: Mutex::new(Pending::default()),
            epoch: watch::channel(0).0,
            hold: watch::channel(false).0,
            gone_served: AtomicU64::new(0),
            faults_served: AtomicU64::new(0),
            watches_started: AtomicU64::new(0),
        }
    }
}

impl Faults {
    /// Ends every open watch now (clients see the stream close and re-watch).
    pub fn drop_watches(&self) {
        self.epoch.send_modify(|e| *e += 1);
    }

    /// Answer the next `n` matching requests with `fault`.
    pub fn fail_next(&self, n: u64, fault: Fault, scope: FaultScope) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        *p = Pending {
            remaining: n,
            fault: Some(fault),
            scope: Some(scope),
        };
    }

    /// New watch requests wait (without an answer) until [`Faults::release_watches`].
    pub fn hold_watches(&self) {
        self.hold.send_replace(true);
    }

    pub fn release_watches(&self) {
        self.hold.send_replace(false);
    }

    /// How many 410 Gone answers watches got.
    pub fn gone_served(&self) -> u64 {
        self.gone_served.load(Ordering::Relaxed)
    }

    /// How many injected failures were served.
    pub fn faults_served(&self) -> u64 {
        self.faults_served.load(Ordering::Relaxed)
    }

    /// How many watch requests were accepted.
    pub fn watches_started(&self) -> u64 {
        self.watches_started.load(Ordering::Relaxed)
    }

    pub(crate) fn note_gone(&self) {
        self.gone_served.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn note_watch(&self) {
        self.watches_started.fetch_add(1, Ordering::Relaxed);
    }

    /// The injected failure for this request, if one is due.
    pub(crate) fn take(&self, is_watch: bool) -> Option<ApiError> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if p.remaining == 0 {
            return None;
        }
        if p.scope == Some(FaultScope::Watches) && !is_watch {
            return None;
        }
        p.remaining -= 1;
        self.faults_served.fetch_add(1, Ordering::Relaxed);
        Some(match p.fault? {
            Fault::InternalError => ApiError::internal("injected fault: internal error"),
            Fault::TooManyRequests { retry_after_secs } => {
                ApiError::too_many_requests(retry_after_secs)
            }
        })
    }

    pub(crate) fn epoch(&self) -> watch::Receiver<u64> {
        self.epoch.subscribe()
    }

    /// Waits while watches are held.
    pub(crate) async fn wait_released(&self) {
        let mut rx = self.hold.subscribe();
        // An error means the sender is gone (server shutting down): stop waiting.
        let _ = rx.wait_for(|held| !*held).await;
    }
}
