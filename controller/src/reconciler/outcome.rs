//! What one pass decided, as plain data in three kinds, each executed on its own terms by
//! `run.rs`: status writes (retried until they land), events (queued, best effort) and metric
//! updates (applied at once).

use crate::allocator::{AllocError, RequestError, ServiceKey};
use ferrolb_api::IPAddressPoolStatus;
use k8s_openapi::api::core::v1::ObjectReference;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// Severity of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Informational.
    Normal,
    /// Something needs attention.
    Warning,
}

/// A status write the pass asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum StatusWrite {
    /// Set `status.loadBalancer.ingress` of a Service and its pool annotation.
    Service {
        /// The Service.
        key: ServiceKey,
        /// Addresses (empty clears the ingress).
        ips: Vec<IpAddr>,
        /// Their pool, written as `ferrolb.io/ip-allocated-from-pool` and
        /// `metallb.io/ip-allocated-from-pool` (`None` removes both).
        pool: Option<String>,
    },
    /// Set an IPAddressPool's status.
    Pool {
        /// Namespace of the pool.
        namespace: String,
        /// Name of the pool.
        name: String,
        /// The status.
        status: IPAddressPoolStatus,
    },
}

/// An event the pass asks to record.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Object the event is about.
    pub regarding: ObjectReference,
    /// Normal or Warning.
    pub kind: EventKind,
    /// Reason (see `ferrolb_api::events`).
    pub reason: &'static str,
    /// Human-readable message.
    pub note: String,
}

/// The address gauges of one pool and family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolAddresses {
    /// Pool name.
    pub pool: String,
    /// `ipv4` or `ipv6`.
    pub family: &'static str,
    /// Addresses assigned.
    pub in_use: i64,
    /// Addresses in the pool.
    pub total: i64,
}

/// Metric updates of one pass (see `Metrics::apply`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricDeltas {
    /// A new invalid configuration was rejected (`config_errors` + 1).
    pub config_rejected: bool,
    /// Whether the latest configuration is valid (`config_valid`).
    pub config_valid: bool,
    /// Whether a valid configuration has been loaded at least once.
    pub config_loaded: bool,
    /// One `reason` label per newly reported allocation failure.
    pub allocation_failures: Vec<&'static str>,
    /// Address gauges of every pool, by pool then family.
    pub pool_addresses: Vec<PoolAddresses>,
    /// Time each allocation took, in seconds (`reconcile_duration_seconds`).
    pub allocate_seconds: Vec<f64>,
}

/// What a pass returns.
#[derive(Debug, Default)]
pub struct PassOutcome {
    /// Statuses to write.
    pub status_writes: Vec<StatusWrite>,
    /// Events to record, in order.
    pub events: Vec<Event>,
    /// Metric updates.
    pub metrics: MetricDeltas,
    /// Run another pass after this long even without changes (rate-limited pool status).
    pub again_after: Option<Duration>,
}

/// Why a Service has no address or not the one it asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceFailure {
    /// The Service itself cannot be read; it keeps what it holds.
    Request(RequestError),
    /// The allocator cannot meet the request.
    Allocation(AllocError),
}

impl ServiceFailure {
    /// The `reason` label of the allocation failures metric.
    pub fn metric_reason(&self) -> &'static str {
        match self {
            Self::Request(e) => e.metric_reason(),
            Self::Allocation(e) => e.metric_reason(),
        }
    }
}

impl fmt::Display for ServiceFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Request(e) => e.fmt(f),
            Self::Allocation(e) => e.fmt(f),
        }
    }
}
